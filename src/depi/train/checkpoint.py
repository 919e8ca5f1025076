"""Atomic training checkpoints: save, find the latest complete one, restore, prune.

Layout of ``<run_dir>/checkpoints/<step:09d>/``::

    model/                     the policy's save_pretrained (model.safetensors + config.json)
    ema_model/                 the same with the EMA weights (only with --optim.ema_decay)
    train_config.yaml          the TrainConfig of the run (draccus)
    transforms.json            the transform pipeline config, rebuilt identically for serving
    tokenizer/<name>.model     copy of the SentencePiece model; transforms.json points to it (relative path)
    norm_stats/<embodiment>/norm_stats.json   per-embodiment stats in openpi's schema
    mixture_manifest.json      dataset ids, revisions where known, weights
    training_state/            optimizer.pt, scheduler.pt, ema.safetensors, sampler.json, rng_rank<r>.pt
    checkpoint_complete.json   written last; a folder without it is never resumed from

A checkpoint is written into ``checkpoints/.tmp-<step>`` (same parent), every file fsync-ed, then renamed to
its final name: a crash leaves a temp folder, never a half-written checkpoint under a step name.

Every tensor on disk is full (unsharded) and keyed by the policy's parameter names, whatever the launch (one
process, DDP, FSDP): ``optimizer.pt`` is ``torch.distributed.checkpoint.state_dict``'s full optimizer state
dict (``{"state": {name: {"step", "exp_avg", "exp_avg_sq"}}, "param_groups": [{"params": [names], ...}]}``).
Under FSDP every rank takes part in gathering the shards and only the main process writes; on resume each
rank keeps its slice. A checkpoint therefore resumes with or without FSDP and on another number of processes
(the sampler continues the global sample stream; see :meth:`depi.datasets.mixture.sampler.MixtureSampler.load_state_dict`).
"""

from __future__ import annotations

import json
import logging
import os
import random
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
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)

from depi.train.config import TrainConfig
from depi.train.fsdp import full_tensor, is_sharded
from depi.train.optim import EMA
from depi.train.run_layout import (
    CHECKPOINTS_DIR,
    COMPLETE_MARKER,
    EMA_MODEL_DIR,
    MANIFEST_FILE,
    MODEL_DIR,
    STEP_NAME,
    TRAIN_CONFIG_FILE,
    TRAINING_STATE_DIR,
    checkpoint_path,
    latest_checkpoint,
)
from depi.transforms.base import TransformGroup
from depi.transforms.norm_stats import NormStats, save_group_norm_stats


logger = logging.getLogger(__name__)


@dataclass
class CheckpointContents:
    """What one checkpoint holds besides the weights (see the module docstring for the layout)."""

    step: int
    config: TrainConfig
    sampler_state: Mapping[str, Any]
    transforms: TransformGroup
    norm_stats: Mapping[str, Mapping[str, NormStats]]
    manifest: Mapping[str, Any]


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


_GATHER = StateDictOptions(full_state_dict=True, cpu_offload=True)
"""Full tensors, in CPU memory, on the main process (rank 0) only; the other ranks get an empty dict."""


def _save_policy(policy: nn.Module, directory: Path, accelerator) -> None:
    """``policy.save_pretrained(directory)`` on the main process; every rank calls (collective under FSDP).

    A sharded policy's full weights are gathered first and passed as ``save_pretrained(directory, state_dict=...)``.
    """
    if not is_sharded(policy):
        if accelerator.is_main_process:
            policy.save_pretrained(directory)
        return
    weights = get_model_state_dict(policy, options=_GATHER)  # {} except on rank 0
    if accelerator.is_main_process:
        policy.save_pretrained(directory, state_dict=weights)


def _gather_to_main(tensors: Mapping[str, torch.Tensor], accelerator) -> dict[str, torch.Tensor]:
    """Full CPU copies of ``tensors`` (``DTensor`` shards are gathered, one at a time) on the main process, ``{}``
    elsewhere; every rank calls."""
    gathered = {}
    for name, tensor in tensors.items():
        full = full_tensor(tensor)
        if accelerator.is_main_process:
            gathered[name] = full.detach().cpu().contiguous()
    return gathered


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

    Args:
        policy: The unwrapped policy, sharded under FSDP (its full weights are then gathered by all ranks);
            ``save_pretrained`` runs on the main process.
        optimizer: The torch optimizer over the policy's parameters (not accelerate's wrapper).
        scheduler, ema: Saved by the main process (the EMA shards are gathered first under FSDP).

    Each rank writes its own RNG state. Returns the final checkpoint folder.
    """
    final = checkpoint_path(run_dir, contents.step)
    tmp = final.parent / f".tmp-{final.name}"
    state_dir = tmp / TRAINING_STATE_DIR
    main = accelerator.is_main_process
    if main:
        if tmp.exists():
            shutil.rmtree(tmp)
        state_dir.mkdir(parents=True)
    accelerator.wait_for_everyone()
    torch.save(_rng_state(), state_dir / f"rng_rank{accelerator.process_index}.pt")
    # Collective part, identical order on every rank: weights, EMA weights and averages, optimizer state.
    _save_policy(policy, tmp / MODEL_DIR, accelerator)
    if ema is not None:
        with ema.swapped_in(policy):
            _save_policy(policy, tmp / EMA_MODEL_DIR, accelerator)
        ema_state = _gather_to_main(ema.state_dict(), accelerator)
        if main:
            save_file(ema_state, state_dir / "ema.safetensors")
    optimizer_state = get_optimizer_state_dict(policy, optimizer, options=_GATHER)
    accelerator.wait_for_everyone()
    if main:
        torch.save(optimizer_state, state_dir / "optimizer.pt")
        torch.save(scheduler.state_dict(), state_dir / "scheduler.pt")
        (state_dir / "sampler.json").write_text(json.dumps(dict(contents.sampler_state), indent=2))
        with open(tmp / TRAIN_CONFIG_FILE, "w") as f:
            draccus.dump(contents.config, f)
        contents.transforms.save(tmp, copy_files=True)  # the tokenizer model travels with the checkpoint
        for embodiment, stats in contents.norm_stats.items():
            save_group_norm_stats(tmp / "norm_stats", embodiment, stats)
        (tmp / MANIFEST_FILE).write_text(json.dumps(dict(contents.manifest), indent=2))
        marker = {"step": contents.step, "num_processes": accelerator.num_processes}
        (tmp / COMPLETE_MARKER).write_text(json.dumps(marker))
        _fsync_tree(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_tree(final.parent)
    accelerator.wait_for_everyone()
    return final


def _require_files(checkpoint: Path, *paths: Path) -> None:
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"Checkpoint {checkpoint} is missing {path}; resume from another checkpoint.")


def load_weights(checkpoint: Path, policy: nn.Module) -> None:
    """Load the checkpoint's full model weights into the (unsharded, unwrapped) ``policy``; every rank calls.

    Call before sharding (FSDP) or ``accelerator.prepare``.

    Raises:
        FileNotFoundError: ``model/model.safetensors`` is missing.
        RuntimeError: The saved weights do not match the policy's parameters (missing/unexpected keys).
    """
    weights = Path(checkpoint) / MODEL_DIR / "model.safetensors"
    _require_files(Path(checkpoint), weights)
    policy.load_state_dict(load_file(weights), strict=True)


def load_training_state(
    checkpoint: Path,
    *,
    accelerator,
    policy: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    ema: EMA | None,
) -> tuple[int, dict[str, Any]]:
    """Restore optimizer, scheduler, EMA and this rank's RNG from ``checkpoint``; every rank calls.

    Call after :func:`load_weights`, after sharding (FSDP: each rank keeps its slice of the optimizer state and
    EMA; the main process reads ``optimizer.pt`` and broadcasts it) and before ``accelerator.prepare``.
    ``optimizer`` and ``ema`` must have been built from ``policy``. When the checkpoint was saved with another
    number of processes, a rank without a saved RNG state keeps its fresh seed (the flow-matching noise then
    differs from an uninterrupted run; a warning says so). Returns (step, sampler state).

    Raises:
        FileNotFoundError: A file of the checkpoint is missing (named).
        KeyError / ValueError: the optimizer or EMA state does not match the policy's trainable parameters.
    """
    checkpoint = Path(checkpoint)
    marker = json.loads((checkpoint / COMPLETE_MARKER).read_text())
    state_dir = checkpoint / TRAINING_STATE_DIR
    _require_files(checkpoint, state_dir / "optimizer.pt", state_dir / "scheduler.pt", state_dir / "sampler.json")
    sharded = is_sharded(policy)
    optimizer_state = {}
    if accelerator.is_main_process or not sharded:  # under FSDP only the main process reads; it broadcasts
        optimizer_state = torch.load(state_dir / "optimizer.pt", map_location="cpu", weights_only=True)
    set_optimizer_state_dict(
        policy, optimizer, optimizer_state, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=sharded)
    )
    scheduler.load_state_dict(torch.load(state_dir / "scheduler.pt", weights_only=True))
    if ema is not None:
        ema_file = state_dir / "ema.safetensors"
        if not ema_file.is_file():
            raise FileNotFoundError(
                f"--optim.ema_decay is set but checkpoint {checkpoint} has no {ema_file} (saved without EMA)."
            )
        ema.load_state_dict(load_file(ema_file))
    rng_file = state_dir / f"rng_rank{accelerator.process_index}.pt"
    if rng_file.is_file():
        _set_rng_state(torch.load(rng_file, weights_only=False))
    if marker["num_processes"] != accelerator.num_processes:
        logger.warning(
            "Checkpoint %s was saved by %d processes and resumes on %d: the sample stream continues where it "
            "stopped, but the per-rank flow-matching noise differs from an uninterrupted run.",
            checkpoint, marker["num_processes"], accelerator.num_processes,
        )
    sampler_state = json.loads((state_dir / "sampler.json").read_text())
    return int(marker["step"]), sampler_state


def _held_out(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The held-out part of a mixture manifest: ``holdout_dir`` and each dataset's ``held_out_episodes``."""
    per_dataset = {
        str(d["repo_id"]): d.get("held_out_episodes")
        for d in manifest.get("datasets", [])
        if isinstance(d, Mapping) and "repo_id" in d
    }
    return json.loads(json.dumps({"holdout_dir": manifest.get("holdout_dir"), "datasets": per_dataset}))


def check_resumed_manifest(checkpoint: Path, manifest: Mapping[str, Any]) -> None:
    """Refuse to resume when this run holds out other episodes than the checkpoint's run.

    The held-out episodes are removed from the sampled frames, so another held-out set silently changes the
    sample stream (and leaks test episodes into training, or the reverse). Datasets present in only one of the
    two manifests are not compared. Another ``holdout_dir`` holding the same split (a moved folder) only logs a
    warning: the stream is unchanged.

    Raises:
        ValueError: A dataset's ``held_out_episodes`` differ between ``<checkpoint>/mixture_manifest.json`` and
            ``manifest``; the message gives both ``holdout_dir`` values, the episodes and the fix.
    """
    path = Path(checkpoint) / MANIFEST_FILE
    if not path.is_file():
        return
    old, new = _held_out(json.loads(path.read_text())), _held_out(manifest)
    shared = sorted(set(old["datasets"]) & set(new["datasets"]))
    changed = [
        f"{repo_id}: {old['datasets'][repo_id]} -> {new['datasets'][repo_id]}"
        for repo_id in shared
        if old["datasets"][repo_id] != new["datasets"][repo_id]
    ]
    if not changed:
        if old["holdout_dir"] != new["holdout_dir"]:
            logger.warning("%s records holdout_dir=%r, this run has %r: same held-out episodes, resuming.",
                           path, old["holdout_dir"], new["holdout_dir"])
        return
    keep = "null (no held-out episodes)" if old["holdout_dir"] is None else f"{old['holdout_dir']} and the same split files"
    raise ValueError(
        f"{path} records holdout_dir={old['holdout_dir']!r}, but this resumed run has "
        f"--dataset.holdout_dir={new['holdout_dir']!r}; held-out episodes that differ (checkpoint -> now): "
        f"{changed[:5] or 'none'}. The sample stream would silently change. Resume with "
        f"--dataset.holdout_dir={keep}, or start a new run (another --output_dir) from these weights with "
        f"--policy.path={Path(checkpoint) / MODEL_DIR}."
    )


def prune_checkpoints(run_dir: Path, keep_last: int, keep_period: int | None) -> list[Path]:
    """Delete complete checkpoints except the ``keep_last`` latest and those at multiples of ``keep_period``.

    Also removes leftover ``.tmp-*`` folders. Returns the deleted folders. Call on the main process only.
    """
    root = Path(run_dir) / CHECKPOINTS_DIR
    steps = sorted(p for p in root.iterdir() if STEP_NAME.match(p.name) and (p / COMPLETE_MARKER).is_file())
    keep = set(steps[-keep_last:])
    if keep_period:
        keep |= {p for p in steps if int(p.name) % keep_period == 0}
    removed = [p for p in steps if p not in keep] + [p for p in root.iterdir() if p.name.startswith(".tmp-")]
    for path in removed:
        shutil.rmtree(path)
    return removed
