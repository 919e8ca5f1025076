"""Training metrics: JSONL log, loss/lr plot, per-dataset loss, MFU, optional Weights & Biases."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

METRICS_FILE = "metrics.jsonl"
PLOT_FILE = "loss_lr.png"

# Dense bf16 tensor-core peak, FLOP/s, from the vendors' datasheets (SXM parts).
_PEAK_BF16_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 125e12}


class MetricsLogger:
    """Appends one JSON object per logged step to ``<run_dir>/metrics.jsonl`` and plots loss and lr.

    On resume, lines of steps after the resumed step (logged by the interrupted run after its last
    checkpoint) are dropped so the file reads as one uninterrupted run.
    """

    def __init__(self, run_dir: Path, *, resume_step: int | None = None, wandb_run: Any = None) -> None:
        self.path = Path(run_dir) / METRICS_FILE
        self.plot_path = Path(run_dir) / PLOT_FILE
        self.wandb_run = wandb_run
        if resume_step is not None and self.path.is_file():
            kept = [line for line in self.path.read_text().splitlines() if json.loads(line)["step"] <= resume_step]
            self.path.write_text("".join(line + "\n" for line in kept))

    def log(self, step: int, values: Mapping[str, float]) -> None:
        """Record ``values`` at optimizer step ``step``."""
        record = {"step": step, **{k: float(v) for k, v in values.items()}}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.wandb_run is not None:
            self.wandb_run.log(dict(values), step=step)

    def records(self) -> list[dict[str, float]]:
        """All records logged so far, in order."""
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines()]

    def plot(self, title: str | None = None) -> Path:
        """Write ``loss_lr.png``: the raw training loss (faint) under its exponential moving average
        (:func:`ema_smooth`), log scale with readable ticks, and the learning rate, against the optimizer step.

        Args:
            title: the figure's title; None: the run folder's name.
        """
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import LogLocator, ScalarFormatter

        records = [r for r in self.records() if "loss" in r]
        steps = [r["step"] for r in records]
        losses = [r["loss"] for r in records]
        fig, (ax_loss, ax_lr) = plt.subplots(2, 1, figsize=(8, 6), sharex=True, height_ratios=[3, 1])
        ax_loss.plot(steps, losses, color="tab:blue", alpha=0.25, lw=0.8, label="loss")
        ax_loss.plot(steps, ema_smooth(losses), color="tab:blue", lw=1.8, label="smoothed (EMA)")
        ax_loss.set_yscale("log")
        ax_loss.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        formatter = ScalarFormatter()
        formatter.set_scientific(False)
        ax_loss.yaxis.set_major_formatter(formatter)
        ax_loss.yaxis.set_minor_formatter(plt.NullFormatter())
        ax_loss.grid(True, which="major", alpha=0.3)
        ax_loss.set_ylabel("flow-matching loss")
        ax_loss.legend(loc="upper right")
        ax_loss.set_title(title or self.path.parent.name)
        ax_lr.plot(steps, [r["lr"] for r in records])
        ax_lr.set_ylabel("learning rate")
        ax_lr.set_xlabel("optimizer step")
        fig.tight_layout()
        fig.savefig(self.plot_path, dpi=100)
        plt.close(fig)
        return self.plot_path


def ema_smooth(values: Sequence[float], span: int | None = None) -> list[float]:
    """Bias-corrected exponential moving average (as TensorBoard's smoothing): ``m_t = a m_{t-1} + (1 - a) x_t``,
    reported as ``m_t / (1 - a^t)``, with ``a = 1 - 2 / (span + 1)``; ``span`` defaults to a tenth of the curve
    (at least 1)."""
    if not values:
        return []
    span = span or max(1, len(values) // 10)
    alpha = 1.0 - 2.0 / (span + 1)
    smoothed, m = [], 0.0
    for t, x in enumerate(values, start=1):
        m = alpha * m + (1 - alpha) * x
        smoothed.append(m / (1 - alpha**t) if alpha > 0 else x)
    return smoothed


class PerDatasetLoss:
    """Running sum and count of per-sample losses by dataset index, between two reports."""

    def __init__(self, dataset_names: Sequence[str]) -> None:
        self.names = list(dataset_names)
        self.sums = torch.zeros(len(self.names), dtype=torch.float64)
        self.counts = torch.zeros(len(self.names), dtype=torch.float64)

    def add(self, dataset_index: torch.Tensor, per_sample_loss: torch.Tensor) -> None:
        """Accumulate losses (B,) of samples from datasets ``dataset_index`` (B,) int64."""
        index = dataset_index.detach().long().cpu()
        self.sums.index_add_(0, index, per_sample_loss.detach().double().cpu())
        self.counts.index_add_(0, index, torch.ones_like(index, dtype=torch.float64))

    def report(self, reduce: Callable[[torch.Tensor], torch.Tensor] = lambda t: t) -> dict[str, float]:
        """``{"loss/<dataset name>": mean loss}`` for the datasets seen since the last report; resets.

        ``reduce`` sums a tensor over processes (e.g. ``accelerator.reduce(t, "sum")``); every rank calls it.
        """
        sums, counts = reduce(self.sums), reduce(self.counts)
        seen = counts > 0
        means = sums[seen] / counts[seen]
        names = [name for name, s in zip(self.names, seen.tolist()) if s]
        self.sums.zero_()
        self.counts.zero_()
        return {f"loss/{name}": float(m) for name, m in zip(names, means.tolist())}


def peak_flops(device: torch.device) -> float | None:
    """Peak dense bf16 FLOP/s of a known GPU model, else ``None`` (CPU, unknown GPU)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((flops for model, flops in _PEAK_BF16_FLOPS.items() if model in name), None)


def mfu(flops_per_sample: float, samples_per_s: float, num_processes: int, peak: float) -> float:
    """Model FLOPs utilisation: achieved training FLOP/s over the peak of all processes' GPUs (PaLM, app. B).

    ``flops_per_sample`` counts forward + backward FLOPs of one sample; ``samples_per_s`` is the global rate.
    """
    return flops_per_sample * samples_per_s / (peak * num_processes)
