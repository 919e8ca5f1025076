"""DatasetWriter: LeRobot v3.0 layout, round trip, refusal of bad frames, crash safety, resume, file rollover."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from depi.datasets.format import stats_compute
from depi.datasets.format.writer import DatasetWriter

H, W, FPS = 32, 48, 10
FEATURES = {
    "observation.state": {"dtype": "float32", "shape": (4,), "names": ["a", "b", "c", "d"]},
    "action": {"dtype": "float32", "shape": (3,), "names": None},
    "next.reward": {"dtype": "float32", "shape": (1,), "names": None},
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
REPO_ROOT = Path(__file__).resolve().parents[2]


def make_frame(episode: int, t: int) -> dict[str, np.ndarray]:
    """Deterministic frame; the front camera is a flat grey level 8 * t + 40 * episode (codec friendly)."""
    rng = np.random.default_rng(1000 * episode + t)
    return {
        "observation.state": rng.normal(size=4).astype(np.float32),
        "action": rng.normal(size=3).astype(np.float32),
        "next.reward": np.float32(t / 10),
        "observation.images.front": np.full((H, W, 3), (8 * t + 40 * episode) % 256, np.uint8),
        "observation.images.wrist": rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8),
    }


def write_episodes(writer: DatasetWriter, lengths: list[int], first_episode: int = 0) -> None:
    for offset, length in enumerate(lengths):
        episode = first_episode + offset
        for t in range(length):
            writer.add_frame(make_frame(episode, t), task=f"task {episode % 2}")
        writer.save_episode()


def read_data(root: Path) -> dict[str, np.ndarray]:
    tables = [pq.read_table(p) for p in sorted((root / "data").glob("chunk-*/file-*.parquet"))]
    columns = {}
    for name in tables[0].column_names:
        values = [v for t in tables for v in t.column(name).to_pylist()]
        columns[name] = values if name == "observation.images.wrist" else np.asarray(values)
    return columns


def read_episodes(root: Path) -> list[dict]:
    return [
        r
        for p in sorted((root / "meta/episodes").glob("chunk-*/file-*.parquet"))
        for r in pq.read_table(p).to_pylist()
    ]


def decode_frame(path: Path, timestamp_s: float) -> np.ndarray:
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if abs(frame.time - timestamp_s) < 1e-4:
                return frame.to_ndarray(format="rgb24")
    raise AssertionError(f"no frame at {timestamp_s}s in {path}")


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    with DatasetWriter.create(
        root, repo_id="test/ds", fps=FPS, features=FEATURES, robot_type="so101"
    ) as writer:
        write_episodes(writer, [6, 4, 7])
    return root


def test_layout_and_info(dataset: Path) -> None:
    info = json.loads((dataset / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0"
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (3, 17, 2)
    assert info["splits"] == {"train": "0:3"}
    assert info["features"]["observation.images.front"]["info"]["video.codec"] == "h264"
    assert info["features"]["observation.state"]["shape"] == [4]
    assert {
        "data_files_size_in_mb",
        "video_files_size_in_mb",
        "chunks_size",
        "data_path",
        "video_path",
    } <= set(info)
    assert (dataset / "videos/observation.images.front/chunk-000/file-000.mp4").exists()
    assert not (dataset / ".writer_tmp").exists()
    tasks = pq.read_table(dataset / "meta/tasks.parquet").to_pylist()
    assert tasks == [{"task_index": 0, "task": "task 0"}, {"task_index": 1, "task": "task 1"}]


def test_round_trip_through_pyarrow(dataset: Path) -> None:
    data = read_data(dataset)
    lengths = [6, 4, 7]
    expected = [make_frame(e, t) for e, n in enumerate(lengths) for t in range(n)]
    np.testing.assert_array_equal(
        data["observation.state"], np.stack([f["observation.state"] for f in expected])
    )
    np.testing.assert_array_equal(data["action"], np.stack([f["action"] for f in expected]))
    np.testing.assert_allclose(data["next.reward"], [f["next.reward"] for f in expected])
    np.testing.assert_array_equal(data["index"], np.arange(17))
    np.testing.assert_array_equal(data["episode_index"], np.repeat([0, 1, 2], lengths))
    np.testing.assert_array_equal(data["frame_index"], np.concatenate([np.arange(n) for n in lengths]))
    np.testing.assert_allclose(data["timestamp"], data["frame_index"] / FPS, atol=1e-6)
    np.testing.assert_array_equal(data["task_index"], np.repeat([0, 1, 0], lengths))
    for cell, frame in zip(data["observation.images.wrist"], expected, strict=True):
        np.testing.assert_array_equal(
            np.asarray(Image.open(io.BytesIO(cell["bytes"]))), frame["observation.images.wrist"]
        )


def test_episode_rows_and_video_ranges(dataset: Path) -> None:
    rows = read_episodes(dataset)
    assert [r["episode_index"] for r in rows] == [0, 1, 2]
    assert [(r["dataset_from_index"], r["dataset_to_index"]) for r in rows] == [(0, 6), (6, 10), (10, 17)]
    key = "videos/observation.images.front/"
    ranges = [(r[key + "from_timestamp"], r[key + "to_timestamp"]) for r in rows]
    np.testing.assert_allclose(ranges, [(0.0, 0.6), (0.6, 1.0), (1.0, 1.7)], atol=1e-9)
    assert rows[1]["tasks"] == ["task 1"] and rows[2]["stats/observation.state/count"] == [7]
    video = dataset / "videos/observation.images.front/chunk-000/file-000.mp4"
    for row, episode in zip(rows, range(3), strict=True):
        for t in (0, row["length"] - 1):
            decoded = decode_frame(video, row[key + "from_timestamp"] + t / FPS)
            assert np.abs(decoded.astype(int) - make_frame(episode, t)["observation.images.front"]).max() <= 3


def test_stats_are_exact_over_all_frames(dataset: Path) -> None:
    data = read_data(dataset)
    stats = stats_compute.stats_from_json(json.loads((dataset / "meta/stats.json").read_text()))
    state = data["observation.state"].astype(np.float64)
    np.testing.assert_allclose(stats["observation.state"]["mean"], state.mean(0), rtol=1e-9)
    np.testing.assert_allclose(stats["observation.state"]["std"], state.std(0), rtol=1e-9)
    np.testing.assert_allclose(stats["observation.state"]["min"], state.min(0))
    assert stats["observation.state"]["count"].tolist() == [17]
    assert stats["observation.images.front"]["mean"].shape == (3, 1, 1)
    assert stats["observation.images.front"]["count"].tolist() == [17]
    per_episode = [stats_compute.unflatten_episode_stats(r) for r in read_episodes(dataset)]
    assert per_episode[0]["action"]["q50"].shape == (3,)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"observation.state": np.zeros(5, np.float32)}, "'observation.state' has shape (5,), expected (4,)"),
        ({"observation.state": np.array(["a"] * 4)}, "has dtype <U1, expected float32"),
        ({"action": np.array([0.0, np.nan, 1.0], np.float32)}, "'action' holds NaN or inf at positions [1]"),
        ({"action": np.array([0.0, np.inf, 1.0])}, "NaN or inf"),
        ({"observation.images.front": np.zeros((H, W, 3), np.float32)}, "expected uint8 (32, 48, 3)"),
        ({"observation.images.front": np.zeros((3, H, W), np.uint8)}, "is uint8 (3, 32, 48)"),
        ({"extra": np.zeros(1)}, "unknown keys ['extra']"),
        ({"action": None}, "missing keys ['action']"),
    ],
)
def test_add_frame_refuses_bad_frames(tmp_path: Path, change: dict, message: str) -> None:
    writer = DatasetWriter.create(tmp_path / "ds", repo_id="test/ds", fps=FPS, features=FEATURES)
    frame = {**make_frame(0, 0), **change}
    frame = {k: v for k, v in frame.items() if v is not None}
    with pytest.raises(ValueError) as error:
        writer.add_frame(frame, task="t")
    assert message in str(error.value)
    writer.add_frame(make_frame(0, 0), task="t")  # a refused frame leaves the buffer usable
    assert writer.save_episode() == 0


def test_timestamps_must_increase_and_sit_on_the_video_grid(tmp_path: Path) -> None:
    writer = DatasetWriter.create(tmp_path / "ds", repo_id="test/ds", fps=FPS, features=FEATURES)
    writer.add_frame(make_frame(0, 0), task="t", timestamp=0.0)
    with pytest.raises(ValueError, match="expected frame_index / fps = 0.1 s"):
        writer.add_frame(make_frame(0, 1), task="t", timestamp=0.13)
    with pytest.raises(ValueError, match="greater than the previous frame's"):
        writer.add_frame(make_frame(0, 1), task="t", timestamp=0.0)
    writer.add_frame(make_frame(0, 1), task="t", timestamp=0.1 + 1e-6)
    assert writer.save_episode() == 0


def test_create_refuses_existing_dataset_and_bad_specs(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(FileExistsError, match="DatasetWriter.resume"):
        DatasetWriter.create(dataset, repo_id="test/ds", fps=FPS, features=FEATURES)
    with pytest.raises(ValueError, match="camera shape"):
        DatasetWriter.create(
            tmp_path / "x", repo_id="t/x", fps=FPS, features={"cam": {"dtype": "video", "shape": (3, H, W)}}
        )
    with pytest.raises(ValueError, match="written by the writer itself"):
        DatasetWriter.create(
            tmp_path / "y",
            repo_id="t/y",
            fps=FPS,
            features={"timestamp": {"dtype": "float32", "shape": (1,)}},
        )


def test_finalize_refuses_unsaved_frames(tmp_path: Path) -> None:
    writer = DatasetWriter.create(tmp_path / "ds", repo_id="test/ds", fps=FPS, features=FEATURES)
    writer.add_frame(make_frame(0, 0), task="t")
    with pytest.raises(ValueError, match="save_episode"):
        writer.finalize()
    writer.clear_episode_buffer()
    writer.finalize()
    with pytest.raises(RuntimeError, match="finalized"):
        writer.add_frame(make_frame(0, 0), task="t")


def assert_consistent(root: Path, lengths: list[int]) -> None:
    """info.json totals, episode rows, data rows and video durations agree with ``lengths``."""
    info = json.loads((root / "meta/info.json").read_text())
    assert (info["total_episodes"], info["total_frames"]) == (len(lengths), sum(lengths))
    rows = read_episodes(root)
    assert [r["length"] for r in rows] == lengths
    data = read_data(root)
    np.testing.assert_array_equal(data["index"], np.arange(sum(lengths)))
    last = rows[-1]["videos/observation.images.front/to_timestamp"]
    with av.open(str(root / "videos/observation.images.front/chunk-000/file-000.mp4")) as container:
        times = [f.time for f in container.decode(video=0)]
    assert len(times) == sum(lengths) and max(times) < last


def test_exception_mid_episode_keeps_saved_episodes(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    with (
        pytest.raises(RuntimeError, match="robot disconnected"),
        DatasetWriter.create(root, repo_id="test/ds", fps=FPS, features=FEATURES) as writer,
    ):
        write_episodes(writer, [5, 4])
        writer.add_frame(make_frame(2, 0), task="t")
        raise RuntimeError("robot disconnected")
    assert_consistent(root, [5, 4])


def test_killed_process_mid_episode_then_resume(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    script = textwrap.dedent(
        f"""
        import os, sys
        sys.path[:0] = [{str(REPO_ROOT / "src")!r}, {str(REPO_ROOT)!r}]
        from tests.datasets.test_writer import FEATURES, make_frame, write_episodes
        from depi.datasets.format.writer import DatasetWriter
        writer = DatasetWriter.create({str(root)!r}, repo_id="test/ds", fps={FPS}, features=FEATURES)
        write_episodes(writer, [5, 4])
        for t in range(3):
            writer.add_frame(make_frame(2, t), task="t")
        os.kill(os.getpid(), 9)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, timeout=120)
    assert result.returncode == -9, result.stderr.decode()
    assert_consistent(root, [5, 4])

    writer = DatasetWriter.resume(root)
    assert any("episode 2 ('t', started" in line and "interrupted before save_episode()" in line for line in writer.recovered), writer.recovered
    write_episodes(writer, [6], first_episode=2)
    writer.finalize()
    assert_consistent(root, [5, 4, 6])
    assert read_episodes(root)[2]["videos/observation.images.front/from_timestamp"] == pytest.approx(0.9)


def test_crash_during_save_is_repaired_on_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "ds"
    writer = DatasetWriter.create(root, repo_id="test/ds", fps=FPS, features=FEATURES)
    write_episodes(writer, [5, 4])

    def fail(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(DatasetWriter, "_save_episode_row", fail)
    for t in range(3):
        writer.add_frame(make_frame(2, t), task="t")
    with pytest.raises(OSError, match="disk full"):
        writer.save_episode()  # data and video files already hold episode 2, the meta does not
    monkeypatch.undo()
    assert len(read_data(root)["index"]) == 12
    assert json.loads((root / "meta/info.json").read_text())["total_frames"] == 9

    resumed = DatasetWriter.resume(root)
    assert "episode 2 ('t', started" in resumed.recovered[0], resumed.recovered
    assert "interrupted during save_episode()" in resumed.recovered[0], resumed.recovered
    assert any("rows of an unsaved episode removed" in line for line in resumed.recovered), resumed.recovered
    assert any("video past" in line for line in resumed.recovered), resumed.recovered
    assert_consistent(root, [5, 4])
    write_episodes(resumed, [2], first_episode=2)
    assert_consistent(root, [5, 4, 2])


def test_new_files_when_size_limit_is_reached(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    with DatasetWriter.create(
        root,
        repo_id="test/ds",
        fps=FPS,
        features=FEATURES,
        data_files_size_in_mb=0.001,
        video_files_size_in_mb=0.001,
        chunks_size=2,
    ) as writer:
        write_episodes(writer, [3, 3, 3])
    rows = read_episodes(root)
    assert [(r["data/chunk_index"], r["data/file_index"]) for r in rows] == [(0, 0), (0, 1), (1, 0)]
    assert [r["videos/observation.images.front/file_index"] for r in rows] == [0, 1, 0]
    assert {r["videos/observation.images.front/from_timestamp"] for r in rows} == {0.0}
    assert (root / "data/chunk-001/file-000.parquet").exists()
    assert (root / "videos/observation.images.front/chunk-001/file-000.mp4").exists()
    np.testing.assert_array_equal(read_data(root)["index"], np.arange(9))


def test_round_trip_through_lerobot_source(dataset: Path) -> None:
    source_module = pytest.importorskip(
        "depi.datasets.format.source", reason="depi.datasets.format.source is not available"
    )
    source = source_module.LeRobotSource("test/ds", root=dataset)
    assert (source.num_episodes, len(source)) == (3, 17)
    expected = [make_frame(e, t) for e, n in enumerate([6, 4, 7]) for t in range(n)]
    for idx in (0, 7, 16):
        item = source[idx]
        np.testing.assert_array_equal(item["observation.state"].numpy(), expected[idx]["observation.state"])
        np.testing.assert_array_equal(
            item["observation.images.wrist"].numpy(),
            expected[idx]["observation.images.wrist"].transpose(2, 0, 1),
        )
        front = item["observation.images.front"].numpy().astype(int)
        assert np.abs(front - expected[idx]["observation.images.front"].transpose(2, 0, 1)).max() <= 3


@pytest.mark.parametrize("value_range", [(0, 255), (17, 18), (200, 200), (0, 3)])
def test_camera_stats_from_histograms_equal_the_direct_float_computation(value_range: tuple[int, int]) -> None:
    """uint8 camera stats come from per-channel histograms; they must equal np.quantile / mean / std of
    frames / 255 in float64 (quantiles, min and max exactly; moments up to summation order)."""
    rng = np.random.default_rng(sum(value_range))
    for shape in [(1, 1, 1, 3), (3, 7, 5, 3), (11, 30, 41, 3)]:
        frames = rng.integers(value_range[0], value_range[1] + 1, shape, dtype=np.uint8)
        got = stats_compute.camera_stats(frames)
        reference = stats_compute.numeric_stats(frames.astype(np.float64).reshape(-1, 3) / 255.0)
        assert got["count"].tolist() == [shape[0]]
        for key in ("min", "max", *stats_compute.QUANTILE_KEYS):
            np.testing.assert_array_equal(got[key].reshape(3), reference[key], err_msg=f"{key} {shape}")
        for key in ("mean", "std"):
            np.testing.assert_allclose(got[key].reshape(3), reference[key], rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="without sampled frames"):
        stats_compute.camera_stats(np.zeros((0, 4, 4, 3), dtype=np.uint8))
