"""The loop trains the real tiny pi0 / pi0.5 policy on canonical batches and resumes it exactly."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from depi.policies.pi0 import PI0Policy, make_config
from depi.train.loop import train
from tests.train.train_toys import HORIZON, TOKENS, CanonicalData, toy_config


def _run(cfg, preset: str):
    torch.manual_seed(0)
    cfg.policy = make_config(preset, action_horizon=HORIZON, max_token_len=TOKENS)
    return train(cfg, policy=PI0Policy(cfg.policy), data=CanonicalData())


@pytest.mark.parametrize("preset", ["tiny", pytest.param("tiny_pi05", marks=pytest.mark.slow)])
def test_tiny_policy_trains_saves_and_resumes_exactly(tmp_path: Path, preset: str) -> None:
    full = _run(toy_config(tmp_path / "full", steps=3, save_freq=2, batch_size=2), preset)
    _run(toy_config(tmp_path / "split", steps=2, save_freq=2, batch_size=2), preset)
    resumed = _run(toy_config(tmp_path / "split", steps=3, save_freq=2, batch_size=2, resume=True), preset)

    assert len(resumed.losses) == 1 and resumed.losses == full.losses[2:]
    a = load_file(full.checkpoint / "model/model.safetensors")
    b = load_file(resumed.checkpoint / "model/model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    reloaded = PI0Policy.from_pretrained(resumed.checkpoint / "model")
    assert reloaded.config == make_config(preset, action_horizon=HORIZON, max_token_len=TOKENS)


def test_lora_training_leaves_frozen_weights_untouched(tmp_path: Path) -> None:
    tiny = make_config("tiny")
    lora = {"lora_rank": 4, "lora_alpha": 4.0}
    cfg = toy_config(tmp_path / "lora", steps=2, save_freq=2, batch_size=1)
    cfg.policy = make_config(
        "tiny", action_horizon=HORIZON, max_token_len=TOKENS, train_vision_tower=False,
        vlm=replace(tiny.vlm, **lora), expert=replace(tiny.expert, **lora),
    )
    torch.manual_seed(0)
    policy = PI0Policy(cfg.policy)
    before = {k: v.detach().clone() for k, v in policy.named_parameters()}
    trainable = {k for k, v in policy.named_parameters() if v.requires_grad}
    assert trainable and any("lora" in k for k in trainable) and len(trainable) < len(before)
    train(cfg, policy=policy, data=CanonicalData())
    after = dict(policy.named_parameters())
    assert all(torch.equal(after[k], before[k]) for k in before if k not in trainable)
    assert any(not torch.equal(after[k], before[k]) for k in trainable)


def test_pi0_logs_per_dataset_loss(tmp_path: Path) -> None:
    cfg = toy_config(tmp_path / "run", steps=2, save_freq=2, batch_size=4, per_dataset_loss_freq=1)
    _run(cfg, "tiny")
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 2
    for record in records:
        per_dataset = [record[k] for k in ("loss/sim/a", "loss/sim/b") if k in record]
        assert per_dataset and all(v > 0 for v in per_dataset)
    seen = {k for r in records for k in r if k.startswith("loss/")}
    assert seen == {"loss/sim/a", "loss/sim/b"}


def test_frozen_unused_parameters_get_no_gradient_and_all_trainable_ones_do() -> None:
    torch.manual_seed(0)
    policy = PI0Policy(make_config("tiny", action_horizon=HORIZON, max_token_len=TOKENS))
    samples = CanonicalData().dataset
    batch = torch.utils.data.default_collate([samples[i] for i in range(2)])
    policy.compute_loss(batch)[0].backward()
    for name, param in policy.named_parameters():
        assert (param.grad is not None) == param.requires_grad, name
    names = [n for n, _ in policy.named_parameters()]
    frozen = {n for n, p in policy.named_parameters() if not p.requires_grad}
    last = "language_model.layers.1."  # the tiny language model's last layer feeds the expert keys and values only
    mlp = [n for n in names if n.startswith(last + "mlp.")]
    assert mlp and set(mlp) <= frozen and "language_model.norm.weight" in frozen
    assert any(n.startswith(last + "self_attn.") and n not in frozen for n in names)
