"""One rank of the 2-process CPU (gloo) FSDP training runs of test_fsdp.py; writes what it saw as JSON.

Launched with the production config, ``accelerate launch --config_file configs/accelerate/fsdp.yaml
--num_processes 2 --mixed_precision no tests/train/fsdp_worker.py OUT_DIR RUN_DIR STEPS VARIANT``:

* ``pi0``: the tiny pi0 (per-sample noise, EMA on), G micro-batches of B samples per rank and step, a checkpoint
  every 2 steps;
* ``pi0-resume``: the same, resuming RUN_DIR;
* ``lora-bf16``: the same with LoRA adapters, a frozen vision tower and bf16 mixed precision.

At every checkpoint each rank gathers the full weights itself (collective) and records their hash and how many
parameter elements it holds locally, before the loop saves them.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import torch
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.tensor import DTensor

from depi.policies.pi0 import make_config
from depi.train import checkpoint as ckpt
from depi.train import loop
from tests.train.train_toys import HORIZON, TOKENS, PerSampleNoisePI0, indexed_data, toy_config

BATCH_SIZE, ACCUMULATION, SAVE_FREQ, EMA_DECAY = 1, 2, 2, 0.9


def state_sha256(state: dict[str, torch.Tensor]) -> str:
    """Hash of a state dict's tensors (float32 bytes, sorted keys)."""
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def policy_config(variant: str):
    if variant != "lora-bf16":
        return make_config("tiny", action_horizon=HORIZON, max_token_len=TOKENS)
    tiny, lora = make_config("tiny"), {"lora_rank": 4, "lora_alpha": 4.0}
    return make_config(
        "tiny", action_horizon=HORIZON, max_token_len=TOKENS, train_vision_tower=False,
        vlm=replace(tiny.vlm, **lora), expert=replace(tiny.expert, **lora),
    )


def main(out_dir: Path, run_dir: Path, steps: int, variant: str) -> None:
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    saves = []
    save_checkpoint = ckpt.save_checkpoint

    def recording_save(run_dir, contents, *, policy, **kwargs):
        full = get_model_state_dict(policy, options=StateDictOptions(full_state_dict=True))  # on every rank
        local = sum((p.to_local() if isinstance(p, DTensor) else p).numel() for p in policy.parameters())
        saves.append({"step": contents.step, "sha256": state_sha256(full), "local_numel": local,
                      "numel": sum(v.numel() for v in full.values()),
                      "dtensor": all(isinstance(p, DTensor) for p in policy.parameters())})
        return save_checkpoint(run_dir, contents, policy=policy, **kwargs)

    ckpt.save_checkpoint = recording_save
    cfg = toy_config(run_dir, steps=steps, save_freq=SAVE_FREQ, batch_size=BATCH_SIZE,
                     gradient_accumulation_steps=ACCUMULATION, resume=variant == "pi0-resume")
    cfg.policy = policy_config(variant)
    if variant == "lora-bf16":
        cfg.mixed_precision = "bf16"
    else:
        cfg.optim.ema_decay = EMA_DECAY
    torch.manual_seed(0)
    policy = PerSampleNoisePI0(cfg.policy)
    initial = {k: v.detach().clone() for k, v in policy.state_dict().items()}
    trainable = sorted(k for k, p in policy.named_parameters() if p.requires_grad)
    result = loop.train(cfg, policy=policy, data=indexed_data(rank=rank, world_size=world))
    report = {"rank": rank, "world": world, "losses": result.losses, "saves": saves,
              "checkpoint": str(result.checkpoint), "trainable": trainable}
    if rank == 0:
        torch.save(initial, out_dir / "initial.pt")
    (out_dir / f"rank{rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
