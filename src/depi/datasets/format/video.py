"""Decode frames of LeRobot mp4 videos (AV1, H.264, HEVC) at given timestamps, and images stored in parquet.

Two backends give the same frames:

* ``"torchcodec"`` (used when it imports; it needs FFmpeg's shared libraries and a build matching the installed
  torch), through ``VideoDecoder.get_frames_played_at``;
* ``"pyav"`` (always available; PyAV ships its own FFmpeg): seek to the keyframe at or before the first
  requested timestamp, decode forward only up to the last one, convert only the frames asked for.

Frame matching follows lerobot's ``decode_video_frames``: for each requested timestamp the decoded frame with
the closest presentation time is returned, and a :class:`FrameTimestampError` is raised when it is further than
``tolerance_s`` away.

Open decoders are kept per process in a :class:`VideoReaderCache` (LRU): a cache inherited through ``fork`` is
discarded in the child and a pickled cache travels empty, so DataLoader workers never share a decoder.
"""

from __future__ import annotations

import io
import os
from collections import OrderedDict
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Literal, Protocol

import av
import numpy as np
import torch

__all__ = [
    "FrameTimestampError",
    "PyAVVideoReader",
    "TorchCodecVideoReader",
    "VideoBackend",
    "VideoReader",
    "VideoReaderCache",
    "available_video_backends",
    "decode_image",
    "decode_video_frames",
    "default_video_backend",
]

VideoBackend = Literal["pyav", "torchcodec"]


class FrameTimestampError(ValueError):
    """A requested timestamp has no decoded frame within the tolerance."""


class VideoReader(Protocol):
    """An open video file that returns frames at timestamps (seconds from the start of the file)."""

    path: Path

    def frames_at(self, timestamps_s: Sequence[float], tolerance_s: float) -> torch.Tensor:
        """uint8 (T, C, H, W) RGB frames closest to each timestamp (may be a channels-last view); raises
        FrameTimestampError."""
        ...

    def close(self) -> None:
        """Release the file and the decoder."""
        ...


@cache
def _torchcodec_decoder_class() -> type | None:
    """torchcodec's VideoDecoder when the library loads, else None (its native library fails to load when it
    was built for another torch or needs CUDA libraries that are absent)."""
    try:
        from torchcodec.decoders import VideoDecoder
    except (ImportError, OSError, RuntimeError):
        return None
    return VideoDecoder


def available_video_backends() -> list[str]:
    """Backends that work in this environment, preferred first."""
    return (["torchcodec"] if _torchcodec_decoder_class() is not None else []) + ["pyav"]


def default_video_backend() -> VideoBackend:
    """``"torchcodec"`` when it loads, else ``"pyav"``."""
    return "torchcodec" if _torchcodec_decoder_class() is not None else "pyav"


def _match(path: Path, queries: np.ndarray, frame_times: np.ndarray, tolerance_s: float) -> np.ndarray:
    """Index into ``frame_times`` of the frame closest to each query; raises if one is beyond tolerance."""
    if len(frame_times) == 0:
        raise FrameTimestampError(
            f"{path}: no frame decoded for timestamps {queries.tolist()} s: the video ends before them "
            "(is the file truncated, or do the episode's from_timestamp/to_timestamp point past its end?)"
        )
    nearest = np.abs(queries[:, None] - frame_times[None, :]).argmin(axis=1)
    error = np.abs(frame_times[nearest] - queries)
    if (error > tolerance_s).any():
        bad = int(error.argmax())
        raise FrameTimestampError(
            f"{path}: requested timestamp {queries[bad]:.6f} s, closest decoded frame at {frame_times[nearest[bad]]:.6f} s "
            f"(off by {error[bad]:.6f} s > tolerance_s={tolerance_s}); the video and the parquet timestamps "
            "disagree: re-encode the video or pass a larger tolerance_s"
        )
    return nearest


class PyAVVideoReader:
    """Video decoding through PyAV: seek to the keyframe before the first query, decode forward to the last.

    Args:
        path: the mp4 file.
        threads: decoder threads. The default 1 suits DataLoader workers (one decoder per core) and is
            fork-safe; a decoder with a thread pool must never be freed in a forked child (FFmpeg waits on
            threads that do not exist there), which :class:`VideoReaderCache` guarantees.
    """

    def __init__(self, path: str | Path, threads: int = 1):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"Video file {self.path} not found")
        self._container = av.open(str(self.path))
        if not self._container.streams.video:
            self._container.close()
            raise ValueError(f"{self.path} holds no video stream (expected an mp4 with one video stream)")
        self._stream = self._container.streams.video[0]
        self._stream.thread_count = threads
        self._time_base = float(self._stream.time_base)
        rate = self._stream.average_rate or self._stream.guessed_rate
        self._frame_period_s = 1.0 / float(rate) if rate else 0.0

    def _decode_span(
        self, seek_s: float, first: float, last: float, tolerance_s: float
    ) -> tuple[list[float], list[av.VideoFrame]]:
        """Seek to the keyframe at or before ``seek_s``; decode until ``last``; keep frames from ``first``."""
        keep_from = first - max(tolerance_s, self._frame_period_s)
        seek_pts = max(int(np.floor(seek_s / self._time_base)), 0)
        self._container.seek(seek_pts, stream=self._stream, backward=True, any_frame=False)
        times: list[float] = []
        frames: list[av.VideoFrame] = []
        for frame in self._container.decode(self._stream):
            if frame.pts is None:
                continue
            t = frame.pts * self._time_base
            if t >= keep_from:
                times.append(t)
                frames.append(frame)
            if t >= last - tolerance_s:
                break
        return times, frames

    def frames_at(self, timestamps_s: Sequence[float], tolerance_s: float = 1e-4) -> torch.Tensor:
        """uint8 (T, C, H, W) RGB frames closest to each timestamp (seconds from the file's start).

        The tensor is a channels-last view (memory ordered (T, H, W, C), as decoded): resizing reads it
        without a copy (:func:`depi.transforms.image.resize_with_pad`); ``.contiguous()`` gives the standard
        layout.

        Raises:
            FrameTimestampError: a timestamp has no frame within ``tolerance_s`` (video shorter than asked).
        """
        queries = np.asarray(timestamps_s, dtype=np.float64).reshape(-1)
        first, last = float(queries.min()), float(queries.max())
        back_off_s = 0.0
        times, frames = self._decode_span(first + tolerance_s, first, last, tolerance_s)
        # A keyframe with leading pictures (HEVC CRA, open GOP) drops the frames shown before it when decoding
        # starts there: seek further back until the first requested frame comes out.
        while times and times[0] > first + tolerance_s and first - back_off_s > 0:
            back_off_s = max(2 * back_off_s, 4 * self._frame_period_s, 0.1)
            times, frames = self._decode_span(first - back_off_s, first, last, tolerance_s)
        nearest = _match(self.path, queries, np.asarray(times), tolerance_s)
        converted: dict[int, np.ndarray] = {}
        for i in nearest.tolist():
            if i not in converted:
                converted[i] = frames[i].to_ndarray(format="rgb24")  # (H, W, 3)
        out = np.stack([converted[i] for i in nearest.tolist()])  # (T, H, W, 3)
        return torch.from_numpy(out).permute(0, 3, 1, 2)  # (T, C, H, W) view, channels-last memory

    def close(self) -> None:
        """Close the container."""
        self._container.close()


class TorchCodecVideoReader:
    """Video decoding through torchcodec's ``VideoDecoder.get_frames_played_at``."""

    def __init__(self, path: str | Path, threads: int = 1):
        decoder_class = _torchcodec_decoder_class()
        if decoder_class is None:
            raise RuntimeError(
                "torchcodec does not load in this environment (its native library needs FFmpeg's shared "
                "libraries and a build matching the installed torch); use video_backend='pyav'"
            )
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"Video file {self.path} not found")
        self._decoder = decoder_class(str(self.path), seek_mode="exact", num_ffmpeg_threads=threads)
        self._end_s = float(self._decoder.metadata.end_stream_seconds or 0.0)

    def frames_at(self, timestamps_s: Sequence[float], tolerance_s: float = 1e-4) -> torch.Tensor:
        """uint8 (T, C, H, W) RGB frames closest to each timestamp (seconds from the file's start).

        The frame played at ``t + tolerance_s`` is the latest one starting at or before it, which is the
        frame within tolerance of ``t`` when there is one; its timestamp is checked like PyAV's. Like PyAV's
        reader, the tensor is a channels-last view of the decoded (T, H, W, C) frames.

        Raises:
            FrameTimestampError: a timestamp has no frame within ``tolerance_s``.
        """
        queries = np.asarray(timestamps_s, dtype=np.float64).reshape(-1)
        if queries.max() >= self._end_s + tolerance_s:
            _match(self.path, queries[queries >= self._end_s + tolerance_s], np.empty(0), tolerance_s)
        played_at = np.minimum(queries + tolerance_s, np.nextafter(self._end_s, 0.0))
        batch = self._decoder.get_frames_played_at(seconds=played_at.tolist())
        frame_times = batch.pts_seconds.numpy().astype(np.float64)
        error = np.abs(frame_times - queries)
        if (error > tolerance_s).any():
            _match(self.path, queries[error > tolerance_s], frame_times[error > tolerance_s], tolerance_s)
        return batch.data  # (T, C, H, W) view of torchcodec's (T, H, W, C) frames: channels-last memory

    def close(self) -> None:
        """Drop the decoder."""
        self._decoder = None


_READERS: dict[str, type] = {"pyav": PyAVVideoReader, "torchcodec": TorchCodecVideoReader}


def _reader_class(backend: str) -> type:
    if backend not in _READERS:
        raise ValueError(f"video_backend={backend!r} unknown; expected one of {sorted(_READERS)}")
    return _READERS[backend]


# Readers inherited through fork from the parent process: kept referenced, never freed in the child, because
# freeing a decoder whose threads live only in the parent blocks forever.
_INHERITED_READERS: list[object] = []


class VideoReaderCache:
    """Per-process LRU of open :class:`VideoReader` objects keyed by path.

    Args:
        backend: ``"pyav"`` or ``"torchcodec"``; None picks :func:`default_video_backend`.
        max_open: readers kept open at once (each holds a file and a decoder).
        threads: decoder threads per reader (1: one decoder per DataLoader worker and core).

    The cache remembers the process that opened its readers: in a forked child (a DataLoader worker) the
    inherited readers are set aside (not used, not freed) and new ones opened; pickling carries no reader;
    readers are closed when the cache is closed or garbage-collected in the process that opened them.
    """

    def __init__(self, backend: VideoBackend | None = None, max_open: int = 32, threads: int = 1):
        self._readers: OrderedDict[Path, VideoReader] = OrderedDict()
        self._pid = os.getpid()
        self.backend: str = backend or default_video_backend()
        self._reader_class = _reader_class(self.backend)
        self.max_open = max_open
        self.threads = threads

    def _adopt_process(self) -> None:
        if self._pid != os.getpid():
            _INHERITED_READERS.extend(self._readers.values())
            self._readers = OrderedDict()
            self._pid = os.getpid()

    def get(self, path: str | Path) -> VideoReader:
        """The open reader for ``path``, opening it (and closing the least recently used) when needed."""
        self._adopt_process()
        path = Path(path)
        reader = self._readers.get(path)
        if reader is None:
            reader = self._reader_class(path, threads=self.threads)
            self._readers[path] = reader
            while len(self._readers) > self.max_open:
                self._readers.popitem(last=False)[1].close()
        else:
            self._readers.move_to_end(path)
        return reader

    def __len__(self) -> int:
        return len(self._readers)

    def close(self) -> None:
        """Close every reader opened by this process (inherited ones are only set aside)."""
        self._adopt_process()
        for reader in self._readers.values():
            reader.close()
        self._readers = OrderedDict()

    def __del__(self) -> None:
        self.close()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_readers"] = OrderedDict()
        return state


def decode_video_frames(
    path: str | Path,
    timestamps_s: Sequence[float],
    tolerance_s: float = 1e-4,
    backend: VideoBackend | None = None,
) -> torch.Tensor:
    """Open ``path``, return uint8 (T, C, H, W) frames closest to ``timestamps_s`` (seconds), close it.

    Raises:
        FileNotFoundError: the file is absent.
        FrameTimestampError: a timestamp has no frame within ``tolerance_s``.
    """
    reader = _reader_class(backend or default_video_backend())(path)
    try:
        return reader.frames_at(timestamps_s, tolerance_s)
    finally:
        reader.close()


def _pil_image_module():
    try:
        from PIL import Image
    except ImportError:
        return None
    return Image


def decode_image(data: bytes, use_pil: bool = True) -> torch.Tensor:
    """Decode PNG / JPEG bytes (a LeRobot image-in-parquet cell) to uint8 (3, H, W) RGB.

    Pillow decodes when installed and ``use_pil``; PyAV's image decoders otherwise.

    Raises:
        ValueError: the bytes are not a decodable image.
    """
    pil = _pil_image_module() if use_pil else None
    if pil is not None:
        try:
            with pil.open(io.BytesIO(data)) as image:
                array = np.array(image.convert("RGB"))
        except pil.UnidentifiedImageError as err:
            raise ValueError(f"Image bytes ({len(data)} bytes) are not PNG/JPEG: {err}") from err
    else:
        try:
            with av.open(io.BytesIO(data)) as container:
                frame = next(container.decode(video=0))
                array = frame.to_ndarray(format="rgb24")
        except (av.FFmpegError, StopIteration) as err:
            raise ValueError(f"Image bytes ({len(data)} bytes) are not PNG/JPEG: {err}") from err
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).contiguous()
