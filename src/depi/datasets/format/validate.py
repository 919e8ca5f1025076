"""Check a LeRobot dataset (v2.0, v2.1, v3.0) against its own metadata, reading the raw files.

``depi-validate ROOT|REPO_ID [...] [--json]`` reports every problem a loader would choke on, each with the file,
what was found, what was expected and the fix: info.json totals and splits vs the files; episode index
continuity; per-episode row counts and index ranges; state/action widths; NaN/inf in numeric columns;
timestamps that are not ``frame_index / fps``; missing data or video files; video frame counts vs rows; path
templates whose placeholders do not match the codebase version (v3.0: ``chunk_index``/``file_index``; v2.x:
``episode_chunk``/``episode_index``); and per-episode stats whose ``count`` is not a single number (a known
v2.1 ``episodes_stats.jsonl`` defect). Exit status 0 when clean, 1 otherwise.

REPO_ID arguments resolve through ``depi.datasets.format.hub.resolve_root`` (``$HF_LEROBOT_HOME/<repo_id>``).
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from depi.constants import (
    CODEBASE_VERSIONS,
    EPISODE_INDEX,
    FRAME_INDEX,
    INDEX,
    INFO_PATH,
    TIMESTAMP,
)
from depi.datasets.format.hub import resolve_root
from depi.datasets.format.validate_meta import (
    EpisodeRecord,
    Problem,
    ValidationReport,
    check_dataset_stats,
    check_templates,
    check_totals,
    numeric_feature_shapes,
    read_v2_meta,
    read_v3_meta,
)
from depi.datasets.format.video_encode import VideoProbe, probe_video

__all__ = ["Problem", "ValidationReport", "main", "render_table", "validate_dataset"]


def validate_dataset(
    root: str | Path, tolerance_s: float = 1e-4, check_videos: bool = True, meta_only: bool = False
) -> ValidationReport:
    """Validate the dataset at ``root``.

    Args:
        root: folder holding ``meta/info.json``.
        tolerance_s: allowed timestamp deviation (seconds) from ``frame_index / fps`` and between video frames
            and episode boundaries (lerobot's default ``tolerance_s``).
        check_videos: demux video files to count frames (no decoding).
        meta_only: stop after the ``meta/`` checks (templates, episode tables, totals, stats), as before
            any data is downloaded.

    Returns:
        The report; it never raises for a malformed dataset (problems are reported instead).
    """
    root = Path(root)
    report = ValidationReport(target=str(root), root=str(root))
    info_path = root / INFO_PATH
    if not info_path.is_file():
        report.add(
            "info", INFO_PATH, "file missing", "meta/info.json", "pass the folder that holds meta/info.json"
        )
        return report
    try:
        info = json.loads(info_path.read_text())
    except json.JSONDecodeError as err:
        report.add(
            "info",
            INFO_PATH,
            f"invalid JSON ({err})",
            "a JSON object",
            "re-download or rewrite meta/info.json",
        )
        return report
    version = info.get("codebase_version")
    report.codebase_version = version
    if version not in CODEBASE_VERSIONS:
        report.add(
            "codebase_version",
            INFO_PATH,
            f"codebase_version={version!r}",
            f"one of {list(CODEBASE_VERSIONS)}",
            "convert the dataset with lerobot's conversion scripts to v3.0",
        )
        return report
    for key in ("fps", "features", "data_path"):
        if key not in info:
            report.add(
                "info", INFO_PATH, f"field {key!r} missing", f"{key!r} present", "rewrite meta/info.json"
            )
            return report
    check_templates(info, version, report)
    if report.problems:
        return report
    if version == "v3.0":
        tasks, episodes = read_v3_meta(root, info, report)
    else:
        tasks, episodes = read_v2_meta(root, info, version, report)
    if episodes is None:
        return report
    check_totals(info, tasks, episodes, version, report)
    check_dataset_stats(root, info, sum(e.length for e in episodes), report)
    if meta_only:
        return report
    _check_data(root, info, episodes, tolerance_s, report)
    if check_videos:
        _check_videos(root, info, episodes, tolerance_s, report)
    return report


def _check_data(
    root: Path, info: dict, episodes: list[EpisodeRecord], tol: float, report: ValidationReport
) -> None:
    by_file: dict[str, list[EpisodeRecord]] = defaultdict(list)
    for ep in episodes:
        by_file[ep.data_file].append(ep)
    fps = float(info["fps"])
    features = numeric_feature_shapes(info)
    for file, file_episodes in by_file.items():
        path = root / file
        if not path.is_file():
            report.add(
                "data_file",
                file,
                f"file missing (episodes {[e.index for e in file_episodes]})",
                "the parquet file named by data_path",
                "re-download or re-convert the dataset",
            )
            continue
        table = pq.read_table(path, columns=[c for c in pq.read_schema(path).names if c in features])
        for key in features:
            if key not in table.column_names:
                report.add(
                    "column",
                    file,
                    f"column {key!r} missing",
                    f"feature {key!r} of info.json",
                    "re-convert the dataset",
                )
        if any(p.check == "column" and p.file == file for p in report.problems):
            continue
        episode_col = table.column(EPISODE_INDEX).to_numpy()
        for ep in file_episodes:
            rows = np.flatnonzero(episode_col == ep.index)
            where = f"episode {ep.index}"
            if len(rows) != ep.length:
                report.add(
                    "rows",
                    file,
                    f"{where}: {len(rows)} rows",
                    f"{ep.length} rows (episode length in meta)",
                    "re-convert the episode or fix its length in the episodes meta",
                )
            if len(rows) == 0:
                continue
            part = table.take(pa.array(rows))
            _check_episode_rows(part, ep, features, fps, tol, file, report)


def _check_episode_rows(
    part: pa.Table,
    ep: EpisodeRecord,
    features: dict,
    fps: float,
    tol: float,
    file: str,
    report: ValidationReport,
) -> None:
    where = f"episode {ep.index}"
    index = part.column(INDEX).to_numpy()
    if not np.array_equal(index, np.arange(ep.from_index, ep.from_index + len(index))):
        report.add(
            "index",
            file,
            f"{where}: index runs {index[:1].tolist()}..{index[-1:].tolist()}",
            f"consecutive from dataset_from_index={ep.from_index}",
            "rewrite the index column",
        )
    frame_index = part.column(FRAME_INDEX).to_numpy()
    if not np.array_equal(frame_index, np.arange(len(frame_index))):
        report.add(
            "frame_index",
            file,
            f"{where}: frame_index is not 0..{len(frame_index) - 1}",
            "0, 1, 2, ... within each episode",
            "rewrite the frame_index column",
        )
    ts = part.column(TIMESTAMP).to_numpy().astype(np.float64)
    gaps = np.diff(ts)
    bad_gap = np.flatnonzero(np.abs(gaps - 1 / fps) > tol)
    if len(bad_gap):
        report.add(
            "timestamp",
            file,
            f"{where}: {len(bad_gap)} steps differ from 1/fps, first at frame {bad_gap[0] + 1} "
            f"(step {gaps[bad_gap[0]]:.6f} s)",
            f"steps of 1/fps={1 / fps:.6f} s within {tol} s",
            "resample the episode to a constant fps or fix the fps in info.json",
        )
    off = np.flatnonzero(np.abs(ts - frame_index / fps) > tol)
    if len(off) and not len(bad_gap):
        report.add(
            "timestamp",
            file,
            f"{where}: timestamp {ts[off[0]]:.6f} at frame {frame_index[off[0]]}",
            f"frame_index / fps = {frame_index[off[0]] / fps:.6f} s",
            "rewrite timestamps as frame_index / fps",
        )
    for key, shape in features.items():
        column = part.column(key)
        if pa.types.is_list(column.type) or pa.types.is_fixed_size_list(column.type):
            widths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
            if len(set(widths.tolist())) > 1 or (len(widths) and (int(widths[0]),) != shape):
                report.add(
                    "dims",
                    file,
                    f"{where}: {key!r} rows have widths {sorted(set(widths.tolist()))}",
                    f"{shape[0]} values per row (info.json shape {list(shape)})",
                    "pad or truncate the vectors, or fix the feature shape in info.json",
                )
            values = pc.list_flatten(column).to_numpy(zero_copy_only=False)
        else:
            values = column.to_numpy(zero_copy_only=False)
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            report.add(
                "nan",
                file,
                f"{where}: {key!r} holds {int((~np.isfinite(values)).sum())} NaN/inf values",
                "finite values",
                "drop or repair the episode (NaN breaks normalization stats and training)",
            )


def _check_videos(
    root: Path, info: dict, episodes: list[EpisodeRecord], tol: float, report: ValidationReport
) -> None:
    probes: dict[str, VideoProbe | str] = {}
    features = info["features"]
    for ep in episodes:
        for key, (file, from_s, to_s) in ep.videos.items():
            where = f"episode {ep.index}, camera {key!r}, [{from_s:.4f}, {to_s:.4f}) s"
            if file not in probes:
                path = root / file
                if not path.is_file():
                    probes[file] = "missing"
                else:
                    try:
                        probes[file] = probe_video(path)
                    except (ValueError, OSError) as err:
                        probes[file] = f"unreadable ({err})"
            probe = probes[file]
            if isinstance(probe, str):
                report.add(
                    "video_file",
                    file,
                    f"{where}: file {probe}",
                    f"an mp4 with {ep.length} frames for this episode",
                    "re-download the videos/ folder or re-encode the episode",
                )
                continue
            count = probe.frames_between(from_s, to_s, tol)
            if count != ep.length:
                report.add(
                    "video_frames",
                    file,
                    f"{where}: {count} frames",
                    f"{ep.length} frames (rows of the episode)",
                    "re-encode the episode's video from its frames",
                )
            shape = features[key].get("shape", [])
            names = features[key].get("names") or []
            hw = (
                (shape[names.index("height")], shape[names.index("width")])
                if {"height", "width"} <= set(names)
                else None
            )
            if hw is not None and hw != (probe.height, probe.width):
                report.add(
                    "video_shape",
                    file,
                    f"{key!r} frames are {probe.height}x{probe.width}",
                    f"{hw[0]}x{hw[1]} (info.json shape)",
                    "fix the feature shape in info.json",
                )


def _resolve(target: str) -> Path:
    path = Path(target).expanduser()
    if path.is_dir():
        return path
    if target.startswith((".", "/", "~")) or target.count("/") != 1 or path.exists():
        raise FileNotFoundError(f"{target}: no such dataset folder")
    return resolve_root(target)


def render_table(reports: Sequence[ValidationReport], width: int = 48) -> str:
    """Human-readable table: one block per dataset, one row per problem, long cells wrapped at ``width``."""
    out = []
    headers = ("CHECK", "FILE", "FOUND", "EXPECTED", "FIX")
    for report in reports:
        status = "OK" if report.ok else f"{len(report.problems)} problem(s)"
        out.append(f"{report.target} ({report.codebase_version or 'unknown version'}): {status}")
        if report.ok:
            continue
        rows = [headers] + [(p.check, p.file, p.found, p.expected, p.fix) for p in report.problems]
        wrapped = [[textwrap.wrap(str(c), width) or [""] for c in row] for row in rows]
        widths = [max(len(line) for row in wrapped for line in row[i]) for i in range(len(headers))]
        for row in wrapped:
            for k in range(max(len(cell) for cell in row)):
                out.append(
                    "  "
                    + " | ".join(
                        (cell[k] if k < len(cell) else "").ljust(w) for cell, w in zip(row, widths)
                    ).rstrip()
                )
            if row is wrapped[0]:
                out.append("  " + "-+-".join("-" * w for w in widths))
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``depi-validate``; returns the exit status (0 clean, 1 problems)."""
    parser = argparse.ArgumentParser(prog="depi-validate", description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="+", metavar="ROOT|REPO_ID", help="dataset folder or owner/name")
    parser.add_argument("--json", action="store_true", help="print a JSON list of reports instead of a table")
    parser.add_argument("--tolerance-s", type=float, default=1e-4, help="timestamp tolerance in seconds")
    parser.add_argument("--skip-videos", action="store_true", help="do not open video files")
    args = parser.parse_args(argv)
    reports = []
    for target in args.targets:
        try:
            root = _resolve(target)
        except (FileNotFoundError, ValueError) as err:
            report = ValidationReport(target=target, root=None)
            report.add(
                "resolve",
                target,
                str(err),
                "a dataset folder or a repo_id in $HF_LEROBOT_HOME",
                "pass the path",
            )
            reports.append(report)
            continue
        report = validate_dataset(root, args.tolerance_s, check_videos=not args.skip_videos)
        report.target = target
        reports.append(report)
    if args.json:
        payload: list[dict[str, Any]] = [{**asdict(r), "ok": r.ok} for r in reports]
        print(json.dumps(payload, indent=2))
    else:
        print(render_table(reports))
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
