"""depi-download against a local server speaking the Hub's endpoints: files arrive byte-identical, faults are
retried a bounded number of times (and logged), bad datasets are excluded with a reason, resume fetches
nothing twice, and offline runs read the manifest alone."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from depi.hub.download import download_datasets
from depi.hub.manifest import MANIFEST_NAME, Manifest
from depi.hub.retry import RetryPolicy
from tests.hub.conftest import write_repo

FAST = RetryPolicy(max_retries=3, base_wait_s=0.01, max_wait_s=0.05)


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def fetch(ids, dest, hub, **kw):
    kw.setdefault("policy", FAST)
    return download_datasets(ids, dest, endpoint=hub.url, progress=False, seed=0, **kw)


def test_all_cameras_arrive_byte_identical(tmp_path, repos, fake_hub):
    summary = fetch(["alice/v30", "bob/v21"], tmp_path / "dl", fake_hub, cameras="all")
    assert summary.excluded == {}
    for repo_id in ("alice/v30", "bob/v21"):
        assert tree(tmp_path / "dl" / repo_id) == tree(repos / repo_id)
    # One metadata request per dataset, no HEAD at all, one GET per file.
    assert fake_hub.count("GET", "/api/datasets/") == 2
    assert fake_hub.count("HEAD") == 0
    assert fake_hub.count("GET", "/resolve/") == summary.files == sum(len(tree(repos / r)) for r in summary.roots)
    entry = Manifest(tmp_path / "dl").get("alice/v30")
    assert entry.status == "ok" and len(entry.revision) == 40
    assert {f.path for f in entry.files} == set(tree(repos / "alice/v30"))


def test_only_used_cameras_fetched(tmp_path, repos, fake_hub):
    summary = fetch(["alice/v30"], tmp_path / "dl", fake_hub)
    got = tree(tmp_path / "dl" / "alice/v30")
    want = {k: v for k, v in tree(repos / "alice/v30").items() if "observation.images.side" not in k}
    assert got == want and summary.excluded == {}
    assert fake_hub.count(contains="observation.images.side") == 0
    assert Manifest(tmp_path / "dl").get("alice/v30").cameras == ["observation.images.front", "observation.images.wrist"]


def test_retries_honour_retry_after_and_are_logged(tmp_path, repos, fake_hub, caplog):
    fake_hub.fail("/api/datasets/alice/v30", status=429, retry_after=0.2, times=2)
    fake_hub.fail("/resolve/", kind="drop", times=1)
    fake_hub.fail("data/chunk-000", status=502, times=1)
    with caplog.at_level(logging.WARNING, logger="depi.hub"):
        summary = fetch(["alice/v30", "bob/v21"], tmp_path / "dl", fake_hub, cameras="all")
    assert summary.excluded == {}
    for repo_id in ("alice/v30", "bob/v21"):
        assert tree(tmp_path / "dl" / repo_id) == tree(repos / repo_id)
    assert not list((tmp_path / "dl").rglob("*.incomplete"))
    retries = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert sum("HTTP 429" in m for m in retries) == 2
    assert sum("RemoteProtocolError" in m for m in retries) == 1
    assert sum("HTTP 502" in m for m in retries) == 1
    assert summary.stats.retries == 4
    assert summary.stats.waited_s >= 0.4  # Retry-After wins over the 0.01 s backoff


def test_exhausted_retries_exclude_with_reason(tmp_path, repos, fake_hub):
    fake_hub.fail("bob/v21/resolve/", status=503, times=None)
    summary = fetch(["alice/v30", "bob/v21"], tmp_path / "dl", fake_hub)
    assert list(summary.roots) == ["alice/v30"]
    reason = summary.excluded["bob/v21"]
    assert "gave up after 4 tries" in reason and "HTTP 503" in reason
    # Bounded: the first failing file was tried max_retries + 1 times, no more.
    per_file = {}
    for method, path in fake_hub.requests:
        if "bob/v21/resolve/" in path:
            per_file[path] = per_file.get(path, 0) + 1
    assert per_file and max(per_file.values()) == 4
    entry = Manifest(tmp_path / "dl").get("bob/v21")
    assert entry.status == "excluded" and entry.reason == reason
    # A rerun keeps it excluded without a request; retry_excluded tries again.
    before = len(fake_hub.requests)
    again = fetch(["bob/v21"], tmp_path / "dl", fake_hub)
    assert again.excluded == {"bob/v21": reason} and len(fake_hub.requests) == before
    fake_hub._faults.clear()
    healed = fetch(["bob/v21"], tmp_path / "dl", fake_hub, retry_excluded=True)
    assert healed.excluded == {} and list(healed.roots) == ["bob/v21"]


def test_lying_info_json_excluded_before_any_data(tmp_path, repos, fake_hub):
    liar = write_repo(repos, "carol/liar")
    info = json.loads((liar / "meta/info.json").read_text())
    info["total_episodes"], info["total_frames"] = 7, 100
    (liar / "meta/info.json").write_text(json.dumps(info))
    hollow = write_repo(repos, "dave/hollow", version="v2.1")
    next(hollow.glob("data/chunk-000/*.parquet")).unlink()  # meta names a file the repo lacks
    summary = fetch(["carol/liar", "dave/hollow", "alice/v30", "erin/absent"], tmp_path / "dl", fake_hub)
    assert list(summary.roots) == ["alice/v30"]
    assert "total_episodes" in summary.excluded["carol/liar"] or "total_frames" in summary.excluded["carol/liar"]
    assert "files the repository lacks" in summary.excluded["dave/hollow"]
    assert "not found" in summary.excluded["erin/absent"]
    assert fake_hub.count(contains="carol/liar/resolve/") and not any(
        "carol/liar" in p and ("/data/" in p or "/videos/" in p) for _, p in fake_hub.requests
    )
    assert not any("dave/hollow" in p and "/videos/" in p for _, p in fake_hub.requests)


def test_resume_fetches_nothing_twice(tmp_path, repos, fake_hub):
    dest = tmp_path / "dl"
    fetch(["alice/v30", "bob/v21"], dest, fake_hub, cameras="all")
    # An interrupted run: bob's entry never written, one of its files never renamed into place.
    manifest = json.loads((dest / MANIFEST_NAME).read_text())
    del manifest["datasets"]["bob/v21"]
    (dest / MANIFEST_NAME).write_text(json.dumps(manifest))
    lost = sorted((dest / "bob/v21/videos").rglob("*.mp4"))[0]
    lost.unlink()
    first = list(fake_hub.requests)
    summary = fetch(["alice/v30", "bob/v21"], dest, fake_hub, cameras="all")
    resumed = fake_hub.requests[len(first):]
    assert summary.cached == ["alice/v30"] and summary.fetched == ["bob/v21"]
    assert [p for _, p in resumed if "/resolve/" in p] == [
        p for _, p in first if p.endswith(lost.relative_to(dest / "bob/v21").as_posix())
    ]
    assert tree(dest / "bob/v21") == tree(repos / "bob/v21")
    n = len(fake_hub.requests)
    assert fetch(["alice/v30", "bob/v21"], dest, fake_hub).cached == ["alice/v30", "bob/v21"]
    assert len(fake_hub.requests) == n


def test_offline_reads_the_manifest_only(tmp_path, repos, fake_hub, monkeypatch):
    dest = tmp_path / "dl"
    fetch(["alice/v30"], dest, fake_hub)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    n = len(fake_hub.requests)
    summary = download_datasets(["alice/v30", "bob/v21"], dest, endpoint="http://127.0.0.1:9", progress=False)
    assert summary.roots == {"alice/v30": dest / "alice/v30"}
    assert "offline" in summary.excluded["bob/v21"] and len(fake_hub.requests) == n


def test_bad_repo_id_and_bad_manifest(tmp_path):
    with pytest.raises(ValueError, match="owner/name"):
        download_datasets(["no-slash"], tmp_path, progress=False)
    (tmp_path / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(ValueError, match="delete it"):
        download_datasets(["a/b"], tmp_path, progress=False)
