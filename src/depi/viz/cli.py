"""``depi-viz``: look at datasets, at what the model is fed, and at what it predicts, in rerun.

Usage::

    depi-viz dataset ROOT|REPO_ID --episode_index=0 --save=outputs/viz/episode0.rrd
    depi-viz dataset ../shared/data/reachy2_apple_storage_v30 --mode=local          # spawn the viewer
    depi-viz mixture --dataset.root=outputs/sim_demos --num_samples=16 --save=outputs/viz/mixture.rrd
    depi-viz predictions --policy.path=outputs/train/<run> --dataset.root=outputs/sim_demos/so101_pick_place \\
        --episode_index=0 --every=5 --save=outputs/viz/predictions.rrd
    depi-viz dataset ROOT --mode=distant --port=9090                                   # web viewer on a port

``--mode=save`` (the default when ``--save`` is given) writes an .rrd file that ``rerun FILE.rrd`` opens
offline; ``local`` spawns the viewer; ``distant`` serves the recording over gRPC with the web viewer on
``--port`` (open it from another machine). rerun-sdk 0.41 (the ``viz`` extra).
"""

from __future__ import annotations

from dataclasses import dataclass

from depi.cli import parse, run, split_command
from depi.errors import UsageError

PROG = "depi-viz"
COMMANDS = ("dataset", "mixture", "predictions")


@dataclass
class OutputOptions:
    """Where the recording goes.

    Attributes:
        save: ``.rrd`` file to write.
        mode: ``save``, ``local`` (spawn the viewer), ``distant`` (gRPC + web viewer on ``port``); default
            ``save`` when ``save`` is given, else ``local``.
        port: web viewer port of ``distant``.
    """

    save: str | None = None
    mode: str | None = None
    port: int = 9876

    def resolved_mode(self) -> str:
        mode = self.mode or ("save" if self.save else "local")
        if mode not in ("save", "local", "distant"):
            raise ValueError(f"--mode={mode}: expected save, local or distant")
        if mode == "save" and not self.save:
            raise ValueError("--mode=save needs --save=PATH.rrd")
        return mode


@dataclass
class DatasetViewConfig(OutputOptions):
    """Flags of ``depi-viz dataset``.

    Attributes:
        target: dataset folder, or a repo_id found locally (``$HF_LEROBOT_HOME``, the Hub cache); also the first
            positional argument.
        episode_index: the episode shown.
    """

    target: str | None = None
    episode_index: int = 0


def _open(config: OutputOptions, app_id: str):
    from depi.viz.log import open_recording

    return open_recording(app_id, config.resolved_mode(), config.save, config.port)


def view_dataset(config: DatasetViewConfig) -> dict:
    """Log the episode; returns the report of :func:`depi.viz.dataset_view.log_episode`."""
    from depi.datasets.format.hub import resolve_root
    from depi.viz.dataset_view import dataset_blueprint, log_episode

    if not config.target:
        raise UsageError(f"{PROG} dataset needs a dataset: {PROG} dataset ROOT|REPO_ID [--episode_index N]")
    path = config.target
    from pathlib import Path

    root = Path(path).expanduser()
    if not root.is_dir():
        if path.startswith((".", "/", "~")) or path.count("/") != 1:
            raise UsageError(f"{path}: no such dataset folder")
        root = resolve_root(path)
    rec = _open(config, "depi_viz_dataset")
    report = log_episode(rec, root, config.episode_index)
    rec.send_blueprint(dataset_blueprint(report))
    rec.flush()
    missing = [k for k, kind in report["cameras"].items() if kind == "missing"]
    print(f"{PROG}: {root} episode {config.episode_index}: {report['frames']} frames, cameras "
          f"{ {k: v for k, v in report['cameras'].items()} }" + (f"; missing video: {missing}" if missing else "")
          + (f" -> {config.save}" if config.save else ""))  # fmt: skip
    return report


def main(argv: list[str]) -> int:
    """``depi-viz {dataset,mixture,predictions} [flags]``."""
    split = split_command(argv, COMMANDS, PROG)
    if split is None:
        return 0
    command, flags = split
    prog = f"{PROG} {command}"
    if command == "dataset":
        if flags and not flags[0].startswith("-"):
            flags = [f"--target={flags[0]}", *flags[1:]]
        view_dataset(parse(DatasetViewConfig, flags, prog=prog))
    elif command == "mixture":
        from depi.viz.mixture_view import MixtureViewConfig, view_mixture

        view_mixture(parse(MixtureViewConfig, flags, prog=prog), _open)
    else:
        from depi.viz.predictions_view import PredictionsViewConfig, view_predictions

        view_predictions(parse(PredictionsViewConfig, flags, prog=prog), _open)
    return 0


def console() -> None:
    """Console script entry point (``depi-viz``)."""
    run(main, prog=PROG)


if __name__ == "__main__":
    console()



