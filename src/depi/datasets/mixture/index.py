"""The mixture's index: cheap validation of each selected dataset and flat numpy arrays over the kept ones.

Validation (no parquet row or video frame is read): the meta loads (:func:`depi.datasets.format.meta.load_meta`),
``observation.state`` and ``action`` are declared as 1-D features of at most 32 dims, the dataset has frames
and a positive fps, at least one camera feeds an image slot, every data file and every mp4 of a kept camera
exists, and the camera-role / annotation files are valid for it. A dataset failing a check is excluded with
the reason; nothing is skipped silently.

Index layout (numpy, shared copy-on-write by forked DataLoader workers; ``N`` kept datasets, ``E`` episodes
in all): ``num_frames (N,)``, ``offsets (N+1,)`` global frame offsets, ``fps (N,)``, ``state_dim (N,)``,
``action_dim (N,)``, ``embodiment_id (N,)``, ``episode_offsets (N+1,)`` into the episode arrays
``episode_start (E,)`` / ``episode_end (E,)`` (rows ``[start, end)`` within the dataset, episode order), and
``episode_kept (E,)`` bool: False for episodes held out of training (:meth:`MixtureIndex.with_held_out`).

Global frames cover every row of every kept dataset (so any frame can be read back, e.g. by the evaluation);
what training samples are the frames of kept episodes: ``kept_frames (N,)`` per dataset, numbered
``0 .. sum(kept_frames) - 1`` in dataset then row order ("kept ranks"), which :meth:`MixtureIndex.kept_runs`
maps back to global frames. Without held-out episodes a kept rank is its global frame.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from depi.constants import ACTION, MAX_ACTION_DIM, MAX_STATE_DIM, OBS_STATE
from depi.datasets.mixture.annotations import Annotation, load_annotation
from depi.datasets.format.meta import DatasetMeta, load_meta
from depi.datasets.mixture.roles import RoleAssignment, assign_camera_roles
from depi.datasets.mixture.selection import DatasetRef

logger = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def embodiment_key(mode: str, robot_type: str | None, state_dim: int, action_dim: int, repo_id: str) -> str:
    """Normalization group of a dataset.

    Modes: ``robot_type_dims`` -> ``<robot_type>/s<state_dim>_a<action_dim>`` (default: same robot, same
    layout), ``dims`` -> ``s<state_dim>_a<action_dim>``, ``robot_type``, ``dataset`` -> the repo id, ``all``.
    Unknown robot types become ``unknown``; characters outside ``[A-Za-z0-9_.-]`` become ``_``.
    """
    robot = _UNSAFE.sub("_", robot_type) if robot_type else "unknown"
    dims = f"s{state_dim}_a{action_dim}"
    keys = {
        "robot_type_dims": f"{robot}/{dims}",
        "dims": dims,
        "robot_type": robot,
        "dataset": repo_id,
        "all": "all",
    }
    if mode not in keys:
        raise ValueError(f"Unknown embodiment_key mode {mode!r}; expected one of {', '.join(keys)}.")
    return keys[mode]


@dataclass
class DatasetEntry:
    """What the index keeps of one valid dataset (small: no per-frame data)."""

    repo_id: str
    root: Path
    fps: float
    robot_type: str | None
    state_dim: int
    action_dim: int
    embodiment: str
    episode_lengths: np.ndarray
    episode_ids: np.ndarray
    roles: RoleAssignment
    annotation: Annotation | None
    data_files: list[Path]
    codebase_version: str


@dataclass
class Exclusion:
    """A selected dataset left out of the mixture, and why."""

    repo_id: str
    root: str | None
    reason: str


def _vector_dim(meta: DatasetMeta, key: str) -> int:
    spec = meta.features.get(key)
    if spec is None:
        raise ValueError(
            f"{meta.root}/meta/info.json: features has no {key!r}; the mixture needs state and action."
        )
    shape = tuple(spec.get("shape", ()))
    limit = MAX_STATE_DIM if key == OBS_STATE else MAX_ACTION_DIM
    if len(shape) != 1 or not 1 <= int(shape[0]) <= limit:
        raise ValueError(
            f"{meta.root}/meta/info.json: features.{key}.shape is {list(shape)}, "
            f"expected [D] with 1 <= D <= {limit}."
        )
    return int(shape[0])


def inspect_dataset(
    ref: DatasetRef,
    *,
    embodiment_mode: str,
    camera_roles: dict[str, dict[str, str]],
    annotations_dir: str | Path | None,
) -> DatasetEntry:
    """Validate one dataset (checks in the module docstring) and describe it for the index.

    Raises:
        FileNotFoundError, ValueError, OSError: the check that failed, naming the file and the field.
    """
    if ref.root is None:
        raise FileNotFoundError(ref.missing_reason or f"{ref.repo_id}: no local root")
    meta = load_meta(ref.root, ref.repo_id)
    state_dim, action_dim = _vector_dim(meta, OBS_STATE), _vector_dim(meta, ACTION)
    lengths = np.array([ep.length for ep in meta.episodes], dtype=np.int64)
    if lengths.size == 0 or lengths.sum() == 0 or np.any(lengths <= 0):
        raise ValueError(
            f"{meta.root}: no frames or an empty episode in the episode table ({lengths.size} episodes)."
        )
    if not meta.fps > 0:
        raise ValueError(f"{meta.root}/meta/info.json: fps is {meta.fps}, expected > 0.")
    annotation = load_annotation(annotations_dir, ref.repo_id)
    roles = assign_camera_roles(
        meta.camera_keys,
        camera_roles.get(ref.repo_id),
        annotation.camera_poses if annotation else None,
        origin=f"camera roles of {ref.repo_id}",
    )
    if not roles.slots:
        raise ValueError(
            f"{meta.root}/meta/info.json: no camera feeds an image slot (cameras: "
            f"{meta.camera_keys or 'none'}); the policy needs at least one image. Map a camera to a slot in "
            "data_ids/camera_roles.json."
        )
    data_files = sorted({meta.root / ep.data_file for ep in meta.episodes})
    kept_videos = {key for key in roles.slots.values() if key in meta.video_keys}
    video_files = {
        meta.root / f for ep in meta.episodes for k, f in ep.video_files.items() if k in kept_videos
    }
    for path in [*data_files, *sorted(video_files)]:
        if not path.is_file():
            what = (
                "is a broken or looping symlink" if path.is_symlink()
                else "is not a regular file" if path.exists() else "is missing"
            )  # fmt: skip
            raise FileNotFoundError(f"{path} {what} (listed by {meta.root}/meta); re-download the dataset.")
    declared = (meta.info.get("total_episodes"), meta.info.get("total_frames"))
    if declared != (len(lengths), int(lengths.sum())):
        logger.warning(
            "%s: meta/info.json says %s episodes / %s frames, the episode tables hold %d / %d; the tables are "
            "used (depi-validate reports the disagreement).", ref.repo_id, *declared, len(lengths), int(lengths.sum()),
        )  # fmt: skip
    return DatasetEntry(
        repo_id=ref.repo_id,
        root=meta.root,
        fps=meta.fps,
        robot_type=meta.robot_type,
        state_dim=state_dim,
        action_dim=action_dim,
        embodiment=embodiment_key(embodiment_mode, meta.robot_type, state_dim, action_dim, ref.repo_id),
        episode_lengths=lengths,
        episode_ids=np.array([ep.episode_index for ep in meta.episodes], dtype=np.int64),
        roles=roles,
        annotation=annotation,
        data_files=data_files,
        codebase_version=meta.codebase_version,
    )


@dataclass
class MixtureIndex:
    """Flat arrays over the kept datasets (layout in the module docstring) plus small per-dataset records."""

    entries: list[DatasetEntry]
    excluded: list[Exclusion]
    num_frames: np.ndarray
    offsets: np.ndarray
    fps: np.ndarray
    state_dim: np.ndarray
    action_dim: np.ndarray
    embodiments: list[str]
    embodiment_id: np.ndarray
    episode_offsets: np.ndarray
    episode_start: np.ndarray
    episode_end: np.ndarray
    episode_kept: np.ndarray
    num_selected: int = field(default=0)

    @property
    def total_frames(self) -> int:
        """Frames over all kept datasets, held-out episodes included (the global frame range)."""
        return int(self.offsets[-1])

    @property
    def kept_frames(self) -> np.ndarray:
        """int64 (N,) frames per dataset that training samples (held-out episodes left out)."""
        lengths = np.where(self.episode_kept, self.episode_end - self.episode_start, 0)
        per_dataset = np.concatenate([[0], np.cumsum(lengths)])[self.episode_offsets]
        return np.diff(per_dataset).astype(np.int64)

    def held_out_episodes(self, d: int) -> list[int]:
        """``episode_index`` values of dataset ``d`` held out of training (sorted)."""
        lo, hi = int(self.episode_offsets[d]), int(self.episode_offsets[d + 1])
        return sorted(int(e) for e in self.entries[d].episode_ids[~self.episode_kept[lo:hi]])

    def kept_runs(self) -> tuple[np.ndarray, np.ndarray]:
        """The kept episodes as runs of global frames, in dataset then row order.

        Returns:
            ``(start, length)``, int64 (K,) each: run ``i`` is global frames ``[start[i], start[i] + length[i])``;
            kept rank ``q`` is frame ``start[i] + q - sum(length[:i])`` of the run whose cumulative span holds
            it. Lengths per dataset sum to :attr:`kept_frames`.
        """
        dataset = np.repeat(np.arange(len(self.entries)), np.diff(self.episode_offsets))
        start = self.offsets[dataset] + self.episode_start
        length = self.episode_end - self.episode_start
        return start[self.episode_kept].astype(np.int64), length[self.episode_kept].astype(np.int64)

    def kept_frame(self, rank: int) -> int:
        """Global frame of kept rank ``rank`` (the identity when no episode is held out).

        Raises:
            IndexError: ``rank`` out of ``[0, sum(kept_frames))``.
        """
        start, length = self.kept_runs()
        ends = np.cumsum(length)
        if not 0 <= rank < (int(ends[-1]) if ends.size else 0):
            raise IndexError(f"Kept frame {rank} out of range [0, {int(ends[-1]) if ends.size else 0}).")
        run = int(np.searchsorted(ends, rank, side="right"))
        return int(start[run] + rank - (ends[run] - length[run]))

    def with_held_out(self, held_out: dict[int, np.ndarray]) -> MixtureIndex:
        """A copy whose ``episode_kept`` is False on the given episodes.

        Args:
            held_out: dataset position -> bool (E_d,) mask over that dataset's episodes (True: held out).

        Raises:
            ValueError: a mask's length is not the dataset's episode count.
        """
        kept = self.episode_kept.copy()
        for d, mask in held_out.items():
            lo, hi = int(self.episode_offsets[d]), int(self.episode_offsets[d + 1])
            if len(mask) != hi - lo:
                raise ValueError(
                    f"{self.entries[d].repo_id}: held-out mask of {len(mask)} != {hi - lo} episodes"
                )
            kept[lo:hi] &= ~np.asarray(mask, dtype=bool)
        return replace(self, episode_kept=kept)

    def locate(self, global_index: int) -> tuple[int, int, int]:
        """Global frame index -> ``(dataset position, row in the dataset, episode position in the index)``.

        Raises:
            IndexError: out of ``[0, total_frames)``.
        """
        if not 0 <= global_index < self.total_frames:
            raise IndexError(f"Frame {global_index} out of range [0, {self.total_frames}).")
        d = int(np.searchsorted(self.offsets, global_index, side="right")) - 1
        row = global_index - int(self.offsets[d])
        lo, hi = int(self.episode_offsets[d]), int(self.episode_offsets[d + 1])
        e = lo + int(np.searchsorted(self.episode_end[lo:hi], row, side="right"))
        return d, row, e


def build_index(
    refs: Sequence[DatasetRef],
    *,
    embodiment_mode: str = "robot_type_dims",
    camera_roles: dict[str, dict[str, str]] | None = None,
    annotations_dir: str | Path | None = None,
    num_threads: int = 8,
    progress: Callable[[int], None] | None = None,
) -> MixtureIndex:
    """Validate every selected dataset (in threads: the work is file I/O) and index the valid ones.

    Failures of one dataset become an :class:`Exclusion` with the error text; the caller decides whether
    enough datasets remain.
    """
    camera_roles = camera_roles or {}

    def inspect(ref: DatasetRef) -> DatasetEntry | Exclusion:
        try:
            return inspect_dataset(
                ref,
                embodiment_mode=embodiment_mode,
                camera_roles=camera_roles,
                annotations_dir=annotations_dir,
            )
        except (OSError, ValueError, KeyError, TypeError) as err:
            return Exclusion(
                ref.repo_id, None if ref.root is None else str(ref.root), f"{type(err).__name__}: {err}"
            )

    entries: list[DatasetEntry] = []
    excluded: list[Exclusion] = []
    with ThreadPoolExecutor(max_workers=max(1, num_threads)) as pool:
        for result in pool.map(inspect, refs):
            (entries if isinstance(result, DatasetEntry) else excluded).append(result)
            if progress is not None:
                progress(1)
    num_frames = np.array([int(e.episode_lengths.sum()) for e in entries], dtype=np.int64)
    embodiments = sorted({e.embodiment for e in entries})
    lookup = {name: i for i, name in enumerate(embodiments)}
    ends = [np.cumsum(e.episode_lengths) for e in entries]
    return MixtureIndex(
        entries=entries,
        excluded=excluded,
        num_frames=num_frames,
        offsets=np.concatenate([[0], np.cumsum(num_frames)]).astype(np.int64),
        fps=np.array([e.fps for e in entries], dtype=np.float64),
        state_dim=np.array([e.state_dim for e in entries], dtype=np.int64),
        action_dim=np.array([e.action_dim for e in entries], dtype=np.int64),
        embodiments=embodiments,
        embodiment_id=np.array([lookup[e.embodiment] for e in entries], dtype=np.int32),
        episode_offsets=np.concatenate([[0], np.cumsum([len(e.episode_lengths) for e in entries])]).astype(
            np.int64
        ),
        episode_start=np.concatenate(
            [end - e.episode_lengths for end, e in zip(ends, entries, strict=True)] or [np.zeros(0)]
        ).astype(np.int64),
        episode_end=np.concatenate(ends or [np.zeros(0)]).astype(np.int64),
        episode_kept=np.ones(int(sum(len(e.episode_lengths) for e in entries)), dtype=bool),
        num_selected=len(refs),
    )
