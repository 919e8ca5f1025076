"""Checks shared by the simulator tests: a generated dataset loads with the env's cameras, dims and fps."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from depi.constants import ACTION, INFO_PATH, OBS_ENV_STATE, OBS_STATE
from depi.datasets.format.source import LeRobotSource
from depi.sim.envs.base import EnvSpec
from depi.sim.generate import GenerationResult, read_generation


def check_generated(root: Path, spec: EnvSpec, result: GenerationResult, cache_dir: Path) -> LeRobotSource:
    """Assert the dataset at ``root`` matches ``spec`` and ``result``, through pyarrow and LeRobotSource."""
    info = json.loads((root / INFO_PATH).read_text())
    assert (
        info["codebase_version"] == "v3.0"
        and info["fps"] == spec.fps
        and info["robot_type"] == spec.robot_type
    )
    assert info["total_episodes"] == len(result.episode_seeds)
    assert info["total_frames"] == sum(result.episode_lengths)
    features = info["features"]
    assert features[OBS_STATE]["shape"] == [spec.state_dim] and features[ACTION]["shape"] == [spec.action_dim]
    assert features[OBS_ENV_STATE]["shape"] == [spec.env_state_dim]
    for key in spec.camera_keys:
        assert features[key]["dtype"] == "video"
        assert features[key]["shape"] == [spec.image_size, spec.image_size, 3]
        assert list((root / "videos" / key).rglob("*.mp4"))
    rows = sum(pq.read_metadata(path).num_rows for path in (root / "data").rglob("*.parquet"))
    assert rows == info["total_frames"]
    assert read_generation(root) == result

    source = LeRobotSource(root=root, cache_dir=cache_dir)
    assert len(source) == info["total_frames"] and source.fps == spec.fps
    assert sorted(source.camera_keys) == sorted(spec.camera_keys)
    sample = source[len(source) - 1]
    assert sample["task"] == spec.task
    assert sample[OBS_STATE].shape == (spec.state_dim,) and sample[ACTION].shape == (spec.action_dim,)
    for key in spec.camera_keys:
        assert sample[key].dtype == torch.uint8 and sample[key].shape == (3, spec.image_size, spec.image_size)
        assert sample[key].float().std() > 1.0  # a rendered scene, not a blank frame
    assert np.all(np.isfinite(source.column(ACTION)))
    return source


@pytest.fixture
def generated_check() -> Callable[..., LeRobotSource]:
    return check_generated
