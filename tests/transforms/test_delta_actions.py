"""DeltaActions / AbsoluteActions (openpi semantics) and make_bool_mask."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from depi.transforms.actions import AbsoluteActions, DeltaActions, make_bool_mask


def test_make_bool_mask_matches_openpi_examples():
    assert make_bool_mask(6, -1) == (True,) * 6 + (False,)
    assert make_bool_mask(2, -2, 2) == (True, True, False, False, True, True)
    assert make_bool_mask(2, 0, 2) == (True,) * 4


def test_delta_subtracts_state_on_masked_dims_only():
    state = np.arange(1.0, 8.0, dtype=np.float32)  # (7,)
    actions = np.full((4, 8), 10.0, dtype=np.float32)  # (H=4, 8): one dim past the mask
    sample = {"state": state, "actions": actions}
    out = DeltaActions(make_bool_mask(6, -1))(sample)
    expected = np.full((4, 8), 10.0, dtype=np.float32)
    expected[:, :6] -= state[:6]
    np.testing.assert_array_equal(out["actions"], expected)
    # The caller's sample is untouched.
    np.testing.assert_array_equal(sample["actions"], np.full((4, 8), 10.0))


def test_absolute_inverts_delta_for_torch_batches():
    torch.manual_seed(0)
    sample = {"state": torch.randn(2, 7), "actions": torch.randn(2, 5, 7)}  # (B, S), (B, H, A)
    mask = make_bool_mask(6, -1)
    back = AbsoluteActions(mask)(DeltaActions(mask)(sample))
    torch.testing.assert_close(back["actions"], sample["actions"])
    assert back["actions"] is not sample["actions"]


def test_sample_without_actions_passes_through():
    sample = {"state": np.zeros(7)}
    assert DeltaActions(make_bool_mask(7))(sample) == sample


def test_errors_name_missing_state_and_too_long_mask():
    with pytest.raises(KeyError, match="needs sample key 'state'"):
        DeltaActions((True,))({"actions": np.zeros((2, 3))})
    with pytest.raises(ValueError, match="mask covers 9 dims"):
        DeltaActions(make_bool_mask(9))({"state": np.zeros(7), "actions": np.zeros((2, 7))})
