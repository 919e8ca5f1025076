"""Configuration of the pi0 / pi0.5 policies and their named presets.

Sizes follow openpi ``gemma.py: get_config`` (``gemma_2b``, ``gemma_300m``, and their ``_lora`` variants) and
the PaliGemma-3B-pt-224 SigLIP So400m/14 vision tower; flow-matching constants follow openpi ``pi0.py`` and
lerobot ``configuration_pi0.py``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from depi.constants import MAX_ACTION_DIM, MAX_STATE_DIM
from depi.policies.registry import PolicyConfig

PALIGEMMA_VOCAB_SIZE = 257152


@dataclass
class GemmaConfig:
    """One Gemma decoder stack (the 2B language model or the 300M action expert).

    ``width`` is the residual width, ``mlp_dim`` the GeGLU hidden size, ``num_kv_heads`` the grouped K/V heads
    (1 = multi-query attention as in Gemma 2B), ``lora_rank`` 0 disables LoRA (rank > 0 adds LoRA adapters of
    that rank and ``lora_alpha`` scale to the attention and MLP projections, openpi ``gemma_2b_lora``).
    """

    width: int = 2048
    depth: int = 18
    mlp_dim: int = 16_384
    num_heads: int = 8
    num_kv_heads: int = 1
    head_dim: int = 256
    vocab_size: int = PALIGEMMA_VOCAB_SIZE
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10_000.0
    lora_rank: int = 0
    lora_alpha: float = 0.0

    def __post_init__(self) -> None:
        for name in ("width", "depth", "mlp_dim", "num_heads", "num_kv_heads", "head_dim"):
            if getattr(self, name) <= 0:
                raise ValueError(f"GemmaConfig.{name} must be > 0, got {getattr(self, name)}.")
        if self.num_heads % self.num_kv_heads != 0:
            raise ValueError(
                f"GemmaConfig.num_heads ({self.num_heads}) must be a multiple of num_kv_heads ({self.num_kv_heads})."
            )
        if self.head_dim % 2 != 0:
            raise ValueError(f"GemmaConfig.head_dim must be even for rotary embeddings, got {self.head_dim}.")
        if self.lora_rank < 0:
            raise ValueError(f"GemmaConfig.lora_rank must be >= 0, got {self.lora_rank}.")


@dataclass
class SiglipConfig:
    """SigLIP vision tower; defaults are So400m/14 at 224 px (256 image tokens of width 1152)."""

    image_size: int = 224
    patch_size: int = 14
    width: int = 1152
    depth: int = 27
    mlp_dim: int = 4304
    num_heads: int = 16
    layer_norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size != 0:
            raise ValueError(
                f"SiglipConfig.image_size ({self.image_size}) must be a multiple of patch_size ({self.patch_size})."
            )
        if self.width % self.num_heads != 0:
            raise ValueError(
                f"SiglipConfig.width ({self.width}) must be a multiple of num_heads ({self.num_heads})."
            )

    @property
    def num_tokens(self) -> int:
        """Image tokens per camera: (image_size / patch_size) ** 2."""
        return (self.image_size // self.patch_size) ** 2


def gemma_2b(lora: bool = False) -> GemmaConfig:
    """Gemma 2B (openpi ``gemma_2b``; ``gemma_2b_lora`` with rank 16, alpha 16)."""
    return GemmaConfig(lora_rank=16 if lora else 0, lora_alpha=16.0 if lora else 0.0)


def gemma_300m(lora: bool = False) -> GemmaConfig:
    """Gemma 300M action expert (openpi ``gemma_300m``; ``gemma_300m_lora`` with rank 32, alpha 32)."""
    return GemmaConfig(
        width=1024, mlp_dim=4096, lora_rank=32 if lora else 0, lora_alpha=32.0 if lora else 0.0
    )


@PolicyConfig.register_subclass("pi0")
@dataclass
class PI0Config(PolicyConfig):
    """pi0 policy (arXiv 2410.24164): PaliGemma prefix + flow-matching action expert with a state token.

    Attributes:
        vision, vlm, expert: sizes of the SigLIP tower, the PaliGemma language model and the action expert.
        action_horizon: H, actions per chunk (openpi ``action_horizon``, lerobot ``chunk_size``).
        action_dim / state_dim: padded action and observation.state sizes (32).
        num_steps: Euler denoising steps at inference.
        time_beta_alpha, time_beta_beta, time_scale, time_offset: flow-matching time t = Beta(a, b) * scale + offset.
        min_period, max_period: sinusoidal time-embedding periods (openpi ``posemb_sincos``).
        mask_loss: True averages the squared error over real action dims and non-padded steps only; False
            reproduces openpi's plain mean over all H x 32 entries.
        train_vision_tower: False freezes SigLIP and its projector.
        gradient_checkpointing: recompute each decoder layer in the backward pass.
        max_token_len: prompt length the transforms pad to (openpi: 48 for pi0, 200 for pi0.5).
    """

    policy_class = "depi.policies.pi0.model:PI0Policy"

    vision: SiglipConfig = field(default_factory=SiglipConfig)
    vlm: GemmaConfig = field(default_factory=gemma_2b)
    expert: GemmaConfig = field(default_factory=gemma_300m)
    action_horizon: int = 50
    action_dim: int = MAX_ACTION_DIM
    state_dim: int = MAX_STATE_DIM
    num_steps: int = 10
    time_beta_alpha: float = 1.5
    time_beta_beta: float = 1.0
    time_scale: float = 0.999
    time_offset: float = 0.001
    min_period: float = 4e-3
    max_period: float = 4.0
    mask_loss: bool = True
    train_vision_tower: bool = True
    gradient_checkpointing: bool = False
    max_token_len: int = 48

    def __post_init__(self) -> None:
        for name in ("action_horizon", "action_dim", "state_dim", "num_steps", "max_token_len"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{type(self).__name__}.{name} must be > 0, got {getattr(self, name)}.")
        if self.vlm.depth != self.expert.depth:
            raise ValueError(
                f"vlm.depth ({self.vlm.depth}) and expert.depth ({self.expert.depth}) must match: the two streams "
                "share attention layer by layer."
            )
        shared = ("num_heads", "num_kv_heads", "head_dim")
        if any(getattr(self.vlm, n) != getattr(self.expert, n) for n in shared):
            raise ValueError(
                f"vlm and expert must share {shared} to attend jointly; got vlm="
                f"{[getattr(self.vlm, n) for n in shared]}, expert={[getattr(self.expert, n) for n in shared]}."
            )
        if self.expert.width % 2 != 0:
            raise ValueError(
                f"expert.width must be even for the sinusoidal time embedding, got {self.expert.width}."
            )

    @property
    def is_pi05(self) -> bool:
        """True for pi0.5 (adaptive RMSNorm time conditioning, state in the prompt, no state token)."""
        return self.type == "pi05"


@PolicyConfig.register_subclass("pi05")
@dataclass
class PI05Config(PI0Config):
    """pi0.5: the expert's RMSNorms are modulated by the flow-matching time (adaRMS), the state is discretised
    into 256 bins inside the prompt by the transforms, and there is no state token (openpi ``pi0.py`` with
    ``pi05=True``)."""

    max_token_len: int = 200


def _tiny_sizes() -> dict[str, Any]:
    # 8 heads as in Gemma so that layouts stay interchangeable with the reference implementations.
    return {
        "vision": SiglipConfig(width=32, depth=2, mlp_dim=64, num_heads=2),
        "vlm": GemmaConfig(width=32, depth=2, mlp_dim=64, num_heads=8, num_kv_heads=1, head_dim=16),
        "expert": GemmaConfig(width=32, depth=2, mlp_dim=64, num_heads=8, num_kv_heads=1, head_dim=16),
        "action_horizon": 10,
    }


def _lora_sizes() -> dict[str, Any]:
    return {"vlm": gemma_2b(lora=True), "expert": gemma_300m(lora=True), "train_vision_tower": False}


PRESETS: dict[str, tuple[type[PI0Config], Any]] = {
    "pi0": (PI0Config, dict),
    "pi05": (PI05Config, dict),
    "pi0_lora": (PI0Config, _lora_sizes),
    "pi05_lora": (PI05Config, _lora_sizes),
    "tiny": (PI0Config, _tiny_sizes),
    "tiny_pi05": (PI05Config, _tiny_sizes),
}


def make_config(name: str, **overrides: Any) -> PI0Config:
    """Build a named preset, then apply field overrides (e.g. ``make_config("tiny", action_horizon=4)``).

    Presets: ``pi0``, ``pi05`` (full fine-tune), ``pi0_lora``, ``pi05_lora`` (LoRA rank 16 on the 2B, rank 32 on
    the expert, vision tower frozen), ``tiny``, ``tiny_pi05`` (a few-layer model for tests and CPU runs; the
    vocabulary stays PaliGemma's so real prompt token ids fit).

    Raises:
        KeyError: unknown preset name (the message lists them).
        TypeError: an override names no field of the config.
    """
    if name not in PRESETS:
        raise KeyError(f"Unknown pi0 preset {name!r}; available presets: {sorted(PRESETS)}.")
    cls, sizes = PRESETS[name]
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise TypeError(f"make_config({name!r}): unknown field(s) {unknown}; fields are {sorted(fields)}.")
    return cls(**{**sizes(), **overrides})


def config_to_dict(config: PI0Config) -> dict[str, Any]:
    """JSON-ready dict of ``config`` with its registered ``type`` (the layout of depi's ``config.json``)."""
    return {"type": config.type, **dataclasses.asdict(config)}


def config_from_dict(data: dict[str, Any], source: str = "config.json") -> PI0Config:
    """Inverse of :func:`config_to_dict`.

    Raises:
        ValueError: ``type`` is missing or not a pi0 type, or a field is unknown (the message names ``source``).
    """
    kind = data.get("type")
    classes = {"pi0": PI0Config, "pi05": PI05Config}
    if kind not in classes:
        raise ValueError(f"{source}: field 'type' is {kind!r}; expected one of {sorted(classes)}.")
    cls = classes[kind]
    values = {k: v for k, v in data.items() if k != "type"}
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ValueError(
            f"{source}: unknown field(s) {unknown} for policy type {kind!r}; known: {sorted(fields)}."
        )
    nested = {"vision": SiglipConfig, "vlm": GemmaConfig, "expert": GemmaConfig}
    for name, sub in nested.items():
        if isinstance(values.get(name), dict):
            values[name] = sub(**values[name])
    return cls(**values)
