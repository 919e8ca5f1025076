"""Flow matching for action chunks (pi0 paper, arXiv 2410.24164, Sec. 3; openpi ``pi0.py``).

Convention (openpi): time t = 1 is pure noise, t = 0 the data. Training draws t ~ Beta(1.5, 1) * 0.999 + 0.001,
forms x_t = t * noise + (1 - t) * actions and regresses the velocity u = noise - actions. Sampling integrates
dx/dt = v(x_t, t) with forward Euler from t = 1 to t = 0 in ``num_steps`` steps of dt = -1 / num_steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


def sample_time(
    batch_size: int,
    *,
    alpha: float,
    beta: float,
    scale: float,
    offset: float,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Flow-matching times float32 (B,) in [offset, offset + scale]: Beta(alpha, beta) * scale + offset.

    The Beta draw uses two Gamma draws (X / (X + Y), X ~ Gamma(alpha), Y ~ Gamma(beta)) so a ``generator`` can
    make it reproducible.
    """
    a = torch.full((batch_size,), alpha, dtype=torch.float32, device=device)
    b = torch.full((batch_size,), beta, dtype=torch.float32, device=device)
    x = torch._standard_gamma(a, generator=generator)
    y = torch._standard_gamma(b, generator=generator)
    return (x / (x + y)) * scale + offset


def noisy_actions(
    actions: torch.Tensor, noise: torch.Tensor, time: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """x_t = t * noise + (1 - t) * actions and target velocity u = noise - actions.

    Args:
        actions, noise: float (B, H, A).
        time: float (B,).
    Returns:
        (x_t, u), both (B, H, A).
    """
    t = time[:, None, None]
    return t * noise + (1.0 - t) * actions, noise - actions


def flow_matching_loss(
    velocity: torch.Tensor,
    target: torch.Tensor,
    action_dim_mask: torch.Tensor | None = None,
    action_is_pad: torch.Tensor | None = None,
    *,
    masked: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean squared error between predicted and target velocities.

    Args:
        velocity, target: float (B, H, A).
        action_dim_mask: bool (B, A), True on the dataset's real action dims.
        action_is_pad: bool (B, H), True on chunk steps past the episode end.
        masked: True averages over entries with a real dim and a non-padded step only; False is openpi's plain
            mean over all B x H x A entries (the masks are then ignored).
    Returns:
        (scalar loss float32, per-entry squared error (B, H, A) float32).
    """
    err = (velocity.float() - target.float()).square()
    if not masked:
        return err.mean(), err
    weight = torch.ones_like(err)
    if action_dim_mask is not None:
        weight = weight * action_dim_mask[:, None, :].to(err.dtype)
    if action_is_pad is not None:
        weight = weight * (~action_is_pad)[:, :, None].to(err.dtype)
    return (err * weight).sum() / weight.sum().clamp_min(1.0), err


def per_sample_loss(
    err: torch.Tensor,
    action_dim_mask: torch.Tensor | None = None,
    action_is_pad: torch.Tensor | None = None,
    *,
    masked: bool = True,
) -> torch.Tensor:
    """Per-sample flow-matching loss float32 (B,) from the squared error (B, H, A) of :func:`flow_matching_loss`.

    Same weighting as the batch loss, averaged within each sample: with ``masked``, over the sample's real dims and
    non-padded steps (0 for a sample with none); otherwise over all H x A entries. Used for per-dataset loss.
    """
    if not masked:
        return err.mean(dim=(1, 2))
    weight = torch.ones_like(err)
    if action_dim_mask is not None:
        weight = weight * action_dim_mask[:, None, :].to(err.dtype)
    if action_is_pad is not None:
        weight = weight * (~action_is_pad)[:, :, None].to(err.dtype)
    return (err * weight).sum(dim=(1, 2)) / weight.sum(dim=(1, 2)).clamp_min(1.0)


def sinusoidal_time_embedding(
    time: torch.Tensor, dim: int, min_period: float, max_period: float
) -> torch.Tensor:
    """Sine-cosine embedding of scalar times (openpi ``posemb_sincos``), float (B,) -> float32 (B, dim).

    Periods are geometric from ``min_period`` to ``max_period``; the first half holds sines, the second cosines.
    Computed in float64 and returned as float32.

    Raises:
        ValueError: ``dim`` is odd or ``time`` is not 1-D.
    """
    if dim % 2 != 0:
        raise ValueError(f"Time embedding dim must be even, got {dim}.")
    if time.ndim != 1:
        raise ValueError(f"Time must be (B,), got shape {tuple(time.shape)}.")
    fraction = torch.linspace(0.0, 1.0, dim // 2, dtype=torch.float64, device=time.device)
    period = min_period * (max_period / min_period) ** fraction
    angle = (2.0 * math.pi / period)[None, :] * time.to(torch.float64)[:, None]
    return torch.cat([angle.sin(), angle.cos()], dim=1).float()


def euler_sample(
    velocity_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], noise: torch.Tensor, num_steps: int
) -> torch.Tensor:
    """Integrate from t = 1 (``noise``, (B, H, A)) to t = 0 with forward Euler, dt = -1 / num_steps.

    ``velocity_fn(x_t, t)`` gets x_t (B, H, A) and t float32 (B,) and returns v (B, H, A). The loop has a fixed
    trip count and no data-dependent control flow, so ``torch.compile`` unrolls it without graph breaks.
    """
    if num_steps <= 0:
        raise ValueError(f"num_steps must be > 0, got {num_steps}.")
    dt = -1.0 / num_steps
    x_t = noise
    batch = noise.shape[0]
    for step in range(num_steps):
        t = torch.full((batch,), 1.0 + step * dt, dtype=torch.float32, device=noise.device)
        x_t = x_t + dt * velocity_fn(x_t, t)
    return x_t
