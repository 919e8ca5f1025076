"""Meta-World v3 tasks (``metaworld``): a Sawyer arm, one ``corner2`` camera, end-effector delta actions at 80 Hz.

Env names are ``metaworld/<task>``, e.g. ``metaworld/reach-v3``, ``metaworld/pick-place-v3``,
``metaworld/drawer-open-v3`` (any key of ``metaworld.policies.ENV_POLICY_MAP``). The initial object / goal
placement comes from ``metaworld.MT1(task, seed=seed).train_tasks[0]`` (Meta-World's own task sampler); the
expert is Meta-World's hand-written policy for the task (``metaworld.policies``, e.g.
``SawyerPickPlaceV3Policy``).

The ``corner2`` camera renders upside down; like lerobot's ``MetaworldEnv`` the adapter moves it to
(0.75, 0.075, 0.7) m, the view used by arXiv:2206.14244, and rotates each image by 180 degrees.
"""

from __future__ import annotations

import metaworld
import mujoco
import numpy as np
from metaworld.policies import ENV_POLICY_MAP

from depi.sim.envs.base import EnvSpec, Observation, SimEnv, SimEnvConfig

CAMERA = "corner2"
CORNER2_POSITION = (0.75, 0.075, 0.7)
TASK_TEXTS = {
    "reach-v3": "reach the red goal position",
    "pick-place-v3": "pick up the puck and place it at the goal",
    "drawer-open-v3": "open the drawer",
    "drawer-close-v3": "close the drawer",
    "push-v3": "push the puck to the goal",
    "button-press-v3": "press the button",
    "door-open-v3": "open the door",
    "window-open-v3": "open the window",
}
# Layout of Meta-World's 39-dim observation: hand xyz (3), gripper opening (1), object poses (14), the previous
# frame's first 18 values (18), goal xyz (3).
HAND_AND_GRIPPER = slice(0, 4)
OBJECTS = slice(4, 18)
GOAL = slice(36, 39)


def rotate_180(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) turned by 180 degrees (both axes flipped), as lerobot does for ``corner2``."""
    return np.ascontiguousarray(image[::-1, ::-1])


class MetaWorldEnv(SimEnv):
    """Adapter for one Meta-World v3 task.

    observation.state: float32 (4,) hand position (metres) and gripper opening (Meta-World's normalized finger
    distance); observation.environment_state: float32 (17,) object poses (14) and goal position (3);
    action: (4,) ``[dx, dy, dz, grip]`` in [-1, 1] (Meta-World scales deltas by 0.01 m; grip > 0 closes).

    Raises:
        ValueError: the task has no Meta-World expert, or ``max_episode_steps`` exceeds the task's
            ``max_path_length`` (500).
    """

    packages = ("metaworld", "mujoco", "gymnasium")

    def __init__(self, config: SimEnvConfig) -> None:
        task = config.name.partition("/")[2]
        if task not in ENV_POLICY_MAP:
            raise ValueError(
                f"env {config.name!r}: Meta-World task {task!r} has no scripted expert; expected one of "
                f"{sorted(ENV_POLICY_MAP)} (e.g. --env metaworld/pick-place-v3)"
            )
        self.task_name = task
        self._benchmark = metaworld.MT1(task, seed=0)
        side = config.image_size
        self._env = self._benchmark.train_classes[task](
            render_mode="rgb_array", camera_name=CAMERA, width=side, height=side
        )
        camera_id = mujoco.mj_name2id(self._env.model, mujoco.mjtObj.mjOBJ_CAMERA, CAMERA)
        self._env.model.cam_pos[camera_id] = CORNER2_POSITION
        if not config.shadows:
            self._env.model.light_castshadow[:] = 0
        limit = int(self._env.max_path_length)
        if config.max_episode_steps is not None and config.max_episode_steps > limit:
            raise ValueError(
                f"env {config.name!r}: max_episode_steps={config.max_episode_steps} exceeds Meta-World's "
                f"max_path_length={limit}; pass at most {limit}"
            )
        self.spec = EnvSpec(
            name=config.name,
            robot_type="sawyer",
            task=TASK_TEXTS.get(task, task.removesuffix("-v3").replace("-", " ")),
            fps=round(1.0 / self._env.dt),
            camera_names=(CAMERA,),
            image_size=side,
            state_names=("hand_x", "hand_y", "hand_z", "gripper_opening"),
            action_names=("delta_x", "delta_y", "delta_z", "grip"),
            env_state_dim=17,
            max_episode_steps=config.max_episode_steps or limit,
            action_low=(-1.0, -1.0, -1.0, -1.0),
            action_high=(1.0, 1.0, 1.0, 1.0),
        )
        self._raw = np.zeros(39)
        self._steps = 0

    @property
    def raw_observation(self) -> np.ndarray:
        """float64 (39,) Meta-World's full observation, the input of its scripted policies."""
        return self._raw.copy()

    def reset(self, seed: int) -> Observation:
        self._env.set_task(metaworld.MT1(self.task_name, seed=seed).train_tasks[0])
        self._raw, _ = self._env.reset()
        self._steps = 0
        return self._format()

    def step(self, action: np.ndarray) -> tuple[Observation, bool, bool]:
        self._raw, _, _, truncated, info = self._env.step(self._check_action(action).astype(np.float32))
        self._steps += 1
        success = bool(info["success"])
        done = success or bool(truncated) or self._steps >= self.spec.max_episode_steps
        return self._format(), success, done

    def render(self) -> dict[str, np.ndarray]:
        return {CAMERA: rotate_180(self._env.render())}

    def make_expert(self) -> MetaWorldExpert:
        return MetaWorldExpert(self)

    def close(self) -> None:
        self._env.close()

    def _format(self) -> Observation:
        raw = self._raw
        return self._observation(raw[HAND_AND_GRIPPER], np.concatenate([raw[OBJECTS], raw[GOAL]]))


class MetaWorldExpert:
    """Meta-World's scripted policy for the task, its action clipped to [-1, 1] as the simulator applies it."""

    def __init__(self, env: MetaWorldEnv) -> None:
        policy_class = ENV_POLICY_MAP[env.task_name]
        self.name = f"{policy_class.__module__}.{policy_class.__name__}"
        self._env = env
        self._policy = policy_class()

    def reset(self) -> None:
        """Meta-World's policies are stateless: nothing to forget."""

    def act(self) -> np.ndarray:
        action = self._policy.get_action(self._env.raw_observation)
        return np.clip(action, -1.0, 1.0).astype(np.float32)
