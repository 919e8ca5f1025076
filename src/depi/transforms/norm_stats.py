"""Normalization statistics in openpi's ``norm_stats.json`` schema.

A stats file holds one :class:`NormStats` per canonical key (``state``, ``actions``)::

    {"norm_stats": {"state":   {"mean": [...], "std": [...], "q01": [...], "q99": [...]},
                    "actions": {"mean": [...], "std": [...], "q01": [...], "q99": [...]}}}

This is the layout openpi's ``openpi.shared.normalize.save``/``load`` use (one file per asset id under
``assets/<asset_id>/norm_stats.json``), so files move between depi and openpi unchanged. depi may add the
optional ``min``/``max`` fields, which openpi ignores.

Stats belong to an embodiment group: :func:`save_group_norm_stats` / :func:`load_group_norm_stats` keep
one ``<assets_dir>/<group_id>/norm_stats.json`` per group, like openpi's assets folder.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from depi.fileio import write_json

NORM_STATS_FILENAME = "norm_stats.json"
_REQUIRED_FIELDS = ("mean", "std")
_OPTIONAL_FIELDS = ("q01", "q99", "min", "max")
_CREATE_HINT = (
    "compute the stats with `depi-stats --output_dir=<assets dir>` and the training's dataset flags "
    "(see `depi-stats --help`), or copy the `norm_stats.json` of the checkpoint you fine-tune from"
)


@dataclass(frozen=True, eq=False)
class NormStats:
    """Per-dimension statistics of one feature (``state`` or ``actions``).

    All arrays are float32 with shape ``(D,)``, where ``D`` is the feature's real (unpadded) dimension.

    Attributes:
        mean: Mean over all frames.
        std: Standard deviation over all frames (population std, as openpi's ``RunningStats``).
        q01: 1st percentile, used by quantile normalization (pi0.5's default in openpi). ``None`` if unknown.
        q99: 99th percentile. ``None`` if unknown.
        min: Minimum, an optional extra field openpi does not use.
        max: Maximum, an optional extra field openpi does not use.

    Raises:
        ValueError: An array is not 1-D, not finite, or its length differs from ``mean``'s; or only one of
            ``q01``/``q99`` (or ``min``/``max``) is given.
    """

    mean: np.ndarray
    std: np.ndarray
    q01: np.ndarray | None = None
    q99: np.ndarray | None = None
    min: np.ndarray | None = None
    max: np.ndarray | None = None

    def __post_init__(self) -> None:
        dim = None
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is None:
                continue
            array = np.asarray(value, dtype=np.float32)
            if array.ndim != 1:
                raise ValueError(
                    f"NormStats.{field.name} must be a 1-D array of shape (D,), found shape {array.shape}."
                )
            if not np.all(np.isfinite(array)):
                raise ValueError(f"NormStats.{field.name} holds NaN or infinite values: {array.tolist()}.")
            if dim is None:
                dim = array.shape[0]
            elif array.shape[0] != dim:
                raise ValueError(
                    f"NormStats.{field.name} has {array.shape[0]} dims but mean has {dim}; "
                    "every field must describe the same feature."
                )
            object.__setattr__(self, field.name, array)
        for low, high in (("q01", "q99"), ("min", "max")):
            if (getattr(self, low) is None) != (getattr(self, high) is None):
                raise ValueError(f"NormStats needs both {low} and {high} or neither; only one was given.")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NormStats):
            return NotImplemented
        for field in dataclasses.fields(self):
            a, b = getattr(self, field.name), getattr(other, field.name)
            if (a is None) != (b is None) or (a is not None and not np.array_equal(a, b)):
                return False
        return True

    __hash__ = None  # type: ignore[assignment]  # holds mutable arrays

    @property
    def dim(self) -> int:
        """Number of real dimensions ``D``."""
        return int(self.mean.shape[0])

    @property
    def has_quantiles(self) -> bool:
        """True when ``q01`` and ``q99`` are present."""
        return self.q01 is not None

    def to_dict(self) -> dict[str, list[float]]:
        """JSON-able dict in openpi's field names; ``None`` fields are left out."""
        out: dict[str, list[float]] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is not None:
                out[field.name] = [float(v) for v in value]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, object], *, source: str = "<dict>") -> NormStats:
        """Build from a dict in openpi's schema.

        Args:
            data: ``{"mean": [...], "std": [...], "q01"?: [...], "q99"?: [...], "min"?: [...], "max"?: [...]}``.
            source: Where ``data`` came from (file and key), used in error messages.

        Raises:
            ValueError: A required field is missing, a field is not a list of numbers, or fields disagree.
        """
        if not isinstance(data, Mapping):
            raise ValueError(
                f"{source}: expected an object with mean/std lists, found {type(data).__name__}."
            )
        unknown = sorted(set(data) - set(_REQUIRED_FIELDS) - set(_OPTIONAL_FIELDS))
        if unknown:
            raise ValueError(
                f"{source}: unknown field(s) {unknown}; expected only "
                f"{list(_REQUIRED_FIELDS + _OPTIONAL_FIELDS)}."
            )
        values: dict[str, np.ndarray | None] = {}
        for name in _REQUIRED_FIELDS + _OPTIONAL_FIELDS:
            raw = data.get(name)
            if raw is None:
                if name in _REQUIRED_FIELDS:
                    raise ValueError(
                        f"{source}: required field '{name}' is missing (expected a list of floats)."
                    )
                values[name] = None
                continue
            if not isinstance(raw, list) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw
            ):
                raise ValueError(f"{source}.{name}: expected a list of numbers, found {raw!r:.120}.")
            if not all(math.isfinite(v) for v in raw):
                raise ValueError(f"{source}.{name}: holds NaN or infinite values; recompute the stats.")
            values[name] = np.asarray(raw, dtype=np.float32)
        try:
            return cls(**values)
        except ValueError as err:
            raise ValueError(f"{source}: {err}") from err


def save_norm_stats(directory: str | Path, norm_stats: Mapping[str, NormStats]) -> Path:
    """Write ``<directory>/norm_stats.json`` atomically (temporary file + rename).

    Args:
        directory: Folder to write into; created if missing.
        norm_stats: Canonical key (``state``, ``actions``) -> stats.

    Returns:
        Path of the written file.

    Raises:
        TypeError: A value is not a :class:`NormStats`.
    """
    directory = Path(directory)
    payload: dict[str, dict[str, list[float]]] = {}
    for key, stats in norm_stats.items():
        if not isinstance(stats, NormStats):
            raise TypeError(f"norm_stats['{key}'] must be a NormStats, found {type(stats).__name__}.")
        payload[key] = stats.to_dict()
    return write_json(directory / NORM_STATS_FILENAME, {"norm_stats": payload})


def load_norm_stats(directory: str | Path) -> dict[str, NormStats]:
    """Read ``<directory>/norm_stats.json`` (openpi's schema).

    Raises:
        FileNotFoundError: The file is missing; the message says how to create it.
        ValueError: The file is not JSON, lacks the top-level ``norm_stats`` object, or a field is malformed
            (the message names the file and the field).
    """
    path = Path(directory) / NORM_STATS_FILENAME
    if not path.is_file():
        raise FileNotFoundError(f"Normalization stats file not found: {path}. To create it, {_CREATE_HINT}.")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err}); rewrite it with `depi-stats`.") from err
    if not isinstance(data, dict) or not isinstance(data.get("norm_stats"), dict):
        raise ValueError(
            f'{path}: expected a top-level object {{"norm_stats": {{"state": {{...}}, "actions": {{...}}}}}} '
            f"(openpi's schema), found top-level keys {sorted(data) if isinstance(data, dict) else type(data)}."
        )
    return {
        key: NormStats.from_dict(value, source=f"{path}: norm_stats.{key}")
        for key, value in data["norm_stats"].items()
    }


def save_group_norm_stats(assets_dir: str | Path, group_id: str, norm_stats: Mapping[str, NormStats]) -> Path:
    """Write the stats of one embodiment group to ``<assets_dir>/<group_id>/norm_stats.json``.

    ``group_id`` may contain ``/`` (a repo id such as ``lerobot/aloha_sim``), giving nested folders as openpi's
    asset ids do.
    """
    return save_norm_stats(Path(assets_dir) / group_id, norm_stats)


def list_groups(assets_dir: str | Path) -> list[str]:
    """Group ids (relative folder paths, ``/``-separated) under ``assets_dir`` that hold a stats file."""
    assets_dir = Path(assets_dir)
    if not assets_dir.is_dir():
        return []
    return sorted(p.parent.relative_to(assets_dir).as_posix() for p in assets_dir.rglob(NORM_STATS_FILENAME))


def load_group_norm_stats(assets_dir: str | Path, group_id: str) -> dict[str, NormStats]:
    """Read the stats of one embodiment group from ``<assets_dir>/<group_id>/norm_stats.json``.

    Raises:
        FileNotFoundError: No stats for ``group_id``. The message names the id that was asked for and the
            ids found under ``assets_dir``: the usual cause is stats written under one id (e.g. the dataset's
            repo id) and read under another (e.g. the asset id of the training config).
        ValueError: As :func:`load_norm_stats`.
    """
    assets_dir = Path(assets_dir)
    if not (assets_dir / group_id / NORM_STATS_FILENAME).is_file():
        found = list_groups(assets_dir)
        raise FileNotFoundError(
            f"No normalization stats for group id '{group_id}': {assets_dir / group_id / NORM_STATS_FILENAME} "
            f"does not exist. Group ids with stats under {assets_dir}: {found or 'none'}. If the stats were "
            f"written under a different id (e.g. the dataset repo id instead of the asset id), set the group "
            f"id to one of those or rename the folder; otherwise {_CREATE_HINT}."
        )
    return load_norm_stats(assets_dir / group_id)
