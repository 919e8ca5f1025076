"""depi.threads: torch threads from the CPUs this process may use, OMP_NUM_THREADS first."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from depi.threads import available_cpus, configure_threads, default_num_threads


def test_threads_follow_the_affinity_mask_minus_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5})
    assert available_cpus() == 6
    assert default_num_threads() == 6 and default_num_threads(num_workers=4) == 2
    assert default_num_threads(num_workers=8) == 1  # never below one
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # two ranks on this node share the CPUs
    assert default_num_threads(num_workers=1) == 2


def test_omp_num_threads_wins_and_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = torch.get_num_threads()
    try:
        assert default_num_threads(num_workers=0) == 1 and configure_threads() == 1
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    monkeypatch.setenv("OMP_NUM_THREADS", "two")
    with pytest.raises(ValueError, match="OMP_NUM_THREADS='two'"):
        default_num_threads()


def test_wait_policy_is_passive_only_on_busy_cpus() -> None:
    code = (
        "import os; os.getloadavg = lambda: ({load}, 0.0, 0.0); import depi; "
        "print(os.environ.get('OMP_WAIT_POLICY'))"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    run = lambda load, **extra: subprocess.run(  # noqa: E731
        [sys.executable, "-c", code.format(load=load)], env={**env, **extra}, capture_output=True, text=True,
        check=True,
    ).stdout.strip()  # fmt: skip
    assert run(0.0) == "None"  # idle: OpenMP's default
    assert run(64.0) == "PASSIVE"
    assert run(64.0, OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"  # the user's setting is kept
