"""The embedded default's data preparation: demo datasets in dataset.root and a tokenizer trained on their tasks."""

from __future__ import annotations

from pathlib import Path

import pytest
import sentencepiece

import depi.sim.generate
from depi.train.config import parse_args
from depi.train.demo import DEMO_TOKENIZER, prepare_demo_data
from tests.datasets.factories import make_lerobot_dataset


class Calls(list):
    """The roots asked for, in order; ``settings`` holds each call's envs, episodes and image size."""

    def __init__(self) -> None:
        super().__init__()
        self.settings: list[dict] = []


@pytest.fixture
def fake_generation(monkeypatch: pytest.MonkeyPatch) -> Calls:
    """Stand in for the simulators: one factory-written dataset per call, recording the roots asked for."""
    calls = Calls()

    def ensure(cache_dir, *, envs=None, episodes=None, image_size=224, privileged_state=False):
        calls.append(Path(cache_dir))
        calls.settings.append(
            {"envs": envs, "episodes": episodes, "image_size": image_size, "privileged_state": privileged_state}
        )
        return [make_lerobot_dataset(Path(cache_dir) / "toy", version="v3.0", episode_lengths=(5,))]

    monkeypatch.setattr(depi.sim.generate, "ensure_demo_mixture", ensure)
    return calls


def test_demo_data_generates_and_trains_a_tokenizer_on_the_tasks(tmp_path: Path, fake_generation) -> None:
    cfg = parse_args(["--config_path=demo", f"--dataset.root={tmp_path / 'demo'}"])
    prepared = prepare_demo_data(cfg)
    assert fake_generation == [tmp_path / "demo"]
    tokenizer = Path(prepared.transforms.tokenizer_path)
    assert tokenizer == tmp_path / "demo" / DEMO_TOKENIZER and tokenizer.is_file()
    sp = sentencepiece.SentencePieceProcessor(model_file=str(tokenizer))
    assert sp.bos_id() == 2 and sp.eos_id() == 1 and sp.pad_id() == 0  # PaliGemma's special ids
    pieces = sp.encode("pick up the cube", out_type=str)
    assert len(pieces) < len("pick up the cube") / 2  # the task was in the corpus: whole-word pieces


def test_demo_small_preset_generates_its_envs(tmp_path: Path, fake_generation) -> None:
    cfg = parse_args(["--config_path=demo_small", f"--dataset.root={tmp_path / 'small'}"])
    prepare_demo_data(cfg)
    assert fake_generation == [tmp_path / "small"]
    assert fake_generation.settings == [{
        "envs": ["so101_pick_place", "metaworld/reach-v3", "metaworld/pick-place-v3"],
        "episodes": 30,
        "image_size": 96,
        "privileged_state": False,
    }]  # fmt: skip


def test_demo_data_off_or_tokenizer_given_is_left_alone(tmp_path: Path, fake_generation) -> None:
    off = parse_args(["--config_path=demo", "--demo_data=false", f"--dataset.root={tmp_path}"])
    assert prepare_demo_data(off) is off and fake_generation == []
    given = parse_args(["--config_path=demo", f"--dataset.root={tmp_path}", "--transforms.tokenizer_path=tok.model"])
    assert prepare_demo_data(given).transforms.tokenizer_path == "tok.model"
    assert not (tmp_path / DEMO_TOKENIZER).exists()


def test_demo_data_needs_a_root() -> None:
    cfg = parse_args(["--config_path=demo", "--dataset.root=null"])
    with pytest.raises(ValueError, match="--dataset.root"):
        prepare_demo_data(cfg)


def test_demo_state_preset_generates_privileged_data_for_its_vision_size(tmp_path: Path, fake_generation) -> None:
    cfg = parse_args(["--config_path=demo_state", f"--dataset.root={tmp_path / 'state'}"])
    prepare_demo_data(cfg)
    assert fake_generation.settings == [{
        "envs": ["so101_pick_place", "metaworld/reach-v3", "metaworld/pick-place-v3"],
        "episodes": 50,
        "image_size": 64,
        "privileged_state": True,
    }]  # fmt: skip
    assert cfg.policy.vision.image_size == 56 and cfg.transforms.clip_quantiles
    assert cfg.optim.decay_steps == cfg.steps
