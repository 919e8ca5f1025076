"""``--write_tasks=true``: put the annotated task texts into a LeRobot v3.0 dataset itself.

In v3.0 a frame's task is ``meta/tasks.parquet`` row ``task_index`` (lerobot and depi both read it so), and
``meta/episodes/*.parquet`` repeat each episode's task strings in their ``tasks`` column. Each original task
gets the text most of its episodes were annotated with; both files are rewritten (new files written beside
the old ones, then renamed in one go), so the data files and their ``task_index`` column stay untouched.
Two original tasks that would get the same text keep the second one's original (task strings must be unique).
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from depi.constants import TASKS_PARQUET_PATH
from depi.datasets.format.feature_spec import tasks_table
from depi.datasets.format.meta import load_meta


def retitle_tasks(root: str | Path, episode_tasks: dict[int, str]) -> dict[str, str]:
    """Rename the tasks of the v3.0 dataset at ``root`` from per-episode annotations.

    Args:
        root: dataset folder. episode_tasks: ``episode_index`` -> annotated task text.

    Returns:
        original task -> new task, for the tasks that changed.

    Raises:
        ValueError: the dataset is not v3.0 (convert it with lerobot's ``convert_dataset_v21_to_v30`` first).
    """
    root = Path(root)
    meta = load_meta(root)
    if meta.codebase_version != "v3.0":
        raise ValueError(
            f"{root}: codebase_version {meta.codebase_version}; --write_tasks writes v3.0 tasks.parquet only. "
            "Convert the dataset to v3.0 first, or train with the annotation file alone (the mixture reads it)."
        )
    votes: dict[str, Counter] = {}
    for ep in meta.episodes:
        if ep.episode_index in episode_tasks and ep.tasks:
            votes.setdefault(ep.tasks[0], Counter())[episode_tasks[ep.episode_index]] += 1
    renamed: dict[str, str] = {}
    taken = set(meta.tasks)
    for old in meta.tasks:
        if old in votes:
            new = votes[old].most_common(1)[0][0]
            if new != old and new not in taken:
                renamed[old] = new
                taken.add(new)
    if not renamed:
        return {}
    new_tasks = {renamed.get(t, t): i for i, t in enumerate(meta.tasks)}
    pending: list[tuple[Path, Path]] = []
    for path in sorted((root / "meta" / "episodes").rglob("*.parquet")):
        table = pq.read_table(path)
        if "tasks" in table.column_names:
            column = [[renamed.get(t, t) for t in (row or [])] for row in table.column("tasks").to_pylist()]
            i = table.column_names.index("tasks")
            table = table.set_column(i, "tasks", pa.array(column, table.schema.field("tasks").type))
            pending.append((path, _write_beside(path, table)))
    tasks_path = root / TASKS_PARQUET_PATH
    pending.append((tasks_path, _write_beside(tasks_path, tasks_table(new_tasks))))
    for target, tmp in pending:
        os.replace(tmp, target)
    return renamed


def _write_beside(path: Path, table: pa.Table) -> Path:
    tmp = path.with_name(f".{path.name}.new")
    pq.write_table(table, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    return tmp
