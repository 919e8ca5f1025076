"""Speed-oriented paths give the same numbers: gradient checkpointing, bf16 autocast, torch.compile."""

from __future__ import annotations

import pytest
import torch

from depi.policies.pi0 import PI0Policy, make_config


def test_gradient_checkpointing_matches(make_batch) -> None:
    torch.manual_seed(0)
    plain = PI0Policy(make_config("tiny"))
    ckpt = PI0Policy(make_config("tiny", gradient_checkpointing=True))
    ckpt.load_state_dict(plain.state_dict())
    batch = make_batch(plain.config)
    noise, time = torch.randn(2, 10, 32), torch.tensor([0.4, 0.9])
    losses = []
    for model in (plain, ckpt):
        loss, _ = model.compute_loss(batch, noise=noise, time=time)
        loss.backward()
        losses.append(loss)
    torch.testing.assert_close(losses[0], losses[1])
    for (name, p), q in zip(plain.named_parameters(), ckpt.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, msg=name)


def test_bf16_autocast_close_to_fp32(make_batch) -> None:
    torch.manual_seed(0)
    policy = PI0Policy(make_config("tiny_pi05")).eval()
    batch = make_batch(policy.config)
    noise, time = torch.randn(2, 10, 32), torch.tensor([0.4, 0.9])
    ref, _ = policy.compute_loss(batch, noise=noise, time=time)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = policy.compute_loss(batch, noise=noise, time=time)
        actions = policy.sample_actions(batch, noise=noise)
    assert loss.dtype == torch.float32 and actions.dtype == torch.float32
    assert abs(loss.item() - ref.item()) < 0.05 * ref.item()
    assert torch.isfinite(actions).all()


@pytest.mark.parametrize("preset", ["tiny", "tiny_pi05"])
def test_bf16_parameters_close_to_fp32(preset: str, make_batch) -> None:
    """A policy cast to bf16 (lerobot's bf16 layout: vision tower and projector kept in float32) trains and samples
    from float32 inputs and noise, and stays close to the float32 policy."""
    torch.manual_seed(0)
    policy = PI0Policy(make_config(preset)).eval()
    batch = make_batch(policy.config)
    noise, time = torch.randn(2, 10, 32), torch.tensor([0.4, 0.9])
    ref_loss, _ = policy.compute_loss(batch, noise=noise, time=time)
    ref_actions = policy.sample_actions(batch, noise=noise)
    policy.to(torch.bfloat16)
    policy.vision_tower.float()
    policy.multi_modal_projector.float()
    loss, _ = policy.compute_loss(batch, noise=noise, time=time)
    loss.backward()
    actions = policy.sample_actions(batch, noise=noise)
    assert loss.dtype == torch.float32 and actions.dtype == torch.float32
    assert abs(loss.item() - ref_loss.item()) < 0.05 * ref_loss.item()
    assert (actions - ref_actions).abs().max() < 0.1 * ref_actions.abs().max()
    assert policy.action_in_proj.weight.grad.dtype == torch.bfloat16


@pytest.mark.slow
def test_compile_fullgraph_sampling_and_training_step(make_batch) -> None:
    torch.manual_seed(0)
    policy = PI0Policy(make_config("tiny", action_horizon=4, num_steps=3))
    batch = make_batch(policy.config)
    noise, time = torch.randn(2, 4, 32), torch.tensor([0.4, 0.9])
    policy.eval()
    eager = policy.sample_actions(batch, noise=noise)
    compiled_sample = torch.compile(policy.sample_actions, fullgraph=True)
    torch.testing.assert_close(compiled_sample(batch, noise=noise), eager, atol=1e-4, rtol=1e-4)

    policy.train()
    ref, _ = policy.compute_loss(batch, noise=noise, time=time)
    compiled_loss = torch.compile(policy.compute_loss, fullgraph=True)
    loss, _ = compiled_loss(batch, noise=noise, time=time)
    loss.backward()
    torch.testing.assert_close(loss, ref, atol=1e-4, rtol=1e-4)
    assert policy.action_out_proj.weight.grad is not None
