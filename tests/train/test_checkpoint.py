"""What a depi-train checkpoint carries beyond the weights: its tokenizer file, and the held-out set it resumes with."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from depi.eval.cli import main as eval_main
from depi.eval.policy_runner import load_checkpoint
from depi.train.__main__ import main as train_main
from depi.transforms.tokenize import PaligemmaTokenizer, TokenizePrompt
from tests.datasets.factories import CameraSpec, DatasetSpec, make_lerobot_dataset
from tests.helpers.tokenizer import make_tiny_sentencepiece

TOKENS = 24
CAMERA = (CameraSpec("observation.images.front", storage="image", height=32, width=32),)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    make_lerobot_dataset(root / "alice/arm", DatasetSpec(episode_lengths=(9, 6, 7, 8, 5), fps=10, cameras=CAMERA))
    return root


def _train(data: Path, run: Path, tokenizer: Path, steps: int, *extra: str) -> None:
    train_main([
        "--config_path=demo", "--demo_data=false", f"--dataset.root={data}",
        f"--transforms.tokenizer_path={tokenizer}", "--policy.action_horizon=4", f"--policy.max_token_len={TOKENS}",
        "--batch_size=2", "--num_workers=0", f"--steps={steps}", "--save_freq=1", "--log_freq=1",
        f"--output_dir={run}", *extra,
    ])  # fmt: skip


def _split(data: Path, splits: Path, test_fraction: float) -> list[int]:
    """Write held-out splits with ``depi-eval split``; the test episodes of the dataset."""
    eval_main(["split", f"--root={data}", f"--split.test_fraction={test_fraction}", "--split.seed=3",
               f"--split.splits_dir={splits}"])
    (split_file,) = splits.glob("*.json")
    return json.loads(split_file.read_text())["test_episodes"]


def test_a_moved_checkpoint_tokenizes_with_its_own_copy_of_the_tokenizer(tmp_path: Path, data_root: Path) -> None:
    tokenizer = make_tiny_sentencepiece(tmp_path / "tok" / "tokenizer.model")
    prompt = "pick up the red cube"
    expected = PaligemmaTokenizer(str(tokenizer), TOKENS).tokenize(prompt)
    _train(data_root, tmp_path / "run", tokenizer, 1)
    checkpoint = tmp_path / "run" / "checkpoints" / "000000001"
    saved = json.loads((checkpoint / "transforms.json").read_text())
    (config,) = [c for c in saved["inputs"] if c["type"] == "tokenize_prompt"]
    assert config["tokenizer_path"] == "tokenizer/tokenizer.model"
    assert (checkpoint / "tokenizer" / "tokenizer.model").read_bytes() == tokenizer.read_bytes()

    moved = Path(shutil.move(checkpoint, tmp_path / "elsewhere" / "checkpoint"))  # another machine, in effect
    shutil.rmtree(tmp_path / "tok")
    shutil.rmtree(tmp_path / "run")
    loaded = load_checkpoint(moved)  # what depi-eval loads
    (tokenize,) = [t for t in loaded.transforms.inputs.transforms if isinstance(t, TokenizePrompt)]
    assert Path(tokenize.tokenizer_path) == moved / "tokenizer" / "tokenizer.model"
    out = tokenize({"prompt": prompt})
    np.testing.assert_array_equal(out["tokenized_prompt"].numpy(), expected[0])
    np.testing.assert_array_equal(out["tokenized_prompt_mask"].numpy(), expected[1])


def test_resuming_with_another_held_out_set_is_refused(tmp_path: Path, data_root: Path) -> None:
    tokenizer = make_tiny_sentencepiece(tmp_path / "tokenizer.model")
    first = _split(data_root, tmp_path / "splits_a", 0.4)
    shutil.copytree(tmp_path / "splits_a", tmp_path / "moved_a")  # the same split in another folder
    run = tmp_path / "run"
    _train(data_root, run, tokenizer, 1, f"--dataset.holdout_dir={tmp_path / 'splits_a'}")
    manifest = run / "checkpoints" / "000000001" / "mixture_manifest.json"

    second = _split(data_root, tmp_path / "splits_b", 0.2)
    assert second != first
    with pytest.raises(ValueError) as refused:
        train_main(["--resume=true", f"--output_dir={run}", "--steps=2",
                    f"--dataset.holdout_dir={tmp_path / 'splits_b'}"])
    message = str(refused.value)
    for part in (str(manifest), f"holdout_dir='{tmp_path / 'splits_a'}'", f"holdout_dir='{tmp_path / 'splits_b'}'",
                 f"alice/arm: {first} -> {second}", f"--dataset.holdout_dir={tmp_path / 'splits_a'}"):
        assert part in message, part

    shutil.rmtree(tmp_path / "splits_a")
    _split(data_root, tmp_path / "splits_a", 0.2)  # the same folder, remade with other test episodes
    with pytest.raises(ValueError, match=rf"alice/arm: {first} -> {second}".replace("[", r"\[").replace("]", r"\]")):
        train_main(["--resume=true", f"--output_dir={run}", "--steps=2"])
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["000000001"]  # nothing trained

    train_main(["--resume=true", f"--output_dir={run}", "--steps=2", f"--dataset.holdout_dir={tmp_path / 'moved_a'}"])
    assert (run / "checkpoints" / "000000002" / "checkpoint_complete.json").is_file()


def test_a_run_resumes_with_the_checkpoint_tokenizer_when_the_original_is_gone(
    tmp_path: Path, data_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tokenizer = make_tiny_sentencepiece(tmp_path / "tok" / "tokenizer.model")
    run = tmp_path / "run"
    _train(data_root, run, tokenizer, 1)
    shutil.rmtree(tmp_path / "tok")  # the run folder moved to a machine without the original file
    with caplog.at_level("WARNING", logger="depi.train.config"):
        train_main(["--resume=true", f"--output_dir={run}", "--steps=2"])
    assert "resuming with the checkpoint's copy" in caplog.text
    assert (run / "checkpoints" / "000000002" / "tokenizer" / "tokenizer.model").is_file()
