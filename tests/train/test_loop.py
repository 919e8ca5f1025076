"""The training loop on a small policy and an in-memory mixture: resume, accumulation, metrics."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from depi.train.run_layout import latest_checkpoint
from depi.train.loop import train
from depi.train.optim import cosine_lr
from tests.train.train_toys import ToyFlowPolicy, ToySamples, make_toy_data, toy_config


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _run(cfg, seed: int = 0):
    torch.manual_seed(0)  # same initial weights in every run
    return train(cfg, policy=ToyFlowPolicy(), data=make_toy_data(seed=seed))


@pytest.mark.parametrize("ema_decay", [None, 0.9])
def test_resume_reproduces_uninterrupted_losses_bitwise(tmp_path: Path, ema_decay: float | None) -> None:
    full_cfg = toy_config(tmp_path / "full", steps=7, save_freq=3, gradient_accumulation_steps=2)
    full_cfg.optim.ema_decay = ema_decay
    full = _run(full_cfg)

    first_cfg = toy_config(tmp_path / "split", steps=3, save_freq=3, gradient_accumulation_steps=2)
    first_cfg.optim.ema_decay = ema_decay
    _run(first_cfg)
    resumed_cfg = toy_config(tmp_path / "split", steps=7, save_freq=3, gradient_accumulation_steps=2, resume=True)
    resumed_cfg.optim.ema_decay = ema_decay
    resumed = _run(resumed_cfg)

    assert [m["loss"] for m in _metrics(tmp_path / "split")] == [m["loss"] for m in _metrics(tmp_path / "full")]
    assert resumed.losses == full.losses[3:]
    for name in ["model"] + (["ema_model"] if ema_decay else []):
        a = load_file(full.checkpoint / name / "model.safetensors")
        b = load_file(resumed.checkpoint / name / "model.safetensors")
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_one_optimizer_and_scheduler_step_per_accumulation_window(tmp_path: Path) -> None:
    cfg = toy_config(tmp_path / "run", steps=5, save_freq=5, gradient_accumulation_steps=3, batch_size=2)
    result = _run(cfg)
    state = result.checkpoint / "training_state"
    optimizer = torch.load(state / "optimizer.pt", weights_only=True)
    assert {int(s["step"]) for s in optimizer["state"].values()} == {5}  # AdamW's own step count
    assert torch.load(state / "scheduler.pt", weights_only=True)["last_epoch"] == 5
    assert [m["lr"] for m in _metrics(tmp_path / "run")] == pytest.approx([cosine_lr(s, cfg.optim) for s in range(5)])
    # The sampler moved by exactly steps * G * B samples of this rank.
    assert json.loads((state / "sampler.json").read_text())["start"] == 5 * 3 * 2


def test_accumulation_equals_one_big_batch(tmp_path: Path) -> None:
    """G micro-batches of B samples make the same update as one batch of G * B (the loss is a sample mean)."""

    class PerSampleNoise(ToyFlowPolicy):
        def compute_loss(self, batch):
            gens = [torch.Generator().manual_seed(int(i)) for i in batch["index"]]
            noise = torch.stack([torch.randn(batch["actions"].shape[1:], generator=g) for g in gens])
            time = torch.stack([torch.rand((), generator=g) for g in gens])
            return super().compute_loss(batch, noise=noise, time=time)

    def final_weights(name: str, **kw) -> dict[str, torch.Tensor]:
        cfg = toy_config(tmp_path / name, steps=3, save_freq=3, **kw)
        torch.manual_seed(0)
        policy = PerSampleNoise()
        return load_file(train(cfg, policy=policy, data=make_toy_data()).checkpoint / "model/model.safetensors")

    big = final_weights("big", batch_size=4)
    small = final_weights("small", batch_size=1, gradient_accumulation_steps=4)
    initial = PerSampleNoise().state_dict()
    for k in big:
        assert not torch.equal(big[k], initial[k])
        torch.testing.assert_close(small[k], big[k], rtol=1e-5, atol=1e-6)


def test_metrics_plot_and_per_dataset_loss(tmp_path: Path) -> None:
    result = _run(toy_config(tmp_path / "run", steps=4, per_dataset_loss_freq=2))
    records = _metrics(tmp_path / "run")
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert {"loss", "lr", "grad_norm", "step_time_s", "data_wait_s", "samples_per_s"} <= set(records[0])
    assert {"loss/toy/dataset_0", "loss/toy/dataset_1"} <= set(records[1]) and "loss/toy/dataset_0" not in records[0]
    assert result.plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_data_wait_time_is_measured(tmp_path: Path) -> None:
    class SlowSamples(ToySamples):
        def __getitem__(self, index):
            time.sleep(0.02)
            return super().__getitem__(index)

    data = make_toy_data()
    data.dataset = SlowSamples([40, 24])
    train(toy_config(tmp_path / "run", steps=2, batch_size=4), policy=ToyFlowPolicy(), data=data)
    waits = [r["data_wait_s"] for r in _metrics(tmp_path / "run")]
    assert min(waits) >= 4 * 0.02  # four samples loaded while the loop waited on next(batch)


def test_checkpoint_contents_and_retention(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _run(toy_config(run, steps=8, save_freq=2, keep_last=2, keep_period=4))
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["000000004", "000000006", "000000008"]
    last = latest_checkpoint(run)
    assert last.name == "000000008"
    for rel in ["model/model.safetensors", "model/config.json", "train_config.yaml", "transforms.json",
                "norm_stats/toy_arm/norm_stats.json", "mixture_manifest.json", "training_state/rng_rank0.pt",
                "training_state/sampler.json", "checkpoint_complete.json"]:
        assert (last / rel).is_file(), rel
    manifest = json.loads((last / "mixture_manifest.json").read_text())
    assert [d["repo_id"] for d in manifest["datasets"]] == ["toy/dataset_0", "toy/dataset_1"]


def test_incomplete_checkpoint_is_never_resumed(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _run(toy_config(run, steps=3, save_freq=3))
    (run / "checkpoints" / "000000009" / "model").mkdir(parents=True)  # crashed before its marker
    (run / "checkpoints" / ".tmp-000000012").mkdir()  # crashed before the rename
    assert latest_checkpoint(run).name == "000000003"
    resumed = _run(toy_config(run, steps=4, save_freq=3, resume=True))
    assert resumed.step == 4 and [r["step"] for r in _metrics(run)] == [1, 2, 3, 4]


def test_resume_without_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        _run(toy_config(tmp_path / "empty", resume=True))


def test_new_run_refuses_a_folder_with_checkpoints(tmp_path: Path) -> None:
    _run(toy_config(tmp_path / "run", steps=2, save_freq=2))
    with pytest.raises(FileExistsError, match="--resume=true"):
        _run(toy_config(tmp_path / "run", steps=2, save_freq=2))


@pytest.mark.slow
def test_dataloader_workers_keep_the_resume_exact(tmp_path: Path) -> None:
    full = _run(toy_config(tmp_path / "full", steps=4, save_freq=2, num_workers=2))
    _run(toy_config(tmp_path / "split", steps=2, save_freq=2, num_workers=2))
    resumed = _run(toy_config(tmp_path / "split", steps=4, save_freq=2, num_workers=2, resume=True))
    assert resumed.losses == full.losses[2:]


@pytest.mark.slow
def test_compiled_training_matches_eager(tmp_path: Path) -> None:
    eager = _run(toy_config(tmp_path / "eager", steps=3, save_freq=3))
    compiled = _run(toy_config(tmp_path / "compiled", steps=3, save_freq=3, compile=True))
    assert compiled.losses == pytest.approx(eager.losses, rel=1e-5)


def test_wandb_logging_in_offline_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("wandb", reason="wandb is an optional dependency and is not installed")
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = toy_config(tmp_path / "run", steps=2, save_freq=2)
    cfg.wandb.enable, cfg.wandb.mode = True, "offline"
    _run(cfg)
    assert list((tmp_path / "run" / "wandb").glob("offline-run-*"))


def test_crash_while_saving_leaves_the_previous_checkpoint_for_resume(tmp_path: Path) -> None:
    class CrashOnSecondSave(ToyFlowPolicy):
        saves = 0

        def save_pretrained(self, directory):
            super().save_pretrained(directory)
            CrashOnSecondSave.saves += 1
            if CrashOnSecondSave.saves == 2:
                raise OSError("disk full")

    run = tmp_path / "run"
    torch.manual_seed(0)
    with pytest.raises(OSError, match="disk full"):
        train(toy_config(run, steps=4, save_freq=2), policy=CrashOnSecondSave(), data=make_toy_data())
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [".tmp-000000004", "000000002"]
    assert latest_checkpoint(run).name == "000000002"
    resumed = _run(toy_config(run, steps=4, save_freq=2, resume=True))
    assert latest_checkpoint(run).name == "000000004" and resumed.step == 4
    assert not (run / "checkpoints" / ".tmp-000000004").exists()


def test_new_run_rewrites_the_log_of_a_run_killed_before_its_first_checkpoint(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "loss": 9.0}) + "\n" for s in range(1, 6)))
    _run(toy_config(run, steps=3, save_freq=3))
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]
