"""The policy registry: type names, CLI parsing with draccus, building the model from a config."""

from __future__ import annotations

from dataclasses import dataclass

import draccus
import pytest

from depi.policies import PolicyConfig, available_policies, config_class, make_policy
from depi.policies.pi0 import PI0Config, PI0Policy, PI05Config, make_config


def test_registered_types() -> None:
    assert {"pi0", "pi05"} <= set(available_policies())
    assert config_class("pi0") is PI0Config and config_class("pi05") is PI05Config
    with pytest.raises(KeyError, match="registered types"):
        config_class("nope")


@dataclass
class _TrainArgs:
    policy: PolicyConfig | None = None


def test_cli_selects_type_and_overrides_fields() -> None:
    args = ["--policy.type=pi05", "--policy.action_horizon=8", "--policy.expert.width=512"]
    config = draccus.parse(_TrainArgs, args=args).policy
    assert isinstance(config, PI05Config) and config.type == "pi05" and config.is_pi05
    assert config.action_horizon == 8 and config.expert.width == 512 and config.max_token_len == 200


def test_make_policy_builds_from_the_registry() -> None:
    policy = make_policy(make_config("tiny"))
    assert isinstance(policy, PI0Policy) and not policy.config.is_pi05


def test_presets_and_validation() -> None:
    assert make_config("tiny", num_steps=3).num_steps == 3
    with pytest.raises(KeyError, match="available presets"):
        make_config("huge")
    with pytest.raises(TypeError, match="unknown field"):
        make_config("tiny", horizon=3)
    with pytest.raises(ValueError, match="share"):
        base = make_config("tiny")
        make_config("tiny", expert=type(base.expert)(width=32, depth=2, mlp_dim=64, num_heads=4, head_dim=16))
