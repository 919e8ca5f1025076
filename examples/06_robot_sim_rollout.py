"""Drive the simulated SO-101 arm through depi's robot layer, as depi-control does: a policy (a checkpoint, a
``ws://`` policy server, or the scripted expert) acts, the safety layer clamps, each episode reports success.

    python examples/06_robot_sim_rollout.py [--policy.path expert|CKPT|ws://127.0.0.1:8000] [--episodes 2]

With ``ws://`` nothing here imports torch: the same loop runs in lerobot's Python 3.12 environment against a
``depi-serve`` started elsewhere. A real arm replaces ``SimRobot`` with ``make_robot("so101_follower",
port=...)`` (the ``lerobot`` extra).
"""

import argparse
import os

os.environ.setdefault("MUJOCO_GL", "egl")

from depi.robot.loop import run_episode  # noqa: E402
from depi.robot.policy import ChunkExecutor, open_policy  # noqa: E402
from depi.robot.robots import SimRobot  # noqa: E402
from depi.robot.safety import SafeRobot  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--policy.path", dest="policy_path", default="expert")
parser.add_argument("--episodes", type=int, default=2)
parser.add_argument("--image_size", type=int, default=64)
args = parser.parse_args()

robot = SimRobot("sim_so101", image_size=args.image_size)
with SafeRobot(robot, max_relative_target=1.0) as safe:  # end-effector steps of at most 1 action unit
    if args.policy_path == "expert":
        expert = robot.make_expert()

        def act(obs):
            return expert.act()

        def reset(seed):
            expert.reset()
    else:
        executor = ChunkExecutor(open_policy(args.policy_path, env=robot.env_name), robot.fps)
        act, reset = executor.act, executor.reset
    for seed in range(1000, 1000 + args.episodes):
        robot.start_episode(seed)
        reset(seed)
        steps = run_episode(safe, act, robot.task, max_steps=100, realtime=False)
        print(f"seed {seed}: {'success' if robot.success else 'failure'} after {steps} steps "
              f"({safe.clamped_steps} clamped so far)")  # fmt: skip
