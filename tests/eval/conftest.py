"""A tiny trained checkpoint on a simulator-generated dataset, shared by the evaluation tests.

Meta-World ``reach-v3`` at 64-px images: 2 scripted-expert episodes are written as a LeRobot v3.0 dataset, then
``depi-train`` runs 2 steps of the demo preset's tiny pi0 (action_horizon 4) on it and saves a checkpoint.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")  # MuJoCo must see it before the first ``import mujoco``

ENV = "metaworld/reach-v3"
IMAGE_SIZE = 64


@dataclass(frozen=True)
class TinyRun:
    """The generated dataset (``data_dir/<name>``) and the checkpoint trained on it."""

    data_dir: Path
    dataset_root: Path
    checkpoint: Path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    pytest.importorskip("metaworld", reason="Meta-World is not installed (scripts/sim_requirements.txt)")
    from depi.sim.generate import generate_dataset
    from depi.train.__main__ import main as train_main
    from tests.helpers.tokenizer import make_tiny_sentencepiece

    base = tmp_path_factory.mktemp("eval_run")
    data_dir = base / "data"
    root, _ = generate_dataset(ENV, data_dir, episodes=2, seed=0, image_size=IMAGE_SIZE)
    run = base / "run"
    train_main([
        "--config_path=demo", "--demo_data=false", f"--dataset.root={data_dir}",
        f"--transforms.tokenizer_path={make_tiny_sentencepiece(base / 'tok' / 'tokenizer.model')}",
        "--policy.action_horizon=4", "--policy.max_token_len=24", "--batch_size=2", "--num_workers=0",
        "--steps=2", "--save_freq=2", "--log_freq=1", "--per_dataset_loss_freq=2", f"--output_dir={run}",
    ])  # fmt: skip
    return TinyRun(data_dir=data_dir, dataset_root=root, checkpoint=run / "checkpoints" / "000000002")
