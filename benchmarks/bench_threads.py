"""Benchmark: torch intra-op threads and the OpenMP wait policy for a pi0 training step on this machine's CPUs.

Each configuration (threads x ``OMP_WAIT_POLICY``) runs in its own process (OpenMP reads its environment once,
at load), rounds interleaved so that other load hits every configuration alike. A step is the flow-matching loss
forward + backward + AdamW of the ``tiny`` preset (the demo) or ``--preset`` at batch ``--batch_size`` with two
224-px cameras. Prints the median step time, the process CPU seconds per step, and the speed relative to
depi's choice for all CPUs free (:func:`depi.threads.default_num_threads`, OpenMP's default wait policy)
; with ``--load``, the passive policy :func:`depi.threads.set_wait_policy` picks on a busy machine.

Usage::

    PYTHONPATH=src .venv/bin/python benchmarks/bench_threads.py                 # ~2 minutes on 2 cores
    PYTHONPATH=src .venv/bin/python benchmarks/bench_threads.py --rounds 5 --steps 20 --preset tiny
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path


def worker(preset: str, batch_size: int, steps: int) -> None:
    """Inside one configuration's process: time ``steps`` training steps after 3 warm-up steps; print JSON."""
    import torch

    from depi.constants import BASE_CAMERA, IMAGE, IMAGE_MASK, LEFT_WRIST_CAMERA, STATE, TOKENIZED_PROMPT
    from depi.constants import ACTIONS, TOKENIZED_PROMPT_MASK
    from depi.policies.pi0 import PI0Policy, make_config

    torch.manual_seed(0)
    config = make_config(preset)
    policy = PI0Policy(config).train()
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-4)
    size, b = config.vision.image_size, batch_size
    batch = {
        IMAGE: {cam: torch.randint(0, 256, (b, 3, size, size), dtype=torch.uint8)
                for cam in (BASE_CAMERA, LEFT_WRIST_CAMERA)},
        IMAGE_MASK: {cam: torch.ones(b, dtype=torch.bool) for cam in (BASE_CAMERA, LEFT_WRIST_CAMERA)},
        TOKENIZED_PROMPT: torch.randint(0, 1000, (b, 24)),
        TOKENIZED_PROMPT_MASK: torch.ones(b, 24, dtype=torch.bool),
        STATE: torch.randn(b, config.state_dim),
        ACTIONS: torch.randn(b, config.action_horizon, config.action_dim),
    }  # fmt: skip

    def step() -> None:
        loss, _ = policy.compute_loss(batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(3):
        step()
    walls, cpus = [], []
    for _ in range(steps):
        wall, cpu = time.perf_counter(), time.process_time()
        step()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    walls.sort()
    cpus.sort()
    print(json.dumps({"wall": walls[len(walls) // 2], "cpu": cpus[len(cpus) // 2], "threads": torch.get_num_threads()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--load", type=int, default=0,
                        help="busy processes running beside the step (as DataLoader workers decoding video would)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.preset, args.batch_size, args.steps)
        return

    from depi.threads import available_cpus

    cpus = available_cpus()
    thread_counts = sorted({1, cpus} | ({2} if cpus > 2 else set()))
    configs = [(n, policy) for n in thread_counts for policy in ("unset", "ACTIVE", "PASSIVE")]
    times: dict[tuple[int, str], list[dict]] = {c: [] for c in configs}
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.load)]
    try:
        run_rounds(args, configs, times)
    finally:
        for process in busy:
            process.kill()
    report(args, cpus, configs, times)


def run_rounds(args, configs, times) -> None:
    for _ in range(args.rounds):
        for n, policy in configs:
            env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
            env.update({"OMP_NUM_THREADS": str(n)}, **({} if policy == "unset" else {"OMP_WAIT_POLICY": policy}))
            out = subprocess.run(
                [sys.executable, __file__, "--worker", f"--preset={args.preset}", f"--batch_size={args.batch_size}",
                 f"--steps={args.steps}"], env=env, capture_output=True, text=True, check=True,
            )  # fmt: skip
            times[(n, policy)].append(json.loads(out.stdout.strip().splitlines()[-1]))


def report(args, cpus, configs, times) -> None:
    from depi.threads import default_num_threads

    default = (default_num_threads(), "PASSIVE" if args.load else "unset")  # what depi picks on an idle machine
    best = {c: min(r["wall"] for r in runs) for c, runs in times.items()}
    ref = best.get(default, min(best.values()))
    print(f"\n{args.preset} pi0 training step, batch {args.batch_size}, 2 cameras 224 px; {args.rounds} interleaved "
          f"rounds x {args.steps} steps; {args.load} busy processes beside; {platform.machine()}, {cpus} CPUs "
          f"available, load avg "
          f"{os.getloadavg()[0]:.2f}\n")  # fmt: skip
    header = f"{'threads':>7}  {'OMP_WAIT_POLICY':<15}  {'step s (best median)':>20}  {'CPU s/step':>10}  {'vs default':>10}"
    print(header)
    print("-" * len(header))
    for c in configs:
        cpu = min(r["cpu"] for r in times[c])
        mark = "  <- default" if c == default else ""
        print(f"{c[0]:>7}  {c[1]:<15}  {best[c]:>20.3f}  {cpu:>10.3f}  {ref / best[c]:>9.2f}x{mark}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    main()
