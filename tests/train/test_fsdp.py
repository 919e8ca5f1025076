"""What of the FSDP path runs without GPUs: the accelerate config, its wrap classes, the gathered-weights save.

FSDP itself (sharding, all-gather, the collective ``accelerator.get_state_dict``) needs several GPUs and is not
exercised here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.utils import DistributedType
from accelerate.utils.dataclasses import get_module_class_from_name

from depi.policies.pi0 import PI0Policy, make_config
from depi.train.loop import _GatheredPolicy, _LossModule, _strip_wrapper_prefixes
from tests.train.train_toys import CanonicalData

REPO = Path(__file__).resolve().parents[2]
FSDP_CONFIG = REPO / "configs" / "accelerate" / "fsdp.yaml"


def test_fsdp_config_parses_with_full_shard_and_orig_params() -> None:
    config = load_config_from_file(str(FSDP_CONFIG))
    assert config.distributed_type == DistributedType.FSDP and config.mixed_precision == "bf16"
    fsdp = config.fsdp_config
    assert fsdp["fsdp_sharding_strategy"] == "FULL_SHARD"
    assert fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    assert fsdp["fsdp_use_orig_params"] is True
    assert fsdp["fsdp_state_dict_type"] == "FULL_STATE_DICT"


def test_every_wrap_unit_exists_and_is_called_by_its_own_forward() -> None:
    # FSDP gathers a unit's weights in the unit's forward: each wrap class must exist in the policy, and every
    # unit holding a trainable parameter must be called through forward during the loss.
    names = (
        load_config_from_file(str(FSDP_CONFIG)).fsdp_config["fsdp_transformer_layer_cls_to_wrap"].split(",")
    )
    torch.manual_seed(0)
    policy = PI0Policy(make_config("tiny", action_horizon=4, max_token_len=12))
    classes = tuple(get_module_class_from_name(policy, n) for n in names)
    assert None not in classes
    units = {name: m for name, m in policy.named_modules() if isinstance(m, classes)}
    called: set[str] = set()
    for name, module in units.items():
        module.register_forward_pre_hook(lambda mod, args, name=name: called.add(name))
    samples = CanonicalData().dataset
    batch = torch.utils.data.default_collate([samples[i] for i in range(2)])
    batch["actions"], batch["action_is_pad"] = batch["actions"][:, :4], batch["action_is_pad"][:, :4]
    batch["tokenized_prompt"] = batch["tokenized_prompt"][:, :12]
    batch["tokenized_prompt_mask"] = batch["tokenized_prompt_mask"][:, :12]
    policy.compute_loss(batch)
    trainable_units = {n for n, m in units.items() if any(p.requires_grad for p in m.parameters())}
    assert trainable_units and trainable_units <= called


def test_gathered_state_dict_is_saved_and_reloads(tmp_path: Path) -> None:
    torch.manual_seed(0)
    policy = PI0Policy(make_config("tiny"))
    gathered = {k: v.clone() + 1.0 for k, v in _LossModule(policy).state_dict().items()}  # "policy." keys
    _GatheredPolicy(policy, _strip_wrapper_prefixes(gathered)).save_pretrained(tmp_path / "model")
    reloaded = PI0Policy.from_pretrained(tmp_path / "model")
    for key, value in reloaded.state_dict().items():
        torch.testing.assert_close(value, gathered["policy." + key])


def test_a_sharded_or_foreign_state_dict_is_refused_and_nothing_written(tmp_path: Path) -> None:
    policy = PI0Policy(make_config("tiny"))
    state = policy.state_dict()
    with pytest.raises(ValueError, match="missing"):
        policy.save_pretrained(tmp_path / "a", state_dict={("policy." + k): v for k, v in state.items()})
    shard = {k: v.flatten()[: max(1, v.numel() // 2)] for k, v in state.items()}
    with pytest.raises(ValueError, match="gathered"):
        policy.save_pretrained(tmp_path / "b", state_dict=shard)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
