"""Offline metrics: formulas against numpy, a perfect predictor, and the depi-eval offline run end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from depi.constants import ACTIONS
from depi.eval.cli import main
from depi.eval.offline import (
    OfflineDatasetConfig,
    OfflineEvalConfig,
    SplitMetrics,
    build_mixture,
    chunk_metrics,
    dataset_splits,
    evaluate_items,
    plan_items,
)
from depi.eval.policy_runner import EvalPolicyConfig, load_checkpoint
from depi.eval.splits import SplitConfig
from tests.eval.conftest import TinyRun


def test_chunk_metrics_ignore_padded_steps() -> None:
    pred = np.array([[1.0, 2.0], [3.0, 4.0], [100.0, -100.0]])
    recorded = np.array([[1.0, 0.0], [3.0, 5.0], [0.0, 0.0]])
    is_pad = np.array([False, False, True])
    se, count, cosine = chunk_metrics(pred, recorded, is_pad)
    p, r = pred[:2].ravel(), recorded[:2].ravel()
    assert se == pytest.approx(np.sum((p - r) ** 2)) == pytest.approx(5.0)
    assert count == 4
    assert cosine == pytest.approx(p @ r / np.linalg.norm(p) / np.linalg.norm(r))
    assert chunk_metrics(pred, recorded, np.ones(3, bool))[1] == 0


def test_split_metrics_pool_values_and_average_cosines() -> None:
    rng = np.random.default_rng(0)
    chunks = [(rng.normal(size=(4, 3)), rng.normal(size=(4, 3)), np.array([False, False, i == 1, True]))
              for i in range(3)]  # fmt: skip
    metrics = SplitMetrics()
    for chunk in chunks:
        metrics.add(*chunk)
    errors = np.concatenate([(p - r)[~pad].ravel() for p, r, pad in chunks])
    cosines = [chunk_metrics(p, r, pad)[2] for p, r, pad in chunks]
    assert metrics.to_json() == pytest.approx(
        {"samples": 3, "mse": np.mean(errors**2), "cosine": np.mean(cosines)}
    )


def test_perfect_predictor_scores_zero_mse_and_cosine_one(tiny_run: TinyRun) -> None:
    checkpoint = load_checkpoint(tiny_run.checkpoint)
    mixture = build_mixture(checkpoint, OfflineDatasetConfig(root=str(tiny_run.data_dir)))
    splits = dataset_splits(
        mixture, SplitConfig(test_fraction=0.5), tiny_run.data_dir.parent / "splits_perfect"
    )
    items = plan_items(mixture, splits, stride=7, max_samples=3)
    assert {i.split for i in items} == {"train", "test"} and len(items) == 6

    def recorded(d: int, sample: dict) -> np.ndarray:  # a stub policy: predictions are the recorded actions
        return np.asarray(sample[ACTIONS])[:, : mixture.index.entries[d].action_dim]

    metrics = evaluate_items(mixture, items, recorded, progress=False)
    for name in ("train", "test"):
        result = metrics[(0, name)].to_json()
        assert result["samples"] == 3 and result["mse"] == 0.0 and result["cosine"] == pytest.approx(1.0)


def test_offline_cli_writes_results_and_split(tiny_run: TinyRun, tmp_path: Path, capsys) -> None:
    main(["offline", f"--policy.path={tiny_run.checkpoint}", f"--dataset.root={tiny_run.data_dir}",
          "--stride=10", "--max_samples=4", "--split.test_fraction=0.5", f"--output_dir={tmp_path}"])  # fmt: skip
    results = json.loads((tmp_path / "results.json").read_text())
    (row,) = results["datasets"]
    split = json.loads(next((tmp_path / "splits").glob("*.json")).read_text())
    assert row["split"]["test_episodes"] == split["test_episodes"] and len(split["test_episodes"]) == 1
    for name in ("train", "test"):
        assert row[name]["samples"] == 4
        assert row[name]["mse"] > 0 and -1 <= row[name]["cosine"] <= 1
    assert results["all"]["train"] == row["train"]
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["dataset", "train", "n", "train", "MSE", "train", "cos", "test", "n", "test",
                                "MSE", "test", "cos"]  # fmt: skip
    assert table[-1].startswith("all")


def test_offline_config_needs_policy_and_dataset() -> None:
    with pytest.raises(ValueError, match="--policy.path"):
        OfflineEvalConfig()
    with pytest.raises(ValueError, match="--dataset.root"):
        OfflineEvalConfig(policy=EvalPolicyConfig(path="ckpt"))
