"""Demo generation benchmark: per-env generation speed and scripted-expert success rate.

Usage::

    MUJOCO_GL=egl python benchmarks/bench_sim_demos.py [--episodes 5] [--image_size 224] [--seed 0]
        [--envs so101_pick_place metaworld/reach-v3 ...] [--workdir outputs/bench_sim_demos] [--shadows]

For each env (default: the demo mixture, ``depi.sim.generate.DEMO_MIXTURE``) it writes ``--episodes`` successful
episodes with :func:`depi.sim.generate.record_demos` (rendering, MP4 encoding and parquet included) into a fresh
folder under ``--workdir`` and prints one row per env: kept / attempted episodes, expert success rate, frames,
seconds per kept episode, kept episodes per minute and frames per second of wall time. Most of the time is
MuJoCo's software (llvmpipe) rendering: run it on an otherwise idle machine for numbers worth quoting.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import depi.sim  # noqa: F401  (sets MUJOCO_GL=egl before mujoco is imported)
from depi.sim.envs import SimEnvConfig, make_env
from depi.sim.generate import DEMO_MIXTURE, dataset_name, record_demos


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--envs", nargs="+", default=[name for name, _ in DEMO_MIXTURE])
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shadows", action="store_true", help="render shadows (the simulators' stock look)")
    parser.add_argument("--workdir", type=Path, default=Path("outputs/bench_sim_demos"))
    args = parser.parse_args()

    header = f"{'env':<26} {'kept':>5} {'tried':>6} {'success':>8} {'frames':>7} {'s/episode':>10} {'episodes/min':>13} {'frames/s':>9}"
    rows = [header, "-" * len(header)]
    for name in args.envs:
        root = args.workdir / f"{dataset_name(name)}_{args.image_size}px"
        if root.exists():
            shutil.rmtree(root)
        with make_env(SimEnvConfig(name, image_size=args.image_size, shadows=args.shadows)) as env:
            result = record_demos(env, root, episodes=args.episodes, seed=args.seed)
        kept, frames = len(result.episode_seeds), sum(result.episode_lengths)
        rows.append(
            f"{name:<26} {kept:>5} {result.attempts:>6} {result.success_rate:>8.0%} {frames:>7} "
            f"{result.seconds / kept:>10.1f} {kept / result.seconds * 60:>13.1f} {frames / result.seconds:>9.1f}"
        )
        print(rows[-1], flush=True)
    print(
        f"\nimage_size={args.image_size}, shadows={args.shadows}, seed={args.seed}, episodes={args.episodes}"
    )
    print("\n".join(rows))


if __name__ == "__main__":
    main()
