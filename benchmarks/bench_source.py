"""Random-access read speed of a LeRobot v3.0 dataset: depi's LeRobotSource vs lerobot's LeRobotDataset.

The dataset (written by ``tests/datasets/factories.py``): 2 video cameras 640x480 at 30 fps, textured frames,
lerobot's encoding settings (yuv420p, keyframe every 2 frames, crf 30), one file per camera, once per codec
(AV1 through libsvtav1, H.264 through libx264). Each sample asks for an action chunk of ``--horizon`` steps
(``delta_timestamps``) and both camera frames. Both libraries read the same files and the same random frame
indices through a ``torch.utils.data.DataLoader`` with ``--workers`` workers; lerobot 0.6.x runs in its own
Python 3.12 environment (``.venv-lerobot``) as a subprocess of this script (``--lerobot-side``) and reports
JSON. The floor is raw PyAV: seek + decode + RGB conversion of one frame, in CPU ms per frame (CPU time, so
that other load on the machine does not move it), compared with depi's CPU ms per sample in one process.

    .venv/bin/python benchmarks/bench_source.py                       # small defaults, a couple of minutes
    .venv/bin/python benchmarks/bench_source.py --episodes 20 --episode-length 300 --samples 2000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
CODECS = {"av1": "libsvtav1", "h264": "libx264"}
CAMERAS = ("observation.images.front", "observation.images.wrist")


def _loader_throughput(dataset, indices: list[int], batch_size: int, workers: int) -> dict:
    """Samples/s once the first batch has arrived (worker start-up and decoder opening excluded)."""
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(dataset, indices),
        batch_size=batch_size,
        num_workers=workers,
        shuffle=False,
        multiprocessing_context="fork" if workers else None,
    )
    iterator = iter(loader)
    first = next(iterator)
    start, counted = time.perf_counter(), 0
    for batch in iterator:
        counted += len(batch["index"])
    elapsed = time.perf_counter() - start
    return {"samples_per_s": counted / elapsed, "samples": counted, "first_batch_keys": sorted(first)}


def lerobot_side(args: argparse.Namespace) -> None:
    """Runs inside the lerobot environment: open the dataset with LeRobotDataset and time the DataLoader."""
    import lerobot
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from lerobot.utils.import_utils import get_safe_default_video_backend

    indices = json.loads(Path(args.indices).read_text())
    backend = get_safe_default_video_backend() if args.lerobot_backend == "default" else args.lerobot_backend
    start = time.perf_counter()
    dataset = LeRobotDataset(
        args.repo_id,
        root=args.root,
        video_backend=backend,
        delta_timestamps={"action": [k / args.fps for k in range(args.horizon)]},
    )
    open_s = time.perf_counter() - start
    result = _loader_throughput(dataset, indices, args.batch_size, args.workers)
    result.update(
        open_s=open_s,
        video_backend=backend,
        lerobot_version=lerobot.__version__,
        torch_version=torch.__version__,
    )
    Path(args.out).write_text(json.dumps(result))


def _raw_pyav_ms_per_frame(paths: list[Path], timestamps: np.ndarray) -> float:
    """Seek to the keyframe before each timestamp, decode to it, convert to RGB, in every file: CPU ms per
    frame (one decode first warms each decoder up)."""
    import av

    containers = [av.open(str(path)) for path in paths]
    streams = [container.streams.video[0] for container in containers]

    def decode(container, stream, t: float) -> None:
        container.seek(int(t / stream.time_base), stream=stream, backward=True)
        for frame in container.decode(stream):
            if frame.time >= t - 1e-4:
                frame.to_ndarray(format="rgb24")
                return

    for container, stream in zip(containers, streams):
        stream.thread_count = 1
        decode(container, stream, float(timestamps[0]))
    start = time.process_time()
    for t in timestamps.tolist():
        for container, stream in zip(containers, streams):
            decode(container, stream, t)
    elapsed = time.process_time() - start
    for container in containers:
        container.close()
    return elapsed * 1000 / (len(timestamps) * len(paths))


def _make_dataset(root: Path, codec: str, args: argparse.Namespace) -> float:
    sys.path.insert(0, str(REPO))
    from tests.datasets.factories import CameraSpec, DatasetSpec, make_lerobot_dataset

    spec = DatasetSpec(
        version="v3.0",
        episode_lengths=(args.episode_length,) * args.episodes,
        fps=args.fps,
        state_dim=14,
        action_dim=14,
        cameras=tuple(CameraSpec(key, height=480, width=640) for key in CAMERAS),
        codec=codec,
        gop_size=2,
        crf=30,
        textured=True,
    )
    start = time.perf_counter()
    make_lerobot_dataset(root, spec)
    return time.perf_counter() - start


def _depi_side(root: Path, indices: list[int], in_process: list[int], args: argparse.Namespace) -> dict:
    from depi.datasets.format.source import LeRobotSource

    delta = {"action": [k / args.fps for k in range(args.horizon)]}
    start = time.perf_counter()
    source = LeRobotSource("bench/source", root=root, delta_timestamps=delta)
    open_s = time.perf_counter() - start
    result = _loader_throughput(source, indices, args.batch_size, args.workers)
    source[in_process[0]]
    start = time.process_time()
    for idx in in_process:
        source[idx]
    result.update(
        open_s=open_s,
        ms_per_sample_in_process=(time.process_time() - start) * 1000 / len(in_process),
        video_backend=source._videos.backend,
    )
    return result


def _lerobot(root: Path, indices_file: Path, backend: str, args: argparse.Namespace) -> dict:
    python = REPO / ".venv-lerobot" / "bin" / "python"
    if not python.is_file():
        raise FileNotFoundError(f"{python} not found: run `make lerobot-env`, or pass --skip-lerobot")
    out = indices_file.with_suffix(f".lerobot_{backend}.json")
    command = [
        str(python),
        __file__,
        "--lerobot-side",
        "--lerobot-backend",
        backend,
        "--root",
        str(root),
        "--repo-id",
        "bench/source",
        "--indices",
        str(indices_file),
        "--out",
        str(out),
        "--fps",
        str(args.fps),
        "--horizon",
        str(args.horizon),
        "--batch-size",
        str(args.batch_size),
        "--workers",
        str(args.workers),
    ]
    completed = subprocess.run(command, check=False, capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"lerobot side failed (exit {completed.returncode}):\n{completed.stderr[-3000:]}")
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--codecs", nargs="+", default=list(CODECS), choices=list(CODECS))
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--episode-length", type=int, default=150, help="frames per episode")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--horizon", type=int, default=50, help="action chunk length (steps)")
    parser.add_argument("--samples", type=int, default=400, help="random frames read per library and codec")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-lerobot", action="store_true", help="only time depi and the PyAV floor")
    parser.add_argument(
        "--lerobot-backends",
        nargs="+",
        default=["default", "pyav"],
        help="lerobot video backends to time ('default': torchcodec when it loads there)",
    )
    parser.add_argument("--lerobot-backend", default="default", help=argparse.SUPPRESS)
    parser.add_argument(
        "--work-dir", type=Path, default=None, help="where datasets are written (default: temp)"
    )
    parser.add_argument("--lerobot-side", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--repo-id", help=argparse.SUPPRESS)
    parser.add_argument("--indices", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.lerobot_side:
        lerobot_side(args)
        return

    sys.path.insert(0, str(REPO / "src"))
    with tempfile.TemporaryDirectory(dir=args.work_dir) as tmp:
        os.environ["DEPI_CACHE"] = str(Path(tmp) / "depi_cache")
        rows = []
        for name in args.codecs:
            root = Path(tmp) / f"bench_{name}"
            write_s = _make_dataset(root, CODECS[name], args)
            total = args.episodes * args.episode_length
            rng = np.random.default_rng(0)
            indices = rng.integers(0, total, size=args.samples).tolist()
            indices_file = Path(tmp) / f"indices_{name}.json"
            indices_file.write_text(json.dumps(indices))
            in_process = indices[: max(args.samples // 4, 8)]
            videos = [root / f"videos/{key}/chunk-000/file-000.mp4" for key in CAMERAS]
            # One file per camera holds every episode back to back: frame i plays at i / fps.
            floor = _raw_pyav_ms_per_frame(videos, np.array(in_process) / args.fps)
            depi = _depi_side(root, indices, in_process, args)
            backends = [] if args.skip_lerobot else args.lerobot_backends
            lerobot = [_lerobot(root, indices_file, backend, args) for backend in backends]
            rows.append((name, floor, depi, lerobot))
            print(
                f"[{name}] written in {write_s:.1f}s; depi {depi['samples_per_s']:.1f} samples/s; "
                + "; ".join(
                    f"lerobot[{r['video_backend']}] {r['samples_per_s']:.1f} samples/s" for r in lerobot
                ),
                flush=True,
            )
    print()
    print(
        f"v3.0, {args.episodes} x {args.episode_length} frames at {args.fps} fps, 2 cameras 640x480, "
        f"action chunk {args.horizon}, batch {args.batch_size}, {args.workers} DataLoader workers, "
        f"{args.samples} random frames"
    )
    header = ["codec", "reader", "samples/s", "depi speed-up", "open s"]
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for name, _, depi, lerobot in rows:
        print(
            f"{name} | depi [{depi['video_backend']}] | {depi['samples_per_s']:.1f} | 1.00x | {depi['open_s']:.2f}"
        )
        for r in lerobot:
            print(
                f"{name} | lerobot {r['lerobot_version']} [{r['video_backend']}] | {r['samples_per_s']:.1f} | "
                f"{depi['samples_per_s'] / r['samples_per_s']:.2f}x | {r['open_s']:.2f}"
            )
    print()
    header = [
        "codec",
        "PyAV floor CPU ms/frame",
        "floor CPU ms/sample (2 cameras)",
        "depi CPU ms/sample (1 process)",
        "depi overhead",
    ]
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for name, floor, depi, _ in rows:
        floor_sample = 2 * floor
        overhead = depi["ms_per_sample_in_process"] / floor_sample - 1
        print(
            f"{name} | {floor:.2f} | {floor_sample:.2f} | {depi['ms_per_sample_in_process']:.2f} | "
            f"{overhead * 100:+.0f}%"
        )


if __name__ == "__main__":
    main()
