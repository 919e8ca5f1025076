"""Lazy download inside the mixture (``--dataset.download=true``), the ``depi-download`` command, and a
2-process run where one process downloads and the other reads its manifest."""

from __future__ import annotations

import json
import re
import os
import socket
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

from depi.datasets.mixture.config import DatasetConfig
from depi.datasets.mixture.dataset import MultiLeRobotDataset
from depi.hub import cli

REPO_ROOT = Path(__file__).resolve().parents[2]


def id_list(tmp_path: Path, ids: list[str]) -> Path:
    path = tmp_path / "ids.json"
    path.write_text(json.dumps(ids))
    return path


def test_mixture_downloads_what_is_missing(tmp_path, repos, fake_hub, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    config = DatasetConfig(
        repo_ids=str(id_list(tmp_path, ["alice/v30", "bob/v21", "zed/missing"])),
        root=str(tmp_path / "dl"),
        download=True,
        control_fps=10,
        action_horizon=3,
    )
    mixture = MultiLeRobotDataset(config, verbose=False)
    assert [e.repo_id for e in mixture.index.entries] == ["alice/v30", "bob/v21"]
    [excluded] = mixture.index.excluded
    assert excluded.repo_id == "zed/missing" and "download: repository not found" in excluded.reason
    sample = mixture[0]
    assert sum(bool(v) for v in sample["image_mask"].values()) == 2
    # Built again: the manifest answers, no request is made.
    n = len(fake_hub.requests)
    MultiLeRobotDataset(config, verbose=False)
    assert len(fake_hub.requests) == n


def test_cli_downloads_and_reports(tmp_path, repos, fake_hub, monkeypatch, capsys):
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    ids = id_list(tmp_path, ["alice/v30", "zed/missing"])
    code = cli.main([f"--repo_ids={ids}", f"--root={tmp_path / 'dl'}", "--max_retries=1", "--verbose=false"])
    err = capsys.readouterr().err
    assert code == 1 and "excluded zed/missing: repository not found" in err and re.search(r"ready +1 ", err)
    assert (tmp_path / "dl/alice/v30/meta/info.json").is_file()
    assert cli.main([f"--repo_id=alice/v30", f"--root={tmp_path / 'dl'}"]) == 0
    assert "1 already complete" in capsys.readouterr().err


RANK_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from depi.datasets.mixture.selection import select_datasets
    refs = select_datasets(repo_ids=sys.argv[1], root=sys.argv[2], download=True, verbose=False)
    print(json.dumps({r.repo_id: r.root is not None for r in refs}))
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_download_each_file_once(tmp_path, repos, fake_hub):
    ids, dest, port = id_list(tmp_path, ["alice/v30", "bob/v21"]), tmp_path / "dl", free_port()
    procs = []
    for rank in range(2):
        env = {**os.environ, "HF_ENDPOINT": fake_hub.url, "HF_HUB_OFFLINE": "0", "RANK": str(rank),
               "LOCAL_RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
               "MASTER_PORT": str(port), "PYTHONPATH": str(REPO_ROOT)}  # fmt: skip
        procs.append(subprocess.Popen([sys.executable, "-c", RANK_SCRIPT, str(ids), str(dest)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))  # fmt: skip
    outs = [p.communicate(timeout=180) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1]) == {"alice/v30": True, "bob/v21": True}, (out, err)
    # (huggingface_hub itself may fetch its /api/agent-harnesses registry once per process: not a dataset request)
    counts = Counter(path for _, path in fake_hub.requests if path.startswith(("/api/datasets/", "/datasets/")))
    assert counts and max(counts.values()) == 1  # every listing and file was requested once, by one rank
    assert sum("/api/datasets/" in p for p in counts) == 2
