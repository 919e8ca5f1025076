"""norm_stats.json in openpi's schema: round trip, atomic write, and error messages."""

from __future__ import annotations

import json

import numpy as np
import pytest

from depi.transforms.norm_stats import (
    NormStats,
    list_groups,
    load_group_norm_stats,
    load_norm_stats,
    save_group_norm_stats,
    save_norm_stats,
)
from tests.helpers.norm_stats import make_stats


def test_round_trip_keeps_values_and_openpi_schema(tmp_path):
    stats = {"state": make_stats(7, 0), "actions": NormStats(mean=np.arange(3.0), std=np.ones(3))}
    path = save_norm_stats(tmp_path, stats)
    assert path == tmp_path / "norm_stats.json"
    raw = json.loads(path.read_text())
    assert set(raw) == {"norm_stats"}
    assert set(raw["norm_stats"]["state"]) == {"mean", "std", "q01", "q99", "min", "max"}
    assert set(raw["norm_stats"]["actions"]) == {"mean", "std"}
    loaded = load_norm_stats(tmp_path)
    for key, saved in stats.items():
        for field in ("mean", "std", "q01", "q99", "min", "max"):
            a, b = getattr(saved, field), getattr(loaded[key], field)
            assert (a is None and b is None) or (b.dtype == np.float32 and np.array_equal(a, b))
    assert not [p for p in tmp_path.iterdir() if p.name != "norm_stats.json"], "temporary file left behind"


def test_reads_an_openpi_file_with_null_quantiles(tmp_path):
    (tmp_path / "norm_stats.json").write_text(
        json.dumps({"norm_stats": {"state": {"mean": [0.5, 1], "std": [2, 3], "q01": None, "q99": None}}})
    )
    stats = load_norm_stats(tmp_path)["state"]
    assert stats.dim == 2 and not stats.has_quantiles
    np.testing.assert_array_equal(stats.std, [2.0, 3.0])


def test_missing_file_says_how_to_create_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"norm_stats\.json.*depi-stats"):
        load_norm_stats(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("payload", "pattern"),
    [
        ("{not json", "not valid JSON"),
        ({"state": {"mean": [0.0], "std": [1.0]}}, "top-level object"),
        ({"norm_stats": {"state": {"std": [1.0]}}}, r"norm_stats\.state: required field 'mean'"),
        (
            {"norm_stats": {"state": {"mean": [0.0], "std": "wide"}}},
            r"norm_stats\.state\.std: expected a list",
        ),
        (
            {"norm_stats": {"actions": {"mean": [0.0, 1.0], "std": [1.0]}}},
            r"norm_stats\.actions: .*std has 1 dims",
        ),
        ({"norm_stats": {"state": {"mean": [0.0], "std": [1.0], "q01": [0.0]}}}, "both q01 and q99"),
        (
            {"norm_stats": {"state": {"mean": [0.0], "std": [1.0], "p50": [0.0]}}},
            r"unknown field\(s\) \['p50'\]",
        ),
    ],
)
def test_malformed_file_names_file_and_field(tmp_path, payload, pattern):
    text = payload if isinstance(payload, str) else json.dumps(payload)
    (tmp_path / "norm_stats.json").write_text(text)
    with pytest.raises(ValueError, match=pattern) as info:
        load_norm_stats(tmp_path)
    assert str(tmp_path / "norm_stats.json") in str(info.value)


def test_nan_stats_are_refused():
    with pytest.raises(ValueError, match="NaN"):
        NormStats(mean=np.array([0.0, np.nan]), std=np.ones(2))


def test_save_refuses_non_normstats(tmp_path):
    with pytest.raises(TypeError, match=r"norm_stats\['state'\] must be a NormStats"):
        save_norm_stats(tmp_path, {"state": {"mean": [0.0]}})
    assert not (tmp_path / "norm_stats.json").exists()


def test_group_round_trip_with_repo_id_style_ids(tmp_path):
    save_group_norm_stats(tmp_path, "lerobot/aloha_sim", {"state": make_stats(14)})
    save_group_norm_stats(tmp_path, "so100", {"state": make_stats(6)})
    assert list_groups(tmp_path) == ["lerobot/aloha_sim", "so100"]
    assert load_group_norm_stats(tmp_path, "lerobot/aloha_sim")["state"].dim == 14


def test_group_id_mismatch_names_both_ids_and_listing(tmp_path):
    save_group_norm_stats(tmp_path, "physical-intelligence/libero", {"state": make_stats(8)})
    with pytest.raises(FileNotFoundError) as info:
        load_group_norm_stats(tmp_path, "libero")
    message = str(info.value)
    assert "'libero'" in message
    assert "['physical-intelligence/libero']" in message
    assert "depi-stats" in message
