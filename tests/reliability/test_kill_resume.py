"""SIGKILL a training run at several points — one of them in the middle of a checkpoint save — and resume each
time: the per-step losses equal an uninterrupted run's exactly (CPU, deterministic), and after every kill
the latest checkpoint loads."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tests.reliability.killing import latest_checkpoint_loads, losses, run_and_kill

REPO = Path(__file__).resolve().parents[2]
STEPS, SAVE_FREQ = 12, 3


def worker(run_dir: Path, resume: bool) -> list[str]:
    return [sys.executable, "-m", "tests.reliability.kill_worker", str(run_dir), str(STEPS), str(SAVE_FREQ),
            "1" if resume else "0"]  # fmt: skip


def test_killed_and_resumed_run_matches_an_uninterrupted_one(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    full = tmp_path / "full"
    assert run_and_kill(worker(full, False), full, env=env) == "finished"

    run = tmp_path / "killed"
    kills = [{"at_step": 4}, {"in_save": True}, {"at_step": 8}, {"in_save": True}]
    seen = []
    for i, kill in enumerate(kills):
        outcome = run_and_kill(worker(run, resume=i > 0), run, env=env, **kill)
        seen.append((outcome, latest_checkpoint_loads(run)))
    assert run_and_kill(worker(run, resume=True), run, env=env) == "finished"
    assert [o for o, _ in seen] == ["killed"] * 4
    assert all(step is not None for _, step in seen[1:])  # a kill mid-save leaves the previous checkpoint
    assert losses(run) == losses(full) and len(losses(full)) == STEPS
    assert latest_checkpoint_loads(run) == STEPS
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".tmp-")]
