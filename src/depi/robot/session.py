"""One ``depi-control`` run: build the robot, the driver (policy, expert or teleoperator) and the writer, then run
the episodes behind the safety layer. Torch is imported only for a checkpoint run in this process."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from depi.cli import signals_deferred
from depi.errors import UsageError
from depi.fileio import write_json
from depi.robot.control import ControlConfig, output_dir
from depi.robot.display import open_display
from depi.robot.loop import (
    EpisodeOutcome, ask_success, episode_actions, read_sidecar, run_episode, summarize, write_sidecar,
)  # fmt: skip
from depi.robot.robots import SIM_ROBOTS, SimRobot, make_robot
from depi.robot.safety import SafeRobot

RESULTS_FILE = "results.json"


class ExpertDriver:
    """The sim env's scripted expert as the driver of a :class:`SimRobot` (``--control.policy.path=expert``)."""

    def __init__(self, robot: SimRobot) -> None:
        self.expert = robot.make_expert()
        self.inference_seconds: list[float] = []

    def reset(self, seed: int | None = None) -> None:
        self.expert.reset()

    def act(self, obs: Any) -> np.ndarray:
        return np.asarray(self.expert.act(), dtype=np.float32)


class TeleopDriver:
    """A leader arm's joint positions as the action (see :mod:`depi.robot.lerobot_robots`)."""

    def __init__(self, teleop: Any) -> None:
        self.teleop, self.inference_seconds = teleop, []

    def reset(self, seed: int | None = None) -> None:
        pass

    def act(self, obs: Any) -> np.ndarray:
        return self.teleop.get_action_vector()


def _robot(config: ControlConfig):
    r = config.robot
    options: dict[str, Any] = {"image_size": r.image_size, "max_episode_steps": r.max_episode_steps}
    if r.type not in SIM_ROBOTS:
        cameras = json.loads(r.cameras) if r.cameras else {}
        options = {"port": r.port, "id": r.id, "calibration_dir": r.calibration_dir, "cameras": cameras,
                   "use_degrees": r.use_degrees, "fps": config.control.fps or 30.0}  # fmt: skip
    return make_robot(r.type, **options)


def _driver(config: ControlConfig, robot: Any, fps: float):
    policy = config.control.policy
    if policy.path == "expert":
        if not isinstance(robot, SimRobot):
            raise UsageError("--control.policy.path=expert drives simulated robots only (sim_so101, sim_so100)")
        return ExpertDriver(robot), None
    if policy.path is None:
        from depi.robot.lerobot_robots import make_lerobot_teleop

        t = config.teleop
        teleop = make_lerobot_teleop(t.type, port=t.port, id=t.id, calibration_dir=t.calibration_dir)
        teleop.connect()
        return TeleopDriver(teleop), teleop
    from depi.robot.policy import ChunkExecutor, open_policy

    env = robot.env_name if isinstance(robot, SimRobot) else None
    options = {} if policy.path.startswith(("ws://", "wss://")) else {
        "device": policy.device, "dtype": policy.dtype, "num_steps": policy.num_steps, "seed": config.control.seed,
    }  # fmt: skip
    client = open_policy(policy.path, env=env, timeout_s=policy.timeout_s, **options)
    executor = ChunkExecutor(client, fps, config.control.n_action_steps)
    _check_layout(executor.metadata, robot)
    return executor, client


def _check_layout(metadata: dict, robot: Any) -> None:
    state = robot.observation_features["observation.state"]["shape"][0]
    action = robot.action_features["action"]["shape"][0]
    cameras = {k for k in robot.observation_features if k.startswith("observation.images.")}
    missing = [k for k in metadata.get("camera_keys", []) if k not in cameras]
    if metadata.get("state_dim") != state or metadata.get("action_dim") != action or missing:
        raise UsageError(
            f"the policy expects state ({metadata.get('state_dim')},), action ({metadata.get('action_dim')},), "
            f"cameras {metadata.get('camera_keys')}; {robot.name} has state ({state},), action ({action},), "
            f"cameras {sorted(cameras)}. Serve the policy bound to this robot's layout (depi-serve --env / "
            "--dataset.root)"
        )


def _writer(config: ControlConfig, robot: Any, fps: float):
    from depi.datasets.format.writer import DatasetWriter

    c = config.control
    root = Path(c.root)
    if c.resume:
        return DatasetWriter.resume(root, c.repo_id), read_sidecar(root)
    if (root / "meta" / "info.json").exists():
        raise UsageError(f"--control.root={root} already holds a dataset; add --control.resume=true to append")
    features = {**robot.observation_features, **robot.action_features}
    writer = DatasetWriter.create(
        root, repo_id=c.repo_id or f"local/{root.name}", fps=int(round(fps)), features=features,
        robot_type=robot.robot_type, video_codec=c.video_codec,
    )  # fmt: skip
    return writer, []


def run_control(config: ControlConfig) -> dict:
    """Run ``config`` (record, rollout or replay); returns the results dict (also written as results.json).

    Raises:
        UsageError: flags that do not fit together (robot vs policy layout, fps on a sim robot, ...).
        depi.serve.client.PolicyServerError: the policy server failed or was lost (torque is off by then).
    """
    c = config.control
    robot = _robot(config)
    fps = float(c.fps or robot.fps)
    if isinstance(robot, SimRobot) and abs(fps - robot.fps) > 1e-6:
        raise UsageError(f"--control.fps={c.fps}: {robot.name} runs at its env's {robot.fps:g} Hz only")
    display = _display(config, fps)
    if c.type == "replay":
        return _replay(config, robot, display)
    safe = SafeRobot(robot, config.robot.max_relative_target)
    closers: list[Any] = [display]
    writer, recorded = None, []
    outcomes: list[EpisodeOutcome] = []
    driver = None
    try:
        with safe:
            driver, closer = _driver(config, robot, fps)
            closers.append(closer)
            if c.type == "record":
                writer, recorded = _writer(config, robot, fps)
            task = c.single_task or getattr(robot, "task", None) or "do the task"
            max_steps = max(1, int(round(c.episode_time_s * fps)))
            first = len(recorded)
            for k in range(c.num_episodes):
                seed = c.seed + first + k
                outcome = _episode(safe, robot, driver, writer, task, max_steps, seed, k, c, display)
                if writer is not None:
                    with signals_deferred():  # the episode and its success flag are saved together, or neither
                        outcome = replace(outcome, episode_index=writer.save_episode())
                        recorded.append(asdict(outcome))
                        write_sidecar(writer.root, recorded, _settings(config, fps, task))
                outcomes.append(outcome)
                word = {True: "success", False: "failure", None: "success unknown"}[outcome.success]
                tqdm.write(f"episode {k + 1}/{c.num_episodes}: {word} after {outcome.steps} steps, "
                           f"{outcome.seconds:.1f} s")  # fmt: skip
                if not isinstance(robot, SimRobot) and k + 1 < c.num_episodes and c.reset_time_s > 0:
                    print(f"reset the scene: {c.reset_time_s:g} s", flush=True)
                    time.sleep(c.reset_time_s)
    finally:
        if writer is not None:
            writer.clear_episode_buffer()
            writer.finalize()
        for closer in closers:
            if closer is not None and hasattr(closer, "close"):
                closer.close()
            elif closer is not None and hasattr(closer, "disconnect"):
                closer.disconnect()
    summary = summarize(outcomes, driver.inference_seconds, **_settings(config, fps, task))
    return _write_results(config, summary, writer)


def _display(config: ControlConfig, fps: float):
    c = config.control
    return open_display(c.display_data, f"depi-control {config.robot.type} {c.type}", fps, c.display_mode,
                        c.display_save)  # fmt: skip


def _on_step(display):
    return None if display is None else display.log_step


def _episode(safe, robot, driver, writer, task, max_steps, seed, k, c, display) -> EpisodeOutcome:
    if isinstance(robot, SimRobot):
        robot.start_episode(seed)
    driver.reset(seed)
    clamped_before = safe.clamped_steps
    start = time.perf_counter()
    with tqdm(total=max_steps, desc=f"episode {k + 1}/{c.num_episodes}", unit="step", leave=False) as bar:
        steps = run_episode(safe, driver.act, task, max_steps, writer=writer, on_step=_on_step(display),
                            realtime=robot.realtime, progress=bar)  # fmt: skip
    seconds = time.perf_counter() - start
    success = robot.success if isinstance(robot, SimRobot) else ask_success(k)
    return EpisodeOutcome(None, seed if isinstance(robot, SimRobot) else None, success, steps, seconds,
                          safe.clamped_steps - clamped_before)  # fmt: skip


def _settings(config: ControlConfig, fps: float, task: str) -> dict:
    c = config.control
    return {"robot": config.robot.type, "control_type": c.type, "policy": c.policy.path,
            "teleop": config.teleop.type, "fps": fps, "task": task, "n_action_steps": c.n_action_steps,
            "max_relative_target": config.robot.max_relative_target, "seed": c.seed}  # fmt: skip


def _write_results(config: ControlConfig, summary: dict, writer: Any) -> dict:
    path = output_dir(config) / RESULTS_FILE
    summary["results"] = str(path)
    summary["dataset"] = None if writer is None else str(writer.root)
    write_json(path, summary)
    return summary


def _replay(config: ControlConfig, robot: Any, display: Any = None) -> dict:
    c = config.control
    actions, fps, task = episode_actions(Path(c.root), c.episode)
    if abs(fps - robot.fps) > 1e-6:
        raise UsageError(f"{c.root} was recorded at {fps:g} Hz; {robot.name} runs at {robot.fps:g} Hz")
    seed = next((e.get("seed") for e in read_sidecar(Path(c.root)) if e.get("episode_index") == c.episode), None)
    queue = list(actions)
    safe = SafeRobot(robot, config.robot.max_relative_target)
    start = time.perf_counter()
    try:
        with safe:
            if isinstance(robot, SimRobot):
                robot.start_episode(c.seed if seed is None else seed)
            with tqdm(total=len(queue), desc=f"replay episode {c.episode}", unit="step", leave=False) as bar:
                steps = run_episode(safe, lambda obs: queue.pop(0), task, len(queue), on_step=_on_step(display),
                                    realtime=robot.realtime, progress=bar)  # fmt: skip
    finally:
        if display is not None:
            display.close()
    success = robot.success if isinstance(robot, SimRobot) else None
    outcome = EpisodeOutcome(c.episode, seed, success, steps, time.perf_counter() - start, safe.clamped_steps)
    summary = summarize([outcome], [], robot=config.robot.type, control_type="replay", dataset_root=c.root,
                        episode=c.episode, fps=fps, task=task)  # fmt: skip
    return _write_results(config, summary, None)
