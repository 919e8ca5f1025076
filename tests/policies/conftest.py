"""Shared fixtures for policy tests: canonical batches built in memory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from depi.constants import (
    ACTION_DIM_MASK,
    ACTION_IS_PAD,
    ACTIONS,
    BASE_CAMERA,
    IMAGE,
    IMAGE_MASK,
    LEFT_WRIST_CAMERA,
    STATE,
    TOKENIZED_PROMPT,
    TOKENIZED_PROMPT_MASK,
)
from depi.policies.pi0 import PI0Config


def build_batch(
    config: PI0Config, batch_size: int = 2, seed: int = 0, prompt_len: int = 8, real_action_dims: int = 7
) -> dict[str, Any]:
    """A canonical batch for ``config``: two cameras (the wrist one missing in the last sample), a prompt with
    padding in the last sample, 7 real action dims and the last two chunk steps padded in the first sample."""
    g = torch.Generator().manual_seed(seed)
    b, h, a = batch_size, config.action_horizon, config.action_dim
    size = config.vision.image_size
    prompt_mask = torch.ones(b, prompt_len, dtype=torch.bool)
    prompt_mask[-1, prompt_len // 2 :] = False
    wrist_mask = torch.ones(b, dtype=torch.bool)
    wrist_mask[-1] = False
    dim_mask = torch.zeros(b, a, dtype=torch.bool)
    dim_mask[:, :real_action_dims] = True
    is_pad = torch.zeros(b, h, dtype=torch.bool)
    is_pad[0, -2:] = True
    actions = torch.randn(b, h, a, generator=g) * dim_mask[:, None, :]
    return {
        IMAGE: {
            BASE_CAMERA: torch.randint(0, 256, (b, 3, size, size), generator=g, dtype=torch.uint8),
            LEFT_WRIST_CAMERA: torch.randint(0, 256, (b, 3, size, size), generator=g, dtype=torch.uint8),
        },
        IMAGE_MASK: {BASE_CAMERA: torch.ones(b, dtype=torch.bool), LEFT_WRIST_CAMERA: wrist_mask},
        TOKENIZED_PROMPT: torch.randint(0, 1000, (b, prompt_len), generator=g),
        TOKENIZED_PROMPT_MASK: prompt_mask,
        STATE: torch.randn(b, config.state_dim, generator=g),
        ACTIONS: actions,
        ACTION_DIM_MASK: dim_mask,
        ACTION_IS_PAD: is_pad,
    }


@pytest.fixture
def make_batch() -> Callable[..., dict[str, Any]]:
    return build_batch
