"""LoRA adapters and the trainable-parameter filter of the pi0 presets.

LoRA (Hu et al. 2021, arXiv 2106.09685): y = x W^T + b + (alpha / rank) * (x A^T) B^T, with A (rank, in) drawn
from N(0, 0.01^2) and B (out, rank) zero, so the adapted model starts equal to the base model (openpi
``models/lora.py`` initialisation). openpi's ``gemma_2b_lora`` / ``gemma_300m_lora`` put the adapters on the
attention (q, k, v, output) and MLP (gate, up, down) projections; :class:`LoRALinear` keeps the base weight under
the key of the (fused) projection (``qkv_proj.weight``) and adds ``qkv_proj.lora_a`` / ``qkv_proj.lora_b``, one
adapter per fused projection.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Trainable heads of the policy (flow-matching projections and time MLPs), never frozen by the LoRA filter.
HEAD_PREFIXES = ("state_proj.", "action_in_proj.", "action_out_proj.", "action_time_mlp_", "time_mlp_")
VISION_PREFIXES = ("vision_tower.", "multi_modal_projector.")


class LoRALinear(nn.Linear):
    """``nn.Linear`` plus an optional low-rank update, optionally made of several fused projections.

    Args:
        in_features, out_features, bias: as ``nn.Linear``.
        rank: LoRA rank r (0 = plain linear layer, no adapter parameters).
        alpha: LoRA alpha; the update is scaled by alpha / rank.
        segments: ``((name, out_size), ...)`` when the layer fuses several projections of the same input along
            its outputs (Gemma's q/k/v as ``qkv_proj``, gate/up as ``gate_up_proj``): one matrix multiply instead
            of several. The sizes must add up to ``out_features``. Each segment keeps its own LoRA adapter, as if the
            projections were separate layers: ``lora_a`` stacks one (rank, in) block per segment, ``lora_b`` holds
            the (out_size, rank) block of each segment in its output rows. :meth:`segment_rows` gives where a
            segment lives in each parameter (checkpoints with separate ``q_proj`` / ``k_proj`` ... load by slice).

    Shapes: input (..., in_features) -> output (..., out_features), any float dtype.

    Raises:
        ValueError: the segment sizes do not add up to ``out_features``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        rank: int = 0,
        alpha: float = 0.0,
        segments: tuple[tuple[str, int], ...] | None = None,
    ):
        super().__init__(in_features, out_features, bias=bias)
        segments = segments or (("", out_features),)
        if sum(size for _, size in segments) != out_features:
            raise ValueError(f"LoRALinear segments {segments} do not add up to out_features={out_features}.")
        self.segment_names = tuple(name for name, _ in segments)
        self.segment_sizes = tuple(size for _, size in segments)
        self.segment_starts = tuple(sum(self.segment_sizes[:i]) for i in range(len(segments)))
        self.rank = rank
        self.scaling = alpha / rank if rank > 0 else 0.0
        if rank > 0:
            self.lora_a = nn.Parameter(torch.randn(rank * len(segments), in_features) * 0.01)
            self.lora_b = nn.Parameter(torch.zeros(out_features, rank))

    def segment_rows(self, name: str, param: str) -> slice:
        """Rows of parameter ``param`` ("weight", "bias", "lora_a", "lora_b") that belong to segment ``name``.

        Raises:
            KeyError: no segment of that name.
        """
        if name not in self.segment_names:
            raise KeyError(f"{name!r} is not a segment of this layer (segments: {self.segment_names}).")
        i = self.segment_names.index(name)
        if param == "lora_a":
            return slice(i * self.rank, (i + 1) * self.rank)
        return slice(self.segment_starts[i], self.segment_starts[i] + self.segment_sizes[i])

    def forward(self, x: torch.Tensor, first_segment: int = 0) -> torch.Tensor:
        """Outputs of segments ``first_segment`` onwards, (..., sum of their sizes); 0 gives all outputs.

        Skipping leading segments computes (and backpropagates into) only the remaining rows of the weight: the
        language model's last layer needs keys and values only, the rows after the queries of ``qkv_proj``.
        """
        start = self.segment_starts[first_segment]
        weight = self.weight if start == 0 else self.weight[start:]
        bias = None if self.bias is None else self.bias[start:]
        y = F.linear(x, weight, bias)
        if self.rank == 0:
            return y
        r = self.rank
        low = F.linear(x, self.lora_a[first_segment * r :])  # (..., rank per remaining segment)
        if len(self.segment_names) - first_segment == 1:
            return y + F.linear(low, self.lora_b[start:]) * self.scaling
        ups = [
            F.linear(low[..., j * r : (j + 1) * r], self.lora_b[s : s + n])
            for j, (s, n) in enumerate(
                zip(self.segment_starts[first_segment:], self.segment_sizes[first_segment:], strict=True)
            )
        ]
        return y + torch.cat(ups, dim=-1) * self.scaling

    def extra_repr(self) -> str:
        segments = f", segments={dict(zip(self.segment_names, self.segment_sizes, strict=True))}"
        return f"{super().extra_repr()}, rank={self.rank}, scaling={self.scaling}" + (
            segments if len(self.segment_names) > 1 else ""
        )


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
    layer through their keys and values alone, so that layer's queries, output projection, post-attention norm
    and MLP, and the language model's final norm, are never used by the loss (openpi and lerobot compute them
    anyway and discard the result). They stay in the module so PaliGemma / lerobot checkpoints load unchanged and
    :meth:`PI0Policy.language_logits` works, but are frozen, so DDP runs with ``find_unused_parameters=False``.
    The queries are rows of the fused ``qkv_proj`` whose key / value rows are trained: they are skipped in the
    forward pass and get zero gradients (AdamW's decoupled weight decay still applies to them).
    """
    last = f"language_model.layers.{vlm_depth - 1}."
    return (
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
