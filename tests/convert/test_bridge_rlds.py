"""Bridge V2 RLDS -> LeRobot v3.0: source reading, episode mapping, end to end on synthetic and real episodes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.convert.lerobot_read import read_frames, read_sidecar, read_video
from tests.convert.rlds_fixtures import bridge_episode, jpeg, write_bridge_dir

from depi.convert.bridge_episodes import (
    BridgeEpisode,
    BridgeFormatError,
    decode_episode,
    iter_episodes,
    num_split_episodes,
    split_files,
)
from depi.convert.bridge_rlds import (
    UNLABELED_TASK,
    BridgeConvertConfig,
    convert_bridge,
    episode_task,
)
from depi.convert.images import decode_image
from depi.convert.progress import ConvertProgress, ConvertResumeError
from depi.convert.tfrecord import TFRecordError
from depi.datasets.format.meta import load_meta
from depi.datasets.format.source import LeRobotSource
from depi.datasets.format.validate import validate_dataset
from depi.datasets.format.writer import DatasetWriter

BRIDGE_SAMPLE = Path(__file__).resolve().parents[3] / "shared/data/bridge_v2_rlds_sample/bridge_dataset/1.0.0"
needs_sample = pytest.mark.skipif(
    not BRIDGE_SAMPLE.is_dir(), reason=f"shared Bridge sample not at {BRIDGE_SAMPLE}"
)


@pytest.fixture
def synthetic(tmp_path: Path) -> tuple[Path, list[dict]]:
    """Four episodes: #1 lacks image_1, #2 has no instruction, #0 misses one image_2 JPEG; image_3 always black."""
    rng = np.random.default_rng(0)
    episodes = [
        bridge_episode(rng, 4),
        bridge_episode(rng, 3, instruction="open the drawer", empty_cameras=("image_1", "image_3")),
        bridge_episode(rng, 5, instruction="", file_path="/raw/bridge/tabletop/flip_pot-upright/val/out.npy"),
        bridge_episode(rng, 2, instruction="wipe the table"),
    ]
    episodes[0]["steps/observation/image_2"][1] = b""
    return write_bridge_dir(tmp_path / "src", {"train": episodes}), episodes


def _states(episodes: list[dict]) -> np.ndarray:
    return np.concatenate([e["steps/observation/state"].reshape(-1, 7) for e in episodes])


def _actions(episodes: list[dict]) -> np.ndarray:
    return np.concatenate([e["steps/action"].reshape(-1, 7) for e in episodes])


def test_split_files_and_counts(synthetic: tuple[Path, list[dict]]) -> None:
    data_dir, _ = synthetic
    assert [p.name for p in split_files(data_dir, "train")] == [
        "bridge_dataset-train.tfrecord-00000-of-00001"
    ]
    assert num_split_episodes(data_dir, "all") == 4
    with pytest.raises(BridgeFormatError, match=r"dataset_info.json: no split 'val'; found \['train'\]"):
        split_files(data_dir, "val")
    with pytest.raises(FileNotFoundError, match=r"dataset_info.json not found: --data_dir must be a TFDS"):
        split_files(data_dir.parent, "train")


def test_decode_episode_checks_schema() -> None:
    rng = np.random.default_rng(1)
    example = bridge_episode(rng, 3)
    episode = decode_episode(example, source_file="f.tfrecord", record_offset=42)
    assert episode.state.shape == (3, 7) and episode.state.dtype == np.float32
    assert episode.source_id == "f.tfrecord@42"
    bad = dict(example, **{"steps/action": np.zeros(20, np.float32)})
    with pytest.raises(
        BridgeFormatError, match=r"f.tfrecord \(record at byte offset 42\): feature 'steps/action' holds 20"
    ):
        decode_episode(bad, source_file="f.tfrecord", record_offset=42)
    del bad["steps/observation/state"]
    with pytest.raises(BridgeFormatError, match=r"feature 'steps/observation/state' is missing"):
        decode_episode(bad, source_file="f.tfrecord", record_offset=42)


def test_task_fallbacks() -> None:
    rng = np.random.default_rng(2)

    def make(**kwargs: str) -> BridgeEpisode:
        return decode_episode(bridge_episode(rng, 2, **kwargs), source_file="f", record_offset=0)

    assert episode_task(make(instruction="  pick up the cup ")) == ("pick up the cup", "instruction")
    assert episode_task(make(instruction="", file_path="/a/toysink2/put_carrot_on-plate/train/out.npy")) == (
        "put carrot on plate",
        "file_path",
    )
    assert episode_task(make(instruction="", file_path="")) == (UNLABELED_TASK, "fallback")


def test_convert_synthetic_end_to_end(synthetic: tuple[Path, list[dict]], tmp_path: Path) -> None:
    data_dir, episodes = synthetic
    root = convert_bridge(BridgeConvertConfig(data_dir=data_dir, output_dir=tmp_path / "out", repo_name="b"))
    assert validate_dataset(root).problems == []
    meta = load_meta(root)
    assert (
        meta.fps == 5 and meta.robot_type == "widowx" and meta.total_episodes == 4 and meta.total_frames == 14
    )
    # image_3 is black in every episode: not a feature of the dataset.
    assert meta.video_keys == [f"observation.images.image_{k}" for k in range(3)]
    assert meta.shapes["observation.images.image_0"] == (48, 64, 3)
    frames = read_frames(root)
    np.testing.assert_array_equal(frames["observation.state"], _states(episodes))
    np.testing.assert_array_equal(frames["action"], _actions(episodes))
    assert frames["episode_index"].tolist() == [0] * 4 + [1] * 3 + [2] * 5 + [3] * 2
    tasks = [meta.episodes[i].tasks for i in range(4)]
    assert tasks == [
        ["put the spoon in the pot"],
        ["open the drawer"],
        ["flip pot upright"],
        ["wipe the table"],
    ]

    sidecar = read_sidecar(root)
    assert sidecar["complete"] and sidecar["cameras"] == ["image_0", "image_1", "image_2"]
    entries = sidecar["episodes"]
    assert [e["episode_index"] for e in entries] == [0, 1, 2, 3]
    assert entries[1]["missing_cameras"] == ["image_1"] and "missing_cameras" not in entries[0]
    assert entries[0]["blank_frames"] == {"image_2": [1]}
    assert entries[2]["task_source"] == "file_path"

    image_1 = read_video(root, "observation.images.image_1")
    assert image_1.shape == (14, 48, 64, 3)
    assert image_1[4:7].mean() < 3  # episode 1 has no image_1: black frames
    assert image_1[:4].mean() > 60
    image_2 = read_video(root, "observation.images.image_2")
    assert image_2[1].mean() < 3 and image_2[0].mean() > 60


def test_resize_with_pad_and_explicit_cameras(synthetic: tuple[Path, list[dict]], tmp_path: Path) -> None:
    data_dir, _ = synthetic
    config = BridgeConvertConfig(
        data_dir=data_dir,
        output_dir=tmp_path,
        repo_name="r",
        resize=32,
        cameras="image_0,image_3",
        max_episodes=2,
    )
    root = convert_bridge(config)
    meta = load_meta(root)
    assert meta.total_episodes == 2
    assert meta.video_keys == ["observation.images.image_0", "observation.images.image_3"]
    video = read_video(root, "observation.images.image_0")
    assert video.shape == (7, 32, 32, 3)
    # 48x64 -> 24x32 centred in 32x32: 4 black rows above and below (h264 blurs the edge a little).
    assert video[:, :3].mean() < 5 and video[:, -3:].mean() < 5 and video[:, 8:24].mean() > 60
    assert [e.get("missing_cameras") for e in read_sidecar(root)["episodes"]] == [["image_3"], ["image_3"]]


def test_resume_after_interruption(
    synthetic: tuple[Path, list[dict]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir, episodes = synthetic
    config = BridgeConvertConfig(data_dir=data_dir, output_dir=tmp_path, repo_name="r")
    original = DatasetWriter.save_episode

    def crash_on_third(self: DatasetWriter) -> int:
        if self.num_episodes == 2:
            raise KeyboardInterrupt("power cut")
        return original(self)

    monkeypatch.setattr(DatasetWriter, "save_episode", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        convert_bridge(config)
    sidecar = read_sidecar(config.root)
    assert len(sidecar["episodes"]) == 2 and not sidecar["complete"]
    assert load_meta(config.root).total_episodes == 2

    monkeypatch.setattr(DatasetWriter, "save_episode", original)
    convert_bridge(config)
    assert validate_dataset(config.root).problems == []
    frames = read_frames(config.root)
    np.testing.assert_array_equal(frames["observation.state"], _states(episodes))
    assert frames["index"].tolist() == list(range(14))
    assert [e["source_id"].split("@")[1] for e in read_sidecar(config.root)["episodes"]] == [
        e["source_id"].split("@")[1]
        for e in ConvertProgress.load(config.root, "bridge", config.settings()).episodes
    ]
    assert read_sidecar(config.root)["complete"]
    # A third run finds everything done and writes nothing new.
    convert_bridge(config)
    assert load_meta(config.root).total_episodes == 4


def test_resume_after_crash_between_save_and_sidecar(
    synthetic: tuple[Path, list[dict]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir, episodes = synthetic
    config = BridgeConvertConfig(data_dir=data_dir, output_dir=tmp_path, repo_name="r")
    original = ConvertProgress.record_episode

    def crash_on_second(self: ConvertProgress, entry: dict) -> None:
        if len(self.episodes) == 1:
            raise KeyboardInterrupt("killed after save_episode")
        original(self, entry)

    monkeypatch.setattr(ConvertProgress, "record_episode", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        convert_bridge(config)
    assert load_meta(config.root).total_episodes == 2 and len(read_sidecar(config.root)["episodes"]) == 1
    monkeypatch.setattr(ConvertProgress, "record_episode", original)
    convert_bridge(config)
    np.testing.assert_array_equal(read_frames(config.root)["observation.state"], _states(episodes))
    assert len(read_sidecar(config.root)["episodes"]) == 4


def test_rerun_with_other_settings_is_refused(synthetic: tuple[Path, list[dict]], tmp_path: Path) -> None:
    data_dir, _ = synthetic
    convert_bridge(BridgeConvertConfig(data_dir=data_dir, output_dir=tmp_path, repo_name="r", max_episodes=1))
    with pytest.raises(ConvertResumeError, match=r"started with resize=None, this run asks for resize=64"):
        convert_bridge(BridgeConvertConfig(data_dir=data_dir, output_dir=tmp_path, repo_name="r", resize=64))
    (tmp_path / "other" / "meta").mkdir(parents=True)
    with pytest.raises(ConvertResumeError, match=r"has no meta/depi_convert.json"):
        convert_bridge(BridgeConvertConfig(data_dir=data_dir, output_dir=tmp_path, repo_name="other"))


def test_frame_size_mismatch_asks_for_resize(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    odd = bridge_episode(rng, 2)
    odd["steps/observation/image_0"] = [jpeg(np.full((30, 30, 3), 128, np.uint8))] * 2
    data_dir = write_bridge_dir(tmp_path / "src", {"train": [bridge_episode(rng, 2), odd]})
    with pytest.raises(
        BridgeFormatError, match=r"camera image_0, step 0: frame shape \(30, 30, 3\).*--resize"
    ):
        convert_bridge(BridgeConvertConfig(data_dir=data_dir, output_dir=tmp_path, repo_name="r"))
    assert (
        load_meta(tmp_path / "r").total_episodes == 1
    )  # the good episode stays; rerun with --resize resumes


def test_corrupt_shard_names_file_and_offset(synthetic: tuple[Path, list[dict]], tmp_path: Path) -> None:
    data_dir, _ = synthetic
    shard = split_files(data_dir, "train")[0]
    raw = bytearray(shard.read_bytes())
    raw[-100] ^= 0x55
    shard.write_bytes(bytes(raw))
    with pytest.raises(
        TFRecordError,
        match=r"bridge_dataset-train.tfrecord-00000-of-00001: corrupt TFRecord at byte offset \d+",
    ):
        list(iter_episodes(data_dir, "train"))


@needs_sample
def test_bridge_sample_converts_exactly(tmp_path: Path) -> None:
    root = convert_bridge(
        BridgeConvertConfig(data_dir=BRIDGE_SAMPLE, output_dir=tmp_path, repo_name="bridge")
    )
    assert validate_dataset(root).problems == []
    source_episodes = list(iter_episodes(BRIDGE_SAMPLE, "train"))
    dataset = LeRobotSource(root=root, delta_timestamps={"action": [k / 5 for k in range(4)]})
    assert dataset.fps == 5 and dataset.num_episodes == 25 and len(dataset) == 250
    assert dataset.camera_keys == [f"observation.images.image_{k}" for k in range(3)]  # image_3 is black here
    np.testing.assert_array_equal(
        dataset.column("observation.state"), np.concatenate([e.state for e in source_episodes])
    )
    np.testing.assert_array_equal(
        dataset.column("action"), np.concatenate([e.action for e in source_episodes])
    )

    sample = dataset[10 + 8]  # episode 1, step 8: the 4-step action chunk runs past the episode's end
    np.testing.assert_array_equal(sample["observation.state"].numpy(), source_episodes[1].state[8])
    np.testing.assert_array_equal(sample["action"][:2].numpy(), source_episodes[1].action[8:10])
    assert sample["action_is_pad"].tolist() == [False, False, True, True]
    assert sample["task"] == source_episodes[1].instructions[0] == "flip pot upright which is in sink"
    image = sample["observation.images.image_0"]
    assert image.dtype == torch.uint8 and tuple(image.shape) == (3, 64, 64)
    expected = decode_image(source_episodes[1].images["image_0"][8]).transpose(2, 0, 1).astype(np.float32)
    assert np.abs(image.numpy().astype(np.float32) - expected).mean() < 8  # h264 at CRF 30 on 64x64 frames
    assert sorted(dataset.tasks) == [
        "flip pot upright which is in sink",
        "put carrot on plate",
        "put cup from counter or drying rack into sink",
        "turn lever vertical to front",
    ]
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["features"]["observation.images.image_0"]["shape"] == [64, 64, 3]


def test_resume_repairs_a_torn_episode_line(synthetic: tuple[Path, list[dict]], tmp_path: Path) -> None:
    data_dir, episodes = synthetic
    config = BridgeConvertConfig(data_dir=data_dir, output_dir=tmp_path, repo_name="r", max_episodes=2)
    convert_bridge(config)
    log = config.root / "meta" / "depi_convert_episodes.jsonl"
    log.write_bytes(log.read_bytes()[:-10])  # a crash while appending the second episode's line
    progress = ConvertProgress.load(config.root, "bridge", config.settings())
    assert len(progress.episodes) == 1 and log.read_bytes().endswith(b"\n")
    config.max_episodes = None
    convert_bridge(config)
    np.testing.assert_array_equal(read_frames(config.root)["observation.state"], _states(episodes))
    assert [e["episode_index"] for e in read_sidecar(config.root)["episodes"]] == [0, 1, 2, 3]
