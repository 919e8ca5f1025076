"""Datasets written by depi-convert load in the real lerobot package (0.6.x, ``<repo>/.venv-lerobot``).

Skipped when the lerobot environment is absent, unless ``DEPI_REQUIRE_LEROBOT=1`` (then it fails).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from tests.convert.rlds_fixtures import bridge_episode, write_bridge_dir

from depi.convert.bridge_rlds import BridgeConvertConfig, convert_bridge

pytestmark = pytest.mark.interop

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).resolve().parent / "lerobot_side" / "load_converted.py"


def load_with_lerobot(root: Path, repo_id: str, out: Path) -> dict[str, np.ndarray]:
    python = REPO_ROOT / ".venv-lerobot" / "bin" / "python"
    if not python.exists():
        reason = f"lerobot environment not found at {python}: create it with `make lerobot-env`"
        if os.environ.get("DEPI_REQUIRE_LEROBOT") == "1":
            pytest.fail(reason + " (DEPI_REQUIRE_LEROBOT=1 requires it)")
        pytest.skip(reason)
    result = subprocess.run(
        [str(python), str(SCRIPT), str(root), repo_id, str(out)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"lerobot failed to load {root}:\n{result.stderr[-3000:]}"
    return dict(np.load(out))


def test_converted_bridge_loads_in_lerobot(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    episodes = [
        bridge_episode(rng, 4),
        bridge_episode(rng, 3, instruction="", empty_cameras=("image_2", "image_3")),
    ]
    data_dir = write_bridge_dir(tmp_path / "src", {"train": episodes})
    root = convert_bridge(
        BridgeConvertConfig(data_dir=data_dir, output_dir=tmp_path, repo_name="bridge", resize=32)
    )
    loaded = load_with_lerobot(root, "local/bridge", tmp_path / "out.npz")
    np.testing.assert_array_equal(
        loaded["state"], np.concatenate([e["steps/observation/state"].reshape(-1, 7) for e in episodes])
    )
    np.testing.assert_array_equal(
        loaded["action"], np.concatenate([e["steps/action"].reshape(-1, 7) for e in episodes])
    )
    assert loaded["task"].tolist() == ["put the spoon in the pot"] * 4 + ["put spoon in pot"] * 3
    assert loaded["camera_keys"].tolist() == [f"observation.images.image_{k}" for k in range(3)]
    assert loaded["camera_shapes"].tolist() == [[3, 32, 32]] * 3
    assert int(loaded["fps"]) == 5
