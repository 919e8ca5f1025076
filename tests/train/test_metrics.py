"""Metrics log, per-dataset loss, MFU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from depi.train.metrics import MetricsLogger, PerDatasetLoss, mfu, peak_flops


def test_per_dataset_loss_means_and_reset() -> None:
    tracker = PerDatasetLoss(["a/x", "b/y", "c/z"])
    tracker.add(torch.tensor([0, 2, 0]), torch.tensor([1.0, 4.0, 3.0]))
    tracker.add(torch.tensor([2]), torch.tensor([6.0]))
    assert tracker.report() == {"loss/a/x": 2.0, "loss/c/z": 5.0}
    assert tracker.report() == {}


def test_per_dataset_loss_reduces_over_processes() -> None:
    tracker = PerDatasetLoss(["a", "b"])
    tracker.add(torch.tensor([0]), torch.tensor([1.0]))
    # A second process holding the same sums: the reduction doubles sums and counts, the mean is unchanged.
    assert tracker.report(lambda t: 2 * t) == {"loss/a": 1.0}


def test_resumed_log_drops_steps_after_the_checkpoint(tmp_path: Path) -> None:
    log = MetricsLogger(tmp_path)
    for step in range(1, 6):
        log.log(step, {"loss": 1.0 / step, "lr": 1e-3})
    resumed = MetricsLogger(tmp_path, resume_step=3)
    resumed.log(4, {"loss": 0.3, "lr": 1e-3})
    assert [(r["step"], r["loss"]) for r in resumed.records()] == [(1, 1.0), (2, 0.5), (3, 1 / 3), (4, 0.3)]
    assert resumed.plot().stat().st_size > 0


def test_mfu_formula_and_cpu_has_no_peak() -> None:
    assert mfu(flops_per_sample=1e12, samples_per_s=100.0, num_processes=2, peak=1e14) == pytest.approx(0.5)
    assert peak_flops(torch.device("cpu")) is None


def test_ema_smoothing_follows_a_noisy_curve_without_lag_at_the_start() -> None:
    from depi.train.metrics import ema_smooth

    assert ema_smooth([]) == [] and ema_smooth([3.0, 3.0, 3.0], span=5) == pytest.approx([3.0, 3.0, 3.0])
    noisy = [1.0 + (0.5 if i % 2 else -0.5) for i in range(200)]
    smoothed = ema_smooth(noisy)
    assert smoothed[0] == pytest.approx(noisy[0])  # bias-corrected: no pull towards 0
    assert max(abs(v - 1.0) for v in smoothed[50:]) < 0.1


def test_plot_writes_the_loss_and_lr_figure(tmp_path) -> None:
    from depi.train.metrics import MetricsLogger

    log = MetricsLogger(tmp_path)
    for step in range(1, 30):
        log.log(step, {"loss": 1.0 / step, "lr": 1e-4})
    assert log.plot().is_file() and log.plot_path.stat().st_size > 10_000
