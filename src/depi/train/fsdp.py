"""Fully sharded data parallel training (FSDP2, ``torch.distributed.fsdp.fully_shard``), on GPUs and on the CPU.

The launch asks for FSDP through accelerate: ``accelerate launch --config_file configs/accelerate/fsdp.yaml``
exports the config's ``fsdp_*`` fields as ``ACCELERATE_USE_FSDP`` / ``FSDP_*`` environment variables, which
:func:`fsdp_settings_from_launch` reads with accelerate's own parser (``FullyShardedDataParallelPlugin``).
depi then shards the model itself with :func:`shard_model`, the same code on every device: accelerate 1.15
turns FSDP on only for GPU-like devices (with ``cpu=True`` it silently falls back to DDP), while
``fully_shard`` runs on a CPU device mesh over gloo as well, which is how the tests exercise this path.

Each rank keeps a 1/W slice (dim 0) of every parameter as a ``DTensor`` (W = number of processes); a unit's
full weights are all-gathered when its ``forward`` starts and freed after it, gradients are reduce-scattered.
Checkpoints hold full tensors (:mod:`depi.train.checkpoint`), so they load without FSDP and on another W.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from accelerate.utils import FullyShardedDataParallelPlugin, parse_flag_from_env
from torch import nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import (
    CPUOffloadPolicy,
    FSDPModule,
    MixedPrecisionPolicy,
    OffloadPolicy,
    fully_shard,
)
from torch.distributed.tensor import DTensor, distribute_tensor

logger = logging.getLogger(__name__)

CONFIG_HINT = "configs/accelerate/fsdp.yaml"


@dataclass(frozen=True)
class FSDPSettings:
    """What depi takes from the accelerate FSDP config.

    Attributes:
        unit_classes: Class names of the modules sharded as their own units (``fsdp_transformer_layer_cls_to_wrap``);
            the root unit holds every parameter outside them.
        reshard_after_forward: Free a unit's gathered weights after its forward and gather them again in
            backward (``fsdp_reshard_after_forward``; ``false`` keeps them until backward, ZeRO-2 style).
        offload_params: Keep the shards and the optimizer step on the CPU (``fsdp_offload_params``).
    """

    unit_classes: tuple[str, ...]
    reshard_after_forward: bool
    offload_params: bool


def fsdp_settings_from_launch() -> FSDPSettings | None:
    """The FSDP settings exported by ``accelerate launch`` (``ACCELERATE_USE_FSDP=true``), or ``None`` without FSDP.

    Raises:
        ValueError: The config asks for something depi's FSDP path does not do; the message names the config
            field and the value to set.
    """
    if not parse_flag_from_env("ACCELERATE_USE_FSDP"):
        return None
    plugin = FullyShardedDataParallelPlugin()  # parses the FSDP_* variables as accelerate does
    problems = [
        (plugin.fsdp_version != 2,
         f"fsdp_version is {plugin.fsdp_version}; set fsdp_version: 2 (depi shards with FSDP2, fully_shard)"),
        (not plugin.transformer_cls_names_to_wrap,
         ("no fsdp_transformer_layer_cls_to_wrap; set fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP and list the "
          "unit classes (LoRALinear,SiglipEncoderLayer,Embedding for pi0 / pi0.5)")),
        (plugin.activation_checkpointing,
         ("fsdp_activation_checkpointing is true; set it to false and use --policy.gradient_checkpointing=true "
          "(the policy checkpoints its layers)")),
        (plugin.cpu_ram_efficient_loading,
         ("fsdp_cpu_ram_efficient_loading is true; set it to false (every rank builds the full policy, then keeps "
          "its shard)")),
        (plugin.state_dict_type.name != "FULL_STATE_DICT",
         f"fsdp_state_dict_type is {plugin.state_dict_type.name}; set FULL_STATE_DICT (checkpoints hold full tensors)"),
    ]
    found = [message for bad, message in problems if bad]
    if found:
        raise ValueError(f"FSDP launch config ({CONFIG_HINT} or the accelerate flags): " + "; ".join(found) + ".")
    return FSDPSettings(
        unit_classes=tuple(plugin.transformer_cls_names_to_wrap),
        reshard_after_forward=bool(plugin.reshard_after_forward),
        offload_params=isinstance(plugin.cpu_offload, CPUOffloadPolicy),
    )


def unit_modules(model: nn.Module, class_names: tuple[str, ...]) -> list[nn.Module]:
    """The modules of ``model`` whose class name is in ``class_names``, innermost first.

    Raises:
        ValueError: A name matches no module class of ``model`` (a misspelt or foreign class).
    """
    present = {type(m).__name__ for m in model.modules()}
    missing = [name for name in class_names if name not in present]
    if missing:
        raise ValueError(
            f"fsdp_transformer_layer_cls_to_wrap names {missing}, which are no module class of "
            f"{type(model).__name__} (classes found: {sorted(present)}); fix the list in {CONFIG_HINT}."
        )
    return [m for m in reversed(list(model.modules())) if type(m).__name__ in class_names]


def shard_model(
    model: nn.Module, settings: FSDPSettings, *, device: torch.device, num_processes: int, mixed_precision: str
) -> FSDPModule:
    """Shard ``model`` in place over all processes: one FSDP unit per module of ``settings.unit_classes``, the root.

    Call it on every rank with identical full weights (same seed / checkpoint), before building the optimizer:
    the parameters become new ``DTensor`` parameters (same names and ``requires_grad``, so LoRA and frozen
    towers mix freely inside a unit). Under ``mixed_precision="bf16"`` the units gather bfloat16 weights and
    reduce float32 gradients (``MixedPrecisionPolicy``); float inputs are not cast, autocast does the rest.

    Args:
        model: The module whose ``forward`` the loop calls (the loss module around the policy).
        settings: From :func:`fsdp_settings_from_launch`.
        device: This rank's device; its type names the device mesh (``cuda``, or ``cpu`` over gloo).
        num_processes: W, the size of the 1-D mesh.
        mixed_precision: ``no`` or ``bf16``.

    Returns:
        ``model`` itself, now an ``FSDPModule``.

    Raises:
        ValueError: A unit class name matches no module of ``model``.
    """
    units = unit_modules(model, settings.unit_classes)
    mesh = init_device_mesh(device.type, (num_processes,))
    policy = MixedPrecisionPolicy()
    if mixed_precision == "bf16":
        policy = MixedPrecisionPolicy(
            param_dtype=torch.bfloat16, reduce_dtype=torch.float32, cast_forward_inputs=False
        )
    kwargs = {
        "mesh": mesh,
        "mp_policy": policy,
        "offload_policy": CPUOffloadPolicy() if settings.offload_params else OffloadPolicy(),
    }
    for unit in units:
        fully_shard(unit, reshard_after_forward=settings.reshard_after_forward, **kwargs)
    fully_shard(model, **kwargs)  # the root keeps its weights gathered from forward to backward (torch's default)
    logger.info(
        "FSDP2 over %d processes (%s mesh): %d units of %s plus the root unit.",
        num_processes, device.type, len(units), ", ".join(settings.unit_classes),
    )
    return model


def is_sharded(module: nn.Module) -> bool:
    """True when ``module`` holds ``DTensor`` parameters (it was sharded by :func:`shard_model`)."""
    return any(isinstance(p, DTensor) for p in module.parameters())


def full_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """The full tensor of a ``DTensor`` (collective: every rank of its mesh must call), a plain tensor as is."""
    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


def distribute_like(full: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``full`` placed as ``like``: this rank's slice as a ``DTensor`` when ``like`` is one, else ``full`` itself.

    Every rank passes the same full tensor (read from the same file); no communication happens.
    """
    if not isinstance(like, DTensor):
        return full
    return distribute_tensor(
        full.to(device=like.device, dtype=like.dtype), like.device_mesh, like.placements, src_data_rank=None
    )
