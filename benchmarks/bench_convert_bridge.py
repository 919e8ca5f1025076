"""Bridge V2 RLDS -> LeRobot v3.0 conversion speed, and what the TFRecord reader costs.

Usage::

    python benchmarks/bench_convert_bridge.py [--data_dir ../shared/data/bridge_v2_rlds_sample/bridge_dataset/1.0.0]
                                              [--workdir outputs/bench_convert_bridge]

Measures, on the given TFDS folder (by default the 2 x 25-episode Bridge sample, 64 x 64 JPEG cameras):

1. CRC-32C throughput: the pure-Python table vs the ``crc32c`` package (when installed); the writer's camera stats
   (uint8 histograms) vs the direct float64 ``np.quantile`` computation of the same stats.
2. Reading episodes: TFRecord framing + CRC + ``tf.train.Example`` decoding, episodes/s and MB/s.
3. Full conversion (``--split all``) at the source size and with ``--resize 224``: episodes/s, frames/s, and the
   seconds per episode over the first and the second half of the run (a growing number means the per-episode
   save cost grows with the dataset).

Prints one table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

from depi.convert import tfrecord
from depi.convert.bridge_episodes import iter_episodes, split_files
from depi.convert.bridge_rlds import BridgeConvertConfig, convert_bridge
from depi.convert.progress import ConvertProgress

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared/data/bridge_v2_rlds_sample/bridge_dataset/1.0.0"


def _crc_rows() -> list[tuple[str, str]]:
    data = os.urandom(4 * 1024 * 1024)
    start = time.perf_counter()
    tfrecord.crc32c_python(data)
    python_mb_s = 4 / (time.perf_counter() - start)
    rows = [("CRC-32C, pure Python", f"{python_mb_s:,.1f} MB/s")]
    if tfrecord._crc32c_native is not None:
        start = time.perf_counter()
        for _ in range(50):
            tfrecord._crc32c_native(data)
        rows.append(("CRC-32C, crc32c package", f"{200 / (time.perf_counter() - start):,.1f} MB/s"))
    else:
        rows.append(("CRC-32C, crc32c package", "not installed"))
    return rows


def _camera_stats_rows() -> list[tuple[str, str]]:
    """The writer's per-episode camera stats (uint8 histograms) vs the same stats computed directly on float64
    copies with np.quantile / mean / std, on 100 sampled 150x150 RGB frames (one 1,000-frame episode)."""
    import numpy as np

    from depi.datasets.format.stats_compute import camera_stats, numeric_stats

    frames = np.random.default_rng(0).integers(0, 256, (100, 150, 150, 3), dtype=np.uint8)

    def best(fn) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times)

    histogram = best(lambda: camera_stats(frames))
    direct = best(lambda: numeric_stats(frames.astype(np.float64).reshape(-1, 3) / 255.0))
    return [
        (
            "camera stats, 100 frames 150x150: histogram vs float64 np.quantile",
            f"{histogram * 1e3:.1f} ms vs {direct * 1e3:.1f} ms ({direct / histogram:.1f}x)",
        )
    ]


def _read_rows(data_dir: Path) -> list[tuple[str, str]]:
    size_mb = sum(path.stat().st_size for path in split_files(data_dir, "all")) / 1024**2
    start = time.perf_counter()
    count = sum(1 for _ in iter_episodes(data_dir, "all"))
    seconds = time.perf_counter() - start
    return [
        (
            "read + decode episodes (CRC on)",
            f"{count / seconds:,.1f} episodes/s, {size_mb / seconds:,.1f} MB/s",
        )
    ]


def _convert_rows(data_dir: Path, workdir: Path, resize: int | None) -> list[tuple[str, str]]:
    output = workdir / f"resize_{resize}"
    shutil.rmtree(output, ignore_errors=True)
    config = BridgeConvertConfig(
        data_dir=data_dir, output_dir=output, repo_name="bridge", split="all", resize=resize
    )
    saved_at: list[float] = []
    original = ConvertProgress.record_episode

    def timed(self: ConvertProgress, entry: dict) -> None:
        original(self, entry)
        saved_at.append(time.perf_counter())

    ConvertProgress.record_episode = timed  # type: ignore[method-assign]
    try:
        start = time.perf_counter()
        convert_bridge(config)
        seconds = time.perf_counter() - start
    finally:
        ConvertProgress.record_episode = original  # type: ignore[method-assign]
    progress = ConvertProgress.load(config.root, "bridge", config.settings())
    frames = _num_frames(config.root)
    half = len(saved_at) // 2
    first = (saved_at[half - 1] - saved_at[0]) / max(half - 1, 1)
    second = (saved_at[-1] - saved_at[half]) / max(len(saved_at) - half - 1, 1)
    size = f"{resize}x{resize}" if resize else "source size"
    cams = len(progress.cameras)
    return [
        (
            f"convert, {size}, {cams} cameras",
            f"{len(saved_at) / seconds:,.2f} episodes/s, {frames / seconds:,.1f} frames/s",
        ),
        (f"  s/episode, 1st half vs 2nd half ({size})", f"{first:.3f} vs {second:.3f}"),
    ]


def _num_frames(root: Path) -> int:
    return int(json.loads((root / "meta" / "info.json").read_text())["total_frames"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--workdir", type=Path, default=Path("outputs/bench_convert_bridge"))
    args = parser.parse_args()
    rows = _crc_rows() + _camera_stats_rows() + _read_rows(args.data_dir)
    rows += _convert_rows(args.data_dir, args.workdir, None) + _convert_rows(args.data_dir, args.workdir, 224)
    width = max(len(name) for name, _ in rows)
    print(f"{'measure'.ljust(width)} | result\n{'-' * width}-+-{'-' * 40}")
    for name, value in rows:
        print(f"{name.ljust(width)} | {value}")


if __name__ == "__main__":
    main()
