"""Optimizer, learning-rate schedule, gradient clipping and EMA of the trainable weights."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
from torch import nn

from depi.train.config import OptimConfig
from depi.train.fsdp import distribute_like, full_tensor


def cosine_lr(step: int, cfg: OptimConfig) -> float:
    """Learning rate after ``step`` optimizer steps: linear warmup, then cosine decay to ``decay_lr``.

    Follows openpi's ``CosineDecaySchedule`` (optax ``warmup_cosine_decay_schedule``): the warmup starts at
    ``peak_lr / (warmup_steps + 1)`` and reaches ``peak_lr`` at ``warmup_steps``; the cosine then goes from
    ``peak_lr`` to ``decay_lr`` at ``decay_steps`` (counted from step 0, warmup included) and stays there.
    """
    if step < cfg.warmup_steps:
        init = cfg.peak_lr / (cfg.warmup_steps + 1)
        return init + (cfg.peak_lr - init) * step / cfg.warmup_steps
    span = max(cfg.decay_steps - cfg.warmup_steps, 1)
    progress = min((step - cfg.warmup_steps) / span, 1.0)
    return cfg.decay_lr + (cfg.peak_lr - cfg.decay_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    """AdamW over the parameters with ``requires_grad`` (LoRA presets freeze the rest).

    Weight decay applies to matrices and embeddings (``ndim >= 2``), not to biases and norm scales
    (nanoGPT's grouping). The initial ``lr`` is ``peak_lr``; :func:`build_scheduler` scales it.

    Raises:
        ValueError: The model has no trainable parameter.
    """
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.ndim >= 2 else no_decay).append(param)
    if not decay and not no_decay:
        raise ValueError(
            "The policy has no trainable parameter (all have requires_grad=False): check the policy preset's "
            "freeze filter (--policy.preset)."
        )
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.peak_lr, betas=cfg.betas, eps=cfg.eps)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` giving :func:`cosine_lr`; step it once per optimizer step, never per micro-batch."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: cosine_lr(step, cfg) / cfg.peak_lr)


def clip_grad_norm(model: nn.Module, max_norm: float, accelerator) -> torch.Tensor:
    """Clip the global L2 norm of the gradients to ``max_norm`` (``0``: only measure).

    Under FSDP the gradients are ``DTensor`` shards and the norm is that of the full gradients (every rank
    calls this). Returns the norm before clipping as a plain 0-d tensor on the gradients' device (no host sync).
    """
    params = [p for p in model.parameters() if p.grad is not None]
    if max_norm > 0:
        norm = accelerator.clip_grad_norm_(params, max_norm)
    else:
        norm = torch.nn.utils.get_total_norm([p.grad for p in params])
    return full_tensor(norm)


class EMA:
    """Exponential moving average of the trainable weights, ``ema = decay * ema + (1 - decay) * w``.

    As openpi's ``ema_decay`` option: updated after every optimizer step, kept in float32, saved with the
    checkpoint; :meth:`swapped_in` puts the averaged weights in the model (to save or evaluate them).

    Under FSDP, build it from the sharded model: each rank then averages its own ``DTensor`` shards;
    :meth:`state_dict` gives those shards (:func:`depi.train.checkpoint.save_checkpoint` gathers them) and
    :meth:`load_state_dict` takes full tensors.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.names = [name for name, p in model.named_parameters() if p.requires_grad]
        params = dict(model.named_parameters())
        self.shadow = {name: params[name].detach().float().clone() for name in self.names}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Blend the model's current trainable weights into the average."""
        params = dict(model.named_parameters())
        current = [params[name].detach().float() for name in self.names]
        torch._foreach_lerp_(list(self.shadow.values()), current, 1.0 - self.decay)

    @contextlib.contextmanager
    @torch.no_grad()
    def swapped_in(self, model: nn.Module) -> Iterator[None]:
        """Temporarily copy the averaged weights into ``model``; the live weights come back on exit."""
        params = dict(model.named_parameters())
        live = {name: params[name].detach().clone() for name in self.names}
        for name in self.names:
            params[name].copy_(self.shadow[name])
        try:
            yield
        finally:
            for name in self.names:
                params[name].copy_(live[name])

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The averaged weights by parameter name (float32; this rank's ``DTensor`` shards under FSDP)."""
        return dict(self.shadow)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore the averaged weights from full tensors (each rank keeps its slice under FSDP).

        Raises:
            KeyError: ``state`` lacks or adds parameters compared with the model's trainable ones.
        """
        if set(state) != set(self.names):
            missing, extra = sorted(set(self.names) - set(state)), sorted(set(state) - set(self.names))
            raise KeyError(f"EMA state does not match the trainable parameters: missing {missing}, extra {extra}.")
        for name in self.names:
            self.shadow[name].copy_(distribute_like(state[name], self.shadow[name]))
