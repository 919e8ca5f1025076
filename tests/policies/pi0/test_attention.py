"""Who attends to whom: the attention-mask rule and its effect on the policy's outputs."""

from __future__ import annotations

from unittest.mock import patch

import torch

from depi.constants import (
    ACTIONS,
    IMAGE,
    IMAGE_MASK,
    LEFT_WRIST_CAMERA,
    STATE,
    TOKENIZED_PROMPT,
    TOKENIZED_PROMPT_MASK,
)
from depi.policies.pi0 import PI0Policy, make_config
from depi.policies.pi0.model import make_attention_mask


def test_pi0_token_layout_mask() -> None:
    # prefix: 2 tokens of camera A, 2 of a masked camera B, 2 prompt tokens (last one padding);
    # suffix: state token, 3 action tokens.
    valid = torch.tensor([[1, 1, 0, 0, 1, 0, 1, 1, 1, 1]], dtype=torch.bool)
    starts = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1, 0, 0])
    mask = make_attention_mask(valid, starts)[0]
    img_a, img_b, prompt, pad, state, acts = [0, 1], [2, 3], [4], [5], [6], [7, 8, 9]
    prefix = img_a + prompt
    for q in prefix:  # bidirectional prefix, blind to the suffix, to the masked camera and to padding
        assert mask[q, prefix].all()
        assert not mask[q, state + acts + img_b + pad].any()
    assert mask[6, prefix + state].all() and not mask[6, acts].any()  # state block: prefix + itself
    for q in acts:  # action block: prefix, state, every action token
        assert mask[q, prefix + state + acts].all()
        assert not mask[q, img_b + pad].any()
    for q in img_b + pad:  # invalid rows see only themselves (keeps their unused outputs finite)
        assert mask[q].nonzero().flatten().tolist() == [q]


def test_masked_camera_and_padding_do_not_change_outputs(make_batch) -> None:
    torch.manual_seed(0)
    policy = PI0Policy(make_config("tiny")).eval()
    batch = make_batch(policy.config, batch_size=2)
    noise, time = torch.randn(2, 10, 32), torch.tensor([0.2, 0.7])
    loss, _ = policy.compute_loss(batch, noise=noise, time=time)
    actions = policy.sample_actions(batch, noise=noise)

    changed = dict(batch)
    wrist = batch[IMAGE][LEFT_WRIST_CAMERA].clone()
    wrist[-1] = 255 - wrist[-1]  # the last sample's wrist camera is masked out
    changed[IMAGE] = {**batch[IMAGE], LEFT_WRIST_CAMERA: wrist}
    tokens = batch[TOKENIZED_PROMPT].clone()
    tokens[-1][~batch[TOKENIZED_PROMPT_MASK][-1]] = 5  # padded prompt tokens
    changed[TOKENIZED_PROMPT] = tokens
    loss2, _ = policy.compute_loss(changed, noise=noise, time=time)
    torch.testing.assert_close(loss2, loss)
    torch.testing.assert_close(policy.sample_actions(changed, noise=noise), actions)

    visible = dict(batch)
    wrist0 = batch[IMAGE][LEFT_WRIST_CAMERA].clone()
    wrist0[0] = 255 - wrist0[0]  # the first sample's wrist camera is visible: its actions must change
    visible[IMAGE] = {**batch[IMAGE], LEFT_WRIST_CAMERA: wrist0}
    out = policy.sample_actions(visible, noise=noise)
    assert not torch.allclose(out[0], actions[0])
    torch.testing.assert_close(out[1], actions[1])


def test_camera_masked_in_the_whole_batch_is_not_embedded(make_batch) -> None:
    """A slot no sample shows is left out of the prefix: same loss, gradients and actions, one SigLIP pass less."""
    torch.manual_seed(0)
    policy = PI0Policy(make_config("tiny"))
    batch = make_batch(policy.config, batch_size=2)
    batch[IMAGE_MASK] = {**batch[IMAGE_MASK], LEFT_WRIST_CAMERA: torch.zeros(2, dtype=torch.bool)}
    noise, time = torch.randn(2, 10, 32), torch.tensor([0.2, 0.7])
    calls = []
    hook = policy.vision_tower.register_forward_hook(lambda _m, args, _out: calls.append(args[0].shape[0]))
    prefix, valid = policy.embed_prefix(batch)
    assert calls == [2] and prefix.shape[1] == policy.config.vision.num_tokens + batch[TOKENIZED_PROMPT].shape[1]

    def run(model_batch):
        policy.zero_grad()
        loss, _ = policy.compute_loss(model_batch, noise=noise, time=time)
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in policy.named_parameters() if p.grad is not None}

    loss, grads = run(batch)
    # the same batch with the wrist slot forced through SigLIP (what a mixed batch does)
    with patch("depi.policies.pi0.model._visible_cameras", lambda images, masks: list(images)):
        calls.clear()
        full_loss, full_grads = run(batch)
        assert calls == [4]
        full_actions = policy.eval().sample_actions(batch, noise=noise)
    hook.remove()
    torch.testing.assert_close(loss, full_loss)
    assert grads.keys() == full_grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(grad, full_grads[name], atol=1e-6, rtol=1e-5, msg=name)
    torch.testing.assert_close(policy.sample_actions(batch, noise=noise), full_actions)


def test_prefix_does_not_see_state_or_actions(make_batch) -> None:
    torch.manual_seed(0)
    policy = PI0Policy(make_config("tiny")).eval()
    batch = make_batch(policy.config)
    cache, _ = policy.prefix_cache(batch)
    other = {**batch, STATE: batch[STATE] + 1.0, ACTIONS: batch[ACTIONS] + 1.0}
    cache2, _ = policy.prefix_cache(other)
    for (k, v), (k2, v2) in zip(cache, cache2, strict=True):
        torch.testing.assert_close(k, k2)
        torch.testing.assert_close(v, v2)
    noise = torch.randn(2, 10, 32)
    assert not torch.allclose(
        policy.sample_actions(other, noise=noise), policy.sample_actions(batch, noise=noise)
    )


def test_action_tokens_are_not_causal_among_themselves(make_batch) -> None:
    # Actions form one block: the velocity of the first step depends on the noisy value of the last step.
    torch.manual_seed(0)
    policy = PI0Policy(make_config("tiny")).eval()
    batch = make_batch(policy.config)
    x_t = torch.randn(2, 10, 32)
    time = torch.tensor([0.5, 0.5])
    with torch.no_grad():
        v = policy._full_velocity(batch, x_t, time)
        x2 = x_t.clone()
        x2[:, -1] += 1.0
        v2 = policy._full_velocity(batch, x2, time)
    assert not torch.allclose(v[:, 0], v2[:, 0])


def test_kv_cache_sampling_equals_full_recompute(make_batch) -> None:
    for preset in ("tiny", "tiny_pi05"):
        torch.manual_seed(0)
        policy = PI0Policy(make_config(preset)).eval()
        batch = make_batch(policy.config)
        noise = torch.randn(2, 10, 32)
        cached = policy.sample_actions(batch, noise=noise)
        full = policy.sample_actions(batch, noise=noise, use_kv_cache=False)
        assert cached.dtype == torch.float32 and cached.shape == (2, 10, 32)
        torch.testing.assert_close(cached, full, atol=1e-5, rtol=1e-5)
