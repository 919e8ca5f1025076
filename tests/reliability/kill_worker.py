"""A training process to be killed: ``python -m tests.reliability.kill_worker RUN_DIR STEPS SAVE_FREQ RESUME``.

The toy flow policy of ``tests/train/train_toys.py`` through depi's real training loop, checkpoints and
metrics, with each step and each checkpoint save slowed down (``STEP_S``, ``SAVE_S``) so that a watcher can
kill it at a chosen step or in the middle of a save.
"""

from __future__ import annotations

import sys
import time as clock
from pathlib import Path

import torch

from depi.train.loop import train
from tests.train.train_toys import ToyFlowPolicy, make_toy_data, toy_config

STEP_S, SAVE_S = 0.05, 0.4


class SlowToyPolicy(ToyFlowPolicy):
    def compute_loss(self, batch, noise=None, time=None):
        clock.sleep(STEP_S)
        return super().compute_loss(batch, noise, time)

    def save_pretrained(self, directory):
        super().save_pretrained(directory)
        clock.sleep(SAVE_S)  # the checkpoint folder is still .tmp-<step> here


def main(run_dir: str, steps: str, save_freq: str, resume: str) -> None:
    torch.manual_seed(0)
    cfg = toy_config(Path(run_dir), steps=int(steps), save_freq=int(save_freq), resume=resume == "1", keep_last=2)
    train(cfg, policy=SlowToyPolicy(), data=make_toy_data())


if __name__ == "__main__":
    main(*sys.argv[1:])
