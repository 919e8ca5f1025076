"""HDF5 episode files (ALOHA-style and custom) -> LeRobot v3.0 through a mapping file."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from tests.convert.lerobot_read import read_frames, read_sidecar, read_video
from tests.convert.rlds_fixtures import jpeg

from depi.convert.cli import main
from depi.convert.hdf5 import HDF5Mapping, HDF5MappingError, convert_hdf5, read_episode
from depi.datasets.format.meta import load_meta
from depi.datasets.format.source import LeRobotSource
from depi.datasets.format.validate import validate_dataset
from depi.datasets.format.writer import DatasetWriter

ALOHA_MAPPING = {
    "fps": 50,
    "task": "transfer the cube",
    "robot_type": "aloha",
    "state": "/observations/qpos",
    "action": "/action",
    "cameras": "/observations/images",
    "extra": {"observation.velocity": "/observations/qvel"},
}


def _gradient(height: int, width: int, shift: int) -> np.ndarray:
    row = np.linspace(30, 220, width, dtype=np.float32)[None, :, None] + shift
    return np.broadcast_to(row, (height, width, 3)).clip(0, 255).astype(np.uint8)


def write_aloha_episode(
    path: Path, num_frames: int, seed: int, compressed: bool = False
) -> dict[str, np.ndarray]:
    """An ALOHA-layout file: qpos/qvel (T, 14), action (T, 14), two cameras raw (T, H, W, 3) or padded JPEG."""
    rng = np.random.default_rng(seed)
    arrays = {
        "qpos": rng.normal(size=(num_frames, 14)).astype(np.float64),
        "qvel": rng.normal(size=(num_frames, 14)).astype(np.float32),
        "action": rng.normal(size=(num_frames, 14)).astype(np.float32),
    }
    with h5py.File(path, "w") as handle:
        handle.attrs["sim"] = False
        handle["/observations/qpos"] = arrays["qpos"]
        handle["/observations/qvel"] = arrays["qvel"]
        handle["/action"] = arrays["action"]
        for k, camera in enumerate(["cam_high", "cam_left_wrist"]):
            frames = [_gradient(24, 32, 8 * t + 40 * k) for t in range(num_frames)]
            if compressed:
                encoded = [jpeg(f) for f in frames]
                padded = np.zeros((num_frames, max(map(len, encoded))), np.uint8)
                for t, data in enumerate(encoded):
                    padded[t, : len(data)] = np.frombuffer(data, np.uint8)
                handle[f"/observations/images/{camera}"] = padded
            else:
                handle[f"/observations/images/{camera}"] = np.stack(frames)
    return arrays


def _mapping_file(tmp_path: Path, mapping: dict, suffix: str = ".yaml") -> Path:
    path = tmp_path / f"mapping{suffix}"
    path.write_text(json.dumps(mapping) if suffix == ".json" else yaml.safe_dump(mapping))
    return path


@pytest.mark.parametrize("compressed", [False, True])
def test_aloha_layout(tmp_path: Path, compressed: bool) -> None:
    (tmp_path / "in").mkdir()
    arrays = [
        write_aloha_episode(tmp_path / "in" / f"episode_{i}.hdf5", n, i, compressed)
        for i, n in enumerate([5, 3])
    ]
    mapping = HDF5Mapping.from_file(_mapping_file(tmp_path, ALOHA_MAPPING))
    root = convert_hdf5(mapping, tmp_path / "in", tmp_path / "out", "aloha_cube")
    assert validate_dataset(root).problems == []
    meta = load_meta(root)
    assert (
        meta.fps == 50 and meta.robot_type == "aloha" and meta.total_episodes == 2 and meta.total_frames == 8
    )
    assert meta.video_keys == ["observation.images.cam_high", "observation.images.cam_left_wrist"]
    assert meta.shapes["observation.state"] == (14,) and meta.shapes["observation.velocity"] == (14,)
    frames = read_frames(root)
    np.testing.assert_allclose(
        frames["observation.state"], np.concatenate([a["qpos"] for a in arrays]), rtol=1e-6
    )
    np.testing.assert_array_equal(frames["action"], np.concatenate([a["action"] for a in arrays]))
    np.testing.assert_array_equal(frames["observation.velocity"], np.concatenate([a["qvel"] for a in arrays]))
    video = read_video(root, "observation.images.cam_left_wrist")
    expected = np.stack([_gradient(24, 32, 8 * t + 40) for t in [0, 1, 2, 3, 4, 0, 1, 2]]).astype(int)
    assert video.shape == (8, 24, 32, 3) and np.abs(video.astype(int) - expected).mean() < 6
    assert meta.episodes[1].tasks == ["transfer the cube"]
    assert [e["source_id"] for e in read_sidecar(root)["episodes"]] == ["episode_0.hdf5", "episode_1.hdf5"]


def test_custom_layout_with_action_from_next_state(tmp_path: Path) -> None:
    (tmp_path / "in" / "day1").mkdir(parents=True)
    states = {}
    for i, n in enumerate([4, 6]):
        rng = np.random.default_rng(i)
        states[i] = rng.normal(size=(n, 6)).astype(np.float32)
        with h5py.File(tmp_path / "in" / "day1" / f"demo{i}.h5", "w") as handle:
            handle["robot/joint_positions"] = states[i]
            handle["robot/gripper"] = np.linspace(0, 1, n, dtype=np.float32)  # (T,) scalar feature
            handle["camera/front_chw"] = np.stack(
                [_gradient(16, 16, 10 * t).transpose(2, 0, 1) for t in range(n)]
            )
            handle.attrs["language_instruction"] = f"stack block {i}"
    mapping = {
        "fps": 10,
        "task": "stack the blocks",
        "task_attribute": "language_instruction",
        "state": "/robot/joint_positions",
        "action_from_next_state": True,
        "cameras": {"front": "/camera/front_chw"},
        "extra": {"observation.gripper": "/robot/gripper"},
        "state_names": [f"joint_{j}" for j in range(6)],
        "resize": 32,
    }
    root = convert_hdf5(
        HDF5Mapping.from_file(_mapping_file(tmp_path, mapping, ".json")), tmp_path / "in", tmp_path, "d"
    )
    assert validate_dataset(root).problems == []
    meta = load_meta(root)
    assert meta.total_frames == 3 + 5  # the last recorded state of each episode has no next state: dropped
    assert meta.features["observation.state"]["names"] == [f"joint_{j}" for j in range(6)]
    assert meta.shapes["observation.gripper"] == (1,) and meta.shapes["observation.images.front"] == (
        32,
        32,
        3,
    )
    frames = read_frames(root)
    np.testing.assert_array_equal(
        frames["observation.state"], np.concatenate([states[0][:-1], states[1][:-1]])
    )
    np.testing.assert_array_equal(frames["action"], np.concatenate([states[0][1:], states[1][1:]]))
    assert [e.tasks for e in meta.episodes] == [["stack block 0"], ["stack block 1"]]
    assert read_sidecar(root)["episodes"][0]["source_id"] == "day1/demo0.h5"


def test_resume_skips_converted_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "in").mkdir()
    arrays = [write_aloha_episode(tmp_path / "in" / f"ep{i}.hdf5", 3, i) for i in range(3)]
    mapping = HDF5Mapping.from_file(_mapping_file(tmp_path, ALOHA_MAPPING))
    original = DatasetWriter.save_episode

    def crash_on_second(self: DatasetWriter) -> int:
        if self.num_episodes == 1:
            raise KeyboardInterrupt("power cut")
        return original(self)

    monkeypatch.setattr(DatasetWriter, "save_episode", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        convert_hdf5(mapping, tmp_path / "in", tmp_path / "out", "r")
    monkeypatch.setattr(DatasetWriter, "save_episode", original)
    root = convert_hdf5(mapping, tmp_path / "in", tmp_path / "out", "r")
    assert validate_dataset(root).problems == []
    np.testing.assert_array_equal(read_frames(root)["action"], np.concatenate([a["action"] for a in arrays]))
    assert load_meta(root).total_episodes == 3


def test_missing_hdf5_path_names_file_and_path(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    write_aloha_episode(tmp_path / "in" / "episode_0.hdf5", 3, 0)
    mapping = HDF5Mapping.from_file(_mapping_file(tmp_path, {**ALOHA_MAPPING, "action": "/actions"}))
    with pytest.raises(
        HDF5MappingError,
        match=r"episode_0.hdf5: HDF5 path '/actions' \(action\) not found; the file holds datasets \['/action'",
    ):
        convert_hdf5(mapping, tmp_path / "in", tmp_path / "out", "r")
    with h5py.File(tmp_path / "in" / "episode_0.hdf5", "a") as handle:
        del handle["/observations/qvel"]
        handle["/observations/qvel"] = np.zeros((2, 14))
    mapping = HDF5Mapping.from_file(_mapping_file(tmp_path, ALOHA_MAPPING))
    with pytest.raises(HDF5MappingError, match=r"episode_0.hdf5: datasets have different numbers of frames"):
        read_episode(tmp_path / "in" / "episode_0.hdf5", mapping)
    (tmp_path / "in" / "episode_1.hdf5").write_bytes(b"not hdf5")
    with pytest.raises(HDF5MappingError, match=r"episode_1.hdf5: not a readable HDF5 file"):
        read_episode(tmp_path / "in" / "episode_1.hdf5", mapping)


def test_nan_state_names_the_source_file_and_frame(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    write_aloha_episode(tmp_path / "in" / "a.hdf5", 3, 0)
    write_aloha_episode(tmp_path / "in" / "b.hdf5", 3, 1)
    with h5py.File(tmp_path / "in" / "b.hdf5", "a") as handle:
        handle["/observations/qpos"][2, 4] = np.nan
    mapping = HDF5Mapping.from_file(_mapping_file(tmp_path, ALOHA_MAPPING))
    with pytest.raises(ValueError, match=r"source episode b.hdf5, frame 2: .*'observation.state' holds NaN"):
        convert_hdf5(mapping, tmp_path / "in", tmp_path / "out", "r")
    assert load_meta(tmp_path / "out" / "r").total_episodes == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"camera": "/x"}, r"unknown keys \['camera'\]; allowed keys are"),
        ({"action_from_next_state": True}, r"'action' is '/action' and 'action_from_next_state' is true"),
        ({"fps": 0}, r"'fps' is 0, expected a positive number"),
        ({"action": None}, r"'action' is missing; name the HDF5 dataset"),
        ({"cameras": ["/observations/images/cam_high"]}, r"'cameras' is \[.*\]; expected a dict camera name"),
        ({"state": 3}, r"'state' is 3, expected a string"),
    ],
)
def test_mapping_errors(tmp_path: Path, change: dict, message: str) -> None:
    with pytest.raises(HDF5MappingError, match=rf"mapping file .*mapping.yaml: {message}"):
        HDF5Mapping.from_file(_mapping_file(tmp_path, {**ALOHA_MAPPING, **change}))


def test_cli_hdf5(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "in").mkdir()
    write_aloha_episode(tmp_path / "in" / "episode_0.hdf5", 4, 0, compressed=True)
    mapping = str(_mapping_file(tmp_path, ALOHA_MAPPING))

    def run(input_dir: Path, repo_name: str) -> int:
        return main(
            ["hdf5", "--mapping", mapping, "--input_dir", str(input_dir), "--output_dir", str(tmp_path / "o"),
             "--repo_name", repo_name]
        )  # fmt: skip

    assert run(tmp_path / "in", "aloha") == 0
    assert load_meta(tmp_path / "o" / "aloha").total_frames == 4
    capsys.readouterr()
    assert run(tmp_path / "nowhere", "x") == 2
    assert (
        f"depi-convert hdf5: error: --input_dir {tmp_path / 'nowhere'} is not a directory"
        in capsys.readouterr().err
    )


def test_variable_length_jpeg_cameras_and_lerobot_source(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    states = np.arange(12, dtype=np.float32).reshape(4, 3)
    with h5py.File(tmp_path / "in" / "ep.hdf5", "w") as handle:
        handle["state"] = states
        handle["action"] = -states
        images = handle.create_dataset("rgb", (4,), dtype=h5py.vlen_dtype(np.uint8))
        for t in range(4):
            images[t] = np.frombuffer(jpeg(_gradient(16, 24, 20 * t)), np.uint8)
    mapping = {
        "fps": 15,
        "task": "push",
        "state": "/state",
        "action": "/action",
        "cameras": {"wrist": "/rgb"},
    }
    root = convert_hdf5(
        HDF5Mapping.from_file(_mapping_file(tmp_path, mapping)), tmp_path / "in", tmp_path, "v"
    )
    dataset = LeRobotSource(root=root)
    assert len(dataset) == 4 and dataset.camera_keys == ["observation.images.wrist"]
    item = dataset[2]
    np.testing.assert_array_equal(item["observation.state"].numpy(), states[2])
    np.testing.assert_array_equal(item["action"].numpy(), -states[2])
    expected = _gradient(16, 24, 40).transpose(2, 0, 1).astype(np.float32)
    assert np.abs(item["observation.images.wrist"].numpy().astype(np.float32) - expected).mean() < 6
