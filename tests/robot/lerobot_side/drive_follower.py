"""Inside lerobot's environment: lerobot's real SO101Follower class, its Feetech bus replaced at the hardware
boundary by a recorder, driven through depi's LeRobotArm + SafeRobot. Prints a JSON report on the last line.

Usage: python drive_follower.py <depi src folder>
"""

import json
import sys
from contextlib import contextmanager

sys.path.insert(0, sys.argv[1])

import numpy as np  # noqa: E402
from lerobot.robots.so_follower import SO101Follower, SO101FollowerConfig  # noqa: E402

from depi.robot.lerobot_robots import LeRobotArm  # noqa: E402
from depi.robot.safety import SafeRobot  # noqa: E402


class RecordingBus:
    """The serial bus of six STS3215 servos: present positions in lerobot's normalized units; every call logged."""

    def __init__(self, motors):
        self.motors = motors
        self.present = {name: 0.0 for name in motors}
        self.calls, self.written = [], []
        self.is_connected = self.is_calibrated = False

    def connect(self):
        self.calls.append("connect")
        self.is_connected = self.is_calibrated = True

    def configure_motors(self):
        self.calls.append("configure_motors")

    def write(self, *args):
        pass

    @contextmanager
    def torque_disabled(self):
        yield

    def sync_read(self, register, num_retry=0):
        return dict(self.present)

    def sync_write(self, register, values):
        self.written.append(dict(values))
        self.present.update(values)

    def disable_torque(self, *args):
        self.calls.append("disable_torque")

    def disconnect(self, disable_torque=True):
        self.calls.append(f"disconnect(disable_torque={disable_torque})")
        self.is_connected = False


robot = SO101Follower(
    SO101FollowerConfig(port="/dev/null", id="test_arm", max_relative_target=20.0, use_degrees=False)
)
bus = RecordingBus(robot.bus.motors)
robot.bus = bus
arm = LeRobotArm(robot, "so101_follower", fps=30)
report = {"motor_keys": arm.motor_keys, "low": arm.action_low.tolist(), "high": arm.action_high.tolist()}

# 1. depi's per-step clamp (5 units) below lerobot's own (20), then the range clamp (gripper 0..100).
with SafeRobot(arm, max_relative_target=5.0) as safe:
    obs = safe.get_observation()
    report["state"] = obs["observation.state"].tolist()
    target = np.array([50.0, -50.0, 3.0, 0.0, 0.0, 150.0], dtype=np.float32)
    report["sent"] = safe.send_action(target).tolist()
    report["clamped_steps"] = safe.clamped_steps
report["written"] = bus.written[-1]
report["calls_normal"] = list(bus.calls)

# 2. An exception inside the loop: torque off before the disconnect.
bus.calls.clear()
try:
    with SafeRobot(arm, max_relative_target=5.0) as safe:
        safe.get_observation()
        raise RuntimeError("camera unplugged")
except RuntimeError:
    pass
report["calls_error"] = list(bus.calls)

# 3. Joints in degrees: the range clamp comes from the calibration (2048 +- 1024 ticks -> +-90.02 degrees).
from lerobot.motors import MotorCalibration  # noqa: E402

robot = SO101Follower(SO101FollowerConfig(port="/dev/null", id="test_arm_deg", use_degrees=True))
robot.calibration = {name: MotorCalibration(id=m.id, drive_mode=0, homing_offset=0, range_min=1024, range_max=3072)
                     for name, m in robot.bus.motors.items()}
robot.bus = RecordingBus(robot.bus.motors)
arm = LeRobotArm(robot, "so101_follower")
report["degrees_low"], report["degrees_high"] = arm.action_low.tolist(), arm.action_high.tolist()
print(json.dumps(report))
