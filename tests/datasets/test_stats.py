"""Exact per-group normalization stats: numpy equality, subsampling, openpi files, content-hash cache."""

import json
from pathlib import Path

import numpy as np
import pytest

from depi.datasets.mixture.stats import (
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
    from depi.datasets.mixture.config import DatasetConfig
    from depi.datasets.mixture.stats_cli import StatsConfig, main
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
    from depi.datasets.mixture.stats_cli import run_stats

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

    from depi.datasets.mixture.config import DatasetConfig
    from depi.datasets.mixture.dataset import MultiLeRobotDataset
    from depi.datasets.format.source import LeRobotSource

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


def direct_delta_chunks(state, action, lengths, horizon, step, mask):
    """Per (frame, chunk step), in plain loops: the action ``step`` frames ahead in the episode (linear
    interpolation between frames, clamped to the last frame), minus the frame's state on the masked dims."""
    rows, start = [], 0
    for length in lengths:
        for t in range(length):
            for k in range(horizon):
                pos = min(t + k * step, length - 1)
                lo = int(np.floor(pos + 1e-9))
                hi = min(lo + 1, length - 1)
                frac = pos - lo
                a = action[start + lo].astype(np.float64) * (1 - frac) + action[start + hi] * frac
                a = a.astype(np.float32).astype(np.float64)
                a[: len(mask)] -= np.where(mask, state[start + t, : len(mask)], 0.0)
                rows.append(a)
        start += length
    return np.stack(rows)


@pytest.mark.parametrize(("fps", "control_fps"), [(5.0, 5.0), (10.0, 4.0)])
def test_delta_action_stats_equal_direct_numpy(tmp_path, fps, control_fps):
    from depi.datasets.mixture.stats import DeltaStatsSpec

    lengths = np.array([9, 4, 13])
    rng = np.random.default_rng(3)
    state = rng.normal(size=(lengths.sum(), 5)).astype(np.float32) * 3
    action = rng.normal(size=(lengths.sum(), 4)).astype(np.float32)
    mask = (True, False, True)
    spec = DeltaStatsSpec(mask, action_horizon=6, control_fps=control_fps)
    path = tmp_path / "a.parquet"
    path.write_bytes(b"x")
    columns = {"observation.state": state, "action": action}
    item = StatsInput("test/a", [path], int(lengths.sum()), columns.__getitem__, lengths, fps)
    stats = group_stats([item], delta=spec)["actions"]
    ref = direct_delta_chunks(state, action, lengths, 6, fps / control_fps, mask)
    assert ref.shape == (lengths.sum() * 6, 4)
    np.testing.assert_allclose(stats.q01, np.quantile(ref, 0.01, axis=0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(stats.q99, np.quantile(ref, 0.99, axis=0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(stats.mean, ref.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats.std, ref.std(axis=0), rtol=1e-5)
    np.testing.assert_allclose(stats.min, ref.min(axis=0), rtol=1e-6)
    # the unmasked dim 1 and the dim past the mask stay absolute; the state stats are unchanged
    np.testing.assert_allclose(stats.max[3], ref[:, 3].max(), rtol=1e-6)
    np.testing.assert_array_equal(
        group_stats([item], delta=spec)["state"].mean, group_stats([item])["state"].mean
    )


def test_delta_action_stats_errors_and_cache_key(tmp_path):
    from depi.datasets.mixture.stats import DeltaStatsSpec

    a, _ = make_input(tmp_path, "a", 20, 3, 1)
    spec = DeltaStatsSpec((True, True), action_horizon=4, control_fps=10.0)
    with pytest.raises(ValueError, match="test/a.*episode_lengths and fps"):
        group_stats([a], delta=spec)
    a.episode_lengths, a.fps = np.array([20]), 10.0
    with pytest.raises(ValueError, match="test/a.*mask covers 5 dims"):
        group_stats([a], delta=DeltaStatsSpec((True,) * 5, 4, 10.0))
    with pytest.raises(ValueError, match="sum to 19 frames but the columns have 20"):
        a.episode_lengths = np.array([19])
        group_stats([a], delta=spec)
    a.episode_lengths = np.array([20])
    with pytest.raises(ValueError, match="non-empty mask"):
        DeltaStatsSpec((), 4, 10.0)
    out = tmp_path / "stats"
    absolute = compute_group_stats({"g": [a]}, out)
    delta = compute_group_stats({"g": [a]}, out, delta=spec)  # new setting: recomputed, not reused
    assert not np.array_equal(absolute["g"]["actions"].mean, delta["g"]["actions"].mean)
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["delta"] == {"mask": [True, True], "action_horizon": 4, "control_fps": 10.0}
    other = compute_group_stats({"g": [a]}, out, delta=DeltaStatsSpec((True, False), 4, 10.0))
    assert not np.array_equal(other["g"]["actions"].mean, delta["g"]["actions"].mean)


def test_depi_stats_delta_equals_what_the_pipeline_trains_on(tmp_path, monkeypatch):
    """The stats of ``depi-stats --delta_action_mask`` equal those of the mixture's samples passed through
    ``DeltaActions``, over every (frame, chunk step), padding steps included."""
    from depi.datasets.mixture.config import DatasetConfig
    from depi.datasets.mixture.dataset import MultiLeRobotDataset
    from depi.datasets.mixture.stats_cli import main
    from depi.transforms.actions import DeltaActions
    from tests.datasets.factories import CameraSpec, DatasetSpec, make_lerobot_dataset

    root = tmp_path / "lerobot"
    cam = (CameraSpec("observation.images.top", storage="image", height=8, width=8),)
    make_lerobot_dataset(root / "a/one", DatasetSpec(episode_lengths=(11, 6), fps=10, cameras=cam))
    make_lerobot_dataset(root / "a/two", DatasetSpec(episode_lengths=(9,), fps=15, cameras=cam))
    out = tmp_path / "stats"
    mask = [True, True, True, False, True]
    flags = [f"--dataset.root={root}", f"--dataset.annotations_dir={tmp_path}", "--dataset.control_fps=5"]
    flags += ["--dataset.action_horizon=4", f"--output_dir={out}"]
    monkeypatch.setattr("sys.argv", ["depi-stats", *flags, "--delta_action_mask=[true,true,true,false,true]"])
    main()
    stats = load_group_norm_stats(out, "so100/s6_a6")["actions"]
    config = DatasetConfig(root=str(root), annotations_dir=str(tmp_path), control_fps=5.0, action_horizon=4)
    mixture = MultiLeRobotDataset(config, verbose=False)
    delta = DeltaActions(tuple(mask))
    seen = []
    for i in range(len(mixture)):
        sample = mixture[i]
        moved = delta({"state": sample["state"].numpy()[:6], "actions": sample["actions"].numpy()[:, :6]})
        seen.append(np.asarray(moved["actions"], dtype=np.float64))
    ref = np.concatenate(seen)
    assert ref.shape == (26 * 4, 6)
    np.testing.assert_allclose(stats.q01, np.quantile(ref, 0.01, axis=0), rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(stats.q99, np.quantile(ref, 0.99, axis=0), rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(stats.mean, ref.mean(axis=0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(stats.std, ref.std(axis=0), rtol=1e-5, atol=1e-5)
