"""Normalize / Unnormalize: formulas, per-embodiment selection, padding, clipping and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from depi.transforms.actions import AbsoluteActions, DeltaActions, make_bool_mask
from depi.transforms.norm_stats import NormStats
from depi.transforms.normalize import MissingNormStatsError, Normalize, Unnormalize
from tests.helpers.norm_stats import make_stats


@pytest.mark.parametrize("mode", ["zscore", "quantile"])
def test_absolute_delta_normalize_chain_inverts(mode, two_embodiments):
    rng = np.random.default_rng(4)
    mask = make_bool_mask(5, -1)
    sample = {
        "embodiment": "so100_6d",
        "state": rng.normal(size=6).astype(np.float32),
        "actions": rng.normal(size=(10, 6)).astype(np.float32),
    }
    norm = Normalize(two_embodiments, mode=mode)
    unnorm = Unnormalize(two_embodiments, mode=mode)
    model_side = norm(DeltaActions(mask)(sample))
    # The output side sees the normalized actions with the raw state, as at serving time.
    back = AbsoluteActions(mask)(unnorm({**model_side, "state": sample["state"]}))
    np.testing.assert_allclose(back["actions"], sample["actions"], atol=1e-5)
    state_back = Unnormalize(two_embodiments, mode=mode, keys=("state",))(model_side)["state"]
    np.testing.assert_allclose(state_back, sample["state"], atol=1e-5)


def test_zscore_formula(two_embodiments):
    stats = two_embodiments["so100_6d"]["state"]
    x = np.linspace(-1, 1, 6).astype(np.float32)
    out = Normalize(two_embodiments, mode="zscore")({"embodiment": "so100_6d", "state": x})["state"]
    np.testing.assert_allclose(out, (x - stats.mean) / (stats.std + 1e-6), rtol=1e-6)


def test_quantile_endpoints_map_to_plus_minus_one_and_clip(two_embodiments):
    stats = two_embodiments["aloha_14d"]["actions"]
    actions = np.stack([stats.q01, stats.q99, stats.q99 + 5 * (stats.q99 - stats.q01)])  # (3, 14)
    sample = {"embodiment": "aloha_14d", "actions": actions}
    out = Normalize(two_embodiments, mode="quantile")(sample)["actions"]
    np.testing.assert_allclose(out[0], -1.0, atol=1e-5)
    np.testing.assert_allclose(out[1], 1.0, atol=1e-5)
    assert np.all(out[2] > 5)
    clipped = Normalize(two_embodiments, mode="quantile", clip=True)(sample)["actions"]
    np.testing.assert_allclose(clipped[2], 1.0)
    np.testing.assert_allclose(clipped[:2], out[:2])


def test_stats_selected_by_embodiment(two_embodiments):
    x = np.ones(14, dtype=np.float32)
    norm = Normalize(two_embodiments, mode="zscore")
    a = norm({"embodiment": "aloha_14d", "state": x})["state"]
    s = two_embodiments["aloha_14d"]["state"]
    np.testing.assert_allclose(a, (x - s.mean) / (s.std + 1e-6), rtol=1e-6)
    b = norm({"embodiment": "so100_6d", "state": x})["state"]
    s = two_embodiments["so100_6d"]["state"]
    np.testing.assert_allclose(b[:6], (x[:6] - s.mean) / (s.std + 1e-6), rtol=1e-6)


def test_padded_dims_stay_zero_and_torch_is_kept(two_embodiments):
    state = torch.zeros(32)
    state[:6] = torch.arange(6.0)
    actions = torch.zeros(4, 32)
    actions[:, :6] = 1.0
    out = Normalize(two_embodiments, mode="quantile")(
        {"embodiment": "so100_6d", "state": state, "actions": actions}
    )
    assert isinstance(out["state"], torch.Tensor) and out["state"].dtype == torch.float32
    assert torch.all(out["state"][6:] == 0) and torch.all(out["actions"][:, 6:] == 0)
    assert not torch.equal(out["state"][:6], state[:6])
    assert torch.equal(state[:6], torch.arange(6.0)), "the caller's tensor was mutated"


def test_default_embodiment_for_samples_without_one(two_embodiments):
    norm = Normalize(two_embodiments, mode="zscore", default_embodiment="so100_6d")
    out = norm({"state": np.zeros(6, dtype=np.float32)})["state"]
    s = two_embodiments["so100_6d"]["state"]
    np.testing.assert_allclose(out, -s.mean / (s.std + 1e-6), rtol=1e-6)


def test_missing_embodiment_stats_names_it_and_the_command(two_embodiments):
    with pytest.raises(
        MissingNormStatsError, match=r"embodiment 'ur5'.*\['aloha_14d', 'so100_6d'\].*depi-stats"
    ):
        Normalize(two_embodiments)({"embodiment": "ur5", "state": np.zeros(6)})


def test_missing_key_stats_and_missing_embodiment_key(two_embodiments):
    stats = {"so100_6d": {"state": make_stats(6)}}
    with pytest.raises(MissingNormStatsError, match=r"no 'actions' entry"):
        Normalize(stats)({"embodiment": "so100_6d", "state": np.zeros(6), "actions": np.zeros((2, 6))})
    with pytest.raises(KeyError, match="no 'embodiment' key"):
        Normalize(two_embodiments)({"state": np.zeros(6)})


def test_quantile_mode_without_quantiles_is_refused():
    stats = {"so100": {"state": NormStats(mean=np.zeros(6), std=np.ones(6))}}
    with pytest.raises(ValueError, match=r"needs q01/q99.*norm_stats\['so100'\]\['state'\].*zscore"):
        Normalize(stats, mode="quantile")
    Normalize(stats, mode="zscore")  # z-score needs only mean/std


def test_stats_wider_than_sample_and_bad_mode(two_embodiments):
    with pytest.raises(ValueError, match="has 6 dims but the 'aloha_14d' stats have 14"):
        Normalize(two_embodiments)({"embodiment": "aloha_14d", "state": np.zeros(6)})
    with pytest.raises(ValueError, match="mode must be one of"):
        Normalize(two_embodiments, mode="minmax")
