"""Episode / task splits: rules, determinism, and the split file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from depi.eval.splits import SplitConfig, load_or_make_split, split_episodes, split_path

# 10 episodes of "pick", 4 of "place", 1 of "push" and 1 of "stack".
TASKS = {i: "pick" for i in range(10)} | {10 + i: "place" for i in range(4)} | {14: "push", 15: "stack"}


def test_single_episode_tasks_go_to_test_in_both_modes() -> None:
    for mode in ("episode", "task"):
        split = split_episodes("a/b", TASKS, SplitConfig(mode=mode, test_fraction=0.0))
        assert split.test_episodes == [14, 15], mode
        assert split.train_episodes == list(range(14))


def test_episode_mode_holds_out_the_fraction_of_each_task() -> None:
    split = split_episodes("a/b", TASKS, SplitConfig(mode="episode", test_fraction=0.25, seed=1))
    test = set(split.test_episodes)
    assert len(test & set(range(10))) == 2  # round(0.25 * 10) = 2 (banker's rounding of 2.5)
    assert len(test & set(range(10, 14))) == 1
    assert {14, 15} <= test
    assert sorted(test | set(split.train_episodes)) == sorted(TASKS) and not test & set(split.train_episodes)
    assert split == split_episodes("a/b", TASKS, SplitConfig(mode="episode", test_fraction=0.25, seed=1))
    others = {tuple(split_episodes("a/b", TASKS, SplitConfig(test_fraction=0.25, seed=s)).test_episodes)
              for s in range(2, 8)}  # fmt: skip
    assert len(others) > 1  # the seed picks the episodes


def test_task_mode_holds_out_whole_tasks() -> None:
    split = split_episodes("a/b", TASKS, SplitConfig(mode="task", test_fraction=0.5, seed=0))
    test = set(split.test_episodes)
    held = [task for task, eps in (("pick", range(10)), ("place", range(10, 14))) if set(eps) <= test]
    assert len(held) == 1  # one of the two multi-episode tasks, whole
    assert {14, 15} <= test
    assert not test & set(range(10) if held == ["place"] else range(10, 14))


def test_split_file_is_written_then_reused_and_checked(tmp_path: Path) -> None:
    config = SplitConfig(test_fraction=0.3, seed=4)
    made = load_or_make_split(tmp_path, "owner/name", TASKS, config)
    path = split_path(tmp_path, "owner/name")
    assert path.name == "owner__name.json"
    data = json.loads(path.read_text())
    assert data["test_episodes"] == made.test_episodes and data["repo_id"] == "owner/name"
    assert load_or_make_split(tmp_path, "owner/name", TASKS, config) == made
    with pytest.raises(ValueError, match="split made with"):
        load_or_make_split(tmp_path, "owner/name", TASKS, SplitConfig(test_fraction=0.5, seed=4))
    with pytest.raises(ValueError, match=r"disagree on episodes \[16\]"):
        load_or_make_split(tmp_path, "owner/name", {**TASKS, 16: "pick"}, config)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="split.mode"):
        SplitConfig(mode="frame")
    with pytest.raises(ValueError, match="test_fraction"):
        SplitConfig(test_fraction=1.5)
    with pytest.raises(ValueError, match="no episodes"):
        split_episodes("a/b", {}, SplitConfig())
