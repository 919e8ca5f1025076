"""Meta of LeRobot v2.0 / v2.1 / v3.0 datasets, and dataset root resolution."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from depi.datasets.format.meta import DatasetFormatError, load_meta, resolve_root
from depi.datasets.format.hub import local_dataset_dir
from tests.datasets.factories import VIDEO_DATASET_SPEC, expected_state


def test_meta_normalized_for_every_version(video_dataset: Path):
    meta = load_meta(video_dataset, repo_id="test/ds")
    version = json.loads((video_dataset / "meta/info.json").read_text())["codebase_version"]
    assert meta.codebase_version == version
    assert meta.repo_id == "test/ds" and meta.fps == 10.0 and meta.robot_type == "so100"
    assert meta.tasks == ["pick up the cube", "open the drawer"]
    assert [ep.length for ep in meta.episodes] == [8, 12, 5]
    assert [(ep.dataset_from_index, ep.dataset_to_index) for ep in meta.episodes] == [
        (0, 8),
        (8, 20),
        (20, 25),
    ]
    assert meta.episodes[1].tasks == ["open the drawer"]
    assert meta.total_frames == 25 and meta.total_episodes == 3
    assert meta.camera_keys == ["observation.images.front", "observation.images.wrist"]
    assert meta.video_keys == ["observation.images.front"] and meta.image_keys == ["observation.images.wrist"]
    assert meta.shapes["observation.state"] == (4,) and meta.shapes["observation.images.front"] == (64, 96, 3)
    for ep in meta.episodes:
        assert (meta.root / ep.data_file).is_file()
        assert (meta.root / ep.video_files["observation.images.front"]).is_file()


def test_v3_episodes_locate_rows_and_video_spans_in_concatenated_files(make_dataset):
    meta = load_meta(make_dataset(VIDEO_DATASET_SPEC, version="v3.0"))
    key = "observation.images.front"
    files = [ep.data_file for ep in meta.episodes]
    assert files == ["data/chunk-000/file-000.parquet"] * 2 + ["data/chunk-000/file-001.parquet"]
    assert [ep.video_files[key] for ep in meta.episodes][1] == f"videos/{key}/chunk-000/file-000.mp4"
    # Episode 1 starts after episode 0's 8 frames in the shared mp4; episode 2 opens a new file at 0 s.
    assert [ep.video_from_timestamp[key] for ep in meta.episodes] == pytest.approx([0.0, 0.8, 0.0])
    assert [ep.video_to_timestamp[key] for ep in meta.episodes] == pytest.approx([0.8, 2.0, 0.5])


@pytest.mark.parametrize("version", ["v2.0", "v2.1"])
def test_v2_episode_paths_follow_templates(make_dataset, version: str):
    meta = load_meta(make_dataset(VIDEO_DATASET_SPEC, version=version))
    ep = meta.episodes[2]
    assert ep.data_file == "data/chunk-000/episode_000002.parquet"
    assert (
        ep.video_files["observation.images.front"]
        == "videos/chunk-000/observation.images.front/episode_000002.mp4"
    )
    assert ep.video_from_timestamp["observation.images.front"] == 0.0
    assert ep.video_to_timestamp["observation.images.front"] == pytest.approx(0.5)


def test_stats_match_the_data_and_v21_pools_episode_stats(video_dataset: Path):
    meta = load_meta(video_dataset)
    states = np.stack(
        [expected_state(e, f, 4) for e, n in enumerate(VIDEO_DATASET_SPEC.episode_lengths) for f in range(n)]
    )
    stats = meta.stats["observation.state"]
    np.testing.assert_allclose(stats["mean"], states.mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats["std"], states.std(0), rtol=1e-4)
    np.testing.assert_allclose(stats["min"], states.min(0))
    np.testing.assert_allclose(stats["max"], states.max(0))
    assert int(np.asarray(stats["count"]).reshape(-1)[0]) == 25


def test_unknown_codebase_version_is_refused(make_dataset):
    root = make_dataset(version="v3.0")
    info = json.loads((root / "meta/info.json").read_text())
    info["codebase_version"] = "v1.6"
    (root / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(DatasetFormatError, match=r"info\.json.*'v1\.6'.*v2\.0.*convert"):
        load_meta(root)


def test_missing_info_json_names_the_path(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="meta/info.json"):
        load_meta(tmp_path)


def test_v3_episode_table_without_required_column_is_refused(make_dataset):
    root = make_dataset(version="v3.0")
    path = root / "meta/episodes/chunk-000/file-000.parquet"
    pq.write_table(pq.read_table(path).drop_columns(["dataset_from_index"]), path)
    with pytest.raises(DatasetFormatError, match=r"file-000\.parquet.*dataset_from_index"):
        load_meta(root)


def test_v2_tasks_with_gaps_are_refused(make_dataset):
    root = make_dataset(version="v2.1")
    (root / "meta/tasks.jsonl").write_text('{"task_index": 0, "task": "a"}\n{"task_index": 2, "task": "b"}\n')
    with pytest.raises(DatasetFormatError, match=r"tasks\.jsonl.*task_index"):
        load_meta(root)


def test_reachy2_meta_comes_from_its_files_not_its_info(reachy2_root: Path):
    meta = load_meta(reachy2_root, repo_id="rerun/reachy2_apple_storage")
    assert meta.info["total_frames"] == 14983 and meta.info["splits"] == {"train": "0:50"}
    assert [ep.length for ep in meta.episodes] == [299, 300, 300]
    assert meta.total_frames == 899 and meta.total_episodes == 3
    assert meta.tasks == ["place the apple in the plate"]
    assert meta.video_keys == ["observation.image"]
    assert meta.episodes[2].video_from_timestamp["observation.image"] == pytest.approx(599 / 30)
    assert meta.stats["observation.state"]["mean"].shape == (19,)


def test_resolve_root_prefers_explicit_root_then_lerobot_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_dataset
):
    monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path / "home"))
    explicit = make_dataset()
    assert resolve_root("owner/name", explicit) == explicit
    local = local_dataset_dir("owner/name")
    assert local == tmp_path / "home" / "owner" / "name"
    (local / "meta").mkdir(parents=True)
    (local / "meta/info.json").write_text("{}")
    assert resolve_root("owner/name") == local


def test_resolve_root_finds_hub_cache_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    repo_dir = tmp_path / "hub" / "datasets--owner--name"
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs/main").write_text("abc123\n")
    snapshot = repo_dir / "snapshots/abc123"
    (snapshot / "meta").mkdir(parents=True)
    (snapshot / "meta/info.json").write_text("{}")
    assert resolve_root("owner/name") == snapshot


def test_resolve_root_missing_names_every_place_searched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path / "home"))
    with pytest.raises(FileNotFoundError, match=r"owner/name.*home/owner/name.*huggingface-cli download"):
        resolve_root("owner/name")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_root("owner/name", tmp_path / "absent")
    with pytest.raises(ValueError, match="owner/name"):
        resolve_root("not-a-repo-id")
