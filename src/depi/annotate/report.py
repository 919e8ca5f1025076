"""The review report of an annotation run: one HTML page, thumbnails inline, to read before training on it.

Per dataset: the camera-pose table (majority label and the votes), then every episode with its contact sheet,
the original and the new task, and for failures the error and the raw reply.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

from depi.annotate.frames import jpeg_data_url
from depi.annotate.run import DatasetResult

STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}.fail{background:#fdd}
.old{color:#777}pre{white-space:pre-wrap;max-width:480px;margin:0}img{height:72px}"""


def _thumb(result) -> str:
    if result.thumbnail is None:
        return ""
    image = result.thumbnail.copy()
    image.thumbnail((480, 72))
    return f'<img src="{jpeg_data_url(image, quality=70)}" alt="episode {result.episode_index}">'


def render_report(results: Sequence[DatasetResult]) -> str:
    """The report as an HTML string."""
    e = html.escape
    total = sum(len(r.episodes) for r in results)
    failed = sum(len(r.failed) for r in results)
    out = [f"<!doctype html><meta charset=utf-8><title>depi-annotate report</title><style>{STYLE}</style>",
           f"<h1>depi-annotate: {len(results)} datasets, {total} episodes, {failed} failed</h1>"]  # fmt: skip
    for r in results:
        out.append(f"<h2>{e(r.repo_id)}</h2><p>{e(str(r.path))}</p>")
        out.append("<table><tr><th>camera</th><th>camera_pose</th><th>votes</th></tr>")
        for name, c in r.cameras.items():
            votes = ", ".join(f"{e(k)}: {v}" for k, v in c.get("votes", {}).items())
            out.append(f"<tr><td>{e(name)}</td><td>{e(c['camera_pose'])}</td><td>{votes}</td></tr>")
        out.append("</table><table><tr><th>episode</th><th>frames</th><th>before → after</th><th>status</th></tr>")
        for ep in r.episodes:
            if ep.task is None:
                raw = f"<pre>{e(ep.raw)}</pre>" if ep.raw else ""
                status = f"failed after {ep.attempts} tries: {e(ep.error or '')}{raw}"
                cell = f'<span class="old">{e(ep.original_task)}</span>'
                out.append(f'<tr class="fail"><td>{ep.episode_index}</td><td>{_thumb(ep)}</td><td>{cell}</td>'
                           f"<td>{status}</td></tr>")  # fmt: skip
                continue
            status = "kept (annotated earlier)" if ep.skipped else f"ok ({ep.attempts} {'try' if ep.attempts == 1 else 'tries'})"
            cell = f'<span class="old">{e(ep.original_task)}</span><br>{e(ep.task)}'
            out.append(f"<tr><td>{ep.episode_index}</td><td>{_thumb(ep)}</td><td>{cell}</td><td>{status}</td></tr>")
        out.append("</table>")
    return "\n".join(out)


def write_report(path: str | Path, results: Sequence[DatasetResult]) -> Path:
    """Write :func:`render_report` to ``path`` (temp file + rename); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(render_report(results), encoding="utf-8")
    tmp.replace(path)
    return path
