"""Read .rrd files back with rerun's own reader (``rerun.chunk.RrdReader``), into plain Python per entity."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pytest

from tests.datasets.conftest import _arrow_cache_dir, arrow_cache, reachy2_root, video_dataset  # noqa: F401

pytest.importorskip("rerun", reason="rerun-sdk is not installed (the viz extra)")


@dataclass
class Entity:
    """What an entity holds: per timeline its index values, per component its rows (in row order)."""

    timelines: dict[str, list] = field(default_factory=lambda: defaultdict(list))
    components: dict[str, list] = field(default_factory=lambda: defaultdict(list))
    static: dict[str, list] = field(default_factory=lambda: defaultdict(list))


def read_rrd(path: Path) -> dict[str, Entity]:
    """Entity path -> :class:`Entity` of the first recording in ``path``."""
    from rerun.chunk import RrdReader

    entities: dict[str, Entity] = defaultdict(Entity)
    for chunk in RrdReader(path).stream():
        batch = chunk.to_record_batch()
        entity = entities[str(chunk.entity_path)]
        for name, column in zip(batch.schema.names, batch.columns, strict=True):
            if pa.types.is_duration(column.type) or pa.types.is_timestamp(column.type):
                column = column.cast(pa.int64())  # nanoseconds
            values = column.to_pylist()
            if name == "rerun.controls.RowId":
                continue
            if name in chunk.timeline_names:
                entity.timelines[name].extend(values)
            elif chunk.is_static:
                entity.static[name].extend(values)
            else:
                entity.components[name].extend(values)
    return dict(entities)
