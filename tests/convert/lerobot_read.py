"""Read back a written LeRobot v3.0 dataset in tests: frames from parquet, camera frames from the mp4 files."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def read_frames(root: Path) -> dict[str, np.ndarray]:
    """Every parquet column of ``data/``, rows sorted by ``index``; vectors as (N, D) arrays."""
    tables = [pq.read_table(path) for path in sorted((root / "data").rglob("*.parquet"))]
    table = pa.concat_tables(tables).sort_by("index")
    return {name: np.asarray(table.column(name).to_pylist()) for name in table.column_names}


def read_video(root: Path, key: str) -> np.ndarray:
    """All frames of a camera (one mp4 file in these small tests), uint8 (N, H, W, 3)."""
    (path,) = sorted((root / "videos" / key).rglob("*.mp4"))
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def read_sidecar(root: Path) -> dict:
    """The converter's header (meta/depi_convert.json) with its episode lines under ``"episodes"``."""
    header = json.loads((root / "meta" / "depi_convert.json").read_text())
    lines = (root / "meta" / "depi_convert_episodes.jsonl").read_text().splitlines()
    return {**header, "episodes": [json.loads(line) for line in lines]}
