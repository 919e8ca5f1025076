"""Kill a process with SIGKILL at a chosen training step or during a checkpoint save, and check what it left."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from depi.train.run_layout import COMPLETE_MARKER, MODEL_DIR, TRAINING_STATE_DIR, latest_checkpoint


def logged_steps(run_dir: Path, since: float = 0.0) -> int:
    """The last step in ``metrics.jsonl`` (0: none, or the file was last written before ``since``, a
    ``time.time()``: a restarted run has not rewritten the log it inherits yet)."""
    path = run_dir / "metrics.jsonl"
    try:
        if path.stat().st_mtime < since:
            return 0
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return 0
    return json.loads(lines[-1])["step"] if lines else 0


def run_and_kill(cmd: list[str], run_dir: Path, *, at_step: int | None = None, in_save: bool = False,
                 after_step: int = 0, env: dict | None = None, timeout_s: float = 300) -> str:  # fmt: skip
    """Start ``cmd``; SIGKILL it once it has logged step ``at_step``, or as soon as a ``.tmp-*`` checkpoint folder
    made since the start exists (``in_save``; the first save after step ``after_step``). Returns ``"killed"`` or ``"finished"`` (it ended first).

    Raises:
        RuntimeError: it exited with an error, or ran past ``timeout_s``.
    """
    launched = time.time()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout_s
    checkpoints = run_dir / "checkpoints"
    while proc.poll() is None:
        saving = in_save and _saving_since(checkpoints, launched) and logged_steps(run_dir, launched) >= after_step
        if saving or (at_step is not None and logged_steps(run_dir, since=launched) >= at_step):
            proc.kill()
            proc.wait()
            return "killed"
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"{cmd} ran past {timeout_s} s")
        time.sleep(0.002)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed ({proc.returncode}): {proc.stderr.read()[-2000:]}")
    return "finished"


def _saving_since(checkpoints: Path, launched: float) -> bool:
    """A ``.tmp-*`` checkpoint folder made after ``launched`` exists (not one a killed run left behind)."""
    try:
        return any(p.name.startswith(".tmp-") and p.stat().st_mtime >= launched for p in checkpoints.iterdir())
    except FileNotFoundError:  # no checkpoints/ yet, or the folder was renamed while we looked
        return False


def latest_checkpoint_loads(run_dir: Path) -> int | None:
    """Load every file of the latest complete checkpoint; returns its step (None: no checkpoint yet).

    Raises:
        whatever a half-written file raises (that is the failure being tested for).
    """
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        return None
    marker = json.loads((checkpoint / COMPLETE_MARKER).read_text())
    load_file(checkpoint / MODEL_DIR / "model.safetensors")
    state = checkpoint / TRAINING_STATE_DIR
    torch.load(state / "optimizer.pt", weights_only=True)
    torch.load(state / "scheduler.pt", weights_only=True)
    json.loads((state / "sampler.json").read_text())
    return int(marker["step"])


def losses(run_dir: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
