"""What the training loop needs from the data side, and the per-rank DataLoader built on it.

The loop sees the mixture only through :class:`TrainData` (a map-style dataset of transformed canonical
samples, this rank's infinite resumable sampler, and what the checkpoint must record).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from depi.datasets.mixture.dataset import worker_init
from depi.transforms.base import TransformGroup
from depi.transforms.norm_stats import NormStats


@runtime_checkable
class ResumableSampler(Protocol):
    """This rank's infinite stream of dataset indices, deterministic for its seed, sharded across ranks.

    As :class:`depi.datasets.mixture.sampler.MixtureSampler`: the DataLoader prefetches, so only the loop knows how
    many samples were trained on and passes that count to ``state_dict``; after ``load_state_dict`` a new
    ``iter()`` continues with the sample that followed.
    """

    def __iter__(self) -> Iterator[int]: ...

    def state_dict(self, num_consumed: int) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@runtime_checkable
class TrainData(Protocol):
    """The training mixture as the loop sees it.

    Attributes:
        dataset: Map-style dataset; ``dataset[i]`` is a transformed canonical sample (see ARCHITECTURE.md)
            carrying ``dataset_index`` (int) for per-dataset metrics.
        sampler: This rank's infinite :class:`ResumableSampler` over ``dataset``.
        dataset_names: Name of each dataset index (its repo id), for per-dataset metrics.
        transforms: The transform pipeline (``TransformGroup``) already applied by ``dataset``; saved with each
            checkpoint (``transforms.json``) so serving rebuilds it identically.
        norm_stats: Per-embodiment normalization stats (embodiment -> {"state" | "actions" -> NormStats}).
        manifest: JSON-able record of the mixture (dataset ids, revisions where known, weights).
    """

    dataset: Dataset
    sampler: ResumableSampler
    dataset_names: Sequence[str]
    transforms: TransformGroup
    norm_stats: Mapping[str, Mapping[str, NormStats]]
    manifest: Mapping[str, Any]


def build_dataloader(
    data: TrainData,
    *,
    batch_size: int,
    num_workers: int,
    seed: int,
    rank: int,
) -> DataLoader:
    """This rank's DataLoader over ``data``: micro-batches of ``batch_size`` samples from ``data.sampler``.

    The DataLoader gets its own ``torch.Generator`` (seeded from ``seed`` and ``rank``) so that starting it
    does not draw from the global torch RNG, which the flow-matching noise uses: a resumed run and an
    uninterrupted one then see the same noise. Workers are seeded from that generator too, identically at
    every (re)start: a transform drawing random numbers in the workers (the standard pipeline has none) would
    make a resumed run differ from an uninterrupted one. Each worker runs torch on one intra-op thread
    (:func:`depi.datasets.mixture.dataset.worker_init`): the workers already fill the cores.
    """
    generator = torch.Generator().manual_seed(seed * 1_000_003 + rank)
    return DataLoader(
        data.dataset,
        batch_size=batch_size,
        sampler=data.sampler,
        num_workers=num_workers,
        collate_fn=default_collate,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=num_workers > 0,
        generator=generator,
        worker_init_fn=worker_init if num_workers > 0 else None,
    )
