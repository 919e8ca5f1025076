"""Training with ``--dataset.holdout_dir`` records its held-out episodes; ``depi-eval offline`` tests on them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from depi.eval.cli import main as eval_main
from depi.eval.offline import OfflineDatasetConfig, build_mixture, checkpoint_held_out, dataset_splits
from depi.eval.policy_runner import load_checkpoint
from depi.eval.splits import SplitConfig, split_path
from depi.train.__main__ import main as train_main
from tests.datasets.factories import CameraSpec, DatasetSpec, make_lerobot_dataset
from tests.helpers.tokenizer import make_tiny_sentencepiece

CAMERA = (CameraSpec("observation.images.front", storage="image", height=32, width=32),)


@pytest.fixture(scope="module")
def held_out_run(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(data folder, split folder, checkpoint) of a 2-step run that held out the split's test episodes."""
    base = tmp_path_factory.mktemp("holdout_run")
    data = base / "data"
    make_lerobot_dataset(
        data / "alice/arm", DatasetSpec(episode_lengths=(9, 6, 7, 8, 5), fps=10, cameras=CAMERA)
    )
    splits = base / "splits"
    eval_main(
        [
            "split",
            f"--root={data}",
            "--split.test_fraction=0.4",
            "--split.seed=3",
            f"--split.splits_dir={splits}",
        ]
    )
    run = base / "run"
    train_main([
        "--config_path=demo", "--demo_data=false", f"--dataset.root={data}", f"--dataset.holdout_dir={splits}",
        f"--transforms.tokenizer_path={make_tiny_sentencepiece(base / 'tok' / 'tokenizer.model')}",
        "--policy.action_horizon=4", "--policy.max_token_len=24", "--batch_size=2", "--num_workers=0",
        "--steps=1", "--save_freq=1", "--log_freq=1", f"--output_dir={run}",
    ])  # fmt: skip
    return data, splits, run / "checkpoints" / "000000001"


def test_manifest_lists_the_held_out_episodes(held_out_run) -> None:
    _, splits, checkpoint = held_out_run
    split = json.loads(split_path(splits, "alice/arm").read_text())
    assert split["test_episodes"]  # the split holds something out
    manifest = json.loads((checkpoint / "mixture_manifest.json").read_text())
    (entry,) = manifest["datasets"]
    assert entry["held_out_episodes"] == split["test_episodes"]
    lengths = (9, 6, 7, 8, 5)
    assert entry["frames"] == sum(lengths) - sum(lengths[e] for e in split["test_episodes"])
    assert manifest["holdout_dir"] == str(splits)


def test_offline_eval_tests_on_the_checkpoint_held_out_episodes(held_out_run, tmp_path: Path) -> None:
    data, splits, checkpoint_dir = held_out_run
    checkpoint = load_checkpoint(checkpoint_dir)
    expected = json.loads(split_path(splits, "alice/arm").read_text())["test_episodes"]
    assert checkpoint_held_out(checkpoint) == {"alice/arm": expected}
    mixture = build_mixture(checkpoint, OfflineDatasetConfig(root=str(data)))
    # other split settings would pick other episodes; the manifest's held-out episodes win by default ...
    (split,) = dataset_splits(
        mixture, SplitConfig(test_fraction=1.0), tmp_path / "s", checkpoint_held_out(checkpoint), "manifest"
    )
    assert split.test_episodes == expected and split.mode == "checkpoint"
    assert sorted(split.train_episodes + split.test_episodes) == list(range(5))
    assert not (tmp_path / "s").exists()  # no split file is made for it
    # ... and a manifest naming an episode the evaluated dataset lacks is refused with the fix
    with pytest.raises(ValueError, match=r"manifest: held-out episodes \[7\].*--split.from_checkpoint=false"):
        dataset_splits(mixture, SplitConfig(), tmp_path / "s", {"alice/arm": [1, 7]}, "manifest")

    out = tmp_path / "eval"
    eval_main(["offline", f"--policy.path={checkpoint_dir}", f"--dataset.root={data}", "--stride=4",
               "--max_samples=2", "--policy.num_steps=2", f"--output_dir={out}"])  # fmt: skip
    results = json.loads((out / "results.json").read_text())
    (row,) = results["datasets"]
    assert row["split"]["test_episodes"] == expected
    assert row["split"]["source"].endswith("mixture_manifest.json")
    assert row["test"]["samples"] > 0
    eval_main(["offline", f"--policy.path={checkpoint_dir}", f"--dataset.root={data}", "--stride=4",
               "--max_samples=2", "--policy.num_steps=2", "--split.from_checkpoint=false",
               "--split.test_fraction=1.0", f"--output_dir={tmp_path / 'eval_fresh'}"])  # fmt: skip
    fresh = json.loads((tmp_path / "eval_fresh" / "results.json").read_text())["datasets"][0]["split"]
    assert fresh["test_episodes"] == list(range(5))  # the old behaviour: split by the --split flags
