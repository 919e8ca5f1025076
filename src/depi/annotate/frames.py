"""Frames of one episode for a VLM: sampled at a fixed rate, tiled into one contact sheet per camera.

A contact sheet is a grid of ``columns`` frames in time order (left to right, top to bottom), each resized to
``tile_height`` pixels high; one sheet per camera keeps the number of images per request small (servers
such as vLLM cap images per prompt) while showing the whole episode.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from depi.datasets.format.source import LeRobotSource
from depi.datasets.mixture.roles import camera_name


@dataclass
class EpisodeFrames:
    """Frames of one episode: ``sheets`` camera name -> contact sheet (RGB PIL image), ``times_s`` the sampled
    timestamps (seconds from the episode start), ``task`` the dataset's own task text."""

    episode_index: int
    task: str
    times_s: list[float]
    sheets: dict[str, Image.Image]


def sample_times(length: int, fps: float, sample_fps: float, max_frames: int) -> np.ndarray:
    """Timestamps (s) on the episode's frame grid: every ``1 / sample_fps`` s, at most ``max_frames`` evenly
    spread, always including the first and last frame. float64 (N,)."""
    duration = (length - 1) / fps
    n = min(max_frames, max(2, int(math.floor(duration * sample_fps)) + 1), length)
    frames = np.unique(np.round(np.linspace(0, length - 1, n)).astype(np.int64))
    return frames / fps


def contact_sheet(frames: np.ndarray, tile_height: int = 160, columns: int = 4) -> Image.Image:
    """Tile uint8 frames (T, C, H, W) or (T, H, W, C) into one RGB image, ``columns`` per row."""
    if frames.ndim != 4:
        raise ValueError(f"frames must be (T, C, H, W) or (T, H, W, C), got shape {frames.shape}")
    if frames.shape[1] in (1, 3) and frames.shape[-1] not in (1, 3):
        frames = frames.transpose(0, 2, 3, 1)
    t, h, w = frames.shape[:3]
    tile_w = max(1, round(w * tile_height / h))
    cols = min(columns, t)
    rows = math.ceil(t / cols)
    sheet = Image.new("RGB", (cols * tile_w, rows * tile_height))
    for i, frame in enumerate(frames):
        tile = Image.fromarray(np.ascontiguousarray(frame[..., :3] if frame.shape[-1] == 3 else frame[..., 0]))
        sheet.paste(tile.convert("RGB").resize((tile_w, tile_height)), ((i % cols) * tile_w, (i // cols) * tile_height))
    return sheet


def jpeg_data_url(image: Image.Image, quality: int = 85) -> str:
    """``data:image/jpeg;base64,...`` of ``image`` (the form OpenAI-compatible chat endpoints accept)."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def episode_frames(
    source: LeRobotSource, position: int, *, sample_fps: float = 1.0, max_frames: int = 8, tile_height: int = 160
) -> EpisodeFrames:
    """Sample episode number ``position`` of ``source`` (its order in ``source.meta.episodes``) on every camera.

    Raises:
        FileNotFoundError / DatasetFormatError: a video is missing or a timestamp has no frame.
    """
    episode = source.meta.episodes[position]
    start = int(source.episode_ranges[position][0])
    times = sample_times(episode.length, source.fps, sample_fps, max_frames)
    sheets = {
        camera_name(key): contact_sheet(source.read_camera(start, key, times.tolist()).numpy(), tile_height)
        for key in source.camera_keys
    }
    task = episode.tasks[0] if episode.tasks else ""
    return EpisodeFrames(episode.episode_index, task, [float(t) for t in times], sheets)
