"""``depi-viz predictions``: along one episode, the chunk a checkpoint predicts at every k-th frame, overlaid on
the recorded actions, and the per-step error.

Entities (timelines ``frame_index`` and ``timestamp`` in seconds): ``recorded/action/<dim>`` (the recording),
``predicted/action/<dim>/frame_<f>`` (the chunk predicted at frame f: step j at ``t_f + j / control_fps``), and
``error/mse`` (the chunk's mean squared error against the recorded chunk, on the real dims and non-padded
steps, at ``t_f``). Actions are in the dataset's units (after the checkpoint's unnormalization), built by the
same mixture the offline evaluation uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from depi.constants import ACTION_IS_PAD, ACTIONS
from depi.errors import DepiError
from depi.eval.policy_runner import EvalPolicyConfig
from depi.viz.cli import OutputOptions
from depi.viz.log import rerun, time_columns


@dataclass
class PredictionsViewConfig(OutputOptions):
    """Flags of ``depi-viz predictions``.

    Attributes:
        policy: ``--policy.path`` (checkpoint or run folder), ``.device``, ``.dtype``, ``.num_steps``.
        dataset_root: the dataset (a LeRobot folder; its embodiment must be in the checkpoint).
        episode_index: the episode shown.
        every: predict at every ``every``-th frame.
        seed: seed of the flow-matching noise.
    """

    policy: EvalPolicyConfig = field(default_factory=EvalPolicyConfig)
    dataset_root: str | None = None
    episode_index: int = 0
    every: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.policy.path or not self.dataset_root:
            raise ValueError("give --policy.path=<checkpoint> and --dataset_root=<dataset folder>")
        if self.every < 1:
            raise ValueError(f"--every={self.every}: expected >= 1")


def view_predictions(config: PredictionsViewConfig, open_recording) -> dict:
    """Predict along the episode and log (module docstring).

    Returns:
        ``{"frames": [predicted frame indices], "mse": [per-chunk MSE]}``.

    Raises:
        DepiError: the episode is not in the dataset.
        FileNotFoundError / ValueError: see :func:`depi.eval.policy_runner.load_checkpoint`,
            :func:`depi.eval.offline.build_mixture`.
    """
    import rerun.blueprint as rrb

    from depi.eval.offline import OfflineDatasetConfig, build_mixture
    from depi.eval.policy_runner import Binding, PolicyRunner, load_checkpoint
    from depi.viz.dataset_view import episode_table
    from depi.viz.log import dim_names, log_series

    rr = rerun()
    checkpoint = load_checkpoint(config.policy.path, config.policy.device, config.policy.dtype)
    mixture = build_mixture(checkpoint, OfflineDatasetConfig(root=config.dataset_root))
    index, entry = mixture.index, mixture.index.entries[0]
    episodes = list(entry.episode_ids)
    if config.episode_index not in episodes:
        raise DepiError(f"--episode_index={config.episode_index}: {entry.root} has episodes {episodes[:10]}...")
    e = int(index.episode_offsets[0]) + episodes.index(config.episode_index)
    start, end = int(index.episode_start[e]), int(index.episode_end[e])
    runner = PolicyRunner(
        checkpoint, Binding(entry.repo_id, entry.embodiment, dict(entry.roles.slots), entry.state_dim, entry.action_dim),
        num_steps=config.policy.num_steps, seed=config.seed,
    )  # fmt: skip
    fps, control_fps, dims = float(entry.fps), checkpoint.control_fps, entry.action_dim

    rec = open_recording(config, "depi_viz_predictions")
    from depi.datasets.format.meta import load_meta

    meta = load_meta(entry.root)
    rows = episode_table(entry.root, meta, config.episode_index)
    frame_index = np.asarray(rows["frame_index"])
    names = dim_names(meta.features["action"].get("names"), dims)
    recorded = np.asarray(rows["action"].to_pylist(), dtype=np.float64).reshape(len(frame_index), -1)[:, :dims]
    log_series(rec, "recorded/action", recorded, names, frame_index, frame_index / fps)
    frames, errors = [], []
    for row in tqdm(range(start, end, config.every), desc="predictions", unit="chunk"):
        sample = mixture[int(index.offsets[0]) + row]
        predicted = runner.predict(sample)[:, :dims]
        truth = np.asarray(sample[ACTIONS])[:, :dims]
        valid = ~np.asarray(sample[ACTION_IS_PAD])
        f = row - start
        t = f / fps + np.arange(len(predicted)) / control_fps
        for d, name in enumerate(names):
            rec.send_columns(f"predicted/action/{name}/frame_{f}", indexes=time_columns(np.round(t * fps), t),
                             columns=rr.Scalars.columns(scalars=predicted[:, d].astype(np.float64)))  # fmt: skip
        mse = float(np.mean((predicted[valid] - truth[valid]) ** 2)) if valid.any() else float("nan")
        frames.append(f)
        errors.append(mse)
    log_series(rec, "error", np.asarray(errors)[:, None], ["mse"], np.asarray(frames), np.asarray(frames) / fps)
    rec.send_blueprint(rrb.Blueprint(rrb.Vertical(
        *[rrb.TimeSeriesView(name=f"action {n}: recorded vs predicted",
                             contents=[f"recorded/action/{n}", f"predicted/action/{n}/**"]) for n in names],
        rrb.TimeSeriesView(origin="error", name="chunk MSE"),
    )))  # fmt: skip
    rec.flush()
    print(f"depi-viz: {len(frames)} chunks predicted along episode {config.episode_index} of {entry.repo_id}, "
          f"mean chunk MSE {np.nanmean(errors):.4g}" + (f" -> {config.save}" if config.save else ""))  # fmt: skip
    return {"frames": frames, "mse": errors}
