"""Dataset weights and the infinite, resumable, sharded mixture sampler.

Notation: ``N`` datasets, dataset ``d`` has ``n_d`` frames; the mixture's global frame index of row ``r`` of
dataset ``d`` is ``offsets[d] + r``.

Weights (probability of drawing dataset ``d``; frames within a dataset are drawn uniformly):

* ``frames``: ``w_d ∝ n_d`` — every frame equally likely (LeRobot's MultiLeRobotDataset behaviour when
  shuffled, Octo's ``sample_weights=None`` with ``balance_weights=True``);
* ``uniform``: ``w_d = 1 / N`` — every dataset equally likely;
* ``temperature``: ``w_d ∝ n_d ** alpha`` (multilingual-LM temperature sampling, e.g. XLM-R, Conneau et al.
  2020 §3.1; ``alpha = 1`` is ``frames``, ``alpha = 0`` is ``uniform``);
* ``file``: explicit weights from a JSON file ``{"owner/name": weight, ...}``.

Sampler: the global stream of samples ``k = 0, 1, 2, ...`` is a pure function of ``(seed, k)``: sample ``k``
lives in block ``b = k // BLOCK``, whose draws come from a Philox counter-based generator keyed by
``(seed, b)`` (Salmon et al. 2011, "Parallel random numbers: as easy as 1, 2, 3"). Resuming at sample
``k`` regenerates one block, O(1) whatever ``k`` is. Rank ``r`` of ``R`` takes ``k = j * R + r``; inside a
DataLoader with ``W`` workers and batch size ``B`` (IterableDataset use), worker ``w`` takes the rank-stream
batches ``j // B ≡ w (mod W)``, which the DataLoader hands back in order — so every rank sees the same
sequence whatever ``W`` is, and ranks / workers never overlap.

Held-out episodes (``frame_runs``): ``n_d`` then counts the frames that may be drawn, the draw gives a rank in
that kept-frame space, and the rank is mapped to its global frame through the runs of kept frames
(``searchsorted`` over their cumulative lengths). The stream stays a pure function of ``(seed, k)`` for a given
set of runs; with no episode held out the runs are the whole datasets and the stream is unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Sampler, get_worker_info

from depi.fileio import read_json_file

WEIGHTINGS = ("frames", "uniform", "temperature", "file")
BLOCK = 4096


def load_weights_file(path: str | Path, repo_ids: Sequence[str]) -> np.ndarray:
    """Read explicit dataset weights ``{"owner/name": weight}`` for ``repo_ids``, in their order.

    Returns:
        float64 (N,) raw (unnormalized) weights.

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: not a JSON object of non-negative numbers, or a repo id of the mixture has no weight.
    """
    path = Path(path)
    data = read_json_file(path, "Weights file", dict, "a JSON object mapping repo_id -> weight",
                          "pass an existing JSON file of repo_id -> weight")  # fmt: skip
    missing = [r for r in repo_ids if r not in data]
    if missing:
        raise ValueError(
            f"{path}: no weight for {len(missing)} dataset(s) of the mixture, e.g. {missing[:3]}; "
            "add them to the file (weight 0 excludes a dataset)."
        )
    weights = np.array([data[r] for r in repo_ids], dtype=np.float64)
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError(f"{path}: weights must be finite and >= 0, found {weights[~(weights >= 0)][:3]}.")
    return weights


def compute_weights(
    num_frames: np.ndarray,
    weighting: str = "frames",
    *,
    alpha: float = 0.5,
    explicit: np.ndarray | None = None,
) -> np.ndarray:
    """Probability of drawing each dataset (formulas in the module docstring).

    Args:
        num_frames: int (N,) frames per dataset.
        weighting: one of :data:`WEIGHTINGS`.
        alpha: temperature exponent for ``temperature``.
        explicit: float (N,) raw weights for ``file`` (see :func:`load_weights_file`).

    Returns:
        float64 (N,) summing to 1; datasets with no frames get weight 0.

    Raises:
        ValueError: unknown weighting, missing ``explicit`` for ``file``, or all weights zero.
    """
    n = np.asarray(num_frames, dtype=np.float64)
    if weighting == "frames":
        raw = n.copy()
    elif weighting == "uniform":
        raw = np.ones_like(n)
    elif weighting == "temperature":
        raw = np.power(n, alpha)
    elif weighting == "file":
        if explicit is None or len(explicit) != len(n):
            raise ValueError(
                "weighting='file' needs one explicit weight per dataset (see --dataset.weights_file)."
            )
        raw = np.asarray(explicit, dtype=np.float64).copy()
    else:
        raise ValueError(f"Unknown weighting {weighting!r}; expected one of {', '.join(WEIGHTINGS)}.")
    raw[n <= 0] = 0.0
    total = raw.sum()
    if not total > 0:
        raise ValueError(f"All dataset weights are zero (weighting={weighting!r}); nothing can be sampled.")
    return raw / total


class MixtureSampler(Sampler[int]):
    """Infinite stream of global frame indices, deterministic for a seed, sharded, resumable in O(1).

    Use it as a DataLoader ``sampler`` of the map-style mixture (the DataLoader spreads indices over its
    workers), or iterate it inside an ``IterableDataset`` worker (it then yields only that worker's batches,
    see the module docstring).

    Args:
        num_frames: int (N,) frames per dataset.
        weights: float (N,) dataset probabilities (see :func:`compute_weights`).
        seed: stream seed (0 <= seed < 2**64).
        rank / world_size: this process's shard.
        batch_size: DataLoader batch size; only used to split batches between IterableDataset workers.
        start: rank-stream position to start from (see :meth:`load_state_dict`); for the IterableDataset
            path keep it a multiple of ``batch_size`` so that every batch comes from one worker.
        frame_runs: ``(start, length)`` int (K,) runs of global frames that may be drawn, in dataset order,
            whose lengths sum per dataset to ``num_frames`` (:meth:`depi.datasets.mixture.index.MixtureIndex.kept_runs`);
            None: dataset ``d``'s frames are the global frames ``offsets[d] .. offsets[d] + n_d - 1``.

    Raises:
        ValueError: inconsistent shapes, bad rank, or negative values.
    """

    def __init__(
        self,
        num_frames: np.ndarray,
        weights: np.ndarray,
        *,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        batch_size: int = 1,
        start: int = 0,
        frame_runs: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        num_frames = np.asarray(num_frames, dtype=np.int64)
        weights = np.asarray(weights, dtype=np.float64)
        if num_frames.shape != weights.shape or num_frames.ndim != 1:
            raise ValueError(f"num_frames {num_frames.shape} and weights {weights.shape} must both be (N,).")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} must be in [0, world_size={world_size}).")
        if seed < 0 or batch_size < 1 or start < 0:
            raise ValueError(
                f"seed ({seed}), start ({start}) must be >= 0 and batch_size ({batch_size}) >= 1."
            )
        self.num_frames = num_frames
        self.offsets = np.concatenate([[0], np.cumsum(num_frames)]).astype(np.int64)
        self.cum_weights = np.cumsum(weights / weights.sum())
        self.cum_weights[-1] = 1.0
        self.seed, self.rank, self.world_size = int(seed), rank, world_size
        self.batch_size = batch_size
        self.start = start
        self._block_id = -1
        self._block = np.empty(0, dtype=np.int64)
        self.run_start = self.run_first = self.run_end = None
        if frame_runs is not None:
            run_start, run_length = (np.asarray(a, dtype=np.int64) for a in frame_runs)
            if run_start.shape != run_length.shape or int(run_length.sum()) != int(self.offsets[-1]):
                raise ValueError(
                    f"frame_runs of shapes {run_start.shape}, {run_length.shape} and {int(run_length.sum())} "
                    f"frames do not match num_frames ({int(self.offsets[-1])} frames)."
                )
            # (K,) each: a run's first global frame, and its first / one-past-last kept rank
            self.run_start, self.run_end = run_start, np.cumsum(run_length)
            self.run_first = self.run_end - run_length

    def _draw_block(self, block_id: int) -> np.ndarray:
        rng = np.random.Generator(np.random.Philox(key=(self.seed << 64) | block_id))
        u_dataset, u_frame = rng.random(BLOCK), rng.random(BLOCK)
        dataset = np.searchsorted(self.cum_weights, u_dataset, side="right")
        dataset = np.minimum(dataset, len(self.num_frames) - 1)
        # Zero-weight datasets are never chosen (their cumulative step is empty), so n_d >= 1 here.
        frame = np.floor(u_frame * self.num_frames[dataset]).astype(np.int64)
        rank = self.offsets[dataset] + frame
        if self.run_start is None:
            return rank
        run = np.searchsorted(self.run_end, rank, side="right")  # (BLOCK,) the run holding each kept rank
        return self.run_start[run] + rank - self.run_first[run]

    def global_index(self, k: int) -> int:
        """Global frame index of sample ``k`` of the un-sharded stream (pure function of ``(seed, k)``)."""
        block_id, pos = divmod(k, BLOCK)
        if block_id != self._block_id:
            self._block = self._draw_block(block_id)
            self._block_id = block_id
        return int(self._block[pos])

    def rank_stream(self, j: int) -> int:
        """Global frame index of this rank's ``j``-th sample."""
        return self.global_index(j * self.world_size + self.rank)

    def __iter__(self) -> Iterator[int]:
        info = get_worker_info()
        worker, num_workers = (0, 1) if info is None else (info.id, info.num_workers)
        j = self.start
        first_batch = self.start // self.batch_size
        while True:
            batch = j // self.batch_size
            if (batch - first_batch) % num_workers == worker:
                yield self.rank_stream(j)
                j += 1
            else:
                j = (batch + 1) * self.batch_size

    def __len__(self) -> int:
        """The stream is infinite; ``len`` is the largest index so that ``len()``-based code still works."""
        return torch.iinfo(torch.int64).max

    def state_dict(self, num_consumed: int) -> dict[str, int]:
        """State to resume after this rank consumed ``num_consumed`` samples since ``start``.

        The DataLoader prefetches, so only the training loop knows what was consumed: pass
        ``step * batch_size``.
        """
        return {"seed": self.seed, "start": self.start + int(num_consumed), "world_size": self.world_size}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume from :meth:`state_dict`; the next sample is exactly the one that followed.

        The state may come from another world size R: when every rank consumed ``start`` samples, the
        global stream was consumed up to ``start * R``, and this rank of R' continues at rank-stream position
        ``start * R / R'``. With the same global batch (B' R' = B R) every later global batch then holds the
        same samples as in an uninterrupted run.

        Raises:
            ValueError: the state was saved with another seed, or ``start * R`` is not a multiple of this
                world size (no rank-stream position continues the global stream).
        """
        if state["seed"] != self.seed:
            raise ValueError(
                f"Sampler state has seed={state['seed']}; this run has seed={self.seed}. Resume with the same "
                "seed (--dataset.seed)."
            )
        consumed = int(state["start"]) * int(state["world_size"])  # global stream samples taken by all ranks
        if consumed % self.world_size:
            raise ValueError(
                f"Sampler state was saved by {state['world_size']} processes after {consumed} samples of the "
                f"global stream, which {self.world_size} processes cannot split evenly; resume with a number of "
                f"processes dividing {consumed}, e.g. {state['world_size']}."
            )
        self.start = consumed // self.world_size
