"""``depi-control``: record, roll out or replay episodes on a robot, driven by a policy, a teleoperator or a
recording.

Usage::

    depi-control --robot.type=sim_so101 --control.type=record --control.policy.path=ws://127.0.0.1:8000 \\
        --control.repo_id=me/so101_eval --control.root=outputs/recordings/so101_eval --control.num_episodes=3
    depi-control --robot.type=sim_so101 --control.type=rollout --control.policy.path=outputs/train/<run>
    depi-control --robot.type=so101_follower --robot.port=/dev/ttyACM0 --robot.id=my_arm \\
        --robot.max_relative_target=10 --control.type=record --control.policy.path=ws://gpu-box:8000 \\
        --control.single_task="pick up the cube" --control.root=outputs/recordings/real --control.num_episodes=10
    depi-control --robot.type=so101_follower --robot.port=/dev/ttyACM0 --teleop.type=so101_leader \\
        --teleop.port=/dev/ttyACM1 --control.type=record --control.root=outputs/recordings/teleop
    depi-control --robot.type=sim_so101 --control.type=replay --control.root=outputs/recordings/so101_eval \\
        --control.episode=0

``--control.policy.path`` is a checkpoint (run in this process: needs torch), ``ws://host:port`` (a
``depi-serve`` or openpi server: this process stays torch-free, e.g. in lerobot's Python 3.12 environment), or
``expert`` (the simulator's scripted expert, sim robots only). Results (success rate with its Wilson interval,
inference latency with the warm-up call excluded, episode lengths) go to ``results.json`` in
``--control.output_dir`` (default ``outputs/control/<robot.type>_<control.type>``); a recorded dataset keeps
each episode's success flag in ``meta/depi_control.json``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from depi.cli import parse, raise_on_sigterm, run

PROG = "depi-control"
CONTROL_TYPES = ("record", "rollout", "replay")
logger = logging.getLogger(__name__)


@dataclass
class RobotOptions:
    """``--robot.*``.

    Attributes:
        type: ``sim_so101``, ``sim_so100`` (MuJoCo), ``so100_follower``, ``so101_follower`` (lerobot's arms).
        port: serial port of a real arm (``/dev/ttyACM0``).
        id: calibration id of a real arm (lerobot's ``--robot.id``).
        calibration_dir: folder of lerobot calibration files; None: lerobot's default.
        cameras: JSON of lerobot camera configs for a real arm, e.g.
            ``'{"front": {"type": "opencv", "index_or_path": 0, "width": 640, "height": 480, "fps": 30}}'``.
        max_relative_target: per-step limit of a joint target's change (action units; see depi.robot.safety).
        use_degrees: a real arm's joints in degrees (lerobot 0.6's default); False: lerobot's [-100, 100] range.
        image_size: camera side (px) of a sim robot.
        max_episode_steps: step limit of a sim robot's env; None: the env's.
    """

    type: str = "sim_so101"
    port: str | None = None
    id: str | None = None
    calibration_dir: str | None = None
    cameras: str | None = None
    max_relative_target: float | None = None
    use_degrees: bool = True
    image_size: int = 224
    max_episode_steps: int | None = None


@dataclass
class TeleopOptions:
    """``--teleop.*``: a leader arm driving the robot while recording (no ``--control.policy.path``).

    Attributes:
        type: ``so100_leader`` or ``so101_leader``; None: no teleoperator.
        port, id, calibration_dir: as for the robot.
    """

    type: str | None = None
    port: str | None = None
    id: str | None = None
    calibration_dir: str | None = None


@dataclass
class ControlPolicyOptions:
    """``--control.policy.*``.

    Attributes:
        path: checkpoint or run folder, ``ws://host:port``, or ``expert`` (sim robots).
        device, dtype, num_steps: for a checkpoint run in this process.
        timeout_s: seconds to wait for a server's reply.
    """

    path: str | None = None
    device: str = "cpu"
    dtype: str = "float32"
    num_steps: int | None = None
    timeout_s: float = 30.0


@dataclass
class ControlOptions:
    """``--control.*`` (lerobot's record idiom).

    Attributes:
        type: ``record`` (drive and write a LeRobot v3.0 dataset), ``rollout`` (drive, results only),
            ``replay`` (send a recorded episode's actions).
        repo_id: ``owner/name`` of the recorded dataset.
        root: dataset folder (record: written; replay: read).
        single_task: task text (the prompt); None: the sim env's task.
        fps: control rate (Hz); None: the robot's (sim robots run at their env's rate only).
        num_episodes: episodes to record / roll out.
        episode_time_s: longest episode (s); a sim robot also stops when its env is done.
        reset_time_s: pause between episodes of a real arm, to reset the scene (s).
        policy: see :class:`ControlPolicyOptions`.
        n_action_steps: robot steps executed per predicted chunk; None: every step the chunk covers.
        seed: sim seed of the first episode (episode k: seed + k) and of the policy's sampling noise.
        resume: append to an existing dataset at ``root`` (seeds continue after its episodes).
        episode: the episode ``replay`` plays.
        output_dir: folder of results.json; None: ``outputs/control/<robot.type>_<type>``.
        video_codec: codec of the recorded cameras (``h264``, ``av1``, ``hevc``).
        display_data: show the cameras, ``observation.state`` and the action sent live in rerun (the ``viz``
            extra); ``display_mode``: ``local`` (spawn the viewer) or ``distant`` (serve it on a port);
            ``display_save``: also write the stream to this ``.rrd`` file.
    """

    type: str = "rollout"
    repo_id: str | None = None
    root: str | None = None
    single_task: str | None = None
    fps: float | None = None
    num_episodes: int = 1
    episode_time_s: float = 30.0
    reset_time_s: float = 5.0
    policy: ControlPolicyOptions = field(default_factory=ControlPolicyOptions)
    n_action_steps: int | None = None
    seed: int = 1000
    resume: bool = False
    episode: int = 0
    output_dir: str | None = None
    video_codec: str = "h264"
    display_data: bool = False
    display_mode: str = "local"
    display_save: str | None = None


@dataclass
class ControlConfig:
    """Flags of ``depi-control`` (module docstring)."""

    robot: RobotOptions = field(default_factory=RobotOptions)
    teleop: TeleopOptions = field(default_factory=TeleopOptions)
    control: ControlOptions = field(default_factory=ControlOptions)

    def __post_init__(self) -> None:
        from depi.robot.display import DISPLAY_MODES
        from depi.robot.robots import ROBOT_TYPES

        c = self.control
        if self.robot.type not in ROBOT_TYPES:
            raise ValueError(f"--robot.type={self.robot.type}: expected one of {list(ROBOT_TYPES)}")
        if c.type not in CONTROL_TYPES:
            raise ValueError(f"--control.type={c.type}: expected one of {list(CONTROL_TYPES)}")
        if c.display_mode not in DISPLAY_MODES:
            raise ValueError(f"--control.display_mode={c.display_mode}: expected one of {list(DISPLAY_MODES)}")
        if c.num_episodes < 1 or c.episode_time_s <= 0:
            raise ValueError("--control.num_episodes must be >= 1 and --control.episode_time_s > 0")
        if c.type == "replay":
            if not c.root:
                raise ValueError("--control.type=replay needs --control.root=<the recorded dataset>")
            return
        if c.policy.path is None and self.teleop.type is None:
            raise ValueError(
                "nothing drives the robot: give --control.policy.path=<checkpoint | ws://host:port | expert> "
                "or --teleop.type=<so100_leader | so101_leader>"
            )
        if c.policy.path is not None and self.teleop.type is not None:
            raise ValueError("give one of --control.policy.path and --teleop.type, not both")
        if c.type == "record" and not c.root:
            raise ValueError("--control.type=record needs --control.root=<dataset folder to write>")


def main(argv: list[str]) -> int:
    """Parse the flags, then record / roll out / replay (:mod:`depi.robot.session`)."""
    config = parse(ControlConfig, argv, prog=PROG)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from depi.robot.session import run_control

    summary = run_control(config)
    rate = summary.get("success_rate")
    rate_text = "unknown" if rate is None else f"{rate:.0%} [{summary['ci95'][0]:.0%}, {summary['ci95'][1]:.0%}]"
    print(f"{PROG}: {summary['num_episodes']} episode(s), success {rate_text}; results: {summary['results']}")
    if summary.get("dataset"):
        print(f"{PROG}: dataset {summary['dataset']}")
    return 0


def console() -> None:
    """Console script entry point (``depi-control``)."""
    raise_on_sigterm()  # kill / docker stop: torque off and the unsaved episode discarded, as on Ctrl-C
    run(main, prog=PROG)


def output_dir(config: ControlConfig) -> Path:
    """Where results.json goes."""
    return Path(config.control.output_dir or f"outputs/control/{config.robot.type}_{config.control.type}")


if __name__ == "__main__":
    console()

