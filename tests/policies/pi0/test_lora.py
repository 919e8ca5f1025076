"""LoRA presets: which parameters train, how many, and that LoRA starts as the identity update."""

from __future__ import annotations

import pytest
import torch

from depi.policies.pi0 import GemmaConfig, PI0Policy, make_config
from depi.policies.pi0.lora import LoRALinear, count_parameters, is_trainable


def _lora_per_layer(c: GemmaConfig) -> int:
    r, w, q, kv, m = c.lora_rank, c.width, c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim, c.mlp_dim
    return r * ((w + q) + 2 * (w + kv) + (q + w) + 2 * (w + m) + (m + w))


def _heads(w: int, pi05: bool) -> int:
    io = (32 * w + w) + (w * 32 + 32)  # action_in_proj, action_out_proj
    if pi05:
        return io + 2 * (w * w + w)  # time_mlp_in, time_mlp_out
    return io + (32 * w + w) + (2 * w * w + w) + (w * w + w)  # state_proj, action_time_mlp_in / _out


@pytest.mark.parametrize("preset", ["pi0_lora", "pi05_lora"])
def test_full_size_lora_trainable_count(preset: str) -> None:
    config = make_config(preset)
    with torch.device("meta"):
        policy = PI0Policy(config)
    expected = config.vlm.depth * (_lora_per_layer(config.vlm) + _lora_per_layer(config.expert))
    expected += _heads(config.expert.width, config.is_pi05)
    # The 2B's last-layer output projection and MLP feed nothing in the loss and are frozen with their adapters
    # (its queries are rows of the fused qkv_proj, whose adapter trains for the keys and values).
    c = config.vlm
    q, m = c.num_heads * c.head_dim, c.mlp_dim
    expected -= c.lora_rank * ((c.width + q) + 3 * (c.width + m))
    assert count_parameters(policy, trainable_only=True) == expected
    # 18 layers * (16 * 68,096 on the 2B + 32 * 24,064 on the expert) = 33,472,512 LoRA parameters, less the
    # 2B's unused last-layer adapters (16 * 59,392 = 950,272), plus the heads (pi0: 3,248,160; pi0.5: 2,165,792).
    assert expected == (35_770_400 if preset == "pi0_lora" else 34_688_032)
    assert 3.2e9 < count_parameters(policy) < 3.4e9


def _unused_lm_weights(c: GemmaConfig) -> int:
    """Base weights of the 2B's last-layer output projection, post-attention norm, MLP, and of its final norm."""
    q = c.num_heads * c.head_dim
    return c.width * q + c.width + 3 * c.width * c.mlp_dim + c.width


def test_full_presets_train_everything_but_the_unused_last_layer_weights() -> None:
    with torch.device("meta"):
        policy = PI0Policy(make_config("pi0"))
    frozen = count_parameters(policy) - count_parameters(policy, trainable_only=True)
    assert frozen == _unused_lm_weights(policy.config.vlm)


def test_tiny_lora_trains_only_adapters_and_heads(make_batch) -> None:
    torch.manual_seed(0)
    lora = {"lora_rank": 4, "lora_alpha": 4.0}
    base = make_config("tiny")
    config = make_config(
        "tiny",
        vlm=GemmaConfig(**{**vars(base.vlm), **lora}),
        expert=GemmaConfig(**{**vars(base.expert), **lora}),
        train_vision_tower=False,
    )
    policy = PI0Policy(config)
    trainable = {n for n, p in policy.named_parameters() if p.requires_grad}
    assert all(
        n.endswith((".lora_a", ".lora_b")) or n.startswith(("action_", "state_proj")) for n in trainable
    )
    assert not any(n.startswith(("vision_tower.", "multi_modal_projector.")) for n in trainable)
    c = config.vlm
    unused_lora = c.lora_rank * ((c.width + c.num_heads * c.head_dim) + 3 * (c.width + c.mlp_dim))
    assert (
        count_parameters(policy, trainable_only=True)
        == 2 * 2 * _lora_per_layer(config.vlm) + _heads(32, False) - unused_lora
    )
    loss, _ = policy.compute_loss(make_batch(config))
    loss.backward()
    assert all(p.grad is None for n, p in policy.named_parameters() if n not in trainable)
    with_vision = PI0Policy(
        make_config("tiny", vlm=config.vlm, expert=config.expert, train_vision_tower=True)
    )
    assert count_parameters(with_vision, True) - count_parameters(policy, True) == count_parameters(
        policy.vision_tower
    ) + count_parameters(policy.multi_modal_projector)


def test_lora_starts_as_base_layer() -> None:
    torch.manual_seed(0)
    layer = LoRALinear(8, 6, bias=False, rank=2, alpha=4.0)
    x = torch.randn(3, 8)
    torch.testing.assert_close(layer(x), x @ layer.weight.T)
    with torch.no_grad():
        layer.lora_b.fill_(1.0)
    expected = x @ layer.weight.T + 2.0 * (x @ layer.lora_a.T) @ layer.lora_b.T
    torch.testing.assert_close(layer(x), expected)


def test_unknown_parameter_name_is_an_error() -> None:
    with pytest.raises(ValueError, match="no known part"):
        is_trainable("mystery.weight", vlm_lora=True, expert_lora=True, train_vision_tower=False)
