"""Fault injection: a mixture of 20 datasets, 14 of them broken in the ways community data breaks, read frame by
frame through 2 DataLoader workers. Each broken dataset is excluded with its reason or has its unreadable
frames replaced (counted in logged warnings); nothing crashes, nothing damaged is served, nothing disappears
without a line saying so."""

from __future__ import annotations

import numpy as np
import pytest

from depi.datasets.mixture.config import DatasetConfig
from depi.datasets.mixture.dataset import MultiLeRobotDataset
from tests.reliability.faults import EXPECTED, FAULTS, make_fault_mixture, serve_every_frame

REASON_WORDS = {
    "missing_mp4": "is missing",
    "bad_path_template": "data_path",
    "missing_tasks": "tasks.parquet",
    "empty_episode": "empty episode",
    "invalid_json": "not valid JSON",
    "symlink_loop": "looping symlink",
    "unreadable_file": "not a regular file",
}


@pytest.fixture(scope="module")
def fault_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    make_fault_mixture(root, good=6)
    return root


def test_every_fault_is_excluded_or_replaced(fault_root, tmp_path, caplog):
    config = DatasetConfig(root=str(fault_root), control_fps=10, action_horizon=3, min_valid_fraction=0.2,
                           max_load_retries=50, report_path=str(tmp_path / "report.json"))  # fmt: skip
    with caplog.at_level("WARNING"):
        mixture = MultiLeRobotDataset(config, verbose=False)
    selected = len(mixture.index.entries) + len(mixture.index.excluded)
    assert selected == 20 == 6 + len(FAULTS)  # no dataset vanished
    excluded = {x.repo_id.split("/")[1]: x.reason for x in mixture.index.excluded}
    assert set(excluded) == {k for k, v in EXPECTED.items() if v == "excluded"}
    for name, words in REASON_WORDS.items():
        assert words in excluded[name], (name, excluded[name])
    assert "lying_totals: meta/info.json says 7 episodes" in caplog.text

    served = serve_every_frame(mixture, tmp_path / "load.log", workers=2)
    samples, failures = served["samples"], served["failures"]
    assert len(samples) == len(mixture)  # 0 crashes: every index answered
    names = [e.repo_id.split("/")[1] for e in mixture.index.entries]
    replaced = {k for k, v in EXPECTED.items() if v == "replaced"}
    assert {r.split("/")[1] for r in failures} == replaced  # each counted and logged, good datasets never
    for d, episode, frame, state, actions in samples:
        assert np.isfinite(state).all() and np.isfinite(actions).all()  # nothing damaged reaches the model
        assert names[d] not in replaced - {"nan_state", "state_dim_changes"}  # wholly unreadable: never served
        if names[d] == "nan_state":
            assert (episode, frame) not in {(0, 2)}  # the NaN state row
    good = {i for i, n in enumerate(names) if n.startswith("ds") or n == "lying_totals"}
    per_good = {i: sum(1 for s in samples if s[0] == i) for i in good}
    assert all(n > 0 for n in per_good.values())
