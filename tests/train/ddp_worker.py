"""One rank of the 2-process CPU (gloo) training runs of test_distributed.py; writes what it saw as JSON.

Run as ``torchrun --nproc_per_node 2 tests/train/ddp_worker.py OUT_DIR toy|pi0``: ``toy`` trains the small
policy and records batches and all-reduces; ``pi0`` trains the real tiny pi0 with its preset's DDP settings.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

from depi.datasets.mixture.sampler import MixtureSampler
from depi.policies.pi0 import PI0Policy, make_config
from depi.train import loop
from depi.train.config import parse_args
from tests.train.train_toys import HORIZON, TOKENS, CanonicalData, ToyFlowPolicy, make_toy_data, toy_config

BATCH_SIZE, ACCUMULATION, STEPS = 2, 2, 3


class RecordingPolicy(ToyFlowPolicy):
    """Records the sample indices of every micro-batch it trains on."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[list[int]] = []

    def compute_loss(self, batch):
        self.seen.append([int(i) for i in batch["index"]])
        return super().compute_loss(batch)


def main_pi0(out_dir: Path) -> None:
    """Two steps of the tiny pi0 under DDP with the demo preset's settings."""
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    preset = parse_args(["--config_path=demo"])
    cfg = toy_config(out_dir / "run", steps=2, save_freq=2, batch_size=1,
                     find_unused_parameters=preset.find_unused_parameters)
    cfg.policy = make_config("tiny", action_horizon=HORIZON, max_token_len=TOKENS)
    torch.manual_seed(0)
    policy = PI0Policy(cfg.policy)
    sampler = MixtureSampler(np.array([16, 16]), np.array([0.5, 0.5]), seed=3, rank=rank, world_size=world)
    loop.train(cfg, policy=policy, data=CanonicalData(sampler=sampler))
    digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in policy.parameters())).hexdigest()
    (out_dir / f"rank{rank}.json").write_text(json.dumps({"rank": rank, "param_sha256": digest}))


def main(out_dir: Path) -> None:
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    allreduce_calls = []
    make_accelerator = loop.make_accelerator

    def counting_accelerator(cfg, **kwargs):
        accelerator = make_accelerator(cfg, **kwargs)
        prepare = accelerator.prepare

        def prepare_and_count(*objects):
            prepared = prepare(*objects)
            ddp = prepared[0]

            def hook(state, bucket):
                allreduce_calls.append(1)
                return default_hooks.allreduce_hook(None, bucket)

            ddp.register_comm_hook(None, hook)
            return prepared

        accelerator.prepare = prepare_and_count
        return accelerator

    loop.make_accelerator = counting_accelerator
    torch.manual_seed(0)
    policy = RecordingPolicy()
    cfg = toy_config(out_dir / "run", steps=STEPS, save_freq=STEPS, batch_size=BATCH_SIZE,
                     gradient_accumulation_steps=ACCUMULATION, per_dataset_loss_freq=1)
    result = loop.train(cfg, policy=policy, data=make_toy_data(rank=rank, world_size=world))
    digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in policy.parameters())).hexdigest()
    report = {"rank": rank, "world": world, "seen": policy.seen, "param_sha256": digest,
              "allreduce_calls": len(allreduce_calls), "checkpoint": str(result.checkpoint)}
    (out_dir / f"rank{rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    (main if sys.argv[2] == "toy" else main_pi0)(Path(sys.argv[1]))
