"""Build report of a mixture: the JSON file of kept / excluded datasets and the printed summary tables."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from depi.constants import CAMERA_SLOTS
from depi.datasets.mixture.index import MixtureIndex
from depi.datasets.mixture.roles import camera_name

_SHOWN = 10


def report_dict(index: MixtureIndex, weights: np.ndarray) -> dict:
    """JSON-able report: per kept dataset (sampled frames, episodes, held-out episodes, fps, dims, embodiment,
    camera slots, dropped cameras, weight)
    and per excluded dataset (root, reason)."""
    kept = []
    kept_frames = index.kept_frames
    for i, e in enumerate(index.entries):
        kept.append(
            {
                "repo_id": e.repo_id,
                "root": str(e.root),
                "codebase_version": e.codebase_version,
                "frames": int(kept_frames[i]),
                "episodes": int(len(e.episode_lengths)),
                "held_out_episodes": index.held_out_episodes(i),
                "fps": e.fps,
                "state_dim": e.state_dim,
                "action_dim": e.action_dim,
                "embodiment": e.embodiment,
                "camera_slots": e.roles.slots,
                "dropped_cameras": e.roles.dropped,
                "weight": float(weights[i]),
            }
        )
    excluded = [{"repo_id": x.repo_id, "root": x.root, "reason": x.reason} for x in index.excluded]
    return {"selected": index.num_selected, "kept": kept, "excluded": excluded}


def write_report(path: str | Path, index: MixtureIndex, weights: np.ndarray) -> Path:
    """Write :func:`report_dict` to ``path`` atomically (temporary file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report_dict(index, weights), indent=2))
    tmp.replace(path)
    return path


def _table(header: list[str], rows: list[list[object]]) -> list[str]:
    cells = [header, *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  " + "  ".join("-" * w for w in widths))
    return lines


def summary_line(index: MixtureIndex) -> str:
    """One line: datasets kept / excluded, frames (sampled; held-out ones counted apart), embodiments."""
    kept = int(index.kept_frames.sum())
    held = f" ({index.total_frames - kept:,} more held out)" if kept < index.total_frames else ""
    return (
        f"Mixture: {len(index.entries)} datasets kept, {len(index.excluded)} excluded "
        f"(of {index.num_selected} selected), {kept:,} frames{held}, "
        f"{len(index.embodiments)} embodiments"
    )


def format_summary(index: MixtureIndex, weights: np.ndarray, *, report_path: str | Path | None = None) -> str:
    """The printed build summary: totals, embodiments, camera-role table, weights, exclusions."""
    lines = [summary_line(index) + (f"; report: {report_path}" if report_path else "")]
    rows = []
    kept_frames = index.kept_frames
    for g, name in enumerate(index.embodiments):
        members = index.embodiment_id == g
        rows.append(
            [
                name,
                int(members.sum()),
                f"{int(kept_frames[members].sum()):,}",
                f"{weights[members].sum():.3f}",
            ]
        )
    lines += ["", "Embodiments:", *_table(["group", "datasets", "frames", "weight"], rows)]

    roles: dict[str, Counter] = defaultdict(Counter)
    for e in index.entries:
        for slot, key in e.roles.slots.items():
            roles[camera_name(key)][slot] += 1
        for key in e.roles.dropped:
            roles[camera_name(key)]["dropped"] += 1
    columns = [*CAMERA_SLOTS, "dropped"]
    role_rows = [
        [name, *[roles[name][c] for c in columns]]
        for name in sorted(roles, key=lambda n: -sum(roles[n].values()))
    ]
    lines += [
        "",
        "Camera roles (datasets per camera name and slot):",
        *_table(["camera", *columns], role_rows),
    ]

    order = np.argsort(-weights, kind="stable")[:_SHOWN]
    weight_rows = [
        [index.entries[i].repo_id, f"{int(kept_frames[i]):,}", f"{index.fps[i]:g}", f"{weights[i]:.4f}"]
        for i in order
    ]
    if len(weights):
        lines += [
            "",
            f"Weights (top {len(order)} of {len(weights)}; "
            f"min {weights.min():.2e}, max {weights.max():.2e}):",
            *_table(["dataset", "frames", "fps", "weight"], weight_rows),
        ]
    if index.excluded:
        reasons = [[x.repo_id, x.reason.splitlines()[0][:120]] for x in index.excluded[:_SHOWN]]
        lines += [
            "",
            f"Excluded ({len(index.excluded)}, first {len(reasons)}):",
            *_table(["dataset", "reason"], reasons),
        ]
    return "\n".join(lines)
