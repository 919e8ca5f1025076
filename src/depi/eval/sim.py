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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from depi.constants import OBS_IMAGES_PREFIX
from depi.datasets.format.video_encode import EpisodeVideoEncoder, VideoEncodeConfig
from depi.eval.agents import (
    BASELINES,
    EXPERT,
    RANDOM,
    Agent,
    ChunkAgent,
    ExpertAgent,
    RandomAgent,
    ZeroAgent,
    env_steps_of_chunk,
)
from depi.eval.policy_runner import Checkpoint, EvalPolicyConfig, PolicyRunner, load_checkpoint
from depi.eval.report import format_table, wilson_interval
from depi.fileio import write_json
from depi.sim.envs import EnvSpec, Observation, SimEnv, SimEnvConfig, make_env
from depi.sim.generate import dataset_name, read_generation

logger = logging.getLogger(__name__)

__all__ = ["SimEvalConfig", "run_sim_eval", "run_episode", "format_sim_summary", "env_steps_of_chunk"]

RESULTS_FILE = "results.json"

EVAL_STEP_LIMITS = {"so101_pick_place": 100, "metaworld": 150, "so100_transfer_cube": 200}
"""Default step limits of ``depi-eval sim`` (env name, or its family before ``/``), about twice the longest
scripted-expert episode over seeds 1000-1009 (docs/evaluation.md), so a failing policy does not spend the env's
much longer default limit (SO-101: 300) on CPU time."""


@dataclass
class SimEvalConfig:
    """Flags of ``depi-eval sim``.

    Attributes:
        env: registered env name (``so101_pick_place``, ``metaworld/<task>``, ``so100_transfer_cube``).
        policy: the policy: ``--policy.path=CKPT``, or ``expert`` (the scripted expert), ``random`` (uniform in
            the action bounds) or ``zero`` (the zero action) for the reference and baseline rows.
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
        max_episode_steps: per-episode step limit; None: :data:`EVAL_STEP_LIMITS` of the env (about twice the
            longest scripted-expert episode), else the env's own limit.
        privileged_state: append the environment state to ``observation.state`` (``depi-gen-demos
            --privileged_state=true``); None: as the checkpoint's dataset of this env was recorded (off without a
            checkpoint, or when that dataset is not on this machine).
        goal_marker: draw the goal in the images where the scene does not show it (``SimEnvConfig.goal_marker``);
            None: as the checkpoint's dataset of this env was recorded (datasets generated before the marker
            existed have none), on when that is unknown.
        progress: show a per-step progress bar within each episode (env steps/s) besides the episode bar.
        compare: more rows on the same seeds, e.g. ``--compare='[expert,random,zero]'`` (each writes its results
            under ``<output_dir>/<name>``); the summary table lists them under the policy's row.
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
    privileged_state: bool | None = None
    goal_marker: bool | None = None
    progress: bool = True
    compare: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        unknown = [c for c in self.compare if c not in (EXPERT, *BASELINES)]
        if unknown:
            raise ValueError(f"--compare={unknown}: expected names among {[EXPERT, *BASELINES]}")
        if self.episodes < 1:
            raise ValueError(f"--episodes={self.episodes}: expected at least 1")
        if self.num_videos < 0:
            raise ValueError(f"--num_videos={self.num_videos}: expected >= 0")
        if self.n_action_steps is not None and self.n_action_steps < 1:
            raise ValueError(f"--n_action_steps={self.n_action_steps}: expected >= 1 or unset")
        if not self.use_expert and not self.policy.path:
            raise ValueError(
                "set --policy.path=<checkpoint folder> (or --policy.path=expert|random|zero for the reference "
                "and baseline rows)"
            )

    @property
    def use_expert(self) -> bool:
        return self.expert or self.policy.path == EXPERT

    @property
    def baseline(self) -> str | None:
        """``random`` or ``zero`` when a baseline acts instead of a checkpoint, else None."""
        return None if self.use_expert or self.policy.path not in BASELINES else self.policy.path

    @property
    def uses_checkpoint(self) -> bool:
        return not self.use_expert and self.baseline is None

    def step_limit(self) -> int | None:
        """The per-episode step limit: the flag, else :data:`EVAL_STEP_LIMITS`, else None (the env's own)."""
        if self.max_episode_steps is not None:
            return self.max_episode_steps
        return EVAL_STEP_LIMITS.get(self.env, EVAL_STEP_LIMITS.get(self.env.split("/")[0]))


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


def run_episode(
    env: SimEnv, agent: Agent, seed: int, video_path: Path | None = None, progress: bool = False
) -> EpisodeResult:
    """Reset ``env`` with ``seed`` and let ``agent`` act until success, failure or ``max_episode_steps``.

    With ``video_path``, every observation (all cameras side by side) is encoded into that mp4 at the env's fps.
    With ``progress``, a transient bar shows the env steps taken, the step rate (steps/s) and the elapsed time.
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
    bar = tqdm(
        total=env.spec.max_episode_steps, desc=f"  seed {seed}", unit="step", leave=False, disable=not progress
    )
    success, done, steps = False, False, 0
    try:
        while not done:
            if encoder is not None:
                encoder.add(_frame_image(obs, env.spec))
            obs, step_success, done = env.step(agent.act(obs))
            success = success or step_success
            steps += 1
            bar.update(1)
        if encoder is not None:
            encoder.add(_frame_image(obs, env.spec))
            encoder.close()
    except BaseException:
        if encoder is not None:
            encoder.abort()
        raise
    finally:
        bar.close()
    return EpisodeResult(
        seed, success, steps, time.perf_counter() - start, str(video_path) if video_path else None
    )


def _image_size(config: SimEvalConfig, checkpoint: Checkpoint | None) -> int:
    """The camera size: the flag, else the recorded size of the checkpoint's dataset of this env, else 224."""
    if config.image_size is not None:
        return config.image_size
    root = _checkpoint_env_dataset(checkpoint, config.env)
    if root is not None:
        from depi.datasets.format.meta import load_meta

        meta = load_meta(root)
        return int(meta.features[meta.camera_keys[0]]["shape"][0])
    return 224


def _checkpoint_env_dataset(checkpoint: Checkpoint | None, env_name: str) -> Path | None:
    """The folder of the checkpoint's training dataset of this env, if it is on this machine."""
    for entry in checkpoint.manifest.get("datasets", []) if checkpoint is not None else []:
        root = Path(entry["root"])
        if root.name == dataset_name(env_name) and root.is_dir():
            return root
    return None


def _recorded_setting(config: SimEvalConfig, checkpoint: Checkpoint | None, name: str, unknown: bool) -> bool:
    """The flag ``name`` if given, else how the checkpoint's dataset of this env was generated (a setting its
    sidecar lacks was off), else ``unknown`` (no checkpoint, or its dataset is not on this machine)."""
    flag = getattr(config, name)
    if flag is not None:
        return flag
    root = _checkpoint_env_dataset(checkpoint, config.env)
    found = read_generation(root) if root is not None else None
    return bool(found.settings.get(name, False)) if found is not None else unknown


def _env_repo_id(checkpoint: Checkpoint, env_name: str) -> str:
    """The repo_id the checkpoint's mixture gave this env's dataset (so role mappings apply), else a default."""
    for entry in checkpoint.manifest.get("datasets", []):
        if Path(entry["root"]).name == dataset_name(env_name):
            return str(entry["repo_id"])
    return f"depi_sim/{dataset_name(env_name)}"


def make_agent(config: SimEvalConfig, env: SimEnv, checkpoint: Checkpoint | None) -> Agent:
    """The expert, a baseline, or a :class:`ChunkAgent` bound to the env's layout.

    Raises:
        ValueError: the env's embodiment is unknown to the checkpoint, or a random baseline on unbounded actions.
    """
    spec = env.spec
    if config.baseline is not None:
        return RandomAgent(spec) if config.baseline == RANDOM else ZeroAgent(spec)
    if checkpoint is None:
        return ExpertAgent(env)
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


def _latency_ms(agent: Agent) -> dict[str, float] | None:
    """p50 / p99 / mean chunk-inference time (ms) of a checkpoint agent, the first (warm-up) call excluded."""
    seconds = getattr(agent, "inference_seconds", None)
    if not seconds:
        return None
    timed = np.asarray(seconds[1:] if len(seconds) > 1 else seconds) * 1e3
    return {
        "p50": float(np.percentile(timed, 50)),
        "p99": float(np.percentile(timed, 99)),
        "mean": float(timed.mean()),
        "warmup": float(seconds[0] * 1e3),
        "calls": len(seconds),
    }


def _episode_line(k: int, total: int, result: EpisodeResult, successes: int) -> str:
    outcome = "success" if result.success else "failure"
    rate = result.steps / result.seconds if result.seconds > 0 else float("inf")
    return (
        f"episode {k + 1}/{total} (seed {result.seed}): {outcome} after {result.steps} steps, "
        f"{result.seconds:.1f} s ({rate:.1f} steps/s); {successes}/{k + 1} so far"
    )


def run_sim_eval(config: SimEvalConfig) -> dict:
    """Run ``config.episodes`` episodes, write results.json and the videos, return the results dict.

    Prints one line per finished episode (outcome, steps, seconds, steps/s) under the episode bar.

    Returns:
        ``{"env", "policy", "episodes": [EpisodeResult as dict], "success_rate", "ci95": [low, high],
        "inference_ms": {"p50", "p99", "mean", "warmup", "calls"} | None, ...}``.

    Raises:
        ValueError: the env's embodiment has no norm stats in the checkpoint, or bad flags.
        FileNotFoundError: the checkpoint is incomplete.
        ModuleNotFoundError: the simulator package is missing.
    """
    checkpoint = (
        load_checkpoint(config.policy.path, config.policy.device, config.policy.dtype)
        if config.uses_checkpoint
        else None
    )
    output_dir = Path(config.output_dir or f"outputs/eval/sim/{dataset_name(config.env)}")
    env_config = SimEnvConfig(config.env, image_size=_image_size(config, checkpoint),
                              max_episode_steps=config.step_limit(),
                              privileged_state=_recorded_setting(config, checkpoint, "privileged_state", False),
                              goal_marker=_recorded_setting(config, checkpoint, "goal_marker", True))  # fmt: skip
    role = "policy" if checkpoint is not None else (config.baseline or EXPERT)
    results: list[EpisodeResult] = []
    with make_env(env_config) as env:
        agent = make_agent(config, env, checkpoint)
        bar = tqdm(range(config.episodes), desc=f"{config.env} [{role}]", unit="episode")
        for k in bar:
            seed = config.seed + k
            video = output_dir / "videos" / f"episode_{seed}.mp4" if k < config.num_videos else None
            if video is not None:
                video.parent.mkdir(parents=True, exist_ok=True)
            results.append(run_episode(env, agent, seed, video, progress=config.progress))
            successes = sum(r.success for r in results)
            bar.set_postfix(success=f"{successes}/{len(results)}")
            bar.write(_episode_line(k, config.episodes, results[-1], successes))
        spec = env.spec
    successes = sum(r.success for r in results)
    low, high = wilson_interval(successes, len(results))
    summary = {
        "env": config.env,
        "task": spec.task,
        "policy": agent.name,
        "role": role,
        "checkpoint": None if checkpoint is None else str(checkpoint.path),
        "env_fps": spec.fps,
        "control_fps": None if checkpoint is None else checkpoint.control_fps,
        "n_action_steps": getattr(agent, "n_action_steps", None),
        "image_size": spec.image_size,
        "privileged_state": env_config.privileged_state,
        "goal_marker": env_config.goal_marker,
        "max_episode_steps": spec.max_episode_steps,
        "seed": config.seed,
        "num_episodes": len(results),
        "successes": successes,
        "success_rate": successes / len(results),
        "ci95": [low, high],
        "mean_steps": float(np.mean([r.steps for r in results])),
        "seconds": float(sum(r.seconds for r in results)),
        "inference_ms": _latency_ms(agent),
        "episodes": [asdict(r) for r in results],
    }
    write_json(output_dir / RESULTS_FILE, summary)
    return summary


def comparison_configs(config: SimEvalConfig) -> list[SimEvalConfig]:
    """``config`` then one config per ``--compare`` row: same env, seeds, step limit and image size."""
    base = Path(config.output_dir or f"outputs/eval/sim/{dataset_name(config.env)}")
    extra = [
        replace(config, policy=replace(config.policy, path=name), expert=False, compare=[], num_videos=0,
                output_dir=str(base / name), image_size=config.image_size or 64)  # no camera is looked at
        for name in config.compare
    ]  # fmt: skip
    return [replace(config, compare=[]), *extra]


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
