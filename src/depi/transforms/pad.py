"""Zero-padding of ``state`` and ``actions`` to the model's fixed dims (32), with ``action_dim_mask``.

openpi's ``PadStatesAndActions`` pads with zeros; the mask (True on the dataset's real action dims) lets the
flow-matching loss ignore the padded dims when datasets of different action dims are mixed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from depi.constants import ACTION_DIM_MASK, ACTIONS, MAX_ACTION_DIM, MAX_STATE_DIM, STATE
from depi.transforms.base import Array, Sample, Transform, as_float_array, register_transform, require


def pad_to_dim(x: Array, dim: int, key: str) -> torch.Tensor:
    """Zero-pad the last axis of ``x`` to ``dim`` entries; returns a float32 torch tensor.

    Raises:
        ValueError: ``x`` already has more than ``dim`` entries on its last axis.
    """
    t = torch.as_tensor(as_float_array(x, key)).to(torch.float32)
    if t.shape[-1] > dim:
        raise ValueError(
            f"sample['{key}'] has {t.shape[-1]} dims, more than the model's {dim}; raise the model's "
            f"max dim or drop dims in the dataset's feature map."
        )
    return _append_zeros(t, dim)


def _append_zeros(t: torch.Tensor, dim: int) -> torch.Tensor:
    """``t`` with zeros (False for bool) appended on the last axis up to ``dim`` entries."""
    if t.shape[-1] == dim:
        return t
    zeros = torch.zeros(*t.shape[:-1], dim - t.shape[-1], dtype=t.dtype, device=t.device)
    return torch.cat([t, zeros], dim=-1)


@register_transform("pad_state_actions")
@dataclass(frozen=True)
class PadStateActions(Transform):
    """Pad ``state`` to ``state_dim`` and ``actions`` to ``action_dim`` with zeros; add ``action_dim_mask``.

    Sample keys: reads ``state`` float (S,) and optional ``actions`` float (H, A) and ``action_dim_mask``;
    writes ``state`` float32 (state_dim,), ``actions`` (H, action_dim) and ``action_dim_mask`` bool
    (action_dim,): True on the first A dims. A mask already in the sample (the mixture's, for an already
    padded sample) is kept, padded with False. Without ``actions`` (serving) the mask covers the real
    action dims only if the sample already carries it; otherwise it is left out.

    Attributes:
        state_dim: Model state dim (32).
        action_dim: Model action dim (32).

    Raises:
        KeyError: No ``state`` in the sample.
        ValueError: A feature is wider than the model's dim.
    """

    state_dim: int = MAX_STATE_DIM
    action_dim: int = MAX_ACTION_DIM

    def __call__(self, sample: Sample) -> Sample:
        out = dict(sample)
        out[STATE] = pad_to_dim(require(sample, STATE, "PadStateActions"), self.state_dim, STATE)
        mask = sample.get(ACTION_DIM_MASK)
        if ACTIONS in sample:
            real_dim = int(np.shape(sample[ACTIONS])[-1])
            out[ACTIONS] = pad_to_dim(sample[ACTIONS], self.action_dim, ACTIONS)
            if mask is None:
                mask = torch.arange(self.action_dim) < real_dim
        if mask is not None:
            mask = torch.as_tensor(mask, dtype=torch.bool)
            if mask.shape[-1] > self.action_dim:
                raise ValueError(
                    f"sample['{ACTION_DIM_MASK}'] has {mask.shape[-1]} entries, more than the model's "
                    f"action dim {self.action_dim}."
                )
            out[ACTION_DIM_MASK] = _append_zeros(mask, self.action_dim)
        return out
