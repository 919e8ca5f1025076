"""Delta / absolute action chunks relative to the current observation.state.

Follows openpi's ``DeltaActions`` / ``AbsoluteActions``: on the dims where ``mask`` is True,
``delta = actions - state`` (the state broadcast over the chunk's H steps); dims where ``mask`` is False
(grippers, typically) stay absolute, and dims past ``len(mask)`` are left untouched. The inverse adds the
state back, so ``AbsoluteActions(m)(DeltaActions(m)(x)) == x``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from depi.constants import ACTIONS, STATE
from depi.transforms.base import (
    Sample,
    Transform,
    as_float_array,
    as_like,
    copy_array,
    register_transform,
    require,
)


def make_bool_mask(*dims: int) -> tuple[bool, ...]:
    """Boolean mask from run lengths: a positive ``n`` gives ``n`` Trues, a negative ``-n`` gives ``n`` Falses.

    Same convention as openpi's ``make_bool_mask``: ``make_bool_mask(6, -1)`` is six delta joints and one
    absolute gripper, ``make_bool_mask(2, -2, 2) == (True, True, False, False, True, True)``.
    """
    mask: list[bool] = []
    for n in dims:
        mask.extend([n > 0] * abs(n))
    return tuple(mask)


def _shift_by_state(sample: Sample, mask: tuple[bool, ...], sign: float, name: str) -> Sample:
    if ACTIONS not in sample:
        return dict(sample)
    actions = as_float_array(sample[ACTIONS], ACTIONS)  # (..., H, A)
    state = as_float_array(require(sample, STATE, name), STATE)  # (..., S)
    dims = len(mask)
    if actions.shape[-1] < dims or state.shape[-1] < dims:
        raise ValueError(
            f"{name}: the mask covers {dims} dims but actions have {actions.shape[-1]} and state has "
            f"{state.shape[-1]}; the mask must not be longer than either (check delta_action_mask)."
        )
    keep = as_like(np.asarray(mask, dtype=np.float32), state)
    offset = (state[..., :dims] * keep)[..., None, :]  # (..., 1, dims), broadcast over the H chunk steps
    out = copy_array(actions)
    out[..., :dims] = actions[..., :dims] + sign * offset
    return {**sample, ACTIONS: out}


@dataclass(frozen=True)
class _StateShift(Transform):
    """``actions += sign * state`` on the masked dims (the shared body of the two transforms below)."""

    mask: tuple[bool, ...]
    sign: ClassVar[float] = -1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "mask", tuple(bool(m) for m in self.mask))

    def __call__(self, sample: Sample) -> Sample:
        return _shift_by_state(sample, self.mask, self.sign, type(self).__name__)


@register_transform("delta_actions")
@dataclass(frozen=True)
class DeltaActions(_StateShift):
    """Absolute action chunk -> delta from the current state on the masked dims.

    Sample keys: reads ``state`` float (..., S) and ``actions`` float (..., H, A); writes ``actions``.
    A sample without ``actions`` (serving) passes through unchanged.

    Attributes:
        mask: True for dims made relative to the state, False for dims kept absolute; may be shorter than
            the action dim (see :func:`make_bool_mask`).

    Raises:
        KeyError: ``actions`` present but ``state`` missing.
        ValueError: ``mask`` is longer than the action or state dim.
    """

    sign: ClassVar[float] = -1.0


@register_transform("absolute_actions")
@dataclass(frozen=True)
class AbsoluteActions(_StateShift):
    """Inverse of :class:`DeltaActions`: adds the state back on the masked dims.

    Sample keys: reads ``state`` float (..., S) (unnormalized) and ``actions`` float (..., H, A); writes
    ``actions``.

    Attributes:
        mask: The same mask as the :class:`DeltaActions` it undoes.

    Raises:
        KeyError: ``actions`` present but ``state`` missing.
        ValueError: ``mask`` is longer than the action or state dim.
    """

    sign: ClassVar[float] = 1.0


def delta_action_pair(mask: Sequence[bool]) -> tuple[DeltaActions, AbsoluteActions]:
    """The input/output pair for a :class:`~depi.transforms.base.TransformGroup` push."""
    return DeltaActions(tuple(mask)), AbsoluteActions(tuple(mask))
