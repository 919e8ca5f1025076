"""Gemma decoder blocks and the shared (mixture-of-transformers) attention of pi0.

Notation: B batch, L tokens of this call, S key tokens (cached prefix + L), D width, N query heads, K key/value
heads, E head_dim.

Gemma (arXiv 2403.08295; HF ``modeling_gemma``): pre-norm decoder with RMSNorm scaled by (1 + w), rotary
position embeddings (split-half convention, base 10000), multi-query attention (K = 1 in Gemma 2B / 300M) and a
GeGLU MLP ``down(gelu_tanh(gate(x)) * up(x))``. pi0 (arXiv 2410.24164, Sec. 3) runs two such stacks, the
PaliGemma language model on the prefix and the action expert on the suffix, that attend jointly: per layer the
q/k/v of both streams are concatenated along the sequence, one attention runs over all tokens, and each stream
keeps its own projections, MLP and norms (openpi ``gemma.py`` ``Module`` with ``configs=[2b, 300m]``).

pi0.5 conditions the expert on the flow-matching time with adaptive RMSNorm (openpi ``gemma.py`` ``RMSNorm``
with ``cond``): a linear layer of the condition gives (scale, shift, gate); the norm output is
``normed * (1 + scale) + shift`` and the residual branch is multiplied by ``gate``.

dtype policy: norms and rotary embeddings compute in float32 and cast back to the input dtype; everything else
runs in the parameter / autocast dtype, so the blocks work in fp32, under ``torch.autocast(dtype=bfloat16)`` and
with bf16 parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from depi.policies.pi0.config import GemmaConfig
from depi.policies.pi0.lora import LoRALinear

KVCache = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values (B, K, S, E) after rotary


class RMSNorm(nn.Module):
    """Gemma RMSNorm ``x / sqrt(mean(x^2) + eps) * (1 + w)``, or its adaptive form when ``cond_dim`` is set.

    ``forward(x (B, L, D), cond (B, cond_dim) | None) -> (y (B, L, D), gate (B, 1, D) | None)``; the gate is
    None for the plain norm. Computed in float32, returned in ``x.dtype``.
    """

    def __init__(self, dim: int, eps: float, cond_dim: int | None = None):
        super().__init__()
        self.eps = eps
        self.cond_dim = cond_dim
        if cond_dim is None:
            self.weight = nn.Parameter(torch.zeros(dim))
        else:
            self.dense = nn.Linear(cond_dim, 3 * dim)
            nn.init.zeros_(self.dense.weight)

    def forward(
        self, x: torch.Tensor, cond: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        shape = (x.shape[-1],)
        if self.cond_dim is None:
            return F.rms_norm(x.float(), shape, 1.0 + self.weight.float(), self.eps).to(x.dtype), None
        normed = F.rms_norm(x.float(), shape, None, self.eps)
        if cond is None:
            raise ValueError("This adaptive RMSNorm needs a condition (the pi0.5 time embedding); got None.")
        scale, shift, gate = self.dense(cond)[:, None, :].chunk(3, dim=-1)  # (B, 1, D) each
        return (normed * (1.0 + scale.float()) + shift.float()).to(x.dtype), gate.to(x.dtype)


def rotary_cos_sin(positions: torch.Tensor, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotary tables (cos, signed sin), each (B, 1, L, E) float32, for integer ``positions`` (B, L).

    RoFormer / HF Gemma convention: frequencies ``theta ** (-2i / E)``, duplicated over the two halves of the head.
    The sin table carries the sign of ``rotate_half`` (-sin on the first half, +sin on the second) so that
    :func:`apply_rotary` needs no negation.
    """
    exponent = torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.int64).float() / head_dim
    inv_freq = 1.0 / (theta**exponent)  # (E/2,)
    freqs = positions.float()[..., None] * inv_freq  # (B, L, E/2)
    sin = freqs.sin()
    return torch.cat([freqs, freqs], dim=-1).cos()[:, None], torch.cat([-sin, sin], dim=-1)[:, None]


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (B, heads, L, E) by the tables of :func:`rotary_cos_sin`, computed in float32, returned in x.dtype.

    Split-half convention: ``x * cos + rotate_half(x) * sin`` with ``rotate_half(x) = [-x2, x1]``, written as
    ``x * cos + [x2, x1] * signed_sin`` (``roll`` by half a head swaps the halves).
    """
    x32 = x.float()
    return (x32 * cos + x32.roll(x.shape[-1] // 2, dims=-1) * sin).to(x.dtype)


class GemmaAttention(nn.Module):
    """q/k/v/o projections of one Gemma layer (no biases); the attention itself runs in :func:`decoder_layer`.

    q, k and v are one fused projection ``qkv_proj`` (segments ``q_proj``, ``k_proj``, ``v_proj`` of N*E, K*E and
    K*E rows; checkpoints with separate projections load into its rows, see :mod:`depi.policies.pi0.weights`).
    """

    def __init__(self, cfg: GemmaConfig):
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        lora = {"rank": cfg.lora_rank, "alpha": cfg.lora_alpha}
        q_size, kv_size = cfg.num_heads * cfg.head_dim, cfg.num_kv_heads * cfg.head_dim
        self.qkv_proj = LoRALinear(
            cfg.width,
            q_size + 2 * kv_size,
            bias=False,
            segments=(("q_proj", q_size), ("k_proj", kv_size), ("v_proj", kv_size)),
            **lora,
        )
        self.o_proj = LoRALinear(q_size, cfg.width, bias=False, **lora)

    def project(self, x: torch.Tensor, queries: bool = True) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """(B, L, D) -> (q (B, N, L, E) or None without ``queries``, k (B, K, L, E), v (B, K, L, E)), before rotary."""
        b, n = x.shape[:2]
        heads = self.qkv_proj(x, first_segment=0 if queries else 1).view(b, n, -1, self.head_dim)
        kv = self.num_kv_heads
        if queries:
            q, k, v = heads.split([self.num_heads, kv, kv], dim=2)
            return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        k, v = heads.split([kv, kv], dim=2)
        return None, k.transpose(1, 2), v.transpose(1, 2)


class GemmaMLP(nn.Module):
    """GeGLU MLP: ``down_proj(gelu_tanh(gate) * up)``, (B, L, D) -> (B, L, D); gate and up are one fused
    projection ``gate_up_proj`` (segments ``gate_proj``, ``up_proj``)."""

    def __init__(self, cfg: GemmaConfig):
        super().__init__()
        lora = {"rank": cfg.lora_rank, "alpha": cfg.lora_alpha}
        self.gate_up_proj = LoRALinear(
            cfg.width,
            2 * cfg.mlp_dim,
            bias=False,
            segments=(("gate_proj", cfg.mlp_dim), ("up_proj", cfg.mlp_dim)),
            **lora,
        )
        self.down_proj = LoRALinear(cfg.mlp_dim, cfg.width, bias=False, **lora)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
        return self.down_proj(F.gelu(gate, approximate="tanh") * up)


class GemmaLayer(nn.Module):
    """One decoder layer's parameters (HF key names: ``input_layernorm``, ``self_attn``, ``post_attention_layernorm``,
    ``mlp``); ``cond_dim`` makes both norms adaptive (pi0.5 expert)."""

    def __init__(self, cfg: GemmaConfig, cond_dim: int | None = None):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.width, cfg.rms_norm_eps, cond_dim)
        self.self_attn = GemmaAttention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.width, cfg.rms_norm_eps, cond_dim)
        self.mlp = GemmaMLP(cfg)


class GemmaStack(nn.Module):
    """A Gemma decoder: optional token embedding, ``depth`` layers, final norm.

    The token embedding (``embed_tokens``, only on the language model) multiplies by sqrt(width) as in Gemma.
    """

    def __init__(self, cfg: GemmaConfig, *, with_embedding: bool, cond_dim: int | None = None):
        super().__init__()
        self.cfg = cfg
        if with_embedding:
            self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.width)
        self.layers = nn.ModuleList(GemmaLayer(cfg, cond_dim) for _ in range(cfg.depth))
        self.norm = RMSNorm(cfg.width, cfg.rms_norm_eps, cond_dim)

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """int64 token ids (B, L) -> embeddings (B, L, D) scaled by sqrt(D) (in the embedding's dtype)."""
        emb = self.embed_tokens(tokens)
        return emb * torch.tensor(self.cfg.width**0.5, dtype=emb.dtype)


def _cat(tensors: list[torch.Tensor], dim: int) -> torch.Tensor:
    """``torch.cat`` that returns a lone tensor as is (no copy: the expert-only denoising steps have one stream)."""
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors, dim=dim)


def attention_bias(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """bool mask (B, L, S) (True = may attend) -> additive bias (B, 1, L, S) of ``dtype``: 0 or -inf.

    Built once per forward pass (or once per action chunk for the denoising steps) and shared by every layer, so
    the attention kernel does not convert a bool mask in each layer. Every row must keep one True entry (the
    masks of :func:`depi.policies.pi0.model.make_attention_mask` do), else the softmax of that row is NaN.
    """
    bias = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, float("-inf"))
    return bias[:, None]


def _gated(residual: torch.Tensor, branch: torch.Tensor, gate: torch.Tensor | None) -> torch.Tensor:
    return residual + branch if gate is None else residual + branch * gate


def decoder_layer(
    layers: Sequence[GemmaLayer],
    hiddens: Sequence[torch.Tensor],
    conds: Sequence[torch.Tensor | None],
    cos: torch.Tensor,
    sin: torch.Tensor,
    mask: torch.Tensor,
    past: tuple[torch.Tensor, torch.Tensor] | None = None,
    kv_only: Sequence[bool] | None = None,
) -> tuple[list[torch.Tensor | None], tuple[torch.Tensor, torch.Tensor]]:
    """One layer of jointly attending streams (pi0's mixture of transformers).

    Args:
        layers: the layer of each stream (e.g. [language model layer, expert layer]).
        hiddens: hidden states of each stream, (B, L_i, D_i); the streams' tokens are concatenated in this order.
        conds: adaptive-norm condition of each stream (B, cond_dim) or None.
        cos, sin: rotary tables for the concatenated tokens, (B, 1, L, E) with L = sum(L_i).
        mask: additive attention bias (B, 1, L, S) from :func:`attention_bias` (0 where the query token attends the
            key token, -inf elsewhere; S = cached tokens + L), or the bool mask (B, L, S) it is made from.
        past: cached (keys, values) (B, K, S - L, E) of earlier tokens (the prefix), prepended to this call's keys.
        kv_only: per stream, True when only its keys / values are needed (the last language-model layer: its
            prefix outputs feed nothing). Such a stream computes no query, output projection or MLP and its
            output is None; with no query stream at all, attention is skipped.

    Returns:
        (new hidden states per stream (None for ``kv_only`` streams), (keys, values) of this call's tokens after
        rotary, (B, K, L, E)).
    """
    kv_only = [False] * len(layers) if kv_only is None else list(kv_only)
    if mask.dtype == torch.bool:
        mask = attention_bias(mask, hiddens[0].dtype)
    qs, ks, vs, gates, rows = [], [], [], [], []
    start = 0
    for layer, h, c, skip in zip(layers, hiddens, conds, kv_only, strict=True):
        x, gate = layer.input_layernorm(h, c)
        q, k, v = layer.self_attn.project(x, queries=not skip)
        ks.append(k), vs.append(v), gates.append(gate)
        if q is not None:
            qs.append(q)
            rows.append((start, start + h.shape[1]))
        start += h.shape[1]
    k, v = _cat(ks, dim=2), _cat(vs, dim=2)  # (B, K, L, E)
    k = apply_rotary(k, cos, sin)
    new_kv = (k, v)
    if not qs:
        return [None] * len(layers), new_kv
    if len(rows) == len(layers):
        q_cos, q_sin, q_mask = cos, sin, mask
    else:  # query rows of the streams that need outputs only
        q_cos = _cat([cos[:, :, a:e] for a, e in rows], dim=2)
        q_sin = _cat([sin[:, :, a:e] for a, e in rows], dim=2)
        q_mask = _cat([mask[:, :, a:e] for a, e in rows], dim=2)
    q = apply_rotary(_cat(qs, dim=2), q_cos, q_sin)  # (B, N, Lq, E)
    if past is not None:
        k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)  # (B, K, S, E)
    attn = F.scaled_dot_product_attention(
        q, k, v, attn_mask=q_mask.to(q.dtype), enable_gqa=True
    )  # (B, N, Lq, E); the bias is cast only under autocast, where q is in the autocast dtype
    b, n, length, e = attn.shape
    attn = attn.transpose(1, 2).reshape(b, length, n * e)  # (B, Lq, N*E)
    outputs: list[torch.Tensor | None] = []
    start = 0
    for layer, h, c, gate, skip in zip(layers, hiddens, conds, gates, kv_only, strict=True):
        if skip:
            outputs.append(None)
            continue
        end = start + h.shape[1]
        out = layer.self_attn.o_proj(attn[:, start:end].to(h.dtype))
        h = _gated(h, out, gate)
        x, gate2 = layer.post_attention_layernorm(h, c)
        outputs.append(_gated(h, layer.mlp(x), gate2))
        start = end
    return outputs, new_kv
