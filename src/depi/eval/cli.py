"""``depi-eval``: closed-loop evaluation in simulation (``sim``), offline metrics on datasets (``offline``), held-out
splits (``split``) and checks of the train -> eval path (``diagnose``).

Usage::

    depi-eval sim --env so101_pick_place --policy.path=outputs/demo_run/checkpoints/000001000 --episodes 10 \\
        --compare='[expert,random,zero]'                                           # + reference and baseline rows
    depi-eval sim --env metaworld/reach-v3 --policy.path=expert --episodes 10      # the reference row alone
    depi-eval offline --policy.path=outputs/demo_run/checkpoints/000001000 --dataset.root=outputs/demo_data \\
        --stride 5 --max_samples 50
    depi-eval split --root=outputs/demo_data --split.test_fraction=0.2 --split.splits_dir=outputs/splits
    depi-eval diagnose --env metaworld/reach-v3 --policy.path=CKPT --dataset_root=outputs/sim_demos

Flags are draccus flags of :class:`depi.eval.sim.SimEvalConfig`, :class:`depi.eval.offline.OfflineEvalConfig`,
:class:`depi.eval.splits.MakeSplitsConfig` and :class:`depi.eval.diagnose.DiagnoseConfig`
(``depi-eval sim --help``); ``split`` only writes the split files (train with ``--dataset.holdout_dir`` on them,
then ``offline`` scores the held-out episodes).
"""

from __future__ import annotations

import logging

from depi.cli import parse, run, split_command
from depi.threads import configure_threads

PROG = "depi-eval"
COMMANDS = ("sim", "offline", "split", "diagnose")


def main(argv: list[str]) -> int:
    """``depi-eval {sim,offline,split,diagnose} [flags]``; prints the summary table (``split``: one line per
    dataset file written or reused).

    Raises:
        UsageError: no or an unknown sub-command, or bad flags.
    """
    split = split_command(argv, COMMANDS, PROG)
    if split is None:
        return 0
    command, flags = split
    prog = f"{PROG} {command}"
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    configure_threads()  # depi.threads: OMP_NUM_THREADS, else every available CPU
    if command == "sim":
        from depi.eval.sim import SimEvalConfig, comparison_configs, format_sim_summary, run_sim_eval

        config = parse(SimEvalConfig, flags, prog=prog)
        print(format_sim_summary([run_sim_eval(c) for c in comparison_configs(config)]))
    elif command == "split":
        from depi.eval.splits import MakeSplitsConfig, make_splits, split_path

        split_config = parse(MakeSplitsConfig, flags, prog=prog)
        for split in make_splits(split_config):
            path = split_path(split_config.split.splits_dir, split.repo_id)
            print(f"{split.repo_id}: {len(split.test_episodes)} test / {len(split.train_episodes)} train -> {path}")
    elif command == "diagnose":
        from depi.eval.diagnose import DiagnoseConfig, format_diagnosis, run_diagnosis

        print(format_diagnosis(run_diagnosis(parse(DiagnoseConfig, flags, prog=prog))))
    else:
        from depi.eval.offline import OfflineEvalConfig, format_offline_summary, run_offline_eval

        print(format_offline_summary(run_offline_eval(parse(OfflineEvalConfig, flags, prog=prog))))
    return 0


def console() -> None:
    """Console script entry point (``depi-eval``)."""
    run(main, prog=PROG)


if __name__ == "__main__":
    console()
