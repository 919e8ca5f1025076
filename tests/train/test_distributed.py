"""Two CPU processes (DDP over gloo, launched by torchrun) train the small policy together."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from depi.datasets.mixture.sampler import MixtureSampler
from tests.train.ddp_worker import ACCUMULATION, BATCH_SIZE, STEPS

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launch(out_dir: Path, mode: str) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
           str(REPO / "tests/train/ddp_worker.py"), str(out_dir), mode]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return [json.loads((out_dir / f"rank{r}.json").read_text()) for r in range(2)]


@pytest.mark.slow
def test_two_processes_share_weights_and_split_the_global_batch(tmp_path: Path) -> None:
    ranks = _launch(tmp_path, "toy")

    # Identical parameters on both ranks after training.
    assert ranks[0]["param_sha256"] == ranks[1]["param_sha256"]
    # One gradient all-reduce per optimizer step: none on the non-final micro-batches of a window.
    assert [r["allreduce_calls"] for r in ranks] == [STEPS, STEPS]
    # Each micro-batch of the two ranks together is the next global batch of the one-process stream.
    sizes = (40, 24)
    stream = MixtureSampler(np.array(sizes), np.array(sizes) / sum(sizes), seed=0)
    global_batch = BATCH_SIZE * 2
    assert len(ranks[0]["seen"]) == STEPS * ACCUMULATION
    for m in range(STEPS * ACCUMULATION):
        expected = sorted(stream.global_index(k) for k in range(m * global_batch, (m + 1) * global_batch))
        assert sorted(ranks[0]["seen"][m] + ranks[1]["seen"][m]) == expected
    # The main process wrote one checkpoint holding each rank's RNG state.
    checkpoint = Path(ranks[0]["checkpoint"])
    assert {p.name for p in (checkpoint / "training_state").glob("rng_rank*.pt")} == {"rng_rank0.pt", "rng_rank1.pt"}
    assert json.loads((checkpoint / "checkpoint_complete.json").read_text())["num_processes"] == 2


@pytest.mark.slow
def test_tiny_pi0_trains_under_ddp_with_its_preset_settings(tmp_path: Path) -> None:
    ranks = _launch(tmp_path, "pi0")
    assert ranks[0]["param_sha256"] == ranks[1]["param_sha256"]
