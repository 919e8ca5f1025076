"""Read an .rrd back into plain Python, per entity, with rerun's own reader (``rerun.chunk.RrdReader``): for tests,
for figures made without a viewer, and for checking what a view logged."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Entity:
    """What an entity holds: per timeline its index values (durations and times in integer nanoseconds), per
    component its rows in row order (``static`` for static components)."""

    timelines: dict[str, list] = field(default_factory=lambda: defaultdict(list))
    components: dict[str, list] = field(default_factory=lambda: defaultdict(list))
    static: dict[str, list] = field(default_factory=lambda: defaultdict(list))


def read_rrd(path: str | Path) -> dict[str, Entity]:
    """Entity path (``/cameras/front``) -> :class:`Entity` of the first recording in ``path``.

    Raises:
        ValueError: ``path`` holds no recording.
    """
    import pyarrow as pa
    from rerun.chunk import RrdReader

    entities: dict[str, Entity] = defaultdict(Entity)
    for chunk in RrdReader(path).stream():
        batch = chunk.to_record_batch()
        entity = entities[str(chunk.entity_path)]
        for name, column in zip(batch.schema.names, batch.columns, strict=True):
            if name == "rerun.controls.RowId":
                continue
            if pa.types.is_duration(column.type) or pa.types.is_timestamp(column.type):
                column = column.cast(pa.int64())
            values = column.to_pylist()
            if name in chunk.timeline_names:
                entity.timelines[name].extend(values)
            elif chunk.is_static:
                entity.static[name].extend(values)
            else:
                entity.components[name].extend(values)
    return dict(entities)
