"""Which datasets a mixture uses, and where each one lives on disk.

Selections (combine freely; order is kept, duplicates removed):

* ``repo_id``: one ``owner/name``;
* ``repo_ids``: a JSON file holding a list of ``owner/name``;
* ``num_datasets``: the first N ids of the curated list (``data_ids/so100_community.json`` by default);
* ``root``: with one id, the dataset's own folder (LeRobot's convention) or the folder holding
  ``<root>/<owner>/<name>``; with several ids, the latter; without ids, either a dataset itself
  (it has ``meta/info.json``) or a folder of datasets (``<root>/<name>`` or ``<root>/<owner>/<name>``).
  Found this way, ``<root>/<owner>/<name>`` gets the repo id ``owner/name`` and a dataset folder ``<name>``
  directly under (or at) the root gets ``local/<name>`` (the key used by the curation files).

Ids without a root resolve through :func:`depi.datasets.format.hub.resolve_root` (``$HF_LEROBOT_HOME`` and the Hub
cache). Nothing downloads unless ``download=True``; then :func:`download_selected` fetches what is missing
with :mod:`depi.hub.download` (manifest, bounded retries, used cameras only).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from depi.constants import INFO_PATH
from depi.datasets.format import hub
from depi.fileio import read_json_file

CURATED_LIST = Path(__file__).resolve().parents[4] / "data_ids" / "so100_community.json"
"""Default curated id list (a repository checkout's ``data_ids/``)."""


@dataclass(frozen=True)
class DatasetRef:
    """One selected dataset: its id and its root (None when it was not found locally)."""

    repo_id: str
    root: Path | None
    missing_reason: str | None = None


def read_repo_ids(path: str | Path) -> list[str]:
    """Read a JSON list of ``owner/name`` ids.

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: not a JSON list of strings of the form ``owner/name``.
    """
    path = Path(path)
    data = read_json_file(path, "Repo id list", list, "a JSON list of 'owner/name' strings",
                          "pass a JSON file holding a list of 'owner/name'")  # fmt: skip
    bad = [x for x in data if not isinstance(x, str) or x.count("/") != 1]
    if bad:
        raise ValueError(f"{path}: {len(bad)} entries are not 'owner/name' strings, e.g. {bad[:3]}.")
    return data


def curated_repo_ids(num_datasets: int, curated_list: str | Path | None = None) -> list[str]:
    """The first ``num_datasets`` ids of the curated list.

    Raises:
        ValueError: ``num_datasets`` < 1 or larger than the list.
    """
    ids = read_repo_ids(curated_list or CURATED_LIST)
    if not 1 <= num_datasets <= len(ids):
        raise ValueError(
            f"num_datasets={num_datasets}: the curated list has {len(ids)} ids; pick 1..{len(ids)}."
        )
    return ids[:num_datasets]


def download_selected(
    ids: list[str],
    root: Path | None,
    *,
    camera_roles: dict[str, dict[str, str]] | None = None,
    annotations_dir: str | Path | None = None,
    verbose: bool = True,
) -> dict[str, DatasetRef]:
    """Fetch ``ids`` with :func:`depi.hub.download.download_datasets` into ``root`` (default
    ``$HF_LEROBOT_HOME``); returns a ref per id, excluded ones carrying the reason.

    In a multi-process run (``WORLD_SIZE`` > 1) the local main process of each node downloads first; the
    others then read its manifest without a request (``accelerate.PartialState.local_main_process_first``).
    """
    from depi.hub.download import download_datasets

    kwargs = dict(camera_roles=camera_roles, annotations_dir=annotations_dir)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import torch
        from accelerate import PartialState

        state = PartialState(cpu=not torch.cuda.is_available())  # the run's state when already initialised
        main = state.is_local_main_process
        with state.local_main_process_first():
            summary = download_datasets(ids, root, offline=None if main else True, progress=main and verbose,
                                        **kwargs)  # fmt: skip
        verbose = verbose and main
    else:
        summary = download_datasets(ids, root, progress=verbose, **kwargs)
    if verbose:
        print(summary.render(), file=sys.stderr)
    refs = {r: DatasetRef(r, path) for r, path in summary.roots.items()}
    for repo_id, reason in summary.excluded.items():
        refs[repo_id] = DatasetRef(repo_id, None, missing_reason=f"download: {reason}")
    return refs


def _is_dataset(path: Path) -> bool:
    return (path / INFO_PATH).is_file()


def scan_root(root: Path) -> list[DatasetRef]:
    """Datasets under a local folder: the folder itself, or its children / grandchildren (sorted)."""
    if _is_dataset(root):
        return [DatasetRef(repo_id=f"local/{root.name}", root=root)]
    refs = []
    for child in sorted(p for p in root.iterdir() if p.is_dir()):
        if _is_dataset(child):
            refs.append(DatasetRef(repo_id=f"local/{child.name}", root=child))
            continue
        for grandchild in sorted(p for p in child.iterdir() if p.is_dir()):
            if _is_dataset(grandchild):
                refs.append(DatasetRef(repo_id=f"{child.name}/{grandchild.name}", root=grandchild))
    return refs


def resolve_ref(repo_id: str, root: Path | None) -> DatasetRef:
    """Find one dataset id locally (``<root>/<repo_id>`` or the HF layouts); a miss is recorded."""
    if root is not None:
        path = root / repo_id
        if _is_dataset(path):
            return DatasetRef(repo_id, path)
        return DatasetRef(repo_id, None, missing_reason=f"not found: {path / INFO_PATH} does not exist")
    try:
        return DatasetRef(repo_id, hub.resolve_root(repo_id))
    except FileNotFoundError as err:
        return DatasetRef(repo_id, None, missing_reason=str(err))


def select_datasets(
    *,
    repo_id: str | None = None,
    repo_ids: str | Path | None = None,
    root: str | Path | None = None,
    num_datasets: int | None = None,
    curated_list: str | Path | None = None,
    download: bool = False,
    camera_roles: dict[str, dict[str, str]] | None = None,
    annotations_dir: str | Path | None = None,
    verbose: bool = True,
) -> list[DatasetRef]:
    """Resolve a selection (see the module docstring) to dataset roots.

    With ``download=True``, ids missing locally, and ids listed in the download manifest of ``root`` (default
    ``$HF_LEROBOT_HOME``) so that interrupted downloads resume, go through :func:`download_selected`
    (``camera_roles`` / ``annotations_dir`` pick the videos fetched); ids found locally otherwise stay local.

    Returns:
        One :class:`DatasetRef` per selected dataset; those not found carry ``missing_reason`` and
        ``root=None`` so that the mixture reports them instead of stopping.

    Raises:
        ValueError: nothing selected.
        FileNotFoundError: ``root`` does not exist.
    """
    ids: list[str] = []
    if repo_id is not None:
        ids.append(repo_id)
    if repo_ids is not None:
        ids.extend(read_repo_ids(repo_ids))
    if num_datasets is not None:
        ids.extend(curated_repo_ids(num_datasets, curated_list))
    ids = list(dict.fromkeys(ids))
    root_path = None if root is None else Path(root).expanduser()
    if root_path is not None and download and ids:
        root_path.mkdir(parents=True, exist_ok=True)  # the download folder
    if root_path is not None and not root_path.is_dir():
        raise FileNotFoundError(
            f"Dataset root {root_path} does not exist; pass an existing folder as --dataset.root."
        )
    if not ids:
        if root_path is None:
            raise ValueError(
                "No dataset selected: pass --dataset.repo_id, --dataset.repo_ids=<list.json>, "
                "--dataset.num_datasets=N or --dataset.root=<folder>."
            )
        refs = scan_root(root_path)
        if not refs:
            raise ValueError(
                f"No LeRobot dataset (folder with {INFO_PATH}) found in {root_path} or below it."
            )
        return refs
    if root_path is not None and len(ids) == 1 and _is_dataset(root_path):
        return [DatasetRef(ids[0], root_path)]  # LeRobot's convention: root is the dataset's own folder
    refs = [resolve_ref(r, root_path) for r in ids]
    if download:
        from depi.hub.manifest import Manifest

        listed = Manifest(root_path or hub.lerobot_home()).datasets
        fetch = [ref.repo_id for ref in refs if ref.root is None or ref.repo_id in listed]
        if fetch:
            got = download_selected(fetch, root_path, camera_roles=camera_roles, annotations_dir=annotations_dir,
                                    verbose=verbose)  # fmt: skip
            refs = [got.get(ref.repo_id, ref) for ref in refs]
    return refs
