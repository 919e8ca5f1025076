"""Per-episode feature statistics and their exact aggregation, in the schema LeRobot writes.

Schema (lerobot 0.6 ``datasets/compute_stats.py``): for each feature a dict of ``min``, ``max``, ``mean``, ``std``
(population std), ``count`` (shape ``(1,)``, number of samples) and the quantiles ``q01``, ``q10``, ``q50``,
``q90``, ``q99``. Numeric features have stats of the feature's shape (``(D,)``; scalars ``(1,)``). Camera
features (``image`` / ``video``) have per-channel stats of shape ``(3, 1, 1)`` in ``[0, 1]`` (uint8 / 255), computed
on a sample of the episode's frames (``sample_indices``) spatially downsampled to about 150 px, and ``count`` is
the number of sampled frames.

Aggregation across episodes (``aggregate_stats``) is exact for min/max/mean/std: the mean is count-weighted and
the variance uses the parallel-variance identity ``var = sum(n_i * (var_i + (mean_i - mean)^2)) / sum(n_i)``
(Chan et al., 1979). Quantiles cannot be merged exactly from summaries; like lerobot they are averaged weighted
by count, which is an approximation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

QUANTILES: tuple[float, ...] = (0.01, 0.10, 0.50, 0.90, 0.99)
QUANTILE_KEYS: tuple[str, ...] = tuple(f"q{round(q * 100):02d}" for q in QUANTILES)
STAT_KEYS: tuple[str, ...] = ("min", "max", "mean", "std", "count", *QUANTILE_KEYS)
CAMERA_DTYPES = ("image", "video")

FeatureStats = dict[str, np.ndarray]


def estimate_num_samples(
    num_frames: int, min_samples: int = 100, max_samples: int = 10_000, power: float = 0.75
) -> int:
    """How many frames of an episode to sample for camera stats: ``clip(num_frames ** 0.75, 100, 10000)``,
    never more than ``num_frames`` (lerobot's ``estimate_num_samples``)."""
    lower = min(min_samples, num_frames)
    return max(lower, min(int(num_frames**power), max_samples))


def sample_indices(num_frames: int) -> np.ndarray:
    """Evenly spaced frame indices used for camera stats; int64 (S,), first 0 and last ``num_frames - 1``."""
    num = estimate_num_samples(num_frames)
    return np.round(np.linspace(0, num_frames - 1, num)).astype(np.int64)


def downsample_for_stats(image: np.ndarray, target_size: int = 150, max_size: int = 300) -> np.ndarray:
    """Stride-downsample an HWC image whose longer side is >= ``max_size`` px to about ``target_size`` px
    (lerobot's ``auto_downsample_height_width``); smaller images are returned unchanged. uint8 (h, w, C)."""
    height, width = image.shape[:2]
    if max(height, width) < max_size:
        return image
    factor = int(max(height, width) / target_size)
    return image[::factor, ::factor]


def numeric_stats(values: np.ndarray) -> FeatureStats:
    """Stats over axis 0 of a numeric column.

    Args:
        values: (N, ...) numeric array, N >= 1 frames; a 1-D array of N scalars gives stats of shape (1,).

    Returns:
        ``min``/``max``/``mean``/``std``/quantiles as float64 of shape ``values.shape[1:]`` (or (1,)), ``count``
        int64 (1,).

    Raises:
        ValueError: ``values`` is empty.
    """
    array = np.asarray(values, dtype=np.float64)
    if array.shape[0] == 0:
        raise ValueError("cannot compute stats of an empty episode (0 frames)")
    if array.ndim == 1:
        array = array[:, None]
    stats = {
        "min": array.min(axis=0),
        "max": array.max(axis=0),
        "mean": array.mean(axis=0),
        "std": array.std(axis=0),
        "count": np.array([array.shape[0]], dtype=np.int64),
    }
    quantiles = np.quantile(array, QUANTILES, axis=0)
    for key, value in zip(QUANTILE_KEYS, quantiles, strict=True):
        stats[key] = value
    return stats


def camera_stats(frames: np.ndarray) -> FeatureStats:
    """Per-channel stats of sampled camera frames, in [0, 1].

    uint8 frames take 256 distinct values, so the stats come from one histogram per channel (``np.bincount``) instead
    of sorting float copies of every pixel: min / max are the extreme non-empty bins, mean and population std
    the count-weighted moments of ``v / 255``, and each quantile the ``method="linear"`` interpolation of
    ``np.quantile`` between the two order statistics around ``q * (P - 1)`` (P pixels per channel), found in the
    cumulative counts. They equal the stats of ``frames / 255`` as float64 computed with ``np.quantile`` /
    ``np.mean`` / ``np.std`` up to float64 rounding (summation order). Other dtypes take that direct path.

    Args:
        frames: uint8 (S, H, W, C) sampled (and downsampled) frames, S >= 1.

    Returns:
        ``min``/``max``/``mean``/``std``/quantiles float64 (C, 1, 1); ``count`` int64 (1,) = S.

    Raises:
        ValueError: no frames.
    """
    frames = np.asarray(frames)
    if frames.shape[0] == 0 or frames.size == 0:
        raise ValueError("cannot compute camera stats of an episode without sampled frames")
    channels = frames.shape[-1]
    if frames.dtype != np.uint8:
        flat = (frames.astype(np.float64) / 255.0).reshape(-1, channels)
        stats = {k: v.reshape(channels, 1, 1) for k, v in numeric_stats(flat).items() if k != "count"}
    else:
        stats = {k: v.reshape(channels, 1, 1) for k, v in _uint8_channel_stats(frames.reshape(-1, channels)).items()}
    stats["count"] = np.array([frames.shape[0]], dtype=np.int64)
    return stats


def _uint8_channel_stats(pixels: np.ndarray) -> FeatureStats:
    """Stats of ``pixels / 255`` per column from histograms; uint8 (P, C) -> float64 (C,) per stat (no count)."""
    num = pixels.shape[0]
    levels = np.arange(256, dtype=np.float64) / 255.0
    counts = np.stack([np.bincount(pixels[:, c], minlength=256) for c in range(pixels.shape[1])])  # (C, 256)
    mean = counts @ levels / num
    std = np.sqrt((counts * (levels[None, :] - mean[:, None]) ** 2).sum(axis=1) / num)
    occupied = counts > 0
    stats = {
        "min": levels[occupied.argmax(axis=1)],
        "max": levels[255 - occupied[:, ::-1].argmax(axis=1)],
        "mean": mean,
        "std": std,
    }
    cumulative = np.cumsum(counts, axis=1)  # cumulative[c, v] = pixels of channel c with value <= v
    for key, q in zip(QUANTILE_KEYS, QUANTILES, strict=True):
        position = q * (num - 1)  # np.quantile's "linear" virtual index
        below = int(np.floor(position))
        gamma = position - below
        above = min(below + 1, num - 1)
        low = levels[[np.searchsorted(cumulative[c], below, side="right") for c in range(len(counts))]]
        high = levels[[np.searchsorted(cumulative[c], above, side="right") for c in range(len(counts))]]
        # numpy's _lerp: a + (b - a) * t, computed from b for t >= 0.5
        stats[key] = np.where(gamma >= 0.5, high - (high - low) * (1 - gamma), low + (high - low) * gamma)
    return stats


def episode_stats(
    columns: Mapping[str, np.ndarray], camera_frames: Mapping[str, np.ndarray], features: Mapping[str, dict]
) -> dict[str, FeatureStats]:
    """Stats of one episode for every numeric and camera feature.

    Args:
        columns: feature key -> (N, ...) numeric array of the episode's frames (incl. timestamp, index, ...).
        camera_frames: camera key -> uint8 (S, h, w, 3) frames at ``sample_indices(N)``, downsampled.
        features: the dataset's ``info.json`` features (dtype decides numeric vs camera; strings are skipped).

    Returns:
        feature key -> stats dict (see module docstring).
    """
    stats: dict[str, FeatureStats] = {}
    for key, feature in features.items():
        if feature["dtype"] in CAMERA_DTYPES:
            stats[key] = camera_stats(camera_frames[key])
        elif feature["dtype"] not in ("string", "language") and key in columns:
            stats[key] = numeric_stats(columns[key])
    return stats


def aggregate_feature_stats(stats_list: Sequence[FeatureStats]) -> FeatureStats:
    """Merge one feature's stats from several episodes (exact for min/max/mean/std, see module docstring)."""
    counts = np.stack([np.asarray(s["count"], dtype=np.float64).reshape(()) for s in stats_list])  # (E,)
    means = np.stack([np.asarray(s["mean"], dtype=np.float64) for s in stats_list])  # (E, ...)
    variances = np.stack([np.asarray(s["std"], dtype=np.float64) ** 2 for s in stats_list])
    total = counts.sum()
    weights = counts.reshape(-1, *([1] * (means.ndim - 1)))
    mean = (means * weights).sum(axis=0) / total
    variance = ((variances + (means - mean) ** 2) * weights).sum(axis=0) / total
    merged = {
        "min": np.min(np.stack([s["min"] for s in stats_list]), axis=0),
        "max": np.max(np.stack([s["max"] for s in stats_list]), axis=0),
        "mean": mean,
        "std": np.sqrt(variance),
        "count": np.array([int(total)], dtype=np.int64),
    }
    for key in QUANTILE_KEYS:
        if all(key in s for s in stats_list):
            merged[key] = (
                np.stack([np.asarray(s[key], dtype=np.float64) for s in stats_list]) * weights
            ).sum(0) / total
    return merged


def aggregate_stats(stats_list: Sequence[Mapping[str, FeatureStats]]) -> dict[str, FeatureStats]:
    """Merge per-episode (or per-dataset) stats; the result has the union of all feature keys."""
    keys = sorted({key for stats in stats_list for key in stats})
    return {key: aggregate_feature_stats([s[key] for s in stats_list if key in s]) for key in keys}


def stats_to_json(stats: Mapping[str, FeatureStats]) -> dict[str, dict[str, list]]:
    """Nested lists for ``meta/stats.json`` (the same nesting lerobot writes)."""
    return {
        key: {name: np.asarray(value).tolist() for name, value in ft.items()} for key, ft in stats.items()
    }


def stats_from_json(data: Mapping[str, Mapping[str, list]]) -> dict[str, FeatureStats]:
    """Inverse of ``stats_to_json``: arrays (``count`` as int64, the rest float64)."""
    return {
        key: {
            name: np.asarray(value, dtype=np.int64 if name == "count" else np.float64)
            for name, value in ft.items()
        }
        for key, ft in data.items()
    }


def flatten_episode_stats(stats: Mapping[str, FeatureStats]) -> dict[str, list]:
    """Columns ``stats/<key>/<stat>`` of a ``meta/episodes`` row (nested lists, as lerobot stores them)."""
    return {
        f"stats/{key}/{name}": np.asarray(value).tolist()
        for key, ft in stats.items()
        for name, value in ft.items()
    }


def unflatten_episode_stats(row: Mapping[str, object]) -> dict[str, FeatureStats]:
    """Read the ``stats/<key>/<stat>`` columns of one ``meta/episodes`` row back into stats arrays.

    Feature keys may contain ``/``; the stat name is the last path component.
    """
    stats: dict[str, FeatureStats] = {}
    for column, value in row.items():
        if not column.startswith("stats/") or value is None:
            continue
        key, name = column[len("stats/") :].rsplit("/", 1)
        stats.setdefault(key, {})[name] = np.asarray(value, dtype=np.int64 if name == "count" else np.float64)
    return stats
