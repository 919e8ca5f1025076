"""Atomic training checkpoints: save, find the latest complete one, restore, prune.

Layout of ``<run_dir>/checkpoints/<step:09d>/``::

    model/                     the policy's save_pretrained (model.safetensors + config.json)
    ema_model/                 the same with the EMA weights (only with --optim.ema_decay)
    train_config.yaml          the TrainConfig of the run (draccus)
    transforms.json            the transform pipeline config, rebuilt identically for serving
    norm_stats/<embodiment>/norm_stats.json   per-embodiment stats in openpi's schema
    mixture_manifest.json      dataset ids, revisions where known, weights
    training_state/            optimizer.pt, scheduler.pt, ema.safetensors, sampler.json, rng_rank<r>.pt
    checkpoint_complete.json   written last; a folder without it is never resumed from

A checkpoint is written into ``checkpoints/.tmp-<step>`` (same parent), every file fsync-ed, then renamed to
its final name: a crash leaves a temp folder, never a half-written checkpoint under a step name.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import draccus
import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from depi.train.config import TrainConfig
from depi.train.optim import EMA
from depi.transforms.base import TransformGroup
from depi.transforms.norm_stats import NormStats, save_group_norm_stats

CHECKPOINTS_DIR = "checkpoints"
COMPLETE_MARKER = "checkpoint_complete.json"
MODEL_DIR = "model"
EMA_MODEL_DIR = "ema_model"
TRAINING_STATE_DIR = "training_state"
TRAIN_CONFIG_FILE = "train_config.yaml"
_STEP_NAME = re.compile(r"^\d{9}$")


@dataclass
class CheckpointContents:
    """What one checkpoint holds besides the weights (see the module docstring for the layout)."""

    step: int
    config: TrainConfig
    sampler_state: Mapping[str, Any]
    transforms: TransformGroup
    norm_stats: Mapping[str, Mapping[str, NormStats]]
    manifest: Mapping[str, Any]


def checkpoint_path(run_dir: Path, step: int) -> Path:
    """``<run_dir>/checkpoints/<step:09d>``."""
    return Path(run_dir) / CHECKPOINTS_DIR / f"{step:09d}"


def _fsync_tree(root: Path) -> None:
    for path in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    fd = os.open(root, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def save_checkpoint(
    run_dir: Path,
    contents: CheckpointContents,
    *,
    accelerator,
    policy: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    ema: EMA | None,
) -> Path:
    """Write the checkpoint of ``contents.step`` atomically; every rank calls this (collective).

    ``policy`` is the unwrapped policy (``save_pretrained`` is called on the main process); each rank writes
    its own RNG state. Returns the final checkpoint folder.
    """
    final = checkpoint_path(run_dir, contents.step)
    tmp = final.parent / f".tmp-{final.name}"
    if accelerator.is_main_process:
        if tmp.exists():
            shutil.rmtree(tmp)
        (tmp / TRAINING_STATE_DIR).mkdir(parents=True)
    accelerator.wait_for_everyone()
    torch.save(_rng_state(), tmp / TRAINING_STATE_DIR / f"rng_rank{accelerator.process_index}.pt")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        state_dir = tmp / TRAINING_STATE_DIR
        policy.save_pretrained(tmp / MODEL_DIR)
        if ema is not None:
            with ema.swapped_in(policy):
                policy.save_pretrained(tmp / EMA_MODEL_DIR)
            save_file({k: v.contiguous() for k, v in ema.state_dict().items()}, state_dir / "ema.safetensors")
        torch.save(optimizer.state_dict(), state_dir / "optimizer.pt")
        torch.save(scheduler.state_dict(), state_dir / "scheduler.pt")
        (state_dir / "sampler.json").write_text(json.dumps(dict(contents.sampler_state), indent=2))
        with open(tmp / TRAIN_CONFIG_FILE, "w") as f:
            draccus.dump(contents.config, f)
        contents.transforms.save(tmp)
        for embodiment, stats in contents.norm_stats.items():
            save_group_norm_stats(tmp / "norm_stats", embodiment, stats)
        (tmp / "mixture_manifest.json").write_text(json.dumps(dict(contents.manifest), indent=2))
        marker = {"step": contents.step, "num_processes": accelerator.num_processes}
        (tmp / COMPLETE_MARKER).write_text(json.dumps(marker))
        _fsync_tree(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_tree(final.parent)
    accelerator.wait_for_everyone()
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The complete checkpoint with the highest step under ``run_dir``, or ``None``.

    Folders without ``checkpoint_complete.json`` (and ``.tmp-*`` folders) are ignored.
    """
    root = Path(run_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return None
    complete = [p for p in root.iterdir() if _STEP_NAME.match(p.name) and (p / COMPLETE_MARKER).is_file()]
    return max(complete, key=lambda p: int(p.name), default=None)


def load_checkpoint(
    checkpoint: Path,
    *,
    accelerator,
    policy: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    ema: EMA | None,
) -> tuple[int, dict[str, Any]]:
    """Restore weights, optimizer, scheduler, EMA and this rank's RNG from ``checkpoint``.

    Call before ``accelerator.prepare``. Returns (step, sampler state).

    Raises:
        FileNotFoundError: A file of the checkpoint is missing (named), e.g. the RNG state of this rank when
            the run resumes on more processes than it was saved with.
        RuntimeError: The saved weights do not match the policy's parameters (missing/unexpected keys).
    """
    checkpoint = Path(checkpoint)
    marker = json.loads((checkpoint / COMPLETE_MARKER).read_text())
    state_dir = checkpoint / TRAINING_STATE_DIR
    weights = checkpoint / MODEL_DIR / "model.safetensors"
    rng_file = state_dir / f"rng_rank{accelerator.process_index}.pt"
    for path in (weights, state_dir / "optimizer.pt", state_dir / "scheduler.pt", state_dir / "sampler.json"):
        if not path.is_file():
            raise FileNotFoundError(f"Checkpoint {checkpoint} is missing {path}; resume from another checkpoint.")
    if not rng_file.is_file():
        raise FileNotFoundError(
            f"Checkpoint {checkpoint} has no RNG state for rank {accelerator.process_index} ({rng_file}): it was "
            f"saved with {marker['num_processes']} processes; resume with the same number of processes."
        )
    policy.load_state_dict(load_file(weights), strict=True)
    optimizer.load_state_dict(torch.load(state_dir / "optimizer.pt", weights_only=True))
    scheduler.load_state_dict(torch.load(state_dir / "scheduler.pt", weights_only=True))
    if ema is not None:
        ema_file = state_dir / "ema.safetensors"
        if not ema_file.is_file():
            raise FileNotFoundError(
                f"--optim.ema_decay is set but checkpoint {checkpoint} has no {ema_file} (saved without EMA)."
            )
        ema.load_state_dict(load_file(ema_file))
    _set_rng_state(torch.load(rng_file, weights_only=False))
    sampler_state = json.loads((state_dir / "sampler.json").read_text())
    return int(marker["step"]), sampler_state


def prune_checkpoints(run_dir: Path, keep_last: int, keep_period: int | None) -> list[Path]:
    """Delete complete checkpoints except the ``keep_last`` latest and those at multiples of ``keep_period``.

    Also removes leftover ``.tmp-*`` folders. Returns the deleted folders. Call on the main process only.
    """
    root = Path(run_dir) / CHECKPOINTS_DIR
    steps = sorted(p for p in root.iterdir() if _STEP_NAME.match(p.name) and (p / COMPLETE_MARKER).is_file())
    keep = set(steps[-keep_last:])
    if keep_period:
        keep |= {p for p in steps if int(p.name) % keep_period == 0}
    removed = [p for p in steps if p not in keep] + [p for p in root.iterdir() if p.name.startswith(".tmp-")]
    for path in removed:
        shutil.rmtree(path)
    return removed
