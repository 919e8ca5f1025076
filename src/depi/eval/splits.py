"""Train / held-out splits of a dataset's episodes, recorded as one JSON file per dataset.

Two modes, both seeded and deterministic (``numpy.random.default_rng(seed)``, tasks and episodes sorted first):

* ``episode``: within each task, ``round(test_fraction * n)`` of its n episodes go to the test split;
* ``task``: ``round(test_fraction * T)`` of the T tasks that have several episodes go to the test split whole.

In both modes a task with a **single episode** goes to the test split: it cannot be split by episode, and a
held-out task is the harder generalization test. An episode with several tasks is keyed by its first task.

The split file (``<splits_dir>/<repo_id with '/' -> '__'>.json``) lists ``test_episodes`` and
``train_episodes`` (``episode_index`` values) with the settings that produced them, so a training run can
exclude the held-out episodes and an evaluation can reuse exactly the same split.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from depi.datasets.format.meta import load_meta
from depi.datasets.mixture.holdout import holdout_path
from depi.datasets.mixture.selection import select_datasets
from depi.fileio import write_json

SPLIT_MODES = ("episode", "task")
SPLIT_FORMAT = 1


@dataclass
class SplitConfig:
    """How to split each dataset.

    Attributes:
        mode: ``episode`` or ``task`` (module docstring).
        test_fraction: fraction of episodes (``episode``) or multi-episode tasks (``task``) held out, in [0, 1].
        seed: split seed.
        splits_dir: folder of the split files: an existing file for a dataset is reused (and must have been
            made with these settings), a missing one is written. None: ``<output_dir>/splits``. Train with
            ``depi-train --dataset.holdout_dir=<this folder>`` to keep the test episodes out of training.
        from_checkpoint: for a dataset whose held-out episodes the checkpoint's ``mixture_manifest.json``
            lists (trained with ``--dataset.holdout_dir``), test on exactly those episodes instead of splitting
            by the settings above. False: always split by the settings.
    """

    mode: str = "episode"
    test_fraction: float = 0.2
    seed: int = 0
    splits_dir: str | None = None
    from_checkpoint: bool = True

    def __post_init__(self) -> None:
        if self.mode not in SPLIT_MODES:
            raise ValueError(f"--split.mode={self.mode!r}; expected one of {', '.join(SPLIT_MODES)}")
        if not 0.0 <= self.test_fraction <= 1.0:
            raise ValueError(f"--split.test_fraction={self.test_fraction}; expected a fraction in [0, 1]")


@dataclass
class Split:
    """The split of one dataset.

    Attributes:
        repo_id: the dataset.
        mode, test_fraction, seed: the settings that produced it.
        train_episodes, test_episodes: sorted ``episode_index`` values; disjoint, together all episodes.
    """

    repo_id: str
    mode: str
    test_fraction: float
    seed: int
    train_episodes: list[int]
    test_episodes: list[int]

    def to_json(self) -> dict:
        return {"format": SPLIT_FORMAT, **asdict(self)}


def split_episodes(repo_id: str, episode_tasks: Mapping[int, str], config: SplitConfig) -> Split:
    """Split episodes by the rules of the module docstring.

    Args:
        repo_id: the dataset (recorded in the split).
        episode_tasks: ``episode_index`` -> task text.
        config: mode, fraction, seed.

    Raises:
        ValueError: no episodes.
    """
    if not episode_tasks:
        raise ValueError(f"{repo_id}: no episodes to split")
    by_task: dict[str, list[int]] = {}
    for episode, task in sorted(episode_tasks.items()):
        by_task.setdefault(task, []).append(int(episode))
    rng = np.random.default_rng(config.seed)
    test: set[int] = set()
    multi = sorted(task for task, episodes in by_task.items() if len(episodes) > 1)
    for task, episodes in by_task.items():
        if len(episodes) == 1:
            test.update(episodes)
    if config.mode == "task":
        count = round(config.test_fraction * len(multi))
        for i in sorted(rng.permutation(len(multi))[:count]):
            test.update(by_task[multi[i]])
    else:
        for task in multi:
            episodes = by_task[task]
            count = round(config.test_fraction * len(episodes))
            test.update(episodes[i] for i in rng.permutation(len(episodes))[:count])
    train = sorted(set(episode_tasks) - test)
    return Split(repo_id, config.mode, config.test_fraction, config.seed, train, sorted(test))


def held_out_split(repo_id: str, episodes: Sequence[int], test_episodes: Sequence[int], origin: str) -> Split:
    """The split whose test episodes are those training held out (mode ``checkpoint``, seed -1).

    Args:
        repo_id: the dataset.
        episodes: all its ``episode_index`` values.
        test_episodes: the held-out ones (from the checkpoint's mixture manifest).
        origin: where ``test_episodes`` come from, for the error.

    Raises:
        ValueError: a held-out episode is not an episode of the dataset (message names ``origin`` and the fix).
    """
    test = sorted({int(e) for e in test_episodes})
    unknown = sorted(set(test) - {int(e) for e in episodes})
    if unknown:
        raise ValueError(
            f"{origin}: held-out episodes {unknown[:10]} of {repo_id} are not in the evaluated dataset; evaluate "
            "the dataset the checkpoint was trained on, or pass --split.from_checkpoint=false to split anew."
        )
    train = sorted({int(e) for e in episodes} - set(test))
    return Split(repo_id, "checkpoint", len(test) / max(1, len(episodes)), -1, train, test)


def split_path(splits_dir: str | Path, repo_id: str) -> Path:
    """``<splits_dir>/<repo_id with '/' -> '__'>.json`` (the file ``--dataset.holdout_dir`` reads)."""
    return holdout_path(splits_dir, repo_id)


def load_or_make_split(
    splits_dir: str | Path, repo_id: str, episode_tasks: Mapping[int, str], config: SplitConfig
) -> Split:
    """Reuse the dataset's split file if there is one, else make the split and write it.

    Raises:
        ValueError: the existing file was made with other settings or lists episodes the dataset lacks (the
            message names the file and the fix).
    """
    path = split_path(splits_dir, repo_id)
    if not path.is_file():
        split = split_episodes(repo_id, episode_tasks, config)
        write_json(path, split.to_json())
        return split
    data = json.loads(path.read_text())
    found = (data.get("mode"), data.get("test_fraction"), data.get("seed"))
    wanted = (config.mode, config.test_fraction, config.seed)
    if found != wanted:
        raise ValueError(
            f"{path}: split made with (mode, test_fraction, seed)={found}, but {wanted} was asked; pass the same "
            "--split.* flags, or another --split.splits_dir, or delete the file to make a new split."
        )
    split = Split(
        repo_id, config.mode, config.test_fraction, config.seed,
        [int(e) for e in data["train_episodes"]], [int(e) for e in data["test_episodes"]],
    )  # fmt: skip
    unknown = sorted(set(split.train_episodes + split.test_episodes) ^ {int(e) for e in episode_tasks})
    if unknown:
        raise ValueError(
            f"{path}: the split and the dataset {repo_id} disagree on episodes {unknown[:10]}; the dataset changed "
            "since the split was made. Delete the file to make a new split."
        )
    return split


@dataclass
class MakeSplitsConfig:
    """Flags of ``depi-eval split``: write the split files of datasets before training, no checkpoint needed.

    Attributes:
        root: a LeRobot dataset folder, or a folder of datasets (as ``depi-train --dataset.root``).
        repo_id: with ``root`` as the parent of ``<owner>/<name>``: only this dataset.
        split: mode, fraction, seed and ``--split.splits_dir`` (required here: the folder to hand to
            ``depi-train --dataset.holdout_dir``).
    """

    root: str | None = None
    repo_id: str | None = None
    split: SplitConfig = field(default_factory=SplitConfig)

    def __post_init__(self) -> None:
        if not self.root or not self.split.splits_dir:
            raise ValueError(
                "set --root=<dataset folder or folder of datasets> and --split.splits_dir=<folder for the split "
                "files>, then train with --dataset.holdout_dir=<that folder>"
            )


def make_splits(config: MakeSplitsConfig) -> list[Split]:
    """Reuse or write the split file of every dataset under ``config.root`` (repo ids as training names them).

    Raises:
        ValueError / FileNotFoundError: no dataset found, or an existing split file disagrees
            (:func:`load_or_make_split`).
    """
    splits = []
    for ref in select_datasets(repo_id=config.repo_id, root=config.root):
        if ref.root is None:
            raise FileNotFoundError(ref.missing_reason or f"{ref.repo_id}: no local root")
        meta = load_meta(ref.root, ref.repo_id)
        episode_tasks = {ep.episode_index: (ep.tasks[0] if ep.tasks else "") for ep in meta.episodes}
        splits.append(load_or_make_split(config.split.splits_dir, ref.repo_id, episode_tasks, config.split))
    return splits
