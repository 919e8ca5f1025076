"""Benchmark: ``depi-download`` vs ``huggingface_hub.snapshot_download`` over many small datasets.

A local server speaking the Hub's endpoints (``tests/helpers/hub_server.py``) serves ``--datasets`` copies of a
small LeRobot v3.0 dataset (2 episodes, 3 cameras of which the mixture's camera rules use 2) and sleeps
``--latency_ms`` before every answer (a far-away Hub). The datasets are split into ``--batches`` batches; each
batch is fetched by every side in turn, the order rotating per batch, so machine load hits all sides alike:

* ``depi (used cameras)``: :func:`depi.hub.download.download_datasets`, 8 datasets / 16 transfers in flight,
  meta first, videos of the used cameras only;
* ``depi (all files)``: the same with ``cameras="all"`` (the same bytes as a whole-repo download);
* ``snapshot_download, one by one``: ``snapshot_download(repo_id, repo_type="dataset", local_dir=...)`` per
  repository, sequentially, as the earlier community-dataset tools did (it fetches 8 files at a time);
* ``snapshot_download, 8 repos at a time``: the reference at its best, 8 repositories in threads.

Reported per side: datasets/min, requests per dataset, requests per file written, ``HEAD`` requests, and the
metadata requests (everything but file content) per file. huggingface_hub's own registry lookup
(``/api/agent-harnesses``, once per process) is not counted for either side.

Usage::

    PYTHONPATH=src:. .venv/bin/python benchmarks/bench_download.py                    # ~1 minute on 2 cores
    PYTHONPATH=src:. .venv/bin/python benchmarks/bench_download.py --datasets 500 --latency_ms 50
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "0"
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

from huggingface_hub import snapshot_download  # noqa: E402

from depi.hub.download import download_datasets  # noqa: E402
from tests.datasets.factories import CameraSpec, DatasetSpec, make_lerobot_dataset  # noqa: E402
from tests.helpers.hub_server import FakeHub  # noqa: E402

SPEC = DatasetSpec(
    version="v3.0", episode_lengths=(20, 20), fps=10, state_dim=6, action_dim=6,
    cameras=tuple(CameraSpec(f"observation.images.{n}", height=48, width=64) for n in ("front", "wrist", "side")),
)  # fmt: skip
DATASET_REQUESTS = ("/api/datasets/", "/datasets/")


@dataclass
class Tally:
    seconds: float = 0.0
    datasets: int = 0
    files: int = 0
    requests: int = 0
    heads: int = 0
    metadata: int = 0


def count_files(root: Path) -> int:
    return sum(1 for p in root.rglob("*") if p.is_file() and ".cache" not in p.parts and p.name != "depi_manifest.json")


def run_side(hub: FakeHub, tally: Tally, fetch: Callable[[], Path], ids: list[str]) -> None:
    before = len(hub.requests)
    start = time.perf_counter()
    dest = fetch()
    tally.seconds += time.perf_counter() - start
    log = [(m, p) for m, p in hub.requests[before:] if p.startswith(DATASET_REQUESTS)]
    tally.datasets += len(ids)
    tally.files += count_files(dest)
    tally.requests += len(log)
    tally.heads += sum(m == "HEAD" for m, _ in log)
    tally.metadata += sum(m == "HEAD" or p.startswith("/api/") for m, p in log)
    shutil.rmtree(dest)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=int, default=200)
    parser.add_argument("--latency_ms", type=float, default=20.0)
    parser.add_argument("--batches", type=int, default=4)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-download-"))
    try:
        template = make_lerobot_dataset(work / "template", SPEC)
        ids = [f"user{i // 10:03d}/so100_task_{i:04d}" for i in range(args.datasets)]
        for repo_id in ids:
            shutil.copytree(template, work / "repos" / repo_id)
        size = sum(p.stat().st_size for p in template.rglob("*") if p.is_file())
        sides: dict[str, Callable[[list[str], Path], Path]] = {
            "depi (used cameras)": lambda batch, dest: _depi(batch, dest, hub.url, "used"),
            "depi (all files)": lambda batch, dest: _depi(batch, dest, hub.url, "all"),
            "snapshot_download, one by one": lambda batch, dest: _snapshot(batch, dest, hub.url, 1),
            "snapshot_download, 8 repos at a time": lambda batch, dest: _snapshot(batch, dest, hub.url, 8),
        }
        tallies = {name: Tally() for name in sides}
        with FakeHub(work / "repos", latency_s=args.latency_ms / 1000) as hub:
            batches = [ids[i :: args.batches] for i in range(args.batches)]
            names = list(sides)
            for b, batch in enumerate(batches):
                for name in names[b % len(names) :] + names[: b % len(names)]:
                    dest = work / "out" / f"{b}_{names.index(name)}"
                    run_side(hub, tallies[name], lambda: sides[name](batch, dest), batch)
        print(f"\n{args.datasets} datasets of {size / 1e3:.0f} kB ({count_files(template)} files, 3 cameras), "
              f"{args.latency_ms:.0f} ms server latency, {args.batches} interleaved batches; "
              f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores\n")  # fmt: skip
        ref = tallies["snapshot_download, one by one"]
        print("| side | datasets/min | vs one-by-one | requests / dataset | requests / file | HEAD | metadata req / file |")
        print("|---|---|---|---|---|---|---|")
        for name, t in tallies.items():
            rate = t.datasets / t.seconds * 60
            ratio = rate / (ref.datasets / ref.seconds * 60)
            print(f"| {name} | {rate:.0f} | {ratio:.2f}× | {t.requests / t.datasets:.1f} | "
                  f"{t.requests / t.files:.2f} | {t.heads} | {t.metadata / t.files:.2f} |")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _depi(batch: list[str], dest: Path, url: str, cameras: str) -> Path:
    summary = download_datasets(batch, dest, endpoint=url, cameras=cameras, progress=False)
    assert not summary.excluded, summary.excluded
    return dest


def _snapshot(batch: list[str], dest: Path, url: str, parallel: int) -> Path:
    def one(repo_id: str) -> None:
        snapshot_download(repo_id, repo_type="dataset", local_dir=dest / repo_id, endpoint=url)

    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(one, batch))
    return dest


if __name__ == "__main__":
    main()
