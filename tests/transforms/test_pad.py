"""PadStateActions: zero padding to 32 dims and action_dim_mask."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from depi.transforms.pad import PadStateActions


def test_pads_state_and_actions_and_builds_mask():
    sample = {"state": np.arange(6, dtype=np.float64), "actions": np.ones((50, 7), dtype=np.float32)}
    out = PadStateActions()(sample)
    assert out["state"].shape == (32,) and out["state"].dtype == torch.float32
    assert torch.equal(out["state"][:6], torch.arange(6.0)) and torch.all(out["state"][6:] == 0)
    assert out["actions"].shape == (50, 32) and out["actions"].dtype == torch.float32
    assert torch.all(out["actions"][:, 7:] == 0)
    assert out["action_dim_mask"].dtype == torch.bool
    assert out["action_dim_mask"].tolist() == [True] * 7 + [False] * 25
    assert sample["state"].shape == (6,)


def test_existing_mask_of_an_already_padded_sample_is_kept():
    mask = torch.zeros(32, dtype=torch.bool)
    mask[:5] = True
    out = PadStateActions()(
        {"state": torch.zeros(32), "actions": torch.zeros(10, 32), "action_dim_mask": mask}
    )
    assert out["action_dim_mask"].tolist() == mask.tolist()


def test_serving_sample_without_actions_gets_no_mask():
    out = PadStateActions()({"state": torch.zeros(14)})
    assert out["state"].shape == (32,) and "action_dim_mask" not in out and "actions" not in out


def test_too_wide_features_are_refused():
    with pytest.raises(ValueError, match=r"sample\['actions'\] has 40 dims, more than the model's 32"):
        PadStateActions()({"state": torch.zeros(6), "actions": torch.zeros(2, 40)})
    with pytest.raises(KeyError, match="needs sample key 'state'"):
        PadStateActions()({"actions": torch.zeros(2, 4)})
