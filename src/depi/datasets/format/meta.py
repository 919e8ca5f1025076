"""Meta of one LeRobot dataset (codebase v2.0, v2.1, v3.0), normalized to one shape.

Layouts (as written by huggingface/lerobot, ``src/lerobot/datasets/utils.py`` and
``v30/convert_dataset_v21_to_v30.py``):

* v2.0 / v2.1: ``meta/info.json``, ``meta/episodes.jsonl`` (``episode_index``, ``tasks``, ``length``),
  ``meta/tasks.jsonl`` (``task_index``, ``task``), ``meta/stats.json`` (v2.0) or
  ``meta/episodes_stats.jsonl`` (v2.1, aggregated here). One parquet and one mp4 per episode, paths from the
  ``data_path`` / ``video_path`` templates with ``{episode_chunk}``, ``{episode_index}``, ``{video_key}``;
  ``episode_chunk = episode_index // chunks_size``; each episode video starts at timestamp 0.
* v3.0: ``meta/episodes/chunk-NNN/file-NNN.parquet`` (one row per episode: ``data/chunk_index``,
  ``data/file_index``, ``dataset_from_index``, ``dataset_to_index``, ``videos/<key>/chunk_index``,
  ``videos/<key>/file_index``, ``videos/<key>/from_timestamp``, ``videos/<key>/to_timestamp``, ``tasks``,
  ``length``), ``meta/tasks.parquet`` (task string as the pandas index column, ``task_index``),
  ``meta/stats.json``. Many episodes share one parquet / mp4 file; templates use ``{chunk_index}`` and
  ``{file_index}``.

The per-episode files are the truth: totals in ``info.json`` (``total_frames``, ``total_episodes``,
``splits``) are not trusted here (the validator reports disagreements), episode lengths and row ranges come
from the episode tables.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from depi import constants as K
from depi.datasets.format.hub import resolve_root

__all__ = ["DatasetFormatError", "DatasetMeta", "EpisodeInfo", "load_meta", "resolve_root"]

_V2_REQUIRED_INFO = ("fps", "features", "data_path", "chunks_size")
_V3_REQUIRED_INFO = ("fps", "features", "data_path")
_STATS_PREFIX = "stats/"


class DatasetFormatError(ValueError):
    """A LeRobot dataset's files do not follow the format; the message names the file, the field, what was
    found, what was expected and the fix."""


@dataclass
class EpisodeInfo:
    """One episode of a dataset.

    Attributes:
        episode_index: the episode's id in the dataset (``episode_index`` column).
        length: number of frames.
        tasks: task strings of the episode.
        data_file: parquet holding the episode's frames, relative to the dataset root.
        dataset_from_index, dataset_to_index: global row range ``[from, to)`` of the episode in the dataset
            (the ``index`` column).
        video_files: camera key -> mp4 relative to the root (video cameras only).
        video_from_timestamp, video_to_timestamp: camera key -> seconds where the episode starts / ends in
            its mp4 (0 and length/fps for v2.x one-episode files).
    """

    episode_index: int
    length: int
    tasks: list[str]
    data_file: str
    dataset_from_index: int
    dataset_to_index: int
    video_files: dict[str, str] = field(default_factory=dict)
    video_from_timestamp: dict[str, float] = field(default_factory=dict)
    video_to_timestamp: dict[str, float] = field(default_factory=dict)


@dataclass
class DatasetMeta:
    """Normalized meta of one LeRobot dataset.

    Attributes:
        root: the dataset directory (holds ``meta/info.json``).
        repo_id: ``owner/name`` (the root's last two path parts when not given).
        codebase_version: ``"v2.0"``, ``"v2.1"`` or ``"v3.0"``.
        fps: frames per second (Hz) of the recording.
        robot_type: ``info.json``'s ``robot_type`` or None.
        features: LeRobot feature specs, key -> ``{"dtype", "shape", "names", ...}``.
        info: ``info.json`` as read.
        tasks: task strings, position == ``task_index``.
        episodes: episodes sorted by ``episode_index``.
        stats: key -> stat name (``mean``, ``std``, ``min``, ``max``, ``count``, ``q01`` ...) -> array, or None.
    """

    root: Path
    repo_id: str
    codebase_version: str
    fps: float
    robot_type: str | None
    features: dict[str, dict]
    info: dict
    tasks: list[str]
    episodes: list[EpisodeInfo]
    stats: dict[str, dict[str, np.ndarray]] | None

    @property
    def camera_keys(self) -> list[str]:
        """Keys of image features, stored as video or as images in parquet."""
        return [k for k, ft in self.features.items() if ft.get("dtype") in ("video", "image")]

    @property
    def video_keys(self) -> list[str]:
        """Keys of cameras stored as mp4 videos."""
        return [k for k, ft in self.features.items() if ft.get("dtype") == "video"]

    @property
    def image_keys(self) -> list[str]:
        """Keys of cameras stored as encoded images (PNG / JPEG) inside the parquet files."""
        return [k for k, ft in self.features.items() if ft.get("dtype") == "image"]

    @property
    def total_episodes(self) -> int:
        """Number of episodes listed in the episode tables."""
        return len(self.episodes)

    @property
    def total_frames(self) -> int:
        """Sum of the episode lengths."""
        return sum(ep.length for ep in self.episodes)

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Feature key -> shape as declared in ``info.json``."""
        return {k: tuple(int(d) for d in ft.get("shape", ())) for k, ft in self.features.items()}

    def episode(self, episode_index: int) -> EpisodeInfo:
        """The episode with this ``episode_index``; raises KeyError naming the dataset when absent."""
        for ep in self.episodes:
            if ep.episode_index == episode_index:
                return ep
        raise KeyError(f"{self.repo_id} ({self.root}) has no episode {episode_index}")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DatasetFormatError(
            f"{path} is not valid JSON ({err}): re-download or re-write the file"
        ) from err


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise DatasetFormatError(
                f"{path} line {line_no} is not valid JSON ({err}): re-download or re-write the file"
            ) from err
    return rows


def _require(mapping: dict, key: str, path: Path, what: str) -> Any:
    if key not in mapping:
        raise DatasetFormatError(
            f"{path}: field {key!r} missing in {what} (found fields {sorted(mapping)}); "
            "the file does not follow the LeRobot format"
        )
    return mapping[key]


def _stats_from_json(raw: dict, path: Path) -> dict[str, dict[str, np.ndarray]]:
    stats: dict[str, dict[str, np.ndarray]] = {}
    for key, per_stat in raw.items():
        if not isinstance(per_stat, dict):
            raise DatasetFormatError(
                f"{path}: stats of {key!r} must be a mapping stat name -> values, found {type(per_stat).__name__}"
            )
        stats[key] = {name: np.asarray(values) for name, values in per_stat.items()}
    return stats


def _aggregate_stats(per_episode: list[dict[str, dict[str, np.ndarray]]]) -> dict[str, dict[str, np.ndarray]]:
    """Pool per-episode min/max/mean/std/count into dataset stats (lerobot ``compute_stats.aggregate_stats``:
    count-weighted mean, pooled variance ``sum(n_i (var_i + (mean_i - mean)^2)) / sum(n_i)``)."""
    keys = sorted({k for ep in per_episode for k in ep})
    out: dict[str, dict[str, np.ndarray]] = {}
    for key in keys:
        eps = [ep[key] for ep in per_episode if key in ep]
        agg: dict[str, np.ndarray] = {}
        if all("min" in s for s in eps):
            agg["min"] = np.min(np.stack([s["min"] for s in eps]), axis=0)
        if all("max" in s for s in eps):
            agg["max"] = np.max(np.stack([s["max"] for s in eps]), axis=0)
        if all(name in s for s in eps for name in ("mean", "std", "count")):
            counts = np.stack([np.asarray(s["count"], dtype=np.float64) for s in eps])
            means = np.stack([np.asarray(s["mean"], dtype=np.float64) for s in eps])
            var = np.stack([np.asarray(s["std"], dtype=np.float64) ** 2 for s in eps])
            weights = counts.reshape(counts.shape + (1,) * (means.ndim - counts.ndim))
            total = weights.sum(axis=0)
            mean = (means * weights).sum(axis=0) / total
            pooled = ((var + (means - mean) ** 2) * weights).sum(axis=0) / total
            agg["mean"], agg["std"] = mean, np.sqrt(pooled)
            agg["count"] = counts.sum(axis=0).astype(np.int64)
        out[key] = agg
    return out


def _load_stats_v2(root: Path, version: str) -> dict[str, dict[str, np.ndarray]] | None:
    stats_path = root / K.STATS_PATH
    if stats_path.is_file():
        return _stats_from_json(_read_json(stats_path), stats_path)
    ep_stats_path = root / K.EPISODES_STATS_JSONL_PATH
    if version == "v2.1" and ep_stats_path.is_file():
        rows = _read_jsonl(ep_stats_path)
        per_episode = [
            _stats_from_json(_require(r, "stats", ep_stats_path, "a row"), ep_stats_path) for r in rows
        ]
        return _aggregate_stats(per_episode) if per_episode else None
    return None


def _format_path(template: str, path: Path, field_name: str, **values: Any) -> str:
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError) as err:
        raise DatasetFormatError(
            f"{path}: template {field_name}={template!r} cannot be filled with {sorted(values)} ({err!r}); "
            "expected LeRobot's placeholders"
        ) from err


def _load_v2(root: Path, info: dict, version: str) -> tuple[list[str], list[EpisodeInfo], dict | None]:
    info_path = root / K.INFO_PATH
    tasks_path = root / K.TASKS_JSONL_PATH
    episodes_path = root / K.EPISODES_JSONL_PATH
    for path in (tasks_path, episodes_path):
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} missing: a LeRobot {version} dataset needs it (re-download the dataset)"
            )
    task_rows = _read_jsonl(tasks_path)
    by_index = {
        int(_require(r, "task_index", tasks_path, "a row")): str(_require(r, "task", tasks_path, "a row"))
        for r in task_rows
    }
    if sorted(by_index) != list(range(len(by_index))):
        raise DatasetFormatError(
            f"{tasks_path}: task_index values {sorted(by_index)} are not 0..{len(by_index) - 1}; "
            "re-write tasks.jsonl with consecutive task_index values"
        )
    tasks = [by_index[i] for i in range(len(by_index))]

    fps = float(info["fps"])
    chunks_size = int(info["chunks_size"])
    video_keys = [k for k, ft in info["features"].items() if ft.get("dtype") == "video"]
    video_template = info.get("video_path")
    if video_keys and not video_template:
        raise DatasetFormatError(
            f"{info_path}: field 'video_path' missing while features {video_keys} are videos"
        )
    rows = sorted(
        _read_jsonl(episodes_path), key=lambda r: int(_require(r, "episode_index", episodes_path, "a row"))
    )
    episodes: list[EpisodeInfo] = []
    start = 0
    for row in rows:
        ep_idx = int(row["episode_index"])
        length = int(_require(row, "length", episodes_path, f"episode {ep_idx}"))
        chunk = ep_idx // chunks_size
        data_file = _format_path(
            info["data_path"], info_path, "data_path", episode_chunk=chunk, episode_index=ep_idx
        )
        ep = EpisodeInfo(
            episode_index=ep_idx,
            length=length,
            tasks=[str(t) for t in row.get("tasks", [])],
            data_file=data_file,
            dataset_from_index=start,
            dataset_to_index=start + length,
        )
        for key in video_keys:
            ep.video_files[key] = _format_path(
                video_template,
                info_path,
                "video_path",
                episode_chunk=chunk,
                video_key=key,
                episode_index=ep_idx,
            )
            ep.video_from_timestamp[key] = 0.0
            ep.video_to_timestamp[key] = length / fps
        episodes.append(ep)
        start += length
    return tasks, episodes, _load_stats_v2(root, version)


def _task_strings_v3(path: Path) -> list[str]:
    table = pq.read_table(path)
    if "task_index" not in table.column_names:
        raise DatasetFormatError(f"{path}: column 'task_index' missing (found {table.column_names})")
    if "task" in table.column_names:
        task_column = "task"
    else:
        pandas_meta = json.loads((table.schema.metadata or {}).get(b"pandas", b"{}"))
        index_columns = [c for c in pandas_meta.get("index_columns", []) if isinstance(c, str)]
        if not index_columns:
            raise DatasetFormatError(
                f"{path}: no 'task' column and no pandas index column holding the task strings "
                f"(found {table.column_names}); expected lerobot's tasks.parquet"
            )
        task_column = index_columns[0]
    indices = table.column("task_index").to_pylist()
    strings = table.column(task_column).to_pylist()
    if sorted(indices) != list(range(len(indices))):
        raise DatasetFormatError(f"{path}: task_index values {sorted(indices)} are not 0..{len(indices) - 1}")
    tasks = [""] * len(indices)
    for i, s in zip(indices, strings):
        tasks[int(i)] = str(s)
    return tasks


def _load_v3(root: Path, info: dict) -> tuple[list[str], list[EpisodeInfo], dict | None]:
    info_path = root / K.INFO_PATH
    tasks_path = root / K.TASKS_PARQUET_PATH
    if not tasks_path.is_file():
        raise FileNotFoundError(
            f"{tasks_path} missing: a LeRobot v3.0 dataset needs it (re-download the dataset)"
        )
    tasks = _task_strings_v3(tasks_path)
    episode_files = sorted((root / K.EPISODES_DIR).glob("chunk-*/file-*.parquet"))
    if not episode_files:
        raise FileNotFoundError(
            f"No episode tables under {root / K.EPISODES_DIR} (expected chunk-NNN/file-NNN.parquet): "
            "re-download the dataset's meta/ folder"
        )
    video_keys = [k for k, ft in info["features"].items() if ft.get("dtype") == "video"]
    video_template = info.get("video_path")
    if video_keys and not video_template:
        raise DatasetFormatError(
            f"{info_path}: field 'video_path' missing while features {video_keys} are videos"
        )
    required = [
        "episode_index",
        "data/chunk_index",
        "data/file_index",
        "dataset_from_index",
        "dataset_to_index",
    ]
    for key in video_keys:
        required += [
            f"videos/{key}/{n}" for n in ("chunk_index", "file_index", "from_timestamp", "to_timestamp")
        ]
    episodes: list[EpisodeInfo] = []
    for path in episode_files:
        names = pq.read_schema(path).names
        missing = [c for c in required if c not in names]
        if missing:
            raise DatasetFormatError(
                f"{path}: columns {missing} missing from the episode table (found {names}); "
                "expected LeRobot v3.0 episode metadata (convert with lerobot's convert_dataset_v21_to_v30)"
            )
        columns = [c for c in names if not c.startswith(_STATS_PREFIX)]
        for row in pq.read_table(path, columns=columns).to_pylist():
            ep_idx = int(row["episode_index"])
            start, stop = int(row["dataset_from_index"]), int(row["dataset_to_index"])
            data_file = _format_path(
                info["data_path"],
                info_path,
                "data_path",
                chunk_index=int(row["data/chunk_index"]),
                file_index=int(row["data/file_index"]),
            )
            ep = EpisodeInfo(
                episode_index=ep_idx,
                length=int(row["length"]) if row.get("length") is not None else stop - start,
                tasks=[str(t) for t in (row.get("tasks") or [])],
                data_file=data_file,
                dataset_from_index=start,
                dataset_to_index=stop,
            )
            if ep.length != stop - start:
                raise DatasetFormatError(
                    f"{path}: episode {ep_idx} has length {ep.length} but dataset_from_index..dataset_to_index "
                    f"= {start}..{stop} ({stop - start} frames); re-write the episode table"
                )
            for key in video_keys:
                ep.video_files[key] = _format_path(
                    video_template,
                    info_path,
                    "video_path",
                    video_key=key,
                    chunk_index=int(row[f"videos/{key}/chunk_index"]),
                    file_index=int(row[f"videos/{key}/file_index"]),
                )
                ep.video_from_timestamp[key] = float(row[f"videos/{key}/from_timestamp"])
                ep.video_to_timestamp[key] = float(row[f"videos/{key}/to_timestamp"])
            episodes.append(ep)
    episodes.sort(key=lambda e: e.episode_index)
    stats_path = root / K.STATS_PATH
    stats = _stats_from_json(_read_json(stats_path), stats_path) if stats_path.is_file() else None
    return tasks, episodes, stats


def load_meta(root: str | Path, repo_id: str | None = None) -> DatasetMeta:
    """Read and normalize the meta of the LeRobot dataset at ``root``.

    Args:
        root: dataset directory (holding ``meta/info.json``); see :func:`resolve_root` to find it from a
            ``repo_id``.
        repo_id: ``owner/name``; defaults to the root's last two path parts.

    Returns:
        :class:`DatasetMeta` with episodes sorted by ``episode_index``.

    Raises:
        FileNotFoundError: ``meta/info.json`` or another required meta file is missing.
        DatasetFormatError: unknown ``codebase_version``, a required field or column missing, unreadable JSON,
            or episode tables inconsistent with themselves.
    """
    root = Path(root).expanduser()
    info_path = root / K.INFO_PATH
    if not info_path.is_file():
        raise FileNotFoundError(
            f"{info_path} not found: {root} is not a LeRobot dataset root (expected the directory holding meta/)"
        )
    info = _read_json(info_path)
    version = _require(info, "codebase_version", info_path, "info.json")
    if version not in K.CODEBASE_VERSIONS:
        raise DatasetFormatError(
            f"{info_path}: codebase_version {version!r} is not supported (expected one of {K.CODEBASE_VERSIONS}); "
            "convert the dataset with lerobot's conversion scripts (e.g. convert_dataset_v21_to_v30)"
        )
    for key in _V3_REQUIRED_INFO if version == "v3.0" else _V2_REQUIRED_INFO:
        _require(info, key, info_path, "info.json")
    if version == "v3.0":
        tasks, episodes, stats = _load_v3(root, info)
    else:
        tasks, episodes, stats = _load_v2(root, info, version)
    if repo_id is None:
        repo_id = "/".join(root.resolve().parts[-2:])
    return DatasetMeta(
        root=root,
        repo_id=repo_id,
        codebase_version=version,
        fps=float(info["fps"]),
        robot_type=info.get("robot_type"),
        features=dict(info["features"]),
        info=info,
        tasks=tasks,
        episodes=episodes,
        stats=stats,
    )
