"""Who acts in a closed-loop episode: a checkpoint by receding horizon, the scripted expert, or a baseline.

Every agent acts one env step at a time (:class:`Agent`), so the same episode loop
(:func:`depi.eval.sim.run_episode`) scores them all and their rows compare directly:

* :class:`ChunkAgent`: a checkpoint; predicts an action chunk at the checkpoint's ``control_fps``, resamples it to
  the env's rate and executes the first ``n_action_steps`` env steps before predicting again;
* :class:`ExpertAgent`: the env's scripted expert (privileged state), the upper reference row;
* :class:`RandomAgent`: actions drawn uniformly inside the env's action bounds, seeded per episode: the rate at
  which a task succeeds by chance;
* :class:`ZeroAgent`: the zero action (clipped into the bounds) at every step: no motion for delta-action envs
  (Meta-World, SO-101), the zero pose for absolute ones.
"""

from __future__ import annotations

import time
from typing import Protocol

import numpy as np

from depi.constants import TASK
from depi.datasets.mixture.chunks import env_steps_of_chunk, resample_chunk
from depi.eval.policy_runner import PolicyRunner
from depi.sim.envs import EnvSpec, Observation, SimEnv

EXPERT = "expert"
RANDOM = "random"
ZERO = "zero"
BASELINES = (RANDOM, ZERO)


class Agent(Protocol):
    """Something that acts in an env, one env step at a time."""

    name: str

    def reset(self, seed: int) -> None:
        """Start an episode (called right after ``env.reset(seed)``)."""

    def act(self, obs: Observation) -> np.ndarray:
        """float32 (A,) action for the current observation."""


class ExpertAgent:
    """The env's scripted expert (reads the simulator's privileged state, ignores ``obs``)."""

    def __init__(self, env: SimEnv) -> None:
        self.expert = env.make_expert()
        self.name = f"{EXPERT} ({self.expert.name})"

    def reset(self, seed: int) -> None:
        self.expert.reset()

    def act(self, obs: Observation) -> np.ndarray:
        return np.asarray(self.expert.act(), dtype=np.float32)


class RandomAgent:
    """Uniform random actions in ``[action_low, action_high]``, from a generator reseeded with each episode's seed.

    Raises:
        ValueError: an action dim is unbounded (e.g. SO-100's end-effector pose targets): no uniform law exists.
    """

    def __init__(self, spec: EnvSpec) -> None:
        self.low = np.asarray(spec.action_low, dtype=np.float64)
        self.high = np.asarray(spec.action_high, dtype=np.float64)
        unbounded = [n for n, lo, hi in zip(spec.action_names, self.low, self.high) if not np.isfinite(hi - lo)]
        if unbounded:
            raise ValueError(
                f"--policy.path={RANDOM}: {spec.name} has unbounded action dims {unbounded}; a uniform random "
                f"baseline needs finite bounds. Use --policy.path={ZERO} or an env with bounded actions."
            )
        self.name = f"{RANDOM} (uniform in the action bounds)"
        self.rng = np.random.default_rng(0)

    def reset(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def act(self, obs: Observation) -> np.ndarray:
        return self.rng.uniform(self.low, self.high).astype(np.float32)


class ZeroAgent:
    """The zero action clipped into the env's bounds, at every step."""

    def __init__(self, spec: EnvSpec) -> None:
        low = np.asarray(spec.action_low, dtype=np.float32)
        high = np.asarray(spec.action_high, dtype=np.float32)
        self.action = np.clip(np.zeros(spec.action_dim, dtype=np.float32), low, high)
        self.name = f"{ZERO} (zero action)"

    def reset(self, seed: int) -> None:
        pass

    def act(self, obs: Observation) -> np.ndarray:
        return self.action.copy()


class ChunkAgent:
    """A checkpoint acting by receding horizon (module docstring).

    The chunk (H steps at ``control_fps``) is read at the env's rate by linear interpolation
    (:func:`depi.datasets.mixture.chunks.resample_chunk`, the rule the mixture builds training chunks with), so env
    step ``j`` after an observation executes the action predicted for ``j / fps`` seconds later.

    Args:
        runner: the policy runner bound to the env's layout.
        spec: the env's spec (fps, task, action dims).
        n_action_steps: env steps executed per chunk; None: every env step the chunk covers.

    Raises:
        ValueError: ``n_action_steps`` exceeds the env steps one chunk covers.
    """

    def __init__(self, runner: PolicyRunner, spec: EnvSpec, n_action_steps: int | None) -> None:
        checkpoint = runner.checkpoint
        self.runner, self.spec = runner, spec
        self.name = str(checkpoint.path)
        self.positions = env_steps_of_chunk(checkpoint.action_horizon, checkpoint.control_fps, spec.fps)
        if n_action_steps is not None and n_action_steps > len(self.positions):
            raise ValueError(
                f"--n_action_steps={n_action_steps}: a chunk of {checkpoint.action_horizon} steps at "
                f"{checkpoint.control_fps:g} Hz covers only {len(self.positions)} steps of {spec.name} at "
                f"{spec.fps} Hz; pass --n_action_steps <= {len(self.positions)}"
            )
        self.n_action_steps = n_action_steps or len(self.positions)
        self.inference_seconds: list[float] = []
        self._queue: list[np.ndarray] = []

    def reset(self, seed: int) -> None:
        self.runner.reset(seed)
        self._queue = []

    def act(self, obs: Observation) -> np.ndarray:
        if not self._queue:
            self._queue = list(self.plan(obs))
        return self._queue.pop(0).astype(np.float32)

    def plan(self, obs: Observation) -> np.ndarray:
        """The env-rate actions executed from ``obs``: float32 (n_action_steps, A)."""
        start = time.perf_counter()
        chunk = self.runner.infer({**obs, TASK: self.spec.task})["actions"]  # (H, A) at control_fps
        self.inference_seconds.append(time.perf_counter() - start)
        at_env_rate, _ = resample_chunk(chunk, self.positions)  # (n, A) at the env's fps
        return np.asarray(at_env_rate[: self.n_action_steps], dtype=np.float32)
