"""Matmul FLOP count of the pi0 / pi0.5 training step, for the model-FLOPs-utilisation (MFU) metric.

Convention (PaLM, arXiv 2204.02311, App. B; Kaplan et al. 2020, arXiv 2001.08361, Sec. 2.1): a multiply-add is 2
FLOPs, only matrix products count (norms, activations, rotary, softmax and embedding lookups are ignored), and a
training step costs 3 x the forward pass (the backward pass computes gradients for activations and for weights,
2 x forward). Kaplan's ``6 N`` per token is refined here with the attention score / value products
``2 * 2 * Lq * Lk * N * E`` per layer, because with ~800 prefix tokens they are not negligible, and with the
per-stream token counts of pi0's mixture of transformers (each Gemma stack only sees its own tokens).

Notation: P image tokens per camera, C cameras, Lp = C * P + prompt tokens (language model), Ls suffix tokens
(expert: pi0 ``1 + H``, pi0.5 ``H``), L = Lp + Ls, H action_horizon, A action_dim.

What the count follows (the policy's actual compute):

* SigLIP per image: patch convolution ``2 P (3 p^2) d``; per layer q/k/v/o ``2 P 4 d^2``, MLP ``2 P 2 d m``,
  attention ``2 * 2 P^2 d``; then the projector ``2 P d D_vlm``.
* Per joint decoder layer: each stream's q/k/v/o and GeGLU MLP (``2 T D (N + 2K) E``, ``2 T N E D``,
  ``2 T 3 D M``) plus attention over all L keys for every query row. In the last layer the language model computes
  keys / values only (see :func:`depi.policies.pi0.lora.unused_language_model_prefixes`), so only the Ls suffix
  rows attend there. pi0.5's adaptive norms add ``2 Ls D 3D``-sized products per norm.
* LoRA adapters add ``2 T r (in + out)`` per adapted projection.
* Heads: action in / out projections, pi0's state projection and action-time MLP, pi0.5's time MLP.
"""

from __future__ import annotations

from depi.policies.pi0.config import GemmaConfig, PI0Config


def _linear(tokens: int, fan_in: int, fan_out: int, lora_rank: int = 0) -> int:
    """FLOPs of a (tokens, fan_in) x (fan_in, fan_out) product, plus its LoRA adapter."""
    return 2 * tokens * fan_in * fan_out + 2 * tokens * lora_rank * (fan_in + fan_out)


def siglip_forward_flops(config: PI0Config) -> int:
    """Forward matmul FLOPs of one image through SigLIP and the multi-modal projector."""
    v = config.vision
    p = v.num_tokens
    per_layer = (
        4 * _linear(p, v.width, v.width) + _linear(p, v.width, v.mlp_dim) + _linear(p, v.mlp_dim, v.width)
    )
    per_layer += 2 * 2 * p * p * v.width  # scores q k^T and the weighted sum of values
    patch = _linear(p, 3 * v.patch_size**2, v.width)
    return patch + v.depth * per_layer + _linear(p, v.width, config.vlm.width)


def _stream_flops(
    cfg: GemmaConfig, tokens: int, *, queries: bool, outputs: bool, cond_dim: int | None
) -> int:
    """One decoder layer's projection + MLP FLOPs of one stream with ``tokens`` tokens (no attention products)."""
    r, d, e = cfg.lora_rank, cfg.width, cfg.head_dim
    flops = 2 * _linear(tokens, d, cfg.num_kv_heads * e, r)  # k, v
    if queries:
        flops += _linear(tokens, d, cfg.num_heads * e, r)
    if outputs:
        flops += _linear(tokens, cfg.num_heads * e, d, r)  # o
        flops += 2 * _linear(tokens, d, cfg.mlp_dim, r) + _linear(tokens, cfg.mlp_dim, d, r)  # gate, up, down
    if cond_dim is not None:  # adaptive RMSNorm: one (cond_dim -> 3 D) product per sample and norm
        flops += 2 * _linear(1, cond_dim, 3 * d)
    return flops


def forward_flops_per_sample(config: PI0Config, num_cameras: int, prompt_len: int) -> int:
    """Forward matmul FLOPs of one sample's flow-matching loss (see the module docstring for the terms)."""
    vlm, expert = config.vlm, config.expert
    h, a, w = config.action_horizon, config.action_dim, expert.width
    lp = num_cameras * config.vision.num_tokens + prompt_len
    ls = h if config.is_pi05 else h + 1
    total_tokens = lp + ls
    cond = w if config.is_pi05 else None
    flops = num_cameras * siglip_forward_flops(config)
    attn_width = vlm.num_heads * vlm.head_dim  # both stacks share heads and head_dim (joint attention)
    for i in range(vlm.depth):
        last = i == vlm.depth - 1
        flops += _stream_flops(vlm, lp, queries=not last, outputs=not last, cond_dim=None)
        flops += _stream_flops(expert, ls, queries=True, outputs=True, cond_dim=cond)
        query_rows = ls if last else total_tokens
        flops += 2 * 2 * query_rows * total_tokens * attn_width
    if cond is not None:
        flops += _linear(1, cond, 3 * w)  # the expert's final adaptive norm
        flops += 2 * _linear(1, w, w)  # time MLP
    else:
        flops += _linear(1, config.state_dim, w) + _linear(h, 2 * w, w) + _linear(h, w, w)
    flops += _linear(h, a, w) + _linear(h, w, a)  # action in / out projections
    return flops


def training_flops_per_sample(config: PI0Config, num_cameras: int, prompt_len: int) -> int:
    """Forward + backward matmul FLOPs of one training sample: 3 x :func:`forward_flops_per_sample` (PaLM App. B).

    Raises:
        ValueError: ``num_cameras`` < 1 or ``prompt_len`` < 0.
    """
    if num_cameras < 1 or prompt_len < 0:
        raise ValueError(
            f"num_cameras={num_cameras}, prompt_len={prompt_len}; expected num_cameras >= 1 and prompt_len >= 0."
        )
    return 3 * forward_flops_per_sample(config, num_cameras, prompt_len)
