"""LoRA adapters and the trainable-parameter filter of the pi0 presets.

LoRA (Hu et al. 2021, arXiv 2106.09685): y = x W^T + b + (alpha / rank) * (x A^T) B^T, with A (rank, in) drawn
from N(0, 0.01^2) and B (out, rank) zero, so the adapted model starts equal to the base model (openpi
``models/lora.py`` initialisation). openpi's ``gemma_2b_lora`` / ``gemma_300m_lora`` put the adapters on the
attention (q, k, v, output) and MLP (gate, up, down) projections; :class:`LoRALinear` keeps the base weight under
the same key (``q_proj.weight``) so checkpoints load unchanged, and adds ``q_proj.lora_a`` / ``q_proj.lora_b``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Trainable heads of the policy (flow-matching projections and time MLPs), never frozen by the LoRA filter.
HEAD_PREFIXES = ("state_proj.", "action_in_proj.", "action_out_proj.", "action_time_mlp_", "time_mlp_")
VISION_PREFIXES = ("vision_tower.", "multi_modal_projector.")


class LoRALinear(nn.Linear):
    """``nn.Linear`` plus an optional low-rank update.

    Args:
        in_features, out_features, bias: as ``nn.Linear``.
        rank: LoRA rank r (0 = plain linear layer, no adapter parameters).
        alpha: LoRA alpha; the update is scaled by alpha / rank.

    Shapes: input (..., in_features) -> output (..., out_features), any float dtype.
    """

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, rank: int = 0, alpha: float = 0.0
    ):
        super().__init__(in_features, out_features, bias=bias)
        self.rank = rank
        self.scaling = alpha / rank if rank > 0 else 0.0
        if rank > 0:
            self.lora_a = nn.Parameter(torch.randn(rank, in_features) * 0.01)
            self.lora_b = nn.Parameter(torch.zeros(out_features, rank))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x, self.weight, self.bias)
        if self.rank == 0:
            return y
        return y + F.linear(F.linear(x, self.lora_a), self.lora_b) * self.scaling

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, rank={self.rank}, scaling={self.scaling}"


def is_trainable(name: str, *, vlm_lora: bool, expert_lora: bool, train_vision_tower: bool) -> bool:
    """Freeze filter of a parameter given its name in the policy's ``state_dict``.

    Mirrors openpi ``Pi0Config.get_freeze_filter``: a Gemma stack that has LoRA keeps only its ``lora_a`` /
    ``lora_b`` trainable (embeddings, norms and base projections are frozen); a stack without LoRA is trained
    fully. The state / action projections and the time MLPs are always trained. The SigLIP tower and its projector
    are trained only with ``train_vision_tower``.
    """
    if name.startswith(HEAD_PREFIXES):
        return True
    if name.startswith(VISION_PREFIXES):
        return train_vision_tower
    is_lora = name.endswith((".lora_a", ".lora_b"))
    if name.startswith("language_model."):
        return is_lora or not vlm_lora
    if name.startswith("action_expert."):
        return is_lora or not expert_lora
    raise ValueError(
        f"Parameter {name!r} belongs to no known part of the pi0 policy; update lora.is_trainable."
    )


def unused_language_model_prefixes(vlm_depth: int) -> tuple[str, ...]:
    """Parameter-name prefixes of the language model that never receive a gradient in training.

    In pi0's joint attention only the expert's (suffix) outputs reach the loss; the prefix tokens feed the last
    layer through their keys and values alone, so that layer's query / output projections, post-attention norm
    and MLP, and the language model's final norm, are never used by the loss (openpi and lerobot compute them
    anyway and discard the result). They stay in the module so PaliGemma / lerobot checkpoints load unchanged and
    :meth:`PI0Policy.language_logits` works, but are frozen, so DDP runs with ``find_unused_parameters=False``.
    """
    last = f"language_model.layers.{vlm_depth - 1}."
    return (
        f"{last}self_attn.q_proj.",
        f"{last}self_attn.o_proj.",
        f"{last}post_attention_layernorm.",
        f"{last}mlp.",
        "language_model.norm.",
    )


def apply_freeze_filter(
    model: nn.Module, *, vlm_lora: bool, expert_lora: bool, train_vision_tower: bool, vlm_depth: int
) -> None:
    """Set ``requires_grad`` on every parameter of ``model`` with :func:`is_trainable`; parameters under
    :func:`unused_language_model_prefixes` are always frozen."""
    unused = unused_language_model_prefixes(vlm_depth)
    for name, param in model.named_parameters():
        param.requires_grad_(
            not name.startswith(unused)
            and is_trainable(
                name, vlm_lora=vlm_lora, expert_lora=expert_lora, train_vision_tower=train_vision_tower
            )
        )


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters of ``model`` (only those with ``requires_grad`` when ``trainable_only``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
