"""``depi-data-ids``: build a curated list of LeRobot dataset ids from the Hub, with a reason for each reject.

Lists datasets by tag (``HfApi.list_datasets(filter=...)``, all tags must match), reads only each one's
``meta/info.json`` (one small GET, retried under :mod:`depi.hub.retry`), and keeps those that pass every
filter::

    depi-data-ids --tags='[LeRobot,so100]' --robot_types='[so100,so100_follower]' --state_dim=6 \\
        --action_dim=6 --fps='[30]' --min_episodes=5 --min_frames=1000 --min_cameras=1 \\
        --output=data_ids/so100_curated.json

Writes ``--output`` (a JSON list of ``owner/name``, most frames first, the format ``--dataset.repo_ids`` and
``--num_datasets`` read) and ``<output>_rejected.json`` (``{"owner/name": "reason"}``), atomically.
Each reason starts with the check that failed (``fps: 15 not in [30]``). The totals come from ``info.json`` (``total_episodes``, ``total_frames``): a dataset whose files disagree
with them is caught later by ``depi-download``'s meta check.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError
from tqdm.auto import tqdm

from depi.cli import parse, run
from depi.constants import ACTION, OBS_STATE
from depi.errors import UsageError
from depi.fileio import write_json
from depi.hub.download import describe_error, hub_endpoint, hub_offline
from depi.hub.fetch import get_bytes
from depi.hub.retry import RetriesExhausted, RetryPolicy, RetryStats, with_retries


@dataclass
class CurateConfig:
    """Flags of ``depi-data-ids``.

    Attributes:
        tags: Hub tags every listed dataset must carry (``HfApi.list_datasets(filter=tags)``).
        search: substring of the repo id (``HfApi.list_datasets(search=)``); None: any.
        limit: list at most this many datasets; None: all.
        codebase_versions: accepted ``info.json`` ``codebase_version`` values.
        robot_types: accepted ``robot_type`` values; None: any.
        state_dim, action_dim: required ``observation.state`` / ``action`` widths; None: any.
        fps: accepted recording rates (Hz); None: any.
        min_episodes, min_frames: minimum ``total_episodes`` / ``total_frames``.
        min_cameras, max_cameras: accepted number of camera features (video or image); max None: any.
        output: the curated list; the rejects go to ``<output stem>_rejected.json``.
        max_workers: concurrent ``info.json`` requests; ``max_retries``: retries per request.
    """

    tags: list[str] = field(default_factory=lambda: ["LeRobot"])
    search: str | None = None
    limit: int | None = None
    codebase_versions: list[str] = field(default_factory=lambda: ["v2.0", "v2.1", "v3.0"])
    robot_types: list[str] | None = None
    state_dim: int | None = None
    action_dim: int | None = None
    fps: list[float] | None = None
    min_episodes: int = 1
    min_frames: int = 1
    min_cameras: int = 1
    max_cameras: int | None = None
    output: str = "data_ids/curated.json"
    max_workers: int = 16
    max_retries: int = 5

    @property
    def rejected_path(self) -> Path:
        out = Path(self.output)
        return out.with_name(f"{out.stem}_rejected.json")


def _width(features: dict, key: str) -> int | None:
    shape = (features.get(key) or {}).get("shape")
    return int(shape[0]) if isinstance(shape, list) and len(shape) == 1 else None


def check_info(info: dict, cfg: CurateConfig) -> str | None:
    """Why ``info`` (a parsed ``meta/info.json``) fails the filters of ``cfg``, or None when it passes."""
    if not isinstance(info, dict) or not isinstance(info.get("features"), dict):
        return "meta/info.json: not an object with a 'features' object"
    features = info["features"]
    version = info.get("codebase_version")
    if version not in cfg.codebase_versions:
        return f"codebase_version: {version!r} not in {cfg.codebase_versions}"
    if cfg.robot_types is not None and info.get("robot_type") not in cfg.robot_types:
        return f"robot_type: {info.get('robot_type')!r} not in {cfg.robot_types}"
    for key, want in ((OBS_STATE, cfg.state_dim), (ACTION, cfg.action_dim)):
        got = _width(features, key)
        if got is None:
            return f"{key}: missing or not a 1-d vector"
        if want is not None and got != want:
            return f"{key}: {got} dims, want {want}"
    if cfg.fps is not None and float(info.get("fps", 0)) not in [float(f) for f in cfg.fps]:
        return f"fps: {info.get('fps')} not in {cfg.fps}"
    episodes, frames = int(info.get("total_episodes") or 0), int(info.get("total_frames") or 0)
    if episodes < cfg.min_episodes:
        return f"episodes: {episodes} < {cfg.min_episodes}"
    if frames < cfg.min_frames:
        return f"frames: {frames} < {cfg.min_frames}"
    cameras = sum(1 for ft in features.values() if isinstance(ft, dict) and ft.get("dtype") in ("video", "image"))
    if cameras < cfg.min_cameras or (cfg.max_cameras is not None and cameras > cfg.max_cameras):
        return f"cameras: {cameras}, want {cfg.min_cameras}..{cfg.max_cameras or 'any'}"
    return None


@dataclass
class CurationResult:
    """``kept``: ids in curated order; ``frames``: id -> total_frames; ``rejected``: id -> reason."""

    kept: list[str]
    frames: dict[str, int]
    rejected: dict[str, str]
    stats: RetryStats


def curate(cfg: CurateConfig, *, endpoint: str | None = None, token: str | None = None, progress: bool = True,
           policy: RetryPolicy | None = None) -> CurationResult:  # fmt: skip
    """List, read and filter (see the module docstring); nothing is written.

    Raises:
        RetriesExhausted: the listing itself failed after the retries.
        huggingface_hub.errors.HfHubHTTPError: the listing was refused (e.g. 401).
    """
    endpoint = (endpoint or hub_endpoint()).rstrip("/")
    policy = policy or RetryPolicy(max_retries=cfg.max_retries)
    stats, rng = RetryStats(), random.Random()
    api = HfApi(endpoint=endpoint, token=token)
    listed = with_retries(
        lambda: [d.id for d in api.list_datasets(filter=cfg.tags, search=cfg.search, limit=cfg.limit)],
        f"list datasets with tags {cfg.tags}", policy, stats=stats, rng=rng,
    )  # fmt: skip
    ids = list(dict.fromkeys(listed))

    def inspect(repo_id: str) -> tuple[str, int, str | None]:
        try:
            raw = with_retries(
                lambda: get_bytes(repo_id, "meta/info.json", revision="main", endpoint=endpoint, token=token),
                f"{repo_id}: meta/info.json", policy, stats=stats, rng=rng,
            )  # fmt: skip
            info = json.loads(raw)
        except (RetriesExhausted, HfHubHTTPError, OSError) as err:
            return repo_id, 0, f"meta/info.json: {describe_error(err)}"
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            return repo_id, 0, f"meta/info.json: invalid JSON ({err})"
        try:
            return repo_id, int(info.get("total_frames") or 0), check_info(info, cfg)
        except (TypeError, ValueError, AttributeError) as err:
            return repo_id, 0, f"meta/info.json: malformed field ({type(err).__name__}: {err})"

    kept, frames, rejected = [], {}, {}
    with ThreadPoolExecutor(max(1, cfg.max_workers)) as pool:
        for repo_id, n, reason in tqdm(pool.map(inspect, ids), total=len(ids), desc="info.json", unit="ds",
                                       disable=not progress):  # fmt: skip
            if reason is None:
                kept.append(repo_id)
                frames[repo_id] = n
            else:
                rejected[repo_id] = reason
    kept.sort(key=lambda r: -frames[r])
    return CurationResult(kept, frames, rejected, stats)


def main(argv: list[str]) -> int:
    cfg = parse(CurateConfig, argv, prog="depi-data-ids")
    if hub_offline():
        raise UsageError("HF_HUB_OFFLINE=1: curation lists datasets on the Hub; unset it to run depi-data-ids.")
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    result = curate(cfg, token=os.environ.get("HF_TOKEN"))
    write_json(cfg.output, result.kept)
    write_json(cfg.rejected_path, result.rejected)
    print(f"kept {len(result.kept)} datasets ({sum(result.frames.values())} frames) -> {cfg.output}", file=sys.stderr)
    print(f"rejected {len(result.rejected)} -> {cfg.rejected_path}", file=sys.stderr)
    for check, n in Counter(r.split(":")[0] for r in result.rejected.values()).most_common():
        print(f"  {n:>6}  {check}", file=sys.stderr)
    print(f"{result.stats.requests} requests, {result.stats.retries} retries", file=sys.stderr)
    return 0


def console() -> None:
    run(main, prog="depi-data-ids")
