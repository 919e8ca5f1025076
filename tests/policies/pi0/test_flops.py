"""The analytic FLOP count of a training sample against torch's FLOP counter on the tiny model."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from depi.policies.pi0 import PI0Policy, make_config
from depi.policies.pi0.flops import training_flops_per_sample


def _matmul_attention(q, k, v, attn_mask=None, enable_gqa=False, **_):
    """Scaled dot-product attention written with matmuls, so FlopCounterMode sees its products on CPU."""
    if enable_gqa and k.shape[1] != q.shape[1]:
        k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
        v = v.repeat_interleave(q.shape[1] // v.shape[1], dim=1)
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5  # (B, N, Lq, Lk)
    if attn_mask is not None:
        bool_mask = attn_mask.dtype == torch.bool
        scores = scores.masked_fill(~attn_mask, float("-inf")) if bool_mask else scores + attn_mask
    return scores.softmax(dim=-1) @ v


@pytest.mark.parametrize("preset", ["tiny", "tiny_pi05"])
@pytest.mark.parametrize("prompt_len", [8, 20])
def test_flops_per_sample_matches_flop_counter(preset, prompt_len, make_batch, monkeypatch) -> None:
    torch.manual_seed(0)
    policy = PI0Policy(make_config(preset))
    batch = make_batch(policy.config, batch_size=2, prompt_len=prompt_len)  # two cameras
    monkeypatch.setattr(F, "scaled_dot_product_attention", _matmul_attention)
    with FlopCounterMode(display=False) as counter:
        policy.compute_loss(batch)
    counted = 3 * counter.get_total_flops() / 2  # forward of one sample, x3 for forward + backward
    analytic = policy.flops_per_sample(num_cameras=2, prompt_len=prompt_len)
    assert analytic == pytest.approx(counted, rel=0.03)


def test_flops_grow_with_cameras_and_prompt() -> None:
    config = make_config("tiny")
    base = training_flops_per_sample(config, 2, 8)
    assert training_flops_per_sample(config, 3, 8) > base
    assert training_flops_per_sample(config, 2, 48) > base
    with pytest.raises(ValueError, match="num_cameras"):
        training_flops_per_sample(config, 0, 8)


def test_default_is_three_cameras_and_max_token_len() -> None:
    policy = PI0Policy(make_config("tiny"))
    assert policy.flops_per_sample() == training_flops_per_sample(
        policy.config, 3, policy.config.max_token_len
    )
