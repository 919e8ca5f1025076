"""Small, distinct normalization stats for tests."""

from __future__ import annotations

import numpy as np

from depi.transforms.norm_stats import NormStats


def make_stats(dim: int, seed: int = 0) -> NormStats:
    """Stats of ``dim`` dims with distinct values per dim: q01/q99 at mean -/+ 2 std, min/max at -/+ 3 std."""
    rng = np.random.default_rng(seed)
    mean = rng.normal(size=dim)
    std = rng.uniform(0.5, 2.0, size=dim)
    return NormStats(
        mean=mean, std=std, q01=mean - 2 * std, q99=mean + 2 * std, min=mean - 3 * std, max=mean + 3 * std
    )
