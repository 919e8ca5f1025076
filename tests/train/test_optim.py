"""Learning-rate schedule, optimizer parameter groups and EMA."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from depi.train.config import OptimConfig
from depi.train.optim import EMA, build_optimizer, build_scheduler, cosine_lr


def test_cosine_schedule_matches_openpi_shape() -> None:
    cfg = OptimConfig(peak_lr=3e-4, decay_lr=1e-5, warmup_steps=500, decay_steps=10_000)
    assert cosine_lr(0, cfg) == pytest.approx(3e-4 / 501)
    assert cosine_lr(250, cfg) == pytest.approx(3e-4 / 501 + (3e-4 - 3e-4 / 501) / 2)
    assert cosine_lr(500, cfg) == pytest.approx(3e-4)
    midpoint = 500 + (10_000 - 500) // 2
    assert cosine_lr(midpoint, cfg) == pytest.approx(1e-5 + (3e-4 - 1e-5) * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert cosine_lr(10_000, cfg) == pytest.approx(1e-5)
    assert cosine_lr(20_000, cfg) == pytest.approx(1e-5)


def test_scheduler_follows_cosine_lr() -> None:
    cfg = OptimConfig(peak_lr=1e-3, decay_lr=1e-4, warmup_steps=3, decay_steps=8)
    model = nn.Linear(2, 2)
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg)
    seen = []
    for _ in range(10):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx([cosine_lr(s, cfg) for s in range(10)])


def test_weight_decay_skips_biases_and_frozen_parameters() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    model[2].weight.requires_grad_(False)
    optimizer = build_optimizer(model, OptimConfig(weight_decay=0.01))
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert [p.shape for p in decay["params"]] == [torch.Size([4, 3])]
    assert len(no_decay["params"]) == 4  # two biases, LayerNorm weight and bias


def test_fully_frozen_model_is_a_clear_error() -> None:
    model = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameter"):
        build_optimizer(model, OptimConfig())


def test_ema_average_and_swap() -> None:
    model = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema = EMA(model, decay=0.75)
    with torch.no_grad():
        model.weight.fill_(3.0)
    ema.update(model)  # 0.75 * 1 + 0.25 * 3
    assert torch.allclose(ema.state_dict()["weight"], torch.full((1, 2), 1.5))
    with ema.swapped_in(model):
        assert torch.allclose(model.weight, torch.full((1, 2), 1.5))
    assert torch.allclose(model.weight, torch.full((1, 2), 3.0))
    with pytest.raises(KeyError, match="missing"):
        ema.load_state_dict({})
