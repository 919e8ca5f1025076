"""``depi-train``: train a pi0 / pi0.5 policy on a mixture of LeRobot datasets.

Runs the same way on one process and on many::

    depi-train                                   # the embedded default: the demo preset on the demo mixture
    python -m depi.train --config_path=pi05_lora --dataset.repo_ids=data_ids/so100_community.json
    accelerate launch --num_processes 8 -m depi.train --config_path=pi0_so100_mixture --num_datasets=200
    accelerate launch --config_file configs/accelerate/fsdp.yaml -m depi.train --policy.type=pi0 ...
    torchrun --nproc_per_node 8 -m depi.train --config_path=pi0_bridge_finetune
    depi-train --resume=true --output_dir=outputs/train/<run> --steps=60000

On a host without GPU, several processes train with DDP over gloo: ``torchrun --nproc_per_node 2 -m
depi.train ...`` (or ``accelerate launch --multi_gpu --num_processes 2 -m depi.train ...``, which also uses
torchrun underneath; depi then asks accelerate for the CPU).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from draccus.utils import DecodingError, ParsingError

from depi.cli import HELP_FLAGS, check_flags, print_help, run
from depi.errors import UsageError

from depi.train.config import TrainConfig, parse_args
from depi.train.demo import prepare_demo_data
from depi.train.loop import train

PROG = "depi-train"


def main(argv: list[str] | None = None) -> int:
    """``depi-train [flags]`` (flags: see :class:`depi.train.config.TrainConfig`); returns the exit status.

    Raises:
        UsageError: an unknown flag (with the closest known ones) or a value the config refuses.
        FileNotFoundError: a dataset root, preset or checkpoint named on the command line does not exist.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in HELP_FLAGS for a in argv):
        return _help()
    check_flags(TrainConfig, argv, prog=PROG, extra=("config_path",))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = parse_args(argv)
    except (ParsingError, DecodingError) as error:
        cause = error.__cause__ if isinstance(error, ParsingError) and error.__cause__ else error
        raise UsageError(str(cause)) from error
    root = cfg.dataset.root
    if root and not cfg.demo_data and not cfg.dataset.download and not Path(root).expanduser().exists():  # demo data is generated there
        raise FileNotFoundError(f"--dataset.root={root}: no such folder; pass a LeRobot dataset folder or a "
                                "folder of datasets")  # fmt: skip
    print(f"{PROG}: preparing the data ({root or cfg.dataset.repo_id or cfg.dataset.repo_ids or 'demo mixture'}) "
          "and the model ...", flush=True)  # fmt: skip
    train(prepare_demo_data(cfg))
    return 0


def _help() -> int:
    print_help(TrainConfig, PROG)
    return 0


def console() -> None:
    """Console script entry point (``depi-train``)."""
    run(main, prog=PROG)


if __name__ == "__main__":
    console()
