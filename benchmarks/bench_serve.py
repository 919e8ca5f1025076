"""Benchmark: ``depi-serve`` under concurrent clients with malformed requests, vs the same policy in-process.

A tiny pi0 checkpoint (2 training steps on 2 Meta-World reach-v3 episodes, 64-px images, action_horizon 4) is
served by the ``depi-serve`` console script in its own process. Each round, interleaved:

* ``in-process``: ``PolicyRunner.infer`` called directly in this process, 1 thread (the upper bound);
* ``served, 1 client``: the same observations through one :class:`depi.serve.client.PolicyClient`;
* ``served, 8 clients``: 8 client threads, ``--requests`` requests in all, ``--malformed`` of them malformed in
  turn (missing ``observation.state``, wrong state shape, float64 image, unknown camera, garbage bytes).

Reported per mode: requests, actions returned, error replies (each malformed request must get one and the
connection must stay usable), crashes (a dropped connection, a timeout, or a server that stops answering
``/healthz``: must be 0), throughput and the per-request latency p50 / p99 seen by the client. The last column is
the throughput relative to in-process inference (the cost of the network hop and the msgpack encoding).

Usage::

    PYTHONPATH=src:. .venv/bin/python benchmarks/bench_serve.py                 # ~2 minutes on 2 cores
    PYTHONPATH=src:. .venv/bin/python benchmarks/bench_serve.py --requests 1000 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ENV = "metaworld/reach-v3"


def make_checkpoint(base: Path) -> Path:
    """A 2-step tiny run on a generated reach-v3 dataset; returns its run folder."""
    from depi.sim.generate import generate_dataset
    from depi.train.__main__ import main as train_main
    from tests.helpers.tokenizer import make_tiny_sentencepiece

    generate_dataset(ENV, base / "data", episodes=2, seed=0, image_size=64)
    train_main([
        "--config_path=demo", "--demo_data=false", f"--dataset.root={base / 'data'}",
        f"--transforms.tokenizer_path={make_tiny_sentencepiece(base / 'tok' / 'tokenizer.model')}",
        "--policy.action_horizon=4", "--policy.max_token_len=24", "--batch_size=2", "--num_workers=0",
        "--steps=2", "--save_freq=2", "--log_freq=1", f"--output_dir={base / 'run'}",
    ])  # fmt: skip
    return base / "run"


def start_server(run_dir: Path, threads: int) -> tuple[subprocess.Popen, int]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": str(threads)}
    cmd = [str(Path(sys.executable).parent / "depi-serve"), f"--policy.path={run_dir}", "--host=127.0.0.1",
           "--port=0", "--log_level=WARNING"]  # fmt: skip
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    for line in process.stdout:
        if "listening on ws://127.0.0.1:" in line:
            return process, int(line.split("ws://127.0.0.1:")[1].split()[0])
    raise RuntimeError(f"depi-serve exited with {process.wait()} before listening")


def observation(meta: dict, rng: np.random.Generator) -> dict:
    obs = {"observation.state": rng.normal(size=meta["state_dim"]).astype(np.float32), "task": "reach the goal"}
    for key in meta["camera_keys"]:
        obs[key] = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    return obs


MALFORMED = ("missing_key", "bad_shape", "bad_dtype", "unknown_camera", "garbage")


def malformed(kind: str, obs: dict) -> dict | bytes:
    if kind == "missing_key":
        return {k: v for k, v in obs.items() if k != "observation.state"}
    if kind == "bad_shape":
        return {**obs, "observation.state": np.zeros(7, np.float32)}
    if kind == "bad_dtype":
        key = next(k for k in obs if k.startswith("observation.images."))
        return {**obs, key: obs[key].astype(np.float64)}
    if kind == "unknown_camera":
        return {**obs, "observation.images.not_a_camera": obs[next(k for k in obs if k.startswith("observation.images."))]}
    return b"\xc1\x00 not msgpack"


@dataclass
class Tally:
    latencies_ms: list[float] = field(default_factory=list)
    ok: int = 0
    errors_answered: int = 0
    crashes: int = 0
    wrong: int = 0  # a malformed request that got actions, or a good one that got an error
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, ms: float, ok: int = 0, err: int = 0, crash: int = 0, wrong: int = 0) -> None:
        with self.lock:
            self.latencies_ms.append(ms)
            self.ok, self.errors_answered = self.ok + ok, self.errors_answered + err
            self.crashes, self.wrong = self.crashes + crash, self.wrong + wrong


def client_worker(uri: str, meta: dict, plan: list[str | None], seed: int, tally: Tally) -> None:
    from depi.serve import wire
    from depi.serve.client import PolicyClient, PolicyConnectionError, PolicyServerError, PolicyTimeoutError

    rng = np.random.default_rng(seed)
    with PolicyClient(uri, timeout_s=60.0, retries=0) as client:
        for kind in plan:
            obs = observation(meta, rng)
            payload = obs if kind is None else malformed(kind, obs)
            start = time.perf_counter()
            try:
                # garbage bytes go through the client's raw frame path: no packer would produce them
                raw = payload if isinstance(payload, bytes) else wire.packb(payload)
                reply = client._request(raw)
            except (PolicyConnectionError, PolicyTimeoutError):
                tally.add((time.perf_counter() - start) * 1e3, crash=1)
                return
            except PolicyServerError:
                tally.add((time.perf_counter() - start) * 1e3, err=int(kind is not None), wrong=int(kind is None))
                continue
            shape_ok = reply["actions"].shape == (meta["action_horizon"], meta["action_dim"])
            tally.add((time.perf_counter() - start) * 1e3, ok=int(shape_ok), wrong=int(kind is not None or not shape_ok))


def served_round(uri: str, meta: dict, clients: int, requests: int, malformed_frac: float, seed: int) -> tuple[Tally, float]:
    n_bad = round(requests * malformed_frac)
    kinds: list[str | None] = [MALFORMED[i % len(MALFORMED)] for i in range(n_bad)] + [None] * (requests - n_bad)
    np.random.default_rng(seed).shuffle(kinds)
    plans = [kinds[i::clients] for i in range(clients)]
    tally = Tally()
    threads = [threading.Thread(target=client_worker, args=(uri, meta, plan, seed + i, tally)) for i, plan in enumerate(plans)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return tally, time.perf_counter() - start


def in_process_round(runner, meta: dict, requests: int, seed: int) -> tuple[Tally, float]:
    rng, tally = np.random.default_rng(seed), Tally()
    start = time.perf_counter()
    for _ in range(requests):
        obs = observation(meta, rng)
        t0 = time.perf_counter()
        runner.infer(obs)
        tally.add((time.perf_counter() - t0) * 1e3, ok=1)
    return tally, time.perf_counter() - start


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as response:
            return response.status == 200
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests per round in the 8-client mode")
    parser.add_argument("--single_requests", type=int, default=100, help="requests per round, 1-client / in-process")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--malformed", type=float, default=0.10, help="fraction of malformed requests")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads, server and in-process alike")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from depi.eval.policy_runner import PolicyRunner, load_checkpoint
    from depi.serve.client import PolicyClient
    from depi.serve.policy import BindingSource, resolve_binding

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = make_checkpoint(Path(tmp))
        process, port = start_server(run_dir, args.threads)
        uri = f"ws://127.0.0.1:{port}"
        try:
            with PolicyClient(uri) as client:
                meta = client.get_server_metadata()
                client.infer(observation(meta, np.random.default_rng(0)))  # warm-up
            checkpoint = load_checkpoint(run_dir)
            runner = PolicyRunner(checkpoint, resolve_binding(checkpoint, BindingSource()), seed=0)
            runner.infer(observation(meta, np.random.default_rng(0)))  # warm-up
            rows: dict[str, list[tuple[Tally, float]]] = {"in-process": [], "served, 1 client": [], "served, N clients": []}
            for r in range(args.rounds):
                rows["in-process"].append(in_process_round(runner, meta, args.single_requests, r))
                rows["served, 1 client"].append(served_round(uri, meta, 1, args.single_requests, 0.0, 100 + r))
                rows["served, N clients"].append(
                    served_round(uri, meta, args.clients, args.requests, args.malformed, 200 + r)
                )
            alive = process.poll() is None and healthy(port)
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)

    print(f"\ndepi-serve, tiny pi0 (H={meta['action_horizon']}, A={meta['action_dim']}, 1 camera 64x64), "
          f"{args.rounds} interleaved rounds, torch threads {args.threads}; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, load avg {os.getloadavg()[0]:.2f}\n")  # fmt: skip
    header = f"{'mode':<22}{'requests':>9}{'actions':>9}{'err replies':>12}{'wrong':>7}{'crashes':>8}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'vs in-proc':>11}"
    print(header)
    print("-" * len(header))
    base_rate = None
    for name, results in rows.items():
        lat = np.concatenate([t.latencies_ms for t, _ in results])
        n = sum(len(t.latencies_ms) for t, _ in results)
        rate = n / sum(s for _, s in results)
        base_rate = base_rate or rate
        label = name.replace("N clients", f"{args.clients} clients")
        print(f"{label:<22}{n:>9}{sum(t.ok for t, _ in results):>9}{sum(t.errors_answered for t, _ in results):>12}"
              f"{sum(t.wrong for t, _ in results):>7}{sum(t.crashes for t, _ in results):>8}{rate:>9.1f}"
              f"{np.percentile(lat, 50):>9.2f}{np.percentile(lat, 99):>9.2f}{rate / base_rate:>10.2f}x")  # fmt: skip
    print(f"\nserver alive and /healthz OK after the run: {alive}")


if __name__ == "__main__":
    main()
