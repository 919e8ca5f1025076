"""The run folder's layout: checkpoint folder names and how the latest complete checkpoint is found.

Kept apart from :mod:`depi.train.checkpoint` (which saves and restores) so that the config parser, the
evaluation and serving code can find a run's checkpoints without importing the training stack::

    <run_dir>/checkpoints/<step:09d>/{model/, ema_model/, train_config.yaml, ..., checkpoint_complete.json}
"""

from __future__ import annotations

import re
from pathlib import Path

CHECKPOINTS_DIR = "checkpoints"
COMPLETE_MARKER = "checkpoint_complete.json"
MODEL_DIR = "model"
EMA_MODEL_DIR = "ema_model"
TRAINING_STATE_DIR = "training_state"
TRAIN_CONFIG_FILE = "train_config.yaml"
MANIFEST_FILE = "mixture_manifest.json"
STEP_NAME = re.compile(r"^\d{9}$")


def checkpoint_path(run_dir: Path, step: int) -> Path:
    """``<run_dir>/checkpoints/<step:09d>``."""
    return Path(run_dir) / CHECKPOINTS_DIR / f"{step:09d}"


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The complete checkpoint with the highest step under ``run_dir``, or ``None``.

    Folders without ``checkpoint_complete.json`` (and ``.tmp-*`` folders) are ignored.
    """
    root = Path(run_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return None
    complete = [p for p in root.iterdir() if STEP_NAME.match(p.name) and (p / COMPLETE_MARKER).is_file()]
    return max(complete, key=lambda p: int(p.name), default=None)
