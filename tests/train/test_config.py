"""Command-line parsing of depi-train: presets, --policy.path, --resume."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from depi.policies.pi0 import PI0Policy, make_config
from depi.train.config import PRESETS_DIR, parse_args
from depi.train.loop import train
from tests.train.train_toys import ToyFlowPolicy, make_toy_data, toy_config


@pytest.mark.parametrize(
    ("preset", "policy_preset", "overrides"),
    [("demo", "tiny", {"vlm": replace(make_config("tiny").vlm, vocab_size=1024)}),  # sized to its tokenizer
     ("pi05_lora", "pi05_lora", {"action_horizon": 10}),
     ("pi0_bridge_finetune", "pi0", {"action_horizon": 16}), ("pi0_so100_mixture", "pi0", {})],
)
def test_presets_build_the_named_policy(preset: str, policy_preset: str, overrides: dict) -> None:
    cfg = parse_args([f"--config_path={preset}"])
    assert cfg.policy == make_config(policy_preset, **overrides)
    assert cfg.dataset.action_horizon == cfg.policy.action_horizon


def test_every_preset_file_parses() -> None:
    for path in PRESETS_DIR.glob("*.yaml"):
        parse_args([f"--config_path={path}"])


def test_pi05_lora_recipe() -> None:
    cfg = parse_args(["--config_path=pi05_lora"])
    assert (cfg.batch_size, cfg.save_freq, cfg.keep_period, cfg.steps) == (32, 1000, 5000, 10000)
    assert (cfg.optim.warmup_steps, cfg.optim.peak_lr, cfg.optim.decay_lr, cfg.optim.decay_steps) == (
        500, 3e-4, 1e-5, 10000)
    assert (cfg.optim.weight_decay, cfg.optim.grad_clip_norm) == (0.01, 1.0)


def test_command_line_overrides_preset() -> None:
    cfg = parse_args(["--config_path=pi05_lora", "--batch_size=4", "--num_datasets=3", "--policy.action_horizon=5"])
    assert (cfg.batch_size, cfg.dataset.num_datasets, cfg.policy.action_horizon) == (4, 3, 5)
    assert cfg.policy.vlm.lora_rank == 16 and cfg.dataset.action_horizon == 5


def test_unknown_preset_lists_the_presets() -> None:
    with pytest.raises(FileNotFoundError, match="pi05_lora"):
        parse_args(["--config_path=no_such_recipe"])


def test_policy_path_loads_the_saved_policy_config(tmp_path: Path) -> None:
    PI0Policy(make_config("tiny_pi05", action_horizon=7)).save_pretrained(tmp_path / "model")
    cfg = parse_args([f"--policy.path={tmp_path / 'model'}", "--policy.num_steps=3"])
    assert cfg.policy == make_config("tiny_pi05", action_horizon=7, num_steps=3)
    assert cfg.pretrained_path == str(tmp_path / "model") and cfg.dataset.action_horizon == 7


def test_policy_path_without_config_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="config.json"):
        parse_args([f"--policy.path={tmp_path}"])


def test_resume_reloads_the_saved_config_and_applies_new_flags(tmp_path: Path) -> None:
    run = tmp_path / "run"
    torch.manual_seed(0)
    train(toy_config(run, steps=2, save_freq=2, batch_size=3), policy=ToyFlowPolicy(), data=make_toy_data())
    cfg = parse_args(["--resume=true", f"--output_dir={run}", "--steps=5"])
    assert (cfg.steps, cfg.batch_size, cfg.seed, cfg.resume) == (5, 3, 7, True)


def test_resume_without_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        parse_args(["--resume=true", f"--output_dir={tmp_path}"])


def test_mixed_precision_no_survives_yaml_boolean_parsing() -> None:
    # YAML (and so draccus) reads a bare `no` as the boolean False.
    assert parse_args(["--config_path=demo", "--mixed_precision=no"]).mixed_precision == "no"


def test_no_arguments_is_the_demo_preset_with_demo_data() -> None:
    cfg = parse_args([])
    assert cfg.job_name == "demo" and cfg.demo_data and cfg.transforms.tokenizer_path is None


def test_flags_without_a_dataset_apply_on_top_of_the_demo_preset() -> None:
    cfg = parse_args(["--steps=12", "--batch_size=2"])
    assert (cfg.job_name, cfg.demo_data, cfg.steps, cfg.batch_size) == ("demo", True, 12, 2)
    assert cfg.policy.vision.width == 32  # the demo preset's tiny policy


def test_a_dataset_flag_turns_the_demo_preset_off(tmp_path: Path) -> None:
    cfg = parse_args([f"--dataset.root={tmp_path}", "--steps=12"])
    assert not cfg.demo_data and cfg.job_name != "demo" and cfg.dataset.root == str(tmp_path)


def test_delta_action_mask_flag() -> None:
    cfg = parse_args(["--config_path=demo", "--transforms.delta_action_mask=[true,true,false]"])
    assert cfg.transforms.delta_action_mask == [True, True, False]
