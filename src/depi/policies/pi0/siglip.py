"""SigLIP vision tower (Zhai et al. 2023, arXiv 2303.15343) as used by PaliGemma-3B-pt-224.

A ViT without class token or pooling head: 14x14 patches -> learned position embedding -> pre-norm encoder
layers (LayerNorm, multi-head attention with biases, GELU-tanh MLP) -> final LayerNorm. Module and parameter
names follow HF ``modeling_siglip`` (``embeddings.patch_embedding``, ``encoder.layers.N.self_attn.q_proj``,
``post_layernorm``) so PaliGemma and lerobot checkpoints map by prefix only.

Shapes: pixel values float (B, 3, H, W) in [-1, 1] with H = W = image_size -> tokens (B, (H/patch)^2, width).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from depi.policies.pi0.config import SiglipConfig
from depi.policies.pi0.lora import LoRALinear


class SiglipEmbeddings(nn.Module):
    """Patch embedding (Conv2d, stride = patch) plus learned position embedding, (B, 3, H, W) -> (B, P, width)."""

    def __init__(self, cfg: SiglipConfig):
        super().__init__()
        self.patch_embedding = nn.Conv2d(3, cfg.width, kernel_size=cfg.patch_size, stride=cfg.patch_size)
        self.position_embedding = nn.Embedding(cfg.num_tokens, cfg.width)
        # Looked up through the embedding's forward (not read as .weight), so FSDP can shard nn.Embedding units.
        self.register_buffer("position_ids", torch.arange(cfg.num_tokens), persistent=False)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        patches = self.patch_embedding(pixels.to(self.patch_embedding.weight.dtype))  # (B, width, H/p, W/p)
        return patches.flatten(2).transpose(1, 2) + self.position_embedding(self.position_ids)[None]


class SiglipAttention(nn.Module):
    """Bidirectional multi-head self-attention with biased projections, (B, P, width) -> (B, P, width).

    q, k and v are one fused projection ``qkv_proj`` (segments ``q_proj``, ``k_proj``, ``v_proj``; HF checkpoints
    with separate projections load into its rows).
    """

    def __init__(self, cfg: SiglipConfig):
        super().__init__()
        self.num_heads = cfg.num_heads
        w = cfg.width
        self.qkv_proj = LoRALinear(w, 3 * w, segments=(("q_proj", w), ("k_proj", w), ("v_proj", w)))
        self.out_proj = nn.Linear(w, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, p, d = x.shape
        heads = self.qkv_proj(x).view(b, p, 3 * self.num_heads, d // self.num_heads).transpose(1, 2)
        q, k, v = heads.chunk(3, dim=1)  # (B, heads, P, d/heads) each
        out = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(out.transpose(1, 2).reshape(b, p, d))


class SiglipMLP(nn.Module):
    """``fc2(gelu_tanh(fc1(x)))``."""

    def __init__(self, cfg: SiglipConfig):
        super().__init__()
        self.fc1 = nn.Linear(cfg.width, cfg.mlp_dim)
        self.fc2 = nn.Linear(cfg.mlp_dim, cfg.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class SiglipEncoderLayer(nn.Module):
    """Pre-norm transformer layer: x + attn(ln1(x)), then x + mlp(ln2(x))."""

    def __init__(self, cfg: SiglipConfig):
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(cfg.width, eps=cfg.layer_norm_eps)
        self.self_attn = SiglipAttention(cfg)
        self.layer_norm2 = nn.LayerNorm(cfg.width, eps=cfg.layer_norm_eps)
        self.mlp = SiglipMLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class SiglipEncoder(nn.Module):
    """Stack of :class:`SiglipEncoderLayer` (HF name ``encoder.layers``)."""

    def __init__(self, cfg: SiglipConfig):
        super().__init__()
        self.layers = nn.ModuleList(SiglipEncoderLayer(cfg) for _ in range(cfg.depth))


class SiglipVisionTower(nn.Module):
    """SigLIP vision transformer, pixels (B, 3, H, W) in [-1, 1] -> tokens (B, P, width) after ``post_layernorm``.

    Raises:
        ValueError: the images are not (B, 3, image_size, image_size).
    """

    def __init__(self, cfg: SiglipConfig):
        super().__init__()
        self.cfg = cfg
        self.embeddings = SiglipEmbeddings(cfg)
        self.encoder = SiglipEncoder(cfg)
        self.post_layernorm = nn.LayerNorm(cfg.width, eps=cfg.layer_norm_eps)
        self.gradient_checkpointing = False

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        size = self.cfg.image_size
        if pixels.ndim != 4 or tuple(pixels.shape[1:]) != (3, size, size):
            raise ValueError(
                f"SigLIP expects images (B, 3, {size}, {size}); got {tuple(pixels.shape)}. Resize (with padding) "
                "to the model's image_size in the transforms."
            )
        x = self.embeddings(pixels)
        for layer in self.encoder.layers:
            if self.gradient_checkpointing and self.training:
                x = torch.utils.checkpoint.checkpoint(layer, x, use_reentrant=False)
            else:
                x = layer(x)
        return self.post_layernorm(x)
