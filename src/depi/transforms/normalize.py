"""Per-embodiment normalization of ``state`` and ``actions`` (z-score or quantile), and its inverse.

Formulas (openpi ``transforms.Normalize`` / ``Unnormalize``):

* z-score: ``y = (x - mean) / (std + 1e-6)``; inverse ``x = y * (std + 1e-6) + mean``.
* quantile: ``y = (x - q01) / (q99 - q01 + 1e-6) * 2 - 1``, so ``q01 -> -1`` and ``q99 -> +1`` (up to the
  1e-6); inverse ``x = (y + 1) / 2 * (q99 - q01 + 1e-6) + q01``. Optional clipping of ``y`` to [-1, 1].

Stats are chosen per sample by its ``embodiment`` key among ``norm_stats[embodiment][key]``. Stats of D dims
normalize the first D dims of a feature that may already be padded (to 32); the padded dims are left as they
are (zeros stay zeros).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from depi.constants import ACTIONS, EMBODIMENT, STATE
from depi.transforms.base import (
    Array,
    Sample,
    Transform,
    as_float_array,
    as_like,
    copy_array,
    register_transform,
)
from depi.transforms.norm_stats import NormStats

NORM_MODES = ("zscore", "quantile")
EPS = 1e-6
_STATS_HINT = (
    "compute them with `depi-stats --output_dir=<assets dir>` over datasets of that embodiment group "
    "(see `depi-stats --help`) and pass them in norm_stats"
)


class MissingNormStatsError(LookupError):
    """The stats a sample needs (its embodiment, or a key of it) are not in the transform's ``norm_stats``."""


def _check_stats(
    norm_stats: Mapping[str, Mapping[str, NormStats]], mode: str, owner: str
) -> dict[str, dict[str, NormStats]]:
    if mode not in NORM_MODES:
        raise ValueError(f"{owner}: mode must be one of {NORM_MODES}, found '{mode}'.")
    if not norm_stats:
        raise ValueError(
            f"{owner}: norm_stats is empty; it needs at least one embodiment group ({_STATS_HINT})."
        )
    checked: dict[str, dict[str, NormStats]] = {}
    for embodiment, group in norm_stats.items():
        checked[embodiment] = {}
        for key, stats in group.items():
            if not isinstance(stats, NormStats):
                raise TypeError(
                    f"{owner}: norm_stats['{embodiment}']['{key}'] must be a NormStats, "
                    f"found {type(stats).__name__}."
                )
            if mode == "quantile" and not stats.has_quantiles:
                raise ValueError(
                    f"{owner}: quantile normalization needs q01/q99, but norm_stats['{embodiment}']['{key}'] "
                    "has only mean/std. Recompute the stats with `depi-stats` (it writes q01/q99) or use "
                    "norm_mode='zscore'."
                )
            checked[embodiment][key] = stats
    return checked


def _embodiment_of(sample: Sample, default: str | None, owner: str) -> str:
    value: Any = sample.get(EMBODIMENT, default)
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if value is None:
        raise KeyError(
            f"{owner}: the sample has no '{EMBODIMENT}' key and no default_embodiment is set; "
            "add the embodiment group id to the sample or set default_embodiment."
        )
    if not isinstance(value, str):
        raise TypeError(
            f"{owner}: sample['{EMBODIMENT}'] must be one group id (str), found {type(value).__name__}; "
            "apply the transforms per sample, before collation."
        )
    return value


def _apply(
    sample: Sample,
    norm_stats: Mapping[str, Mapping[str, NormStats]],
    keys: tuple[str, ...],
    default_embodiment: str | None,
    owner: str,
    fn: Callable[[Array, NormStats], Array],
) -> Sample:
    embodiment = _embodiment_of(sample, default_embodiment, owner)
    if embodiment not in norm_stats:
        raise MissingNormStatsError(
            f"{owner}: normalization stats not found for embodiment '{embodiment}'; stats are available for "
            f"{sorted(norm_stats)}. To fix, {_STATS_HINT}."
        )
    group = norm_stats[embodiment]
    out = dict(sample)
    for key in keys:
        if key not in sample:
            continue
        if key not in group:
            raise MissingNormStatsError(
                f"{owner}: the stats of embodiment '{embodiment}' have no '{key}' entry (found {sorted(group)}); "
                f"to fix, {_STATS_HINT}."
            )
        stats = group[key]
        x = as_float_array(sample[key], key)
        if x.shape[-1] < stats.dim:
            raise ValueError(
                f"{owner}: sample['{key}'] has {x.shape[-1]} dims but the '{embodiment}' stats have {stats.dim}; "
                "the stats were computed for another robot layout (check the embodiment group id)."
            )
        y = copy_array(x)
        y[..., : stats.dim] = fn(x[..., : stats.dim], stats)
        out[key] = y
    return out


def _stats_to_config(norm_stats: Mapping[str, Mapping[str, NormStats]]) -> dict[str, dict[str, dict]]:
    return {emb: {key: s.to_dict() for key, s in group.items()} for emb, group in norm_stats.items()}


def _stats_from_config(data: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, NormStats]]:
    return {
        emb: {key: NormStats.from_dict(s, source=f"norm_stats.{emb}.{key}") for key, s in group.items()}
        for emb, group in data.items()
    }


@dataclass(frozen=True)
class _NormalizeBase(Transform):
    norm_stats: Mapping[str, Mapping[str, NormStats]]
    mode: str = "quantile"
    keys: tuple[str, ...] = (STATE, ACTIONS)
    default_embodiment: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "norm_stats", _check_stats(self.norm_stats, self.mode, type(self).__name__))
        object.__setattr__(self, "keys", tuple(self.keys))
        if self.default_embodiment is not None and self.default_embodiment not in self.norm_stats:
            raise MissingNormStatsError(
                f"{type(self).__name__}: default_embodiment '{self.default_embodiment}' has no stats; "
                f"available: {sorted(self.norm_stats)}."
            )

    def to_config(self) -> dict[str, Any]:
        config = super().to_config()
        config["norm_stats"] = _stats_to_config(self.norm_stats)
        return config

    @classmethod
    def from_config(cls, params: Mapping[str, Any]) -> Transform:
        params = dict(params)
        params["norm_stats"] = _stats_from_config(params.get("norm_stats", {}))
        if "keys" in params:
            params["keys"] = tuple(params["keys"])
        return super().from_config(params)


@register_transform("normalize")
@dataclass(frozen=True)
class Normalize(_NormalizeBase):
    """Normalize ``state`` and ``actions`` with the stats of the sample's embodiment group.

    Sample keys: reads ``embodiment`` (str) and each of ``keys`` present, float (..., D_pad) with
    ``D_pad >= D``; writes those keys with the first D dims normalized (module docstring for formulas).

    Attributes:
        norm_stats: embodiment group id -> canonical key -> :class:`NormStats`.
        mode: ``"quantile"`` (openpi's pi0.5 default) or ``"zscore"`` (openpi's pi0 default).
        keys: Sample keys to normalize; keys absent from a sample (``actions`` at serving) are skipped.
        default_embodiment: Group used when a sample has no ``embodiment`` key (serving one robot).
        clip: Clip quantile-normalized values to [-1, 1] (values outside q01..q99 otherwise reach past ±1).

    Raises:
        ValueError: Unknown mode; quantile mode with stats lacking q01/q99 (at construction).
        MissingNormStatsError: No stats for the sample's embodiment or for one of its keys (at call).
        ValueError: The sample's feature has fewer dims than the stats.
    """

    clip: bool = False

    def __call__(self, sample: Sample) -> Sample:
        return _apply(sample, self.norm_stats, self.keys, self.default_embodiment, "Normalize", self._forward)

    def _forward(self, x: Array, stats: NormStats) -> Array:
        if self.mode == "zscore":
            return (x - as_like(stats.mean, x)) / (as_like(stats.std, x) + EPS)
        q01, q99 = as_like(stats.q01, x), as_like(stats.q99, x)
        y = (x - q01) / (q99 - q01 + EPS) * 2.0 - 1.0
        return y.clip(-1.0, 1.0) if self.clip else y


@register_transform("unnormalize")
@dataclass(frozen=True)
class Unnormalize(_NormalizeBase):
    """Inverse of :class:`Normalize` (no clipping), for the model's output ``actions``.

    The output sample must carry the ``embodiment`` of the input (or ``default_embodiment`` is used). Dims
    past the stats' D (padding) are returned unchanged.

    Attributes:
        norm_stats, mode, default_embodiment: As :class:`Normalize`; use the same values.
        keys: Sample keys to unnormalize; by default only ``actions``, so the raw ``state`` that
            :class:`~depi.transforms.actions.AbsoluteActions` adds back passes through.

    Raises:
        As :class:`Normalize`.
    """

    keys: tuple[str, ...] = (ACTIONS,)

    def __call__(self, sample: Sample) -> Sample:
        return _apply(
            sample, self.norm_stats, self.keys, self.default_embodiment, "Unnormalize", self._inverse
        )

    def _inverse(self, y: Array, stats: NormStats) -> Array:
        if self.mode == "zscore":
            return y * (as_like(stats.std, y) + EPS) + as_like(stats.mean, y)
        q01, q99 = as_like(stats.q01, y), as_like(stats.q99, y)
        return (y + 1.0) / 2.0 * (q99 - q01 + EPS) + q01
