"""``depi-viz dataset``: one episode of a LeRobot dataset (v2.0, v2.1, v3.0, local) in rerun.

mp4 cameras are logged as video assets with one frame reference per frame (rerun decodes in the viewer: nothing
is decoded here, memory stays at the file's size); image-in-parquet cameras as their encoded PNG bytes;
``observation.state`` and ``action`` (and any other float vector feature) as named scalar series; the task as
text. A camera whose video is missing is reported (stderr and the ``warnings`` log) and the rest is logged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from depi.errors import DepiError
from depi.viz.log import dim_names, log_encoded_images, log_series, log_video, rerun, warn

NOT_SERIES = ("timestamp", "frame_index", "episode_index", "index", "task_index")


def episode_table(root: Path, meta: Any, episode_index: int):
    """The parquet rows of one episode (a pyarrow Table, in frame order).

    Raises:
        DepiError: no such episode, or its data file holds none of its rows.
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if not 0 <= episode_index < meta.total_episodes:
        raise DepiError(f"--episode_index={episode_index}: {root} has episodes 0..{meta.total_episodes - 1}")
    info = meta.episode(episode_index)
    path = root / info.data_file
    table = pq.read_table(path)
    rows = table.filter(pc.equal(table["episode_index"], info.episode_index))
    if rows.num_rows == 0:
        raise DepiError(f"{path}: no rows with episode_index={info.episode_index}")
    return rows.sort_by("frame_index") if "frame_index" in rows.column_names else rows


def log_episode(rec: Any, root: str | Path, episode_index: int, prefix: str = "") -> dict:
    """Log episode ``episode_index`` of the dataset at ``root`` into ``rec``.

    Returns:
        ``{"frames", "cameras": {key: "video" | "image" | "missing"}, "series": [entity prefixes]}``.

    Raises:
        DepiError: no dataset at ``root`` or no such episode.
    """
    from depi.datasets.format.meta import load_meta

    rr = rerun()
    root = Path(root)
    if not (root / "meta" / "info.json").is_file():
        raise DepiError(f"{root}: no LeRobot dataset here (meta/info.json is missing); pass a dataset folder")
    meta = load_meta(root)
    info = meta.episode(episode_index) if 0 <= episode_index < meta.total_episodes else None
    rows = episode_table(root, meta, episode_index)
    n = rows.num_rows
    frame_index = np.asarray(rows["frame_index"]) if "frame_index" in rows.column_names else np.arange(n)
    timestamp = np.asarray(rows["timestamp"], dtype=np.float64) if "timestamp" in rows.column_names else (
        frame_index / meta.fps)  # fmt: skip
    report: dict = {"frames": n, "cameras": {}, "series": []}
    rec.log(f"{prefix}task", rr.TextDocument("\n".join(info.tasks) or "(no task)"), static=True)
    for key in meta.camera_keys:
        entity = f"{prefix}cameras/{key.removeprefix('observation.images.')}"
        if key in meta.video_keys:
            mp4 = root / info.video_files.get(key, "")
            if not info.video_files.get(key) or not mp4.is_file():
                warn(rec, f"{root}: video of {key} for episode {episode_index} is missing ({mp4}); "
                          "the camera is left out, the rest is logged")  # fmt: skip
                report["cameras"][key] = "missing"
                continue
            log_video(rec, entity, mp4, info.video_from_timestamp.get(key, 0.0),
                      info.video_to_timestamp.get(key, n / meta.fps), frame_index, timestamp)  # fmt: skip
            report["cameras"][key] = "video"
        else:
            cells = rows[key].to_pylist()
            log_encoded_images(rec, entity, [c["bytes"] if isinstance(c, dict) else c for c in cells],
                               frame_index, timestamp)  # fmt: skip
            report["cameras"][key] = "image"
    for key, feature in meta.features.items():
        shape = tuple(feature.get("shape", ()))
        if (key in NOT_SERIES or feature.get("dtype") not in ("float32", "float64") or len(shape) != 1
                or key not in rows.column_names):
            continue
        values = np.asarray(rows[key].to_pylist(), dtype=np.float64).reshape(n, shape[0])
        log_series(rec, f"{prefix}{key}", values, dim_names(feature.get("names"), shape[0]), frame_index, timestamp)
        report["series"].append(f"{prefix}{key}")
    return report


def dataset_blueprint(report: dict, prefix: str = ""):
    """Camera views in a grid above the time series of state and action."""
    import rerun.blueprint as rrb

    cameras = [rrb.Spatial2DView(origin=f"{prefix}cameras/{k.removeprefix('observation.images.')}", name=k)
               for k, kind in report["cameras"].items() if kind != "missing"]  # fmt: skip
    series = [rrb.TimeSeriesView(origin=s, name=s.removeprefix(prefix)) for s in report["series"]]
    side = [rrb.TextDocumentView(origin=f"{prefix}task", name="task"), rrb.TextLogView(origin="warnings")]
    return rrb.Blueprint(rrb.Vertical(rrb.Grid(*cameras), rrb.Horizontal(*series, rrb.Vertical(*side))))
