"""Exact normalization statistics per embodiment group, read from parquet columns only (no video decode).

For each group the ``observation.state`` and ``action`` columns of all its datasets are concatenated
(optionally a uniform random subset of ``max_frames`` frames, without replacement, fixed by ``seed``) and
reduced exactly:

* ``mean``, population ``std`` (ddof=0, as openpi's ``RunningStats``), ``min``, ``max`` in float64;
* ``q01``, ``q99`` = ``np.quantile(x, [0.01, 0.99], axis=0, method="linear")`` on the float64 column
  (numpy's default, Hyndman & Fan type 7) — openpi approximates them with histograms; here they are exact.

Results are openpi ``norm_stats.json`` files, one per group under ``<output_dir>/<group>/`` (keys ``state``
and ``actions``), plus ``<output_dir>/stats_manifest.json`` recording the groups, their datasets and a content
hash of the inputs (parquet paths, sizes, mtimes, and the settings). A second run with the same hash reuses
the files instead of recomputing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from depi.constants import ACTION, ACTIONS, OBS_STATE, STATE
from depi.transforms.norm_stats import NormStats, load_group_norm_stats, save_group_norm_stats

MANIFEST_NAME = "stats_manifest.json"
QUANTILES = (0.01, 0.99)


def array_stats(values: np.ndarray) -> NormStats:
    """Exact statistics of one feature (formulas in the module docstring).

    Args:
        values: (T, D) frames x dims, any float dtype.

    Returns:
        float32 (D,) mean, std, q01, q99, min, max.

    Raises:
        ValueError: ``values`` is not 2-D, is empty, or holds NaN / inf.
    """
    if values.ndim != 2 or values.shape[0] == 0:
        raise ValueError(f"Statistics need a non-empty (frames, dims) array, found shape {values.shape}.")
    x = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        bad = np.argwhere(~np.isfinite(x))[0]
        raise ValueError(f"Non-finite value at frame {bad[0]}, dim {bad[1]}: {x[bad[0], bad[1]]}.")
    q01, q99 = np.quantile(x, QUANTILES, axis=0, method="linear")
    return NormStats(
        mean=x.mean(axis=0), std=x.std(axis=0), q01=q01, q99=q99, min=x.min(axis=0), max=x.max(axis=0)
    )


def subsample_rows(num_rows: Sequence[int], max_frames: int | None, seed: int) -> list[np.ndarray | None]:
    """Pick a uniform random subset of at most ``max_frames`` rows across datasets (without replacement).

    Args:
        num_rows: frames per dataset of one group.
        max_frames: cap on the total, or None for every frame.
        seed: seed of the subset.

    Returns:
        Per dataset, sorted int64 row indices, or None meaning all rows.
    """
    total = int(sum(num_rows))
    if max_frames is None or total <= max_frames:
        return [None] * len(num_rows)
    picks = np.sort(np.random.default_rng(seed).choice(total, size=max_frames, replace=False))
    bounds = np.concatenate([[0], np.cumsum(num_rows)])
    return [picks[(picks >= lo) & (picks < hi)] - lo for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]


@dataclass
class StatsInput:
    """One dataset's contribution to a group.

    Attributes:
        repo_id: dataset id (for the manifest and errors).
        files: the dataset's parquet data files (hashed for the cache).
        num_frames: rows in the dataset.
        read_column: key (``observation.state`` / ``action``) -> (num_frames, D) array over all rows.
    """

    repo_id: str
    files: list[Path]
    num_frames: int
    read_column: Callable[[str], np.ndarray]


def input_hash(groups: dict[str, list[StatsInput]], settings: dict[str, object]) -> str:
    """sha256 of the group layout, each data file's path / size / mtime (ns), and ``settings``."""
    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for group in sorted(groups):
        h.update(group.encode())
        for item in groups[group]:
            h.update(item.repo_id.encode())
            for path in item.files:
                st = path.stat()
                h.update(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()


def group_stats(
    items: Sequence[StatsInput], *, max_frames: int | None = None, seed: int = 0
) -> dict[str, NormStats]:
    """Exact ``state`` / ``actions`` stats of one group (see :func:`array_stats`).

    Raises:
        ValueError: a dataset's column has the wrong number of rows or a different dim than the others
            (the message names the dataset and the key).
    """
    rows = subsample_rows([it.num_frames for it in items], max_frames, seed)
    parts: dict[str, list[np.ndarray]] = {OBS_STATE: [], ACTION: []}
    for item, picked in zip(items, rows, strict=True):  # one dataset at a time: its source opens once
        for key, columns in parts.items():
            column = item.read_column(key)
            if column.ndim != 2 or column.shape[0] != item.num_frames:
                raise ValueError(
                    f"{item.repo_id}: column {key!r} has shape {column.shape}, "
                    f"expected ({item.num_frames}, D)."
                )
            if columns and column.shape[1] != columns[0].shape[1]:
                raise ValueError(
                    f"{item.repo_id}: {key!r} has {column.shape[1]} dims, the group's other datasets have "
                    f"{columns[0].shape[1]}; group datasets by dims (--dataset.embodiment_key)."
                )
            columns.append(np.asarray(column if picked is None else column[picked], dtype=np.float64))
    out = {}
    for key, name in ((OBS_STATE, STATE), (ACTION, ACTIONS)):
        try:
            out[name] = array_stats(np.concatenate(parts.pop(key), axis=0))
        except ValueError as err:
            raise ValueError(f"Group of {[it.repo_id for it in items][:5]}, key {key!r}: {err}") from err
    return out


def compute_group_stats(
    groups: dict[str, list[StatsInput]],
    output_dir: str | Path,
    *,
    max_frames: int | None = None,
    seed: int = 0,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> dict[str, dict[str, NormStats]]:
    """Compute (or reuse from the cache) the stats of every group and write them openpi-style.

    Args:
        groups: group id (e.g. ``so100/s6_a6``) -> its datasets.
        output_dir: folder receiving ``<group>/norm_stats.json`` and ``stats_manifest.json``.
        max_frames: per-group cap on frames (uniform subsample), None for all.
        seed: subsample seed.
        force: recompute even when the manifest's hash matches.
        progress: called with each group id after it is done (e.g. a progress bar update).

    Returns:
        group id -> {"state": NormStats, "actions": NormStats}.
    """
    output_dir = Path(output_dir)
    digest = input_hash(groups, {"max_frames": max_frames, "seed": seed})
    manifest_path = output_dir / MANIFEST_NAME
    if not force and manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("input_hash") == digest:
            return {group: load_group_norm_stats(output_dir, group) for group in manifest["groups"]}
    results = {}
    for group, items in groups.items():
        results[group] = group_stats(items, max_frames=max_frames, seed=seed)
        save_group_norm_stats(output_dir, group, results[group])
        if progress is not None:
            progress(group)
    manifest = {
        "input_hash": digest,
        "max_frames": max_frames,
        "seed": seed,
        "groups": {group: [it.repo_id for it in items] for group, items in groups.items()},
        "frames": {group: int(sum(it.num_frames for it in items)) for group, items in groups.items()},
    }
    output_dir.mkdir(parents=True, exist_ok=True)
    tmp = manifest_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2))
    tmp.replace(manifest_path)
    return results
