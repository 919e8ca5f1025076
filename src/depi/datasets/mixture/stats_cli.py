"""``depi-stats``: exact normalization stats per embodiment group of a mixture, as openpi ``norm_stats.json``.

Takes the training's dataset flags, e.g.::

    depi-stats --dataset.num_datasets=200 --output_dir=outputs/norm_stats
    depi-stats --dataset.root=/data/lerobot --dataset.embodiment_key=dims --max_frames=2000000
    depi-stats --dataset.root=/data/bridge --dataset.action_horizon=16 --dataset.control_fps=5 \
        --delta_action_mask="[true,true,true,true,true,true,false]"

Writes ``<output_dir>/<group>/norm_stats.json`` for each group (``state``, ``actions``: mean, std, q01, q99,
min, max) and ``<output_dir>/stats_manifest.json``. With ``--delta_action_mask`` (the pipeline's
``DeltaActions`` mask) the ``actions`` stats are those of the delta action chunks of
``--dataset.action_horizon`` steps at ``--dataset.control_fps``, what such a policy is trained on. Only parquet columns are read (no video decode). A rerun
on unchanged inputs and settings reuses the files (content hash, see :mod:`depi.datasets.mixture.stats`).
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from depi.cli import parse, run
from depi.constants import ACTION
from depi.datasets.mixture.config import DatasetConfig
from depi.datasets.mixture.index import DatasetEntry, MixtureIndex
from depi.datasets.mixture.dataset import MultiLeRobotDataset
from depi.datasets.format.source import LeRobotSource
from depi.datasets.mixture.stats import DeltaStatsSpec, StatsInput, compute_group_stats
from depi.transforms.norm_stats import NormStats


@dataclass
class StatsConfig:
    """Flags of ``depi-stats``.

    Attributes:
        dataset: selection and grouping (``--dataset.*``, as in training).
        output_dir: folder receiving one ``<group>/norm_stats.json`` per embodiment group.
        max_frames: per-group cap (uniform subsample without replacement); None: every frame (exact).
        seed: subsample seed.
        force: recompute even when the cached stats match the inputs.
        delta_action_mask: the training pipeline's ``DeltaActions`` mask (True: dim made relative to the
            current state); None: stats of the recorded actions. The delta chunks of a group are held in
            memory, about ``3 * 8 * action_horizon * action_dim`` bytes per frame at peak: cap large groups
            with ``--max_frames``.
    """

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    output_dir: str = "outputs/norm_stats"
    max_frames: int | None = None
    seed: int = 0
    force: bool = False
    delta_action_mask: list[bool] | None = None

    def __post_init__(self) -> None:
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"--max_frames={self.max_frames} must be >= 1 (or omitted for every frame).")
        if self.delta_action_mask is not None and not self.delta_action_mask:
            raise ValueError(
                "--delta_action_mask is empty; give one true/false per leading action dim or omit it."
            )

    @property
    def delta(self) -> DeltaStatsSpec | None:
        """The delta-action stats setting, from the mask and the dataset's horizon and control rate."""
        if self.delta_action_mask is None:
            return None
        return DeltaStatsSpec(
            tuple(self.delta_action_mask), self.dataset.action_horizon, self.dataset.control_fps
        )


def _column_reader(entry: DatasetEntry, on_done: Callable[[], None]) -> Callable[[str], np.ndarray]:
    opened: list[LeRobotSource] = []

    def read(key: str) -> np.ndarray:
        if not opened:
            opened.append(LeRobotSource(entry.repo_id, root=entry.root))
        column = np.asarray(opened[0].column(key))
        if key == ACTION:  # the last column read for this dataset
            opened.clear()
            on_done()
        return column

    return read


def _kept_rows(read: Callable[[str], np.ndarray], rows: np.ndarray) -> Callable[[str], np.ndarray]:
    return lambda key: read(key)[rows]


def group_inputs(
    index: MixtureIndex, on_done: Callable[[], None] = lambda: None
) -> dict[str, list[StatsInput]]:
    """The kept datasets of a mixture index, grouped by embodiment, as lazy column readers.

    Episodes the index holds out (``episode_kept`` False) are left out: their rows are dropped from the columns
    and their lengths from ``episode_lengths`` (episodes are contiguous row ranges in episode order, so the
    delta-action chunks of the remaining frames are unchanged).
    """
    groups: dict[str, list[StatsInput]] = defaultdict(list)
    for i, entry in enumerate(index.entries):
        kept = index.episode_kept[int(index.episode_offsets[i]) : int(index.episode_offsets[i + 1])]
        read = _column_reader(entry, on_done)
        if not kept.all():
            rows = np.repeat(kept, entry.episode_lengths)  # bool (num_frames,)
            read = _kept_rows(read, rows)
        item = StatsInput(
            entry.repo_id,
            entry.data_files,
            int(entry.episode_lengths[kept].sum()),
            read,
            episode_lengths=entry.episode_lengths[kept],
            fps=entry.fps,
            held_out_episodes=tuple(index.held_out_episodes(i)),
        )
        groups[entry.embodiment].append(item)
    return dict(groups)


def run_stats(config: StatsConfig) -> dict[str, dict[str, NormStats]]:
    """Select and validate the datasets, then compute (or reuse) every group's stats."""
    mixture = MultiLeRobotDataset(config.dataset)
    with tqdm(total=len(mixture.index.entries), desc="depi-stats", unit="dataset") as bar:
        results = compute_group_stats(
            group_inputs(mixture.index, on_done=lambda: bar.update(1)),
            config.output_dir,
            max_frames=config.max_frames,
            seed=config.seed,
            force=config.force,
            delta=config.delta,
        )
    for group, stats in results.items():
        path = Path(config.output_dir) / group / "norm_stats.json"
        print(f"{group}: state dim {stats['state'].dim}, actions dim {stats['actions'].dim} -> {path}")
    return results


def main(argv: list[str] | None = None) -> int:
    """``depi-stats [flags]`` (flags: :class:`StatsConfig`; default ``sys.argv[1:]``)."""
    config = parse(StatsConfig, list(sys.argv[1:] if argv is None else argv), prog="depi-stats")
    print("depi-stats: indexing the datasets ...", flush=True)
    run_stats(config)
    return 0


def console() -> None:
    """Console script entry point (``depi-stats``)."""
    run(main, prog="depi-stats")
