"""The end-of-training summary prints commands that run as printed."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

from depi.train.summary import console_command, format_summary, sim_envs_of


def test_console_scripts_resolve_without_an_activated_venv(monkeypatch) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # the venv's bin folder is not on PATH
    assert console_command("depi-eval") == str(Path(sys.executable).parent / "depi-eval")
    assert console_command("no-such-tool") == "no-such-tool"


def test_sim_envs_of_the_demo_mixture() -> None:
    ids = ["local/so101_pick_place", "local/metaworld_reach-v3", "lerobot/aloha", "local/so100_transfer_cube"]
    assert sim_envs_of(ids) == ["so101_pick_place", "metaworld/reach-v3", "so100_transfer_cube"]


def test_printed_eval_command_runs_as_printed(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    text = format_summary(
        tmp_path, tmp_path / "checkpoints" / "000000010", None, 10, "depi.policies.pi0.model.PI0Policy",
        str(tmp_path / "data"), ["local/metaworld_reach-v3", "local/so101_pick_place"],
    )  # fmt: skip
    sim_line = next(line for line in text.splitlines() if " sim --env=metaworld/reach-v3 " in line)
    argv = shlex.split(sim_line.split("(")[0])
    assert argv[0] == str(Path(sys.executable).parent / "depi-eval") and "--compare=[expert,zero]" in argv
    # The printed command parses (it fails only on the missing checkpoint, with one line and exit 1).
    result = subprocess.run(argv, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 1 and "Traceback" not in result.stderr and "--policy.path=" in result.stderr
