"""depi-validate: clean datasets pass (v2.0, v2.1, v3.0); each kind of inconsistency yields a precise problem."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from depi.datasets.format.validate import main, validate_dataset
from depi.datasets.format.video_encode import append_episode_video
from depi.datasets.format.writer import DatasetWriter
from tests.datasets.factories import REACHY2_ROOT as REACHY
from tests.datasets.factories import CameraSpec, DatasetSpec, make_lerobot_dataset

H, W, FPS = 16, 24, 10
FEATURES = {
    "observation.state": {"dtype": "float32", "shape": (3,), "names": None},
    "action": {"dtype": "float32", "shape": (3,), "names": None},
    "observation.images.front": {
        "dtype": "video",
        "shape": (H, W, 3),
        "names": ["height", "width", "channels"],
    },
}
DATA = "data/chunk-000/file-000.parquet"
EPISODES = "meta/episodes/chunk-000/file-000.parquet"
VIDEO = "videos/observation.images.front/chunk-000/file-000.mp4"


@pytest.fixture
def written(tmp_path: Path) -> Path:
    """Three episodes (5, 4, 6 frames) written by DatasetWriter."""
    root = tmp_path / "ds"
    rng = np.random.default_rng(0)
    with DatasetWriter.create(root, repo_id="test/ds", fps=FPS, features=FEATURES) as writer:
        for length in (5, 4, 6):
            for t in range(length):
                frame = {
                    "observation.state": rng.normal(size=3).astype(np.float32),
                    "action": rng.normal(size=3).astype(np.float32),
                    "observation.images.front": np.full((H, W, 3), 20 * t, np.uint8),
                }
                writer.add_frame(frame, task="push")
            writer.save_episode()
    return root


def checks(root: Path) -> list[tuple[str, str, str]]:
    return [(p.check, p.file, p.found) for p in validate_dataset(root).problems]


def edit_info(root: Path, **changes: object) -> None:
    info = json.loads((root / "meta/info.json").read_text())
    info.update(changes)
    (root / "meta/info.json").write_text(json.dumps(info))


def edit_column(root: Path, relative: str, name: str, values: pa.Array) -> None:
    table = pq.read_table(root / relative)
    pq.write_table(table.set_column(table.column_names.index(name), name, values), root / relative)


def test_written_dataset_is_clean(written: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert checks(written) == []
    assert main([str(written)]) == 0
    assert "(v3.0): OK" in capsys.readouterr().out


@pytest.mark.parametrize("version", ["v2.0", "v2.1", "v3.0"])
def test_factory_datasets_are_clean(tmp_path: Path, version: str) -> None:
    spec = DatasetSpec(
        version=version, episode_lengths=(6, 5), cameras=(CameraSpec("observation.images.top"),)
    )
    root = make_lerobot_dataset(tmp_path / version, spec)
    assert checks(root) == []


@pytest.mark.skipif(not REACHY.is_dir(), reason=f"real recorded dataset not present at {REACHY}")
def test_reachy2_dataset_reports_every_inconsistency(capsys: pytest.CaptureFixture[str]) -> None:
    report = validate_dataset(REACHY)
    found = [(p.check, p.file, p.found, p.expected) for p in report.problems]
    video = "videos/observation.image/chunk-000/file-000.mp4"
    assert found == [
        ("total_frames", "meta/info.json", "total_frames=14983", "899 (sum of the episodes' lengths)"),
        ("splits", "meta/info.json", "splits['train']='0:50'", "a range within 0:3 (3 episodes)"),
        (
            "video_file",
            video,
            "episode 0, camera 'observation.image', [0.0000, 9.9667) s: file missing",
            "an mp4 with 299 frames for this episode",
        ),
        (
            "video_file",
            video,
            "episode 1, camera 'observation.image', [9.9667, 19.9667) s: file missing",
            "an mp4 with 300 frames for this episode",
        ),
        (
            "video_file",
            video,
            "episode 2, camera 'observation.image', [19.9667, 29.9667) s: file missing",
            "an mp4 with 300 frames for this episode",
        ),
    ]
    assert main([str(REACHY), "--json"]) == 1
    payload = json.loads(capsys.readouterr().out)
    assert payload[0]["ok"] is False and len(payload[0]["problems"]) == 5
    assert payload[0]["problems"][0]["fix"] == "set total_frames to 899 in meta/info.json"


def test_info_totals_and_splits(written: Path) -> None:
    edit_info(written, total_episodes=4, total_tasks=3, splits={"train": "0:9"})
    assert checks(written) == [
        ("total_episodes", "meta/info.json", "total_episodes=4"),
        ("total_tasks", "meta/info.json", "total_tasks=3"),
        ("splits", "meta/info.json", "splits['train']='0:9'"),
    ]


def test_unknown_codebase_version(written: Path) -> None:
    edit_info(written, codebase_version="v1.6")
    assert checks(written) == [("codebase_version", "meta/info.json", "codebase_version='v1.6'")]


def test_v2_placeholders_in_a_v3_dataset(written: Path) -> None:
    edit_info(written, data_path="data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet")
    [problem] = validate_dataset(written).problems
    assert problem.check == "template"
    assert "uses ['episode_chunk', 'episode_index'] (v2.x placeholders)" in problem.found
    assert problem.expected == "placeholders ['chunk_index', 'file_index'] for codebase_version v3.0"


def test_v3_placeholders_in_a_v2_dataset(tmp_path: Path) -> None:
    root = make_lerobot_dataset(tmp_path / "v21", DatasetSpec(version="v2.1"))
    edit_info(root, data_path="data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet")
    [problem] = validate_dataset(root).problems
    assert "(v3.0 placeholders)" in problem.found and "v2.1" in problem.expected


def test_nan_and_bad_timestamps(written: Path) -> None:
    state = pq.read_table(written / DATA).column("observation.state").to_pylist()
    state[6][1] = float("nan")
    edit_column(written, DATA, "observation.state", pa.array(state, pa.list_(pa.float32(), 3)))
    timestamps = pq.read_table(written / DATA).column("timestamp").to_numpy().copy()
    timestamps[12] += 0.05
    edit_column(written, DATA, "timestamp", pa.array(timestamps))
    assert checks(written) == [
        ("nan", DATA, "episode 1: 'observation.state' holds 1 NaN/inf values"),
        ("timestamp", DATA, "episode 2: 2 steps differ from 1/fps, first at frame 3 (step 0.150000 s)"),
    ]


def test_varying_state_width(written: Path) -> None:
    state = pq.read_table(written / DATA).column("observation.state").to_pylist()
    state[10] = state[10][:2]
    edit_column(written, DATA, "observation.state", pa.array(state, pa.list_(pa.float32())))
    assert checks(written) == [("dims", DATA, "episode 2: 'observation.state' rows have widths [2, 3]")]


def test_missing_episode_and_rows(written: Path) -> None:
    table = pq.read_table(written / EPISODES)
    pq.write_table(table.filter(pa.compute.not_equal(table.column("episode_index"), 1)), written / EPISODES)
    found = checks(written)
    assert ("episode_index", "meta/episodes", "episode indices missing [1], duplicated []") in found
    assert ("total_episodes", "meta/info.json", "total_episodes=3") in found


def test_missing_data_file(written: Path) -> None:
    (written / DATA).unlink()
    assert checks(written) == [("data_file", DATA, "file missing (episodes [0, 1, 2])")]


def test_video_with_too_few_frames(written: Path) -> None:
    append_episode_video(written / VIDEO, 1.3, None, written / VIDEO)  # drop the last 2 frames of episode 2
    assert checks(written) == [
        ("video_frames", VIDEO, "episode 2, camera 'observation.images.front', [0.9000, 1.5000) s: 4 frames")
    ]


def test_v21_per_dimension_count(tmp_path: Path) -> None:
    root = make_lerobot_dataset(tmp_path / "v21", DatasetSpec(version="v2.1", episode_lengths=(4, 3)))
    path = root / "meta/episodes_stats.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[1]["stats"]["action"]["count"] = [3] * 6
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    [problem] = validate_dataset(root).problems
    assert (problem.check, problem.file) == ("stats_count", "meta/episodes_stats.jsonl")
    assert problem.found.startswith("episode 1: stats['action'].count has 6 elements")


def test_repo_id_resolves_through_lerobot_home(
    written: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = written.parent / "home"
    (home / "me").mkdir(parents=True)
    (home / "me" / "ds").symlink_to(written)
    monkeypatch.setenv("HF_LEROBOT_HOME", str(home))
    assert main(["me/ds", "--json"]) == 0
    assert main(["me/absent"]) == 1
    assert "not found" in capsys.readouterr().out
