"""Meta-World adapter: seeded resets, right-side-up corner2 images, and a generated dataset that loads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip(
    "metaworld",
    reason="simulator package metaworld not installed: pip install -r scripts/sim_requirements.txt",
)

from depi.constants import OBS_ENV_STATE, OBS_IMAGES_PREFIX, OBS_STATE
from depi.sim.envs import SimEnvConfig, make_env
from depi.sim.envs.metaworld import rotate_180
from depi.sim.generate import main, read_generation

CORNER2 = OBS_IMAGES_PREFIX + "corner2"


def wood_fraction(image: np.ndarray) -> float:
    """Fraction of pixels with the table top's brown (R > G > B, not the arm's saturated red)."""
    r, g, b = (image[..., i].astype(int) for i in range(3))
    return float(((r > 80) & (r - g > 15) & (r - g < 80) & (g - b > 5)).mean())


@pytest.fixture(scope="module")
def reach_env():
    with make_env(SimEnvConfig("metaworld/reach-v3", image_size=64)) as env:
        yield env


def test_spec_and_seeded_reset(reach_env):
    spec = reach_env.spec
    assert (spec.fps, spec.state_dim, spec.action_dim, spec.env_state_dim) == (80, 4, 4, 17)
    assert spec.camera_names == ("corner2",) and spec.max_episode_steps == 500
    first = reach_env.reset(3)
    assert first[OBS_STATE].dtype == np.float32 and first[CORNER2].shape == (64, 64, 3)
    again = reach_env.reset(3)
    np.testing.assert_array_equal(first[OBS_ENV_STATE], again[OBS_ENV_STATE])
    other = reach_env.reset(4)
    assert not np.allclose(first[OBS_ENV_STATE][-3:], other[OBS_ENV_STATE][-3:])  # another goal position


def test_corner2_image_is_right_side_up(reach_env):
    image = reach_env.reset(0)[CORNER2]
    half = image.shape[0] // 2
    # the table fills the lower half of an upright view; the raw render has it at the top
    assert wood_fraction(image[half:]) > 5 * wood_fraction(image[:half])
    raw = rotate_180(image)
    assert wood_fraction(raw[:half]) > 5 * wood_fraction(raw[half:])


def test_rotate_180_flips_both_axes():
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    rotated = rotate_180(image)
    np.testing.assert_array_equal(rotated[0, 0], image[1, 2])
    np.testing.assert_array_equal(rotate_180(rotated), image)


def test_unknown_task_is_refused():
    with pytest.raises(ValueError, match="no scripted expert"):
        make_env(SimEnvConfig("metaworld/fly-v3", image_size=32))


def test_cli_generates_reach_dataset(tmp_path: Path, generated_check, capsys: pytest.CaptureFixture):
    main(
        [
            "--env",
            "metaworld/reach-v3",
            "--episodes",
            "1",
            "--output_dir",
            str(tmp_path),
            "--image_size",
            "32",
        ]
    )
    assert "metaworld_reach-v3" in capsys.readouterr().out  # the summary table
    root = tmp_path / "metaworld_reach-v3"
    result = read_generation(root)
    assert result.episode_seeds == [0] and result.failed_seeds == [] and result.success_rate == 1.0
    assert result.expert.endswith("SawyerReachV3Policy") and result.packages["metaworld"]
    with make_env(SimEnvConfig("metaworld/reach-v3", image_size=32)) as env:
        generated_check(root, env.spec, result, tmp_path / "cache")


def test_privileged_state_appends_the_environment_state(reach_env, tmp_path: Path, generated_check):
    with make_env(SimEnvConfig("metaworld/reach-v3", image_size=32, privileged_state=True)) as env:
        spec = env.spec
        assert spec.state_dim == reach_env.spec.state_dim + reach_env.spec.env_state_dim
        assert spec.state_names[-1] == f"env_state_{reach_env.spec.env_state_dim - 1}"
        obs, plain = env.reset(seed=3), reach_env.reset(seed=3)
        np.testing.assert_array_equal(obs[OBS_STATE], np.concatenate([plain[OBS_STATE], plain[OBS_ENV_STATE]]))
        obs, _, _ = env.step(np.zeros(spec.action_dim))
        assert obs[OBS_STATE].shape == (spec.state_dim,) and obs[OBS_STATE].dtype == np.float32
    main(["--env=metaworld/reach-v3", "--episodes=1", f"--output_dir={tmp_path}", "--image_size=32",
          "--privileged_state=true"])  # fmt: skip
    root = tmp_path / "metaworld_reach-v3"
    result = read_generation(root)
    assert result.settings["privileged_state"] is True and result.success_rate == 1.0  # the expert is unaffected
    generated_check(root, spec, result, tmp_path / "cache")
