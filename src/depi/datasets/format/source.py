"""``LeRobotSource``: frames of one LeRobot dataset (v2.0, v2.1, v3.0), read natively.

Frames come from the dataset's parquet files through Arrow: each parquet is parsed once into an uncompressed
Arrow IPC file under :func:`depi.datasets.format.hub.arrow_cache_dir` and then memory-mapped, so the columns are views
of the page cache. Forked DataLoader workers share those pages instead of each holding a copy, and a pickled
source carries only its configuration (it maps the files again when unpickled).

Sample semantics follow lerobot's ``LeRobotDataset.__getitem__`` (``lerobot_dataset.py``): LeRobot keys,
``delta_timestamps`` turned into frame offsets (``round(delta * fps)``), query indices clamped to the episode,
``<key>_is_pad`` True where the query falls outside the episode, video frames looked up at
``from_timestamp + timestamp`` in the (possibly concatenated, v3.0) mp4.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from depi import constants as K
from depi.datasets.format.meta import DatasetFormatError, DatasetMeta, EpisodeInfo, load_meta
from depi.datasets.format.hub import arrow_cache_dir, resolve_root
from depi.datasets.format.video import FrameTimestampError, VideoBackend, VideoReaderCache, decode_image

__all__ = ["LeRobotSource", "memory_mapped_table"]


def memory_mapped_table(
    parquet_paths: Sequence[str | Path],
    cache_dir: str | Path | None = None,
    required_columns: Sequence[str] = (),
) -> pa.Table:
    """Parquet files, concatenated in order, as one memory-mapped Arrow table (uncompressed IPC, one record
    batch, so every column is one contiguous buffer).

    The IPC copy is named after the files' absolute paths, sizes and modification times, written to a
    temporary file and renamed into place (never half-written), and reused by every later call. One copy per
    group of files keeps the number of memory maps low (a v2.x dataset has one parquet per episode).

    Raises:
        FileNotFoundError: a parquet file is absent.
        DatasetFormatError: a file lacks one of ``required_columns``, or the files' schemas differ (names the
            first file that disagrees).
        PermissionError: the cache directory is not writable (set ``$DEPI_CACHE`` to a writable directory).
    """
    paths = [Path(p).resolve() for p in parquet_paths]
    fingerprint = hashlib.sha1()
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"Data file {path} not found (re-download the dataset's data/ folder)")
        stat = path.stat()
        fingerprint.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    cache_dir = Path(cache_dir) if cache_dir is not None else arrow_cache_dir()
    arrow_path = cache_dir / f"{paths[0].parent.name}-{paths[0].stem}-{fingerprint.hexdigest()[:20]}.arrow"
    if not arrow_path.is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        tables = [pq.read_table(path) for path in paths]
        for path, table in zip(paths, tables):
            missing = [c for c in required_columns if c not in table.column_names]
            if missing:
                raise DatasetFormatError(
                    f"{path}: columns {missing} missing (found {table.column_names}); expected every feature "
                    "declared in meta/info.json (except videos): re-write the data file or fix info.json's features"
                )
        for path, table in zip(paths[1:], tables[1:]):
            if not table.schema.equals(tables[0].schema, check_metadata=False):
                raise DatasetFormatError(
                    f"{path}: schema {table.schema.to_string(show_schema_metadata=False)} differs from "
                    f"{paths[0]}'s {tables[0].schema.to_string(show_schema_metadata=False)}; every data file of a "
                    "dataset must have the same columns and types"
                )
        table = pa.concat_tables(tables).combine_chunks()
        tmp_path = arrow_path.with_name(f"{arrow_path.name}.{os.getpid()}.tmp")
        with pa.OSFile(str(tmp_path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        os.replace(tmp_path, arrow_path)
    with pa.memory_map(str(arrow_path), "r") as source:
        return pa.ipc.open_file(source).read_all()


def _single_chunk(column: pa.ChunkedArray) -> pa.Array:
    """The column as one Arrow array (zero-copy when it already is one chunk, as in the mapped IPC files)."""
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _to_numpy(array: pa.Array, where: str) -> np.ndarray:
    """Arrow column -> numpy (N, ...) without copying when the layout allows (primitive, fixed-size lists,
    variable lists of equal lengths). Raises DatasetFormatError for ragged lists."""
    shape: list[int] = [len(array)]
    while (
        pa.types.is_list(array.type)
        or pa.types.is_large_list(array.type)
        or pa.types.is_fixed_size_list(array.type)
    ):
        if pa.types.is_fixed_size_list(array.type):
            width = array.type.list_size
        else:
            lengths = np.diff(np.asarray(array.offsets))
            width = int(lengths[0]) if len(lengths) else 0
            if len(lengths) and (lengths != width).any():
                bad = int(np.flatnonzero(lengths != width)[0])
                raise DatasetFormatError(
                    f"{where}: rows hold lists of different lengths ({width} at row 0, {int(lengths[bad])} at row "
                    f"{bad}); expected one fixed shape per feature: re-write the column with equal lengths"
                )
        shape.append(width)
        array = array.flatten()
    if array.null_count:
        raise DatasetFormatError(f"{where}: {array.null_count} null values; expected a value in every frame")
    zero_copy = pa.types.is_integer(array.type) or pa.types.is_floating(array.type)
    return array.to_numpy(zero_copy_only=zero_copy).reshape(shape)


def _torch(value: np.ndarray) -> torch.Tensor:
    """Copy to a writable tensor; floats become float32 (LeRobot's low-dim dtype)."""
    tensor = torch.from_numpy(np.array(value))
    return tensor.float() if tensor.is_floating_point() else tensor


class LeRobotSource(torch.utils.data.Dataset):
    """One LeRobot dataset as a map-style torch Dataset over its frames.

    Args:
        repo_id: ``owner/name``; used to find the dataset when ``root`` is None (see
            :func:`depi.datasets.format.hub.resolve_root`).
        root: dataset directory holding ``meta/info.json``.
        episodes: ``episode_index`` values to keep (default: all); frames are ordered by episode.
        delta_timestamps: key -> offsets in seconds relative to the frame, e.g.
            ``{"action": [k / fps for k in range(50)]}`` gives ``action`` (50, D) and ``action_is_pad`` (50,).
            Each offset must be a multiple of 1/fps within ``tolerance_s``.
        tolerance_s: seconds allowed between a requested timestamp and the frame returned, also used to check
            the ``timestamp`` column against ``1/fps`` steps.
        video_backend: ``"torchcodec"`` or ``"pyav"``; None picks torchcodec when it loads.
        cache_dir: where memory-mapped Arrow copies of the parquet files live (default
            :func:`depi.datasets.format.hub.arrow_cache_dir`).
        cameras: camera keys that ``__getitem__`` decodes (default all; ``[]`` for low-dim samples only, e.g.
            a dataset whose videos are not downloaded). :meth:`read_camera` reads any camera.

    Raises:
        FileNotFoundError: the root, a meta file or a data file is missing.
        DatasetFormatError: files inconsistent with the meta (rows, columns, timestamps).
        ValueError: unknown episodes, delta_timestamps keys, or offsets that are not multiples of 1/fps.

    A sample (``__getitem__``) holds every feature of the dataset under its LeRobot key: low-dim features as
    float32 tensors (D,) (0-d for scalars such as ``timestamp``), integer columns as int64, cameras as
    uint8 (C, H, W) (T, C, H, W with delta_timestamps), plus ``task`` (str).
    """

    def __init__(
        self,
        repo_id: str | None = None,
        *,
        root: str | Path | None = None,
        episodes: Sequence[int] | None = None,
        delta_timestamps: dict[str, Sequence[float]] | None = None,
        tolerance_s: float = 1e-4,
        video_backend: VideoBackend | None = None,
        cache_dir: str | Path | None = None,
        cameras: Sequence[str] | None = None,
    ):
        self.root = resolve_root(repo_id, root)
        self.meta: DatasetMeta = load_meta(self.root, repo_id)
        self.repo_id = self.meta.repo_id
        self.tolerance_s = tolerance_s
        self.cache_dir = cache_dir
        self.episodes = self._select_episodes(episodes)
        self.sample_cameras = self._select_cameras(cameras)
        self.delta_timestamps = {k: list(v) for k, v in (delta_timestamps or {}).items()}
        self.delta_indices = self._delta_indices(self.delta_timestamps)
        skipped = [
            k for k in self.delta_indices if k in self.meta.camera_keys and k not in self.sample_cameras
        ]
        if skipped:
            raise ValueError(
                f"delta_timestamps name cameras {skipped} that cameras={list(cameras or [])} leaves out"
            )
        self._videos = VideoReaderCache(video_backend)
        self._open()

    # --- construction -------------------------------------------------------------------------------------
    def _select_episodes(self, episodes: Sequence[int] | None) -> list[EpisodeInfo]:
        if episodes is None:
            return list(self.meta.episodes)
        by_index = {ep.episode_index: ep for ep in self.meta.episodes}
        unknown = sorted({int(e) for e in episodes} - set(by_index))
        if unknown:
            raise ValueError(
                f"{self.repo_id} ({self.root}): episodes {unknown} do not exist; the dataset has episode_index "
                f"values {min(by_index)}..{max(by_index)} ({len(by_index)} episodes)"
            )
        return [by_index[e] for e in sorted({int(e) for e in episodes})]

    def _select_cameras(self, cameras: Sequence[str] | None) -> list[str]:
        if cameras is None:
            return list(self.meta.camera_keys)
        unknown = [c for c in cameras if c not in self.meta.camera_keys]
        if unknown:
            raise ValueError(
                f"cameras {unknown} are not cameras of {self.repo_id} (cameras: {self.meta.camera_keys})"
            )
        return list(cameras)

    def _delta_indices(self, delta_timestamps: dict[str, list[float]]) -> dict[str, np.ndarray]:
        fps = self.meta.fps
        out = {}
        for key, deltas in delta_timestamps.items():
            if key not in self.meta.features:
                raise ValueError(
                    f"delta_timestamps key {key!r} is not a feature of {self.repo_id} "
                    f"(features: {sorted(self.meta.features)})"
                )
            steps = np.asarray(deltas, dtype=np.float64) * fps
            off = np.abs(steps - np.round(steps)) / fps
            if (off > self.tolerance_s).any():
                bad = float(np.asarray(deltas)[off.argmax()])
                raise ValueError(
                    f"delta_timestamps[{key!r}] holds {bad} s, not a multiple of 1/fps = {1 / fps:.6f} s for "
                    f"{self.repo_id} (fps={fps}) within tolerance_s={self.tolerance_s}; use k / fps offsets"
                )
            out[key] = np.round(steps).astype(np.int64)
        return out

    def _open(self) -> None:
        """Map the data files and build per-segment numpy views (a segment = consecutive kept rows of one
        mapped table). v3.0 maps each data file; v2.x maps the kept episodes' files as one table."""
        if self.meta.codebase_version.startswith("v2"):
            groups = {ep.episode_index: "all" for ep in self.episodes}
            group_files = {"all": [ep.data_file for ep in self.episodes]}
        else:
            groups = {ep.episode_index: ep.data_file for ep in self.episodes}
            group_files = {f: [f] for f in dict.fromkeys(groups.values())}
        tables: dict[str, pa.Table] = {}
        group_rows: dict[str, dict[int, tuple[int, int]]] = {}
        required = [k for k, ft in self.meta.features.items() if ft.get("dtype") != "video"]
        for group, files in group_files.items():
            tables[group] = memory_mapped_table([self.root / f for f in files], self.cache_dir, required)
            group_rows[group] = self._episode_rows(tables[group], files[0] if len(files) == 1 else "data/")
        segments: list[tuple[str, int, int]] = []  # (group, first row, row count)
        for ep in self.episodes:
            group = groups[ep.episode_index]
            rows = group_rows[group].get(ep.episode_index)
            if rows is None or rows[1] - rows[0] != ep.length:
                found = "no rows" if rows is None else f"{rows[1] - rows[0]} rows"
                raise DatasetFormatError(
                    f"{self.root / ep.data_file}: episode {ep.episode_index} has {found}, the episode table says "
                    f"{ep.length} frames; the meta and the data disagree: re-download or re-write the dataset"
                )
            last = segments[-1] if segments else None
            if last and last[0] == group and last[1] + last[2] == rows[0]:
                segments[-1] = (group, last[1], last[2] + ep.length)
            else:
                segments.append((group, rows[0], ep.length))
        lengths = np.array([ep.length for ep in self.episodes], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)])
        self._episode_ranges = np.stack([starts[:-1], starts[1:]], axis=1)
        self._frame_episode = np.repeat(np.arange(len(self.episodes), dtype=np.int32), lengths)
        seg_lengths = np.array([s[2] for s in segments], dtype=np.int64)
        self._segment_starts = np.concatenate([[0], np.cumsum(seg_lengths)])[:-1]
        self._episode_segment = np.searchsorted(self._segment_starts, starts[:-1], side="right") - 1
        self._numeric_keys = [
            k for k, ft in self.meta.features.items() if ft.get("dtype") not in ("video", "image", "string")
        ]
        self._columns: dict[str, list[np.ndarray]] = {k: [] for k in self._numeric_keys}
        self._images: dict[str, list[pa.Array]] = {k: [] for k in self.meta.image_keys}
        for group, first_row, count in segments:
            part = tables[group].slice(first_row, count)
            for key in self._numeric_keys:
                where = f"{self.root / group_files[group][0]} column {key!r}"
                self._columns[key].append(_to_numpy(_single_chunk(part.column(key)), where))
            for key in self._images:
                self._images[key].append(_single_chunk(part.column(key)).field("bytes"))
        self._check_timestamps()

    def _episode_rows(self, table: pa.Table, data_file: str) -> dict[int, tuple[int, int]]:
        """episode_index -> (first row, end row) in this file, from its ``episode_index`` column."""
        ep_col = _to_numpy(
            _single_chunk(table.column(K.EPISODE_INDEX)), f"{self.root / data_file} column 'episode_index'"
        )
        if len(ep_col) == 0:
            return {}
        bounds = np.concatenate([[0], np.flatnonzero(np.diff(ep_col)) + 1, [len(ep_col)]])
        rows: dict[int, tuple[int, int]] = {}
        for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
            ep = int(ep_col[lo])
            if ep in rows:
                raise DatasetFormatError(
                    f"{self.root / data_file}: frames of episode {ep} are not contiguous (rows {rows[ep]} and "
                    f"{lo}..{hi}); expected each episode's frames in one block, sorted by frame_index"
                )
            rows[ep] = (lo, hi)
        return rows

    def _check_timestamps(self) -> None:
        """Within each episode consecutive timestamps must be 1/fps apart within tolerance_s (lerobot's
        ``check_timestamps_sync``)."""
        if len(self) < 2:
            return
        period = 1.0 / self.meta.fps
        ts = self.column(K.TIMESTAMP).astype(np.float64)
        error = np.abs(np.diff(ts) - period)
        error[self._episode_ranges[:-1, 1] - 1] = 0.0  # steps across an episode boundary are not checked
        if error.max() > self.tolerance_s:
            bad = int(error.argmax())
            pos = int(self._frame_episode[bad])
            ep = self.episodes[pos]
            frame = bad + 1 - int(self._episode_ranges[pos, 0])
            raise DatasetFormatError(
                f"{self.root / ep.data_file}: episode {ep.episode_index} timestamp jumps from {ts[bad]:.6f} s to "
                f"{ts[bad + 1]:.6f} s at frame {frame}; expected steps of 1/fps = {period:.6f} s within "
                f"tolerance_s={self.tolerance_s}: frames were dropped or fps is wrong in meta/info.json "
                "(pass a larger tolerance_s to accept it)"
            )

    # --- pickling: configuration only, the tables are mapped again ---------------------------------------
    def __getstate__(self) -> dict:
        keep = (
            "root",
            "meta",
            "repo_id",
            "tolerance_s",
            "cache_dir",
            "episodes",
            "sample_cameras",
            "delta_timestamps",
            "delta_indices",
            "_videos",
        )
        return {k: self.__dict__[k] for k in keep}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._open()

    # --- properties ---------------------------------------------------------------------------------------
    @property
    def fps(self) -> float:
        """Frames per second (Hz)."""
        return self.meta.fps

    @property
    def features(self) -> dict[str, dict]:
        """LeRobot feature specs from ``meta/info.json``."""
        return self.meta.features

    @property
    def camera_keys(self) -> list[str]:
        """Camera feature keys (video and image-in-parquet)."""
        return self.meta.camera_keys

    @property
    def tasks(self) -> list[str]:
        """Task strings, position == ``task_index``."""
        return self.meta.tasks

    @property
    def num_frames(self) -> int:
        """Frames of the kept episodes."""
        return int(self._episode_ranges[-1, 1]) if len(self.episodes) else 0

    @property
    def num_episodes(self) -> int:
        """Kept episodes."""
        return len(self.episodes)

    @property
    def episode_ranges(self) -> np.ndarray:
        """int64 (E, 2): row range ``[from, to)`` of each kept episode within this source."""
        return self._episode_ranges

    def __len__(self) -> int:
        return self.num_frames

    # --- reading ------------------------------------------------------------------------------------------
    def column(self, key: str) -> np.ndarray:
        """All frames of a numeric feature as numpy (N, ...) in source order: a read-only view of the
        memory-mapped file when the kept frames are one block of one file, else a copy.

        Raises:
            KeyError: ``key`` is not a numeric feature (cameras are read with :meth:`read_camera`).
        """
        if key not in self._columns:
            raise KeyError(
                f"{key!r} is not a numeric feature of {self.repo_id} (numeric: {self._numeric_keys})"
            )
        parts = self._columns[key]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _locate(self, idx: int) -> int:
        if not -len(self) <= idx < len(self):
            raise IndexError(f"frame {idx} out of range for {self.repo_id} with {len(self)} frames")
        return idx % len(self)

    def _rows(self, key: str, pos: int, rows_in_episode: np.ndarray) -> np.ndarray:
        """Values of ``key`` at rows of the episode at position ``pos`` (rows relative to its first frame)."""
        seg = int(self._episode_segment[pos])
        offset = int(self._episode_ranges[pos, 0] - self._segment_starts[seg])
        return self._columns[key][seg][offset + rows_in_episode]

    def _image_rows(self, key: str, pos: int, rows_in_episode: np.ndarray) -> torch.Tensor:
        seg = int(self._episode_segment[pos])
        offset = int(self._episode_ranges[pos, 0] - self._segment_starts[seg])
        column = self._images[key][seg]
        images = []
        for row in rows_in_episode.tolist():
            data = column[offset + row].as_py()
            if data is None:
                ep = self.episodes[pos]
                raise DatasetFormatError(
                    f"{self.root / ep.data_file}: {key!r} of episode {ep.episode_index} frame {row} holds no image "
                    "bytes; expected PNG/JPEG bytes in the {bytes, path} struct (re-write with embedded images)"
                )
            images.append(decode_image(data))
        return torch.stack(images)

    def _video_frames(self, key: str, pos: int, timestamps_s: np.ndarray) -> torch.Tensor:
        ep = self.episodes[pos]
        path = self.root / ep.video_files[key]
        try:
            reader = self._videos.get(path)
        except FileNotFoundError as err:
            raise FileNotFoundError(
                f"{self.repo_id}: video of camera {key!r} for episode {ep.episode_index} not found at {path}; "
                "download the dataset's videos/ folder (or pass episodes/keys that have videos)"
            ) from err
        try:
            return reader.frames_at(ep.video_from_timestamp[key] + timestamps_s, self.tolerance_s)
        except FrameTimestampError as err:
            raise FrameTimestampError(
                f"{self.repo_id}: camera {key!r}, episode {ep.episode_index} (starts at "
                f"{ep.video_from_timestamp[key]:.6f} s in its video), frame timestamps {timestamps_s.tolist()} s: {err}"
            ) from err

    def _camera(self, key: str, pos: int, rows_in_episode: np.ndarray) -> torch.Tensor:
        if key in self._images:
            return self._image_rows(key, pos, rows_in_episode)
        timestamps = self._rows(K.TIMESTAMP, pos, rows_in_episode).astype(np.float64)
        return self._video_frames(key, pos, timestamps)

    def __getitem__(self, idx: int) -> dict:
        idx = self._locate(int(idx))
        pos = int(self._frame_episode[idx])
        ep_from, ep_to = (int(v) for v in self._episode_ranges[pos])
        row = np.array([idx - ep_from])
        item: dict = {}
        for key in self._numeric_keys + self.sample_cameras:
            if key in self.delta_indices:
                query = idx + self.delta_indices[key]
                rows = np.clip(query, ep_from, ep_to - 1) - ep_from
                item[key + K.IS_PAD_SUFFIX] = torch.from_numpy((query < ep_from) | (query >= ep_to))
            else:
                rows = row
            if key in self._columns:
                values = _torch(self._rows(key, pos, rows))
            else:
                values = self._camera(key, pos, rows)
            item[key] = values if key in self.delta_indices else values[0]
        item[K.TASK] = self.meta.tasks[int(item[K.TASK_INDEX])]
        return item

    def read_camera(
        self, idx: int, camera_key: str, timestamps_s: Sequence[float] | None = None
    ) -> torch.Tensor:
        """Frames of one camera for the episode holding frame ``idx``.

        Args:
            idx: frame position in this source.
            camera_key: a key of :attr:`camera_keys`.
            timestamps_s: times within the episode (seconds, like the ``timestamp`` column); None reads
                frame ``idx`` itself.

        Returns:
            uint8 (T, C, H, W), T = len(timestamps_s) or 1.

        Raises:
            KeyError: unknown camera key. FileNotFoundError: the camera's video file is missing.
            FrameTimestampError / DatasetFormatError: a timestamp has no frame within ``tolerance_s``.
        """
        if camera_key not in self.camera_keys:
            raise KeyError(f"{camera_key!r} is not a camera of {self.repo_id} (cameras: {self.camera_keys})")
        idx = self._locate(int(idx))
        pos = int(self._frame_episode[idx])
        ep_from, ep_to = (int(v) for v in self._episode_ranges[pos])
        if timestamps_s is None:
            return self._camera(camera_key, pos, np.array([idx - ep_from]))
        queries = np.asarray(timestamps_s, dtype=np.float64).reshape(-1)
        if camera_key not in self._images:
            return self._video_frames(camera_key, pos, queries)
        ts = self._rows(K.TIMESTAMP, pos, np.arange(ep_to - ep_from)).astype(np.float64)
        rows = np.abs(ts[None, :] - queries[:, None]).argmin(axis=1)
        error = np.abs(ts[rows] - queries)
        if (error > self.tolerance_s).any():
            ep = self.episodes[pos]
            bad = int(error.argmax())
            raise DatasetFormatError(
                f"{self.root / ep.data_file}: episode {ep.episode_index} has no frame of {camera_key!r} at "
                f"{queries[bad]:.6f} s (closest {ts[rows[bad]]:.6f} s, tolerance_s={self.tolerance_s})"
            )
        return self._image_rows(camera_key, pos, rows)

    def __repr__(self) -> str:
        return (
            f"LeRobotSource(repo_id={self.repo_id!r}, root={str(self.root)!r}, version={self.meta.codebase_version}, "
            f"episodes={self.num_episodes}, frames={self.num_frames}, fps={self.fps}, cameras={self.camera_keys})"
        )
