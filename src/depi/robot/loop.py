"""The control loop: observe, act, record, one robot step at a time; episodes, success flags and results.

Torch-free: a robot, a policy (see :mod:`depi.robot.policy`) and, when recording, a
:class:`depi.datasets.format.writer.DatasetWriter`. Per-episode outcomes go to ``meta/depi_control.json`` of the
recorded dataset (LeRobot's meta has no success column) and to the run's results JSON.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from depi.constants import TASK
from depi.eval.report import wilson_interval

CONTROL_SIDECAR = "meta/depi_control.json"


@dataclass
class EpisodeOutcome:
    """One episode: its dataset index (None when not recorded), the sim seed, success (None: unknown), robot
    steps, wall seconds, and the steps whose action was clamped by the safety layer."""

    episode_index: int | None
    seed: int | None
    success: bool | None
    steps: int
    seconds: float
    clamped_steps: int = 0


def run_episode(
    robot: Any,
    act: Callable[[Mapping[str, Any]], np.ndarray],
    task: str,
    max_steps: int,
    *,
    writer: Any = None,
    on_step: Callable[[int, dict, np.ndarray], None] | None = None,
    realtime: bool = True,
    progress: Any = None,
) -> int:
    """Drive ``robot`` for at most ``max_steps`` steps at ``robot.fps``; returns the steps taken.

    Each step: ``obs = robot.get_observation()``, ``action = act({**obs, "task": task})``, ``sent =
    robot.send_action(action)``, then the frame ``{**obs, "action": sent}`` is added to ``writer``. A simulated
    robot ends the episode early when its env reports done; a real one is paced to ``1 / fps`` s per step.
    """
    period = 1.0 / float(robot.fps)
    steps = 0
    for step in range(max_steps):
        start = time.perf_counter()
        obs = robot.get_observation()
        sent = robot.send_action(act({**obs, TASK: task}))
        if writer is not None:
            writer.add_frame({**obs, "action": sent}, task=task)
        if on_step is not None:
            on_step(step, obs, sent)
        steps += 1
        if progress is not None:
            progress.update(1)
        if getattr(robot, "done", False):
            break
        if realtime:
            time.sleep(max(0.0, period - (time.perf_counter() - start)))
    return steps


def ask_success(episode: int, stream_in: Any = None, stream_out: Any = None) -> bool | None:
    """Ask the operator whether episode ``episode`` succeeded (``y`` / ``n``; empty or no terminal: unknown)."""
    stream_in, stream_out = stream_in or sys.stdin, stream_out or sys.stderr
    if not getattr(stream_in, "isatty", lambda: False)():
        return None
    print(f"episode {episode}: success? [y/n, Enter: unknown] ", end="", file=stream_out, flush=True)
    answer = stream_in.readline().strip().lower()
    return True if answer in ("y", "yes") else False if answer in ("n", "no") else None


def latency_ms(seconds: list[float]) -> dict[str, float] | None:
    """p50 / p99 / mean of per-chunk inference times (ms), the first (warm-up) call excluded."""
    if not seconds:
        return None
    timed = np.asarray(seconds[1:] if len(seconds) > 1 else seconds) * 1e3
    return {"p50": float(np.percentile(timed, 50)), "p99": float(np.percentile(timed, 99)),
            "mean": float(timed.mean()), "warmup": float(seconds[0] * 1e3), "calls": len(seconds)}  # fmt: skip


def summarize(outcomes: list[EpisodeOutcome], inference_seconds: list[float], **settings: Any) -> dict:
    """The results dict: settings, per-episode outcomes, success rate with its Wilson 95% interval over the
    episodes whose success is known, latencies (warm-up excluded), episode lengths."""
    known = [o.success for o in outcomes if o.success is not None]
    successes = sum(known)
    rate = successes / len(known) if known else None
    ci = list(wilson_interval(successes, len(known))) if known else None
    return {
        **settings,
        "num_episodes": len(outcomes),
        "successes": successes,
        "success_known": len(known),
        "success_rate": rate,
        "ci95": ci,
        "episode_steps": [o.steps for o in outcomes],
        "clamped_steps": sum(o.clamped_steps for o in outcomes),
        "inference_ms": latency_ms(inference_seconds),
        "episodes": [asdict(o) for o in outcomes],
    }


def read_sidecar(root: Path) -> list[dict]:
    """The per-episode outcomes already recorded in ``root`` (empty for a dataset without them)."""
    import json

    path = Path(root) / CONTROL_SIDECAR
    if not path.is_file():
        return []
    try:
        return list(json.loads(path.read_text())["episodes"])
    except (ValueError, KeyError) as error:
        raise ValueError(f"{path}: unreadable ({error}); move it away to record without the earlier flags") from error


def write_sidecar(root: Path, episodes: list[dict], settings: Mapping[str, Any]) -> None:
    """Atomically write ``meta/depi_control.json``: ``{"settings", "episodes": [EpisodeOutcome as dict]}``."""
    from depi.fileio import write_json

    write_json(Path(root) / CONTROL_SIDECAR, {"settings": dict(settings), "episodes": episodes})


def episode_actions(root: Path, episode_index: int) -> tuple[np.ndarray, float, str]:
    """The recorded ``action`` column of one episode: (float32 (L, A), the dataset's fps, its task).

    Raises:
        FileNotFoundError / ValueError: no dataset at ``root``, no such episode, or no ``action`` column.
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from depi.datasets.format.meta import load_meta

    meta = load_meta(root)
    if not 0 <= episode_index < meta.total_episodes:
        raise ValueError(f"--control.episode={episode_index}: {root} has episodes 0..{meta.total_episodes - 1}")
    info = meta.episode(episode_index)
    table = pq.read_table(Path(root) / info.data_file, columns=["episode_index", "action"])
    rows = table.filter(pc.equal(table["episode_index"], episode_index))
    if rows.num_rows == 0:
        raise ValueError(f"{Path(root) / info.data_file}: no rows of episode {episode_index}")
    actions = np.asarray(rows["action"].to_pylist(), dtype=np.float32)
    return actions, float(meta.fps), (info.tasks[0] if info.tasks else "")
