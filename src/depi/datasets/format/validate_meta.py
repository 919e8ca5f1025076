"""Metadata checks of ``depi-validate``: path templates, episode tables (v2.x jsonl / v3.0 parquet), totals,
splits and stats counts. The problem types live here too; ``validate.py`` adds the data and video checks and the CLI.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from depi.constants import (
    EPISODE_INDEX,
    EPISODES_DIR,
    EPISODES_JSONL_PATH,
    EPISODES_STATS_JSONL_PATH,
    INFO_PATH,
    STATS_PATH,
    TASKS_JSONL_PATH,
    TASKS_PARQUET_PATH,
)

TEMPLATE_FIELDS = {
    "v3.0": {
        "data_path": {"chunk_index", "file_index"},
        "video_path": {"video_key", "chunk_index", "file_index"},
    },
    "v2.x": {
        "data_path": {"episode_chunk", "episode_index"},
        "video_path": {"episode_chunk", "video_key", "episode_index"},
    },
}


@dataclass(frozen=True)
class Problem:
    """One inconsistency: ``file`` (relative to the dataset root), what was ``found``, what was ``expected``,
    and the ``fix``; ``check`` names the rule (e.g. ``"total_frames"``)."""

    check: str
    file: str
    found: str
    expected: str
    fix: str


@dataclass
class ValidationReport:
    """The problems found in one dataset; ``ok`` when there are none."""

    target: str
    root: str | None
    codebase_version: str | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, check: str, file: str, found: str, expected: str, fix: str) -> None:
        self.problems.append(Problem(check, file, found, expected, fix))


@dataclass
class EpisodeRecord:
    """One episode as its metadata describes it: rows ``[from_index, to_index)`` in ``data_file``, and per camera
    key ``(video file, from_timestamp, to_timestamp)`` in seconds; ``stats_counts`` holds each feature's stored
    ``count`` as found (to check its shape)."""

    index: int
    length: int
    data_file: str
    from_index: int
    to_index: int
    videos: dict[str, tuple[str, float, float]] = field(default_factory=dict)  # key -> (file, from_s, to_s)
    stats_counts: dict[str, list] = field(default_factory=dict)  # feature -> count value as stored


def check_templates(info: dict, version: str, report: ValidationReport) -> None:
    """``data_path`` / ``video_path`` must use exactly the placeholders of ``version`` (lerobot ``utils.py``:
    v3.0 ``chunk_index``/``file_index``, v2.x ``episode_chunk``/``episode_index``)."""
    expected = TEMPLATE_FIELDS["v3.0" if version == "v3.0" else "v2.x"]
    other = TEMPLATE_FIELDS["v2.x" if version == "v3.0" else "v3.0"]
    has_video = any(f.get("dtype") == "video" for f in info["features"].values())
    for key, fields in expected.items():
        template = info.get(key)
        if template is None and (key == "data_path" or has_video):
            report.add(
                "template",
                INFO_PATH,
                f"{key} missing",
                f"{key} with {sorted(fields)}",
                f"add {key} to info.json",
            )
        if template is None:
            continue
        used = {name for _, name, _, _ in string.Formatter().parse(template) if name}
        if used != fields:
            looks_like = (
                "v2.x"
                if used == other[key] and version == "v3.0"
                else "v3.0"
                if used == other[key]
                else "unknown"
            )
            report.add(
                "template",
                INFO_PATH,
                f"{key}={template!r} uses {sorted(used)} ({looks_like} placeholders)",
                f"placeholders {sorted(fields)} for codebase_version {version}",
                f"set codebase_version to match the layout, or convert the dataset to {version}",
            )


def read_v3_meta(
    root: Path, info: dict, report: ValidationReport
) -> tuple[list[str], list[EpisodeRecord] | None]:
    """Tasks and episodes of a v3.0 dataset from ``meta/tasks.parquet`` and ``meta/episodes/*/*.parquet``;
    episodes is None (with a problem reported) when the episode table is missing."""
    tasks: list[str] = []
    if (root / TASKS_PARQUET_PATH).is_file():
        tasks = [str(r) for r in pq.read_table(root / TASKS_PARQUET_PATH).column("task_index").to_pylist()]
    else:
        report.add(
            "tasks", TASKS_PARQUET_PATH, "file missing", "meta/tasks.parquet", "rewrite the task table"
        )
    paths = sorted((root / EPISODES_DIR).glob("chunk-*/file-*.parquet"))
    if not paths:
        report.add(
            "episodes",
            EPISODES_DIR,
            "no parquet files",
            "meta/episodes/chunk-NNN/file-NNN.parquet",
            "the episode metadata is gone: re-download or re-convert the dataset",
        )
        return tasks, None
    video_keys = [k for k, f in info["features"].items() if f.get("dtype") == "video"]
    episodes = []
    for path in paths:
        for row in pq.read_table(path).to_pylist():
            ep = EpisodeRecord(
                index=row[EPISODE_INDEX],
                length=row["length"],
                from_index=row["dataset_from_index"],
                to_index=row["dataset_to_index"],
                data_file=info["data_path"].format(
                    chunk_index=row["data/chunk_index"], file_index=row["data/file_index"]
                ),
            )
            for key in video_keys:
                p = f"videos/{key}/"
                video_file = info["video_path"].format(
                    video_key=key, chunk_index=row[p + "chunk_index"], file_index=row[p + "file_index"]
                )
                ep.videos[key] = (video_file, row[p + "from_timestamp"], row[p + "to_timestamp"])
            ep.stats_counts = {
                c[6:-6]: v for c, v in row.items() if c.startswith("stats/") and c.endswith("/count")
            }
            episodes.append(ep)
            _check_stats_count(ep, str(path.relative_to(root)), report)
    return tasks, sorted(episodes, key=lambda e: e.index)


def read_v2_meta(
    root: Path, info: dict, version: str, report: ValidationReport
) -> tuple[list[str], list[EpisodeRecord] | None]:
    """Tasks and episodes of a v2.0 / v2.1 dataset from ``tasks.jsonl`` / ``episodes.jsonl`` (one file per episode,
    rows numbered in episode order; v2.1 stats counts from ``episodes_stats.jsonl``)."""
    tasks = [str(r.get("task")) for r in _read_jsonl(root, TASKS_JSONL_PATH, report) or []]
    rows = _read_jsonl(root, EPISODES_JSONL_PATH, report)
    if rows is None:
        return tasks, None
    counts: dict[int, dict] = {}
    if version == "v2.1":
        for row in _read_jsonl(root, EPISODES_STATS_JSONL_PATH, report) or []:
            counts[row[EPISODE_INDEX]] = {k: s.get("count") for k, s in row.get("stats", {}).items()}
    video_keys = [k for k, f in info["features"].items() if f.get("dtype") == "video"]
    fps, chunks_size = float(info["fps"]), int(info.get("chunks_size", 1000))
    episodes, start = [], 0
    for row in sorted(rows, key=lambda r: r[EPISODE_INDEX]):
        index, length = row[EPISODE_INDEX], row["length"]
        chunk = index // chunks_size
        ep = EpisodeRecord(
            index,
            length,
            info["data_path"].format(episode_chunk=chunk, episode_index=index),
            start,
            start + length,
        )
        for key in video_keys:
            video_file = info["video_path"].format(episode_chunk=chunk, video_key=key, episode_index=index)
            ep.videos[key] = (video_file, 0.0, length / fps)
        ep.stats_counts = counts.get(index, {})
        _check_stats_count(ep, EPISODES_STATS_JSONL_PATH, report)
        episodes.append(ep)
        start += length
    return tasks, episodes


def _read_jsonl(root: Path, relative: str, report: ValidationReport) -> list[dict] | None:
    path = root / relative
    if not path.is_file():
        report.add(
            "meta", relative, "file missing", f"{relative} (LeRobot v2.x)", "re-download the dataset's meta/"
        )
        return None
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                report.add(
                    "meta",
                    relative,
                    f"line {number} is not JSON ({err})",
                    "one JSON object per line",
                    f"fix or remove line {number}",
                )
    return rows


def _check_stats_count(ep: EpisodeRecord, file: str, report: ValidationReport) -> None:
    for key, count in ep.stats_counts.items():
        size = np.asarray(count).size
        if size != 1:
            report.add(
                "stats_count",
                file,
                f"episode {ep.index}: stats[{key!r}].count has {size} elements {np.asarray(count).tolist()[:4]}...",
                "a single count (shape (1,))",
                "recompute episode stats (lerobot's v2.1 episodes_stats.jsonl stored count per dimension)",
            )


def check_totals(
    info: dict, tasks: list[str], episodes: list[EpisodeRecord], version: str, report: ValidationReport
) -> None:
    """Episode index continuity, consecutive row ranges, info.json totals, splits and (v2.x) total_videos."""
    indices = [e.index for e in episodes]
    if indices != list(range(len(indices))):
        missing = sorted(set(range(max(indices, default=-1) + 1)) - set(indices))
        duplicated = sorted({i for i in indices if indices.count(i) > 1})
        report.add(
            "episode_index",
            EPISODES_DIR if version == "v3.0" else EPISODES_JSONL_PATH,
            f"episode indices missing {missing}, duplicated {duplicated}",
            f"0..{len(indices) - 1} once each",
            "re-index the episodes (lerobot's delete_episodes / aggregate tools rewrite them consecutively)",
        )
    start = 0
    for ep in episodes:
        if (ep.from_index, ep.to_index) != (start, start + ep.length):
            report.add(
                "episode_range",
                EPISODES_DIR,
                f"episode {ep.index}: dataset_from/to_index=[{ep.from_index}, {ep.to_index})",
                f"[{start}, {start + ep.length}) (consecutive, length {ep.length})",
                "rewrite meta/episodes",
            )
        start = ep.to_index
    frames = sum(e.length for e in episodes)
    counted = (
        ("total_episodes", len(episodes), "episodes in the episodes meta"),
        ("total_frames", frames, "sum of the episodes' lengths"),
        ("total_tasks", len(tasks), "tasks in the task table"),
    )
    for key, actual, source in counted:
        if info.get(key) != actual:
            report.add(
                key,
                INFO_PATH,
                f"{key}={info.get(key)}",
                f"{actual} ({source})",
                f"set {key} to {actual} in meta/info.json",
            )
    fix = f'set splits to {{"train": "0:{len(episodes)}"}} in meta/info.json'

    for split, spec in (info.get("splits") or {}).items():
        try:
            lo, hi = (int(x) for x in str(spec).split(":"))
        except ValueError:
            report.add("splits", INFO_PATH, f"splits[{split!r}]={spec!r}", "'start:stop' episode range", fix)
            continue
        if not 0 <= lo <= hi <= len(episodes):
            report.add(
                "splits",
                INFO_PATH,
                f"splits[{split!r}]={spec!r}",
                f"a range within 0:{len(episodes)} ({len(episodes)} episodes)",
                fix,
            )
    if version != "v3.0":
        num_videos = len(episodes) * sum(1 for f in info["features"].values() if f.get("dtype") == "video")
        if "total_videos" in info and info["total_videos"] != num_videos:
            report.add(
                "total_videos",
                INFO_PATH,
                f"total_videos={info['total_videos']}",
                f"{num_videos} (episodes x video cameras)",
                f"set total_videos to {num_videos} in meta/info.json",
            )


def check_dataset_stats(root: Path, info: dict, frames: int, report: ValidationReport) -> None:
    """``meta/stats.json`` (when present): one ``count`` per feature, equal to the frames for numeric features."""
    path = root / STATS_PATH
    if not path.is_file():
        return
    numeric = numeric_feature_shapes(info)
    for key, stats in json.loads(path.read_text()).items():
        count = np.asarray(stats.get("count", [frames]))
        if count.size != 1:
            report.add(
                "stats_count",
                STATS_PATH,
                f"stats[{key!r}].count has {count.size} elements",
                "a single count (shape (1,))",
                "recompute the dataset stats",
            )
        elif key in numeric and int(count.reshape(())) != frames:
            report.add(
                "stats_count",
                STATS_PATH,
                f"stats[{key!r}].count={int(count.reshape(()))}",
                f"{frames} (frames in the dataset)",
                "recompute the dataset stats",
            )


def numeric_feature_shapes(info: dict) -> dict[str, tuple[int, ...]]:
    """Key -> shape of every numeric feature in ``info.json`` (default columns included)."""
    numeric = {"float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"}
    return {k: tuple(f["shape"]) for k, f in info["features"].items() if f.get("dtype") in numeric}
