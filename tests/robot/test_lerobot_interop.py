"""depi's robot layer over lerobot 0.6.1's real SO101Follower class (the Feetech bus replaced at the hardware
boundary by a recorder), and a dataset recorded by depi-control loading in lerobot's LeRobotDataset."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.datasets.test_lerobot_interop import lerobot_python, run_lerobot_script

pytestmark = pytest.mark.interop

SRC = Path(__file__).resolve().parents[2] / "src"
SIDE = Path(__file__).resolve().parent / "lerobot_side"


def test_follower_through_the_safety_layer() -> None:
    result = subprocess.run(
        [str(lerobot_python()), str(SIDE / "drive_follower.py"), str(SRC)], capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["motor_keys"][0] == "shoulder_pan.pos" and report["motor_keys"][-1] == "gripper.pos"
    assert report["low"] == [-100.0] * 5 + [0.0] and report["high"] == [100.0] * 6
    # present 0 everywhere: every joint target within 5 of it, the gripper's 150 first to 5 then inside 0..100
    assert report["sent"] == [5.0, -5.0, 3.0, 0.0, 0.0, 5.0] and report["clamped_steps"] == 1
    assert report["written"] == {"shoulder_pan": 5.0, "shoulder_lift": -5.0, "elbow_flex": 3.0,
                                 "wrist_flex": 0.0, "wrist_roll": 0.0, "gripper": 5.0}  # fmt: skip
    assert "disable_torque" not in report["calls_normal"]
    assert report["calls_error"][-2:] == ["disable_torque", "disconnect(disable_torque=True)"]
    assert report["degrees_low"][0] == pytest.approx(-90.02, abs=0.01) and report["degrees_high"][-1] == 100.0


def test_recorded_dataset_loads_in_lerobot(expert_recording: Path, tmp_path: Path) -> None:
    lerobot_python()
    from depi.datasets.format.meta import load_meta

    run_lerobot_script("read_with_lerobot.py", expert_recording, "local/expert", tmp_path / "out.npz")
    data = np.load(tmp_path / "out.npz")
    meta = load_meta(expert_recording)
    assert int(data["meta_total_episodes"]) == 2 and int(data["meta_total_frames"]) == meta.total_frames
    assert data["observation.images.front"].shape[1:] == (3, 64, 64)
    assert data["action"].shape == (meta.total_frames, 4)
