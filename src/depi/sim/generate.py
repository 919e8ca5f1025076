"""``depi-gen-demos``: scripted-expert demonstrations written as LeRobot v3.0 datasets.

One dataset per env, at ``<output_dir>/<env name with '/' -> '_'>`` (e.g. ``metaworld_pick-place-v3``), cameras
as MP4. Episode ``k`` of the attempts uses reset seed ``seed + k``; episodes the expert fails are left out and
counted. Next to LeRobot's files, ``meta/depi_generation.json`` records the env, the expert, the seed of every
kept episode, the failed seeds, the success rate and the simulator package versions; it is written last and is
the completeness marker: a dataset is built under ``.<name>.partial`` and renamed into place only when complete,
so a half-generated dataset is never reused.

Usage::

    depi-gen-demos --env so101_pick_place --episodes 20 --output_dir outputs/sim_demos --seed 0
    depi-gen-demos --env metaworld/pick-place-v3 --episodes 10 --output_dir outputs/sim_demos --image_size 224
    depi-gen-demos --env all --output_dir outputs/sim_demos     # the demo mixture (DEMO_MIXTURE), cached
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from dataclasses import asdict, dataclass, fields
from importlib import metadata
from pathlib import Path

from tqdm import tqdm

import depi
from depi.datasets.format.writer import DatasetWriter
from depi.sim.envs import GOAL_MARKER_FAMILIES, SimEnv, SimEnvConfig, env_family, make_env
from depi.sim.rollout import rollout

logger = logging.getLogger(__name__)

GENERATION_PATH = "meta/depi_generation.json"
GENERATION_FORMAT = 1
ALL = "all"
DEMO_MIXTURE: tuple[tuple[str, int], ...] = (
    ("so101_pick_place", 5),
    ("metaworld/reach-v3", 5),
    ("metaworld/pick-place-v3", 5),
    ("metaworld/drawer-open-v3", 5),
    ("so100_transfer_cube", 3),
)
"""The demo mixture: (env name, successful episodes). Small enough to generate in minutes on 2 CPU cores."""


@dataclass
class GenerationResult:
    """What one dataset generation produced (also the content of ``meta/depi_generation.json``).

    Attributes:
        root: the dataset folder.
        env, task, expert: env name, task text, expert class path.
        episode_seeds: reset seed of each kept episode, in episode_index order.
        episode_lengths: frames of each kept episode.
        failed_seeds: seeds of the attempts the expert failed (not written).
        settings: the generation settings that a cached dataset must match to be reused.
        packages: distribution name -> installed version.
        seconds: wall time of the generation.
    """

    root: Path
    env: str
    task: str
    expert: str
    fps: int
    episode_seeds: list[int]
    episode_lengths: list[int]
    failed_seeds: list[int]
    settings: dict
    packages: dict[str, str]
    seconds: float

    @property
    def attempts(self) -> int:
        return len(self.episode_seeds) + len(self.failed_seeds)

    @property
    def success_rate(self) -> float:
        """Kept episodes / attempts, in [0, 1]."""
        return len(self.episode_seeds) / self.attempts

    @classmethod
    def from_json(cls, root: Path, data: dict) -> GenerationResult:
        """Rebuild from the content of ``meta/depi_generation.json`` (derived entries are recomputed)."""
        return cls(root=Path(root), **{f.name: data[f.name] for f in fields(cls) if f.name != "root"})

    def to_json(self) -> dict:
        data = asdict(self)
        data.pop("root")
        data.update(
            format=GENERATION_FORMAT, attempts=self.attempts, success_rate=self.success_rate, complete=True
        )
        return data


@dataclass
class GenerateConfig:
    """Flags of ``depi-gen-demos``.

    Attributes:
        env: ``so101_pick_place``, ``metaworld/<task>``, ``so100_transfer_cube``, or ``all`` for the demo mixture.
        episodes: successful episodes per dataset; None: each env's count in ``DEMO_MIXTURE`` (10 for an env
            outside it).
        output_dir: parent folder of the datasets.
        seed: reset seed of the first attempt; attempt k uses ``seed + k``.
        image_size: side of the square camera images in pixels.
        max_attempts: episodes tried per dataset before giving up; None: ``2 * episodes + 2``.
        max_episode_steps: per-episode step limit; None: each env's default.
        shadows: render shadows (slower; see :class:`depi.sim.envs.SimEnvConfig`).
        privileged_state: record ``observation.state`` with the environment state appended (object and goal
            poses; see :class:`depi.sim.envs.SimEnvConfig`).
        goal_marker: draw the goal in the images where the scene does not show it (SO-101 pick-place; see
            :class:`depi.sim.envs.SimEnvConfig`).
        video_codec: ``h264``, ``av1`` or ``hevc``.
        overwrite: replace a complete dataset at the same place (otherwise a complete one with the same settings is
            reused and one with other settings is an error).
    """

    env: str = ALL
    episodes: int | None = None
    output_dir: Path = Path("outputs/sim_demos")
    seed: int = 0
    image_size: int = 224
    max_attempts: int | None = None
    max_episode_steps: int | None = None
    shadows: bool = False
    privileged_state: bool = False
    goal_marker: bool = True
    video_codec: str = "h264"
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.env != ALL:
            env_family(self.env)
        if self.episodes is not None and self.episodes < 1:
            raise ValueError(
                f"--episodes={self.episodes}: expected at least 1 successful episode per dataset"
            )
        if self.max_attempts is not None and self.episodes is not None and self.max_attempts < self.episodes:
            raise ValueError(f"--max_attempts={self.max_attempts} is below --episodes={self.episodes}")

    def plan(self) -> list[tuple[str, int]]:
        """(env name, successful episodes) of every dataset to produce."""
        if self.env == ALL:
            return [(name, self.episodes or count) for name, count in DEMO_MIXTURE]
        return [(self.env, self.episodes or dict(DEMO_MIXTURE).get(self.env, 10))]


def dataset_name(env: str) -> str:
    """Folder name of an env's dataset: ``metaworld/reach-v3`` -> ``metaworld_reach-v3``."""
    return env.replace("/", "_")


def package_versions(packages: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of ``packages`` plus depi's own, e.g. ``{"mujoco": "3.3.0", "depi": "0.1.0"}``."""
    return {**{name: metadata.version(name) for name in packages}, "depi": depi.__version__}


def read_generation(root: str | Path) -> GenerationResult | None:
    """What ``meta/depi_generation.json`` of a complete generated dataset records; None where there is none."""
    path = Path(root) / GENERATION_PATH
    return GenerationResult.from_json(Path(root), json.loads(path.read_text())) if path.exists() else None


def record_demos(
    env: SimEnv,
    root: Path,
    *,
    episodes: int,
    seed: int = 0,
    max_attempts: int | None = None,
    video_codec: str = "h264",
    settings: dict | None = None,
) -> GenerationResult:
    """Roll out ``env``'s expert until ``episodes`` succeed and write them as a LeRobot v3.0 dataset at ``root``.

    The dataset is built at ``<root parent>/.<root name>.partial`` (a stale one from an interrupted run is removed)
    and renamed to ``root`` once ``meta/depi_generation.json`` is written.

    Args:
        env: the simulator adapter (its spec gives fps, cameras, dims, task and robot_type).
        root: final dataset folder; must not exist.
        episodes: successful episodes to keep.
        seed: reset seed of the first attempt; attempt k uses ``seed + k``.
        max_attempts: attempts before stopping; None: ``2 * episodes + 2``. Fewer kept episodes than asked is
            logged as a warning and recorded in the sidecar.
        video_codec: codec of the camera videos.
        settings: extra entries recorded under ``settings`` in the sidecar.

    Raises:
        FileExistsError: ``root`` exists.
        RuntimeError: the expert failed every attempt (nothing is written).
    """
    root = Path(root)
    if root.exists():
        raise FileExistsError(f"{root} already exists; remove it or pass another output folder")
    attempts = max_attempts if max_attempts is not None else 2 * episodes + 2
    partial = root.parent / f".{root.name}.partial"
    if partial.exists():
        shutil.rmtree(partial)
    spec, expert = env.spec, env.make_expert()
    start = time.perf_counter()
    kept: list[tuple[int, int]] = []
    failed: list[int] = []
    writer: DatasetWriter | None = None
    try:
        with tqdm(total=episodes, desc=spec.name, unit="episode") as bar:
            for attempt_seed in range(seed, seed + attempts):
                if len(kept) == episodes:
                    break
                episode = rollout(env, expert, attempt_seed)
                if not episode.success:
                    failed.append(attempt_seed)
                    bar.set_postfix(failed=len(failed))
                    continue
                if writer is None:
                    writer = DatasetWriter.create(
                        partial,
                        repo_id=f"depi_sim/{dataset_name(spec.name)}",
                        fps=spec.fps,
                        features=spec.features(),
                        robot_type=spec.robot_type,
                        video_codec=video_codec,
                    )
                for frame in episode.frames:
                    writer.add_frame(frame, task=spec.task)
                writer.save_episode()
                kept.append((attempt_seed, episode.num_frames))
                bar.update(1)
        if writer is None:
            raise RuntimeError(
                f"{spec.name}: the expert {expert.name} failed all {attempts} attempts (seeds {seed}..."
                f"{seed + attempts - 1}) within max_episode_steps={spec.max_episode_steps}; nothing was written. "
                "Raise --max_episode_steps or --max_attempts, or check the simulator versions against "
                "scripts/sim_requirements.txt"
            )
        writer.finalize()
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if len(kept) < episodes:
        logger.warning(
            "%s: kept %d of %d requested episodes after %d attempts", spec.name, len(kept), episodes, attempts
        )
    result = GenerationResult(
        root=root,
        env=spec.name,
        task=spec.task,
        expert=expert.name,
        fps=spec.fps,
        episode_seeds=[s for s, _ in kept],
        episode_lengths=[n for _, n in kept],
        failed_seeds=failed,
        settings={"episodes": episodes, "seed": seed, "image_size": spec.image_size, **(settings or {})},
        packages=package_versions(env.packages),
        seconds=time.perf_counter() - start,
    )
    (partial / GENERATION_PATH).write_text(json.dumps(result.to_json(), indent=2))
    partial.rename(root)
    return result


def generate_dataset(
    env_name: str,
    output_dir: str | Path,
    *,
    episodes: int,
    seed: int = 0,
    image_size: int = 224,
    max_attempts: int | None = None,
    max_episode_steps: int | None = None,
    shadows: bool = False,
    privileged_state: bool = False,
    goal_marker: bool = True,
    video_codec: str = "h264",
    overwrite: bool = False,
) -> tuple[Path, GenerationResult | None]:
    """Make (or reuse) the dataset of one env at ``<output_dir>/<dataset_name(env_name)>``.

    Returns:
        ``(root, result)``: result is None when a complete dataset with the same settings was reused.

    Raises:
        FileExistsError: ``root`` holds something else than a complete generated dataset with these settings
            and this env's expert (another generation's settings or expert, or no
            ``meta/depi_generation.json``), and ``overwrite`` is False.
        ModuleNotFoundError, ValueError, RuntimeError: from :func:`make_env` and :func:`record_demos`.
    """
    root = Path(output_dir) / dataset_name(env_name)
    settings = {
        "episodes": episodes,
        "seed": seed,
        "image_size": image_size,
        "max_episode_steps": max_episode_steps,
        "shadows": shadows,
        # absent: the settings of earlier caches (no privileged state, no goal marker)
        **({"privileged_state": True} if privileged_state else {}),
        **({"goal_marker": True} if goal_marker and env_family(env_name) in GOAL_MARKER_FAMILIES else {}),
    }
    config = SimEnvConfig(env_name, image_size=image_size, max_episode_steps=max_episode_steps, shadows=shadows,
                          privileged_state=privileged_state, goal_marker=goal_marker)  # fmt: skip
    with make_env(config) as env:
        expert = env.make_expert().name
        if root.exists() and not overwrite:
            found = read_generation(root)
            if found is not None and (found.env, found.settings, found.expert) == (env_name, settings, expert):
                logger.info("reusing %s (%d episodes)", root, len(found.episode_seeds))
                return root, None
            recorded = "absent" if found is None else f"settings {found.settings}, expert {found.expert}"
            raise FileExistsError(
                f"{root} exists but was not generated with env={env_name!r}, settings {settings} and expert "
                f"{expert} ({GENERATION_PATH}: {recorded}); pass --overwrite true to replace it, or another "
                "--output_dir"
            )
        staged = root.parent / f".{root.name}.staged" if root.exists() else root
        result = record_demos(
            env, staged, episodes=episodes, seed=seed, max_attempts=max_attempts, video_codec=video_codec,
            settings={k: v for k, v in settings.items() if k not in ("episodes", "seed", "image_size")},
        )  # fmt: skip
    if staged != root:
        shutil.rmtree(root)
        staged.rename(root)
        result.root = root
    return root, result


def ensure_demo_mixture(
    cache_dir: str | Path,
    *,
    envs: list[str] | None = None,
    episodes: int | None = None,
    seed: int = 0,
    image_size: int = 224,
    privileged_state: bool = False,
) -> list[Path]:
    """Roots of the demo mixture's datasets under ``cache_dir``, generating those not there yet.

    Args:
        cache_dir: folder of the datasets (one per env).
        envs: env names to generate; None for every entry of ``DEMO_MIXTURE``.
        episodes: successful episodes per dataset; None for ``DEMO_MIXTURE``'s counts (10 for an env outside it).
        seed, image_size, privileged_state: as in :class:`GenerateConfig`.

    Raises:
        FileExistsError: a dataset folder there was generated with other settings.
        ValueError: an unknown env name.
        ModuleNotFoundError: a simulator package is missing (names it and the install command).
    """
    plan = (
        GenerateConfig(env=ALL, episodes=episodes).plan()
        if envs is None
        else [p for env in envs for p in GenerateConfig(env=env, episodes=episodes).plan()]
    )
    return [
        generate_dataset(
            name, cache_dir, episodes=count, seed=seed, image_size=image_size, privileged_state=privileged_state
        )[0]
        for name, count in plan
    ]


def summary_table(rows: list[tuple[Path, GenerationResult | None]]) -> str:
    """A text table of a run: per dataset the kept and failed (left out) episodes, success rate, frames, speed."""
    header = f"{'dataset':<32} {'kept':>5} {'failed':>7} {'success':>8} {'frames':>7} {'episodes/min':>13}"
    lines = [header]
    for root, result in rows:
        if result is None:
            lines.append(f"{root.name:<32} reused (complete, same settings)")
            continue
        kept = len(result.episode_seeds)
        lines.append(
            f"{root.name:<32} {kept:>5} {len(result.failed_seeds):>7} {result.success_rate:>8.0%} "
            f"{sum(result.episode_lengths):>7} {kept / result.seconds * 60:>13.1f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``depi-gen-demos [flags]``: parse flags, generate, print the summary table; returns the exit status.

    Raises:
        UsageError: an unknown flag or env (one line, see :mod:`depi.cli`).
    """
    from depi.cli import parse

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = parse(GenerateConfig, list(sys.argv[1:] if argv is None else argv), prog="depi-gen-demos")
    rows = [
        generate_dataset(
            name, config.output_dir, episodes=count, seed=config.seed, image_size=config.image_size,
            max_attempts=config.max_attempts, max_episode_steps=config.max_episode_steps,
            shadows=config.shadows, privileged_state=config.privileged_state, goal_marker=config.goal_marker,
            video_codec=config.video_codec,
            overwrite=config.overwrite,
        )
        for name, count in config.plan()
    ]  # fmt: skip
    print(summary_table(rows))
    return 0


def console() -> None:
    """Console script entry point (``depi-gen-demos``)."""
    from depi.cli import run

    run(main, prog="depi-gen-demos")


if __name__ == "__main__":
    console()
