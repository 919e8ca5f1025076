"""Exact per-group normalization stats: numpy equality, subsampling, openpi files, content-hash cache."""

import json
from pathlib import Path

import numpy as np
import pytest

from depi.datasets.stats import (
    MANIFEST_NAME,
    StatsInput,
    array_stats,
    compute_group_stats,
    group_stats,
    subsample_rows,
)
from depi.transforms.norm_stats import load_group_norm_stats


def make_input(tmp_path, name, frames, dim, seed):
    rng = np.random.default_rng(seed)
    columns = {
        "observation.state": rng.normal(size=(frames, dim)).astype(np.float32),
        "action": rng.standard_t(3, size=(frames, dim)).astype(np.float32) * 10,
    }
    path = tmp_path / f"{name}.parquet"
    path.write_bytes(columns["action"].tobytes())
    return StatsInput(f"test/{name}", [path], frames, columns.__getitem__), columns


def test_array_stats_equal_numpy_exact():
    x = np.random.default_rng(0).exponential(size=(10001, 7)).astype(np.float32)
    stats = array_stats(x)
    ref = x.astype(np.float64)
    np.testing.assert_array_equal(
        stats.q01, np.quantile(ref, 0.01, axis=0, method="linear").astype(np.float32)
    )
    np.testing.assert_array_equal(
        stats.q99, np.quantile(ref, 0.99, axis=0, method="linear").astype(np.float32)
    )
    np.testing.assert_array_equal(stats.mean, ref.mean(axis=0).astype(np.float32))
    np.testing.assert_array_equal(stats.std, ref.std(axis=0).astype(np.float32))
    np.testing.assert_array_equal(stats.min, x.min(axis=0))
    np.testing.assert_array_equal(stats.max, x.max(axis=0))


def test_array_stats_rejects_nan_and_empty():
    x = np.zeros((4, 2))
    x[2, 1] = np.nan
    with pytest.raises(ValueError, match="frame 2, dim 1"):
        array_stats(x)
    with pytest.raises(ValueError, match="non-empty"):
        array_stats(np.zeros((0, 3)))


def test_group_stats_over_datasets_equal_concatenation(tmp_path):
    (a, ca), (b, cb) = make_input(tmp_path, "a", 300, 6, 1), make_input(tmp_path, "b", 700, 6, 2)
    stats = group_stats([a, b])
    both = np.concatenate([ca["action"], cb["action"]]).astype(np.float64)
    np.testing.assert_array_equal(stats["actions"].q99, np.quantile(both, 0.99, axis=0).astype(np.float32))
    np.testing.assert_array_equal(stats["state"].q01.shape, (6,))


def test_subsample_is_uniform_without_replacement_and_seeded():
    rows = subsample_rows([300, 700], 100, seed=4)
    assert sum(len(r) for r in rows) == 100
    assert all(len(np.unique(r)) == len(r) for r in rows)
    assert rows[0].max() < 300 and rows[1].max() < 700
    assert all(
        np.array_equal(x, y) for x, y in zip(rows, subsample_rows([300, 700], 100, seed=4), strict=True)
    )
    assert subsample_rows([10, 10], 100, seed=0) == [None, None]


def test_group_dims_mismatch_names_dataset(tmp_path):
    a, _ = make_input(tmp_path, "a", 50, 6, 1)
    b, _ = make_input(tmp_path, "b", 50, 7, 2)
    with pytest.raises(ValueError, match="test/b.*7 dims.*6"):
        group_stats([a, b])


def test_files_cache_and_invalidation(tmp_path):
    a, ca = make_input(tmp_path, "a", 200, 6, 1)
    b, _ = make_input(tmp_path, "b", 100, 14, 2)
    out = tmp_path / "stats"
    groups = {"so100/s6_a6": [a], "aloha/s14_a14": [b]}
    done = []
    first = compute_group_stats(groups, out, progress=done.append)
    assert done == ["so100/s6_a6", "aloha/s14_a14"]
    on_disk = load_group_norm_stats(out, "so100/s6_a6")
    np.testing.assert_array_equal(on_disk["actions"].q01, first["so100/s6_a6"]["actions"].q01)
    raw = json.loads((out / "so100/s6_a6/norm_stats.json").read_text())
    assert set(raw["norm_stats"]) == {"state", "actions"}
    assert {"mean", "std", "q01", "q99"} <= set(raw["norm_stats"]["actions"])

    def fail(key):
        raise AssertionError("cache hit expected, data was read")

    cached = {
        g: [StatsInput(i.repo_id, i.files, i.num_frames, fail) for i in items] for g, items in groups.items()
    }
    again = compute_group_stats(cached, out)
    np.testing.assert_array_equal(again["aloha/s14_a14"]["state"].mean, first["aloha/s14_a14"]["state"].mean)
    with pytest.raises(AssertionError, match="cache hit expected"):
        compute_group_stats(cached, out, max_frames=50)  # other settings: recompute
    a.files[0].write_bytes(b"changed content, new size")
    with pytest.raises(AssertionError, match="cache hit expected"):
        compute_group_stats(cached, out)  # input files changed: recompute
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["groups"]["so100/s6_a6"] == ["test/a"] and manifest["frames"]["aloha/s14_a14"] == 100


def test_depi_stats_on_datasets_equals_numpy(tmp_path, monkeypatch):
    from depi.datasets.config import DatasetConfig
    from depi.datasets.stats_cli import StatsConfig, main
    from tests.datasets.factories import (
        CameraSpec,
        DatasetSpec,
        expected_action,
        expected_state,
        make_lerobot_dataset,
    )

    root = tmp_path / "lerobot"
    cam = (CameraSpec("observation.images.top", storage="image", height=8, width=8),)
    make_lerobot_dataset(root / "a/v21", DatasetSpec(version="v2.1", episode_lengths=(30, 20), cameras=cam))
    make_lerobot_dataset(
        root / "a/v30", DatasetSpec(version="v3.0", episode_lengths=(25,), fps=15, cameras=cam)
    )
    make_lerobot_dataset(
        root / "b/aloha",
        DatasetSpec(
            version="v3.0",
            episode_lengths=(10,),
            state_dim=14,
            action_dim=14,
            robot_type="aloha",
            cameras=cam,
        ),
    )
    out = tmp_path / "stats"
    monkeypatch.setattr(
        "sys.argv",
        [
            "depi-stats",
            f"--dataset.root={root}",
            f"--output_dir={out}",
            f"--dataset.annotations_dir={tmp_path}",
        ],
    )
    main()
    frames = [(0, f) for f in range(30)] + [(1, f) for f in range(20)] + [(0, f) for f in range(25)]
    state = np.stack([expected_state(e, f, 6) for e, f in frames]).astype(np.float64)
    action = np.stack([expected_action(e, f, 6) for e, f in frames]).astype(np.float64)
    so100 = load_group_norm_stats(out, "so100/s6_a6")
    np.testing.assert_array_equal(
        so100["state"].q01, np.quantile(state, 0.01, axis=0, method="linear").astype(np.float32)
    )
    np.testing.assert_array_equal(
        so100["actions"].q99, np.quantile(action, 0.99, axis=0, method="linear").astype(np.float32)
    )
    np.testing.assert_allclose(so100["state"].std, state.std(axis=0), rtol=1e-6)
    assert load_group_norm_stats(out, "aloha/s14_a14")["state"].dim == 14
    # subsampled run: seeded, at most max_frames frames
    from depi.datasets.stats_cli import run_stats

    cfg = StatsConfig(
        dataset=DatasetConfig(root=str(root), annotations_dir=str(tmp_path)),
        output_dir=str(tmp_path / "sub"),
        max_frames=40,
    )
    sub = run_stats(cfg)
    manifest = json.loads((tmp_path / "sub" / MANIFEST_NAME).read_text())
    assert manifest["max_frames"] == 40 and set(sub) == {"so100/s6_a6", "aloha/s14_a14"}


REACHY = Path(__file__).resolve().parents[2].parent / "shared/data/reachy2_apple_storage_v30"


@pytest.mark.skipif(not REACHY.is_dir(), reason=f"real recording not available at {REACHY}")
def test_real_reachy2_recording_excluded_with_reason_and_its_stats(tmp_path):
    """The recording lacks its mp4: the mixture excludes it with the reason (also when its only camera is
    dropped); its parquet columns (variable-length lists) still give exact stats."""
    import pyarrow.parquet as pq

    from depi.datasets.config import DatasetConfig
    from depi.datasets.mixture import MultiLeRobotDataset
    from depi.datasets.source import LeRobotSource

    with pytest.raises(RuntimeError, match="(?s)no selected dataset is usable.*file-000.mp4 is missing"):
        MultiLeRobotDataset(DatasetConfig(root=str(REACHY), annotations_dir=str(tmp_path)), verbose=False)
    roles = tmp_path / "roles.json"
    roles.write_text(json.dumps({"local/reachy2_apple_storage_v30": {"observation.image": "drop"}}))
    dataset = DatasetConfig(root=str(REACHY), camera_roles_file=str(roles), annotations_dir=str(tmp_path))
    with pytest.raises(RuntimeError, match="no camera feeds an image slot"):
        MultiLeRobotDataset(dataset, verbose=False)

    source = LeRobotSource(root=REACHY, cache_dir=tmp_path / "arrow")
    item = StatsInput("reachy2", sorted(REACHY.glob("data/**/*.parquet")), source.num_frames, source.column)
    stats = group_stats([item])
    table = pq.read_table(item.files[0], columns=["observation.state"])
    state = np.array(table.column("observation.state").to_pylist(), dtype=np.float64)
    assert stats["state"].dim == 19 and len(state) == source.num_frames == 899
    np.testing.assert_array_equal(stats["state"].q99, np.quantile(state, 0.99, axis=0).astype(np.float32))
