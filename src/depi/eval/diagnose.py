"""Checks of the train -> eval path that need no trained model: what a policy could at best achieve through it.

Two things can make a well-trained policy fail closed loop although its offline error is low: the execution path
(chunks at ``control_fps`` resampled to the env's rate, ``n_action_steps`` open loop) may drop what the task
needs, or the transforms may not invert (normalize -> unnormalize, delta -> absolute actions). Both are checked
here with the recorded actions in place of the model's predictions:

* :func:`replay_check`: the scripted expert records an episode from a seed; the same seed is then replayed
  (a) open loop at the env's rate, and (b) through the policy's execution path: at every query the chunk the
  mixture would build from the recording (:func:`depi.datasets.mixture.chunks.chunk_positions` /
  ``resample_chunk`` at ``control_fps``, ``H`` steps) is read back at the env's rate and executed for
  ``n_action_steps`` env steps (:class:`RecordedChunkAgent`, the same arithmetic as
  :class:`depi.eval.agents.ChunkAgent`). A task that (a) solves but (b) does not is lost by the control rate or
  the horizon, not by the model.
* :func:`transform_roundtrip`: the recorded action chunks of a dataset's frames go through the checkpoint's input
  transforms (delta, normalize, pad) and back through its output transforms (unnormalize, absolute); the result
  must equal the recording (up to float32 rounding) on the real dims.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from depi.constants import ACTION_IS_PAD, ACTIONS, EMBODIMENT, STATE
from depi.datasets.mixture.chunks import chunk_positions, resample_chunk
from depi.eval.agents import ExpertAgent, env_steps_of_chunk
from depi.eval.policy_runner import Checkpoint, EvalPolicyConfig
from depi.sim.envs import EnvSpec, Observation, SimEnvConfig, make_env


class RecordedChunkAgent:
    """Replays one recorded episode through the receding-horizon execution path of a checkpoint.

    Args:
        episode_actions: float32 (L, A), the recording at the env's rate.
        spec: the env's spec (its fps is the recording's).
        control_fps: chunk rate (Hz) of the policy being emulated.
        horizon: H, chunk steps.
        n_action_steps: env steps executed per chunk; None: every env step the chunk covers.
    """

    def __init__(
        self,
        episode_actions: np.ndarray,
        spec: EnvSpec,
        control_fps: float,
        horizon: int,
        n_action_steps: int | None = None,
    ) -> None:
        self.actions = np.asarray(episode_actions, dtype=np.float32)
        self.spec, self.control_fps, self.horizon = spec, control_fps, horizon
        self.env_positions = env_steps_of_chunk(horizon, control_fps, spec.fps)
        self.n_action_steps = n_action_steps or len(self.env_positions)
        self.name = f"recording via {horizon} steps at {control_fps:g} Hz"
        self._step, self._queue = 0, []

    def reset(self, seed: int) -> None:
        self._step, self._queue = 0, []

    def act(self, obs: Observation) -> np.ndarray:
        if not self._queue:
            positions = chunk_positions(self._step, self.spec.fps, self.control_fps, self.horizon)
            chunk, _ = resample_chunk(self.actions, positions)  # (H, A) at control_fps, as in training
            at_env_rate, _ = resample_chunk(chunk, self.env_positions)  # (n, A), as ChunkAgent executes it
            self._queue = list(at_env_rate[: self.n_action_steps])
        self._step += 1
        return self._queue.pop(0)


class _OpenLoop:
    name = "recording, open loop"

    def __init__(self, episode_actions: np.ndarray) -> None:
        self.actions, self._step = episode_actions, 0

    def reset(self, seed: int) -> None:
        self._step = 0

    def act(self, obs: Observation) -> np.ndarray:
        action = self.actions[min(self._step, len(self.actions) - 1)]
        self._step += 1
        return action


@dataclass
class ReplayResult:
    """One seed: the expert's success and steps, then the replays' successes and the chunk path's max action
    deviation from the recording (in action units, over the executed steps)."""

    seed: int
    expert_success: bool
    expert_steps: int
    open_loop_success: bool
    chunk_path_success: bool
    chunk_path_max_abs_dev: float


def _rollout(env, agent, seed: int, record: bool = False) -> tuple[bool, int, np.ndarray]:
    obs = env.reset(seed)
    agent.reset(seed)
    success, done, steps, actions = False, False, 0, []
    while not done:
        action = np.asarray(agent.act(obs), dtype=np.float32)
        if record:
            actions.append(action)
        obs, step_success, done = env.step(action)
        success, steps = success or step_success, steps + 1
    return success, steps, np.stack(actions) if actions else np.zeros((0, env.spec.action_dim), np.float32)


def replay_check(
    env_name: str,
    seeds: list[int],
    control_fps: float,
    horizon: int,
    n_action_steps: int | None = None,
    image_size: int = 64,
    max_episode_steps: int | None = None,
) -> list[ReplayResult]:
    """Expert recording, open-loop replay and chunk-path replay for each seed (module docstring).

    Returns:
        one :class:`ReplayResult` per seed.

    Raises:
        ModuleNotFoundError: the simulator package is missing.
    """
    results = []
    with make_env(SimEnvConfig(env_name, image_size=image_size, max_episode_steps=max_episode_steps)) as env:
        expert = ExpertAgent(env)
        for seed in seeds:
            success, steps, recorded = _rollout(env, expert, seed, record=True)
            open_ok, _, _ = _rollout(env, _OpenLoop(recorded), seed)
            chunk_agent = RecordedChunkAgent(recorded, env.spec, control_fps, horizon, n_action_steps)
            chunk_ok, _, executed = _rollout(env, chunk_agent, seed, record=True)
            n = min(len(executed), len(recorded))
            deviation = float(np.abs(executed[:n] - recorded[:n]).max()) if n else 0.0
            results.append(ReplayResult(seed, success, steps, open_ok, chunk_ok, deviation))
    return results


def transform_roundtrip(checkpoint: Checkpoint, root: str | Path, max_samples: int = 64) -> dict[str, float]:
    """Max abs error, per dataset, of recorded chunks sent through the input then the output transforms.

    Args:
        checkpoint: the loaded checkpoint (its transforms, norm stats, control rate and horizon).
        root: a dataset folder or a folder of datasets of the checkpoint's embodiments.
        max_samples: samples per dataset, evenly spaced over its frames.

    Returns:
        repo_id -> max |unnormalize(normalize(actions)) - actions| over the real dims of non-padded steps, in the
        dataset's action units.

    Raises:
        ValueError: a dataset's embodiment has no norm stats in the checkpoint.
    """
    from depi.eval.offline import OfflineDatasetConfig, build_mixture

    mixture = build_mixture(checkpoint, OfflineDatasetConfig(root=str(root)))
    index = mixture.index
    errors: dict[str, float] = {}
    for d, entry in enumerate(index.entries):
        worst = 0.0
        for global_index in _spread(int(index.offsets[d]), int(index.num_frames[d]), max_samples):
            sample = mixture[global_index]
            model_sample = checkpoint.transforms.inputs(dict(sample))
            out = checkpoint.transforms.outputs(
                {
                    ACTIONS: np.asarray(model_sample[ACTIONS]),
                    STATE: np.asarray(sample[STATE]),
                    EMBODIMENT: sample[EMBODIMENT],
                }
            )
            valid = ~np.asarray(sample[ACTION_IS_PAD])
            dims = entry.action_dim
            diff = np.asarray(out[ACTIONS])[valid, :dims] - np.asarray(sample[ACTIONS])[valid, :dims]
            worst = max(worst, float(np.abs(diff).max()) if diff.size else 0.0)
        errors[entry.repo_id] = worst
    return errors


def _spread(start: int, count: int, n: int) -> list[int]:
    return sorted({start + int(i) for i in np.linspace(0, count - 1, num=min(n, count))})


def replay_table(results: list[ReplayResult]) -> list[dict]:
    """:func:`replay_check` results as JSON-ready rows."""
    return [asdict(r) for r in results]


@dataclass
class DiagnoseConfig:
    """Flags of ``depi-eval diagnose``.

    Attributes:
        env: sim env whose expert recordings are replayed (``so101_pick_place``, ``metaworld/<task>``, ...).
        episodes: seeds replayed, from ``seed``.
        seed: first seed.
        policy: ``--policy.path=CKPT`` takes ``control_fps``, ``action_horizon`` from the checkpoint and adds the
            transform round trip on ``dataset_root``; without it, ``control_fps`` / ``horizon`` below.
        control_fps: chunk rate (Hz) emulated without a checkpoint.
        horizon: chunk steps emulated without a checkpoint.
        n_action_steps: env steps per chunk; None: every env step a chunk covers.
        dataset_root: dataset folder (or folder of datasets) for the transform round trip.
        image_size: rendered image side (px); the replays do not look at images.
        output_dir: where ``diagnosis.json`` goes; None: ``outputs/eval/diagnose/<env>``.
    """

    env: str = "so101_pick_place"
    episodes: int = 5
    seed: int = 1000
    policy: EvalPolicyConfig = field(default_factory=EvalPolicyConfig)
    control_fps: float = 30.0
    horizon: int = 10
    n_action_steps: int | None = None
    dataset_root: str | None = None
    image_size: int = 64
    output_dir: str | None = None

    def __post_init__(self) -> None:
        if self.episodes < 1 or self.horizon < 1 or self.control_fps <= 0:
            raise ValueError("--episodes and --horizon must be >= 1 and --control_fps > 0")
        if self.dataset_root and not self.policy.path:
            raise ValueError("--dataset_root checks a checkpoint's transforms: give --policy.path=CKPT too")


def run_diagnosis(config: DiagnoseConfig) -> dict:
    """Replay check (and transform round trip with a checkpoint); writes and returns ``diagnosis.json``.

    Returns:
        ``{"env", "control_fps", "horizon", "replays": [ReplayResult as dict], "roundtrip_max_abs_error":
        {repo_id: float} | None}``.

    Raises:
        FileNotFoundError / ValueError: see :func:`depi.eval.policy_runner.load_checkpoint`, :func:`transform_roundtrip`.
        ModuleNotFoundError: the simulator package is missing.
    """
    from depi.eval.policy_runner import load_checkpoint
    from depi.fileio import write_json
    from depi.sim.generate import dataset_name

    control_fps, horizon, checkpoint = config.control_fps, config.horizon, None
    if config.policy.path:
        checkpoint = load_checkpoint(config.policy.path, config.policy.device, config.policy.dtype)
        control_fps, horizon = checkpoint.control_fps, checkpoint.action_horizon
    seeds = list(range(config.seed, config.seed + config.episodes))
    replays = replay_check(config.env, seeds, control_fps, horizon, config.n_action_steps, config.image_size)
    roundtrip = None
    if checkpoint is not None and config.dataset_root:
        roundtrip = transform_roundtrip(checkpoint, config.dataset_root)
    result = {
        "env": config.env,
        "control_fps": control_fps,
        "horizon": horizon,
        "n_action_steps": config.n_action_steps,
        "replays": replay_table(replays),
        "roundtrip_max_abs_error": roundtrip,
    }
    output_dir = Path(config.output_dir or f"outputs/eval/diagnose/{dataset_name(config.env)}")
    write_json(output_dir / "diagnosis.json", result)
    return result


def format_diagnosis(result: dict) -> str:
    """The replay rows and the round-trip errors of :func:`run_diagnosis` as text tables."""
    from depi.eval.report import format_table

    rows = [
        [r["seed"], r["expert_steps"], _yes(r["expert_success"]), _yes(r["open_loop_success"]),
         _yes(r["chunk_path_success"]), f"{r['chunk_path_max_abs_dev']:.4f}"]
        for r in result["replays"]
    ]  # fmt: skip
    chunk = f"chunk path ({result['horizon']} @ {result['control_fps']:g} Hz)"
    text = format_table(["seed", "expert steps", "expert", "open loop", chunk, "max |dev|"], rows)
    if result["roundtrip_max_abs_error"] is not None:
        text += "\n\n" + format_table(
            ["dataset", "normalize -> unnormalize max |error|"],
            [[k, f"{v:.2e}"] for k, v in result["roundtrip_max_abs_error"].items()],
        )
    return text


def _yes(flag: bool) -> str:
    return "success" if flag else "FAIL"
