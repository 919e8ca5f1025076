"""MultiLeRobotDataset on real on-disk datasets: canonical sample, camera masks, chunks in seconds,
annotations, bad datasets, sample-load failures."""

import json

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from depi.constants import (
    ACTION_DIM_MASK,
    ACTION_IS_PAD,
    ACTIONS,
    BASE_CAMERA,
    DATASET_INDEX,
    EMBODIMENT,
    EPISODE_INDEX,
    FRAME_INDEX,
    IMAGE,
    IMAGE_MASK,
    LEFT_WRIST_CAMERA,
    PROMPT,
    RIGHT_WRIST_CAMERA,
    STATE,
)
from depi.datasets.mixture.config import DatasetConfig
from depi.datasets.mixture.dataset import MixtureIterableDataset, MultiLeRobotDataset
from tests.datasets.factories import (
    CameraSpec,
    DatasetSpec,
    expected_action,
    expected_state,
    identify_frame,
    make_lerobot_dataset,
)

H = 8


def cams(*names):
    return tuple(CameraSpec(f"observation.images.{n}", height=48, width=64) for n in names)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A folder of datasets in the ``<owner>/<name>`` layout."""
    root = tmp_path_factory.mktemp("lerobot")
    make_lerobot_dataset(
        root / "alice/one_cam",
        DatasetSpec(version="v2.1", episode_lengths=(10, 6), fps=30, cameras=cams("phone")),
    )
    make_lerobot_dataset(
        root / "bob/three_cams",
        DatasetSpec(
            version="v3.0",
            episode_lengths=(12,),
            fps=30,
            state_dim=14,
            action_dim=14,
            robot_type="aloha",
            cameras=cams("cam_high", "cam_left_wrist", "cam_right_wrist"),
        ),
    )
    make_lerobot_dataset(
        root / "carol/slow",
        DatasetSpec(version="v3.0", episode_lengths=(9, 7), fps=15, cameras=cams("laptop", "wrist")),
    )
    return root


def config(root, ids, tmp_path, **kw):
    ids_file = tmp_path / "ids.json"
    ids_file.write_text(json.dumps(ids))
    kw.setdefault("annotations_dir", str(tmp_path / "no_annotations"))
    return DatasetConfig(repo_ids=str(ids_file), root=str(root), action_horizon=H, **kw)


def row_of(mixture, repo_id, episode_position, frame):
    d = mixture.repo_ids.index(repo_id)
    e = int(mixture.index.episode_offsets[d]) + episode_position
    return int(mixture.index.offsets[d] + mixture.index.episode_start[e] + frame)


def test_masks_one_camera_mixed_with_three(hub, tmp_path):
    mixture = MultiLeRobotDataset(config(hub, ["alice/one_cam", "bob/three_cams"], tmp_path), verbose=False)
    one = mixture[row_of(mixture, "alice/one_cam", 1, 3)]
    three = mixture[row_of(mixture, "bob/three_cams", 0, 5)]
    assert {k: bool(v) for k, v in one[IMAGE_MASK].items()} == {
        BASE_CAMERA: True,
        LEFT_WRIST_CAMERA: False,
        RIGHT_WRIST_CAMERA: False,
    }
    assert all(bool(v) for v in three[IMAGE_MASK].values())
    for sample in (one, three):
        assert set(sample[IMAGE]) == {BASE_CAMERA, LEFT_WRIST_CAMERA, RIGHT_WRIST_CAMERA}
        assert all(img.shape == (3, 224, 224) and img.dtype == torch.uint8 for img in sample[IMAGE].values())
    assert one[IMAGE][LEFT_WRIST_CAMERA].sum() == 0 and one[IMAGE][RIGHT_WRIST_CAMERA].sum() == 0
    # the right camera fed each slot (camera position 0, 1, 2 in the dataset), and the right frame
    for slot, position in ((BASE_CAMERA, 0), (LEFT_WRIST_CAMERA, 1), (RIGHT_WRIST_CAMERA, 2)):
        content = three[IMAGE][slot][:, 28:196, :]  # 64x48 resized to 224x168, padded top and bottom
        assert identify_frame(content.numpy()) == (0, 5, position)
    assert identify_frame(one[IMAGE][BASE_CAMERA][:, 28:196, :].numpy()) == (1, 3, 0)

    np.testing.assert_array_equal(one[STATE][:6], expected_state(1, 3, 6))
    assert one[STATE][6:].abs().sum() == 0 and one[STATE].shape == (32,)
    assert one[ACTION_DIM_MASK].sum() == 6 and three[ACTION_DIM_MASK].sum() == 14
    assert (one[EPISODE_INDEX], one[FRAME_INDEX], one[DATASET_INDEX]) == (1, 3, 0)
    assert one[EMBODIMENT] == "so100/s6_a6" and three[EMBODIMENT] == "aloha/s14_a14"
    assert one[PROMPT] == "open the drawer"

    batch = next(iter(DataLoader(mixture, batch_size=4, sampler=mixture.make_sampler(), num_workers=2)))
    assert batch[IMAGE][BASE_CAMERA].shape == (4, 3, 224, 224) and batch[ACTIONS].shape == (4, H, 32)
    assert batch[IMAGE_MASK][RIGHT_WRIST_CAMERA].dtype == torch.bool and len(batch[PROMPT]) == 4


def test_15fps_chunk_covers_same_seconds_as_30fps(hub, tmp_path):
    mixture = MultiLeRobotDataset(config(hub, ["alice/one_cam", "carol/slow"], tmp_path), verbose=False)
    fast = mixture[row_of(mixture, "alice/one_cam", 0, 2)]  # t = 2/30 s
    slow = mixture[row_of(mixture, "carol/slow", 0, 1)]  # t = 1/15 s
    k = np.arange(H)
    # the factory's actions are linear in time: action[0] = -(frame) = -(t * fps)
    np.testing.assert_allclose(fast[ACTIONS][:, 0].numpy(), -(2 + k), atol=1e-5)
    np.testing.assert_allclose(slow[ACTIONS][:, 0].numpy() * 2, -(2 + k), atol=1e-5)  # same seconds, 15 fps
    assert not fast[ACTION_IS_PAD].any() and not slow[ACTION_IS_PAD].any()
    np.testing.assert_allclose(
        slow[ACTIONS][:, :6].numpy(), expected_action(0, 1, 6) - (k[:, None] / 2.0), atol=1e-5
    )

    end = mixture[
        row_of(mixture, "carol/slow", 1, 5)
    ]  # episode of 7 frames at 15 fps: 1 more frame = 2 steps
    assert end[ACTION_IS_PAD].tolist() == [False, False, False] + [True] * (H - 3)
    np.testing.assert_allclose(
        end[ACTIONS][3:, :6].numpy(), np.repeat(expected_action(1, 6, 6)[None], H - 3, 0)
    )


def test_annotation_prompt_and_camera_pose(hub, tmp_path):
    notes = tmp_path / "annotations"
    notes.mkdir()
    (notes / "carol_slow.json").write_text(
        json.dumps(
            {
                "repo_id": "carol/slow",
                "cameras": {"wrist": {"camera_pose": "third_person"}, "laptop": {"camera_pose": "unused"}},
                "episodes": {"1": {"task": "stack the red block on the blue one"}},
            }
        )
    )
    mixture = MultiLeRobotDataset(
        config(hub, ["carol/slow"], tmp_path, annotations_dir=str(notes)), verbose=False
    )
    assert mixture.index.entries[0].roles.slots == {BASE_CAMERA: "observation.images.wrist"}
    assert mixture[row_of(mixture, "carol/slow", 1, 0)][PROMPT] == "stack the red block on the blue one"
    assert mixture[row_of(mixture, "carol/slow", 0, 0)][PROMPT] == "pick up the cube"


def test_broken_dataset_reported_not_fatal(hub, tmp_path, capsys):
    broken = tmp_path / "lerobot"
    make_lerobot_dataset(broken / "dave/no_data", DatasetSpec(version="v3.0", cameras=cams("top")))
    next((broken / "dave/no_data").glob("data/**/*.parquet")).unlink()
    make_lerobot_dataset(broken / "gina/no_camera", DatasetSpec(version="v2.0"))
    for name in ("alice/one_cam", "carol/slow"):
        (broken / name).parent.mkdir(parents=True, exist_ok=True)
        (broken / name).symlink_to(hub / name)
    report = tmp_path / "report.json"
    ids = ["alice/one_cam", "dave/no_data", "carol/slow", "erin/absent", "gina/no_camera"]
    mixture = MultiLeRobotDataset(
        config(broken, ids, tmp_path, report_path=str(report), min_valid_fraction=0.4)
    )
    assert mixture.repo_ids == ["alice/one_cam", "carol/slow"]
    data = json.loads(report.read_text())
    reasons = {x["repo_id"]: x["reason"] for x in data["excluded"]}
    assert "file-000.parquet is missing" in reasons["dave/no_data"]
    assert "no camera feeds an image slot" in reasons["gina/no_camera"]
    assert "not found" in reasons["erin/absent"]
    assert [k["repo_id"] for k in data["kept"]] == mixture.repo_ids
    out = capsys.readouterr().out
    assert "2 datasets kept, 3 excluded" in out and "dave/no_data" in out

    with pytest.raises(RuntimeError, match="(?s)fewer than min_valid_fraction=0.5.*dave/no_data"):
        MultiLeRobotDataset(config(broken, ids, tmp_path, min_valid_fraction=0.5), verbose=False)


def test_failed_sample_replaced_counted_and_bounded(hub, tmp_path, caplog):
    copy = tmp_path / "lerobot"
    make_lerobot_dataset(
        copy / "frank/videos", DatasetSpec(version="v2.1", episode_lengths=(5, 5), cameras=cams("front"))
    )
    mixture = MultiLeRobotDataset(config(copy, ["frank/videos"], tmp_path), verbose=False)
    video = sorted((copy / "frank/videos").glob("videos/**/*.mp4"))[1]
    video.write_bytes(b"not an mp4")  # episode 1 breaks after indexing
    sample = mixture[row_of(mixture, "frank/videos", 1, 2)]
    assert sample[EPISODE_INDEX] == 0 and mixture.load_failures >= 1
    assert "frank/videos, episode 1, frame 2 (row 7)" in caplog.text

    strict = MultiLeRobotDataset(config(copy, ["frank/videos"], tmp_path, max_load_retries=0), verbose=False)
    with pytest.raises(RuntimeError, match="0 replacement frames failed"):
        strict[row_of(strict, "frank/videos", 1, 2)]


def test_iterable_dataset_matches_sampler_order(hub, tmp_path):
    mixture = MultiLeRobotDataset(config(hub, ["alice/one_cam", "carol/slow"], tmp_path), verbose=False)
    sampler = mixture.make_sampler(batch_size=2)
    expected = [sampler.rank_stream(j) for j in range(8)]
    stream = MixtureIterableDataset(
        mixture, sampler, transform=lambda s: {"g": (s[DATASET_INDEX], s[EPISODE_INDEX], s[FRAME_INDEX])}
    )
    got = [s["g"] for _, s in zip(range(8), stream, strict=False)]
    want = []
    for g in expected:
        d, row, e = mixture.index.locate(g)
        sample = mixture[g]
        want.append((d, sample[EPISODE_INDEX], sample[FRAME_INDEX]))
    assert got == want


def test_pickled_mixture_reopens_sources(hub, tmp_path):
    import pickle

    mixture = MultiLeRobotDataset(config(hub, ["alice/one_cam"], tmp_path), verbose=False)
    first = mixture[3]
    clone = pickle.loads(pickle.dumps(mixture))
    assert not clone._sources
    again = clone[3]
    assert torch.equal(first[ACTIONS], again[ACTIONS]) and torch.equal(
        first[IMAGE][BASE_CAMERA], again[IMAGE][BASE_CAMERA]
    )


def test_declared_dims_disagreeing_with_data_fail_fast(tmp_path, caplog):
    root = tmp_path / "lerobot"
    make_lerobot_dataset(
        root / "hana/liar", DatasetSpec(version="v3.0", episode_lengths=(6,), cameras=cams("top"))
    )
    info_path = root / "hana/liar/meta/info.json"
    info = json.loads(info_path.read_text())
    info["features"]["action"]["shape"] = [7]  # the parquet holds 6
    info_path.write_text(json.dumps(info))
    mixture = MultiLeRobotDataset(config(root, ["hana/liar"], tmp_path, max_load_retries=3), verbose=False)
    with pytest.raises(RuntimeError, match="3 replacement frames failed"):
        mixture[0]
    assert mixture.load_failures == 4
    assert "column 'action' has shape (6, 6); meta/info.json and the episode table say (6, 7)" in caplog.text


class _ThreadsAndSample(torch.utils.data.Dataset):
    """The mixture's sample plus the worker's torch thread count."""

    def __init__(self, mixture):
        self.mixture = mixture

    def __len__(self):
        return len(self.mixture)

    def __getitem__(self, i):
        return {"threads": torch.get_num_threads(), "image": self.mixture[i][IMAGE][BASE_CAMERA]}


def test_training_dataloader_workers_use_one_torch_thread(hub, tmp_path):
    from depi.datasets.mixture.dataset import worker_init
    from depi.train.data import build_dataloader

    mixture = MultiLeRobotDataset(config(hub, ["carol/slow"], tmp_path), verbose=False)
    data = type("Data", (), {"dataset": _ThreadsAndSample(mixture), "sampler": list(range(6))})()
    loader = build_dataloader(data, batch_size=3, num_workers=2, seed=0, rank=0)
    assert loader.worker_init_fn is worker_init
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        batches = list(loader)
    finally:
        torch.set_num_threads(threads)
    assert [b["threads"].tolist() for b in batches] == [[1, 1, 1], [1, 1, 1]]
    expected = torch.stack([mixture[i][IMAGE][BASE_CAMERA] for i in range(6)])
    assert torch.equal(torch.cat([b["image"] for b in batches]), expected)
    assert build_dataloader(data, batch_size=3, num_workers=0, seed=0, rank=0).worker_init_fn is None
