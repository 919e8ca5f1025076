"""Download LeRobot datasets from the Hugging Face Hub, many at once, without tripping its rate limits.

Per dataset (``<root>/<owner>/<name>``, ``root`` default ``$HF_LEROBOT_HOME``):

1. the manifest (:mod:`depi.hub.manifest`) already lists it as done and its files are on disk: nothing is
   requested (a rerun resumes; ``HF_HUB_OFFLINE=1`` reads the manifest alone);
2. one metadata request, ``HfApi.dataset_info(files_metadata=True)``: the commit sha the revision points
   to and every file's size and hash (no ``HEAD`` per file);
3. ``meta/*`` is fetched and checked by :func:`depi.datasets.format.validate.validate_dataset`
   (``meta_only=True``) before any data: a dataset whose meta is malformed or inconsistent is excluded;
4. the episodes' parquet files, and the mp4 files of the cameras the mixture uses (the camera-role rules of
   :mod:`depi.datasets.mixture.roles`, with ``camera_roles`` and the annotation poses), or of every camera
   with ``cameras="all"``; a file the meta names but the repository lacks excludes the dataset;
5. each file by :func:`depi.hub.fetch.fetch_file` (verified size and hash, atomic rename), under
   :func:`depi.hub.retry.with_retries`; files already complete on disk are not fetched again.

A dataset whose requests run out of retries, or whose meta fails, is excluded with the reason (recorded in
the manifest; rerun with ``retry_excluded=True`` to try it again). Parallelism is bounded: ``max_workers``
datasets at a time and ``file_workers`` file transfers in all.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError
from tqdm.auto import tqdm

from depi.datasets.format import hub
from depi.datasets.format.meta import DatasetFormatError, load_meta
from depi.datasets.format.validate import validate_dataset
from depi.datasets.mixture.annotations import load_annotation
from depi.datasets.mixture.roles import assign_camera_roles
from depi.hub.fetch import RemoteFile, fetch_file, is_complete
from depi.hub.manifest import DatasetEntry, FileEntry, Manifest
from depi.hub.retry import RetriesExhausted, RetryPolicy, RetryStats, log, with_retries

DEFAULT_ENDPOINT = "https://huggingface.co"
META_PREFIX = "meta/"


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` read now (huggingface_hub reads it once, at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_endpoint() -> str:
    """``HF_ENDPOINT`` read now, else the public Hub."""
    return os.environ.get("HF_ENDPOINT", "").rstrip("/") or DEFAULT_ENDPOINT


class DatasetExcluded(Exception):
    """Raised inside one dataset's download: it is excluded with this message as the reason."""


@dataclass
class DownloadSummary:
    """Outcome of :func:`download_datasets`.

    Attributes:
        roots: repo id -> local root, for every dataset ready on disk (fetched now or before).
        fetched: ids downloaded by this call; ``cached``: ids already complete (no request made).
        excluded: repo id -> reason.
        bytes: bytes transferred by this call; ``files``: files transferred.
        stats: requests / retries / seconds waited in backoff.
        elapsed_s: wall time, seconds.
        manifest: the manifest file.
    """

    roots: dict[str, Path] = field(default_factory=dict)
    fetched: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    excluded: dict[str, str] = field(default_factory=dict)
    bytes: int = 0
    files: int = 0
    stats: RetryStats = field(default_factory=RetryStats)
    elapsed_s: float = 0.0
    manifest: Path | None = None

    def render(self) -> str:
        """The end-of-run table: counts, volume, request totals and each excluded dataset's reason."""
        rate = len(self.fetched) / self.elapsed_s * 60 if self.elapsed_s > 0 else 0.0
        lines = [
            f"{'ready':<10}{len(self.roots):>8}   ({len(self.fetched)} downloaded, {len(self.cached)} already complete)",
            f"{'excluded':<10}{len(self.excluded):>8}",
            f"{'files':<10}{self.files:>8}   {self.bytes / 1e6:.1f} MB in {self.elapsed_s:.1f} s ({rate:.0f} datasets/min)",
            f"{'requests':<10}{self.stats.requests:>8}   {self.stats.retries} retries, "
            f"{self.stats.waited_s:.1f} s in backoff",
        ]
        if self.manifest is not None:
            lines.append(f"manifest  {self.manifest}")
        for repo_id, reason in self.excluded.items():
            lines.append(f"  excluded {repo_id}: {reason}")
        return "\n".join(lines)


@dataclass
class _Context:
    root: Path
    manifest: Manifest
    api: HfApi
    endpoint: str
    token: str | bool | None
    revision: str
    cameras: str
    camera_roles: dict[str, dict[str, str]]
    annotations_dir: str | Path | None
    policy: RetryPolicy
    stats: RetryStats
    files_pool: ThreadPoolExecutor
    rng: random.Random


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _listing(ctx: _Context, repo_id: str) -> tuple[str, dict[str, RemoteFile]]:
    """The commit sha of ``ctx.revision`` and the repository's files (one request)."""
    info = with_retries(
        lambda: ctx.api.dataset_info(repo_id, revision=ctx.revision, files_metadata=True, token=ctx.token),
        f"{repo_id}: dataset info",
        ctx.policy,
        stats=ctx.stats,
        rng=ctx.rng,
    )
    if not info.sha:
        raise DatasetExcluded(f"the Hub returned no commit sha for revision {ctx.revision!r}")
    files = {
        s.rfilename: RemoteFile(
            s.rfilename, s.size, s.lfs.sha256 if s.lfs is not None else None, s.blob_id if s.lfs is None else None
        )
        for s in info.siblings or []
    }
    return info.sha, files


def _fetch_all(ctx: _Context, repo_id: str, sha: str, remotes: Sequence[RemoteFile], target: Path) -> tuple[int, int]:
    """Fetch ``remotes`` (those not yet complete) in the shared file pool; returns (files, bytes) fetched."""

    def one(remote: RemoteFile) -> int:
        return with_retries(
            lambda: fetch_file(repo_id, remote, target / remote.path, revision=sha, endpoint=ctx.endpoint,
                               token=ctx.token),  # fmt: skip
            f"{repo_id}: {remote.path}",
            ctx.policy,
            stats=ctx.stats,
            rng=ctx.rng,
        )

    todo = [r for r in remotes if not is_complete(target / r.path, r)]
    futures = [ctx.files_pool.submit(one, r) for r in todo]
    sizes, first_error = [], None
    for future in futures:  # wait for all, so no transfer outlives its dataset
        try:
            sizes.append(future.result())
        except Exception as err:  # noqa: BLE001 - the first error is re-raised below
            first_error = first_error or err
    if first_error is not None:
        raise first_error
    return len(todo), sum(sizes)


def _required_files(ctx: _Context, repo_id: str, target: Path) -> tuple[list[str], list[str]]:
    """Data and video paths the meta names (only the used cameras' videos), and the cameras kept."""
    report = validate_dataset(target, meta_only=True)
    if not report.ok:
        p = report.problems[0]
        more = f" (+{len(report.problems) - 1} more problems)" if len(report.problems) > 1 else ""
        raise DatasetExcluded(f"meta check '{p.check}' failed on {p.file}: found {p.found}, expected {p.expected}{more}")
    meta = load_meta(target, repo_id)
    if ctx.cameras == "all":
        cameras = list(meta.video_keys)
    else:
        annotation = load_annotation(ctx.annotations_dir, repo_id)
        roles = assign_camera_roles(
            meta.camera_keys,
            ctx.camera_roles.get(repo_id),
            annotation.camera_poses if annotation else None,
            origin=f"camera roles of {repo_id}",
        )
        cameras = [k for k in roles.slots.values() if k in meta.video_keys]
    paths = {ep.data_file for ep in meta.episodes}
    paths |= {f for ep in meta.episodes for key, f in ep.video_files.items() if key in cameras}
    return sorted(paths), cameras


def describe_error(err: BaseException) -> str:
    """One line for the manifest: HTTP errors as status + the server's message."""
    if isinstance(err, RepositoryNotFoundError):
        return "repository not found (or private / gated: log in with `hf auth login` or pass a token)"
    if isinstance(err, HfHubHTTPError) and err.response is not None:
        message = err.server_message or err.response.reason_phrase
        return f"HTTP {err.response.status_code} on {err.response.request.url.path}: {message}"
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _download_one(ctx: _Context, repo_id: str) -> tuple[DatasetEntry, int, int]:
    """Download one dataset; returns its manifest entry and the (files, bytes) transferred."""
    target = ctx.root / repo_id
    sha: str | None = None
    files, nbytes = 0, 0
    try:
        sha, listing = _listing(ctx, repo_id)
        meta_files = [r for p, r in sorted(listing.items()) if p.startswith(META_PREFIX)]
        if "meta/info.json" not in listing:
            raise DatasetExcluded("the repository has no meta/info.json: not a LeRobot dataset")
        n, b = _fetch_all(ctx, repo_id, sha, meta_files, target)
        required, cameras = _required_files(ctx, repo_id, target)
        missing = [p for p in required if p not in listing]
        if missing:
            raise DatasetExcluded(
                f"meta names {len(missing)} files the repository lacks at {sha[:12]}, e.g. {missing[:3]}"
            )
        data = [listing[p] for p in required]
        n2, b2 = _fetch_all(ctx, repo_id, sha, data, target)
        files, nbytes = n + n2, b + b2
    except (DatasetExcluded, RetriesExhausted, HfHubHTTPError, DatasetFormatError, OSError, ValueError) as err:
        reason = describe_error(err)
        log.warning("%s: excluded: %s", repo_id, reason)
        return DatasetEntry("excluded", sha, reason=reason, finished_at=_now()), files, nbytes
    kept = [*(r for r in meta_files), *data]
    entry = DatasetEntry(
        "ok",
        sha,
        files=[FileEntry(r.path, (target / r.path).stat().st_size, r.sha256) for r in kept],
        cameras=cameras,
        bytes=sum((target / r.path).stat().st_size for r in kept),
        finished_at=_now(),
    )
    return entry, files, nbytes


def download_datasets(
    repo_ids: Sequence[str],
    root: str | Path | None = None,
    *,
    cameras: str = "used",
    camera_roles: dict[str, dict[str, str]] | None = None,
    annotations_dir: str | Path | None = None,
    revision: str = "main",
    max_workers: int = 8,
    file_workers: int = 16,
    policy: RetryPolicy | None = None,
    endpoint: str | None = None,
    token: str | bool | None = None,
    offline: bool | None = None,
    retry_excluded: bool = False,
    refresh: bool = False,
    progress: bool = True,
    seed: int | None = None,
) -> DownloadSummary:
    """Download LeRobot datasets into ``<root>/<owner>/<name>`` (steps in the module docstring).

    Args:
        repo_ids: ``owner/name`` ids (duplicates ignored).
        root: download root; default ``$HF_LEROBOT_HOME`` (where the mixture looks for ids).
        cameras: ``"used"`` (videos of the cameras that feed an image slot) or ``"all"``.
        camera_roles, annotations_dir: the mixture's curation inputs, for ``cameras="used"``.
        revision: branch, tag or commit to fetch; resolved to a commit sha recorded in the manifest.
        max_workers: datasets in flight; ``file_workers``: concurrent file transfers in all.
        policy: retry policy (default :class:`~depi.hub.retry.RetryPolicy`).
        endpoint: Hub URL (default ``$HF_ENDPOINT``, read at call time).
        token: Hub token (default: huggingface_hub's stored token / ``HF_TOKEN``).
        offline: read the manifest only, no request (default ``$HF_HUB_OFFLINE``, read at call time).
        retry_excluded: try datasets the manifest lists as excluded again (default: they stay excluded).
        refresh: fetch every dataset's listing again even when the manifest says it is complete.
        progress: show a progress bar (datasets, MB, excluded).
        seed: seed of the backoff jitter (tests).

    Returns:
        The :class:`DownloadSummary`; it never raises for one dataset's failure (that dataset is excluded).

    Raises:
        ValueError: a repo id is not ``owner/name``, ``cameras`` is unknown, or the manifest is unreadable.
    """
    if cameras not in ("used", "all"):
        raise ValueError(f"cameras={cameras!r}: expected 'used' or 'all'")
    ids = list(dict.fromkeys(repo_ids))
    for repo_id in ids:
        hub.local_dataset_dir(repo_id)  # raises ValueError for a malformed id
    root_path = Path(root).expanduser() if root is not None else hub.lerobot_home()
    manifest = Manifest(root_path)
    summary = DownloadSummary(manifest=manifest.path)
    offline = hub_offline() if offline is None else offline
    start = time.perf_counter()
    todo = []
    for repo_id in ids:
        entry = manifest.get(repo_id)
        if entry is not None and not refresh:
            if entry.status == "ok" and entry.present(root_path / repo_id):
                summary.roots[repo_id] = root_path / repo_id
                summary.cached.append(repo_id)
                continue
            if entry.status == "excluded" and not retry_excluded:
                summary.excluded[repo_id] = entry.reason or "excluded by an earlier download"
                continue
        if offline:
            summary.excluded[repo_id] = (
                f"offline (HF_HUB_OFFLINE=1) and not complete in {manifest.path}; run depi-download online first"
            )
            continue
        todo.append(repo_id)
    if todo:
        endpoint = (endpoint or hub_endpoint()).rstrip("/")
        with ThreadPoolExecutor(max(1, file_workers), thread_name_prefix="depi-file") as files_pool:
            ctx = _Context(
                root=root_path, manifest=manifest, api=HfApi(endpoint=endpoint, token=token), endpoint=endpoint,
                token=token, revision=revision, cameras=cameras, camera_roles=camera_roles or {},
                annotations_dir=annotations_dir, policy=policy or RetryPolicy(), stats=summary.stats,
                files_pool=files_pool, rng=random.Random(seed),
            )  # fmt: skip
            _run(ctx, todo, summary, max_workers=max_workers, progress=progress)
    summary.elapsed_s = time.perf_counter() - start
    return summary


def _run(ctx: _Context, todo: list[str], summary: DownloadSummary, *, max_workers: int, progress: bool) -> None:
    """Download ``todo`` with ``max_workers`` datasets in flight, recording each outcome as it finishes."""
    bar = tqdm(total=len(todo), desc="datasets", unit="ds", disable=not progress, dynamic_ncols=True)
    with ThreadPoolExecutor(max(1, max_workers), thread_name_prefix="depi-dataset") as pool:
        futures = {pool.submit(_download_one, ctx, r): r for r in todo}
        for future in as_completed(futures):
            repo_id, (entry, files, nbytes) = futures[future], future.result()
            ctx.manifest.set(repo_id, entry)
            summary.files += files
            summary.bytes += nbytes
            if entry.status == "ok":
                summary.roots[repo_id] = ctx.root / repo_id
                summary.fetched.append(repo_id)
            else:
                summary.excluded[repo_id] = entry.reason or "excluded"
            bar.update(1)
            bar.set_postfix(MB=f"{summary.bytes / 1e6:.1f}", excluded=len(summary.excluded), refresh=False)
    bar.close()
