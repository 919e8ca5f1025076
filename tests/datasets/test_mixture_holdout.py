"""``--dataset.holdout_dir``: the split files' held-out episodes are never sampled, weighted or used for stats."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from depi.constants import ACTION, OBS_STATE
from depi.datasets.mixture.config import DatasetConfig
from depi.datasets.mixture.dataset import MultiLeRobotDataset
from depi.datasets.mixture.report import report_dict
from depi.datasets.mixture.sampler import BLOCK
from depi.datasets.mixture.stats import input_hash
from depi.datasets.mixture.stats_cli import group_inputs
from depi.eval.splits import split_path
from tests.datasets.factories import CameraSpec, DatasetSpec, make_lerobot_dataset

LENGTHS = {"alice/a": (10, 6, 8, 5), "bob/b": (12, 7, 9)}
HELD_OUT = {"alice/a": [1, 3], "bob/b": [0]}  # bob/b keeps 2 episodes; both datasets keep several


@pytest.fixture(scope="module")
def hub(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lerobot")
    camera = (CameraSpec("observation.images.front", storage="image", height=16, width=16),)
    for repo_id, lengths in LENGTHS.items():
        make_lerobot_dataset(root / repo_id, DatasetSpec(episode_lengths=lengths, fps=10, cameras=camera))
    return root


def write_splits(folder: Path, held_out: dict[str, list[int]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for repo_id, test in held_out.items():
        train = sorted(set(range(len(LENGTHS[repo_id]))) - set(test))
        split_path(folder, repo_id).write_text(json.dumps({"test_episodes": test, "train_episodes": train}))
    return folder


def mixture(hub: Path, tmp_path: Path, holdout_dir: Path | None = None, **kw) -> MultiLeRobotDataset:
    return MultiLeRobotDataset(
        DatasetConfig(
            root=str(hub),
            annotations_dir=str(tmp_path / "no_annotations"),
            holdout_dir=None if holdout_dir is None else str(holdout_dir),
            action_horizon=4,
            **kw,
        ),
        verbose=False,
    )


def episode_of(m: MultiLeRobotDataset, frames: np.ndarray) -> list[tuple[str, int]]:
    out = []
    for g in frames:
        d, _, e = m.index.locate(int(g))
        out.append((m.repo_ids[d], int(m.index.entries[d].episode_ids[e - m.index.episode_offsets[d]])))
    return out


def test_sampler_never_draws_a_held_out_episode(hub: Path, tmp_path: Path) -> None:
    m = mixture(hub, tmp_path, write_splits(tmp_path / "splits", HELD_OUT))
    sampler = m.make_sampler()
    frames = np.array([sampler.global_index(k) for k in range(2 * BLOCK + 100)])  # crosses block boundaries
    drawn = set(episode_of(m, frames))
    held = {(r, e) for r, eps in HELD_OUT.items() for e in eps}
    kept = {(r, e) for r, lengths in LENGTHS.items() for e in range(len(lengths))} - held
    assert drawn == kept  # every kept episode is drawn, no held-out one ever
    # every kept frame is reachable: the draws cover exactly the kept episodes' rows
    assert len(set(frames.tolist())) == int(m.index.kept_frames.sum())


def test_frame_counts_and_weights_drop_by_the_held_out_lengths(hub: Path, tmp_path: Path) -> None:
    full = mixture(hub, tmp_path)
    m = mixture(hub, tmp_path, write_splits(tmp_path / "splits", HELD_OUT))
    for d, repo_id in enumerate(m.repo_ids):
        dropped = sum(LENGTHS[repo_id][e] for e in HELD_OUT[repo_id])
        assert m.index.kept_frames[d] == sum(LENGTHS[repo_id]) - dropped
        assert m.index.held_out_episodes(d) == HELD_OUT[repo_id]
    assert len(m) == len(full)  # held-out frames stay readable by global index (the evaluation reads them)
    assert m.weights == pytest.approx(m.index.kept_frames / m.index.kept_frames.sum())
    report = {r["repo_id"]: r for r in report_dict(m.index, m.weights)["kept"]}
    assert report["alice/a"]["frames"] == 10 + 8 and report["alice/a"]["held_out_episodes"] == [1, 3]


def test_failed_samples_are_replaced_by_kept_frames(hub: Path, tmp_path: Path, monkeypatch) -> None:
    m = mixture(hub, tmp_path, write_splits(tmp_path / "splits", HELD_OUT), max_load_retries=50)
    kept = {m.index.kept_frame(q) for q in range(int(m.index.kept_frames.sum()))}
    assert len(kept) == int(m.index.kept_frames.sum())
    assert not set(episode_of(m, np.array(sorted(kept)))) & {
        (r, e) for r, eps in HELD_OUT.items() for e in eps
    }
    tried = []

    def fail(global_index: int) -> dict:
        tried.append(global_index)
        raise OSError("broken")

    monkeypatch.setattr(m, "_load", fail)
    with pytest.raises(RuntimeError, match="50 replacement frames failed"):
        m[0]
    assert set(tried[1:]) <= kept  # every replacement is a kept frame


def test_no_split_file_keeps_the_stream_unchanged(hub: Path, tmp_path: Path) -> None:
    plain = mixture(hub, tmp_path).make_sampler(rank=1, world_size=2)
    empty = mixture(hub, tmp_path, tmp_path / "empty").make_sampler(rank=1, world_size=2)
    assert [plain.rank_stream(j) for j in range(500)] == [empty.rank_stream(j) for j in range(500)]


def test_resume_continues_the_held_out_stream(hub: Path, tmp_path: Path) -> None:
    m = mixture(hub, tmp_path, write_splits(tmp_path / "splits", HELD_OUT))
    first = m.make_sampler(rank=0, world_size=2)
    stream = iter(first)
    seen = [next(stream) for _ in range(BLOCK + 7)]
    resumed = m.make_sampler(rank=0, world_size=2)
    resumed.load_state_dict(first.state_dict(num_consumed=BLOCK))
    rest = iter(resumed)
    assert [next(rest) for _ in range(7)] == seen[BLOCK:]


def test_stats_inputs_leave_held_out_rows_out(hub: Path, tmp_path: Path) -> None:
    m = mixture(hub, tmp_path, write_splits(tmp_path / "splits", HELD_OUT))
    items = {it.repo_id: it for group in group_inputs(m.index).values() for it in group}
    item = items["alice/a"]
    state, action = item.read_column(OBS_STATE), item.read_column(ACTION)
    assert state.shape[0] == action.shape[0] == item.num_frames == 10 + 8
    assert sorted({int(v) // 1000 for v in state[:, 0]}) == [0, 2]  # state[0] = episode * 1000 + frame
    assert item.episode_lengths.tolist() == [10, 8] and item.held_out_episodes == (1, 3)
    # the stats cache is keyed on the held-out episodes too; whole datasets hash as before
    full = group_inputs(mixture(hub, tmp_path).index)
    assert input_hash(group_inputs(m.index), {}) != input_hash(full, {})
    assert input_hash(group_inputs(mixture(hub, tmp_path, tmp_path / "empty").index), {}) == input_hash(
        full, {}
    )


def test_split_file_naming_an_unknown_episode_is_a_clear_error(hub: Path, tmp_path: Path) -> None:
    folder = write_splits(tmp_path / "splits", {"alice/a": [1, 42]})
    with pytest.raises(
        ValueError, match=r"alice__a\.json: held-out episode 42 is not an episode of alice/a.*delete"
    ):
        mixture(hub, tmp_path, folder)
    split_path(folder, "alice/a").write_text(json.dumps({"episodes": [1]}))
    with pytest.raises(ValueError, match=r"alice__a\.json: not a split file.*test_episodes"):
        mixture(hub, tmp_path, folder)
