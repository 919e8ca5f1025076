"""Where LeRobot datasets live on disk: ``root`` resolution and the Hugging Face cache layouts.

A dataset is found, in order, at:

1. the ``root`` passed by the caller (used as is);
2. ``$HF_LEROBOT_HOME/<repo_id>`` (LeRobot's local layout; default ``~/.cache/huggingface/lerobot``);
3. the Hugging Face Hub cache snapshot ``$HF_HUB_CACHE/datasets--<owner>--<name>/snapshots/<revision>``
   (what ``huggingface_hub.snapshot_download`` leaves behind), revision taken from ``refs/main``.

Nothing here downloads. A download step, when added, writes into :func:`local_dataset_dir` so that every
reader finds the files through :func:`resolve_root` unchanged.

The parsed Arrow cache used by :class:`depi.datasets.format.source.LeRobotSource` lives under
:func:`arrow_cache_dir` (``$DEPI_CACHE/arrow``, default ``~/.cache/depi/arrow``).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "arrow_cache_dir",
    "candidate_roots",
    "hub_cache_dir",
    "lerobot_home",
    "local_dataset_dir",
    "resolve_root",
]


def lerobot_home() -> Path:
    """LeRobot's home for local datasets: ``$HF_LEROBOT_HOME``, else ``$HF_HOME/lerobot``, else
    ``~/.cache/huggingface/lerobot`` (lerobot ``constants.HF_LEROBOT_HOME`` behaviour)."""
    if os.environ.get("HF_LEROBOT_HOME"):
        return Path(os.environ["HF_LEROBOT_HOME"]).expanduser()
    hf_home = Path(os.environ.get("HF_HOME", "~/.cache/huggingface")).expanduser()
    return hf_home / "lerobot"


def hub_cache_dir() -> Path:
    """The Hugging Face Hub cache: ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    hf_home = Path(os.environ.get("HF_HOME", "~/.cache/huggingface")).expanduser()
    return hf_home / "hub"


def arrow_cache_dir() -> Path:
    """Where parsed Arrow IPC copies of parquet files are kept: ``$DEPI_CACHE/arrow``, default
    ``~/.cache/depi/arrow``."""
    return Path(os.environ.get("DEPI_CACHE", "~/.cache/depi")).expanduser() / "arrow"


def _check_repo_id(repo_id: str) -> None:
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(parts) or ".." in parts:
        raise ValueError(f"repo_id must look like 'owner/name', found {repo_id!r}")


def local_dataset_dir(repo_id: str) -> Path:
    """``$HF_LEROBOT_HOME/<repo_id>``: the directory a dataset with this ``repo_id`` is read from (or
    downloaded into). Raises ValueError if ``repo_id`` is not ``owner/name``."""
    _check_repo_id(repo_id)
    return lerobot_home() / repo_id


def _hub_snapshot(repo_id: str) -> Path | None:
    """The snapshot directory of ``repo_id`` in the Hub cache at ``refs/main``, or None when absent."""
    owner, name = repo_id.split("/")
    repo_dir = hub_cache_dir() / f"datasets--{owner}--{name}"
    ref = repo_dir / "refs" / "main"
    if not ref.is_file():
        return None
    snapshot = repo_dir / "snapshots" / ref.read_text().strip()
    return snapshot if snapshot.is_dir() else None


def candidate_roots(repo_id: str) -> list[Path]:
    """The places searched for ``repo_id``, in order (see the module docstring)."""
    candidates = [local_dataset_dir(repo_id)]
    snapshot = _hub_snapshot(repo_id)
    if snapshot is not None:
        candidates.append(snapshot)
    return candidates


def resolve_root(repo_id: str | None, root: str | Path | None = None) -> Path:
    """The directory holding a LeRobot dataset (the one with ``meta/info.json``).

    Args:
        repo_id: ``owner/name`` on the Hub; may be None when ``root`` is given.
        root: explicit local directory; when given it wins and must exist.

    Returns:
        The resolved directory.

    Raises:
        FileNotFoundError: no directory with ``meta/info.json`` was found; the message names every place
            searched and how to fetch the dataset.
        ValueError: neither ``repo_id`` nor ``root`` was given, or ``repo_id`` is not ``owner/name``.
    """
    if root is not None:
        path = Path(root).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(
                f"Dataset root {path} (repo_id={repo_id!r}) does not exist: pass the directory that holds "
                "meta/info.json"
            )
        return path
    if repo_id is None:
        raise ValueError("Give a repo_id ('owner/name') or a root directory to locate a LeRobot dataset")
    candidates = candidate_roots(repo_id)
    for candidate in candidates:
        if (candidate / "meta" / "info.json").is_file():
            return candidate
    searched = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"LeRobot dataset {repo_id!r} not found (searched: {searched}). Pass root=<dir with meta/info.json>, "
        f"or download it: `huggingface-cli download --repo-type dataset {repo_id} "
        f"--local-dir {local_dataset_dir(repo_id)}`"
    )
