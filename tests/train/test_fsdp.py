"""FSDP2 training on the CPU: two processes over gloo, launched with configs/accelerate/fsdp.yaml as in production.

The multi-process tests (``slow``) launch ``accelerate launch --config_file configs/accelerate/fsdp.yaml
--num_processes 2 --mixed_precision no tests/train/fsdp_worker.py ...``; the tiny pi0 draws its flow-matching
noise from each sample's index (:class:`tests.train.train_toys.PerSampleNoisePI0`), so two processes with
micro-batches of B compute the same losses as one process with micro-batches of 2B on the same global batches.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.utils import DistributedType
from safetensors.torch import load_file

from depi.policies.pi0 import PI0Policy, make_config
from depi.train.fsdp import FSDPSettings, fsdp_settings_from_launch, unit_modules
from depi.train.loop import _LossModule, train
from tests.train.fsdp_worker import (
    ACCUMULATION,
    BATCH_SIZE,
    EMA_DECAY,
    SAVE_FREQ,
    policy_config,
    state_sha256,
)
from tests.train.train_toys import (
    CanonicalData,
    PerSampleNoisePI0,
    ToyFlowPolicy,
    indexed_data,
    make_toy_data,
    toy_config,
)

REPO = Path(__file__).resolve().parents[2]
FSDP_CONFIG = REPO / "configs" / "accelerate" / "fsdp.yaml"
STEPS = 4
FSDP_ENV = {  # what `accelerate launch --config_file configs/accelerate/fsdp.yaml` exports (the fields depi reads)
    "ACCELERATE_USE_FSDP": "true",
    "FSDP_VERSION": "2",
    "FSDP_AUTO_WRAP_POLICY": "TRANSFORMER_BASED_WRAP",
    "FSDP_TRANSFORMER_CLS_TO_WRAP": "LoRALinear,SiglipEncoderLayer,Embedding",
    "FSDP_RESHARD_AFTER_FORWARD": "true",
    "FSDP_STATE_DICT_TYPE": "FULL_STATE_DICT",
    "FSDP_CPU_RAM_EFFICIENT_LOADING": "false",  # accelerate's parser writes it back: restored after each test
}


# ---------------------------------------------------------------------------------------------- config and units
def test_fsdp_config_parses_as_fsdp2_with_full_state_dicts() -> None:
    config = load_config_from_file(str(FSDP_CONFIG))
    assert config.distributed_type == DistributedType.FSDP and config.mixed_precision == "bf16"
    fsdp = config.fsdp_config
    assert fsdp["fsdp_version"] == 2 and fsdp["fsdp_reshard_after_forward"] is True
    assert fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    assert fsdp["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    assert fsdp["fsdp_transformer_layer_cls_to_wrap"] == FSDP_ENV["FSDP_TRANSFORMER_CLS_TO_WRAP"]


def test_every_wrap_unit_exists_and_is_called_by_its_own_forward() -> None:
    # FSDP gathers a unit's weights in the unit's forward: each wrap class must exist in the policy, and every
    # unit holding a trainable parameter must be called through forward during the loss.
    names = tuple(load_config_from_file(str(FSDP_CONFIG)).fsdp_config["fsdp_transformer_layer_cls_to_wrap"].split(","))
    torch.manual_seed(0)
    policy = PI0Policy(make_config("tiny", action_horizon=4, max_token_len=12))
    units = {id(m): m for m in unit_modules(policy, names)}
    called: set[int] = set()
    for key, module in units.items():
        module.register_forward_pre_hook(lambda mod, args, key=key: called.add(key))
    samples = CanonicalData().dataset
    batch = torch.utils.data.default_collate([samples[i] for i in range(2)])
    batch["actions"], batch["action_is_pad"] = batch["actions"][:, :4], batch["action_is_pad"][:, :4]
    batch["tokenized_prompt"] = batch["tokenized_prompt"][:, :12]
    batch["tokenized_prompt_mask"] = batch["tokenized_prompt_mask"][:, :12]
    policy.compute_loss(batch)
    trainable_units = {k for k, m in units.items() if any(p.requires_grad for p in m.parameters())}
    assert trainable_units and trainable_units <= called
    embeddings = {id(policy.language_model.embed_tokens), id(policy.vision_tower.embeddings.position_embedding)}
    assert embeddings <= set(units) and embeddings <= called  # the token table is gathered only around its lookup


def test_unit_modules_are_innermost_first_and_unknown_classes_are_refused() -> None:
    policy = PI0Policy(make_config("tiny"))
    units = unit_modules(policy, ("LoRALinear", "SiglipEncoderLayer"))
    position = {id(m): i for i, m in enumerate(units)}
    for layer in policy.vision_tower.modules():
        if type(layer).__name__ == "SiglipEncoderLayer":
            inner = [m for m in layer.modules() if type(m).__name__ == "LoRALinear"]
            assert all(position[id(m)] < position[id(layer)] for m in inner)  # sharded before their parent
    with pytest.raises(ValueError, match="GemmaDecoderBlock.*configs/accelerate/fsdp.yaml"):
        unit_modules(policy, ("LoRALinear", "GemmaDecoderBlock"))


def test_launch_settings_are_read_from_accelerate_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [*FSDP_ENV, "ACCELERATE_USE_FSDP"]:
        monkeypatch.delenv(name, raising=False)
    assert fsdp_settings_from_launch() is None
    for name, value in FSDP_ENV.items():
        monkeypatch.setenv(name, value)
    assert fsdp_settings_from_launch() == FSDPSettings(
        unit_classes=("LoRALinear", "SiglipEncoderLayer", "Embedding"), reshard_after_forward=True,
        offload_params=False,
    )
    monkeypatch.setenv("FSDP_VERSION", "1")
    monkeypatch.setenv("FSDP_STATE_DICT_TYPE", "SHARDED_STATE_DICT")
    with pytest.raises(ValueError, match=r"fsdp_version is 1; set fsdp_version: 2.*FULL_STATE_DICT"):
        fsdp_settings_from_launch()


def test_fsdp_settings_without_a_process_group_train_unsharded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in FSDP_ENV.items():
        monkeypatch.setenv(name, value)
    torch.manual_seed(0)
    result = train(toy_config(tmp_path / "run", steps=2, save_freq=2), policy=ToyFlowPolicy(), data=make_toy_data())
    assert result.step == 2 and all(math.isfinite(x) for x in result.losses)


def test_gathered_state_dict_is_saved_and_reloads(tmp_path: Path) -> None:
    # What the main process does with the full tensors gathered from the shards (keys of policy.state_dict()).
    torch.manual_seed(0)
    policy = PI0Policy(make_config("tiny"))
    gathered = {k.removeprefix("policy."): v.clone() + 1.0 for k, v in _LossModule(policy).state_dict().items()}
    policy.save_pretrained(tmp_path / "model", state_dict=gathered)
    reloaded = PI0Policy.from_pretrained(tmp_path / "model")
    for key, value in reloaded.state_dict().items():
        torch.testing.assert_close(value, gathered[key])


def test_a_sharded_or_foreign_state_dict_is_refused_and_nothing_written(tmp_path: Path) -> None:
    policy = PI0Policy(make_config("tiny"))
    state = policy.state_dict()
    with pytest.raises(ValueError, match="missing"):
        policy.save_pretrained(tmp_path / "a", state_dict={("policy." + k): v for k, v in state.items()})
    shard = {k: v.flatten()[: max(1, v.numel() // 2)] for k, v in state.items()}
    with pytest.raises(ValueError, match="gathered"):
        policy.save_pretrained(tmp_path / "b", state_dict=shard)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


# ---------------------------------------------------------------------------------------------- two processes
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launch(out_dir: Path, run_dir: Path, steps: int, variant: str) -> list[dict]:
    """Run tests/train/fsdp_worker.py on 2 CPU processes with the production FSDP config; the ranks' reports."""
    out_dir.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(FSDP_CONFIG),
           "--num_processes", "2", "--mixed_precision", "no", "--main_process_port", str(_free_port()),
           str(REPO / "tests/train/fsdp_worker.py"), str(out_dir), str(run_dir), str(steps), variant]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return [json.loads((out_dir / f"rank{r}.json").read_text()) for r in range(2)]


@pytest.fixture(scope="module")
def fsdp_runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """An uninterrupted FSDP run of STEPS steps, and the same run stopped at step 2 (copy kept) then resumed."""
    root = tmp_path_factory.mktemp("fsdp")
    full = _launch(root / "full_out", root / "full", STEPS, "pi0")
    first = _launch(root / "first_out", root / "split", SAVE_FREQ, "pi0")
    shutil.copytree(root / "split", root / "stopped")
    resumed = _launch(root / "resumed_out", root / "split", STEPS, "pi0-resume")
    return {"full": full, "first": first, "resumed": resumed, "stopped": root / "stopped"}


def _single_process_run(run_dir: Path, resume: bool = False):
    """One process, micro-batches of 2B: the same global batches as the two FSDP ranks with B each."""
    cfg = toy_config(run_dir, steps=STEPS, save_freq=SAVE_FREQ, batch_size=2 * BATCH_SIZE,
                     gradient_accumulation_steps=ACCUMULATION, resume=resume)
    cfg.policy, cfg.optim.ema_decay = policy_config("pi0"), EMA_DECAY
    torch.manual_seed(0)
    return train(cfg, policy=PerSampleNoisePI0(cfg.policy), data=indexed_data())


def _weights(checkpoint: Path, name: str = "model") -> dict[str, torch.Tensor]:
    return load_file(Path(checkpoint) / name / "model.safetensors")


@pytest.mark.slow
def test_fsdp_shards_the_policy_and_saves_full_gathered_weights(fsdp_runs: dict) -> None:
    ranks = fsdp_runs["full"]
    assert ranks[0]["losses"] == ranks[1]["losses"] and len(ranks[0]["losses"]) == STEPS
    assert all(math.isfinite(x) for x in ranks[0]["losses"])
    for save in (r["saves"][-1] for r in ranks):  # every parameter is a DTensor; each rank holds about half
        assert save["dtensor"] and save["numel"] / 2 <= save["local_numel"] < save["numel"]
    checkpoint = Path(ranks[0]["checkpoint"])
    saved = _weights(checkpoint)
    # What each rank gathered itself equals what the main process wrote.
    assert ranks[0]["saves"][-1]["sha256"] == ranks[1]["saves"][-1]["sha256"] == state_sha256(saved)
    reloaded = PI0Policy.from_pretrained(checkpoint / "model")
    assert state_sha256(reloaded.state_dict()) == state_sha256(saved)
    PI0Policy.from_pretrained(checkpoint / "ema_model")
    # The optimizer state is full and keyed by parameter name, as in a one-process checkpoint.
    optimizer = torch.load(checkpoint / "training_state" / "optimizer.pt", weights_only=True)
    assert sorted(optimizer["state"]) == ranks[0]["trainable"]
    assert all(optimizer["state"][k]["exp_avg"].shape == saved[k].shape for k in optimizer["state"])
    assert sorted(n for g in optimizer["param_groups"] for n in g["params"]) == ranks[0]["trainable"]
    ema = load_file(checkpoint / "training_state" / "ema.safetensors")
    assert sorted(ema) == ranks[0]["trainable"] and all(ema[k].shape == saved[k].shape for k in ema)
    assert json.loads((checkpoint / "checkpoint_complete.json").read_text())["num_processes"] == 2
    assert {p.name for p in (checkpoint / "training_state").glob("rng_rank*.pt")} == {"rng_rank0.pt", "rng_rank1.pt"}


@pytest.mark.slow
def test_fsdp_matches_one_process_on_the_same_global_batches(fsdp_runs: dict, tmp_path: Path) -> None:
    single = _single_process_run(tmp_path / "single")
    fsdp_losses = fsdp_runs["full"][0]["losses"]
    torch.testing.assert_close(torch.tensor(single.losses), torch.tensor(fsdp_losses), rtol=1e-4, atol=0)
    fsdp, one = _weights(fsdp_runs["full"][0]["checkpoint"]), _weights(single.checkpoint)
    for key in fsdp:
        torch.testing.assert_close(one[key], fsdp[key], rtol=1e-3, atol=1e-4)


@pytest.mark.slow
def test_fsdp_resume_is_bitwise_equal_to_the_uninterrupted_run(fsdp_runs: dict) -> None:
    # Same processes, same collectives in the same order, deterministic CPU kernels, RNG / optimizer / EMA / sampler
    # restored exactly: the resumed run reproduces the uninterrupted one bit for bit.
    full, first, resumed = (fsdp_runs[k][0] for k in ("full", "first", "resumed"))
    assert first["losses"] + resumed["losses"] == full["losses"]
    for name in ("model", "ema_model"):
        a, b = _weights(full["checkpoint"], name), _weights(resumed["checkpoint"], name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    a, b = (torch.load(Path(r["checkpoint"]) / "training_state/optimizer.pt", weights_only=True) for r in (full, resumed))
    assert all(torch.equal(a["state"][k]["exp_avg_sq"], b["state"][k]["exp_avg_sq"]) for k in a["state"])


@pytest.mark.slow
def test_fsdp_checkpoint_resumes_in_one_process_without_fsdp(fsdp_runs: dict) -> None:
    # The step-2 checkpoint of the 2-process FSDP run continues in one process with micro-batches of 2B: the sampler
    # carries on with the same global batches, so the losses follow the uninterrupted FSDP run (up to the
    # summation order of float32 reductions, hence allclose).
    resumed = _single_process_run(fsdp_runs["stopped"], resume=True)
    full = fsdp_runs["full"][0]
    torch.testing.assert_close(torch.tensor(resumed.losses), torch.tensor(full["losses"][SAVE_FREQ:]),
                               rtol=1e-4, atol=0)
    for name in ("model", "ema_model"):
        a, b = _weights(full["checkpoint"], name), _weights(resumed.checkpoint, name)
        for key in a:
            torch.testing.assert_close(b[key], a[key], rtol=1e-3, atol=1e-4)


@pytest.mark.slow
def test_fsdp_trains_lora_with_a_frozen_tower_in_bf16_with_accumulation(tmp_path: Path) -> None:
    ranks = _launch(tmp_path / "out", tmp_path / "run", 2, "lora-bf16")
    assert ranks[0]["saves"][-1]["sha256"] == ranks[1]["saves"][-1]["sha256"]
    assert all(math.isfinite(x) for x in ranks[0]["losses"])
    initial = torch.load(tmp_path / "out" / "initial.pt", weights_only=True)
    final = _weights(ranks[0]["checkpoint"])
    trainable = set(ranks[0]["trainable"])
    assert any("lora" in k for k in trainable) and len(trainable) < len(final)
    assert all(torch.equal(final[k], initial[k]) for k in final if k not in trainable)  # frozen: untouched
    assert all(not torch.equal(final[k], initial[k]) for k in trainable)
    assert all(v.dtype == torch.float32 for v in final.values())  # bf16 compute, float32 weights
