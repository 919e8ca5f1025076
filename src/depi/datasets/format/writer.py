"""Write LeRobot v3.0 datasets: parquet frames, MP4 cameras, and the ``meta/`` files lerobot 0.6 reads.

Layout (lerobot 0.6 ``lerobot_dataset.py`` / ``dataset_writer.py`` / ``dataset_metadata.py``)::

    meta/info.json                                  codebase_version "v3.0", fps, features, totals, splits, paths
    meta/stats.json                                 stats aggregated over all episodes (``stats_compute``)
    meta/tasks.parquet                              task_index + task (pandas index "task")
    meta/episodes/chunk-NNN/file-NNN.parquet        one row per episode: lengths, file indices, frame range,
                                                    video time range per camera, flattened ``stats/<key>/<stat>``
    data/chunk-NNN/file-NNN.parquet                 frames of many episodes, one row per frame
    videos/<camera key>/chunk-NNN/file-NNN.mp4      episodes of one camera back to back

Episodes are appended to the current data / video / episodes-meta file until it would exceed
``data_files_size_in_mb`` / ``video_files_size_in_mb``, then a new file starts; ``chunks_size`` files make a chunk.

Crash safety: frames live in memory (cameras stream into a temporary per-episode MP4) until ``save_episode``.
Every file is written under a temporary name, fsynced and renamed over the old one, in the order data, videos,
episodes meta, tasks, stats, info; so a crash mid-episode loses only that episode, and ``meta/info.json`` never
counts an episode whose files are not complete. ``DatasetWriter.resume`` recounts the totals from the
episodes meta and drops rows / video frames that an interrupted save left past the last saved episode.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from depi.constants import (
    EPISODE_INDEX,
    EPISODES_DIR,
    FRAME_INDEX,
    INDEX,
    INFO_PATH,
    STATS_PATH,
    TASK,
    TASK_INDEX,
    TASKS_PARQUET_PATH,
    TIMESTAMP,
)
from depi.datasets.format import stats_compute
from depi.datasets.format.feature_spec import (
    DEFAULT_FEATURES,
    NUMERIC_DTYPES,
    check_frame_value,
    frames_table,
    normalize_features,
    png_bytes,
    tasks_table,
)
from depi.datasets.format.video_encode import (
    EpisodeVideoEncoder,
    VideoEncodeConfig,
    append_episode_video,
    probe_video,
)

logger = logging.getLogger(__name__)

CODEBASE_VERSION = "v3.0"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = EPISODES_DIR + "/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
TMP_DIR = ".writer_tmp"
EPISODE_MARKER = "episode_in_progress.json"  # under TMP_DIR while an episode is buffered, for resume() to report
TIMESTAMP_TOLERANCE_S = 1e-4  # lerobot's default tolerance_s


def _interrupted_episode(tmp: Path) -> tuple[str, str] | None:
    """The episode a killed writer was buffering (from its marker) and its deleted temp videos, or None."""
    marker, videos = tmp / EPISODE_MARKER, sorted(p.name for p in tmp.glob("*.mp4"))
    if not marker.exists() and not videos:
        return None
    try:
        state = json.loads(marker.read_text())
        what = (
            f"episode {state['episode_index']} ({state['task']!r}, started "
            f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(state['started_at']))})"
        )
    except (OSError, ValueError, KeyError):
        what = "an episode"
    return what, f"; temporary videos deleted: {', '.join(videos)}" if videos else ""


class DatasetWriter:
    """Appends episodes to a LeRobot v3.0 dataset on disk. Build with ``create`` or ``resume``.

    Usage::

        with DatasetWriter.create(root, repo_id="me/pick", fps=30, features=features) as writer:
            for step in episode:
                writer.add_frame({"observation.state": s, "action": a, "observation.images.front": rgb}, task="pick")
            writer.save_episode()
    """

    def __init__(self, root: Path, repo_id: str, info: dict, video_config: VideoEncodeConfig) -> None:
        self.root = Path(root)
        self.repo_id = repo_id
        self.info = info
        self.video_config = video_config
        self.features: dict[str, dict] = info["features"]
        self.fps: float = info["fps"]
        self.tasks: dict[str, int] = {}
        self.stats: dict[str, stats_compute.FeatureStats] | None = None
        self.episodes: list[dict[str, Any]] = []  # rows of meta/episodes, without stats columns
        self._meta_rows: list[dict[str, Any]] = []  # full rows of the current meta/episodes file
        self._closed = False
        self._tmp = self.root / TMP_DIR
        self.recovered: list[str] = []  # what resume() removed (interrupted episode / save), in words
        self.clear_episode_buffer()

    # ------------------------------------------------------------------------------------------------ build
    @classmethod
    def create(
        cls,
        root: str | Path,
        *,
        repo_id: str,
        fps: int,
        features: Mapping[str, dict],
        robot_type: str | None = None,
        use_videos: bool = True,
        video_codec: str = "h264",
        chunks_size: int = 1000,
        data_files_size_in_mb: float = 100,
        video_files_size_in_mb: float = 200,
        video_config: VideoEncodeConfig | None = None,
    ) -> DatasetWriter:
        """Start a new dataset at ``root`` and write its ``meta/info.json``.

        Args:
            root: dataset folder; must not hold a dataset yet (use ``resume`` to append to one).
            repo_id: ``owner/name`` (recorded for messages; lerobot keeps it outside the files).
            fps: frames per second (Hz) of every episode.
            features: LeRobot feature spec, e.g. ``{"observation.state": {"dtype": "float32", "shape": (7,),
                "names": [...]}, "observation.images.front": {"dtype": "video", "shape": (H, W, 3),
                "names": ["height", "width", "channels"]}}``. Numeric features are scalars (shape (1,)) or
                vectors (D,); cameras are HWC uint8 with dtype ``video`` (MP4) or ``image`` (PNG in parquet).
            robot_type: e.g. ``"so101"``.
            use_videos: False stores every ``video`` feature as ``image`` instead.
            video_codec: ``"h264"`` (default), ``"av1"`` or ``"hevc"``; ignored when ``video_config`` is given.
            chunks_size: files per ``chunk-NNN`` folder.
            data_files_size_in_mb, video_files_size_in_mb: size above which a new file starts.
            video_config: full encoder settings (GOP, CRF, preset).

        Raises:
            FileExistsError: ``root`` already holds ``meta/info.json``.
            ValueError: a malformed feature spec (names the feature, what was found and expected).
        """
        root = Path(root)
        if (root / INFO_PATH).exists():
            raise FileExistsError(
                f"{root / INFO_PATH} already exists: {root} holds a dataset; append to it with "
                "DatasetWriter.resume(root) or choose an empty folder"
            )
        if fps <= 0:
            raise ValueError(f"fps={fps} must be positive (frames per second)")
        config = video_config or VideoEncodeConfig(codec=video_codec)
        spec = normalize_features(features, use_videos, fps, config)
        has_video = any(f["dtype"] == "video" for f in spec.values())
        info = {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": robot_type,
            "total_episodes": 0,
            "total_frames": 0,
            "total_tasks": 0,
            "chunks_size": chunks_size,
            "data_files_size_in_mb": data_files_size_in_mb,
            "video_files_size_in_mb": video_files_size_in_mb,
            "fps": fps,
            "splits": {},
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if has_video else None,
            "features": {**spec, **json.loads(json.dumps(DEFAULT_FEATURES))},
        }
        (root / "meta").mkdir(parents=True, exist_ok=True)
        _write_json(root / INFO_PATH, info)
        return cls(root, repo_id, info, config)

    @classmethod
    def resume(
        cls, root: str | Path, repo_id: str | None = None, video_config: VideoEncodeConfig | None = None
    ) -> DatasetWriter:
        """Reopen a dataset written by this writer or by lerobot (v3.0) to append episodes.

        Totals in ``info.json`` are recounted from ``meta/episodes``; rows and video frames past the last saved
        episode (left by a crash during a save) and the temporary files of an episode that was being recorded
        are removed, each reported in :attr:`recovered` and in a logged warning.

        Raises:
            FileNotFoundError: no ``meta/info.json`` under ``root``.
            ValueError: the dataset is not v3.0 (convert v2.x datasets first).
        """
        root = Path(root)
        info_path = root / INFO_PATH
        if not info_path.exists():
            raise FileNotFoundError(
                f"{info_path} not found: {root} is not a LeRobot dataset; use DatasetWriter.create"
            )
        info = json.loads(info_path.read_text())
        if info.get("codebase_version") != CODEBASE_VERSION:
            raise ValueError(
                f"{info_path}: codebase_version is {info.get('codebase_version')!r}, expected 'v3.0'; the writer "
                "appends to v3.0 datasets only (convert with lerobot's convert_dataset_v21_to_v30 first)"
            )
        video_info = next((f.get("info", {}) for f in info["features"].values() if f["dtype"] == "video"), {})
        config = video_config or VideoEncodeConfig(
            codec=video_info.get("video.codec", "h264"),
            g=int(video_info.get("video.g", 2)),
            crf=int(video_info.get("video.crf", 30)),
        )
        interrupted = _interrupted_episode(root / TMP_DIR)
        writer = cls(root, repo_id or root.name, info, config)
        shutil.rmtree(root / TMP_DIR, ignore_errors=True)
        writer._load_existing()  # reports the remains of a save that was cut short
        if interrupted:
            what, temp = interrupted
            when = ("during save_episode(): the part it had written is removed (below)" if writer.recovered
                    else "before save_episode(): its frames were never written")  # fmt: skip
            writer.recovered.insert(0, f"{what} was interrupted {when}; the episode is discarded{temp}")
        for line in writer.recovered:
            logger.warning("%s: %s", root, line)
        return writer

    def _load_existing(self) -> None:
        tasks_path = self.root / TASKS_PARQUET_PATH
        if tasks_path.exists():
            for row in pq.read_table(tasks_path).to_pylist():
                self.tasks[row.get(TASK) or row["__index_level_0__"]] = int(row[TASK_INDEX])
        paths = sorted((self.root / EPISODES_DIR).glob("chunk-*/file-*.parquet"))
        all_rows = [row for path in paths for row in pq.read_table(path).to_pylist()]
        all_rows.sort(key=lambda row: row[EPISODE_INDEX])
        per_episode_stats = []
        for row in all_rows:
            per_episode_stats.append(stats_compute.unflatten_episode_stats(row))
            self.episodes.append({k: v for k, v in row.items() if not k.startswith("stats/")})
        if all_rows:
            last = all_rows[-1]
            meta_file = (last["meta/episodes/chunk_index"], last["meta/episodes/file_index"])
            self._meta_rows = [
                r
                for r in all_rows
                if (r["meta/episodes/chunk_index"], r["meta/episodes/file_index"]) == meta_file
            ]
            self.stats = stats_compute.aggregate_stats(per_episode_stats)
            self._drop_unsaved_remains()
        self._write_info()

    def _drop_unsaved_remains(self) -> None:
        """Remove what an interrupted save left past the last saved episode: extra rows or video frames at the end
        of the last files, and files after them."""
        last = self.episodes[-1]
        data_file = (last["data/chunk_index"], last["data/file_index"])
        _remove_files_after(self.root / "data", "parquet", data_file)
        data_path = self.root / self._data_path(*data_file)
        table = pq.read_table(data_path)
        if table.num_rows and pc.max(table.column(INDEX)).as_py() >= last["dataset_to_index"]:
            kept = table.filter(pc.less(table.column(INDEX), last["dataset_to_index"]))
            self.recovered.append(f"{table.num_rows - kept.num_rows} rows of an unsaved episode removed from {data_path}")
            _write_parquet(data_path, kept)
        for key in self.video_keys:
            prefix = f"videos/{key}/"
            video_file = (last[prefix + "chunk_index"], last[prefix + "file_index"])
            _remove_files_after(self.root / "videos" / key, "mp4", video_file)
            path = self.root / self._video_path(key, *video_file)
            if probe_video(path).duration_s > last[prefix + "to_timestamp"] + 1e-4:
                self.recovered.append(f"video past {last[prefix + 'to_timestamp']:.3f} s removed from {path}")
                append_episode_video(path, last[prefix + "to_timestamp"], None, path)

    # ---------------------------------------------------------------------------------------------- frames
    @property
    def video_keys(self) -> list[str]:
        """Camera keys stored as MP4 (dtype ``video``)."""
        return [k for k, f in self.features.items() if f["dtype"] == "video"]

    @property
    def num_episodes(self) -> int:
        """Episodes saved so far."""
        return len(self.episodes)

    @property
    def num_frames(self) -> int:
        """Frames saved so far (not counting the episode being recorded)."""
        return self.episodes[-1]["dataset_to_index"] if self.episodes else 0

    def add_frame(self, frame: Mapping[str, Any], task: str, timestamp: float | None = None) -> None:
        """Buffer one frame of the current episode.

        Args:
            frame: every user feature of the spec (not the default columns): numeric values as numpy / torch /
                Python numbers of the feature's shape; cameras uint8 (H, W, 3).
            task: the episode's task text for this frame, e.g. ``"pick up the cube"``.
            timestamp: seconds since the episode start, increasing; default ``frame_index / fps``. With video
                features it must equal ``frame_index / fps`` within ``TIMESTAMP_TOLERANCE_S`` (lerobot's
                decoders look frames up at ``from_timestamp + timestamp``).

        Raises:
            ValueError: missing or unknown key, wrong shape or dtype, NaN/inf, empty task (names the key, what was
                found and what was expected).
            RuntimeError: the writer was finalized.
        """
        if self._closed:
            raise RuntimeError(
                f"the writer of {self.root} is finalized; reopen it with DatasetWriter.resume(root)"
            )
        expected = {k for k in self.features if k not in DEFAULT_FEATURES}
        missing, unknown = sorted(expected - set(frame)), sorted(set(frame) - expected)
        if missing or unknown:
            raise ValueError(
                f"add_frame for {self.root}: missing keys {missing}, unknown keys {unknown}; expected exactly "
                f"{sorted(expected)} (pass the task as the `task` argument, timestamps as `timestamp`)"
            )
        if not isinstance(task, str) or not task.strip():
            raise ValueError(f"add_frame: task must be a non-empty string, got {task!r}")
        frame_index = len(self._buffer_tasks)
        ts = frame_index / self.fps if timestamp is None else float(timestamp)
        if not np.isfinite(ts) or (self._buffer_timestamps and ts <= self._buffer_timestamps[-1]):
            raise ValueError(
                f"add_frame: timestamp {ts} s at frame {frame_index}, expected a finite number of seconds "
                f"greater than the previous frame's {self._buffer_timestamps[-1:]}"
            )
        if self.video_keys and abs(ts - frame_index / self.fps) > TIMESTAMP_TOLERANCE_S:
            raise ValueError(
                f"add_frame: timestamp {ts} s at frame {frame_index}, expected frame_index / fps = "
                f"{frame_index / self.fps} s: video frames are stamped at frame_index / fps, so a dataset with "
                "video features needs frames on that grid (resample the episode to the dataset's fps)"
            )
        values = {key: check_frame_value(key, frame[key], self.features[key]) for key in sorted(expected)}
        if frame_index == 0:
            self._tmp.mkdir(exist_ok=True)
            marker = {"episode_index": self.num_episodes, "task": task, "started_at": time.time()}
            (self._tmp / EPISODE_MARKER).write_text(json.dumps(marker))
        for key, value in values.items():
            dtype = self.features[key]["dtype"]
            if dtype in stats_compute.CAMERA_DTYPES:
                self._camera_samples.setdefault(key, []).append(
                    stats_compute.downsample_for_stats(value).copy()
                )
            if dtype == "video":
                if key not in self._encoders:
                    self._tmp.mkdir(exist_ok=True)
                    path = self._tmp / f"{key}.mp4"
                    self._encoders[key] = EpisodeVideoEncoder(
                        path, self.fps, *value.shape[:2], self.video_config
                    )
                self._encoders[key].add(value)
            elif dtype == "image":
                self._buffer.setdefault(key, []).append({"bytes": png_bytes(value), "path": None})
            else:
                self._buffer.setdefault(key, []).append(value)
        self._buffer_tasks.append(task)
        self._buffer_timestamps.append(ts)

    def clear_episode_buffer(self) -> None:
        """Discard the frames of the episode being recorded (its temporary videos too)."""
        for encoder in getattr(self, "_encoders", {}).values():
            encoder.abort()
        (self._tmp / EPISODE_MARKER).unlink(missing_ok=True)
        self._buffer: dict[str, list] = {}
        self._buffer_tasks: list[str] = []
        self._buffer_timestamps: list[float] = []
        self._camera_samples: dict[str, list[np.ndarray]] = {}
        self._encoders: dict[str, EpisodeVideoEncoder] = {}

    # ------------------------------------------------------------------------------------------------ save
    def save_episode(self) -> int:
        """Write the buffered frames as a new episode (data, videos, then meta) and return its episode_index.

        Raises:
            ValueError: no frames were added since the last save.
        """
        length = len(self._buffer_tasks)
        if length == 0:
            raise ValueError(f"save_episode for {self.root}: no frames were added; call add_frame first")
        episode_index = self.num_episodes
        start = self.num_frames
        for task in self._buffer_tasks:
            self.tasks.setdefault(task, len(self.tasks))
        numeric = [k for k, f in self.features.items() if f["dtype"] in NUMERIC_DTYPES and k in self._buffer]
        columns: dict[str, np.ndarray] = {k: np.stack(self._buffer[k]) for k in numeric}
        columns[TIMESTAMP] = np.asarray(self._buffer_timestamps, dtype=np.float32)
        columns[FRAME_INDEX] = np.arange(length, dtype=np.int64)
        columns[EPISODE_INDEX] = np.full(length, episode_index, dtype=np.int64)
        columns[INDEX] = np.arange(start, start + length, dtype=np.int64)
        columns[TASK_INDEX] = np.asarray([self.tasks[t] for t in self._buffer_tasks], dtype=np.int64)
        picks = stats_compute.sample_indices(length)
        samples = {k: np.stack([v[i] for i in picks]) for k, v in self._camera_samples.items()}
        ep_stats = stats_compute.episode_stats(columns, samples, self.features)

        row: dict[str, Any] = {
            EPISODE_INDEX: episode_index,
            "tasks": list(dict.fromkeys(self._buffer_tasks)),
            "length": length,
        }
        row.update(self._save_data(columns, length))
        row["dataset_from_index"], row["dataset_to_index"] = start, start + length
        for key, encoder in self._encoders.items():
            encoder.close()
            row.update(self._save_video(key, encoder.path, length))
        row.update(stats_compute.flatten_episode_stats(ep_stats))
        self._save_episode_row(row)
        if len(self.tasks) != self.info["total_tasks"]:
            self._write_tasks()
        self.stats = ep_stats if self.stats is None else stats_compute.aggregate_stats([self.stats, ep_stats])
        _write_json(self.root / STATS_PATH, stats_compute.stats_to_json(self.stats))
        self.episodes.append({k: v for k, v in row.items() if not k.startswith("stats/")})
        self._write_info()
        for encoder in self._encoders.values():
            encoder.path.unlink(missing_ok=True)
        self._encoders = {}
        self.clear_episode_buffer()
        return episode_index

    def _data_path(self, chunk: int, file: int) -> str:
        return self.info["data_path"].format(chunk_index=chunk, file_index=file)

    def _video_path(self, key: str, chunk: int, file: int) -> str:
        return self.info["video_path"].format(video_key=key, chunk_index=chunk, file_index=file)

    def _next_file(self, chunk: int, file: int) -> tuple[int, int]:
        file += 1
        return (chunk + 1, 0) if file >= self.info["chunks_size"] else (chunk, file)

    def _save_data(self, columns: dict[str, np.ndarray], length: int) -> dict[str, int]:
        table = frames_table(self.features, {**columns, **self._buffer}, length)
        if not self.episodes:
            chunk, file, existing = 0, 0, None
        else:
            last = self.episodes[-1]
            chunk, file = last["data/chunk_index"], last["data/file_index"]
            path = self.root / self._data_path(chunk, file)
            existing = pq.read_table(path)
            existing = existing.filter(pc.less(existing.column(INDEX), last["dataset_to_index"]))
            per_row = path.stat().st_size / max(existing.num_rows, 1)
            if path.stat().st_size + per_row * length >= self.info["data_files_size_in_mb"] * 1024**2:
                chunk, file, existing = *self._next_file(chunk, file), None
        full = table if existing is None else pa.concat_tables([existing.cast(table.schema), table])
        _write_parquet(self.root / self._data_path(chunk, file), full)
        return {"data/chunk_index": chunk, "data/file_index": file}

    def _save_video(self, key: str, episode_path: Path, length: int) -> dict[str, Any]:
        prefix = f"videos/{key}/"
        last = self.episodes[-1] if self.episodes else None
        if last is None or last.get(prefix + "chunk_index") is None:
            chunk, file, existing, keep_until = 0, 0, None, 0.0
        else:
            chunk, file = last[prefix + "chunk_index"], last[prefix + "file_index"]
            existing = self.root / self._video_path(key, chunk, file)
            keep_until = last[prefix + "to_timestamp"]
            new_mb = (existing.stat().st_size + episode_path.stat().st_size) / 1024**2
            if new_mb >= self.info["video_files_size_in_mb"]:
                chunk, file, existing, keep_until = *self._next_file(chunk, file), None, 0.0
        out = self.root / self._video_path(key, chunk, file)
        out.parent.mkdir(parents=True, exist_ok=True)
        from_s = append_episode_video(existing, keep_until, episode_path, out)
        return {
            prefix + "chunk_index": chunk,
            prefix + "file_index": file,
            prefix + "from_timestamp": from_s,
            prefix + "to_timestamp": from_s + length / self.fps,
        }

    def _save_episode_row(self, row: dict[str, Any]) -> None:
        if self._meta_rows:
            chunk, file = (
                self._meta_rows[-1]["meta/episodes/chunk_index"],
                self._meta_rows[-1]["meta/episodes/file_index"],
            )
            size = (self.root / EPISODES_PATH.format(chunk_index=chunk, file_index=file)).stat().st_size
            if size * (1 + 1 / len(self._meta_rows)) >= self.info["data_files_size_in_mb"] * 1024**2:
                chunk, file = self._next_file(chunk, file)
                self._meta_rows = []
        else:
            chunk, file = 0, 0
        row["meta/episodes/chunk_index"], row["meta/episodes/file_index"] = chunk, file
        self._meta_rows.append(row)
        _write_parquet(
            self.root / EPISODES_PATH.format(chunk_index=chunk, file_index=file),
            pa.Table.from_pylist(self._meta_rows),
        )

    def _write_tasks(self) -> None:
        _write_parquet(self.root / TASKS_PARQUET_PATH, tasks_table(self.tasks))

    def _write_info(self) -> None:
        self.info["total_episodes"] = self.num_episodes
        self.info["total_frames"] = self.num_frames
        self.info["total_tasks"] = len(self.tasks)
        self.info["splits"] = {"train": f"0:{self.num_episodes}"} if self.episodes else {}
        _write_json(self.root / INFO_PATH, self.info)

    # -------------------------------------------------------------------------------------------- finalize
    def finalize(self) -> None:
        """Close the writer: every saved episode is already durable; temporary files are removed.

        Raises:
            ValueError: frames were added after the last ``save_episode`` (save or clear them first).
        """
        if self._closed:
            return
        if self._buffer_tasks:
            raise ValueError(
                f"finalize for {self.root}: {len(self._buffer_tasks)} frames were added but not saved; call "
                "save_episode() to keep them or clear_episode_buffer() to discard them"
            )
        shutil.rmtree(self._tmp, ignore_errors=True)
        self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc_type is not None:
            self.clear_episode_buffer()
        self.finalize()


def _remove_files_after(folder: Path, ext: str, last: tuple[int, int]) -> None:
    """Delete ``chunk-NNN/file-NNN.<ext>`` files under ``folder`` whose (chunk, file) comes after ``last``."""
    for path in folder.glob(f"chunk-*/file-*.{ext}"):
        index = (int(path.parent.name.split("-")[1]), int(path.stem.split("-")[1]))
        if index > last:
            path.unlink()


def _fsync_replace(tmp: Path, path: Path) -> None:
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _write_parquet(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp, compression="snappy")
    _fsync_replace(tmp, path)


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=4))
    _fsync_replace(tmp, path)
