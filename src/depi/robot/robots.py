"""Robots ``depi-control`` drives, behind lerobot's ``Robot`` interface shape, as vectors in LeRobot frame keys.

Every robot offers ``connect()``, ``get_observation()``, ``send_action(action)``, ``disconnect()``,
``is_connected``, ``observation_features`` and ``action_features`` (LeRobot dataset features, ready for
``DatasetWriter``), plus what the control loop needs: ``fps``, ``robot_type``, ``action_low`` / ``action_high``
(float32 (A,) bounds), ``action_is_delta`` (True when an action is a displacement, not a target position),
``disable_torque()``. An observation is ``{"observation.state": float32 (S,), "observation.images.<cam>":
uint8 (H, W, 3)}``; an action is float32 (A,) in the order of ``action_features["action"]["names"]``.

* :class:`SimRobot` (``sim_so101``, ``sim_so100``): a MuJoCo env of :mod:`depi.sim.envs`; ``start_episode(seed)``
  places the objects, ``success`` / ``done`` report the env's own criterion. Needs no torch.
* ``so100_follower`` / ``so101_follower``: lerobot's real classes, see :mod:`depi.robot.lerobot_robots`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Protocol

import numpy as np

from depi.constants import OBS_ENV_STATE

SIM_ROBOTS = {"sim_so101": "so101_pick_place", "sim_so100": "so100_transfer_cube"}
LEROBOT_ROBOTS = ("so100_follower", "so101_follower")
ROBOT_TYPES = (*SIM_ROBOTS, *LEROBOT_ROBOTS)


class Robot(Protocol):
    """What the control loop drives (module docstring)."""

    name: str
    robot_type: str
    fps: float
    action_is_delta: bool

    @property
    def observation_features(self) -> dict[str, dict]: ...
    @property
    def action_features(self) -> dict[str, dict]: ...
    @property
    def action_low(self) -> np.ndarray: ...
    @property
    def action_high(self) -> np.ndarray: ...
    @property
    def is_connected(self) -> bool: ...
    def connect(self) -> None: ...
    def get_observation(self) -> dict[str, np.ndarray]: ...
    def send_action(self, action: np.ndarray) -> np.ndarray: ...
    def disable_torque(self) -> None: ...
    def disconnect(self) -> None: ...


class SimRobot:
    """A :mod:`depi.sim.envs` simulator as a robot (``sim_so101``: SO-101 pick-place, ``sim_so100``: bimanual
    SO-100 transfer-cube).

    ``send_action`` advances the simulation by one step of ``1 / fps`` s (so the loop runs as fast as the
    simulator, not in wall-clock time); the privileged ``observation.environment_state`` is not part of the
    observation, as on a real arm.

    Args:
        robot_type: ``sim_so101`` or ``sim_so100``.
        image_size: camera side in pixels.
        max_episode_steps: the env's step limit; None: its default.

    Raises:
        ValueError: an unknown ``robot_type``.
    """

    realtime = False

    def __init__(self, robot_type: str, image_size: int = 224, max_episode_steps: int | None = None) -> None:
        if robot_type not in SIM_ROBOTS:
            raise ValueError(f"--robot.type={robot_type}: simulated robots are {sorted(SIM_ROBOTS)}")
        from depi.sim.envs import SimEnvConfig, make_env

        self.name = robot_type
        self.env_name = SIM_ROBOTS[robot_type]
        self._config = SimEnvConfig(self.env_name, image_size=image_size, max_episode_steps=max_episode_steps)
        with make_env(SimEnvConfig(self.env_name, image_size=8)) as env:  # the spec only
            spec = env.spec
        self.spec = replace(spec, image_size=image_size)
        self.robot_type, self.fps, self.task = spec.robot_type, float(spec.fps), spec.task
        self.action_is_delta = self.env_name == "so101_pick_place"  # end-effector displacements
        self._make_env, self._env, self._obs = make_env, None, None
        self.success, self.done, self.steps = False, False, 0

    @property
    def observation_features(self) -> dict[str, dict]:
        return {k: v for k, v in self.spec.features().items() if k not in (OBS_ENV_STATE, "action")}

    @property
    def action_features(self) -> dict[str, dict]:
        return {"action": self.spec.features()["action"]}

    @property
    def action_low(self) -> np.ndarray:
        return np.asarray(self.spec.action_low, dtype=np.float32)

    @property
    def action_high(self) -> np.ndarray:
        return np.asarray(self.spec.action_high, dtype=np.float32)

    @property
    def is_connected(self) -> bool:
        return self._env is not None

    def connect(self) -> None:
        if self._env is None:
            self._env = self._make_env(self._config)
            self.start_episode(0)

    def start_episode(self, seed: int) -> None:
        """Place the scene of episode ``seed`` (the env's reset) and clear ``success`` / ``done``."""
        self._require()
        self._obs = self._env.reset(seed)
        self.success, self.done, self.steps = False, False, 0

    def get_observation(self) -> dict[str, np.ndarray]:
        self._require()
        return {k: v for k, v in self._obs.items() if k != OBS_ENV_STATE}

    def send_action(self, action: np.ndarray) -> np.ndarray:
        """Step the simulation with ``action`` clipped into the bounds; returns the action sent."""
        self._require()
        sent = np.clip(np.asarray(action, dtype=np.float32), self.action_low, self.action_high)
        self._obs, step_success, self.done = self._env.step(sent)
        self.success = self.success or step_success
        self.steps += 1
        return sent

    def make_expert(self):
        """The env's scripted expert (``reset()``, ``act() -> (A,)``), reading the simulator's privileged state."""
        self._require()
        return self._env.make_expert()

    def disable_torque(self) -> None:
        """Nothing to release in simulation (the real arms' counterpart cuts motor torque)."""

    def disconnect(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None

    def _require(self) -> None:
        if self._env is None:
            raise RuntimeError(f"{self.name} is not connected; call connect() first")


def make_robot(robot_type: str, **options: Any) -> Robot:
    """A robot of ``robot_type`` (:data:`ROBOT_TYPES`), not yet connected.

    Args:
        options: ``image_size``, ``max_episode_steps`` for sim robots; ``port``, ``id``, ``calibration_dir``,
            ``cameras``, ``max_relative_target``, ``use_degrees`` for lerobot's arms.

    Raises:
        ValueError: an unknown type.
        ModuleNotFoundError: a lerobot arm without the ``lerobot`` extra, or a sim robot without its simulator.
    """
    if robot_type in SIM_ROBOTS:
        return SimRobot(robot_type, options.get("image_size", 224), options.get("max_episode_steps"))
    if robot_type in LEROBOT_ROBOTS:
        from depi.robot.lerobot_robots import make_lerobot_arm

        return make_lerobot_arm(robot_type, **options)
    raise ValueError(f"--robot.type={robot_type}: expected one of {list(ROBOT_TYPES)}")
