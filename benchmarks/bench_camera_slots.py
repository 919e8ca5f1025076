"""Benchmark: pi0 with camera slots masked in the whole batch left out of the prefix vs embedded (openpi's and
lerobot's layout: every slot through SigLIP, its tokens masked), same weights, same inputs, one run.

Batches are canonical samples with ``--visible`` of the three camera slots shown and the rest masked out in every
sample (a single-camera robot: Meta-World, SO-101). Measures the minimum wall time of a training step (loss
forward + backward) and of action-chunk inference (``sample_actions``, batch 1), eager, on the CPU in float32.
Calls are interleaved one by one (skipping, embedding, embedding, skipping, ...) so machine load hits both sides
alike, at the same torch thread count (:func:`depi.threads.configure_threads`). Also checks that both give the
same loss. Prints a table with embed-all / skip time ratios (> 1: skipping is faster).

Usage::

    PYTHONPATH=src .venv/bin/python benchmarks/bench_camera_slots.py                  # tiny and small, ~1 min
    PYTHONPATH=src .venv/bin/python benchmarks/bench_camera_slots.py --sizes tiny --visible 2
"""

from __future__ import annotations

import argparse
import os
import time
from unittest.mock import patch

import torch

from depi.constants import (
    ACTION_DIM_MASK,
    ACTION_IS_PAD,
    ACTIONS,
    CAMERA_SLOTS,
    IMAGE,
    IMAGE_MASK,
    STATE,
    TOKENIZED_PROMPT,
    TOKENIZED_PROMPT_MASK,
)
from depi.policies.pi0 import PI0Policy, make_config
from depi.threads import configure_threads

# The sizes of bench_policy.py's "small" (widths 256) beside the demo preset's "tiny".
SMALL = {
    "vision": {"width": 256, "depth": 4, "mlp_dim": 1024, "num_heads": 4},
    "vlm": {"width": 256, "depth": 4, "mlp_dim": 1024, "num_heads": 8, "num_kv_heads": 1, "head_dim": 32},
    "expert": {"width": 256, "depth": 4, "mlp_dim": 1024, "num_heads": 8, "num_kv_heads": 1, "head_dim": 32},
}


def make_policy(size: str) -> PI0Policy:
    if size == "tiny":
        return PI0Policy(make_config("tiny"))
    config = make_config("tiny")
    for part, fields in SMALL.items():
        for name, value in fields.items():
            setattr(getattr(config, part), name, value)
    return PI0Policy(config)


def make_batch(policy: PI0Policy, batch_size: int, visible: int) -> dict:
    cfg, g = policy.config, torch.Generator().manual_seed(0)
    side = cfg.vision.image_size
    return {
        IMAGE: {s: torch.randint(0, 256, (batch_size, 3, side, side), generator=g, dtype=torch.uint8)
                for s in CAMERA_SLOTS},  # fmt: skip
        IMAGE_MASK: {s: torch.full((batch_size,), i < visible) for i, s in enumerate(CAMERA_SLOTS)},
        TOKENIZED_PROMPT: torch.randint(0, 300, (batch_size, 24), generator=g),
        TOKENIZED_PROMPT_MASK: torch.ones(batch_size, 24, dtype=torch.bool),
        STATE: torch.randn(batch_size, cfg.state_dim, generator=g),
        ACTIONS: torch.randn(batch_size, cfg.action_horizon, cfg.action_dim, generator=g),
        ACTION_DIM_MASK: torch.ones(batch_size, cfg.action_dim, dtype=torch.bool),
        ACTION_IS_PAD: torch.zeros(batch_size, cfg.action_horizon, dtype=torch.bool),
    }


def embed_all(images, masks):
    return list(images)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(size: str, batch_size: int, visible: int, repeats: int) -> list[tuple[str, float, float, float]]:
    torch.manual_seed(0)
    policy = make_policy(size)
    train_batch, infer_batch = make_batch(policy, batch_size, visible), make_batch(policy, 1, visible)
    noise = torch.randn(batch_size, policy.config.action_horizon, policy.config.action_dim)
    time_ = torch.full((batch_size,), 0.5)

    def train_step():
        policy.zero_grad(set_to_none=True)
        loss, _ = policy.compute_loss(train_batch, noise=noise, time=time_)
        loss.backward()
        return loss.detach()

    def infer():
        with torch.no_grad():
            policy.sample_actions(infer_batch)

    skip_loss = train_step()
    with patch("depi.policies.pi0.model._visible_cameras", embed_all):
        full_loss = train_step()
    max_diff = float((skip_loss - full_loss).abs())
    rows = []
    for name, fn in (("training step", train_step), ("inference", infer)):
        times = {"skip": [], "embed": []}
        fn()
        for i in range(repeats):
            for side in (("skip", "embed") if i % 2 == 0 else ("embed", "skip")):
                if side == "embed":
                    with patch("depi.policies.pi0.model._visible_cameras", embed_all):
                        times[side].append(timed(fn))
                else:
                    times[side].append(timed(fn))
        rows.append((name, min(times["embed"]), min(times["skip"]), max_diff))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["tiny", "small"], choices=["tiny", "small"])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--visible", type=int, default=1, choices=[1, 2, 3])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    threads = configure_threads()
    print(f"threads={threads}  load average={os.getloadavg()[0]:.2f}  batch={args.batch_size}  "
          f"visible cameras={args.visible} of {len(CAMERA_SLOTS)}  repeats={args.repeats} (min)")  # fmt: skip
    print(f"{'size':<6} {'measure':<14} {'embed all (ms)':>15} {'skip masked (ms)':>17} {'ratio':>6} {'|Δ loss|':>9}")
    for size in args.sizes:
        for name, full, skip, diff in measure(size, args.batch_size, args.visible, args.repeats):
            print(f"{size:<6} {name:<14} {full * 1e3:>15.1f} {skip * 1e3:>17.1f} {full / skip:>5.2f}× {diff:>9.1e}")


if __name__ == "__main__":
    main()
