"""``depi-download``: fetch the datasets of a selection from the Hugging Face Hub, resumably.

Examples::

    depi-download --num_datasets=1500                       # the curated community list
    depi-download --repo_ids=data_ids/so100_community.json --root=/data/lerobot --max_workers=16
    depi-download --repo_id=lerobot/svla_so101_pickplace --cameras=all
    HF_HUB_OFFLINE=1 depi-download --num_datasets=1500      # check what the manifest holds, no request

Steps, limits and the manifest are described in :mod:`depi.hub.download`. Exit status 0 when every dataset
is ready, 1 when some were excluded (each listed with its reason at the end).
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass

from depi.cli import parse, run
from depi.datasets.mixture.annotations import load_camera_roles
from depi.datasets.mixture.selection import curated_repo_ids, read_repo_ids
from depi.errors import UsageError
from depi.hub.download import download_datasets
from depi.hub.retry import RetryPolicy


@dataclass
class DownloadConfig:
    """Flags of ``depi-download``.

    Attributes:
        repo_id: one dataset ``owner/name``.
        repo_ids: a JSON file holding a list of ``owner/name``.
        num_datasets: the first N ids of ``curated_list``.
        curated_list: curated id list (default ``data_ids/so100_community.json``).
        root: download folder; datasets land in ``<root>/<owner>/<name>`` (default ``$HF_LEROBOT_HOME``,
            where training looks).
        cameras: ``used`` (videos of the cameras that feed the policy's image slots) or ``all``.
        camera_roles_file, annotations_dir: the mixture's curation files (decide the used cameras).
        revision: branch, tag or commit of every dataset.
        max_workers: datasets in flight; ``file_workers``: concurrent file transfers in all.
        max_retries: retries per request (429 / 5xx / dropped connections) before the dataset is excluded.
        max_wait_s: cap of the exponential backoff, seconds.
        retry_excluded: try datasets an earlier run excluded again.
        refresh: re-list every dataset even when the manifest says it is complete.
        verbose: log every retry (WARNING lines).
    """

    repo_id: str | None = None
    repo_ids: str | None = None
    num_datasets: int | None = None
    curated_list: str | None = None
    root: str | None = None
    cameras: str = "used"
    camera_roles_file: str | None = None
    annotations_dir: str | None = None
    revision: str = "main"
    max_workers: int = 8
    file_workers: int = 16
    max_retries: int = 5
    max_wait_s: float = 30.0
    retry_excluded: bool = False
    refresh: bool = False
    verbose: bool = True

    def __post_init__(self) -> None:
        if self.cameras not in ("used", "all"):
            raise UsageError(f"--cameras={self.cameras}: expected 'used' or 'all'.")
        if self.max_workers < 1 or self.file_workers < 1 or self.max_retries < 0:
            raise UsageError("--max_workers and --file_workers must be >= 1, --max_retries >= 0.")

    def ids(self) -> list[str]:
        ids = [self.repo_id] if self.repo_id else []
        if self.repo_ids:
            ids += read_repo_ids(self.repo_ids)
        if self.num_datasets is not None:
            ids += curated_repo_ids(self.num_datasets, self.curated_list)
        if not ids:
            raise UsageError("nothing to download: pass --repo_id, --repo_ids=<list.json> or --num_datasets=N.")
        return list(dict.fromkeys(ids))


def main(argv: list[str]) -> int:
    cfg = parse(DownloadConfig, argv, prog="depi-download")
    logging.basicConfig(level=logging.WARNING if cfg.verbose else logging.ERROR, format="%(message)s")
    summary = download_datasets(
        cfg.ids(),
        cfg.root,
        cameras=cfg.cameras,
        camera_roles=load_camera_roles(cfg.camera_roles_file),
        annotations_dir=cfg.annotations_dir,
        revision=cfg.revision,
        max_workers=cfg.max_workers,
        file_workers=cfg.file_workers,
        policy=RetryPolicy(max_retries=cfg.max_retries, max_wait_s=cfg.max_wait_s),
        retry_excluded=cfg.retry_excluded,
        refresh=cfg.refresh,
    )
    print(summary.render(), file=sys.stderr)
    return 1 if summary.excluded else 0


def console() -> None:
    run(main, prog="depi-download")
