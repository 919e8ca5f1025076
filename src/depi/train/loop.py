"""The training loop, read top to bottom: setup -> train -> save_checkpoint -> cleanup.

Runs as one process or under ``accelerate launch`` / ``torchrun``: DDP, one or many nodes; FSDP2 with
``accelerate launch --config_file configs/accelerate/fsdp.yaml`` (:mod:`depi.train.fsdp`, on GPUs and on the
CPU over gloo). Checkpoints hold full tensors whatever the launch, so a run resumes with or without FSDP. The
policy and the data come in through narrow protocols (:class:`TrainablePolicy`,
:class:`depi.train.data.TrainData`); bookkeeping lives in ``optim``, ``checkpoint``, ``fsdp`` and ``metrics``.

Notation: B = ``batch_size`` (per process, per micro-batch), G = ``gradient_accumulation_steps``, W = number
of processes; one optimizer step consumes a global batch of B * G * W samples.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from accelerate import Accelerator
from accelerate.utils import (
    DistributedDataParallelKwargs,
    GradientAccumulationPlugin,
    TorchDynamoPlugin,
    broadcast_object_list,
    send_to_device,
    set_seed,
)
from torch import nn
from tqdm.auto import tqdm

from depi.constants import DATASET_INDEX
from depi.threads import configure_threads
from depi.train import checkpoint as ckpt
from depi.train.config import TrainConfig
from depi.train.data import TrainData, build_dataloader
from depi.train.fsdp import fsdp_settings_from_launch, shard_model
from depi.train.metrics import MetricsLogger, PerDatasetLoss, mfu, peak_flops
from depi.train.optim import EMA, build_optimizer, build_scheduler, clip_grad_norm
from depi.train.summary import format_summary

logger = logging.getLogger(__name__)

PER_SAMPLE_LOSS = "per_sample_loss"
"""Key of the (B,) per-sample losses in the metrics dict of ``compute_loss``, used for per-dataset loss."""


@runtime_checkable
class TrainablePolicy(Protocol):
    """What the loop needs from a policy (``depi.policies.pi0.PI0Policy`` is one); it is an ``nn.Module``.

    ``compute_loss(batch)`` takes a collated canonical batch (see ARCHITECTURE.md) and returns the scalar
    flow-matching loss and a dict of metrics, optionally holding ``per_sample_loss`` (B,). A policy may also
    provide ``flops_per_sample() -> float`` (training FLOPs of one sample) for the MFU metric. Under FSDP,
    ``save_pretrained`` must also take ``state_dict=`` (the gathered full tensors, keyed as its ``state_dict()``).
    """

    def compute_loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]: ...

    def save_pretrained(self, directory: str | Path) -> None: ...


class _LossModule(nn.Module):
    """Routes ``forward`` to ``policy.compute_loss`` so DDP's gradient hooks, FSDP's root unit and autocast see
    the call."""

    def __init__(self, policy: nn.Module) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.policy.compute_loss(batch)


@dataclass
class TrainResult:
    """Where a finished run left its outputs.

    Attributes:
        run_dir: The run folder.
        checkpoint: The last checkpoint folder (its ``model/`` is what evaluation loads).
        plot: The loss/lr plot (PNG).
        step: Optimizer steps done.
        losses: Mean training loss of each optimizer step run by this call (all ranks averaged at log steps).
    """

    run_dir: Path
    checkpoint: Path
    plot: Path | None
    step: int
    losses: list[float]


def make_accelerator(cfg: TrainConfig, fsdp: bool = False) -> Accelerator:
    """The Accelerator of a run: DDP without unused-parameter search, bf16 autocast on GPU under ``auto``.

    On a host without GPU, several processes (``torchrun --nproc_per_node N`` or ``accelerate launch --multi_gpu
    --num_processes N``) train with DDP over gloo. With ``fsdp`` the loop shards the model itself
    (:func:`depi.train.fsdp.shard_model`) and uses the Accelerator for processes, autocast, accumulation and
    clipping; gradients are then reduce-scattered after every micro-batch (``sync_each_batch``): each rank keeps
    only its gradient shard between micro-batches instead of the full unsharded gradients. (Skipping that sync
    also fails in torch 2.13 when a unit's forward did not run, e.g. pi0's unused last-layer projections, under a
    bf16 ``MixedPrecisionPolicy``: ``FSDPParam`` has no ``_unsharded_param``.)
    """
    precision = cfg.mixed_precision
    if precision == "auto":
        precision = "bf16" if torch.cuda.is_available() else "no"
    return Accelerator(
        cpu=not torch.cuda.is_available(),  # lets torchrun / accelerate launch run DDP over gloo on CPU hosts
        mixed_precision=precision,
        gradient_accumulation_plugin=GradientAccumulationPlugin(
            num_steps=cfg.gradient_accumulation_steps, sync_each_batch=fsdp
        ),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=cfg.find_unused_parameters)],
        dynamo_plugin=TorchDynamoPlugin(backend="inductor") if cfg.compile else None,
    )


@dataclass
class _Run:
    """Everything the step loop touches, built by the named setup steps of :func:`train`."""

    cfg: TrainConfig
    accelerator: Accelerator
    run_dir: Path
    resume_from: Path | None
    policy: nn.Module
    data: TrainData
    model: nn.Module
    optimizer: torch.optim.Optimizer
    step_optimizer: Any  # the accelerate-prepared optimizer (the plain one under FSDP)
    scheduler: Any
    ema: EMA | None
    start_step: int = 0
    metrics_log: MetricsLogger | None = None
    wandb_run: Any = None
    consumed: int = 0  # samples this rank trained on since this call started (for the sampler state)
    losses: list[float] = field(default_factory=list)


def train(cfg: TrainConfig, *, policy: nn.Module | None = None, data: TrainData | None = None) -> TrainResult:
    """Train ``policy`` on ``data`` as ``cfg`` says; build them from ``cfg`` when not given.

    Returns the run's :class:`TrainResult`.

    Raises:
        FileNotFoundError: ``cfg.resume`` is set and the run folder has no complete checkpoint.
        FileExistsError: ``cfg.resume`` is not set and the run folder already holds checkpoints.
        ValueError: an unsupported FSDP launch config, or a resumed run holding out other episodes than its
            checkpoint (:func:`depi.train.checkpoint.check_resumed_manifest`).
        TypeError: ``policy`` lacks ``compute_loss``/``save_pretrained`` or ``data`` lacks a TrainData field.
    """
    # ---------------------------------------------------------------- setup
    configure_threads(cfg.num_workers)  # depi.threads: OMP_NUM_THREADS, else the free CPUs
    fsdp = fsdp_settings_from_launch()  # None unless launched with an FSDP accelerate config
    accelerator = make_accelerator(cfg, fsdp=fsdp is not None)
    if fsdp is not None and not torch.distributed.is_initialized():
        logger.info("FSDP config but no process group (not started by accelerate launch / torchrun): unsharded.")
        fsdp = None
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
    run_dir, resume_from = _run_folder(cfg, accelerator)
    set_seed(cfg.seed)  # identical initial weights on every rank
    policy, data = _policy_and_data(cfg, policy, data, run_dir, accelerator)
    if resume_from is not None:
        ckpt.check_resumed_manifest(resume_from, data.manifest)
        ckpt.load_weights(resume_from, policy)  # full weights, before sharding
    run = _build_run(cfg, accelerator, fsdp, run_dir, resume_from, policy, data)
    loader = build_dataloader(
        data, batch_size=cfg.batch_size, num_workers=cfg.num_workers, seed=cfg.seed, rank=accelerator.process_index
    )
    if accelerator.is_main_process:
        run.wandb_run = _start_wandb(cfg, run_dir) if cfg.wandb.enable else None
        # From the resumed step on (0 for a new run, whose folder may hold the log of a run killed before its
        # first checkpoint), the log is rewritten.
        run.metrics_log = MetricsLogger(run_dir, resume_step=run.start_step, wandb_run=run.wandb_run)
    per_dataset = PerDatasetLoss(data.dataset_names)

    # ---------------------------------------------------------------- train
    batches = iter(loader)
    last_checkpoint = resume_from
    progress = tqdm(total=cfg.steps, initial=run.start_step, disable=not accelerator.is_local_main_process,
                    desc="train")  # fmt: skip
    run.model.train()
    for step in range(run.start_step + 1, cfg.steps + 1):  # ``step`` = optimizer steps done after this iteration
        step_start = time.perf_counter()
        window_loss, grad_norm, data_wait = _optimizer_step(run, batches, per_dataset, first=step == run.start_step + 1)
        lr = run.optimizer.param_groups[0]["lr"]
        run.scheduler.step()  # once per optimizer step, never per micro-batch
        if run.ema is not None:
            run.ema.update(policy)
        run.consumed += cfg.batch_size * cfg.gradient_accumulation_steps
        step_time = time.perf_counter() - step_start
        values: dict[str, float] = {}
        if step % cfg.log_freq == 0 or step == cfg.steps:
            values = _step_metrics(run, window_loss, lr, grad_norm, step_time, data_wait)
            progress.set_postfix(loss=f"{values['loss']:.4f}", lr=f"{lr:.2e}", step_s=f"{step_time:.2f}",
                                 wait_s=f"{data_wait:.2f}")  # fmt: skip
        if cfg.per_dataset_loss_freq and step % cfg.per_dataset_loss_freq == 0:
            values.update(per_dataset.report(lambda t: accelerator.reduce(t.to(accelerator.device), "sum").cpu()))
        if values and run.metrics_log is not None:
            run.metrics_log.log(step, values)
        progress.update(1)
        if step % cfg.save_freq == 0 or step == cfg.steps:
            last_checkpoint = _save(run, step)

    # ---------------------------------------------------------------- cleanup
    progress.close()
    plot = None
    if run.metrics_log is not None:
        plot = run.metrics_log.plot()
        policy_class = f"{type(policy).__module__}.{type(policy).__name__}"
        repo_ids = [d.get("repo_id", "") if isinstance(d, dict) else str(d) for d in data.manifest.get("datasets", [])]
        print(format_summary(run_dir, last_checkpoint, plot, cfg.steps, policy_class, cfg.dataset.root, repo_ids))
    if run.wandb_run is not None:
        run.wandb_run.finish()
    accelerator.end_training()
    return TrainResult(run_dir=run_dir, checkpoint=last_checkpoint, plot=plot, step=cfg.steps, losses=run.losses)


def _run_folder(cfg: TrainConfig, accelerator: Accelerator) -> tuple[Path, Path | None]:
    """The run folder (the main process' choice, on every rank) and the checkpoint to resume from."""
    run_dir = Path(broadcast_object_list([str(cfg.run_dir())])[0])
    resume_from = ckpt.latest_checkpoint(run_dir) if cfg.resume else None
    if cfg.resume and resume_from is None:
        raise FileNotFoundError(f"--resume=true but {run_dir / ckpt.CHECKPOINTS_DIR} holds no complete checkpoint.")
    if not cfg.resume and ckpt.latest_checkpoint(run_dir) is not None:
        raise FileExistsError(
            f"{run_dir} already holds checkpoints of a run: pass --resume=true to continue it, or another "
            "--output_dir to start a new one."
        )
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir, resume_from


def _policy_and_data(cfg: TrainConfig, policy: nn.Module | None, data: TrainData | None, run_dir: Path,
                     accelerator: Accelerator) -> tuple[nn.Module, TrainData]:  # fmt: skip
    """The given policy and data, or those ``cfg`` describes, checked against the loop's protocols."""
    if policy is None or data is None:
        from depi.train.factory import build_policy, build_train_data  # the whole data stack: only when needed

        policy = policy if policy is not None else build_policy(cfg)
        data = data if data is not None else build_train_data(cfg, run_dir, accelerator)
    if not isinstance(policy, TrainablePolicy):
        raise TypeError(f"{type(policy).__name__} must provide compute_loss(batch) and save_pretrained(directory).")
    if not isinstance(data, TrainData):
        raise TypeError(f"{type(data).__name__} must provide the TrainData fields (see depi.train.data.TrainData).")
    return policy, data


def _build_run(cfg: TrainConfig, accelerator: Accelerator, fsdp: Any, run_dir: Path, resume_from: Path | None,
               policy: nn.Module, data: TrainData) -> _Run:  # fmt: skip
    """The model (sharded under FSDP), optimizer, scheduler and EMA, restored from ``resume_from`` if given."""
    model: nn.Module = _LossModule(policy)
    if fsdp is not None:  # before the optimizer: the parameters become this rank's DTensor shards
        model = shard_model(model, fsdp, device=accelerator.device, num_processes=accelerator.num_processes,
                            mixed_precision=accelerator.mixed_precision)
    optimizer = build_optimizer(policy, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim)
    ema = EMA(policy, cfg.optim.ema_decay) if cfg.optim.ema_decay is not None else None
    set_seed(cfg.seed, device_specific=True)  # per-rank flow-matching noise and time
    start_step = 0
    if resume_from is not None:
        start_step, sampler_state = ckpt.load_training_state(
            resume_from, accelerator=accelerator, policy=policy, optimizer=optimizer, scheduler=scheduler, ema=ema
        )
        data.sampler.load_state_dict(sampler_state)
    if fsdp is None:
        model, step_optimizer = accelerator.prepare(model, optimizer)
    else:  # accelerate would wrap it in DDP on the CPU: the loop applies autocast (below) and compile itself
        step_optimizer = optimizer
        model = torch.compile(model) if cfg.compile else model
    return _Run(cfg=cfg, accelerator=accelerator, run_dir=run_dir, resume_from=resume_from, policy=policy, data=data,
                model=model, optimizer=optimizer, step_optimizer=step_optimizer, scheduler=scheduler, ema=ema,
                start_step=start_step)  # fmt: skip


def _optimizer_step(run: _Run, batches, per_dataset: PerDatasetLoss, first: bool) -> tuple[torch.Tensor, Any, float]:
    """One optimizer step over G micro-batches; returns the window's mean loss, the gradient norm and the
    seconds spent waiting for data."""
    cfg, accelerator = run.cfg, run.accelerator
    window_loss = torch.zeros((), device=accelerator.device)
    data_wait, grad_norm = 0.0, None
    for _ in range(cfg.gradient_accumulation_steps):
        wait_start = time.perf_counter()
        batch = next(batches)  # blocks while the workers are behind: that is the data-wait time
        data_wait += time.perf_counter() - wait_start
        batch = send_to_device(batch, accelerator.device)
        # Inside accumulate(), DDP skips the gradient all-reduce (no_sync) except on the window's last
        # micro-batch (FSDP reduce-scatters every micro-batch), and accelerator.backward divides the loss by G.
        with accelerator.accumulate(run.model):
            with accelerator.autocast():  # the prepared DDP model autocasts by itself; the FSDP one needs it
                loss, info = run.model(batch)
            accelerator.backward(loss)
            if accelerator.sync_gradients:
                grad_norm = clip_grad_norm(run.model, cfg.optim.grad_clip_norm, accelerator)
                run.step_optimizer.step()
                run.step_optimizer.zero_grad(set_to_none=True)
        window_loss += loss.detach() / cfg.gradient_accumulation_steps
        if PER_SAMPLE_LOSS in info and DATASET_INDEX in batch:
            per_dataset.add(batch[DATASET_INDEX], info[PER_SAMPLE_LOSS])
        elif cfg.per_dataset_loss_freq and first:
            logger.warning(
                "Per-dataset loss is off: %s.compute_loss returns no %r (B,) in its metrics, or the batch has "
                "no %r.", type(run.policy).__name__, PER_SAMPLE_LOSS, DATASET_INDEX,
            )
    if not accelerator.sync_gradients:
        raise RuntimeError("The accumulation window ended without a gradient sync; the optimizer did not step.")
    return window_loss, grad_norm, data_wait


def _step_metrics(run: _Run, window_loss: torch.Tensor, lr: float, grad_norm: Any, step_time: float,
                  data_wait: float) -> dict[str, float]:  # fmt: skip
    """The logged values of a step: loss averaged over ranks, lr, grad norm, timings, throughput and MFU."""
    accelerator = run.accelerator
    global_batch = run.cfg.batch_size * run.cfg.gradient_accumulation_steps * accelerator.num_processes
    mean_loss = accelerator.reduce(window_loss, reduction="mean").item()
    run.losses.append(mean_loss)
    values = {"loss": mean_loss, "lr": lr, "grad_norm": float(grad_norm), "step_time_s": step_time,
              "data_wait_s": data_wait, "samples_per_s": global_batch / step_time}  # fmt: skip
    flops, peak = getattr(run.policy, "flops_per_sample", None), peak_flops(accelerator.device)
    if flops is not None and peak is not None:
        values["mfu"] = mfu(flops(), global_batch / step_time, accelerator.num_processes, peak)
    return values


def _save(run: _Run, step: int) -> Path:
    """Write the checkpoint of ``step`` (every rank takes part: FSDP gathers the shards; the main process writes
    full tensors) and prune old ones; returns its folder."""
    accelerator, data = run.accelerator, run.data
    contents = ckpt.CheckpointContents(
        step=step, config=run.cfg, sampler_state=data.sampler.state_dict(run.consumed), transforms=data.transforms,
        norm_stats=data.norm_stats, manifest=data.manifest,
    )
    checkpoint = ckpt.save_checkpoint(
        run.run_dir, contents, accelerator=accelerator, policy=run.policy, optimizer=run.optimizer,
        scheduler=run.scheduler, ema=run.ema,
    )
    if accelerator.is_main_process:
        ckpt.prune_checkpoints(run.run_dir, run.cfg.keep_last, run.cfg.keep_period)
    accelerator.wait_for_everyone()
    return checkpoint


def _start_wandb(cfg: TrainConfig, run_dir: Path) -> Any:
    import draccus
    import wandb

    return wandb.init(
        project=cfg.wandb.project, entity=cfg.wandb.entity, mode=cfg.wandb.mode, dir=str(run_dir),
        name=run_dir.name, config=draccus.encode(cfg),
    )
