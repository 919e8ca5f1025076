"""Flow-matching pieces: time distribution, interpolation, masked loss, Euler sampler, time embedding."""

from __future__ import annotations

import math

import pytest
import torch

from depi.constants import ACTION_DIM_MASK, ACTION_IS_PAD, ACTIONS
from depi.policies.pi0 import PI0Policy, flow, make_config


def test_time_is_scaled_beta() -> None:
    g = torch.Generator().manual_seed(0)
    t = flow.sample_time(200_000, alpha=1.5, beta=1.0, scale=0.999, offset=0.001, generator=g)
    assert t.dtype == torch.float32 and t.min() >= 0.001 and t.max() <= 1.0
    # Beta(1.5, 1): mean 0.6, CDF x^1.5.
    assert abs(t.mean().item() - (0.6 * 0.999 + 0.001)) < 3e-3
    assert abs((t < 0.5 * 0.999 + 0.001).float().mean().item() - 0.5**1.5) < 3e-3


def test_interpolation_and_target() -> None:
    actions, noise = torch.randn(3, 4, 5), torch.randn(3, 4, 5)
    time = torch.tensor([0.0, 0.5, 1.0])
    x_t, u = flow.noisy_actions(actions, noise, time)
    torch.testing.assert_close(x_t[0], actions[0])
    torch.testing.assert_close(x_t[2], noise[2])
    torch.testing.assert_close(x_t[1], 0.5 * (actions[1] + noise[1]))
    torch.testing.assert_close(u, noise - actions)


def test_loss_masks_padded_dims_and_steps() -> None:
    v, u = torch.zeros(2, 3, 4), torch.zeros(2, 3, 4)
    u[:, :, 2:] = 100.0  # padded action dims
    u[0, 2, :] = 100.0  # padded chunk step
    u[1, 0, 0] = 2.0  # one real error of 4
    dim_mask = torch.tensor([[True, True, False, False]] * 2)
    is_pad = torch.tensor([[False, False, True], [False, False, False]])
    loss, err = flow.flow_matching_loss(v, u, dim_mask, is_pad)
    assert err.shape == (2, 3, 4)
    torch.testing.assert_close(loss, torch.tensor(4.0 / (2 * 2 + 3 * 2)))
    unmasked, _ = flow.flow_matching_loss(v, u, dim_mask, is_pad, masked=False)
    torch.testing.assert_close(unmasked, u.square().mean())


def test_policy_loss_averages_real_dims_and_steps_only(make_batch) -> None:
    torch.manual_seed(0)
    policy = PI0Policy(make_config("tiny")).eval()
    batch = make_batch(policy.config)
    noise, time = torch.randn(2, 10, 32), torch.tensor([0.3, 0.6])
    loss, info = policy.compute_loss(batch, noise=noise, time=time)
    assert info["loss_per_dim"].shape == (32,)
    x_t, target = flow.noisy_actions(batch[ACTIONS], noise, time)
    with torch.no_grad():
        err = (policy._full_velocity(batch, x_t, time) - target).square()
    keep = batch[ACTION_DIM_MASK][:, None, :] & ~batch[ACTION_IS_PAD][:, :, None]
    assert keep.sum() == 2 * 10 * 7 - 2 * 7
    torch.testing.assert_close(loss, err[keep].mean())
    openpi = PI0Policy(make_config("tiny", mask_loss=False)).eval()
    openpi.load_state_dict(policy.state_dict())
    loss_openpi, _ = openpi.compute_loss(batch, noise=noise, time=time)
    torch.testing.assert_close(loss_openpi, err.mean())


def test_loss_backward_reaches_trainable_parameters(make_batch) -> None:
    torch.manual_seed(0)
    policy = PI0Policy(make_config("tiny_pi05"))
    loss, _ = policy.compute_loss(make_batch(policy.config))
    loss.backward()
    last = f"language_model.layers.{policy.config.vlm.depth - 1}."
    # Only the keys / values of the language model's last layer reach the action expert (as in openpi).
    unused = (
        last + "self_attn.q_proj.",
        last + "self_attn.o_proj.",
        last + "post_attention_layernorm.",
        last + "mlp.",
        "language_model.norm.",
    )
    for name, p in policy.named_parameters():
        if name.startswith(unused):
            assert p.grad is None or not p.grad.any(), name
        else:
            # (time_mlp_* get zero gradients at init: the adaRMS dense layers start at zero, as in openpi.)
            assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_actions_shape_is_checked(make_batch) -> None:
    policy = PI0Policy(make_config("tiny"))
    batch = make_batch(policy.config)
    batch[ACTIONS] = batch[ACTIONS][:, :5]
    with pytest.raises(ValueError, match="action_horizon"):
        policy.compute_loss(batch)


def test_euler_integrates_constant_velocity_exactly() -> None:
    noise = torch.randn(2, 3, 4)
    target = torch.randn(2, 3, 4)
    # For the straight path from target (t=0) to noise (t=1), v = noise - target; Euler is exact.
    out = flow.euler_sample(lambda x, t: noise - target, noise, num_steps=7)
    torch.testing.assert_close(out, target, atol=1e-6, rtol=1e-6)
    seen = []
    flow.euler_sample(lambda x, t: seen.append(t[0].item()) or torch.zeros_like(x), noise, num_steps=4)
    assert seen == pytest.approx([1.0, 0.75, 0.5, 0.25])


def test_sinusoidal_time_embedding() -> None:
    t = torch.tensor([0.0, 0.5])
    emb = flow.sinusoidal_time_embedding(t, 8, min_period=4e-3, max_period=4.0)
    assert emb.shape == (2, 8) and emb.dtype == torch.float32
    torch.testing.assert_close(emb[0], torch.tensor([0.0] * 4 + [1.0] * 4))
    # The slowest frequency has period max_period: sin(2 pi * 0.5 / 4).
    assert emb[1, 3].item() == pytest.approx(math.sin(2 * math.pi * 0.5 / 4.0), abs=1e-6)
    with pytest.raises(ValueError):
        flow.sinusoidal_time_embedding(t, 7, 4e-3, 4.0)


def test_per_sample_loss_weights_each_sample_like_the_batch_loss(make_batch) -> None:
    torch.manual_seed(0)
    policy = PI0Policy(make_config("tiny"))
    batch = make_batch(policy.config, batch_size=3)  # sample 0 has two padded chunk steps, 7 real dims each
    noise, time = torch.randn(3, 10, 32), torch.tensor([0.2, 0.5, 0.9])
    loss, info = policy.compute_loss(batch, noise=noise, time=time)
    per_sample = info["per_sample_loss"]
    assert per_sample.shape == (3,) and per_sample.dtype == torch.float32 and not per_sample.requires_grad
    # Weighted by each sample's count of real entries, the per-sample losses give back the batch loss.
    counts = torch.tensor([8 * 7, 10 * 7, 10 * 7], dtype=torch.float32)
    torch.testing.assert_close((per_sample * counts).sum() / counts.sum(), loss.detach())
    # Each sample's loss is its own: another sample's actions do not change it.
    changed = dict(batch, **{ACTIONS: batch[ACTIONS].clone()})
    changed[ACTIONS][2] += 1.0
    _, info2 = policy.compute_loss(changed, noise=noise, time=time)
    torch.testing.assert_close(info2["per_sample_loss"][:2], per_sample[:2])
    assert info2["per_sample_loss"][2] != per_sample[2]


def test_per_sample_loss_unmasked_is_the_plain_mean() -> None:
    err = torch.rand(2, 3, 4)
    torch.testing.assert_close(flow.per_sample_loss(err, masked=False), err.mean(dim=(1, 2)))
    dims = torch.tensor([[True, True, False, False]] * 2)
    pad = torch.tensor([[False, False, True], [True, True, True]])
    out = flow.per_sample_loss(err, dims, pad)
    torch.testing.assert_close(out[0], err[0, :2, :2].mean())
    assert out[1] == 0.0  # nothing real in the sample
