"""Held-out episodes of a training mixture, read from the evaluation's split files.

A split file (written by ``depi-eval offline``, :mod:`depi.eval.splits`) is
``<holdout_dir>/<repo_id with '/' -> '__'>.json`` and lists ``test_episodes`` (``episode_index`` values).
With ``--dataset.holdout_dir`` the mixture leaves those episodes out of what it samples and of the stats;
datasets without a file there keep every episode.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def holdout_path(holdout_dir: str | Path, repo_id: str) -> Path:
    """``<holdout_dir>/<repo_id with '/' -> '__'>.json``."""
    return Path(holdout_dir) / f"{repo_id.replace('/', '__')}.json"


def load_held_out_episodes(holdout_dir: str | Path, repo_id: str, episode_ids: np.ndarray) -> np.ndarray:
    """The dataset's held-out episodes, as a mask over its episodes.

    Args:
        holdout_dir: folder of split files.
        repo_id: the dataset.
        episode_ids: int (E,) the dataset's ``episode_index`` values, in index order.

    Returns:
        bool (E,), True for the episodes the split file lists as ``test_episodes``; all False when the dataset
        has no split file.

    Raises:
        ValueError: the file is not a split file, or lists an episode the dataset lacks (the message names the
            file, the episode and the fix).
    """
    path = holdout_path(holdout_dir, repo_id)
    held = np.zeros(len(episode_ids), dtype=bool)
    if not path.is_file():
        return held
    try:
        data = json.loads(path.read_text())
        test = np.array([int(e) for e in data["test_episodes"]], dtype=np.int64)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ValueError(
            f"{path}: not a split file ({type(err).__name__}: {err}); expected a JSON object with "
            "'test_episodes': [episode_index, ...], as written by `depi-eval offline --split.splits_dir=DIR`."
        ) from err
    unknown = np.setdiff1d(test, episode_ids)
    if unknown.size:
        raise ValueError(
            f"{path}: held-out episode {int(unknown[0])} is not an episode of {repo_id} "
            f"({unknown.size} unknown: {unknown[:10].tolist()}; the dataset has {len(episode_ids)} episodes). "
            "The split was made for another version of the dataset: delete the file and re-make the split "
            "(`depi-eval offline --split.splits_dir=DIR`), or point --dataset.holdout_dir elsewhere."
        )
    return np.isin(episode_ids, test)
