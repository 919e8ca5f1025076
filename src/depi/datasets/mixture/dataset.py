"""``MultiLeRobotDataset``: one map-style dataset of canonical samples over many LeRobot datasets.

Global frame ``g`` is row ``g - offsets[d]`` of dataset ``d`` (see :mod:`depi.datasets.mixture.index`). With
``holdout_dir`` the split files' held-out episodes stay readable by index but are never sampled, weighted or
used as replacements (:mod:`depi.datasets.mixture.holdout`). A sample is
the canonical sample of the architecture guide:

============================  =====================================================================
``image``                     dict slot -> uint8 (3, 224, 224), resized with padding; zeros when absent
``image_mask``                dict slot -> 0-d bool tensor, False where the dataset has no such camera
``state``                     float32 (32,), ``observation.state`` zero-padded
``actions``                   float32 (H, 32), the action chunk at ``control_fps`` (:mod:`.chunks`)
``action_dim_mask``           bool (32,), True on the dataset's real action dims
``action_is_pad``             bool (H,), True for steps past the episode's end
``prompt``                    str, the annotation's task for the episode, else the dataset's task
``embodiment``                str, normalization group (:func:`depi.datasets.mixture.index.embodiment_key`)
``dataset_index`` / ``episode_index`` / ``frame_index``   int provenance
============================  =====================================================================

Sources open lazily, in the process that reads (each DataLoader worker opens its own; at most
``max_open_sources`` stay open; a dataset that fails to open is not retried in that process). A sample that
fails to load (unreadable parquet row, broken video) is replaced by another frame drawn from
``(seed, g, attempt)``; each failure is logged with dataset / episode / frame and counted in
:attr:`MultiLeRobotDataset.load_failures`; after ``max_load_retries`` replacements the error is raised.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset

from depi.constants import (
    ACTION,
    ACTION_DIM_MASK,
    ACTION_IS_PAD,
    ACTIONS,
    CAMERA_SLOTS,
    DATASET_INDEX,
    EMBODIMENT,
    EPISODE_INDEX,
    FRAME_INDEX,
    IMAGE,
    IMAGE_MASK,
    IMAGE_RESOLUTION,
    MAX_ACTION_DIM,
    MAX_STATE_DIM,
    OBS_STATE,
    PROMPT,
    STATE,
    TASK_INDEX,
)
from depi.datasets.mixture.annotations import load_camera_roles
from depi.datasets.mixture.chunks import chunk_positions, resample_chunk
from depi.datasets.mixture.config import DatasetConfig
from depi.datasets.mixture.holdout import load_held_out_episodes
from depi.datasets.mixture.index import DatasetEntry, MixtureIndex, build_index
from depi.datasets.mixture.report import format_summary, summary_line, write_report
from depi.datasets.mixture.sampler import MixtureSampler, compute_weights, load_weights_file
from depi.datasets.mixture.selection import select_datasets
from depi.datasets.format.source import LeRobotSource
from depi.errors import DatasetSelectionError
from depi.transforms.image import resize_with_pad

logger = logging.getLogger(__name__)

SAMPLE_LOAD_ERRORS = (OSError, ValueError, RuntimeError, KeyError, IndexError, EOFError)
"""Errors that make a sample unreadable (I/O, decode, malformed row); others are bugs and propagate."""


class _OpenSource:
    """A source opened in this process with the columns the samples need, loaded once.

    Raises:
        ValueError: the data disagree with the index (frame count, state / action dims).
    """

    def __init__(self, source: LeRobotSource, entry: DatasetEntry) -> None:
        self.source = source
        self.state = source.column(OBS_STATE)
        self.action = source.column(ACTION)
        self.task_index = source.column(TASK_INDEX)
        self.episode_index = source.column(EPISODE_INDEX)
        self.frame_index = source.column(FRAME_INDEX)
        expected = {OBS_STATE: (self.state, entry.state_dim), ACTION: (self.action, entry.action_dim)}
        for key, (column, dim) in expected.items():
            rows = int(entry.episode_lengths.sum())
            if column.shape != (rows, dim):
                raise ValueError(
                    f"{entry.root}: column {key!r} has shape {column.shape}; meta/info.json and the episode "
                    f"table say ({rows}, {dim}). Fix the features' shape in info.json or re-write the data."
                )


class MultiLeRobotDataset(Dataset):
    """Canonical samples over many LeRobot datasets (v2.0 / v2.1 / v3.0), any fps, any camera names.

    Args:
        config: selection, control rate, action horizon, weighting, curation files (see
            :class:`~depi.datasets.mixture.config.DatasetConfig`).
        max_open_sources: sources kept open per process (least recently used are closed).
        verbose: print the build summary.

    Raises:
        RuntimeError: fewer than ``config.min_valid_fraction`` of the selected datasets are usable (the
            message lists the first reasons and names the report file).
        ValueError / FileNotFoundError: the selection, a curation file or a split file of ``holdout_dir`` is
            invalid.
    """

    def __init__(self, config: DatasetConfig, *, max_open_sources: int = 32, verbose: bool = True) -> None:
        self.config = config
        camera_roles = load_camera_roles(config.camera_roles_file)
        refs = select_datasets(
            repo_id=config.repo_id,
            repo_ids=config.repo_ids,
            root=config.root,
            num_datasets=config.num_datasets,
            curated_list=config.curated_list,
            download=config.download,
            camera_roles=camera_roles,
            annotations_dir=config.annotations_dir,
            verbose=verbose,
        )
        self.index: MixtureIndex = build_index(
            refs,
            embodiment_mode=config.embodiment_key,
            camera_roles=camera_roles,
            annotations_dir=config.annotations_dir,
        )
        if config.holdout_dir is not None:
            self.index = self.index.with_held_out(
                {
                    d: load_held_out_episodes(config.holdout_dir, entry.repo_id, entry.episode_ids)
                    for d, entry in enumerate(self.index.entries)
                }
            )
        explicit = None
        if config.weighting == "file":
            explicit = load_weights_file(config.weights_file, [e.repo_id for e in self.index.entries])
        if self.index.entries:
            self.weights = compute_weights(
                self.index.kept_frames, config.weighting, alpha=config.temperature_alpha, explicit=explicit
            )
        else:
            self.weights = np.zeros(0)
        if config.report_path is not None:
            write_report(config.report_path, self.index, self.weights)
        kept = len(self.index.entries)
        if kept == 0 or kept < config.min_valid_fraction * self.index.num_selected:
            reasons = "\n".join(
                f"  {x.repo_id}: {x.reason.splitlines()[0]}" for x in self.index.excluded[:10]
            )
            problem = (
                "no selected dataset is usable"
                if kept == 0
                else f"fewer than min_valid_fraction={config.min_valid_fraction} of the selected datasets "
                "are usable"
            )
            raise DatasetSelectionError(
                f"{summary_line(self.index)}: {problem}. First reasons:\n{reasons}\n"
                + (
                    f"Full list: {config.report_path}. "
                    if config.report_path
                    else "Set --dataset.report_path for the full list. "
                )
                + "Fix or deselect those datasets, or lower --dataset.min_valid_fraction."
            )
        if self.index.excluded:
            logger.warning("%s", summary_line(self.index))
        if verbose:
            print(format_summary(self.index, self.weights, report_path=config.report_path))
        self.max_open_sources = max_open_sources
        self._reset_sources()
        self.load_failures = 0

    def _reset_sources(self) -> None:
        self._pid = os.getpid()
        self._sources: OrderedDict[int, _OpenSource] = OrderedDict()
        self._unopenable: dict[int, Exception] = {}

    def __getstate__(self) -> dict:
        """Pickle without open sources (DataLoader workers under ``spawn`` open their own)."""
        return {k: v for k, v in self.__dict__.items() if k not in ("_sources", "_unopenable", "_pid")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._reset_sources()

    # --- index ---------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.index.total_frames

    @property
    def repo_ids(self) -> list[str]:
        """Kept datasets' ids, in index order (``dataset_index`` is the position here)."""
        return [e.repo_id for e in self.index.entries]

    def make_sampler(self, *, rank: int = 0, world_size: int = 1, batch_size: int = 1) -> MixtureSampler:
        """The infinite weighted sampler of this mixture (seed from the config)."""
        return MixtureSampler(
            self.index.kept_frames,
            self.weights,
            seed=self.config.seed,
            rank=rank,
            world_size=world_size,
            batch_size=batch_size,
            frame_runs=self.index.kept_runs() if self.config.holdout_dir is not None else None,
        )

    # --- loading -------------------------------------------------------------------------------------------
    def _open(self, d: int) -> _OpenSource:
        if os.getpid() != self._pid:  # a forked worker: never share the parent's open video decoders
            self._reset_sources()
        if d in self._sources:
            self._sources.move_to_end(d)
            return self._sources[d]
        if d in self._unopenable:  # opening failed once in this process: fail fast, do not re-parse
            raise self._unopenable[d]
        entry = self.index.entries[d]
        try:
            source = LeRobotSource(
                entry.repo_id,
                root=entry.root,
                tolerance_s=self.config.tolerance_s,
                video_backend=self.config.video_backend,
            )
            opened = _OpenSource(source, entry)
        except SAMPLE_LOAD_ERRORS as err:
            self._unopenable[d] = err
            raise
        self._sources[d] = opened
        if len(self._sources) > self.max_open_sources:
            self._sources.popitem(last=False)
        return opened

    def _load(self, global_index: int) -> dict:
        d, row, e = self.index.locate(global_index)
        entry = self.index.entries[d]
        src = self._open(d)
        start, end = int(self.index.episode_start[e]), int(self.index.episode_end[e])
        positions = chunk_positions(
            row - start, entry.fps, self.config.control_fps, self.config.action_horizon
        )
        with np.errstate(invalid="ignore", over="ignore"):  # a NaN / inf action is caught just below
            chunk, is_pad = resample_chunk(np.asarray(src.action[start:end]), positions)
        if not (np.isfinite(chunk).all() and np.isfinite(src.state[row]).all()):
            raise ValueError(  # replaced like any unreadable sample; never fed to the model
                f"{entry.root}: NaN or inf in observation.state of row {row} or in the actions of its chunk "
                f"(rows {start}..{end - 1}); run depi-validate on the dataset"
            )
        actions = np.zeros((self.config.action_horizon, MAX_ACTION_DIM), dtype=np.float32)
        actions[:, : entry.action_dim] = chunk
        state = np.zeros(MAX_STATE_DIM, dtype=np.float32)
        state[: entry.state_dim] = src.state[row]
        dim_mask = np.zeros(MAX_ACTION_DIM, dtype=bool)
        dim_mask[: entry.action_dim] = True

        episode_index = int(src.episode_index[row])
        tasks = entry.annotation.episode_tasks if entry.annotation else {}
        prompt = tasks.get(episode_index) or src.source.tasks[int(src.task_index[row])]
        images, masks = {}, {}
        height, width = IMAGE_RESOLUTION
        for slot in CAMERA_SLOTS:
            key = entry.roles.slots.get(slot)
            if key is None:
                images[slot] = torch.zeros(3, height, width, dtype=torch.uint8)
            else:
                images[slot] = resize_with_pad(src.source.read_camera(row, key)[0], height, width)
            masks[slot] = torch.tensor(key is not None)
        return {
            IMAGE: images,
            IMAGE_MASK: masks,
            STATE: torch.from_numpy(state),
            ACTIONS: torch.from_numpy(actions),
            ACTION_DIM_MASK: torch.from_numpy(dim_mask),
            ACTION_IS_PAD: torch.from_numpy(is_pad),
            PROMPT: prompt,
            EMBODIMENT: entry.embodiment,
            DATASET_INDEX: d,
            EPISODE_INDEX: episode_index,
            FRAME_INDEX: int(src.frame_index[row]),
        }

    def __getitem__(self, global_index: int) -> dict:
        """Canonical sample of global frame ``global_index`` (or its replacement, see the module docstring).

        Raises:
            IndexError: ``global_index`` out of range.
            RuntimeError: ``max_load_retries`` replacements failed too; chains the last error.
        """
        index = int(global_index)
        if not 0 <= index < len(self):
            raise IndexError(f"Frame {index} out of range [0, {len(self)}).")
        for attempt in range(self.config.max_load_retries + 1):
            try:
                return self._load(index)
            except SAMPLE_LOAD_ERRORS as err:
                self.load_failures += 1
                d, row, e = self.index.locate(index)
                entry = self.index.entries[d]
                logger.warning(
                    "Sample load failed (%d so far): dataset %s, episode %d, frame %d (row %d): %s: %s",
                    self.load_failures,
                    entry.repo_id,
                    int(entry.episode_ids[e - self.index.episode_offsets[d]]),
                    row - int(self.index.episode_start[e]),
                    row,
                    type(err).__name__,
                    err,
                )
                last_error = err
                rng = np.random.default_rng([self.config.seed, int(global_index), attempt])
                index = self.index.kept_frame(int(rng.integers(int(self.index.kept_frames.sum()))))
        raise RuntimeError(
            f"Frame {global_index} and {self.config.max_load_retries} replacement frames failed to load; "
            "see the warnings above for the datasets involved, and run `depi-validate` on them."
        ) from last_error


def worker_init(worker_id: int) -> None:
    """``worker_init_fn`` for DataLoaders over the mixture: one intra-op torch thread per worker.

    The workers already fill the cores: more torch threads per worker only oversubscribe them and slow the
    image resize down. torch's own worker loop sets one thread too; setting it here keeps the data path
    independent of that default.

    Args:
        worker_id: the DataLoader's worker index (unused).
    """
    torch.set_num_threads(1)


class MixtureIterableDataset(IterableDataset):
    """The mixture as an ``IterableDataset``: each DataLoader worker reads its shard of the sampler stream.

    Use with ``DataLoader(it, batch_size=sampler.batch_size, num_workers=W, worker_init_fn=worker_init)``;
    the batches arrive in the same order as the single-process stream (see
    :class:`~depi.datasets.mixture.sampler.MixtureSampler`).
    """

    def __init__(
        self,
        dataset: MultiLeRobotDataset,
        sampler: MixtureSampler,
        transform: Callable[[dict], dict] | None = None,
    ) -> None:
        self.dataset = dataset
        self.sampler = sampler
        self.transform = transform

    def __iter__(self) -> Iterator[dict]:
        for global_index in self.sampler:
            sample = self.dataset[global_index]
            yield sample if self.transform is None else self.transform(sample)
