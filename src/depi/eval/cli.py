"""``depi-eval``: closed-loop evaluation in simulation (``sim``) and offline metrics on datasets (``offline``).

Usage::

    depi-eval sim --env so101_pick_place --policy.path=outputs/demo_run/checkpoints/000001000 --episodes 10
    depi-eval sim --env metaworld/reach-v3 --policy.path=expert --episodes 10      # the reference row
    depi-eval offline --policy.path=outputs/demo_run/checkpoints/000001000 --dataset.root=outputs/demo_data \\
        --stride 5 --max_samples 50
    depi-eval split --root=outputs/demo_data --split.test_fraction=0.2 --split.splits_dir=outputs/splits

Flags are draccus flags of :class:`depi.eval.sim.SimEvalConfig` and :class:`depi.eval.offline.OfflineEvalConfig`
(``depi-eval sim --help``); ``split`` takes :class:`depi.eval.splits.MakeSplitsConfig` and only writes the split
files (train with ``--dataset.holdout_dir`` on them, then ``offline`` scores the held-out episodes).
"""

from __future__ import annotations

import logging
import sys

import draccus

from depi.eval.offline import OfflineEvalConfig, format_offline_summary, run_offline_eval
from depi.eval.sim import SimEvalConfig, format_sim_summary, run_sim_eval
from depi.eval.splits import MakeSplitsConfig, make_splits, split_path

COMMANDS = ("sim", "offline", "split")


def main(argv: list[str] | None = None) -> None:
    """Console script ``depi-eval``: ``depi-eval {sim,offline,split} [flags]``; prints the summary table
    (``split``: one line per dataset file written or reused).

    Raises:
        SystemExit: no or an unknown sub-command (the usage is printed).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        found = argv[0] if argv else "nothing"
        raise SystemExit(
            f"usage: depi-eval {{{','.join(COMMANDS)}}} [flags] (--help for the flags); got {found}"
        )
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    command, flags = argv[0], argv[1:]
    if command == "sim":
        sim_config = draccus.parse(SimEvalConfig, args=flags)
        print(format_sim_summary([run_sim_eval(sim_config)]))
    elif command == "split":
        split_config = draccus.parse(MakeSplitsConfig, args=flags)
        for split in make_splits(split_config):
            path = split_path(split_config.split.splits_dir, split.repo_id)
            print(
                f"{split.repo_id}: {len(split.test_episodes)} test / {len(split.train_episodes)} train -> {path}"
            )
    else:
        offline_config = draccus.parse(OfflineEvalConfig, args=flags)
        print(format_offline_summary(run_offline_eval(offline_config)))


if __name__ == "__main__":
    main()
