"""depi-train end to end: real on-disk LeRobot datasets -> mixture -> transforms -> tiny pi0 -> checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from depi.policies.pi0 import PI0Policy
from depi.train.__main__ import main
from depi.transforms.base import TransformGroup
from depi.transforms.norm_stats import load_group_norm_stats
from tests.datasets.factories import CameraSpec, DatasetSpec, make_lerobot_dataset
from tests.helpers.tokenizer import make_tiny_sentencepiece


@pytest.fixture(scope="module")
def mixture_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lerobot")
    make_lerobot_dataset(
        root / "alice/so100_front",
        DatasetSpec(version="v3.0", episode_lengths=(12, 9), fps=30,
                    cameras=(CameraSpec("observation.images.front", height=48, width=64),)),
    )
    make_lerobot_dataset(
        root / "bob/arm7_wrist",
        DatasetSpec(version="v2.1", episode_lengths=(10,), fps=15, state_dim=7, action_dim=7, robot_type="arm7",
                    cameras=(CameraSpec("observation.images.wrist", storage="image", height=48, width=64),)),
    )
    return root


def test_depi_train_on_two_datasets_then_resume(tmp_path: Path, mixture_root: Path) -> None:
    run = tmp_path / "run"
    flags = [
        "--config_path=demo", "--demo_data=false", f"--dataset.root={mixture_root}", "--dataset.weighting=uniform",
        f"--transforms.tokenizer_path={make_tiny_sentencepiece(tmp_path / 'tok' / 'tokenizer.model')}",
        "--policy.action_horizon=4", "--policy.max_token_len=24", "--batch_size=2", "--num_workers=0",
        "--save_freq=2", "--log_freq=1", "--per_dataset_loss_freq=1", f"--output_dir={run}", "--seed=1",
    ]
    main([*flags, "--steps=2"])
    main(["--resume=true", f"--output_dir={run}", "--steps=3"])

    checkpoint = run / "checkpoints" / "000000003"
    assert (checkpoint / "checkpoint_complete.json").is_file()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in records)
    manifest = json.loads((checkpoint / "mixture_manifest.json").read_text())
    assert sorted(d["repo_id"] for d in manifest["datasets"]) == ["alice/so100_front", "bob/arm7_wrist"]
    assert sum(d["weight"] for d in manifest["datasets"]) == pytest.approx(1.0)
    groups = sorted({d["embodiment"] for d in manifest["datasets"]})
    assert len(groups) == 2
    for group in groups:  # per-embodiment stats with the quantiles the quantile normalization needs
        assert load_group_norm_stats(checkpoint / "norm_stats", group)["actions"].q99 is not None
    transforms = TransformGroup.load(checkpoint)
    assert transforms.to_config()["inputs"]
    policy = PI0Policy.from_pretrained(checkpoint / "model")
    assert policy.config.action_horizon == 4
    assert (run / "loss_lr.png").is_file()


def test_images_are_resized_to_the_vision_towers_size(tmp_path: Path, mixture_root: Path) -> None:
    """A policy with a 56-px vision tower trains on 48 x 64 recordings, and the checkpoint's runner feeds it
    56-px images (4 x 4 patches per camera) at inference."""
    from depi.eval.policy_runner import PolicyRunner, load_checkpoint

    run = tmp_path / "run56"
    main([
        "--config_path=demo", "--demo_data=false", f"--dataset.root={mixture_root}",
        f"--transforms.tokenizer_path={make_tiny_sentencepiece(tmp_path / 'tok' / 'tokenizer.model')}",
        "--policy.vision.image_size=56", "--policy.action_horizon=4", "--policy.max_token_len=24",
        "--batch_size=2", "--num_workers=0", "--steps=1", "--save_freq=1", f"--output_dir={run}",
    ])
    checkpoint = load_checkpoint(run)
    assert checkpoint.policy.config.vision.image_size == 56
    resize = next(t for t in checkpoint.transforms.inputs.transforms if type(t).__name__ == "ResizeImages")
    assert (resize.height, resize.width) == (56, 56)
    runner = PolicyRunner(checkpoint, checkpoint.bind_dataset(mixture_root / "alice/so100_front"), seed=0)
    rgb = torch.randint(0, 256, (48, 64, 3), dtype=torch.uint8).numpy()
    chunk = runner.infer({"observation.state": torch.zeros(6).numpy(), "observation.images.front": rgb,
                          "task": "pick the cube"})
    assert chunk["actions"].shape == (4, 6) and torch.isfinite(torch.from_numpy(chunk["actions"])).all()
