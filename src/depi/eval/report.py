"""Shared pieces of the evaluation reports: Wilson confidence interval, text tables (JSON files: depi.fileio)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

Z_95 = 1.959963984540054
"""Standard normal quantile of 0.975 (two-sided 95%)."""


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a success rate (Wilson 1927; e.g. Brown, Cai & DasGupta 2001, eq. 4).

    ``p = successes / trials``, ``center = (p + z^2 / 2n) / (1 + z^2 / n)``,
    ``half = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / 4n^2)``; the interval is ``center -/+ half``,
    always inside [0, 1] and not degenerate at 0% or 100% (unlike the normal approximation).

    Args:
        successes: successful episodes, ``0 <= successes <= trials``.
        trials: episodes, >= 1.
        z: normal quantile; 1.96 for 95%.

    Returns:
        ``(low, high)`` as fractions in [0, 1].

    Raises:
        ValueError: ``trials < 1`` or ``successes`` outside ``[0, trials]``.
    """
    if trials < 1 or not 0 <= successes <= trials:
        raise ValueError(
            f"wilson_interval: got {successes} successes of {trials} trials; need 0 <= s <= n, n >= 1"
        )
    p = successes / trials
    denom = 1.0 + z * z / trials
    center = (p + z * z / (2 * trials)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return max(0.0, center - half), min(1.0, center + half)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table: columns left-aligned to their widest cell, a dashed rule under the header."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


