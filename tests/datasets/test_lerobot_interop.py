"""Interop with the real lerobot package (0.6.x, Python 3.12 environment at ``<repo>/.venv-lerobot``).

(a) a dataset written by depi's DatasetWriter loads in lerobot's ``LeRobotDataset``;
(b) a dataset written by lerobot (``LeRobotDataset.create`` / ``add_frame`` / ``save_episode`` / ``finalize``)
passes ``depi-validate``, loads in depi's ``LeRobotSource``, and accepts more episodes through
``DatasetWriter.resume`` that lerobot then reads back.
Arrays cross the interpreter boundary as .npz files written by the scripts in ``lerobot_side/``.

Skipped when the lerobot environment is absent, unless ``DEPI_REQUIRE_LEROBOT=1`` (then it fails).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from depi.datasets.format.validate import validate_dataset
from depi.datasets.format.writer import DatasetWriter

pytestmark = pytest.mark.interop

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = Path(__file__).resolve().parent / "lerobot_side"
H, W, FPS = 48, 64, 10
# Mean absolute error (uint8 levels) allowed between a written and a decoded video frame (h264, crf 30).
VIDEO_MEAN_ABS_TOLERANCE = 4.0


def lerobot_python() -> Path:
    """The lerobot environment's interpreter; skips the test (or fails with DEPI_REQUIRE_LEROBOT=1) if absent."""
    python = REPO_ROOT / ".venv-lerobot" / "bin" / "python"
    if python.exists():
        return python
    reason = f"lerobot environment not found at {python}: create it with `make lerobot-env`"
    if os.environ.get("DEPI_REQUIRE_LEROBOT") == "1":
        pytest.fail(reason + " (DEPI_REQUIRE_LEROBOT=1 requires it)")
    pytest.skip(reason)


def run_lerobot_script(script: str, *args: object) -> None:
    result = subprocess.run(
        [str(lerobot_python()), str(SCRIPTS / script), *map(str, args)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"{script} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


def smooth_image(episode: int, t: int) -> np.ndarray:
    """Codec-friendly gradient that moves with ``t``; uint8 (H, W, 3)."""
    ys, xs = np.mgrid[0:H, 0:W]
    channels = [80 + 20 * episode + 40 * np.sin((xs + 3 * t) / 9 + c) + 25 * np.cos(ys / 7) for c in range(3)]
    return np.clip(np.stack(channels, -1), 0, 255).astype(np.uint8)


def test_depi_written_dataset_loads_in_lerobot(tmp_path: Path) -> None:
    lerobot_python()
    root = tmp_path / "depi_ds"
    features = {
        "observation.state": {"dtype": "float32", "shape": (5,), "names": [f"s{i}" for i in range(5)]},
        "action": {"dtype": "float32", "shape": (5,), "names": [f"a{i}" for i in range(5)]},
        "observation.images.front": {
            "dtype": "video",
            "shape": (H, W, 3),
            "names": ["height", "width", "channels"],
        },
        "observation.images.wrist": {
            "dtype": "image",
            "shape": (H, W, 3),
            "names": ["height", "width", "channels"],
        },
    }
    rng = np.random.default_rng(0)
    written: dict[str, list] = {"state": [], "action": [], "front": [], "wrist": [], "task": []}
    with DatasetWriter.create(
        root, repo_id="depi/interop", fps=FPS, features=features, robot_type="so101"
    ) as writer:
        for episode, length in enumerate((8, 5, 10)):
            task = ["stack the blocks", "open the box"][episode % 2]
            for t in range(length):
                frame = {
                    "observation.state": rng.normal(size=5).astype(np.float32),
                    "action": rng.normal(size=5).astype(np.float32),
                    "observation.images.front": smooth_image(episode, t),
                    "observation.images.wrist": rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8),
                }
                writer.add_frame(frame, task=task)
                for key, name in (
                    ("observation.state", "state"),
                    ("action", "action"),
                    ("observation.images.front", "front"),
                    ("observation.images.wrist", "wrist"),
                ):
                    written[name].append(frame[key])
                written["task"].append(task)
            writer.save_episode()

    out = tmp_path / "read.npz"
    run_lerobot_script("read_with_lerobot.py", root, "depi/interop", out)
    loaded = np.load(out)
    assert (int(loaded["meta_total_episodes"]), int(loaded["meta_total_frames"])) == (3, 23)
    np.testing.assert_array_equal(loaded["observation.state"], np.stack(written["state"]))
    np.testing.assert_array_equal(loaded["action"], np.stack(written["action"]))
    np.testing.assert_array_equal(
        loaded["observation.images.wrist"], np.stack(written["wrist"]).transpose(0, 3, 1, 2)
    )
    front_error = np.abs(
        loaded["observation.images.front"].astype(float) - np.stack(written["front"]).transpose(0, 3, 1, 2)
    )
    assert front_error.mean(axis=(1, 2, 3)).max() < VIDEO_MEAN_ABS_TOLERANCE
    np.testing.assert_array_equal(loaded["episode_index"], np.repeat([0, 1, 2], [8, 5, 10]))
    np.testing.assert_array_equal(loaded["index"], np.arange(23))
    np.testing.assert_allclose(loaded["timestamp"], loaded["frame_index"] / FPS, atol=1e-6)
    assert loaded["task"].tolist() == written["task"]


def test_lerobot_written_dataset_loads_in_depi(tmp_path: Path) -> None:
    lerobot_python()
    root, arrays = tmp_path / "lerobot_ds", tmp_path / "written.npz"
    run_lerobot_script("write_with_lerobot.py", root, "lerobot/interop", arrays)
    written = np.load(arrays)
    assert [(p.check, p.found) for p in validate_dataset(root).problems] == []

    source_module = pytest.importorskip(
        "depi.datasets.format.source", reason="depi.datasets.format.source is not available"
    )
    source = source_module.LeRobotSource("lerobot/interop", root=root)
    assert (source.num_episodes, len(source)) == (3, len(written["state"]))
    np.testing.assert_array_equal(source.column("observation.state"), written["state"])
    np.testing.assert_array_equal(source.column("action"), written["action"])
    for idx in range(len(source)):
        item = source[idx]
        assert item["task"] == str(written["tasks"][idx])
        assert int(item["episode_index"]) == int(written["episode_index"][idx])
        np.testing.assert_array_equal(
            item["observation.images.wrist"].numpy(), written["wrist"][idx].transpose(2, 0, 1)
        )
        front_error = np.abs(
            item["observation.images.front"].numpy().astype(float) - written["front"][idx].transpose(2, 0, 1)
        )
        assert front_error.mean() < VIDEO_MEAN_ABS_TOLERANCE


def test_depi_appends_to_a_lerobot_dataset(tmp_path: Path) -> None:
    lerobot_python()
    root, arrays = tmp_path / "lerobot_ds", tmp_path / "written.npz"
    run_lerobot_script("write_with_lerobot.py", root, "lerobot/interop", arrays)
    written = np.load(arrays)
    num_frames = len(written["state"])

    writer = DatasetWriter.resume(root)
    assert writer.video_config.codec == "av1"  # lerobot's default encoder is kept for the appended episode
    rng = np.random.default_rng(7)
    new_state = rng.normal(size=(4, 6)).astype(np.float32)
    for t in range(4):
        writer.add_frame(
            {
                "observation.state": new_state[t],
                "action": -new_state[t],
                "observation.images.front": written["front"][t],
                "observation.images.wrist": written["wrist"][t],
            },
            task="pick the cube",
        )
    assert writer.save_episode() == 3
    writer.finalize()
    assert validate_dataset(root).problems == []

    out = tmp_path / "read.npz"
    run_lerobot_script("read_with_lerobot.py", root, "lerobot/interop", out)
    loaded = np.load(out)
    assert (int(loaded["meta_total_episodes"]), int(loaded["meta_total_frames"])) == (4, num_frames + 4)
    np.testing.assert_array_equal(loaded["observation.state"], np.concatenate([written["state"], new_state]))
    np.testing.assert_array_equal(loaded["task_index"][-4:], [0] * 4)
    front_error = np.abs(
        loaded["observation.images.front"][-4:].astype(float) - written["front"][:4].transpose(0, 3, 1, 2)
    )
    assert front_error.mean(axis=(1, 2, 3)).max() < VIDEO_MEAN_ABS_TOLERANCE
