"""Closed-loop evaluation in the :mod:`depi.sim` simulators: success rate with a Wilson 95% interval.

A policy acts by **receding horizon**: from an observation it predicts an action chunk of H steps at the
checkpoint's control rate ``control_fps``; the chunk is resampled to the env's rate (step ``j`` of the env is
``j / fps`` seconds after the observation, read from the chunk by linear interpolation, the mixture's rule in
:mod:`depi.datasets.mixture.chunks`), the first ``n_action_steps`` env steps are executed, then the policy is queried
again on the new observation (openpi / LeRobot's ``n_action_steps``). The scripted expert runs through the same
loop (``--policy.path=expert``) as the reference row.

Outputs under ``output_dir``: ``results.json`` (config, per-episode seed / success / steps / seconds / video,
success rate and interval), ``videos/episode_<seed>.mp4`` for the first ``num_videos`` episodes (all cameras
side by side, at the env's fps), and the summary table on stdout.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from tqdm import tqdm

from depi.constants import OBS_IMAGES_PREFIX, TASK
from depi.datasets.mixture.chunks import resample_chunk
from depi.datasets.format.video_encode import EpisodeVideoEncoder, VideoEncodeConfig
from depi.eval.policy_runner import Checkpoint, EvalPolicyConfig, PolicyRunner, load_checkpoint
from depi.eval.report import format_table, wilson_interval
from depi.fileio import write_json
from depi.sim.envs import EnvSpec, Observation, SimEnv, SimEnvConfig, make_env
from depi.sim.generate import dataset_name

logger = logging.getLogger(__name__)

EXPERT = "expert"
RESULTS_FILE = "results.json"


@dataclass
class SimEvalConfig:
    """Flags of ``depi-eval sim``.

    Attributes:
        env: registered env name (``so101_pick_place``, ``metaworld/<task>``, ``so100_transfer_cube``).
        policy: the policy (``--policy.path=CKPT`` or ``--policy.path=expert``).
        expert: run the scripted expert (same as ``--policy.path=expert``).
        episodes: episodes to run; episode k resets with seed ``seed + k``.
        seed: seed of the first episode. The default 1000 keeps the placements apart from those of
            ``depi-gen-demos``' training episodes (seeds 0, 1, ...).
        n_action_steps: env steps executed per predicted chunk; None: the whole chunk (all steps it covers at the
            env's fps).
        num_videos: episodes (the first ones) saved as mp4.
        output_dir: folder of results.json and videos/; None: ``outputs/eval/sim/<env>``.
        image_size: camera image side in pixels; None: the size the checkpoint's dataset of this env was
            recorded at (224 when unknown).
        max_episode_steps: per-episode step limit; None: the env's default.
    """

    env: str = "so101_pick_place"
    policy: EvalPolicyConfig = field(default_factory=EvalPolicyConfig)
    expert: bool = False
    episodes: int = 10
    seed: int = 1000
    n_action_steps: int | None = None
    num_videos: int = 2
    output_dir: str | None = None
    image_size: int | None = None
    max_episode_steps: int | None = None

    def __post_init__(self) -> None:
        if self.episodes < 1:
            raise ValueError(f"--episodes={self.episodes}: expected at least 1")
        if self.num_videos < 0:
            raise ValueError(f"--num_videos={self.num_videos}: expected >= 0")
        if self.n_action_steps is not None and self.n_action_steps < 1:
            raise ValueError(f"--n_action_steps={self.n_action_steps}: expected >= 1 or unset")
        if not self.use_expert and not self.policy.path:
            raise ValueError(
                "set --policy.path=<checkpoint folder> (or --policy.path=expert / --expert=true)"
            )

    @property
    def use_expert(self) -> bool:
        return self.expert or self.policy.path == EXPERT


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


def env_steps_of_chunk(horizon: int, control_fps: float, env_fps: float) -> np.ndarray:
    """Fractional chunk positions of the env steps one chunk covers: ``j * control_fps / env_fps``.

    Returns:
        float64 (n,), every position <= H - 1 (the chunk's last step); n >= 1.
    """
    ratio = control_fps / env_fps
    count = int(np.floor((horizon - 1) / ratio + 1e-9)) + 1
    return np.arange(count, dtype=np.float64) * ratio


class ChunkAgent:
    """A checkpoint acting by receding horizon (module docstring).

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
        self._queue: list[np.ndarray] = []

    def reset(self, seed: int) -> None:
        self.runner.reset(seed)
        self._queue = []

    def act(self, obs: Observation) -> np.ndarray:
        if not self._queue:
            chunk = self.runner.infer({**obs, TASK: self.spec.task})["actions"]  # (H, A) at control_fps
            at_env_rate, _ = resample_chunk(chunk, self.positions)  # (n, A) at the env's fps
            self._queue = list(at_env_rate[: self.n_action_steps])
        return self._queue.pop(0).astype(np.float32)


@dataclass
class EpisodeResult:
    """One evaluation episode: reset seed, success, env steps taken, wall time (seconds), video path or None."""

    seed: int
    success: bool
    steps: int
    seconds: float
    video: str | None = None


def _frame_image(obs: Observation, spec: EnvSpec) -> np.ndarray:
    """All cameras of an observation side by side: uint8 (H, W * cameras, 3)."""
    return np.concatenate([obs[OBS_IMAGES_PREFIX + name] for name in spec.camera_names], axis=1)


def run_episode(env: SimEnv, agent: Agent, seed: int, video_path: Path | None = None) -> EpisodeResult:
    """Reset ``env`` with ``seed`` and let ``agent`` act until success, failure or ``max_episode_steps``.

    With ``video_path``, every observation (all cameras side by side) is encoded into that mp4 at the env's fps.
    """
    start = time.perf_counter()
    obs = env.reset(seed)
    agent.reset(seed)
    encoder = None
    if video_path is not None:
        height, width, _ = _frame_image(obs, env.spec).shape
        encoder = EpisodeVideoEncoder(
            video_path, env.spec.fps, height, width, VideoEncodeConfig(g=30, crf=23)
        )
    success, done, steps = False, False, 0
    try:
        while not done:
            if encoder is not None:
                encoder.add(_frame_image(obs, env.spec))
            obs, step_success, done = env.step(agent.act(obs))
            success = success or step_success
            steps += 1
        if encoder is not None:
            encoder.add(_frame_image(obs, env.spec))
            encoder.close()
    except BaseException:
        if encoder is not None:
            encoder.abort()
        raise
    return EpisodeResult(
        seed, success, steps, time.perf_counter() - start, str(video_path) if video_path else None
    )


def _image_size(config: SimEvalConfig, checkpoint: Checkpoint | None) -> int:
    """The camera size: the flag, else the recorded size of the checkpoint's dataset of this env, else 224."""
    if config.image_size is not None:
        return config.image_size
    if checkpoint is not None:
        from depi.datasets.format.meta import load_meta

        for entry in checkpoint.manifest.get("datasets", []):
            root = Path(entry["root"])
            if root.name == dataset_name(config.env) and root.is_dir():
                meta = load_meta(root)
                return int(meta.features[meta.camera_keys[0]]["shape"][0])
    return 224


def _env_repo_id(checkpoint: Checkpoint, env_name: str) -> str:
    """The repo_id the checkpoint's mixture gave this env's dataset (so role mappings apply), else a default."""
    for entry in checkpoint.manifest.get("datasets", []):
        if Path(entry["root"]).name == dataset_name(env_name):
            return str(entry["repo_id"])
    return f"depi_sim/{dataset_name(env_name)}"


def make_agent(config: SimEvalConfig, env: SimEnv, checkpoint: Checkpoint | None) -> Agent:
    """The expert, or a :class:`ChunkAgent` bound to the env's layout (raises if its embodiment is unknown)."""
    if checkpoint is None:
        return ExpertAgent(env)
    spec = env.spec
    binding = checkpoint.bind(
        _env_repo_id(checkpoint, spec.name),
        spec.robot_type,
        list(spec.camera_keys),
        spec.state_dim,
        spec.action_dim,
    )
    runner = PolicyRunner(
        checkpoint, binding, num_steps=config.policy.num_steps, seed=config.seed, compile=config.policy.compile
    )
    return ChunkAgent(runner, spec, config.n_action_steps)


def run_sim_eval(config: SimEvalConfig) -> dict:
    """Run ``config.episodes`` episodes, write results.json and the videos, return the results dict.

    Returns:
        ``{"env", "policy", "episodes": [EpisodeResult as dict], "success_rate", "ci95": [low, high], ...}``.

    Raises:
        ValueError: the env's embodiment has no norm stats in the checkpoint, or bad flags.
        FileNotFoundError: the checkpoint is incomplete.
        ModuleNotFoundError: the simulator package is missing.
    """
    checkpoint = (
        None
        if config.use_expert
        else load_checkpoint(config.policy.path, config.policy.device, config.policy.dtype)
    )
    output_dir = Path(config.output_dir or f"outputs/eval/sim/{dataset_name(config.env)}")
    env_config = SimEnvConfig(
        config.env, image_size=_image_size(config, checkpoint), max_episode_steps=config.max_episode_steps
    )
    results: list[EpisodeResult] = []
    with make_env(env_config) as env:
        agent = make_agent(config, env, checkpoint)
        bar = tqdm(
            range(config.episodes), desc=f"{config.env} [{'expert' if checkpoint is None else 'policy'}]"
        )
        for k in bar:
            seed = config.seed + k
            video = output_dir / "videos" / f"episode_{seed}.mp4" if k < config.num_videos else None
            if video is not None:
                video.parent.mkdir(parents=True, exist_ok=True)
            results.append(run_episode(env, agent, seed, video))
            bar.set_postfix(success=f"{sum(r.success for r in results)}/{len(results)}")
        spec = env.spec
    successes = sum(r.success for r in results)
    low, high = wilson_interval(successes, len(results))
    summary = {
        "env": config.env,
        "task": spec.task,
        "policy": agent.name,
        "checkpoint": None if checkpoint is None else str(checkpoint.path),
        "env_fps": spec.fps,
        "control_fps": None if checkpoint is None else checkpoint.control_fps,
        "n_action_steps": getattr(agent, "n_action_steps", None),
        "image_size": spec.image_size,
        "max_episode_steps": spec.max_episode_steps,
        "seed": config.seed,
        "num_episodes": len(results),
        "successes": successes,
        "success_rate": successes / len(results),
        "ci95": [low, high],
        "mean_steps": float(np.mean([r.steps for r in results])),
        "seconds": float(sum(r.seconds for r in results)),
        "episodes": [asdict(r) for r in results],
    }
    write_json(output_dir / RESULTS_FILE, summary)
    return summary


def format_sim_summary(rows: list[dict]) -> str:
    """Summary table of one or more :func:`run_sim_eval` results (one row each)."""
    return format_table(
        ["env", "policy", "episodes", "success", "95% CI (Wilson)", "mean steps", "s/episode"],
        [
            [
                r["env"],
                r["policy"],
                r["num_episodes"],
                f"{r['success_rate']:.0%}",
                f"[{r['ci95'][0]:.0%}, {r['ci95'][1]:.0%}]",
                f"{r['mean_steps']:.1f}",
                f"{r['seconds'] / r['num_episodes']:.1f}",
            ]
            for r in rows
        ],
    )
