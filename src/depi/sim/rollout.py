"""Run one episode of a scripted expert in a simulator adapter and keep its frames in memory.

Frame ``t`` pairs the observation seen at step ``t`` with the action taken from it (LeRobot's convention), so an
episode of ``T`` steps has ``T`` frames and the observation after the last action is not recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from depi.constants import ACTION
from depi.sim.envs.base import Expert, SimEnv


@dataclass
class Episode:
    """One rollout.

    Attributes:
        seed: the reset seed; ``env.reset(seed)`` reproduces the initial placement.
        success: the simulator reported success before the episode ended.
        frames: per step, the observation dict (LeRobot keys, see :mod:`depi.sim.envs.base`) plus
            ``"action"`` float32 (A,).
    """

    seed: int
    success: bool
    frames: list[dict[str, np.ndarray]] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return len(self.frames)


def rollout(env: SimEnv, expert: Expert, seed: int) -> Episode:
    """Reset ``env`` with ``seed`` and let ``expert`` act until success or ``env.spec.max_episode_steps``.

    Returns:
        the episode; its last frame is the step on which success (or the end) was reached.

    Raises:
        ValueError: the expert produced an action of the wrong shape or a non-finite one (from ``env.step``).
    """
    obs = env.reset(seed)
    expert.reset()
    episode = Episode(seed=seed, success=False)
    done = False
    while not done:
        action = np.asarray(expert.act(), dtype=np.float32)
        episode.frames.append({**obs, ACTION: action})
        obs, success, done = env.step(action)
        episode.success = episode.success or success
    return episode
