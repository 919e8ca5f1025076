"""Load pi0 / pi0.5 weights from lerobot, Hugging Face PaliGemma and depi checkpoints by key mapping.

Layouts (``layout=``):

* ``"lerobot"``: ``model.safetensors`` of ``lerobot/pi0_base`` / ``lerobot/pi05_base`` and policies saved by lerobot
  >= 0.4 (``PI0Policy`` / ``PI05Policy``), keys ``model.paligemma_with_expert.paligemma.model.language_model.
  layers.0.self_attn.q_proj.weight``, ``model.paligemma_with_expert.gemma_expert.model.layers.0...``,
  ``model.paligemma_with_expert.paligemma.model.vision_tower.vision_model...``, ``model.action_in_proj.weight``.
* ``"paligemma"``: a transformers ``PaliGemmaForConditionalGeneration`` checkpoint, either the hub layout of
  ``google/paligemma-3b-pt-224`` (``language_model.model.layers...``, ``vision_tower.vision_model...``,
  ``multi_modal_projector.linear...``, possibly sharded with ``model.safetensors.index.json``) or the layout
  transformers 5 writes (``model.language_model.layers...``, ``model.vision_tower...``). Only the vision tower,
  projector and language model are filled; the action expert and flow-matching heads keep their initialisation.
* ``"depi"``: what :meth:`PI0Policy.save_pretrained` writes (keys equal to the module's ``state_dict``).

depi fuses projections that read the same input (``self_attn.qkv_proj`` = q, k, v; ``mlp.gate_up_proj`` = gate, up;
SigLIP's ``self_attn.qkv_proj``). Checkpoints that store them separately (all three layouts above, and depi
checkpoints written before the fusion) load into the rows of the fused tensor: every fused parameter is also
addressable by its per-projection name (``...self_attn.q_proj.weight`` -> rows 0:N*E of ``...self_attn.qkv_proj.weight``,
see :func:`load_targets`).

Every load returns a :class:`LoadReport`: loaded keys, missing ones (left at initialisation), unexpected ones,
re-initialised ones (shape mismatch, e.g. action projections for another action_dim), and known extras that are
ignored (the expert's unused LM head, the tied ``lm_head``). It is logged; with ``strict=True`` any missing,
unexpected or re-initialised key raises :class:`WeightLoadError` and nothing is changed in the model.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn

from depi.policies.pi0.lora import LoRALinear

logger = logging.getLogger(__name__)

LAYOUTS = ("auto", "lerobot", "paligemma", "depi")
_LEROBOT = "model.paligemma_with_expert."


class WeightLoadError(ValueError):
    """A checkpoint does not match the model (raised with ``strict=True`` or for unreadable files)."""


@dataclass
class LoadReport:
    """Outcome of :func:`load_weights`; key names are the model's (after mapping) unless stated."""

    source: str
    layout: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)  # checkpoint keys (original names)
    reinitialized: list[str] = field(default_factory=list)  # "key: checkpoint (a, b) vs model (c, d)"
    ignored: list[str] = field(default_factory=list)  # checkpoint keys known to be unused
    new_lora: list[str] = field(default_factory=list)  # LoRA adapters absent from a checkpoint without LoRA

    @property
    def ok(self) -> bool:
        """True when every model key was loaded (LoRA adapters may be new) and nothing was unexpected."""
        return not (self.missing or self.unexpected or self.reinitialized)

    def summary(self) -> str:
        """One-paragraph human-readable summary with up to 10 names per list."""
        parts = [f"{self.source} ({self.layout} layout): loaded {len(self.loaded)} tensors"]
        for name in ("missing", "unexpected", "reinitialized", "ignored", "new_lora"):
            items = getattr(self, name)
            if items:
                more = f" ... (+{len(items) - 10} more)" if len(items) > 10 else ""
                parts.append(f"{name} {len(items)}: {', '.join(items[:10])}{more}")
        return "; ".join(parts)


def _vision_key(rest: str) -> str:
    return "vision_tower." + rest.removeprefix("vision_model.")


def map_lerobot_key(key: str, is_pi05: bool) -> str | None:
    """lerobot PI0Policy / PI05Policy key -> depi key; None for known unused keys (expert / tied LM heads).

    Keys without lerobot's leading ``model.`` (openpi's PyTorch ``PI0Pytorch`` state dict) are accepted too.
    Unknown keys are returned unchanged and later reported as unexpected.
    """
    key = key if key.startswith("model.") else "model." + key
    if key.startswith(_LEROBOT):
        rest = key.removeprefix(_LEROBOT)
        if rest in (
            "paligemma.lm_head.weight",
            "paligemma.language_model.lm_head.weight",
            "gemma_expert.lm_head.weight",
        ):
            return None
        # transformers >= 4.52 layout first, then the older one (lerobot < 0.4 checkpoints).
        mapped = _replace_prefix(rest, _LEROBOT_PREFIXES)
        return key if mapped is None else mapped
    rest = key.removeprefix("model.")
    # Older lerobot / openpi conversions name pi0's MLP time_mlp_* and pi0.5's action_time_mlp_*.
    if is_pi05:
        rest = re.sub(r"^action_time_mlp_(in|out)\.", r"time_mlp_\1.", rest)
    else:
        rest = re.sub(r"^time_mlp_(in|out)\.", r"action_time_mlp_\1.", rest)
    return rest


def map_paligemma_key(key: str, is_pi05: bool) -> str | None:
    """transformers PaliGemma key (hub 4.x layout or transformers 5 layout) -> depi key; None for ``lm_head``."""
    if key in ("lm_head.weight", "language_model.lm_head.weight"):
        return None
    mapped = _replace_prefix(key, _PALIGEMMA_PREFIXES)
    return key if mapped is None else mapped


_LEROBOT_PREFIXES = (
    ("paligemma.model.vision_tower.", None),
    ("paligemma.model.multi_modal_projector.linear.", "multi_modal_projector."),
    ("paligemma.model.language_model.", "language_model."),
    ("paligemma.vision_tower.", None),
    ("paligemma.multi_modal_projector.linear.", "multi_modal_projector."),
    ("paligemma.language_model.model.", "language_model."),
    ("gemma_expert.model.", "action_expert."),
)
_PALIGEMMA_PREFIXES = (
    ("model.vision_tower.", None),
    ("vision_tower.", None),
    ("model.multi_modal_projector.linear.", "multi_modal_projector."),
    ("multi_modal_projector.linear.", "multi_modal_projector."),
    ("model.language_model.", "language_model."),
    ("language_model.model.", "language_model."),
)


def _replace_prefix(key: str, table: tuple[tuple[str, str | None], ...]) -> str | None:
    """``key`` with its first matching prefix of ``table`` replaced by the target (None: the tail is a vision
    tower key, see :func:`_vision_key`); None when no prefix matches."""
    for prefix, target in table:
        if key.startswith(prefix):
            tail = key.removeprefix(prefix)
            return _vision_key(tail) if target is None else target + tail
    return None


def _identity(key: str, is_pi05: bool) -> str | None:
    return key


_MAPPERS: dict[str, Callable[[str, bool], str | None]] = {
    "lerobot": map_lerobot_key,
    "paligemma": map_paligemma_key,
    "depi": _identity,
}


def checkpoint_files(path: str | Path) -> list[Path]:
    """The safetensors files of a checkpoint: a ``.safetensors`` file, or a directory with ``model.safetensors``
    or a sharded ``model.safetensors.index.json``.

    Raises:
        FileNotFoundError: nothing loadable at ``path`` (the message says what was looked for).
    """
    path = Path(path)
    if path.is_file() and path.suffix == ".safetensors":
        return [path]
    if (path / "model.safetensors").is_file():
        return [path / "model.safetensors"]
    index = path / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [path / s for s in shards]
    raise FileNotFoundError(
        f"No weights at {path}: expected a .safetensors file, or a directory with model.safetensors or "
        "model.safetensors.index.json (download with `huggingface-cli download <repo_id> --local-dir <dir>`)."
    )


def detect_layout(keys: list[str]) -> str:
    """Guess the checkpoint layout from its keys.

    Raises:
        WeightLoadError: the keys match none of the known layouts.
    """
    if any(k.startswith((_LEROBOT, _LEROBOT.removeprefix("model."))) for k in keys):
        return "lerobot"
    if any(k.startswith(("language_model.model.", "model.language_model.")) for k in keys):
        return "paligemma"
    if any(k.startswith(("language_model.layers.", "action_expert.")) for k in keys):
        return "depi"
    raise WeightLoadError(
        f"Unrecognised checkpoint layout (first keys: {keys[:5]}); pass layout= one of {LAYOUTS[1:]}."
    )


@dataclass(frozen=True)
class _Target:
    """Where a checkpoint tensor goes: ``rows`` of the model's ``key`` (all of it when None)."""

    key: str
    rows: slice | None
    shape: tuple[int, ...]


def load_targets(model: nn.Module) -> dict[str, _Target]:
    """Every name a checkpoint tensor may load into: the model's state-dict keys, plus one per-projection name for
    each segment of a fused :class:`~depi.policies.pi0.lora.LoRALinear` (``a.self_attn.q_proj.weight`` for the
    q rows of ``a.self_attn.qkv_proj.weight``, likewise ``bias``, ``lora_a`` and ``lora_b``)."""
    state = model.state_dict()
    targets = {k: _Target(k, None, tuple(v.shape)) for k, v in state.items()}
    for name, module in model.named_modules():
        if not isinstance(module, LoRALinear) or len(module.segment_names) < 2:
            continue
        parent = name.rpartition(".")[0]
        for param in ("weight", "bias", "lora_a", "lora_b"):
            key = f"{name}.{param}"
            if key not in state:
                continue
            for segment in module.segment_names:
                rows = module.segment_rows(segment, param)
                shape = (rows.stop - rows.start, *state[key].shape[1:])
                targets[f"{parent}.{segment}.{param}" if parent else f"{segment}.{param}"] = _Target(key, rows, shape)
    return targets


def load_weights(
    model: nn.Module, path: str | Path, *, layout: str = "auto", strict: bool = False
) -> LoadReport:
    """Copy a checkpoint's tensors into ``model`` (a :class:`~depi.policies.pi0.model.PI0Policy`) by key mapping.

    Tensors are read one at a time (memory-mapped) and cast to each parameter's dtype. A checkpoint tensor whose
    shape differs from the model's is not copied: the parameter keeps its initialisation and is listed in
    ``reinitialized``.

    Args:
        model: the policy to fill in place.
        path: a ``.safetensors`` file or a checkpoint directory (see :func:`checkpoint_files`).
        layout: ``"auto"``, ``"lerobot"``, ``"paligemma"`` or ``"depi"``.
        strict: raise instead of partially loading when anything is missing, unexpected or re-initialised.
    Returns:
        The :class:`LoadReport`, also logged (warning level when not ``ok``).
    Raises:
        FileNotFoundError, WeightLoadError (unknown layout; with ``strict``, any mismatch, nothing copied).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout={layout!r}; expected one of {LAYOUTS}.")
    files = checkpoint_files(path)
    handles = [safe_open(str(f), framework="pt") for f in files]
    owner = {k: h for h in handles for k in h.keys()}  # noqa: SIM118  (safe_open has no __iter__)
    if layout == "auto":
        layout = detect_layout(list(owner))
    is_pi05 = bool(getattr(getattr(model, "config", None), "is_pi05", False))
    mapper = _MAPPERS[layout]
    state = model.state_dict()
    targets = load_targets(model)
    report = LoadReport(source=str(path), layout=layout)
    plan: dict[str, str] = {}  # target name (model key or per-projection name) -> checkpoint key
    for ckpt_key, handle in owner.items():
        target = mapper(ckpt_key, is_pi05)
        if target is None:
            report.ignored.append(ckpt_key)
        elif target not in targets:
            report.unexpected.append(ckpt_key)
        else:
            found = tuple(handle.get_slice(ckpt_key).get_shape())
            expected = targets[target].shape
            if found != expected:
                report.reinitialized.append(f"{target}: checkpoint {found} vs model {expected}")
            else:
                plan[target] = ckpt_key
    embed = "language_model.embed_tokens.weight"
    tied = [
        k
        for k in report.ignored
        if k.endswith(("paligemma.lm_head.weight", "language_model.lm_head.weight")) or k == "lm_head.weight"
    ]
    if (
        embed in state
        and embed not in plan
        and tied
        and tuple(owner[tied[0]].get_slice(tied[0]).get_shape()) == tuple(state[embed].shape)
    ):
        plan[embed] = tied[0]  # PaliGemma ties the LM head to the token embedding
        report.ignored.remove(tied[0])
    has_lora = any(k.endswith((".lora_a", ".lora_b")) for k in plan)
    reinit = {r.split(":")[0] for r in report.reinitialized}
    parts: dict[str, list[str]] = {}  # fused model key -> its per-projection names
    for name, target in targets.items():
        if target.rows is not None:
            parts.setdefault(target.key, []).append(name)
    for key in state:
        if key in plan or key in reinit:
            continue
        # A fused tensor is complete when every projection in it was loaded or re-initialised.
        pending = [n for n in parts.get(key, [key]) if n not in plan and n not in reinit]
        for name in pending:
            if name.endswith((".lora_a", ".lora_b")) and not has_lora:
                report.new_lora.append(name)
            else:
                report.missing.append(name)
    if strict and not report.ok:
        raise WeightLoadError(f"Strict load refused, model unchanged: {report.summary()}")
    with torch.no_grad():
        for name, ckpt_key in plan.items():
            target = targets[name]
            dest = state[target.key] if target.rows is None else state[target.key][target.rows]
            dest.copy_(owner[ckpt_key].get_tensor(ckpt_key))
            report.loaded.append(name)
    (logger.info if report.ok else logger.warning)(report.summary())
    return report
