"""Building the policy and the transform settings of a run from its config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from depi.policies.pi0 import PI0Policy, make_config
from depi.train.config import parse_args
from depi.train.factory import build_policy, check_vocabulary, transforms_config
from tests.helpers.tokenizer import make_tiny_sentencepiece


def test_policy_path_fine_tunes_from_the_saved_weights(tmp_path: Path) -> None:
    torch.manual_seed(1)
    saved = PI0Policy(make_config("tiny"))
    saved.save_pretrained(tmp_path / "base")
    torch.manual_seed(2)
    policy = build_policy(parse_args([f"--policy.path={tmp_path / 'base'}"]))
    assert isinstance(policy, PI0Policy)
    reference = saved.state_dict()
    assert all(torch.equal(v, reference[k]) for k, v in policy.state_dict().items())


def test_transforms_follow_the_policy_and_the_recipe(tmp_path: Path) -> None:
    tokenizer = f"--transforms.tokenizer_path={tmp_path / 'tok.model'}"
    cfg = parse_args(["--config_path=pi0_bridge_finetune", tokenizer])
    settings = transforms_config(cfg)
    assert settings.model_type == "pi0" and settings.resolved_norm_mode == "quantile"
    assert settings.delta_action_mask is None  # Bridge stores end-effector deltas already
    assert settings.resolved_max_token_len == cfg.policy.max_token_len
    lora = transforms_config(parse_args(["--config_path=pi05_lora", tokenizer]))
    assert lora.model_type == "pi05" and lora.resolved_max_token_len == 200


def test_missing_tokenizer_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="tokenizer_path"):
        transforms_config(parse_args(["--config_path=pi05_lora"]))


def test_tokenizer_must_fit_the_token_embedding(tmp_path: Path) -> None:
    tokenizer = f"--transforms.tokenizer_path={make_tiny_sentencepiece(tmp_path / 'tok.model', vocab_size=300)}"
    check_vocabulary(parse_args(["--config_path=demo", tokenizer]))  # 300 pieces, 1024 rows
    assert parse_args(["--config_path=demo", tokenizer]).policy.vlm.vocab_size == 1024
    with pytest.raises(ValueError, match=r"300 pieces.*--policy.vlm.vocab_size=256.*at least 300"):
        check_vocabulary(parse_args(["--config_path=demo", tokenizer, "--policy.vlm.vocab_size=256"]))
