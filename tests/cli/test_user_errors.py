"""Every console script answers a user's mistake with one line (what, where, the fix) and no traceback, exit 2
for a wrong command line and 1 for a failure; ``--help`` exits 0; ``--debug`` shows the traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def run(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MUJOCO_GL": "egl"}
    env.pop("DEPI_DEBUG", None)
    return subprocess.run([str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.parametrize(
    "script",
    ["depi-train", "depi-eval", "depi-serve", "depi-control", "depi-viz", "depi-stats", "depi-gen-demos",
     "depi-validate", "depi-convert", "depi-download", "depi-data-ids", "depi-annotate"],
)  # fmt: skip
def test_help_exits_zero(script: str) -> None:
    result = run(script, "--help")
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower() and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["depi-eval"], 2, "a command is required"),
        (["depi-eval", "offline", "--policy.path=/tmp/nope", "--dataset.root=/tmp/nope"], 1, "--policy.path=/tmp/nope"),
        (["depi-gen-demos", "--env=foo"], 2, "unknown sim env 'foo'"),
        (["depi-validate", "/tmp/nope/ds"], 1, "/tmp/nope/ds: no such dataset folder"),
        (["depi-train", "--dataset.root=/tmp/nope"], 1, "--dataset.root=/tmp/nope: no such folder"),
        (["depi-train", "--stepz=3"], 2, "did you mean --steps?"),
        (["depi-stats", "--dataset.root=/tmp/nope"], 1, "/tmp/nope does not exist"),
        (["depi-serve", "--policy.path=/tmp/nope"], 1, "--policy.path=/tmp/nope"),
        (["depi-viz", "dataset", "/tmp/nope"], 2, "no such dataset folder"),
        (["depi-download"], 2, "nothing to download"),
        (["depi-download", "--repo_ids=/tmp/nope.json"], 1, "/tmp/nope.json"),
    ],
)
def test_user_mistakes_are_one_message(argv: list[str], code: int, message: str) -> None:
    result = run(*argv)
    out = result.stdout + result.stderr
    assert result.returncode == code, out
    assert message in out and "Traceback" not in out


def test_a_folder_of_only_corrupt_datasets_is_one_message(tmp_path: Path) -> None:
    (tmp_path / "broken" / "meta").mkdir(parents=True)
    (tmp_path / "broken" / "meta" / "info.json").write_text("{not json")
    result = run("depi-stats", f"--dataset.root={tmp_path}", f"--output_dir={tmp_path / 'stats'}")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "info.json" in result.stderr


def test_debug_shows_the_traceback() -> None:
    result = run("depi-train", "--dataset.root=/tmp/nope", "--debug")
    assert result.returncode == 1 and "Traceback" in result.stderr


def test_helpful_help_lists_each_flag_once() -> None:
    lines = run("depi-stats", "--help").stdout.splitlines()
    assert sum(line.startswith("  --dataset str") for line in lines) == 1
