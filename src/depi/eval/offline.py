"""Offline evaluation: predicted vs recorded action chunks on train and held-out episodes.

Samples are the mixture's canonical samples (:class:`depi.datasets.mixture.dataset.MultiLeRobotDataset` built with the
checkpoint's ``control_fps``, ``action_horizon``, embodiment grouping and camera roles), so the policy sees
exactly what training fed it. Every ``stride``-th frame of each episode is evaluated (at most ``max_samples``
per dataset and split, evenly spaced). Episodes are split by :mod:`depi.eval.splits`, except that a dataset
whose held-out episodes the checkpoint's ``mixture_manifest.json`` lists (training with
``--dataset.holdout_dir``) is tested on exactly those (``--split.from_checkpoint=false`` turns this off).

Metrics, in the dataset's action units (after the output transforms: unnormalized, absolute), on the real
action dims ``A`` and the chunk steps that are not padding (``action_is_pad`` False), for predictions
``p`` and recorded actions ``r`` of shape (H, A):

* **MSE**: ``sum((p - r)^2) / (valid steps * A)``, pooled over all samples of a split (each valid value
  counts once);
* **cosine similarity**: ``<p, r> / (|p| |r|)`` of the flattened valid steps of one chunk, averaged over the
  samples (0 where a norm is 0).

Outputs under ``output_dir``: ``results.json`` (per dataset and split: samples, MSE, cosine; the split used
and its source) and ``splits/<repo_id>.json``; the summary table goes to stdout.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from depi.constants import ACTION_IS_PAD, ACTIONS
from depi.datasets.mixture.config import DatasetConfig
from depi.datasets.format.meta import load_meta
from depi.datasets.mixture.dataset import MultiLeRobotDataset
from depi.eval.policy_runner import (
    MANIFEST_FILE,
    Binding,
    Checkpoint,
    EvalPolicyConfig,
    PolicyRunner,
    load_checkpoint,
)
from depi.eval.report import format_table
from depi.eval.splits import Split, SplitConfig, held_out_split, load_or_make_split, split_path
from depi.fileio import write_json

logger = logging.getLogger(__name__)

SPLITS = ("train", "test")
RESULTS_FILE = "results.json"


@dataclass
class OfflineDatasetConfig:
    """Which datasets to evaluate on.

    Attributes:
        root: a LeRobot dataset folder, or a folder of datasets (as ``depi-train --dataset.root``).
        repo_id: with ``root`` as the parent of ``<owner>/<name>``: only this dataset.
    """

    root: str | None = None
    repo_id: str | None = None


@dataclass
class OfflineEvalConfig:
    """Flags of ``depi-eval offline``.

    Attributes:
        policy: ``--policy.path=CKPT`` (checkpoint folder or run folder).
        dataset: ``--dataset.root=DIR``.
        split: how episodes are split (``--split.mode``, ``--split.test_fraction``, ``--split.seed``).
        stride: evaluate every stride-th frame of each episode.
        max_samples: at most this many frames per dataset and split (evenly spaced); None: all.
        seed: seed of the flow-matching noise.
        output_dir: folder of results.json and splits/; None: ``outputs/eval/offline``.
    """

    policy: EvalPolicyConfig = field(default_factory=EvalPolicyConfig)
    dataset: OfflineDatasetConfig = field(default_factory=OfflineDatasetConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    stride: int = 10
    max_samples: int | None = None
    seed: int = 0
    output_dir: str | None = None

    def __post_init__(self) -> None:
        if not self.policy.path:
            raise ValueError("set --policy.path=<checkpoint folder written by depi-train>")
        if not self.dataset.root:
            raise ValueError("set --dataset.root=<LeRobot dataset folder, or a folder of datasets>")
        if self.stride < 1:
            raise ValueError(f"--stride={self.stride}: expected >= 1")
        if self.max_samples is not None and self.max_samples < 1:
            raise ValueError(f"--max_samples={self.max_samples}: expected >= 1 or unset")


def chunk_metrics(pred: np.ndarray, recorded: np.ndarray, is_pad: np.ndarray) -> tuple[float, int, float]:
    """Squared-error sum, valid value count and cosine similarity of one chunk (formulas in the module docstring).

    Args:
        pred: float (H, A) predicted actions.
        recorded: float (H, A) recorded actions, same units.
        is_pad: bool (H,), True on padded steps (ignored).

    Returns:
        ``(sum of squared errors, number of valid values, cosine similarity)``; ``(0, 0, nan)`` when every step is
        padding.

    Raises:
        ValueError: shapes differ.
    """
    if pred.shape != recorded.shape or is_pad.shape != pred.shape[:1]:
        raise ValueError(
            f"chunk_metrics: pred {pred.shape}, recorded {recorded.shape}, is_pad {is_pad.shape}"
        )
    valid = ~np.asarray(is_pad, dtype=bool)
    p = np.asarray(pred, dtype=np.float64)[valid].reshape(-1)
    r = np.asarray(recorded, dtype=np.float64)[valid].reshape(-1)
    if p.size == 0:
        return 0.0, 0, float("nan")
    norms = np.linalg.norm(p) * np.linalg.norm(r)
    cosine = float(p @ r / norms) if norms > 0 else 0.0
    return float(np.sum((p - r) ** 2)), int(p.size), cosine


@dataclass
class SplitMetrics:
    """Accumulated metrics of one dataset and split."""

    samples: int = 0
    squared_error: float = 0.0
    values: int = 0
    cosines: list[float] = field(default_factory=list)

    def add(self, pred: np.ndarray, recorded: np.ndarray, is_pad: np.ndarray) -> None:
        se, count, cosine = chunk_metrics(pred, recorded, is_pad)
        self.samples += 1
        self.squared_error += se
        self.values += count
        if count:
            self.cosines.append(cosine)

    def merge(self, other: SplitMetrics) -> None:
        self.samples += other.samples
        self.squared_error += other.squared_error
        self.values += other.values
        self.cosines.extend(other.cosines)

    def to_json(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "mse": self.squared_error / self.values if self.values else None,
            "cosine": float(np.mean(self.cosines)) if self.cosines else None,
        }


@dataclass(frozen=True)
class EvalItem:
    """One frame to evaluate: dataset position in the mixture, its split, the mixture's global frame index."""

    dataset: int
    split: str
    global_index: int


def plan_items(
    mixture: MultiLeRobotDataset, splits: Sequence[Split], stride: int, max_samples: int | None
) -> list[EvalItem]:
    """Every ``stride``-th frame of every episode, labelled train / test, capped at ``max_samples`` per split."""
    index = mixture.index
    items: list[EvalItem] = []
    for d, split in enumerate(splits):
        test = set(split.test_episodes)
        per_split: dict[str, list[int]] = {name: [] for name in SPLITS}
        entry = index.entries[d]
        for e in range(int(index.episode_offsets[d]), int(index.episode_offsets[d + 1])):
            episode_id = int(entry.episode_ids[e - int(index.episode_offsets[d])])
            rows = range(int(index.episode_start[e]), int(index.episode_end[e]), stride)
            per_split["test" if episode_id in test else "train"].extend(
                int(index.offsets[d]) + r for r in rows
            )
        for name, frames in per_split.items():
            if max_samples is not None and len(frames) > max_samples:
                frames = [frames[i] for i in np.linspace(0, len(frames) - 1, max_samples).round().astype(int)]
            items.extend(EvalItem(d, name, g) for g in frames)
    return items


def evaluate_items(
    mixture: MultiLeRobotDataset,
    items: Sequence[EvalItem],
    predict: Callable[[int, dict], np.ndarray],
    *,
    progress: bool = True,
) -> dict[tuple[int, str], SplitMetrics]:
    """Compare ``predict(dataset, sample) -> (H, A)`` with each sample's recorded chunk.

    Returns:
        (dataset position, split) -> metrics.
    """
    metrics: dict[tuple[int, str], SplitMetrics] = {}
    for item in tqdm(items, desc="offline eval", unit="sample", disable=not progress):
        sample = mixture[item.global_index]
        action_dim = mixture.index.entries[item.dataset].action_dim
        pred = predict(item.dataset, sample)
        recorded = np.asarray(sample[ACTIONS])[:, :action_dim]
        metrics.setdefault((item.dataset, item.split), SplitMetrics()).add(
            pred, recorded, np.asarray(sample[ACTION_IS_PAD])
        )
    return metrics


def build_mixture(checkpoint: Checkpoint, dataset: OfflineDatasetConfig) -> MultiLeRobotDataset:
    """The datasets under ``dataset.root`` as the checkpoint's training saw them (rate, horizon, roles, groups).

    Raises:
        RuntimeError: no usable dataset (the mixture's message lists why).
        ValueError: a dataset's embodiment has no norm stats in the checkpoint.
    """
    train = checkpoint.config.dataset
    mixture = MultiLeRobotDataset(
        DatasetConfig(
            repo_id=dataset.repo_id,
            root=dataset.root,
            control_fps=checkpoint.control_fps,
            action_horizon=checkpoint.action_horizon,
            weighting="uniform",
            embodiment_key=train.embodiment_key,
            camera_roles_file=train.camera_roles_file,
            annotations_dir=train.annotations_dir,
            min_valid_fraction=1.0,
        ),
        verbose=False,
    )
    for entry in mixture.index.entries:
        if entry.embodiment not in checkpoint.embodiments:
            raise ValueError(
                f"{entry.root}: embodiment {entry.embodiment!r} has no norm stats in {checkpoint.path}/norm_stats "
                f"(the checkpoint knows {list(checkpoint.embodiments)}); evaluate datasets of those embodiments."
            )
    return mixture


def checkpoint_held_out(checkpoint: Checkpoint) -> dict[str, list[int]]:
    """repo_id -> the episodes the checkpoint's training held out (``held_out_episodes`` of its mixture
    manifest), for the datasets with any; empty for runs trained without ``--dataset.holdout_dir``."""
    return {
        d["repo_id"]: [int(e) for e in d["held_out_episodes"]]
        for d in checkpoint.manifest.get("datasets", [])
        if d.get("held_out_episodes")
    }


def dataset_splits(
    mixture: MultiLeRobotDataset,
    config: SplitConfig,
    splits_dir: Path,
    held_out: dict[str, list[int]] | None = None,
    origin: str = "mixture_manifest.json",
) -> list[Split]:
    """The split of each dataset of the mixture.

    A dataset in ``held_out`` (see :func:`checkpoint_held_out`) is tested on exactly those episodes; the others
    are split by ``config`` (reused from ``splits_dir`` or made and written there).

    Raises:
        ValueError: a held-out episode is not in the dataset, or a split file disagrees (see
            :func:`depi.eval.splits.load_or_make_split`).
    """
    held_out = held_out or {}
    splits = []
    for entry in mixture.index.entries:
        if entry.repo_id in held_out:
            splits.append(held_out_split(entry.repo_id, entry.episode_ids, held_out[entry.repo_id], origin))
            continue
        episode_tasks = {
            ep.episode_index: (ep.tasks[0] if ep.tasks else "") for ep in load_meta(entry.root).episodes
        }
        splits.append(load_or_make_split(splits_dir, entry.repo_id, episode_tasks, config))
    return splits


def run_offline_eval(config: OfflineEvalConfig) -> dict:
    """Split, predict, compare; write results.json; return the results dict (see the module docstring).

    Raises:
        FileNotFoundError: incomplete checkpoint or dataset files.
        RuntimeError / ValueError: see :func:`build_mixture` and :func:`depi.eval.splits.load_or_make_split`.
    """
    checkpoint = load_checkpoint(config.policy.path, config.policy.device, config.policy.dtype)
    output_dir = Path(config.output_dir or "outputs/eval/offline")
    splits_dir = Path(config.split.splits_dir) if config.split.splits_dir else output_dir / "splits"
    mixture = build_mixture(checkpoint, config.dataset)
    held_out = checkpoint_held_out(checkpoint) if config.split.from_checkpoint else {}
    manifest_path = str(Path(checkpoint.path) / MANIFEST_FILE)
    splits = dataset_splits(mixture, config.split, splits_dir, held_out, manifest_path)
    runners = [
        PolicyRunner(
            checkpoint,
            Binding(e.repo_id, e.embodiment, dict(e.roles.slots), e.state_dim, e.action_dim),
            num_steps=config.policy.num_steps,
            seed=config.seed,
            compile=config.policy.compile,
        )
        for e in mixture.index.entries
    ]
    items = plan_items(mixture, splits, config.stride, config.max_samples)
    metrics = evaluate_items(mixture, items, lambda d, sample: runners[d].predict(sample))
    datasets = []
    totals = {name: SplitMetrics() for name in SPLITS}
    for d, entry in enumerate(mixture.index.entries):
        row: dict[str, Any] = {
            "repo_id": entry.repo_id,
            "root": str(entry.root),
            "embodiment": entry.embodiment,
        }
        for name in SPLITS:
            found = metrics.get((d, name), SplitMetrics())
            totals[name].merge(found)
            row[name] = found.to_json()
        from_manifest = splits[d].mode == "checkpoint"
        row["split"] = {
            "source": manifest_path if from_manifest else str(split_path(splits_dir, entry.repo_id)),
            "train_episodes": splits[d].train_episodes,
            "test_episodes": splits[d].test_episodes,
        }
        datasets.append(row)
    results = {
        "checkpoint": str(checkpoint.path),
        "control_fps": checkpoint.control_fps,
        "action_horizon": checkpoint.action_horizon,
        "stride": config.stride,
        "max_samples": config.max_samples,
        "split": {"mode": config.split.mode, "test_fraction": config.split.test_fraction,
                  "seed": config.split.seed, "splits_dir": str(splits_dir)},
        "datasets": datasets,
        "all": {name: totals[name].to_json() for name in SPLITS},
    }  # fmt: skip
    write_json(output_dir / RESULTS_FILE, results)
    return results


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_offline_summary(results: dict) -> str:
    """Train and held-out columns side by side, one row per dataset plus the pooled row."""
    rows = [*results["datasets"], {"repo_id": "all", **results["all"]}]
    return format_table(
        ["dataset", "train n", "train MSE", "train cos", "test n", "test MSE", "test cos"],
        [
            [
                r["repo_id"],
                r["train"]["samples"],
                _fmt(r["train"]["mse"], ".4g"),
                _fmt(r["train"]["cosine"], ".3f"),
                r["test"]["samples"],
                _fmt(r["test"]["mse"], ".4g"),
                _fmt(r["test"]["cosine"], ".3f"),
            ]
            for r in rows
        ],
    )
