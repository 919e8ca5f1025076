"""Logging primitives shared by every ``depi-viz`` view and the live view of ``depi-control`` (rerun-sdk >= 0.41,
the ``viz`` extra).

Entity layout: ``cameras/<camera>`` (video frames or images), ``observation.state/<joint>`` and
``action/<joint>`` (one scalar series per dim), ``task`` (text), ``warnings`` (text log). Timelines:
``frame_index`` (sequence) and ``timestamp`` (seconds, a duration). Columns go through ``rr.send_columns``:
one call per series for a whole episode, not one call per frame.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

FRAME_INDEX, TIMESTAMP = "frame_index", "timestamp"
INSTALL_HINT = "depi-viz needs rerun-sdk: pip install 'depi[viz]'"


def rerun():
    """The ``rerun`` module, or a ModuleNotFoundError naming the extra to install."""
    try:
        import rerun as rr
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(INSTALL_HINT) from error
    return rr


def dim_names(names: Any, dims: int) -> list[str]:
    """Names of a vector feature's dims from ``info.json`` (a list, or ``{"motors": [...]}``), else ``0..D-1``."""
    if isinstance(names, dict):
        names = next(iter(names.values()), None)
    if isinstance(names, list) and len(names) == dims and all(isinstance(n, str) for n in names):
        return [n.replace("/", "_") for n in names]
    return [str(i) for i in range(dims)]


def time_columns(frame_index: np.ndarray, timestamp_s: np.ndarray) -> list:
    rr = rerun()
    return [
        rr.TimeColumn(FRAME_INDEX, sequence=np.asarray(frame_index, dtype=np.int64)),
        rr.TimeColumn(TIMESTAMP, duration=np.asarray(timestamp_s, dtype=np.float64)),
    ]


def log_series(rec: Any, prefix: str, values: np.ndarray, names: Sequence[str], frame_index, timestamp_s) -> None:
    """``values`` float (N, D) as D scalar series ``<prefix>/<name>`` over the N frames (one send per dim)."""
    rr = rerun()
    values = np.asarray(values, dtype=np.float64).reshape(len(frame_index), -1)
    for d, name in enumerate(names):
        rec.log(f"{prefix}/{name}", rr.SeriesLines(names=name), static=True)
        rec.send_columns(f"{prefix}/{name}", indexes=time_columns(frame_index, timestamp_s),
                         columns=rr.Scalars.columns(scalars=values[:, d]))  # fmt: skip


def log_video(
    rec: Any, entity: str, mp4: Path, from_s: float, to_s: float, frame_index: np.ndarray, timestamp_s: np.ndarray
) -> int:
    """An mp4 as a video asset (rerun decodes it in the viewer) and one frame reference per episode frame.

    The episode occupies ``[from_s, to_s)`` of the file (LeRobot v3.0 concatenates episodes); frame k of the
    episode refers to the video frame at ``from_s + timestamp_s[k]``, snapped to the nearest frame of the file.

    Returns:
        the number of frame references logged.
    """
    rr = rerun()
    asset = rr.AssetVideo(path=str(mp4))
    rec.log(entity, asset, static=True)
    file_ns = np.asarray(asset.read_frame_timestamps_nanos(), dtype=np.int64)
    wanted_ns = np.round((from_s + np.asarray(timestamp_s, dtype=np.float64)) * 1e9).astype(np.int64)
    nearest = np.clip(np.searchsorted(file_ns, wanted_ns), 0, len(file_ns) - 1)
    previous = np.clip(nearest - 1, 0, len(file_ns) - 1)
    pick = np.where(np.abs(file_ns[previous] - wanted_ns) < np.abs(file_ns[nearest] - wanted_ns), previous, nearest)
    rec.send_columns(entity, indexes=time_columns(frame_index, timestamp_s),
                     columns=rr.VideoFrameReference.columns_nanos(file_ns[pick]))  # fmt: skip
    return len(frame_index)


def log_encoded_images(rec: Any, entity: str, images: Sequence[bytes], frame_index, timestamp_s) -> None:
    """PNG / JPEG bytes (LeRobot image features in parquet) as encoded images, one per frame."""
    rr = rerun()
    rec.send_columns(entity, indexes=time_columns(frame_index, timestamp_s),
                     columns=rr.EncodedImage.columns(blob=list(images)))  # fmt: skip


def warn(rec: Any, message: str) -> None:
    """A warning line on stderr and in the recording's ``warnings`` text log."""
    rr = rerun()
    logger.warning(message)
    rec.log("warnings", rr.TextLog(message, level=rr.TextLogLevel.WARN), static=True)


def open_recording(app_id: str, mode: str = "save", save: str | Path | None = None, port: int = 9876) -> Any:
    """A recording stream with its sink: ``save`` (to the ``.rrd`` at ``save``), ``local`` (spawn a viewer),
    ``distant`` (a gRPC server plus the web viewer on ``port``, for a remote machine).

    Raises:
        ValueError: an unknown mode, or ``save`` mode without a path.
    """
    rr = rerun()
    rec = rr.RecordingStream(app_id)
    if mode == "save" or (save is not None and mode not in ("local", "distant")):
        if save is None:
            raise ValueError("--save=PATH.rrd is required with --mode=save")
        Path(save).parent.mkdir(parents=True, exist_ok=True)
        rec.save(str(save))
    elif mode == "local":
        rec.spawn()
    elif mode == "distant":
        uri = rec.serve_grpc()
        rr.serve_web_viewer(connect_to=uri, web_port=port, open_browser=False)
        print(f"depi-viz: web viewer on http://localhost:{port} (data: {uri})", flush=True)
    else:
        raise ValueError(f"--mode={mode}: expected save, local or distant")
    return rec
