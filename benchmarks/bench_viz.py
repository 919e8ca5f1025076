"""Benchmark: saving one episode to .rrd — ``depi-viz dataset --save`` vs lerobot 0.6.1 ``lerobot-dataset-viz --save 1``.

The bench writes one LeRobot v3.0 dataset with depi's ``DatasetWriter``: one episode of ``--frames`` frames
(default 300) at 30 fps, two 640x480 h264 cameras with moving content, 6-dim state and action. Then, in
``--rounds`` interleaved rounds, each tool saves episode 0 to an .rrd in its own process, timed by
``/usr/bin/time`` (wall seconds and peak resident memory of the process). lerobot runs in its own Python 3.12
environment (``.venv-lerobot``, lerobot[viz] 0.6.1, rerun-sdk 0.33) at its defaults (it decodes every frame
through its DataLoader and logs JPEG-compressed images; ``--display-compressed-images`` is not needed for
--save). depi logs the mp4 files as video assets with frame references (rerun decodes them in the viewer).

Usage::

    PYTHONPATH=src .venv/bin/python benchmarks/bench_viz.py              # ~3 minutes on 2 cores
    PYTHONPATH=src .venv/bin/python benchmarks/bench_viz.py --frames 600 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
LEROBOT_BIN = REPO / ".venv-lerobot" / "bin"


def make_dataset(root: Path, frames: int, height: int = 480, width: int = 640) -> None:
    from depi.datasets.format.writer import DatasetWriter

    features = {
        "observation.state": {"dtype": "float32", "shape": (6,), "names": [f"joint_{i}" for i in range(6)]},
        "action": {"dtype": "float32", "shape": (6,), "names": [f"joint_{i}" for i in range(6)]},
        **{f"observation.images.{cam}": {"dtype": "video", "shape": (height, width, 3),
                                         "names": ["height", "width", "channels"]} for cam in ("front", "wrist")},
    }  # fmt: skip
    writer = DatasetWriter.create(root, repo_id="bench/viz", fps=30, features=features, robot_type="so101")
    ys, xs = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 40, size=(height, width, 3), dtype=np.uint8)
    for t in range(frames):
        base = (128 + 60 * np.sin((xs + 4 * t) / 40.0) + 40 * np.cos((ys - 2 * t) / 30.0)).astype(np.uint8)
        image = np.stack([base, np.roll(base, t, axis=1), 255 - base], axis=-1) + noise
        state = np.sin(t / 20 + np.arange(6)).astype(np.float32)
        writer.add_frame({"observation.state": state, "action": state + 0.01,
                          "observation.images.front": image, "observation.images.wrist": image[::-1]},
                         task="pick up the cube")  # fmt: skip
    writer.save_episode()
    writer.finalize()


def timed(cmd: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of ``cmd``."""
    result = subprocess.run(["/usr/bin/time", "-f", "%e %M", *cmd], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed:\n{result.stderr[-3000:]}")
    wall, rss_kb = result.stderr.strip().splitlines()[-1].split()
    return float(wall), float(rss_kb) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if not (LEROBOT_BIN / "lerobot-dataset-viz").exists():
        sys.exit(f"{LEROBOT_BIN / 'lerobot-dataset-viz'} not found: run `make lerobot-env` first")
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = tmp / "bench" / "viz"
        print(f"writing {args.frames} frames x 2 cameras 640x480 ...", flush=True)
        make_dataset(root, args.frames)
        depi = [str(Path(sys.executable).parent / "depi-viz"), "dataset", str(root), f"--save={tmp / 'depi.rrd'}"]
        lerobot = [str(LEROBOT_BIN / "lerobot-dataset-viz"), "--repo-id", "bench/viz", "--root", str(root),
                   "--episode-index", "0", "--save", "1", "--output-dir", str(tmp / "lerobot_out")]  # fmt: skip
        runs: dict[str, list[tuple[float, float]]] = {"lerobot": [], "depi": []}
        for _ in range(args.rounds):
            runs["lerobot"].append(timed(lerobot, env))
            runs["depi"].append(timed(depi, env))
        sizes = {"depi": (tmp / "depi.rrd").stat().st_size,
                 "lerobot": sum(p.stat().st_size for p in (tmp / "lerobot_out").glob("*.rrd"))}  # fmt: skip
    best = {k: (min(w for w, _ in v), min(m for _, m in v)) for k, v in runs.items()}
    print(f"\none episode, {args.frames} frames at 30 fps, 2 cameras 640x480 h264, saved to .rrd; "
          f"{args.rounds} interleaved rounds (best); {platform.machine()}, {os.cpu_count()} CPUs, "
          f"load avg {os.getloadavg()[0]:.2f}\n")  # fmt: skip
    print(f"{'tool':<34} {'wall s':>8} {'peak RSS MiB':>13} {'.rrd MiB':>9}")
    print("-" * 67)
    print(f"{'lerobot-dataset-viz --save 1':<34} {best['lerobot'][0]:>8.2f} {best['lerobot'][1]:>13.0f} "
          f"{sizes['lerobot'] / 2**20:>9.1f}")
    print(f"{'depi-viz dataset --save':<34} {best['depi'][0]:>8.2f} {best['depi'][1]:>13.0f} "
          f"{sizes['depi'] / 2**20:>9.1f}")
    print(f"\ndepi: {best['lerobot'][0] / best['depi'][0]:.1f}x faster, "
          f"{best['lerobot'][1] / best['depi'][1]:.1f}x less memory")


if __name__ == "__main__":
    main()
