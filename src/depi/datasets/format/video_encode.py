"""Encode episode frames to MP4 with PyAV, append episodes to a video file by remuxing, and probe videos.

LeRobot v3.0 stores many episodes of one camera back to back in one MP4 file; an episode is the time range
``[from_timestamp, to_timestamp)`` of that file (lerobot 0.6 ``dataset_writer.py`` concatenates each new
episode's video onto the current file). Frames are stamped ``pts = frame_index`` in a ``1/fps`` time base, so
frame ``i`` of an episode sits at ``from_timestamp + i / fps`` seconds, which is what LeRobot's decoders query.

Encoder settings follow lerobot's defaults (``video_utils.py``): ``yuv420p``, ``g=2`` (a keyframe every two
frames, for fast random access), ``crf=30``. B-frames are turned off for h264/hevc so that packets never
reorder: concatenating episodes is then a pure remux with a time offset, without re-encoding.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# User-facing codec name -> (PyAV encoder name, codec name as FFmpeg reports it when decoding).
ENCODERS: dict[str, tuple[str, str]] = {
    "h264": ("libx264", "h264"),
    "hevc": ("libx265", "hevc"),
    "av1": ("libsvtav1", "av1"),
    "libsvtav1": ("libsvtav1", "av1"),
    "libx264": ("libx264", "h264"),
}


def available_codecs() -> list[str]:
    """User-facing codec names whose encoder exists in this PyAV build (e.g. ``["h264", "hevc", "av1"]``)."""
    found = []
    for name, (encoder, _) in ENCODERS.items():
        try:
            av.codec.Codec(encoder, "w")
        except av.codec.codec.UnknownCodecError:
            continue
        found.append(name)
    return found


@dataclass(frozen=True)
class VideoEncodeConfig:
    """How camera frames are encoded.

    Attributes:
        codec: ``"h264"`` (libx264, default), ``"av1"`` (libsvtav1, lerobot's default) or ``"hevc"`` (libx265).
        pix_fmt: pixel format of the stream; ``"yuv420p"`` is what every LeRobot decoder expects.
        g: group-of-pictures size (keyframe interval in frames); lerobot uses 2 for fast seeking.
        crf: constant rate factor (lower = better quality, larger files); lerobot uses 30.
        preset: encoder speed preset (libx264: ``"ultrafast"`` … ``"veryslow"``; libsvtav1: ``"0"`` … ``"13"``),
            ``None`` for the encoder's default.
        extra_options: further encoder options passed to FFmpeg verbatim.
    """

    codec: str = "h264"
    pix_fmt: str = "yuv420p"
    g: int = 2
    crf: int = 30
    preset: str | None = None
    extra_options: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.codec not in ENCODERS:
            raise ValueError(
                f"VideoEncodeConfig.codec={self.codec!r} is not supported; expected one of {sorted(ENCODERS)}"
            )
        if self.g < 1:
            raise ValueError(f"VideoEncodeConfig.g={self.g} must be >= 1 (keyframe interval in frames)")

    @property
    def encoder(self) -> str:
        """The FFmpeg encoder name, e.g. ``"libx264"``."""
        return ENCODERS[self.codec][0]

    @property
    def codec_name(self) -> str:
        """The codec as a decoder reports it and as ``info.json`` stores it (``"h264"``, ``"av1"``, ``"hevc"``)."""
        return ENCODERS[self.codec][1]

    def options(self) -> dict[str, str]:
        """Encoder options for PyAV's ``stream.options``."""
        opts = {"g": str(self.g), "crf": str(self.crf)}
        if self.encoder in ("libx264", "libx265"):
            opts["bf"] = "0"
        if self.encoder == "libx265":
            opts["x265-params"] = "log-level=error"
        if self.preset is not None:
            opts["preset"] = self.preset
        opts.update(self.extra_options)
        return opts


def fps_fraction(fps: float) -> Fraction:
    """``fps`` as an exact fraction (30 -> 30/1, 29.97 -> 2997/100), for stream rates and time bases."""
    return Fraction(fps).limit_denominator(1001)


class EpisodeVideoEncoder:
    """Streams the frames of one episode of one camera into an MP4 file.

    Args:
        path: output ``.mp4`` path (its folder must exist).
        fps: frames per second of the episode (Hz).
        height, width: frame size in pixels; both must be even for ``yuv420p``.
        config: encoder settings.

    Raises:
        ValueError: odd frame size with a 4:2:0 pixel format, or an encoder this PyAV build lacks.
    """

    def __init__(self, path: Path, fps: float, height: int, width: int, config: VideoEncodeConfig) -> None:
        if config.pix_fmt.endswith("420p") and (height % 2 or width % 2):
            raise ValueError(
                f"video frames of {height}x{width} cannot be encoded as {config.pix_fmt}: height and width must be "
                "even; crop or resize the camera images, or store this camera as an image feature (dtype 'image')"
            )
        if config.codec not in available_codecs():
            raise ValueError(
                f"encoder {config.encoder!r} for codec {config.codec!r} is missing from this PyAV/FFmpeg build; "
                f"available: {available_codecs()}"
            )
        self.path = Path(path)
        self.num_frames = 0
        self._container = av.open(str(self.path), mode="w", format="mp4")
        rate = fps_fraction(fps)
        self._stream = self._container.add_stream(config.encoder, rate=rate, options=config.options())
        self._stream.width = width
        self._stream.height = height
        self._stream.pix_fmt = config.pix_fmt
        self._stream.codec_context.time_base = 1 / rate
        self._shape = (height, width, 3)

    def add(self, image: np.ndarray) -> None:
        """Encode one frame: uint8 (H, W, 3) RGB."""
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts = self.num_frames
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.num_frames += 1

    def close(self) -> None:
        """Flush the encoder and write the MP4 trailer; the file is complete afterwards."""
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()

    def abort(self) -> None:
        """Close without caring about the output and delete it (used when an episode is discarded)."""
        try:
            self._container.close()
        finally:
            self.path.unlink(missing_ok=True)


def append_episode_video(
    existing: Path | None, keep_until_s: float, episode: Path | None, out: Path
) -> float:
    """Write ``out`` = the first ``keep_until_s`` seconds of ``existing`` followed by all of ``episode``.

    Packets are copied without re-encoding; the episode's timestamps are shifted by ``keep_until_s``.
    Writing goes to ``out`` + ``.tmp`` then renames, so ``out`` is always either the old or the new file.
    Packets of ``existing`` at or after ``keep_until_s`` (left by an interrupted save) are dropped.

    Args:
        existing: the camera's current video file, or None to start a new file.
        keep_until_s: end (seconds) of the last saved episode in ``existing``; its ``to_timestamp``.
        episode: the freshly encoded episode (same encoder settings as ``existing``); None only truncates
            ``existing`` to ``keep_until_s`` (used to drop the remains of an interrupted save).
        out: destination path (may equal ``existing``).

    Returns:
        The episode's ``from_timestamp`` in ``out`` (seconds), i.e. ``keep_until_s`` (0.0 for a new file).
    """
    tmp = out.with_name(out.name + ".tmp")
    offset_s = keep_until_s if existing is not None else 0.0
    if existing is None and episode is None:
        raise ValueError("append_episode_video needs an existing video file, an episode video, or both")
    template = episode if episode is not None else existing
    with av.open(str(template)) as src_template, av.open(str(tmp), mode="w", format="mp4") as dst:
        out_stream = dst.add_stream_from_template(src_template.streams.video[0], opaque=True)
        if existing is not None:
            with av.open(str(existing)) as src_existing:
                for packet in src_existing.demux(src_existing.streams.video[0]):
                    if packet.pts is None or float(packet.pts * packet.time_base) >= keep_until_s - 1e-6:
                        continue
                    packet.stream = out_stream
                    dst.mux(packet)
        episode_packets = src_template.demux(src_template.streams.video[0]) if episode is not None else ()
        for packet in episode_packets:
            if packet.pts is None:
                continue
            shift = round(offset_s / packet.time_base)
            packet.pts += shift
            packet.dts = packet.pts if packet.dts is None else packet.dts + shift
            packet.stream = out_stream
            dst.mux(packet)
    _fsync(tmp)
    os.replace(tmp, out)
    return offset_s


@dataclass(frozen=True)
class VideoProbe:
    """What a video file holds, from its packets (no decoding).

    Attributes:
        codec: codec name (``"h264"``, ``"av1"``, ...); height, width: pixels; pix_fmt: e.g. ``"yuv420p"``.
        fps: average frame rate (Hz); duration_s: end of the last frame (seconds).
        frame_pts_s: presentation time (seconds) of every frame, sorted; shape (num_frames,) float64.
    """

    codec: str
    height: int
    width: int
    pix_fmt: str | None
    fps: float
    duration_s: float
    frame_pts_s: np.ndarray

    def frames_between(self, from_s: float, to_s: float, tolerance_s: float = 1e-4) -> int:
        """Number of frames whose timestamp lies in ``[from_s, to_s)`` (seconds, with tolerance)."""
        pts = self.frame_pts_s
        return int(np.count_nonzero((pts >= from_s - tolerance_s) & (pts < to_s - tolerance_s)))


def probe_video(path: Path) -> VideoProbe:
    """Read a video file's stream parameters and the timestamp of each frame by demuxing its packets.

    Raises:
        ValueError: the file has no video stream (names the file).
        av.error.FFmpegError: the file is not a readable container.
    """
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError(f"{path}: no video stream found; expected one video stream per camera file")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        pts = [
            float(p.pts * p.time_base) for p in container.demux(stream) if p.pts is not None and p.size > 0
        ]
        fps = float(stream.average_rate) if stream.average_rate else 0.0
    frame_pts = np.sort(np.asarray(pts, dtype=np.float64))
    duration = float(frame_pts[-1] + 1.0 / fps) if len(frame_pts) and fps else 0.0
    return VideoProbe(
        codec=ctx.name,
        height=ctx.height,
        width=ctx.width,
        pix_fmt=ctx.pix_fmt,
        fps=fps,
        duration_s=duration,
        frame_pts_s=frame_pts,
    )


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())
