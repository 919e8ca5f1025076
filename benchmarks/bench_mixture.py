"""Mixture benchmark: index build over 1,500 datasets, and sample throughput, against lerobot 0.6.

Usage::

    python benchmarks/bench_mixture.py [--workdir outputs/bench_mixture] [--num-datasets 1500]

Steps (each timed in a fresh subprocess so that peak RSS is the step's own):

1. Generate ``--num-datasets`` on-disk LeRobot datasets (``mixture_datasets.py``, cached in ``--workdir``):
   names from ``data_ids/so100_community.json``; v2.1 and v3.0 mixed; fps 30 and 15; 6-dim state/action
   and some 7 / 14-dim; 1-3 cameras named laptop / phone / front / wrist / top / gripper / cam_high /
   overhead; about 1 % broken (missing data file, missing video, no action feature, unknown codebase
   version, truncated info.json). Frames are real parquet rows; every mp4 path is a hard link to one tiny
   video (the index never decodes video).
2. depi: build the ``MultiLeRobotDataset`` index over all of them (time, peak RSS of the process).
3. lerobot 0.6 ``MultiLeRobotDataset`` over ``--lerobot-datasets`` compatible ones (v3.0, 6-dim, not broken),
   in ``.venv-lerobot``, with its Hugging Face ``datasets`` cache cold then warm; the time is extrapolated
   linearly to all datasets.
4. Samples/s with a 2-worker DataLoader: depi's mixture over ``--video-datasets`` small v3.0 datasets with
   real video cameras (written with :class:`depi.datasets.format.writer.DatasetWriter`) vs lerobot's
   ``LeRobotDataset`` reading the same frames (same global frame indices, same action horizon, the same two
   cameras decoded, both with their default decoder, named in the table). depi does more per sample: it
   also resizes each camera to 224x224 with padding. Each side runs ``REPEATS`` passes, the best counts.

Prints a comparison table with ratios and the 1-minute load average before each timed side (the numbers
are only comparable on a quiet machine), and the CPU time per sample of each side read in one process with
one torch thread (what a DataLoader worker spends; robust to other load). ``--only-samples`` skips steps
1-3.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from mixture_datasets import generate, write_video_datasets

REPO = Path(__file__).resolve().parents[1]
LEROBOT_PYTHON = REPO / ".venv-lerobot" / "bin" / "python"
REPEATS = 3  # sample-throughput passes per side; the best is reported (the machine may be shared)
CPU_WARMUP = 64  # samples read before the single-process CPU-time measurement


# --- timed children ----------------------------------------------------------------------------------------
def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_depi_index(root: Path, ids_file: Path) -> dict:
    from depi.datasets.mixture.config import DatasetConfig
    from depi.datasets.mixture.dataset import MultiLeRobotDataset

    t0 = time.perf_counter()
    mixture = MultiLeRobotDataset(DatasetConfig(repo_ids=str(ids_file), root=str(root)), verbose=False)
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "kept": len(mixture.index.entries),
        "excluded": len(mixture.index.excluded),
        "frames": mixture.index.total_frames,
        "peak_rss_mb": _peak_rss_mb(),
    }


def child_depi_samples(root: Path, ids_file: Path, num_samples: int, horizon: int) -> dict:
    import torch
    from torch.utils.data import DataLoader

    from depi.datasets.mixture.config import DatasetConfig
    from depi.datasets.mixture.dataset import MultiLeRobotDataset, worker_init
    from depi.datasets.format.video import default_video_backend

    mixture = MultiLeRobotDataset(
        DatasetConfig(repo_ids=str(ids_file), root=str(root), action_horizon=horizon), verbose=False
    )
    if mixture.repo_ids != json.loads(ids_file.read_text()):  # global index g must name the same frame
        raise RuntimeError(f"mixture order {mixture.repo_ids} differs from the id list {ids_file}")
    indices = np.random.default_rng(0).integers(len(mixture), size=num_samples + 64).tolist()
    load = os.getloadavg()[0]
    rates = []
    for _ in range(REPEATS):
        loader = DataLoader(
            mixture, batch_size=8, sampler=indices, num_workers=2, collate_fn=len, worker_init_fn=worker_init
        )
        seen, t0 = 0, 0.0
        for i, n in enumerate(loader):
            if i == 8:  # after 64 warm-up samples (workers started, sources opened)
                t0, seen = time.perf_counter(), 0
            seen += n
        rates.append(seen / (time.perf_counter() - t0))
    torch.set_num_threads(1)  # as in a DataLoader worker
    for i in indices[:CPU_WARMUP]:
        mixture[i]
    t0 = time.process_time()
    for i in indices[CPU_WARMUP:]:
        mixture[i]
    cpu_ms = (time.process_time() - t0) * 1000 / (len(indices) - CPU_WARMUP)
    return {
        "samples_per_s": max(rates),
        "all_samples_per_s": rates,
        "cpu_ms_per_sample": cpu_ms,
        "indices": indices,
        "torch": torch.__version__,
        "decoder": default_video_backend(),
        "load_avg": load,
    }


LEROBOT_CHILD = r"""
import json, os, sys, time, resource
os.environ["HF_HUB_OFFLINE"] = "1"
args = json.loads(sys.argv[1])
from lerobot.datasets.lerobot_dataset import LeRobotDataset
from lerobot.datasets.multi_dataset import MultiLeRobotDataset
out = {}
if args["mode"] == "index":
    t0 = time.perf_counter()
    ds = MultiLeRobotDataset(args["ids"], root=args["root"])
    out = {"seconds": time.perf_counter() - t0, "frames": ds.num_frames,
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
else:
    import torch
    from torch.utils.data import ConcatDataset, DataLoader
    load = os.getloadavg()[0]
    parts = []
    for repo_id in args["ids"]:
        fps = LeRobotDataset(repo_id, root=os.path.join(args["root"], repo_id)).fps
        parts.append(LeRobotDataset(repo_id, root=os.path.join(args["root"], repo_id),
                                    delta_timestamps={"action": [k / fps for k in range(args["horizon"])]}))
    rates = []
    for _ in range(args["repeats"]):
        loader = DataLoader(ConcatDataset(parts), batch_size=8, sampler=args["indices"], num_workers=2,
                            collate_fn=len)
        seen, t0 = 0, 0.0
        for i, n in enumerate(loader):
            if i == 8:
                t0, seen = time.perf_counter(), 0
            seen += n
        rates.append(seen / (time.perf_counter() - t0))
    torch.set_num_threads(1)
    dataset = ConcatDataset(parts)
    for i in args["indices"][:args["cpu_warmup"]]:
        dataset[i]
    t0 = time.process_time()
    for i in args["indices"][args["cpu_warmup"]:]:
        dataset[i]
    cpu_ms = (time.process_time() - t0) * 1000 / (len(args["indices"]) - args["cpu_warmup"])
    out = {"samples_per_s": max(rates), "all_samples_per_s": rates, "load_avg": load, "cpu_ms_per_sample": cpu_ms,
           "version": __import__("lerobot").__version__, "decoder": parts[0]._video_backend}
print("RESULT " + json.dumps(out))
"""


def run_child(cmd: list[str], env: dict | None = None) -> dict:
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout)[-3000:]
        return {"error": f"exit {proc.returncode}: {tail}"}
    return json.loads(lines[-1][len("RESULT ") :])


def _self(*args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), *args]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=REPO / "outputs" / "bench_mixture")
    parser.add_argument("--num-datasets", type=int, default=1500)
    parser.add_argument("--lerobot-datasets", type=int, default=100)
    parser.add_argument("--video-datasets", type=int, default=10)
    parser.add_argument("--samples", type=int, default=600)
    parser.add_argument("--horizon", type=int, default=50)
    parser.add_argument("--child", choices=("depi-index", "depi-samples"))
    parser.add_argument("--root", type=Path)
    parser.add_argument("--ids", type=Path)
    parser.add_argument("--only-samples", action="store_true", help="skip the index builds (steps 1-3)")
    args = parser.parse_args()
    if args.child == "depi-index":
        print("RESULT " + json.dumps(child_depi_index(args.root, args.ids)))
        return
    if args.child == "depi-samples":
        print("RESULT " + json.dumps(child_depi_samples(args.root, args.ids, args.samples, args.horizon)))
        return

    args.workdir.mkdir(parents=True, exist_ok=True)
    env = {"PYTHONPATH": str(REPO / "src"), "DEPI_CACHE": str(args.workdir / "depi_cache")}
    have_lerobot = LEROBOT_PYTHON.is_file()
    skipped = {"error": "skipped (--only-samples)"}
    depi_index, lerobot_index, lerobot_warm, compatible = skipped, skipped, skipped, []
    if not args.only_samples:
        depi_index, lerobot_index, lerobot_warm, compatible = run_index_steps(args, env, have_lerobot)
    video_ids, video_root = write_video_datasets(args.workdir, args.video_datasets)
    depi_samples, lerobot_samples = sample_steps(args, env, have_lerobot, video_ids, video_root)
    print_table(args, depi_index, lerobot_index, lerobot_warm, len(compatible), depi_samples, lerobot_samples)


def run_index_steps(args, env: dict, have_lerobot: bool) -> tuple[dict, dict, dict, list[str]]:
    """Steps 1-3: generate the datasets, time depi's index build, then lerobot's (cold and warm cache)."""
    t0 = time.perf_counter()
    ids, broken, root = generate(args.workdir, args.num_datasets)
    print(f"datasets ready in {time.perf_counter() - t0:.0f} s under {root}")
    ids_file = args.workdir / "ids.json"
    depi_index = run_child(_self("--child", "depi-index", "--root", str(root), "--ids", str(ids_file)), env)
    compatible = []
    broken_set = set(broken)
    for repo_id in (r for r in ids if r not in broken_set):
        info = json.loads((root / repo_id / "meta/info.json").read_text())
        if info["codebase_version"] == "v3.0" and info["features"]["action"]["shape"] == [6]:
            compatible.append(repo_id)
    compatible = compatible[: args.lerobot_datasets]
    lerobot_index = lerobot_warm = {"error": "no .venv-lerobot"}
    if have_lerobot:
        payload = json.dumps({"mode": "index", "ids": compatible, "root": str(root)})
        hf_cache = args.workdir / "hf_datasets_cache"
        shutil.rmtree(hf_cache, ignore_errors=True)  # cold: first use of these datasets
        lerobot_index = run_child(
            [str(LEROBOT_PYTHON), "-c", LEROBOT_CHILD, payload], {"HF_DATASETS_CACHE": str(hf_cache)}
        )
        lerobot_warm = run_child(
            [str(LEROBOT_PYTHON), "-c", LEROBOT_CHILD, payload], {"HF_DATASETS_CACHE": str(hf_cache)}
        )
    return depi_index, lerobot_index, lerobot_warm, compatible


def sample_steps(
    args, env: dict, have_lerobot: bool, video_ids: list[str], video_root: Path
) -> tuple[dict, dict]:
    """Step 4: samples/s of depi's mixture and of lerobot's datasets over the same frames."""
    video_ids_file = args.workdir / "video_ids.json"
    video_ids_file.write_text(json.dumps(video_ids))
    depi_samples = run_child(
        _self(
            "--child",
            "depi-samples",
            "--root",
            str(video_root),
            "--ids",
            str(video_ids_file),
            "--samples",
            str(args.samples),
            "--horizon",
            str(args.horizon),
        ),
        env,
    )
    lerobot_samples = {"error": "no .venv-lerobot"}
    if have_lerobot and "indices" in depi_samples:
        payload = json.dumps(
            {
                "mode": "samples",
                "ids": video_ids,
                "root": str(video_root),
                "indices": depi_samples["indices"],
                "repeats": REPEATS,
                "cpu_warmup": CPU_WARMUP,
                "horizon": args.horizon,
            }
        )
        lerobot_samples = run_child(
            [str(LEROBOT_PYTHON), "-c", LEROBOT_CHILD, payload],
            {"HF_DATASETS_CACHE": str(args.workdir / "hf_datasets_cache")},
        )
    return depi_samples, lerobot_samples


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def print_table(
    args,
    depi_index: dict,
    lerobot_index: dict,
    lerobot_warm: dict,
    n_lerobot: int,
    depi_samples: dict,
    lerobot_samples: dict,
) -> None:
    for name, result in (
        ("depi index", depi_index),
        ("lerobot index", lerobot_index),
        ("lerobot index (warm cache)", lerobot_warm),
        ("depi samples", depi_samples),
        ("lerobot samples", lerobot_samples),
    ):
        if "error" in result and not (args.only_samples and "index" in name):
            print(f"{name} failed: {result['error']}")
    n = args.num_datasets
    d_s = depi_index.get("seconds")
    l_s = lerobot_index.get("seconds")
    l_ext = None if l_s is None or not n_lerobot else l_s * n / n_lerobot
    l_warm = lerobot_warm.get("seconds")
    l_warm_ext = None if l_warm is None or not n_lerobot else l_warm * n / n_lerobot
    d_sps, l_sps = depi_samples.get("samples_per_s"), lerobot_samples.get("samples_per_s")
    rows = [
        (
            f"index build, {n} datasets (s)",
            _fmt(d_s, ".1f"),
            f"{_fmt(l_ext, '.0f')} (extrapolated from {n_lerobot}: {_fmt(l_s, '.1f')})",
            _fmt(None if d_s is None or l_ext is None else l_ext / d_s, ".1f") + "x faster",
        ),
        (
            f"index build, {n} datasets, lerobot cache warm (s)",
            _fmt(d_s, ".1f"),
            f"{_fmt(l_warm_ext, '.0f')} (extrapolated from {n_lerobot}: {_fmt(l_warm, '.1f')})",
            _fmt(None if d_s is None or l_warm_ext is None else l_warm_ext / d_s, ".1f") + "x faster",
        ),
        (
            "index build peak RSS (MB)",
            _fmt(depi_index.get("peak_rss_mb"), ".0f"),
            f"{_fmt(lerobot_index.get('peak_rss_mb'), '.0f')} (for {n_lerobot})",
            "",
        ),
        (
            f"samples/s, 2 workers, {args.video_datasets} video datasets, H={args.horizon}",
            _fmt(d_sps, ".1f"),
            _fmt(l_sps, ".1f"),
            _fmt(None if d_sps is None or l_sps is None else d_sps / l_sps, ".2f") + "x",
        ),
        (
            "CPU ms/sample, 1 process, 1 torch thread (load-independent)",
            _fmt(depi_samples.get("cpu_ms_per_sample"), ".2f"),
            _fmt(lerobot_samples.get("cpu_ms_per_sample"), ".2f"),
            _fmt(
                None
                if "cpu_ms_per_sample" not in depi_samples or "cpu_ms_per_sample" not in lerobot_samples
                else lerobot_samples["cpu_ms_per_sample"] / depi_samples["cpu_ms_per_sample"],
                ".2f",
            )
            + "x",
        ),
        (
            "  all passes (samples/s)",
            " ".join(format(r, ".0f") for r in depi_samples.get("all_samples_per_s", [])),
            " ".join(format(r, ".0f") for r in lerobot_samples.get("all_samples_per_s", [])),
            "",
        ),
        (
            "  video decoder",
            str(depi_samples.get("decoder", "n/a")),
            str(lerobot_samples.get("decoder", "n/a")),
            "",
        ),
        (
            "  1-min load average before the run",
            _fmt(depi_samples.get("load_avg"), ".2f"),
            _fmt(lerobot_samples.get("load_avg"), ".2f"),
            f"on {os.cpu_count()} cores",
        ),
    ]
    if args.only_samples:
        rows = rows[3:]
    else:
        print(
            f"\nkept {depi_index.get('kept')} / excluded {depi_index.get('excluded')} datasets, "
            f"{depi_index.get('frames')} frames"
        )
    version = lerobot_samples.get("version", "0.6")
    header = ("measure", "depi", f"lerobot {version} MultiLeRobotDataset / LeRobotDataset", "ratio")
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(4)]
    for row in (header, tuple("-" * w for w in widths), *rows):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
