"""Small policies and in-memory mixtures with the interfaces the training loop takes (tests only)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn
from torch.utils.data import Dataset

from depi.constants import (
    ACTION_DIM_MASK,
    ACTION_IS_PAD,
    ACTIONS,
    CAMERA_SLOTS,
    DATASET_INDEX,
    IMAGE,
    IMAGE_MASK,
    MAX_ACTION_DIM,
    STATE,
    TOKENIZED_PROMPT,
    TOKENIZED_PROMPT_MASK,
)
from depi.datasets.mixture.sampler import MixtureSampler
from depi.policies.pi0 import PI0Policy
from depi.train.config import TrainConfig
from depi.transforms.base import TransformGroup
from depi.transforms.norm_stats import NormStats

HORIZON = 4
TOKENS = 12


class ToyFlowPolicy(nn.Module):
    """Predicts the flow-matching velocity from state, noisy actions and time with a 2-layer MLP."""

    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        width = MAX_ACTION_DIM * (HORIZON + 1) + 1
        self.net = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, MAX_ACTION_DIM * HORIZON))

    def compute_loss(
        self, batch: dict[str, Any], noise: torch.Tensor | None = None, time: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        actions = batch[ACTIONS]  # (B, H, 32)
        noise = torch.randn_like(actions) if noise is None else noise  # global torch RNG, as the real policy
        t = (torch.rand(actions.shape[0]) if time is None else time)[:, None, None]
        x_t = t * noise + (1 - t) * actions
        inputs = torch.cat([batch[STATE], x_t.flatten(1), t.flatten(1)], dim=1)
        v = self.net(inputs).view_as(actions)
        mask = batch[ACTION_DIM_MASK][:, None, :] & ~batch[ACTION_IS_PAD][:, :, None]
        err = ((v - (noise - actions)) ** 2) * mask
        per_sample = err.flatten(1).sum(1) / mask.flatten(1).sum(1)
        return per_sample.mean(), {"per_sample_loss": per_sample.detach()}

    def save_pretrained(self, directory: str | Path, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = self.state_dict() if state_dict is None else state_dict
        save_file({k: v.contiguous() for k, v in tensors.items()}, directory / "model.safetensors")
        (directory / "config.json").write_text(json.dumps({"type": "toy", "horizon": HORIZON}))


class ToySamples(Dataset):
    """Canonical samples of ``len(sizes)`` datasets; sample i is a pure function of i."""

    def __init__(self, sizes: list[int]) -> None:
        self.dataset_of = np.repeat(np.arange(len(sizes)), sizes)

    def __len__(self) -> int:
        return len(self.dataset_of)

    def __getitem__(self, index: int) -> dict[str, Any]:
        g = torch.Generator().manual_seed(int(index))
        dims = 6 + int(self.dataset_of[index])
        dim_mask = torch.arange(MAX_ACTION_DIM) < dims
        return {
            STATE: torch.randn(MAX_ACTION_DIM, generator=g) * dim_mask,
            ACTIONS: torch.randn(HORIZON, MAX_ACTION_DIM, generator=g) * dim_mask,
            ACTION_DIM_MASK: dim_mask,
            ACTION_IS_PAD: torch.zeros(HORIZON, dtype=torch.bool),
            DATASET_INDEX: int(self.dataset_of[index]),
            "index": int(index),
        }


@dataclass
class ToyData:
    """An in-memory mixture: the fields of ``depi.train.data.TrainData``."""

    dataset: ToySamples
    sampler: MixtureSampler
    dataset_names: list[str]
    transforms: TransformGroup = field(default_factory=TransformGroup)
    norm_stats: dict = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)


def make_toy_data(seed: int = 0, rank: int = 0, world_size: int = 1, sizes: tuple[int, ...] = (40, 24)) -> ToyData:
    names = [f"toy/dataset_{i}" for i in range(len(sizes))]
    sampler = MixtureSampler(np.array(sizes), np.array(sizes) / sum(sizes), seed=seed, rank=rank,
                             world_size=world_size)
    stats = {"toy_arm": {"state": NormStats(mean=np.zeros(6, np.float32), std=np.ones(6, np.float32))}}
    manifest = {"datasets": [{"repo_id": n, "frames": s} for n, s in zip(names, sizes)]}
    return ToyData(ToySamples(list(sizes)), sampler, names, norm_stats=stats, manifest=manifest)


def toy_config(output_dir: Path, **overrides: Any) -> TrainConfig:
    """A CPU run config: tiny batch, checkpoint each few steps, every step logged."""
    cfg = TrainConfig(**{
        "output_dir": str(output_dir), "batch_size": 4, "steps": 6, "save_freq": 3, "log_freq": 1,
        "num_workers": 0, "per_dataset_loss_freq": 2, "keep_last": 5, "keep_period": None,
        "mixed_precision": "no", "deterministic": True, "seed": 7, **overrides,
    })
    cfg.optim.warmup_steps, cfg.optim.decay_steps, cfg.optim.peak_lr = 2, 10, 1e-2
    return cfg


class CanonicalBatches(Dataset):
    """Model-ready canonical samples (after the transforms), a pure function of the index."""

    def __len__(self) -> int:
        return 32

    def __getitem__(self, index: int) -> dict:
        g = torch.Generator().manual_seed(index)
        size = (3, 224, 224)
        return {
            IMAGE: {slot: torch.randint(0, 256, size, generator=g, dtype=torch.uint8) for slot in CAMERA_SLOTS},
            IMAGE_MASK: {slot: torch.tensor(slot != CAMERA_SLOTS[2]) for slot in CAMERA_SLOTS},
            STATE: torch.randn(MAX_ACTION_DIM, generator=g),
            ACTIONS: torch.randn(HORIZON, MAX_ACTION_DIM, generator=g),
            ACTION_DIM_MASK: torch.arange(MAX_ACTION_DIM) < 6,
            ACTION_IS_PAD: torch.arange(HORIZON) >= HORIZON - 1,
            TOKENIZED_PROMPT: torch.randint(0, 300, (TOKENS,), generator=g),
            TOKENIZED_PROMPT_MASK: torch.arange(TOKENS) < 5 + index % 4,
            DATASET_INDEX: index % 2,
        }


@dataclass
class CanonicalData:
    dataset: CanonicalBatches = field(default_factory=CanonicalBatches)
    sampler: MixtureSampler = field(
        default_factory=lambda: MixtureSampler(np.array([16, 16]), np.array([0.5, 0.5]), seed=3)
    )
    dataset_names: list = field(default_factory=lambda: ["sim/a", "sim/b"])
    transforms: TransformGroup = field(default_factory=TransformGroup)
    norm_stats: dict = field(default_factory=dict)
    manifest: dict = field(default_factory=lambda: {"datasets": ["sim/a", "sim/b"]})


class IndexedBatches(CanonicalBatches):
    """:class:`CanonicalBatches` whose samples also carry their ``index`` (for :class:`PerSampleNoisePI0`)."""

    def __getitem__(self, index: int) -> dict:
        return {**super().__getitem__(index), "index": index}


class PerSampleNoisePI0(PI0Policy):
    """The pi0 policy with flow-matching noise and time drawn from each sample's ``index``.

    A sample's loss then no longer depends on the rank or the batch it lands in, so runs that split the same
    global batches differently (one process with batch 2B, two with B) compute the same losses and updates.
    """

    def compute_loss(self, batch, noise=None, time=None):
        gens = [torch.Generator().manual_seed(int(i)) for i in batch["index"]]
        shape = batch[ACTIONS].shape[1:]
        noise = torch.stack([torch.randn(shape, generator=g) for g in gens]).to(batch[ACTIONS].device)
        time = torch.stack([torch.rand((), generator=g) * 0.999 + 0.001 for g in gens]).to(batch[ACTIONS].device)
        return super().compute_loss(batch, noise=noise, time=time)


def indexed_data(rank: int = 0, world_size: int = 1) -> CanonicalData:
    """:class:`CanonicalData` over :class:`IndexedBatches`, this rank's shard of the seed-3 stream."""
    sampler = MixtureSampler(np.array([16, 16]), np.array([0.5, 0.5]), seed=3, rank=rank, world_size=world_size)
    return CanonicalData(dataset=IndexedBatches(), sampler=sampler)
