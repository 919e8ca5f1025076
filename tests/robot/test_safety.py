"""The safety layer: per-step target clamp, range clamp, torque off on failure (a recording fake arm stands in
for the motors)."""

from __future__ import annotations

import io

import numpy as np
import pytest

from depi.robot.safety import SafeRobot, clamp_action
from depi.serve.client import PolicyConnectionError

LOW, HIGH = np.array([-100, -100, 0], np.float32), np.array([100, 100, 100], np.float32)


def test_targets_move_at_most_max_relative_target_from_the_present_position() -> None:
    present = np.array([10.0, -95.0, 50.0], np.float32)
    sent = clamp_action(np.array([40.0, -120.0, 52.0]), present, LOW, HIGH, 5.0, action_is_delta=False)
    np.testing.assert_array_equal(sent, [15.0, -100.0, 52.0])  # +5 limit; -100 is both the step and range limit


def test_displacements_are_bounded_and_ranges_always_apply() -> None:
    sent = clamp_action(np.array([0.3, -0.05, 0.5]), None, LOW, HIGH, 0.1, action_is_delta=True)
    np.testing.assert_allclose(sent, [0.1, -0.05, 0.1])
    sent = clamp_action(np.array([250.0, 0.0, -3.0]), None, LOW, HIGH, None, action_is_delta=False)
    np.testing.assert_array_equal(sent, [100.0, 0.0, 0.0])


def test_non_finite_or_misshaped_actions_never_reach_the_motors() -> None:
    with pytest.raises(ValueError, match="NaN or inf"):
        clamp_action(np.array([0.0, np.nan, 0.0]), None, LOW, HIGH, None, False)
    with pytest.raises(ValueError, match=r"the robot takes \(3,\)"):
        clamp_action(np.zeros(2), None, LOW, HIGH, None, False)


class FakeArm:
    """Three joints at the present position ``state``; records every call (the hardware boundary)."""

    name, robot_type, fps, action_is_delta, realtime = "fake_arm", "fake", 30.0, False, True
    action_low, action_high = LOW, HIGH

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.state = np.zeros(3, np.float32)

    def connect(self) -> None:
        self.calls.append("connect")

    def get_observation(self) -> dict:
        return {"observation.state": self.state.copy()}

    def send_action(self, action: np.ndarray) -> np.ndarray:
        self.calls.append("send_action")
        self.state = np.asarray(action, np.float32)
        return self.state

    def disable_torque(self) -> None:
        self.calls.append("disable_torque")

    def disconnect(self) -> None:
        self.calls.append("disconnect")


def test_clamped_steps_are_counted() -> None:
    arm = FakeArm()
    with SafeRobot(arm, max_relative_target=10.0) as safe:
        for _ in range(3):
            safe.get_observation()
            safe.send_action(np.array([25.0, 0.0, 5.0]))
    np.testing.assert_array_equal(arm.state, [25.0, 0.0, 5.0])  # reached in 10-unit steps: 10, 20, 25
    assert safe.clamped_steps == 2
    assert arm.calls == ["connect", "send_action", "send_action", "send_action", "disconnect"]


@pytest.mark.parametrize(
    "error", [RuntimeError("camera unplugged"), KeyboardInterrupt(), PolicyConnectionError("server gone")]
)
def test_torque_goes_off_on_exception_interrupt_and_lost_server(error: BaseException) -> None:
    arm, out = FakeArm(), io.StringIO()
    with pytest.raises(type(error)):
        with SafeRobot(arm, out=out) as safe:
            safe.get_observation()
            safe.send_action(np.zeros(3))
            raise error
    assert arm.calls[-2:] == ["disable_torque", "disconnect"]
    assert "disabling torque on fake_arm" in out.getvalue()
    if isinstance(error, KeyboardInterrupt):
        assert "interrupted (Ctrl-C)" in out.getvalue()
