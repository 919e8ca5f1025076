"""Exact normalization statistics per embodiment group, read from parquet columns only (no video decode).

For each group the ``observation.state`` and ``action`` columns of all its datasets are concatenated
(optionally a uniform random subset of ``max_frames`` frames, without replacement, fixed by ``seed``) and
reduced exactly:

* ``mean``, population ``std`` (ddof=0, as openpi's ``RunningStats``), ``min``, ``max`` in float64;
* ``q01``, ``q99`` = ``np.quantile(x, [0.01, 0.99], axis=0, method="linear")`` on the float64 column
  (numpy's default, Hyndman & Fan type 7) — openpi approximates them with histograms; here they are exact.

Delta actions (:class:`DeltaStatsSpec`, for pipelines with ``DeltaActions``): the ``actions`` stats are then
those of what the model is trained on, as openpi computes its stats after its data transforms. Each frame
``t`` gives its whole action chunk (``action_horizon`` steps at ``control_fps``, cut exactly as the mixture
cuts it, :mod:`depi.datasets.mixture.chunks`, end-of-episode padding steps included as openpi's loader includes them)
minus the current ``observation.state`` on the masked dims (openpi's ``DeltaActions`` subtracts the current
state from every chunk step); the stats run over all (frame, chunk step) pairs, ``frames * H`` rows.
The ``state`` stats are unchanged.

Results are openpi ``norm_stats.json`` files, one per group under ``<output_dir>/<group>/`` (keys ``state``
and ``actions``), plus ``<output_dir>/stats_manifest.json`` recording the groups, their datasets and a content
hash of the inputs (parquet paths, sizes, mtimes, and the settings). A second run with the same hash reuses
the files instead of recomputing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from depi.constants import ACTION, ACTIONS, OBS_STATE, STATE
from depi.datasets.mixture.chunks import POSITION_EPS
from depi.transforms.norm_stats import NormStats, load_group_norm_stats, save_group_norm_stats

logger = logging.getLogger(__name__)

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
        num_frames: rows used (the dataset's, less held-out episodes).
        read_column: key (``observation.state`` / ``action``) -> (num_frames, D) array over the rows used.
        episode_lengths: int (E,) frames per episode used, in row order (needed for delta-action stats only).
        fps: recording rate, Hz (needed for delta-action stats only).
        held_out_episodes: ``episode_index`` values left out of ``read_column`` (part of the cache hash).
    """

    repo_id: str
    files: list[Path]
    num_frames: int
    read_column: Callable[[str], np.ndarray]
    episode_lengths: np.ndarray | None = None
    fps: float | None = None
    held_out_episodes: tuple[int, ...] = ()


@dataclass(frozen=True)
class DeltaStatsSpec:
    """Compute the ``actions`` stats on delta action chunks (see the module docstring).

    Attributes:
        mask: the ``DeltaActions`` mask: True for dims made relative to the state; may be shorter than the
            action dim (dims past it stay absolute).
        action_horizon: H, steps per action chunk.
        control_fps: rate of the chunk steps, Hz (the mixture's ``control_fps``).

    Raises:
        ValueError: empty mask, ``action_horizon < 1`` or ``control_fps <= 0``.
    """

    mask: tuple[bool, ...]
    action_horizon: int
    control_fps: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "mask", tuple(bool(m) for m in self.mask))
        if not self.mask or self.action_horizon < 1 or self.control_fps <= 0:
            raise ValueError(
                f"Delta-action stats need a non-empty mask, action_horizon >= 1 and control_fps > 0; found "
                f"mask={self.mask}, action_horizon={self.action_horizon}, control_fps={self.control_fps}."
            )

    def to_json(self) -> dict[str, object]:
        """JSON-able form (manifest and cache hash)."""
        return {
            "mask": list(self.mask),
            "action_horizon": self.action_horizon,
            "control_fps": self.control_fps,
        }


def delta_action_chunks(
    state: np.ndarray,
    action: np.ndarray,
    episode_lengths: np.ndarray,
    rows: np.ndarray,
    *,
    fps: float,
    spec: DeltaStatsSpec,
) -> np.ndarray:
    """The delta action chunks of some frames of one dataset, flattened to (frame, chunk step) rows.

    Chunk steps sit at fractional frame ``i + k * fps / control_fps`` of the frame's episode, linearly
    interpolated and clamped to the last frame past the episode's end, exactly as
    :func:`depi.datasets.mixture.chunks.resample_chunk` (vectorized here); the chunk is rounded to float32 as the
    mixture does, then ``state[i]`` is subtracted on the masked dims (openpi ``DeltaActions``).

    Args:
        state: (N, S) ``observation.state`` of all the dataset's rows.
        action: (N, A) ``action`` of all rows.
        episode_lengths: int (E,) frames per episode, summing to N.
        rows: int (R,) the rows (frames) whose chunks are wanted.
        fps: recording rate, Hz.
        spec: mask, horizon and control rate.

    Returns:
        float64 (R * H, A), row ``r * H + k`` = step k of frame ``rows[r]``'s delta chunk.

    Raises:
        ValueError: the mask is longer than the state or action dim, or the episode lengths do not sum to N.
    """
    dims = len(spec.mask)
    if dims > state.shape[1] or dims > action.shape[1]:
        raise ValueError(
            f"delta_action_mask covers {dims} dims but the state has {state.shape[1]} and the action "
            f"{action.shape[1]}; use a mask no longer than either (e.g. make_bool_mask(6, -1) for 7 dims)."
        )
    ends = np.cumsum(episode_lengths)
    if ends.size == 0 or int(ends[-1]) != action.shape[0]:
        raise ValueError(
            f"The episode lengths sum to {int(ends[-1]) if ends.size else 0} frames but the columns have "
            f"{action.shape[0]} rows; the episode table and the data files disagree (run depi-validate)."
        )
    rows = np.asarray(rows, dtype=np.int64)
    episode = np.searchsorted(ends, rows, side="right")
    start = ends[episode] - episode_lengths[episode]
    last = episode_lengths[episode][:, None] - 1  # (R, 1)
    steps = np.arange(spec.action_horizon, dtype=np.float64) * (fps / spec.control_fps)
    positions = (rows - start)[:, None] + steps[None, :]  # (R, H) fractional frames in the episode
    clipped = np.minimum(positions, last)
    lo = np.minimum(np.floor(clipped + POSITION_EPS).astype(np.int64), last)
    frac = np.clip(clipped - lo, 0.0, 1.0)
    frac[frac < POSITION_EPS] = 0.0
    hi = np.minimum(lo + 1, last)
    a = np.asarray(action, dtype=np.float64)
    a_lo, a_hi = a[start[:, None] + lo], a[start[:, None] + hi]  # (R, H, A)
    chunks = (a_lo + frac[..., None] * (a_hi - a_lo)).astype(np.float32).astype(np.float64)
    keep = np.asarray(spec.mask, dtype=np.float64)
    chunks[..., :dims] -= (np.asarray(state, dtype=np.float64)[rows, :dims] * keep)[:, None, :]
    return chunks.reshape(-1, a.shape[1])


def input_hash(groups: dict[str, list[StatsInput]], settings: dict[str, object]) -> str:
    """sha256 of the group layout, each data file's path / size / mtime (ns), held-out episodes, ``settings``."""
    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for group in sorted(groups):
        h.update(group.encode())
        for item in groups[group]:
            h.update(item.repo_id.encode())
            if item.held_out_episodes:  # absent for whole datasets: their earlier hashes stay valid
                h.update(f"held_out={list(item.held_out_episodes)}".encode())
            for path in item.files:
                st = path.stat()
                h.update(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()


def group_stats(
    items: Sequence[StatsInput],
    *,
    max_frames: int | None = None,
    seed: int = 0,
    delta: DeltaStatsSpec | None = None,
) -> dict[str, NormStats]:
    """Exact ``state`` / ``actions`` stats of one group (see :func:`array_stats`).

    With ``delta``, the ``actions`` stats are over the (subsampled) frames' delta action chunks
    (:func:`delta_action_chunks`); ``max_frames`` still counts frames, each giving ``action_horizon`` rows.

    Raises:
        ValueError: a dataset's column has the wrong number of rows or a different dim than the others
            (the message names the dataset and the key); with ``delta``, a dataset without
            ``episode_lengths`` / ``fps`` or a mask longer than its dims.
    """
    rows = subsample_rows([it.num_frames for it in items], max_frames, seed)
    parts: dict[str, list[np.ndarray]] = {OBS_STATE: [], ACTION: []}
    for item, picked in zip(items, rows, strict=True):  # one dataset at a time: its source opens once
        full: dict[str, np.ndarray] = {}
        for key, columns in parts.items():
            column = full[key] = item.read_column(key)
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
        if delta is not None:
            parts[ACTION][-1] = _delta_rows(item, full, picked, delta)
        for key, columns in parts.items():
            columns[-1] = _finite_rows(columns[-1], item.repo_id, key)
    out = {}
    for key, name in ((OBS_STATE, STATE), (ACTION, ACTIONS)):
        try:
            out[name] = array_stats(np.concatenate(parts.pop(key), axis=0))
        except ValueError as err:
            raise ValueError(f"Group of {[it.repo_id for it in items][:5]}, key {key!r}: {err}") from err
    return out


def _finite_rows(rows: np.ndarray, repo_id: str, key: str) -> np.ndarray:
    """``rows`` without those holding NaN / inf, with a warning naming the dataset (the mixture replaces such
    frames when they are sampled, so the stats describe what training sees)."""
    finite = np.isfinite(rows).all(axis=1)
    if not finite.all():
        logger.warning(
            "%s: %d of %d rows of %r hold NaN or inf; left out of the norm stats (the frames are replaced when "
            "sampled). Run depi-validate on the dataset.", repo_id, int((~finite).sum()), len(rows), key,
        )  # fmt: skip
        return rows[finite]
    return rows


def _delta_rows(
    item: StatsInput, full: dict[str, np.ndarray], picked: np.ndarray | None, delta: DeltaStatsSpec
) -> np.ndarray:
    if item.episode_lengths is None or item.fps is None:
        raise ValueError(
            f"{item.repo_id}: delta-action stats need the dataset's episode_lengths and fps; build the "
            "StatsInput with them (depi.datasets.mixture.stats_cli.group_inputs does)."
        )
    rows = np.arange(item.num_frames) if picked is None else picked
    try:
        return delta_action_chunks(
            full[OBS_STATE],
            full[ACTION],
            np.asarray(item.episode_lengths, dtype=np.int64),
            rows,
            fps=item.fps,
            spec=delta,
        )
    except ValueError as err:
        raise ValueError(f"{item.repo_id}: {err}") from err


def compute_group_stats(
    groups: dict[str, list[StatsInput]],
    output_dir: str | Path,
    *,
    max_frames: int | None = None,
    seed: int = 0,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
    delta: DeltaStatsSpec | None = None,
) -> dict[str, dict[str, NormStats]]:
    """Compute (or reuse from the cache) the stats of every group and write them openpi-style.

    Args:
        groups: group id (e.g. ``so100/s6_a6``) -> its datasets.
        output_dir: folder receiving ``<group>/norm_stats.json`` and ``stats_manifest.json``.
        max_frames: per-group cap on frames (uniform subsample), None for all.
        seed: subsample seed.
        force: recompute even when the manifest's hash matches.
        progress: called with each group id after it is done (e.g. a progress bar update).
        delta: compute the ``actions`` stats on delta action chunks (pipelines with ``DeltaActions``);
            None: on the recorded per-frame actions. Part of the cache hash and the manifest.

    Returns:
        group id -> {"state": NormStats, "actions": NormStats}.
    """
    output_dir = Path(output_dir)
    settings = {"max_frames": max_frames, "seed": seed, "delta": None if delta is None else delta.to_json()}
    digest = input_hash(groups, settings)
    manifest_path = output_dir / MANIFEST_NAME
    if not force and manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("input_hash") == digest:
            return {group: load_group_norm_stats(output_dir, group) for group in manifest["groups"]}
    results = {}
    for group, items in groups.items():
        results[group] = group_stats(items, max_frames=max_frames, seed=seed, delta=delta)
        save_group_norm_stats(output_dir, group, results[group])
        if progress is not None:
            progress(group)
    manifest = {
        "input_hash": digest,
        "max_frames": max_frames,
        "seed": seed,
        "delta": settings["delta"],
        "groups": {group: [it.repo_id for it in items] for group, items in groups.items()},
        "frames": {group: int(sum(it.num_frames for it in items)) for group, items in groups.items()},
    }
    output_dir.mkdir(parents=True, exist_ok=True)
    tmp = manifest_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2))
    tmp.replace(manifest_path)
    return results
