"""Wilson interval and the text table."""

from __future__ import annotations

import math

import pytest

from depi.eval.report import format_table, wilson_interval


@pytest.mark.parametrize(
    ("successes", "trials", "low", "high"),
    [(0, 10, 0.0, 0.27753), (5, 10, 0.23659, 0.76341), (10, 10, 0.72247, 1.0), (1, 20, 0.00889, 0.23613)],
)
def test_wilson_interval_known_values(successes: int, trials: int, low: float, high: float) -> None:
    got = wilson_interval(successes, trials)
    assert got == pytest.approx((low, high), abs=1e-5)


def test_wilson_interval_matches_the_closed_form() -> None:
    s, n, z = 7, 13, 1.959963984540054
    p = s / n
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert wilson_interval(s, n) == pytest.approx((center - half, center + half))


def test_wilson_interval_rejects_impossible_counts() -> None:
    with pytest.raises(ValueError, match="3 successes of 2 trials"):
        wilson_interval(3, 2)
    with pytest.raises(ValueError):
        wilson_interval(0, 0)


def test_table_aligns_columns() -> None:
    table = format_table(["env", "success"], [["a", "100%"], ["long-name", "0%"]]).splitlines()
    assert table[0] == "env        success"
    assert table[1] == "---------  -------"
    assert table[3] == "long-name  0%"
