"""Safety between the policy and the motors: per-step target clamp, range clamp, torque off on any failure.

:class:`SafeRobot` wraps a :class:`depi.robot.robots.Robot`:

* **max_relative_target** (lerobot's name and meaning): the commanded joint target may move at most this much
  from the present position in one step, per joint (``|target - present| <= max_relative_target``, ``present``
  = ``observation.state``). For a robot whose actions are displacements (``action_is_delta``: the simulated
  SO-101's end-effector deltas), the displacement itself is bounded: ``|action| <= max_relative_target``. A
  robot whose absolute actions are not laid out like its state (the simulated SO-100's end-effector poses vs
  its joint angles) refuses the option rather than ignoring it.
* **range clamp**: every action dim inside ``[action_low, action_high]`` of the robot (the calibrated joint
  ranges for lerobot's arms, the simulator's bounds for sim robots).
* **torque off**: leaving the ``with`` block through an exception, Ctrl-C (KeyboardInterrupt), SIGTERM
  (:class:`depi.errors.Terminated`, in ``depi-control``) or a lost policy
  server (:class:`depi.serve.client.PolicyConnectionError`) calls ``disable_torque()`` then ``disconnect()``
  and prints why; a normal exit only disconnects (lerobot's own ``disable_torque_on_disconnect`` applies).

Each clamp is counted (``clamped_steps``) so a run's results show how often the policy asked for more.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import numpy as np

from depi.errors import Terminated
from depi.robot.robots import Robot

logger = logging.getLogger(__name__)


def clamp_action(
    action: np.ndarray,
    present: np.ndarray | None,
    low: np.ndarray,
    high: np.ndarray,
    max_relative_target: float | None,
    action_is_delta: bool,
) -> np.ndarray:
    """The action actually sent (module docstring).

    Args:
        action: float32 (A,) the policy's action.
        present: float32 (A,) the present joint positions (``observation.state``), needed for target clamps on
            absolute actions; None skips that clamp.
        low, high: float32 (A,) bounds.
        max_relative_target: per-step limit in action units, or None.
        action_is_delta: actions are displacements rather than targets.

    Returns:
        float32 (A,).

    Raises:
        ValueError: ``action`` is not finite or not shaped like ``low``.
    """
    action = np.asarray(action, dtype=np.float32)
    if action.shape != np.shape(low):
        raise ValueError(f"action of shape {action.shape}; the robot takes ({len(low)},)")
    if not np.all(np.isfinite(action)):
        raise ValueError(f"action {action.tolist()} holds NaN or inf; refusing to send it to the motors")
    if max_relative_target is not None:
        limit = np.float32(max_relative_target)
        if action_is_delta:
            action = np.clip(action, -limit, limit)
        elif present is not None and np.shape(present) == action.shape:
            action = np.clip(action, present - limit, present + limit)
    return np.clip(action, low, high).astype(np.float32)


def _check_relative_target(robot: Robot, max_relative_target: float) -> None:
    if not max_relative_target > 0:
        raise ValueError(f"--robot.max_relative_target={max_relative_target}: expected a positive number")
    features = getattr(robot, "observation_features", None)
    if robot.action_is_delta or features is None:
        return
    state = tuple(features["observation.state"]["shape"])
    action = tuple(robot.action_features["action"]["shape"])
    if state != action:
        raise ValueError(
            f"--robot.max_relative_target: {robot.name}'s actions {action} are not laid out like its "
            f"observation.state {state}, so a target's change from the present position is undefined; "
            "drop the flag (the range clamp still applies)"
        )


class SafeRobot:
    """``robot`` behind :func:`clamp_action`, torque off on failure (module docstring); use as a context manager.

    Args:
        robot: the robot (connected on ``__enter__``).
        max_relative_target: see :func:`clamp_action`; None: no per-step clamp.
        out: where the messages on failure go (stderr).

    Raises:
        ValueError: ``max_relative_target`` is not positive, or cannot apply to ``robot`` (module docstring).
    """

    def __init__(self, robot: Robot, max_relative_target: float | None = None, out: Any = None) -> None:
        if max_relative_target is not None:
            _check_relative_target(robot, max_relative_target)
        self.robot, self.max_relative_target = robot, max_relative_target
        self.out = out or sys.stderr
        self.clamped_steps, self._present = 0, None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.robot, name)

    def __enter__(self) -> SafeRobot:
        self.robot.connect()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: Any) -> None:
        if error is not None:
            if isinstance(error, Terminated):
                reason = "terminated (SIGTERM)"
            elif isinstance(error, KeyboardInterrupt):
                reason = "interrupted (Ctrl-C)"
            else:
                reason = f"{kind.__name__}: {error}"
            print(f"depi-control: {reason}; disabling torque on {self.robot.name}", file=self.out)
            try:
                self.robot.disable_torque()
            except Exception as torque_error:  # the original error is the one to report
                print(f"depi-control: disabling torque failed too: {torque_error}", file=self.out)
        try:
            self.robot.disconnect()
        except Exception as disconnect_error:
            if error is None:
                raise
            print(f"depi-control: disconnect failed: {disconnect_error}", file=self.out)

    def get_observation(self) -> dict[str, np.ndarray]:
        obs = self.robot.get_observation()
        self._present = obs.get("observation.state")
        return obs

    def send_action(self, action: np.ndarray) -> np.ndarray:
        """Clamp ``action`` and send it; returns what was sent (the dataset records that)."""
        safe = clamp_action(
            action, self._present, self.robot.action_low, self.robot.action_high, self.max_relative_target,
            self.robot.action_is_delta,
        )  # fmt: skip
        if not np.array_equal(safe, np.asarray(action, dtype=np.float32)):
            self.clamped_steps += 1
        return self.robot.send_action(safe)
