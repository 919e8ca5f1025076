"""depi-data-ids against the local Hub: tag listing across pages, info.json-only reads, every filter, one
reason per reject, and the two output files."""

from __future__ import annotations

import json
from pathlib import Path

from depi.hub import curate
from depi.hub.retry import RetryPolicy
from tests.helpers.hub_server import FakeHub

VIDEO = {"dtype": "video", "shape": [16, 24, 3]}


def info(version="v3.0", robot="so100", state=6, action=6, fps=30, episodes=10, frames=3000, cameras=2) -> dict:
    features = {"observation.state": {"dtype": "float32", "shape": [state]},
                "action": {"dtype": "float32", "shape": [action]}}  # fmt: skip
    features.update({f"observation.images.cam{i}": VIDEO for i in range(cameras)})
    return {"codebase_version": version, "robot_type": robot, "fps": fps, "total_episodes": episodes,
            "total_frames": frames, "features": features}  # fmt: skip


CASES = {
    "ok/big": info(frames=9000),
    "ok/small": info(frames=1200),
    "bad/version": info(version="v1.6"),
    "bad/robot": info(robot="koch"),
    "bad/state": info(state=7),
    "bad/fps": info(fps=15),
    "bad/episodes": info(episodes=2),
    "bad/frames": info(frames=10),
    "bad/cameras": info(cameras=0),
}


def write_repos(root: Path) -> None:
    for repo_id, content in CASES.items():
        (root / repo_id / "meta").mkdir(parents=True)
        (root / repo_id / "meta/info.json").write_text(json.dumps(content))
    (root / "bad/json/meta").mkdir(parents=True)
    (root / "bad/json/meta/info.json").write_text("{oops")
    (root / "bad/noinfo").mkdir(parents=True)
    (root / "bad/flaky/meta").mkdir(parents=True)
    (root / "bad/flaky/meta/info.json").write_text(json.dumps(info()))
    (root / "other/untagged/meta").mkdir(parents=True)
    (root / "other/untagged/meta/info.json").write_text(json.dumps(info()))


def test_curation_filters_and_reasons(tmp_path, monkeypatch, capsys):
    repos = tmp_path / "repos"
    write_repos(repos)
    out = tmp_path / "data_ids" / "so100.json"
    with FakeHub(repos, page_size=3) as hub:
        hub.tags = {r: ["LeRobot", "so100"] for r in hub.repo_ids() if r != "other/untagged"}
        hub.fail("bad/flaky/resolve", status=500, times=None)
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        cfg = curate.CurateConfig(tags=["LeRobot", "so100"], robot_types=["so100"], state_dim=6, action_dim=6,
                                  fps=[30], min_episodes=5, min_frames=1000, output=str(out))  # fmt: skip
        result = curate.curate(cfg, progress=False, policy=RetryPolicy(max_retries=2, base_wait_s=0.01))
        assert result.kept == ["ok/big", "ok/small"]  # most frames first
        reasons = result.rejected
        assert set(reasons) == {r for r in hub.repo_ids() if r.startswith("bad/")}
        assert reasons["bad/version"].startswith("codebase_version:")
        assert reasons["bad/robot"].startswith("robot_type:")
        assert reasons["bad/state"] == "observation.state: 7 dims, want 6"
        assert reasons["bad/fps"].startswith("fps:") and reasons["bad/episodes"].startswith("episodes:")
        assert reasons["bad/frames"].startswith("frames:") and reasons["bad/cameras"].startswith("cameras:")
        assert "invalid JSON" in reasons["bad/json"] and "HTTP 404" in reasons["bad/noinfo"]
        assert "gave up after 3 tries" in reasons["bad/flaky"]
        # Only info.json was read: one GET each, plus the retried one; the listing took several pages.
        assert all(p.endswith("/meta/info.json") for _, p in hub.requests if "/resolve/" in p)
        assert hub.count(contains="/api/datasets") >= 4
        assert not any("other/untagged" in p for _, p in hub.requests)
        # The command writes both files.
        assert curate.main([f"--output={out}", "--tags=[LeRobot,so100]", "--state_dim=6", "--min_frames=1000",
                            "--max_retries=0"]) == 0  # fmt: skip
    written = json.loads(out.read_text())
    assert written[0] == "ok/big" and written[-1] == "ok/small"
    assert set(written) == {"ok/big", "ok/small", "bad/robot", "bad/fps", "bad/episodes"}
    rejected = json.loads((tmp_path / "data_ids" / "so100_rejected.json").read_text())
    assert rejected["bad/state"] == "observation.state: 7 dims, want 6" and "ok/big" not in rejected
    assert "rejected" in capsys.readouterr().err
