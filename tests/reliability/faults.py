"""Broken LeRobot datasets, one per kind of fault met in community data, for the reliability suite.

:func:`make_fault_mixture` writes ``good`` clean datasets and one dataset per entry of :data:`FAULTS` under
``<root>/<owner>/<name>`` (owner ``good`` or ``fault``); each fault function damages a fresh dataset in place.
``EXPECTED[name]`` is the outcome depi must give it: ``"excluded"`` (left out of the mixture when it is built,
with the reason) or ``"replaced"`` (kept, and each sample it cannot serve is replaced by another frame and
counted in a logged warning). Nothing may be served damaged and nothing may crash.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tests.datasets.factories import CameraSpec, DatasetSpec, make_lerobot_dataset

CAMERA = CameraSpec("observation.images.front", height=16, width=24)
SPEC = DatasetSpec(version="v3.0", episode_lengths=(6, 7), fps=10, state_dim=3, action_dim=3, cameras=(CAMERA,))


def _one(root: Path, pattern: str) -> Path:
    return sorted(root.glob(pattern))[0]


def _rewrite(path: Path, change: Callable[[pa.Table], pa.Table]) -> None:
    pq.write_table(change(pq.read_table(path)), path)


def _set_column(table: pa.Table, name: str, values) -> pa.Table:
    i = table.column_names.index(name)
    return table.set_column(i, name, pa.array(values, table.schema.field(name).type))


def _info(root: Path, change: Callable[[dict], None]) -> None:
    path = root / "meta/info.json"
    info = json.loads(path.read_text())
    change(info)
    path.write_text(json.dumps(info))


def truncated_parquet(root: Path) -> None:
    path = _one(root, "data/**/*.parquet")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def missing_mp4(root: Path) -> None:
    _one(root, "videos/**/*.mp4").unlink()


def corrupt_mp4(root: Path) -> None:
    path = _one(root, "videos/**/*.mp4")
    data = bytearray(path.read_bytes())
    middle = len(data) // 3
    data[middle : middle + len(data) // 3] = os.urandom(len(data) // 3)
    path.write_bytes(bytes(data))


def nan_state(root: Path) -> None:
    def change(t: pa.Table) -> pa.Table:
        state = np.array(t.column("observation.state").to_pylist(), dtype=np.float32)
        action = np.array(t.column("action").to_pylist(), dtype=np.float32)
        state[2, 1], action[8, 0] = np.nan, np.inf
        return _set_column(_set_column(t, "observation.state", state.tolist()), "action", action.tolist())

    _rewrite(_one(root, "data/**/*.parquet"), change)


def non_monotonic_timestamps(root: Path) -> None:
    def change(t: pa.Table) -> pa.Table:
        ts = t.column("timestamp").to_pylist()
        ts[2], ts[3] = ts[3], ts[2]
        return _set_column(t, "timestamp", ts)

    _rewrite(_one(root, "data/**/*.parquet"), change)


def lying_totals(root: Path) -> None:
    _info(root, lambda info: info.update(total_frames=info["total_frames"] + 100, total_episodes=7))


def bad_path_template(root: Path) -> None:
    _info(root, lambda info: info.update(data_path="data/episode_{episode_index:06d}.parquet"))


def state_dim_changes(root: Path) -> None:  # v2.1: one parquet per episode; episode 1 records 4 state dims
    def change(t: pa.Table) -> pa.Table:
        state = [row + [0.0] for row in t.column("observation.state").to_pylist()]
        return t.set_column(t.column_names.index("observation.state"), "observation.state",
                            pa.array(state, pa.list_(pa.float32(), 4)))  # fmt: skip

    _rewrite(sorted(root.glob("data/**/*.parquet"))[1], change)


def missing_tasks(root: Path) -> None:
    (root / "meta/tasks.parquet").unlink()


def empty_episode(root: Path) -> None:  # v2.1
    path = root / "meta/episodes.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[1]["length"] = 0
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def wrong_fps(root: Path) -> None:
    _info(root, lambda info: info.update(fps=25))


def invalid_json(root: Path) -> None:
    (root / "meta/info.json").write_text('{"codebase_version": "v3.0", "fps": 10,')


def symlink_loop(root: Path) -> None:
    path = _one(root, "videos/**/*.mp4")
    path.unlink()
    path.symlink_to(path.name)  # points at itself: ELOOP on open


def unreadable_file(root: Path) -> None:
    path = _one(root, "data/**/*.parquet")
    if os.geteuid() == 0:  # root reads through chmod 000: a directory in the file's place is unreadable for all
        path.unlink()
        path.mkdir()
    else:
        path.chmod(0)


FAULTS: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated_parquet": (truncated_parquet, "v3.0"),
    "missing_mp4": (missing_mp4, "v2.1"),
    "corrupt_mp4": (corrupt_mp4, "v3.0"),
    "nan_state": (nan_state, "v3.0"),
    "non_monotonic_timestamps": (non_monotonic_timestamps, "v2.1"),
    "lying_totals": (lying_totals, "v3.0"),
    "bad_path_template": (bad_path_template, "v3.0"),
    "state_dim_changes": (state_dim_changes, "v2.1"),
    "missing_tasks": (missing_tasks, "v3.0"),
    "empty_episode": (empty_episode, "v2.1"),
    "wrong_fps": (wrong_fps, "v3.0"),
    "invalid_json": (invalid_json, "v2.1"),
    "symlink_loop": (symlink_loop, "v3.0"),
    "unreadable_file": (unreadable_file, "v3.0"),
}


def make_fault_mixture(root: Path, good: int = 6) -> dict[str, Path]:
    """Write ``good`` clean datasets and one per fault; returns repo id -> dataset folder."""
    made = {}
    for i in range(good):
        version = ("v3.0", "v2.1", "v2.0")[i % 3]
        made[f"good/ds{i}"] = make_lerobot_dataset(root / "good" / f"ds{i}", SPEC, version=version)
    for name, (damage, version) in FAULTS.items():
        path = make_lerobot_dataset(root / "fault" / name, SPEC, version=version)
        damage(path)
        made[f"fault/{name}"] = path
    return made


EXPECTED = {
    "truncated_parquet": "replaced",
    "missing_mp4": "excluded",
    "corrupt_mp4": "replaced",
    "nan_state": "replaced",
    "non_monotonic_timestamps": "replaced",
    "lying_totals": "served",  # the episode tables are the truth: every frame is fine; the mismatch is logged
    "bad_path_template": "excluded",
    "state_dim_changes": "replaced",
    "missing_tasks": "excluded",
    "empty_episode": "excluded",
    "wrong_fps": "replaced",
    "invalid_json": "excluded",
    "symlink_loop": "excluded",
    "unreadable_file": "excluded",
}


def serve_every_frame(mixture, log_path: Path, workers: int = 2) -> dict:
    """Read every frame index of ``mixture`` through a DataLoader with ``workers`` processes, logging to
    ``log_path`` (the workers inherit the handler). Returns ``samples`` (dataset index, episode, frame, state,
    actions) per index, ``failures`` (repo id -> logged load failures) and ``build_warnings`` (repo ids named
    by the build's warnings)."""
    import logging
    import re

    import torch

    from depi.constants import ACTIONS, DATASET_INDEX, EPISODE_INDEX, FRAME_INDEX, STATE
    from depi.datasets.mixture.dataset import worker_init

    handler = logging.FileHandler(log_path)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    logger = logging.getLogger("depi")
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        loader = torch.utils.data.DataLoader(
            mixture, batch_size=None, num_workers=workers, worker_init_fn=worker_init if workers else None,
            multiprocessing_context="fork" if workers else None,
        )  # fmt: skip
        samples = [
            (int(s[DATASET_INDEX]), int(s[EPISODE_INDEX]), int(s[FRAME_INDEX]), s[STATE].numpy(), s[ACTIONS].numpy())
            for s in loader
        ]
    finally:
        logger.removeHandler(handler)
        handler.close()
    failures: dict[str, int] = {}
    for line in log_path.read_text().splitlines():
        found = re.search(r"Sample load failed .*?: dataset (\S+), episode", line)
        if found:
            failures[found.group(1)] = failures.get(found.group(1), 0) + 1
    return {"samples": samples, "failures": failures}
