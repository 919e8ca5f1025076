"""Throughput of DatasetWriter per camera storage: h264 / AV1 / HEVC video vs PNG images in parquet.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_writer.py [--episodes 3] [--frames 150] [--height 240] [--width 320]

Writes a dataset with ``observation.state`` / ``action`` (float32, 7) and one camera of moving synthetic
images, per storage, and prints frames/s (add_frame + save_episode, wall clock) and bytes per frame on disk.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from depi.datasets.format.video_encode import VideoEncodeConfig, available_codecs
from depi.datasets.format.writer import DatasetWriter


def camera_frames(num: int, height: int, width: int) -> np.ndarray:
    """A moving gradient scene with some noise; uint8 (num, H, W, 3)."""
    ys, xs = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(0)
    frames = np.empty((num, height, width, 3), np.uint8)
    for t in range(num):
        scene = np.stack(
            [128 + 60 * np.sin((xs + 4 * t) / 23 + c) + 40 * np.cos((ys - 2 * t) / 17) for c in range(3)], -1
        )
        frames[t] = np.clip(scene + rng.normal(0, 4, scene.shape), 0, 255).astype(np.uint8)
    return frames


def run(storage: str, root: Path, episodes: int, frames: np.ndarray) -> tuple[float, float]:
    """Write the dataset; returns (frames per second, bytes per frame)."""
    height, width = frames.shape[1:3]
    dtype = "image" if storage == "png" else "video"
    features = {
        "observation.state": {"dtype": "float32", "shape": (7,), "names": None},
        "action": {"dtype": "float32", "shape": (7,), "names": None},
        "observation.images.front": {"dtype": dtype, "shape": (height, width, 3), "names": None},
    }
    config = VideoEncodeConfig(codec=storage if storage != "png" else "h264")
    start = time.perf_counter()
    with DatasetWriter.create(
        root, repo_id="bench/writer", fps=30, features=features, video_config=config
    ) as writer:
        for _ in range(episodes):
            for image in frames:
                state = np.zeros(7, np.float32)
                writer.add_frame(
                    {"observation.state": state, "action": state, "observation.images.front": image}, "go"
                )
            writer.save_episode()
    elapsed = time.perf_counter() - start
    total = episodes * len(frames)
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    return total / elapsed, size / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--width", type=int, default=320)
    args = parser.parse_args()
    frames = camera_frames(args.frames, args.height, args.width)
    storages = [c for c in ("h264", "av1", "hevc") if c in available_codecs()] + ["png"]
    print(f"{args.episodes} episodes x {args.frames} frames, camera {args.height}x{args.width}, 30 fps")
    print(f"{'storage':<8} | {'frames/s':>9} | {'KiB/frame':>9}")
    print("-" * 9 + "+" + "-" * 11 + "+" + "-" * 10)
    with tempfile.TemporaryDirectory() as tmp:
        for storage in storages:
            fps, bytes_per_frame = run(storage, Path(tmp) / storage, args.episodes, frames)
            print(f"{storage:<8} | {fps:>9.1f} | {bytes_per_frame / 1024:>9.2f}")


if __name__ == "__main__":
    main()
