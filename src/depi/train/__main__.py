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

from depi.train.config import parse_args
from depi.train.demo import prepare_demo_data
from depi.train.loop import train


def main(argv: list[str] | None = None) -> None:
    """Console entry point ``depi-train`` (flags: see :class:`depi.train.config.TrainConfig`)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = parse_args(sys.argv[1:] if argv is None else argv)
    train(prepare_demo_data(cfg))


if __name__ == "__main__":
    main()
