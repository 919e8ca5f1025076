"""Benchmark: a whole training step (loss forward + backward + AdamW step) of the CPU presets' tiny pi0 with its
token embedding sized to the small demo tokenizer (``vlm.vocab_size: 1024``) vs PaliGemma's 257,152 rows.

With widths of 32, PaliGemma's embedding is 8.2 M of the tiny model's 8.4 M parameters: the forward only looks
up a few rows, but AdamW updates every row each step (its gradient is dense, zero outside the used rows). The
full-size side is also timed with ``torch.optim.AdamW(fused=True)``, its fastest CPU setting. Same weights
(the 1024 rows are the first rows of the full table), the same batch as ``bench_camera_slots.py`` with one visible
camera of three (a Meta-World or SO-101 sample, the ``demo_state`` preset's 56-px tower), float32, calls
interleaved one by one so machine load hits every side alike, at the same torch thread count (:func:`depi.threads.configure_threads`). Prints the
minimum time per side and its ratio to the 1024-row step (> 1: the sized embedding is faster), and checks the
losses agree.

Usage::

    PYTHONPATH=src .venv/bin/python benchmarks/bench_embedding_rows.py            # ~1 min on 2 cores
    PYTHONPATH=src .venv/bin/python benchmarks/bench_embedding_rows.py --batch-size 8 --repeats 20
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import torch

from bench_camera_slots import make_batch  # the same canonical batch, one camera of three visible
from depi.constants import ACTIONS
from depi.policies.pi0 import PI0Policy
from depi.policies.pi0.config import PALIGEMMA_VOCAB_SIZE
from depi.threads import configure_threads
from depi.train.config import parse_args


def make_sides(preset: str) -> dict[str, tuple[PI0Policy, torch.optim.Optimizer]]:
    config = parse_args([f"--config_path={preset}", "--dataset.root=unused"]).policy
    torch.manual_seed(0)
    full = PI0Policy(dataclasses.replace(config, vlm=dataclasses.replace(config.vlm, vocab_size=PALIGEMMA_VOCAB_SIZE)))
    sized = PI0Policy(config)
    state = full.state_dict()
    state["language_model.embed_tokens.weight"] = state["language_model.embed_tokens.weight"][: config.vlm.vocab_size]
    sized.load_state_dict(state)
    fused = PI0Policy(full.config)
    fused.load_state_dict(full.state_dict())
    return {
        "257,152 rows": (full, torch.optim.AdamW(full.parameters(), lr=1e-4)),
        "257,152 rows, fused AdamW": (fused, torch.optim.AdamW(fused.parameters(), lr=1e-4, fused=True)),
        f"{config.vlm.vocab_size:,} rows": (sized, torch.optim.AdamW(sized.parameters(), lr=1e-4)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="demo_state", help="training preset whose policy is timed")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    threads = configure_threads()
    sides = make_sides(args.preset)
    batch = make_batch(next(iter(sides.values()))[0], args.batch_size, visible=1)
    noise = torch.randn_like(batch[ACTIONS])
    time_ = torch.full((args.batch_size,), 0.5)

    def step(policy: PI0Policy, optimizer: torch.optim.Optimizer) -> tuple[float, float]:
        start = time.perf_counter()
        loss, _ = policy.compute_loss(batch, noise=noise, time=time_)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return time.perf_counter() - start, float(loss.detach())

    first = {name: step(*side)[1] for name, side in sides.items()}  # same weights: same first loss
    names = list(sides)
    times: dict[str, list[float]] = {n: [] for n in names}
    for i in range(args.repeats):
        for name in names if i % 2 == 0 else names[::-1]:
            times[name].append(step(*sides[name])[0])
    base = min(times[names[-1]])
    spread = max(first.values()) - min(first.values())
    print(f"preset={args.preset}  threads={threads}  load average={os.getloadavg()[0]:.2f}  batch={args.batch_size}  "
          f"repeats={args.repeats} (min)  |Δ first loss|={spread:.1e}")  # fmt: skip
    print(f"{'token embedding':<28} {'step (ms)':>10} {'ratio to sized':>15}")
    for name in names:
        best = min(times[name])
        print(f"{name:<28} {best * 1e3:>10.1f} {best / base:>14.2f}×")


if __name__ == "__main__":
    main()
