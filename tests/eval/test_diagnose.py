"""depi-eval diagnose: the execution path (chunks at control_fps read back at the env's rate) and the transform
round trip (normalize -> unnormalize, delta -> absolute) must reproduce recorded actions."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from depi.eval.cli import main
from depi.eval.diagnose import RecordedChunkAgent, replay_check, transform_roundtrip
from depi.eval.policy_runner import load_checkpoint
from depi.transforms.base import TransformGroup
from tests.eval.conftest import ENV, TinyRun


def execute(actions: np.ndarray, env_fps: float, control_fps: float, horizon: int, n: int | None = None) -> np.ndarray:
    """The actions a RecordedChunkAgent executes over len(actions) env steps."""
    agent = RecordedChunkAgent(actions, SimpleNamespace(fps=env_fps), control_fps, horizon, n)
    agent.reset(0)
    return np.stack([agent.act(None) for _ in range(len(actions))])


def test_chunk_path_replays_a_recording_exactly_at_the_env_rate() -> None:
    t = np.arange(120)[:, None] / 80.0
    wavy = np.concatenate([np.sin(2 * np.pi * 1.5 * t), np.cos(2 * np.pi * 0.7 * t)], axis=1).astype(np.float32)
    np.testing.assert_allclose(execute(wavy, 80.0, 80.0, 10), wavy, atol=1e-6)
    # A chunk at 30 Hz read back at 80 Hz: linear interpolation reproduces a ramp exactly (but for the last
    # chunk, whose steps past the recording hold its last action) ...
    ramp = np.stack([np.linspace(-1, 1, 120), np.linspace(0, 3, 120)], axis=1).astype(np.float32)
    np.testing.assert_allclose(execute(ramp, 80.0, 30.0, 10)[:96], ramp[:96], atol=1e-5)
    # ... and a smooth motion within the error bound of its two linear interpolations (recording -> chunk,
    # chunk -> env steps: h^2 / 8 * max|a''| each, h = 1/80 s and 1/30 s).
    deviation = np.abs(execute(wavy, 80.0, 30.0, 10)[:96] - wavy[:96]).max()
    bound = ((1 / 80) ** 2 + (1 / 30) ** 2) / 8 * (2 * np.pi * 1.5) ** 2
    assert 1e-4 < deviation <= bound + 1e-6


def test_chunk_path_at_a_low_control_rate_loses_a_fast_motion() -> None:
    # An action toggling every 2 env steps (20 Hz at 40 Hz) cannot survive chunks at 5 Hz: the check shows it.
    square = np.repeat(np.tile([[1.0], [-1.0]], (30, 1)), 2, axis=0).astype(np.float32)
    assert np.abs(execute(square, 40.0, 5.0, 4) - square).max() > 0.5
    np.testing.assert_allclose(execute(square, 40.0, 40.0, 4), square)


def test_chunk_path_holds_the_last_action_past_the_recording() -> None:
    actions = np.arange(10, dtype=np.float32)[:, None]
    agent = RecordedChunkAgent(actions, SimpleNamespace(fps=10), 10.0, 4)
    agent.reset(0)
    executed = [float(agent.act(None)[0]) for _ in range(14)]
    assert executed == [*range(10), 9.0, 9.0, 9.0, 9.0]


def test_expert_recording_replays_to_success_through_the_chunk_path() -> None:
    pytest.importorskip("metaworld", reason="Meta-World is not installed (scripts/sim_requirements.txt)")
    (result,) = replay_check(ENV, [3], control_fps=30.0, horizon=10, image_size=32)
    assert result.expert_success and result.open_loop_success and result.chunk_path_success
    assert 0.0 < result.chunk_path_max_abs_dev < 0.1  # 80 Hz env, 30 Hz chunks: small interpolation error


def test_transform_round_trip_returns_the_recorded_actions(tiny_run: TinyRun) -> None:
    checkpoint = load_checkpoint(tiny_run.checkpoint)
    errors = transform_roundtrip(checkpoint, tiny_run.data_dir, max_samples=8)
    assert len(errors) == 1 and max(errors.values()) < 1e-4


def test_transform_round_trip_catches_a_wrong_unnormalization(tiny_run: TinyRun) -> None:
    checkpoint = load_checkpoint(tiny_run.checkpoint)
    outputs = checkpoint.transforms.outputs

    def off_by_a_tenth(sample: dict) -> dict:
        out = outputs(sample)
        return {**out, "actions": np.asarray(out["actions"]) * 1.1}

    broken = replace(checkpoint, transforms=TransformGroup(inputs=checkpoint.transforms.inputs, outputs=off_by_a_tenth))
    errors = transform_roundtrip(broken, tiny_run.data_dir, max_samples=8)
    assert max(errors.values()) > 1e-3


def test_diagnose_command_writes_the_replay_table(tiny_run: TinyRun, tmp_path: Path, capsys) -> None:
    assert main(["diagnose", f"--env={ENV}", "--episodes=1", f"--policy.path={tiny_run.checkpoint}",
                 f"--dataset_root={tiny_run.data_dir}", "--image_size=32", f"--output_dir={tmp_path}"]) == 0  # fmt: skip
    saved = json.loads((tmp_path / "diagnosis.json").read_text())
    assert saved["control_fps"] == 30.0 and saved["horizon"] == 4  # taken from the checkpoint
    assert saved["replays"][0]["chunk_path_success"]
    assert max(saved["roundtrip_max_abs_error"].values()) < 1e-4
    out = capsys.readouterr().out
    assert "chunk path (4 @ 30 Hz)" in out and "normalize -> unnormalize" in out
