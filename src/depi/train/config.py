"""Typed configuration of a training run, parsed by draccus.

Every field is a CLI flag (``--batch_size=32``, ``--optim.peak_lr=3e-4``, ``--policy.type=pi05``) and can be
set from a YAML preset with ``--config_path=pi05_lora`` (a name from ``depi/train/presets/``) or
``--config_path=path/to/file.yaml``; flags given on the command line override the preset, as in LeRobot's
``lerobot-train``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import draccus

from depi.datasets.mixture.config import DatasetConfig
from depi.policies.pi0.config import PI0Config
from depi.policies.registry import PolicyConfig, config_class
from depi.train.run_layout import TRAIN_CONFIG_FILE, latest_checkpoint

logger = logging.getLogger(__name__)

PRESETS_DIR = Path(__file__).parent / "presets"
DEFAULT_OUTPUT_ROOT = Path("outputs/train")
DEFAULT_PRESET = "demo"
"""What ``depi-train`` with no arguments trains: the tiny policy on the bundled demo mixture, on the CPU."""


@dataclass
class TransformSpec:
    """Settings of the transform pipeline built for the policy (saved with each checkpoint).

    Attributes:
        tokenizer_path: Local PaliGemma SentencePiece ``.model`` file.
        norm_mode: ``quantile`` ((x - q01) / (q99 - q01) * 2 - 1) or ``zscore`` ((x - mean) / std);
            ``None`` takes openpi's default for the policy type (pi0: zscore, pi0.5: quantile).
        clip_quantiles: Clip quantile-normalized values to [-1, 1].
        delta_action_mask: Per action dim, True where the action is learned relative to the current state
            (openpi's ``DeltaActions``: every chunk step minus the state; grippers stay absolute, False). The
            ``actions`` norm stats are then computed on those deltas. ``None``: actions as recorded (right for
            datasets whose actions are already deltas, such as Bridge's end-effector deltas).
    """

    tokenizer_path: str | None = None
    norm_mode: str | None = None
    clip_quantiles: bool = False
    delta_action_mask: list[bool] | None = None

    def __post_init__(self) -> None:
        if self.norm_mode not in (None, "quantile", "zscore"):
            raise ValueError(f"--transforms.norm_mode must be 'quantile' or 'zscore', found {self.norm_mode!r}.")


@dataclass
class OptimConfig:
    """AdamW with linear warmup then cosine decay (openpi's ``CosineDecaySchedule``), gradient clipping and EMA.

    Attributes:
        peak_lr: Learning rate reached at the end of warmup.
        decay_lr: Learning rate at ``decay_steps`` and after.
        warmup_steps: Optimizer steps of linear warmup from ``peak_lr / (warmup_steps + 1)``.
        decay_steps: Optimizer step at which the cosine reaches ``decay_lr``.
        weight_decay: AdamW decoupled weight decay.
        betas: AdamW (beta1, beta2).
        eps: AdamW epsilon.
        grad_clip_norm: Max global L2 norm of the gradients; ``0`` disables clipping.
        ema_decay: Exponential moving average of the trainable weights; ``None`` disables EMA.
    """

    peak_lr: float = 2.5e-5
    decay_lr: float = 2.5e-6
    warmup_steps: int = 1_000
    decay_steps: int = 30_000
    weight_decay: float = 1e-10
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    grad_clip_norm: float = 1.0
    ema_decay: float | None = None

    def __post_init__(self) -> None:
        if self.warmup_steps < 0 or self.decay_steps < 1:
            raise ValueError(
                f"--optim.warmup_steps must be >= 0 and --optim.decay_steps >= 1, "
                f"found {self.warmup_steps} and {self.decay_steps}."
            )
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise ValueError(f"--optim.ema_decay must be in (0, 1), found {self.ema_decay}.")


@dataclass
class WandbConfig:
    """Optional Weights & Biases logging (off by default; ``wandb`` is imported only when enabled)."""

    enable: bool = False
    project: str = "depi"
    entity: str | None = None
    mode: str = "online"


@dataclass
class TrainConfig:
    """One training run.

    Attributes:
        policy: Policy config from the policy registry (``--policy.type=pi0|pi05``, any field overridable,
            e.g. ``--policy.action_horizon=16``). ``--policy.path=CKPT`` (handled by :func:`parse_args`) loads
            the config and weights of a pretrained checkpoint.
        pretrained_path: Folder of the pretrained policy to fine-tune from (set by ``--policy.path``).
        dataset: Mixture selection (``--dataset.*``, :class:`depi.datasets.mixture.config.DatasetConfig`).
        transforms: Transform pipeline settings.
        num_datasets: Shorthand for ``--dataset.num_datasets``: the first N ids of the curated list.
        compile: Compile the training forward pass with ``torch.compile`` (inductor).
        find_unused_parameters: DDP's search for parameters without gradient (slower; only for policies
            whose trainable parameters are not all used in every step).
        batch_size: Samples per process per micro-batch; the global batch is
            ``batch_size * num_processes * gradient_accumulation_steps``.
        steps: Optimizer steps to train for.
        gradient_accumulation_steps: Micro-batches per optimizer step.
        num_workers: DataLoader worker processes per rank.
        seed: Seed of the sampler, model init and the flow-matching noise.
        save_freq: Save a checkpoint every N optimizer steps (and at the last step).
        keep_last: Number of most recent checkpoints to keep.
        keep_period: Also keep every checkpoint whose step is a multiple of this (``None``: none).
        log_freq: Log metrics every N optimizer steps.
        per_dataset_loss_freq: Log the mean loss per dataset every N optimizer steps (``0`` disables).
        mixed_precision: ``no``, ``bf16`` or ``auto`` (bf16 on a GPU, fp32 on the CPU).
        deterministic: Use deterministic torch kernels (bitwise-reproducible resume on the CPU).
        job_name: Suffix of the run folder.
        output_dir: Run folder; default ``outputs/train/<YYYY-MM-DD_HH-MM-SS>_<job_name>``.
        resume: Continue the run in ``output_dir`` from its latest complete checkpoint.
        demo_data: Generate the bundled demo mixture into ``dataset.root`` on first use (and a demo tokenizer
            when ``transforms.tokenizer_path`` is unset); see :mod:`depi.train.demo`.
        demo_envs: With ``demo_data``, the sim envs to generate (e.g. ``'[metaworld/reach-v3]'``); None: the
            demo mixture's five (``depi.sim.generate.DEMO_MIXTURE``).
        demo_episodes: With ``demo_data``, successful episodes per env; None: each env's count in the mixture.
        demo_image_size: With ``demo_data``, the side of the rendered camera images in pixels.
        demo_privileged_state: With ``demo_data``, record ``observation.state`` with the simulator's object and
            goal poses appended (``depi-gen-demos --privileged_state``; docs/simulation.md).
        wandb: Weights & Biases settings.
    """

    policy: PolicyConfig = field(default_factory=PI0Config)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    transforms: TransformSpec = field(default_factory=TransformSpec)
    optim: OptimConfig = field(default_factory=OptimConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)
    pretrained_path: str | None = None
    num_datasets: int | None = None
    compile: bool = False
    find_unused_parameters: bool = False
    batch_size: int = 32
    steps: int = 30_000
    gradient_accumulation_steps: int = 1
    num_workers: int = 4
    seed: int = 42
    save_freq: int = 1_000
    keep_last: int = 2
    keep_period: int | None = 5_000
    log_freq: int = 10
    per_dataset_loss_freq: int = 100
    mixed_precision: str = "auto"
    deterministic: bool = False
    job_name: str = "depi"
    output_dir: str | None = None
    resume: bool = False
    demo_data: bool = False
    demo_envs: list[str] | None = None
    demo_episodes: int | None = None
    demo_image_size: int = 224
    demo_privileged_state: bool = False

    def __post_init__(self) -> None:
        for name in ("batch_size", "steps", "gradient_accumulation_steps", "save_freq", "log_freq", "keep_last"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be >= 1, found {getattr(self, name)}.")
        if self.num_workers < 0:
            raise ValueError(f"--num_workers must be >= 0, found {self.num_workers}.")
        if self.num_datasets is not None:
            if self.num_datasets < 1:
                raise ValueError(f"--num_datasets must be >= 1, found {self.num_datasets}.")
            self.dataset.num_datasets = self.num_datasets
        # The chunk the mixture cuts is the chunk the policy predicts: the policy's action_horizon rules.
        self.dataset.action_horizon = self.policy.action_horizon
        if str(self.mixed_precision).lower() == "false":  # YAML reads a bare ``no`` as False
            self.mixed_precision = "no"
        if self.mixed_precision not in ("no", "bf16", "auto"):
            raise ValueError(f"--mixed_precision must be 'no', 'bf16' or 'auto', found {self.mixed_precision!r}.")
        if self.resume and self.output_dir is None:
            raise ValueError("--resume=true needs --output_dir=<run folder> naming the run to continue.")

    def run_dir(self, now: dt.datetime | None = None) -> Path:
        """The run folder: ``output_dir``, else ``outputs/train/<YYYY-MM-DD_HH-MM-SS>_<job_name>``."""
        if self.output_dir is not None:
            return Path(self.output_dir)
        stamp = (now or dt.datetime.now()).strftime("%Y-%m-%d_%H-%M-%S")
        return DEFAULT_OUTPUT_ROOT / f"{stamp}_{self.job_name}"


def resolve_preset_arg(argv: list[str]) -> list[str]:
    """Turn ``--config_path=<preset name>`` into the path of the packaged preset YAML.

    A value that is an existing file, or ends in ``.yaml``/``.yml``, is left as given.

    Raises:
        FileNotFoundError: The name is neither a file nor a packaged preset; lists the presets.
    """
    resolved = []
    for arg in argv:
        if arg.startswith("--config_path="):
            value = arg.split("=", 1)[1]
            if not Path(value).is_file() and not value.endswith((".yaml", ".yml")):
                preset = PRESETS_DIR / f"{value}.yaml"
                if not preset.is_file():
                    names = sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))
                    raise FileNotFoundError(
                        f"--config_path={value}: no such file and no preset {preset}. Presets: {names}."
                    )
                arg = f"--config_path={preset}"
        resolved.append(arg)
    return resolved


DATASET_SELECTION_FLAGS = ("dataset.root", "dataset.repo_id", "dataset.repo_ids", "dataset.num_datasets",
                           "dataset.curated_list", "num_datasets")  # fmt: skip
"""Flags that choose the datasets: any of them turns the default preset off (the plain config's defaults)."""


def _uses_default_preset(argv: list[str]) -> bool:
    if any(a.startswith("--config_path=") for a in argv):
        return False
    if (_flag_value(argv, "resume") or "").lower() in ("true", "1", "yes"):
        return False
    return not any(_flag_value(argv, flag) is not None for flag in DATASET_SELECTION_FLAGS)


def _flag_value(argv: list[str], flag: str) -> str | None:
    values = [arg.split("=", 1)[1] for arg in argv if arg.startswith(f"--{flag}=")]
    return values[-1] if values else None


def load_policy_config(path: str | Path, overrides: list[str]) -> PolicyConfig:
    """The policy config saved in ``<path>/config.json``, with ``--policy.*`` overrides applied on top.

    ``overrides`` are flags without the ``policy.`` prefix (``["--action_horizon=16"]``).

    Raises:
        FileNotFoundError: ``<path>/config.json`` does not exist.
        KeyError: its ``type`` is not a registered policy type.
    """
    config_file = Path(path) / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(
            f"--policy.path={path}: no {config_file}. Point it to a folder written by the policy's "
            "save_pretrained (model.safetensors + config.json), e.g. <run>/checkpoints/<step>/model."
        )
    saved = json.loads(config_file.read_text())
    cls = config_class(str(saved.pop("type", None)))
    with tempfile.TemporaryDirectory() as tmp:
        fields_file = Path(tmp) / "policy.json"
        fields_file.write_text(json.dumps(saved))
        return draccus.parse(cls, config_path=fields_file, args=overrides)


def parse_args(argv: list[str]) -> TrainConfig:
    """Parse the command line into a :class:`TrainConfig`.

    Without ``--config_path``, ``--resume=true`` or a dataset selection (:data:`DATASET_SELECTION_FLAGS`), the
    flags apply on top of the embedded default, the :data:`DEFAULT_PRESET` preset (so ``depi-train --steps=50``
    is a shorter demo run). Beyond draccus' flags:
    ``--config_path=<preset name>`` names a packaged preset; ``--policy.path=DIR``
    loads the policy config of a pretrained checkpoint (other ``--policy.*`` flags override it, LeRobot's
    convention); ``--resume=true --output_dir=RUN`` reloads the run's saved config from its latest complete
    checkpoint, flags given now overriding it (e.g. a larger ``--steps``).

    Raises:
        FileNotFoundError: A preset, checkpoint or policy config named on the command line does not exist.
    """
    argv = list(argv)
    if _uses_default_preset(argv):
        argv.insert(0, f"--config_path={DEFAULT_PRESET}")
    argv = resolve_preset_arg(argv)
    checkpoint = None
    if (_flag_value(argv, "resume") or "").lower() in ("true", "1", "yes"):
        run_dir = _flag_value(argv, "output_dir")
        checkpoint = latest_checkpoint(Path(run_dir)) if run_dir else None
        if checkpoint is None:
            raise FileNotFoundError(
                f"--resume=true: no complete checkpoint under {run_dir}/checkpoints; pass --output_dir=<run "
                "folder> of a run that saved at least one checkpoint (or drop --resume to start a new run)."
            )
        argv = [a for a in argv if not a.startswith("--config_path=")]
        argv.append(f"--config_path={checkpoint / TRAIN_CONFIG_FILE}")
    policy_path = _flag_value(argv, "policy.path")
    if policy_path is None:
        cfg = draccus.parse(TrainConfig, args=argv)
    else:
        policy_args = [a for a in argv if a.startswith("--policy.") and not a.startswith("--policy.path=")]
        cfg = draccus.parse(TrainConfig, args=[a for a in argv if not a.startswith("--policy.")])
        cfg.policy = load_policy_config(policy_path, [a.replace("--policy.", "--", 1) for a in policy_args])
        cfg.pretrained_path = policy_path
        cfg.__post_init__()  # re-derive the fields that follow the policy (the mixture's action_horizon)
    if checkpoint is not None and _flag_value(argv, "transforms.tokenizer_path") is None:
        cfg = _tokenizer_from_checkpoint(cfg, checkpoint)
    return cfg


def _tokenizer_from_checkpoint(cfg: TrainConfig, checkpoint: Path) -> TrainConfig:
    """A resumed run whose saved ``transforms.tokenizer_path`` is gone (the run folder moved to another machine)
    uses the copy the checkpoint holds (``<checkpoint>/tokenizer/<name>``); otherwise ``cfg`` is unchanged."""
    saved = cfg.transforms.tokenizer_path
    if not saved or Path(saved).is_file():
        return cfg
    copy = checkpoint / "tokenizer" / Path(saved).name
    if not copy.is_file():
        return cfg
    logger.warning("Tokenizer %s not found; resuming with the checkpoint's copy %s.", saved, copy)
    return dataclasses.replace(cfg, transforms=dataclasses.replace(cfg.transforms, tokenizer_path=str(copy)))
