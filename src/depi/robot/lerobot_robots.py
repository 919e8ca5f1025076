"""lerobot's SO-100 / SO-101 follower arms and leader arms behind depi's robot interface (needs the ``lerobot``
extra: ``pip install 'depi[lerobot]'``, Python >= 3.12).

lerobot owns the hardware: its ``SO100Follower`` / ``SO101Follower`` classes talk to the Feetech bus, read the
calibration (``~/.cache/huggingface/lerobot/calibration/robots/<type>/<id>.json``, or ``--robot.calibration_dir``)
and apply their own ``max_relative_target``. :class:`LeRobotArm` only turns its per-motor dicts
(``{"shoulder_pan.pos": float, ..., "<camera>": uint8 (H, W, 3)}``) into depi's vectors in LeRobot frame keys
and back, and exposes the calibrated joint ranges as ``action_low`` / ``action_high`` for the range clamp.

Joint units follow lerobot's normalization: degrees from the calibrated range's middle for the body joints
(lerobot 0.6's default; ``[-100, 100]`` of the calibrated range with ``--robot.use_degrees=false``) and
``[0, 100]`` for the gripper.
"""

from __future__ import annotations

from typing import Any

import numpy as np

INSTALL_HINT = "install the lerobot extra (Python >= 3.12): pip install 'depi[lerobot]'"
TELEOP_TYPES = ("so100_leader", "so101_leader")


def _require_lerobot() -> None:
    try:
        import lerobot  # noqa: F401
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(f"real SO-100/101 arms are driven through lerobot; {INSTALL_HINT}") from error


def joint_bounds(robot: Any, motors: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per-motor (low, high) in lerobot's normalized units, from each motor's norm mode and calibration.

    Raises:
        ValueError: a motor in degrees without a calibration entry.
    """
    low, high = [], []
    for name in motors:
        motor = robot.bus.motors[name]
        mode = getattr(motor.norm_mode, "value", str(motor.norm_mode))
        if mode == "range_m100_100":
            bounds = (-100.0, 100.0)
        elif mode == "range_0_100":
            bounds = (0.0, 100.0)
        else:  # degrees: centred on the calibrated range's middle, 4096 ticks per turn
            calibration = (robot.calibration or {}).get(name)
            if calibration is None:
                raise ValueError(f"motor {name!r} has no calibration; run lerobot-calibrate for this arm first")
            half = (calibration.range_max - calibration.range_min) / 2 * 360.0 / 4095
            bounds = (-half, half)
        low.append(bounds[0])
        high.append(bounds[1])
    return np.asarray(low, dtype=np.float32), np.asarray(high, dtype=np.float32)


class LeRobotArm:
    """A lerobot ``Robot`` (a follower arm) as a depi robot (module docstring).

    Args:
        robot: the lerobot robot instance (not connected).
        robot_type: ``so100_follower`` / ``so101_follower``.
        fps: control rate (Hz) of the loop.
    """

    realtime = True
    action_is_delta = False

    def __init__(self, robot: Any, robot_type: str, fps: float = 30.0) -> None:
        self.robot, self.name, self.fps = robot, robot_type, fps
        self.robot_type = robot_type.removesuffix("_follower")
        self.motor_keys = [k for k, v in robot.action_features.items() if k.endswith(".pos")]
        self.motors = [k.removesuffix(".pos") for k in self.motor_keys]
        self.camera_names = [k for k, v in robot.observation_features.items() if isinstance(v, tuple)]
        self._bounds: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def observation_features(self) -> dict[str, dict]:
        features = {"observation.state": {"dtype": "float32", "shape": (len(self.motors),), "names": self.motor_keys}}
        for cam in self.camera_names:
            shape = tuple(self.robot.observation_features[cam])
            features[f"observation.images.{cam}"] = {"dtype": "video", "shape": shape,
                                                      "names": ["height", "width", "channels"]}  # fmt: skip
        return features

    @property
    def action_features(self) -> dict[str, dict]:
        return {"action": {"dtype": "float32", "shape": (len(self.motors),), "names": self.motor_keys}}

    def _joint_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        if self._bounds is None:
            self._bounds = joint_bounds(self.robot, self.motors)
        return self._bounds

    @property
    def action_low(self) -> np.ndarray:
        return self._joint_bounds()[0]

    @property
    def action_high(self) -> np.ndarray:
        return self._joint_bounds()[1]

    @property
    def is_connected(self) -> bool:
        return bool(self.robot.is_connected)

    def connect(self) -> None:
        self.robot.connect()

    def get_observation(self) -> dict[str, np.ndarray]:
        raw = self.robot.get_observation()
        obs = {"observation.state": np.asarray([raw[k] for k in self.motor_keys], dtype=np.float32)}
        for cam in self.camera_names:
            obs[f"observation.images.{cam}"] = np.asarray(raw[cam], dtype=np.uint8)
        return obs

    def send_action(self, action: np.ndarray) -> np.ndarray:
        """Send joint targets (A,); returns the targets lerobot actually sent (after its own clamp)."""
        sent = self.robot.send_action({k: float(v) for k, v in zip(self.motor_keys, action, strict=True)})
        return np.asarray([sent.get(k, a) for k, a in zip(self.motor_keys, action, strict=True)], dtype=np.float32)

    def disable_torque(self) -> None:
        """Cut motor torque (the arm goes limp)."""
        self.robot.bus.disable_torque()

    def disconnect(self) -> None:
        if self.robot.is_connected:
            self.robot.disconnect()


class LeRobotLeader:
    """A lerobot leader arm whose joint positions are the follower's action."""

    def __init__(self, teleop: Any) -> None:
        self.teleop = teleop
        self.keys = [k for k in teleop.action_features if k.endswith(".pos")]

    def connect(self) -> None:
        self.teleop.connect()

    def get_action_vector(self) -> np.ndarray:
        action = self.teleop.get_action()
        return np.asarray([action[k] for k in self.keys], dtype=np.float32)

    def disconnect(self) -> None:
        if self.teleop.is_connected:
            self.teleop.disconnect()


def make_lerobot_arm(
    robot_type: str, *, port: str | None = None, id: str | None = None, calibration_dir: str | None = None,
    cameras: dict[str, dict] | None = None, use_degrees: bool = True, fps: float = 30.0, **_: Any,
) -> LeRobotArm:  # fmt: skip
    """lerobot's ``SO100Follower`` / ``SO101Follower`` for ``robot_type``, wrapped.

    Args:
        cameras: camera name -> lerobot camera config fields (``type``: ``opencv`` | ``realsense``, then that
            config's fields, e.g. ``index_or_path``, ``width``, ``height``, ``fps``).

    Raises:
        ModuleNotFoundError: lerobot is not installed.
        ValueError: no ``port``.
    """
    _require_lerobot()
    if not port:
        raise ValueError(f"--robot.type={robot_type} needs --robot.port (e.g. /dev/ttyACM0; lerobot-find-port)")
    from pathlib import Path

    from lerobot.cameras import CameraConfig
    from lerobot.robots.so_follower import SO100Follower, SO100FollowerConfig, SO101Follower, SO101FollowerConfig

    camera_configs = {}
    for name, spec in (cameras or {}).items():
        spec = dict(spec)
        kind = spec.pop("type", "opencv")
        camera_configs[name] = CameraConfig.get_choice_class(kind)(**spec)
    config_class, robot_class = (
        (SO100FollowerConfig, SO100Follower) if robot_type == "so100_follower" else (SO101FollowerConfig, SO101Follower)
    )
    config = config_class(port=port, id=id, calibration_dir=Path(calibration_dir) if calibration_dir else None,
                          cameras=camera_configs, use_degrees=use_degrees)  # fmt: skip
    return LeRobotArm(robot_class(config), robot_type, fps)


def make_lerobot_teleop(
    teleop_type: str | None, *, port: str | None = None, id: str | None = None, calibration_dir: str | None = None
) -> LeRobotLeader:
    """lerobot's ``SO100Leader`` / ``SO101Leader``, wrapped.

    Raises:
        ModuleNotFoundError: lerobot is not installed.
        ValueError: an unknown type or no ``port``.
    """
    if teleop_type not in TELEOP_TYPES:
        raise ValueError(f"--teleop.type={teleop_type}: expected one of {list(TELEOP_TYPES)}")
    _require_lerobot()
    if not port:
        raise ValueError(f"--teleop.type={teleop_type} needs --teleop.port")
    from pathlib import Path

    from lerobot.teleoperators.so_leader import SO100Leader, SO100LeaderConfig, SO101Leader, SO101LeaderConfig

    config_class, teleop_class = (
        (SO100LeaderConfig, SO100Leader) if teleop_type == "so100_leader" else (SO101LeaderConfig, SO101Leader)
    )
    config = config_class(port=port, id=id, calibration_dir=Path(calibration_dir) if calibration_dir else None)
    return LeRobotLeader(teleop_class(config))
