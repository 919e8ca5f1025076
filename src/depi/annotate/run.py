"""Annotate one dataset: every episode's frames to the VLM, bounded retries, and the annotation file.

The file (``<output_dir>/<owner>_<name>.json``, the format ``data_ids/annotations/README.md`` describes and the
mixture reads) is rewritten atomically after each episode, so an interrupted run resumes where it stopped::

    {"repo_id": "owner/name",
     "provenance": {"backend": "openai", "model": "...", "api_base": "...", "prompt_version": "depi-annotate-1",
                    "sample_fps": 1.0, "max_frames": 8, "updated_at": "..."},
     "cameras": {"front": {"camera_pose": "front", "votes": {"front": 12}}},
     "episodes": {"0": {"task": "Pick up ...", "original_task": "test", "cameras": {"front": "front"},
                        "model": "...", "prompt_version": "...", "annotated_at": "...", "attempts": 1}},
     "failures": {"3": {"error": "reply is not JSON ...", "raw": "<the reply>", "attempts": 4, "at": "..."}}}

Each camera's ``camera_pose`` is the majority of the episodes' labels. An episode already annotated with the
same model and prompt version, or written by hand (no ``prompt_version``), is kept unless ``force``; failed
episodes are tried again on a rerun. A malformed reply, a timeout, a 429 or a 5xx is retried ``max_retries``
times with exponential backoff (``Retry-After`` honoured), then recorded under ``failures`` with the raw reply.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from PIL import Image
from tqdm.auto import tqdm

from depi.annotate.backends import VLMConfig, classify, fatal_error
from depi.annotate.frames import EpisodeFrames, episode_frames
from depi.annotate.prompt import PROMPT_VERSION, Reply, build_messages, parse_reply
from depi.datasets.format.source import LeRobotSource
from depi.datasets.mixture.annotations import annotation_path
from depi.fileio import read_json_file, write_json
from depi.hub.retry import RetryPolicy


@dataclass
class EpisodeResult:
    """One episode's outcome, for the report: ``task`` None when it failed (then ``error`` / ``raw``)."""

    episode_index: int
    original_task: str
    task: str | None = None
    cameras: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    raw: str | None = None
    attempts: int = 0
    skipped: bool = False
    thumbnail: Image.Image | None = None


@dataclass
class DatasetResult:
    """One dataset's outcome: the file written, the episodes, and the camera-pose table."""

    repo_id: str
    path: Path
    episodes: list[EpisodeResult]
    cameras: dict[str, dict]

    @property
    def failed(self) -> list[EpisodeResult]:
        return [e for e in self.episodes if e.task is None]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def ask(backend, frames: EpisodeFrames, cfg: VLMConfig, policy: RetryPolicy, rng: random.Random,
        sleep: Callable[[float], None] = time.sleep) -> tuple[Reply | None, int, str | None, str | None]:  # fmt: skip
    """``(reply, attempts, error, raw)`` for one episode, with bounded retries (module docstring).

    Raises:
        DepiError: the endpoint refused the run (bad key, unknown model): no point asking again.
    """
    messages = build_messages(frames)
    names = list(frames.sheets)
    error, raw = None, None
    for attempt in range(1, cfg.max_retries + 2):
        try:
            raw = backend.complete(messages)
            return parse_reply(raw, names), attempt, None, None
        except Exception as err:  # noqa: BLE001 - classified: retried, recorded, or raised
            kind, retry_after = classify(err)
            if kind == "fatal":
                raise fatal_error(err, cfg) from err
            error = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}".rstrip(": ")
            if kind == "fail" or attempt > cfg.max_retries:
                return None, attempt, error, raw
            sleep(policy.backoff_s(attempt, retry_after, rng))
    raise AssertionError("unreachable")


def _load(path: Path) -> dict:
    if not path.is_file():
        return {}
    return read_json_file(path, "Annotation file", dict, "a JSON object", "fix or delete it before annotating again")


def camera_votes(episodes: dict) -> dict[str, dict]:
    """Camera name -> ``{"camera_pose": majority label, "votes": {label: count}}`` over the episodes."""
    votes: dict[str, Counter] = {}
    for entry in episodes.values():
        for name, pose in (entry.get("cameras") or {}).items():
            votes.setdefault(name, Counter())[pose] += 1
    return {name: {"camera_pose": c.most_common(1)[0][0], "votes": dict(c)} for name, c in votes.items()}


def annotate_dataset(
    repo_id: str,
    root: Path,
    backend,
    cfg: VLMConfig,
    *,
    output_dir: str | Path | None = None,
    sample_fps: float = 1.0,
    max_frames: int = 8,
    max_episodes: int | None = None,
    force: bool = False,
    policy: RetryPolicy | None = None,
    progress: bool = True,
    sleep: Callable[[float], None] = time.sleep,
) -> DatasetResult:
    """Annotate the episodes of one dataset and write its annotation file (format in the module docstring).

    Args:
        repo_id: ``owner/name`` (names the output file). root: the dataset folder.
        backend: an object with ``complete(messages) -> str`` (:mod:`depi.annotate.backends`).
        cfg: the backend settings (model name, retries, concurrency).
        output_dir: folder of annotation files (default ``data_ids/annotations``).
        sample_fps, max_frames: frames per episode (see :func:`depi.annotate.frames.sample_times`).
        max_episodes: annotate only the first N episodes. force: re-annotate episodes already done.
        policy: backoff between retries (default 1 s doubling, capped at 30 s).

    Raises:
        DepiError: the endpoint refused the run. ValueError: the existing annotation file is malformed.
        FileNotFoundError / DatasetFormatError: the dataset cannot be read.
    """
    path = annotation_path(output_dir, repo_id)
    doc = _load(path)
    doc.setdefault("repo_id", repo_id)
    episodes_doc: dict = doc.setdefault("episodes", {})
    failures: dict = doc.setdefault("failures", {})
    source = LeRobotSource(repo_id, root=root, cameras=[])
    positions = list(range(len(source.meta.episodes)))[: max_episodes or None]
    policy = policy or RetryPolicy(max_retries=cfg.max_retries)
    lock, read_lock, rng = threading.Lock(), threading.Lock(), random.Random()
    doc["provenance"] = {
        "backend": cfg.backend, "model": cfg.model, "api_base": cfg.api_base if cfg.backend == "openai" else None,
        "prompt_version": PROMPT_VERSION, "sample_fps": sample_fps, "max_frames": max_frames, "updated_at": _now(),
    }  # fmt: skip

    def done(key: str) -> bool:
        entry = episodes_doc.get(key)
        if entry is None or force:
            return False
        hand_written = "prompt_version" not in entry
        return hand_written or (entry.get("prompt_version") == PROMPT_VERSION and entry.get("model") == cfg.model)

    def one(position: int) -> EpisodeResult:
        episode = source.meta.episodes[position]
        key = str(episode.episode_index)
        original = episode.tasks[0] if episode.tasks else ""
        if done(key):
            entry = episodes_doc[key]
            return EpisodeResult(episode.episode_index, entry.get("original_task", original), entry["task"],
                                 entry.get("cameras", {}), skipped=True)  # fmt: skip
        with read_lock:  # one source, one decoder: frames are read one episode at a time, requests run in parallel
            frames = episode_frames(source, position, sample_fps=sample_fps, max_frames=max_frames)
        reply, attempts, error, raw = ask(backend, frames, cfg, policy, rng, sleep)
        thumb = next(iter(frames.sheets.values()), None)
        with lock:
            if reply is not None:
                episodes_doc[key] = {"task": reply.task, "original_task": original, "cameras": reply.cameras,
                                     "model": cfg.model, "prompt_version": PROMPT_VERSION, "annotated_at": _now(),
                                     "attempts": attempts}  # fmt: skip
                failures.pop(key, None)
            else:
                failures[key] = {"error": error, "raw": raw, "attempts": attempts, "original_task": original,
                                 "at": _now()}  # fmt: skip
            doc["cameras"] = camera_votes(episodes_doc)
            write_json(path, doc)
        return EpisodeResult(episode.episode_index, original, reply.task if reply else None,
                             reply.cameras if reply else {}, error, raw, attempts, thumbnail=thumb)  # fmt: skip

    workers = cfg.concurrency if cfg.backend == "openai" else 1
    with ThreadPoolExecutor(workers) as pool:
        results = list(tqdm(pool.map(one, positions), total=len(positions), desc=repo_id, unit="ep",
                            disable=not progress))  # fmt: skip
    doc["cameras"] = camera_votes(episodes_doc)
    write_json(path, doc)
    return DatasetResult(repo_id, path, results, doc["cameras"])
