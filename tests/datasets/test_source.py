"""LeRobotSource: frames, action chunks, decoded cameras, episode subsets, memory mapping, error messages."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from depi.datasets.format.meta import DatasetFormatError
from depi.datasets.format.hub import arrow_cache_dir
from depi.datasets.format.source import LeRobotSource
from depi.datasets.format.video import FrameTimestampError
from tests.datasets.factories import (
    VIDEO_DATASET_SPEC,
    CameraSpec,
    expected_action,
    expected_state,
    identify_frame,
)

FRONT, WRIST = "observation.images.front", "observation.images.wrist"
LENGTHS = VIDEO_DATASET_SPEC.episode_lengths  # (8, 12, 5)
FRAMES = [(e, f) for e, n in enumerate(LENGTHS) for f in range(n)]  # source position -> (episode, frame)


def test_every_frame_holds_its_own_values(video_dataset: Path):
    source = LeRobotSource(root=video_dataset, cameras=[])
    assert len(source) == 25 and source.num_episodes == 3 and source.fps == 10.0
    assert source.episode_ranges.tolist() == [[0, 8], [8, 20], [20, 25]]
    assert source.episode_ranges.dtype == np.int64
    for idx, (ep, frame) in enumerate(FRAMES):
        item = source[idx]
        np.testing.assert_array_equal(item["observation.state"].numpy(), expected_state(ep, frame, 4))
        np.testing.assert_array_equal(item["action"].numpy(), expected_action(ep, frame, 3))
        assert item["observation.state"].dtype == torch.float32 and item["index"].dtype == torch.int64
        assert (int(item["episode_index"]), int(item["frame_index"]), int(item["index"])) == (ep, frame, idx)
        assert float(item["timestamp"]) == pytest.approx(frame / 10)
        assert item["task"] == VIDEO_DATASET_SPEC.tasks[ep % 2]
    assert int(source[-1]["index"]) == 24
    with pytest.raises(IndexError, match="frame 25 out of range"):
        source[25]


def test_cameras_decode_the_requested_frames(video_dataset: Path):
    source = LeRobotSource(root=video_dataset)
    for idx in (0, 7, 8, 15, 19, 20, 24):  # both sides of every episode and file boundary
        item = source[idx]
        assert item[FRONT].shape == (3, 64, 96) and item[FRONT].dtype == torch.uint8
        assert identify_frame(item[FRONT].numpy()) == (*FRAMES[idx], 0)
        assert identify_frame(item[WRIST].numpy()) == (*FRAMES[idx], 1)


def test_action_chunk_is_padded_past_the_episode_end(video_dataset: Path):
    horizon = 6
    source = LeRobotSource(
        root=video_dataset, delta_timestamps={"action": [k / 10 for k in range(horizon)]}, cameras=[]
    )
    item = source[16]  # episode 1, frame 8 of 12: frames 8..11 exist, two steps past the end
    assert item["action"].shape == (horizon, 3)
    assert item["action_is_pad"].tolist() == [False] * 4 + [True] * 2
    expected = np.stack([expected_action(1, min(f, 11), 3) for f in range(8, 8 + horizon)])
    np.testing.assert_array_equal(item["action"].numpy(), expected)  # padded steps repeat the last frame
    assert not source[8]["action_is_pad"].any()


def test_past_offsets_clamp_to_the_episode_start_and_cameras_follow(video_dataset: Path):
    source = LeRobotSource(
        root=video_dataset,
        delta_timestamps={"observation.state": [-0.2, -0.1, 0.0], FRONT: [-0.1, 0.0], WRIST: [0.0, 0.1]},
    )
    item = source[9]  # episode 1, frame 1
    assert item["observation.state_is_pad"].tolist() == [True, False, False]
    np.testing.assert_array_equal(item["observation.state"][0].numpy(), expected_state(1, 0, 4))
    assert [identify_frame(x.numpy())[:2] for x in item[FRONT]] == [(1, 0), (1, 1)]
    assert [identify_frame(x.numpy())[:2] for x in item[WRIST]] == [(1, 1), (1, 2)]
    assert item[FRONT].shape == (2, 3, 64, 96) and item[f"{FRONT}_is_pad"].tolist() == [False, False]


def test_delta_timestamps_off_the_frame_grid_are_refused(video_dataset: Path):
    with pytest.raises(ValueError, match=r"delta_timestamps\['action'\].*0\.05.*1/fps"):
        LeRobotSource(root=video_dataset, delta_timestamps={"action": [0.0, 0.05]})
    with pytest.raises(ValueError, match="not a feature"):
        LeRobotSource(root=video_dataset, delta_timestamps={"observation.velocity": [0.0]})


def test_episode_subset(video_dataset: Path):
    source = LeRobotSource(root=video_dataset, episodes=[2, 0])
    assert len(source) == 13 and source.episode_ranges.tolist() == [[0, 8], [8, 13]]
    assert int(source[8]["episode_index"]) == 2 and int(source[8]["frame_index"]) == 0
    assert identify_frame(source[12][FRONT].numpy())[:2] == (2, 4)
    np.testing.assert_array_equal(source.column("episode_index"), [0] * 8 + [2] * 5)
    middle = LeRobotSource(root=video_dataset, episodes=[1])  # starts mid-file in v3.0
    assert len(middle) == 12 and int(middle[0]["index"]) == 8
    assert identify_frame(middle[5][FRONT].numpy()) == (1, 5, 0)
    assert identify_frame(middle[5][WRIST].numpy()) == (1, 5, 1)
    with pytest.raises(ValueError, match=r"episodes \[7\] do not exist"):
        LeRobotSource(root=video_dataset, episodes=[7])


def test_read_camera_at_episode_timestamps(video_dataset: Path):
    source = LeRobotSource(root=video_dataset)
    for key, position in ((FRONT, 0), (WRIST, 1)):
        frames = source.read_camera(10, key, timestamps_s=[0.0, 0.5, 1.1])
        assert frames.shape == (3, 3, 64, 96)
        assert [identify_frame(x.numpy()) for x in frames] == [
            (1, 0, position),
            (1, 5, position),
            (1, 11, position),
        ]
        assert identify_frame(source.read_camera(10, key)[0].numpy()) == (1, 2, position)


def test_column_is_a_read_only_view_of_the_mapped_file(make_dataset):
    root = make_dataset(version="v3.0", episode_lengths=(30, 40))
    source = LeRobotSource(root=root)  # opening may allocate meta tables; the column itself must not
    allocated_before = pa.total_allocated_bytes()
    state = source.column("observation.state")
    assert state.shape == (70, 6) and not state.flags.writeable and not state.flags.owndata
    assert pa.total_allocated_bytes() - allocated_before < state.nbytes  # columns live in the mapped file
    np.testing.assert_array_equal(state[35], expected_state(1, 5, 6))


def test_one_memory_map_per_v2_dataset(make_dataset):
    root = make_dataset(version="v2.1", episode_lengths=(3, 4, 5, 6))
    before = set(arrow_cache_dir().glob("*.arrow"))
    source = LeRobotSource(root=root)
    assert len(set(arrow_cache_dir().glob("*.arrow")) - before) == 1  # four episode files, one mapped table
    assert source.column("index").tolist() == list(range(18))


def test_pickle_carries_configuration_not_frames(make_dataset):
    root = make_dataset(version="v3.0", episode_lengths=(400, 1200), state_dim=32, action_dim=32)
    source = LeRobotSource(root=root, episodes=[1], delta_timestamps={"action": [0.0, 0.1]})
    payload = pickle.dumps(source)
    assert len(payload) < source.column("action").nbytes / 10
    copy = pickle.loads(payload)
    assert len(copy) == 1200
    torch.testing.assert_close(copy[3]["action"], source[3]["action"])


def test_dataloader_workers_return_the_same_samples(video_dataset: Path):
    source = LeRobotSource(root=video_dataset, delta_timestamps={"action": [0.0, 0.1]})
    source[0]  # open a decoder in the parent: the forked workers must not share it
    loader = torch.utils.data.DataLoader(source, batch_size=5, num_workers=2, multiprocessing_context="fork")
    batches = list(loader)
    assert sum(len(b["index"]) for b in batches) == 25
    fronts = torch.cat([b[FRONT] for b in batches])
    assert [identify_frame(x.numpy())[:2] for x in fronts] == FRAMES
    assert batches[0]["task"][0] == VIDEO_DATASET_SPEC.tasks[0]


def test_variable_length_lists_read_like_fixed_ones(make_dataset):
    source = LeRobotSource(root=make_dataset(variable_length_lists=True))
    assert source.column("action").shape == (20, 6)
    np.testing.assert_array_equal(source[9]["observation.state"].numpy(), expected_state(1, 1, 6))


def test_ragged_lists_are_refused_with_file_and_field(make_dataset):
    root = make_dataset(version="v2.1", variable_length_lists=True)
    path = root / "data/chunk-000/episode_000000.parquet"
    table = pq.read_table(path)
    rows = table.column("action").to_pylist()
    rows[3] = rows[3][:-1]
    table = table.set_column(
        table.schema.get_field_index("action"), "action", pa.array(rows, pa.list_(pa.float32()))
    )
    pq.write_table(table, path)
    with pytest.raises(
        DatasetFormatError, match=r"episode_000000\.parquet column 'action'.*different lengths.*row 3"
    ):
        LeRobotSource(root=root)


def test_inconsistent_timestamps_are_refused(make_dataset):
    root = make_dataset(version="v3.0")
    path = root / "data/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    ts = table.column("timestamp").to_numpy().copy()
    ts[12:] += 0.05  # episode 1 jumps half a frame at its frame 4
    pq.write_table(
        table.set_column(table.schema.get_field_index("timestamp"), "timestamp", pa.array(ts, pa.float32())),
        path,
    )
    with pytest.raises(DatasetFormatError, match=r"episode 1 timestamp jumps.*frame 4.*1/fps = 0\.100000"):
        LeRobotSource(root=root)


def test_rows_disagreeing_with_the_episode_table_are_refused(make_dataset):
    root = make_dataset(version="v3.0")
    path = root / "data/chunk-000/file-000.parquet"
    pq.write_table(pq.read_table(path).slice(0, 15), path)
    with pytest.raises(DatasetFormatError, match=r"episode 1 has 7 rows, the episode table says 12 frames"):
        LeRobotSource(root=root)


def test_missing_column_is_refused(make_dataset):
    root = make_dataset(version="v2.0")
    path = root / "data/chunk-000/episode_000000.parquet"
    pq.write_table(pq.read_table(path).drop_columns(["action"]), path)
    with pytest.raises(DatasetFormatError, match=r"episode_000000\.parquet: columns \['action'\] missing"):
        LeRobotSource(root=root)


def test_missing_video_fails_only_when_its_frames_are_requested(make_dataset):
    root = make_dataset(version="v2.1", cameras=VIDEO_DATASET_SPEC.cameras)
    missing = root / "videos/chunk-000/observation.images.front/episode_000001.mp4"
    missing.unlink()
    source = LeRobotSource(root=root)
    assert identify_frame(source[0][FRONT].numpy())[:2] == (0, 0)
    with pytest.raises(
        FileNotFoundError, match=rf"camera '{FRONT}' for episode 1 not found at .*episode_000001\.mp4"
    ):
        source[9]


def test_reachy2_reads_state_and_action_and_names_its_missing_video(reachy2_root: Path):
    source = LeRobotSource(
        "rerun/reachy2_apple_storage",
        root=reachy2_root,
        delta_timestamps={"action": [k / 30 for k in range(50)]},
        cameras=[],
    )
    assert len(source) == 899 and source.episode_ranges.tolist() == [[0, 299], [299, 599], [599, 899]]
    assert source.column("observation.state").shape == (899, 19)
    item = source[598]
    assert int(item["episode_index"]) == 1 and int(item["frame_index"]) == 299
    assert item["action"].shape == (50, 19) and item["action_is_pad"].sum() == 49
    assert item["task"] == "place the apple in the plate"
    with pytest.raises(
        FileNotFoundError, match=r"camera 'observation\.image' for episode 2 not found at .*file-000\.mp4"
    ):
        source.read_camera(700, "observation.image")
    with pytest.raises(FileNotFoundError, match="observation.image"):
        LeRobotSource(root=reachy2_root)[0]


def test_video_out_of_step_with_the_episode_table_names_camera_and_episode(make_dataset):
    root = make_dataset(version="v3.0", cameras=(CameraSpec(FRONT),))
    path = root / "meta/episodes/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    column = f"videos/{FRONT}/from_timestamp"
    shifted = pa.array([0.0, 0.85])  # episode 1 really starts at 0.8 s in the shared mp4
    pq.write_table(table.set_column(table.schema.get_field_index(column), column, shifted), path)
    source = LeRobotSource(root=root)
    assert identify_frame(source[3][FRONT].numpy())[:2] == (0, 3)
    with pytest.raises(FrameTimestampError, match=rf"camera '{FRONT}', episode 1 \(starts at 0\.850000 s"):
        source[9]


def test_delta_timestamps_on_a_camera_left_out_is_refused(video_dataset: Path):
    with pytest.raises(ValueError, match=r"cameras \['observation\.images\.front'\]"):
        LeRobotSource(root=video_dataset, delta_timestamps={FRONT: [0.0]}, cameras=[WRIST])
