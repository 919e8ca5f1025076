"""Checkpoint loading: depi round trip, lerobot layout, shape mismatches, strictness, sharded files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from depi.policies.pi0 import PI0Policy, WeightLoadError, load_weights, make_config
from depi.policies.pi0.weights import detect_layout, load_targets, map_lerobot_key


def _separate_projections(policy: PI0Policy) -> dict[str, torch.Tensor]:
    """The policy's state dict with every fused projection split into per-projection tensors (q_proj, k_proj,
    v_proj, gate_proj, up_proj), the way lerobot, PaliGemma and older depi checkpoints store them."""
    state = policy.state_dict()
    out = {k: v for k, v in state.items()}
    for name, target in load_targets(policy).items():
        if target.rows is not None:
            out[name] = state[target.key][target.rows].clone()
            out.pop(target.key, None)
    return out


def _to_lerobot_key(key: str) -> str:
    for depi, lerobot in (
        ("vision_tower.", "paligemma.model.vision_tower.vision_model."),
        ("multi_modal_projector.", "paligemma.model.multi_modal_projector.linear."),
        ("language_model.", "paligemma.model.language_model."),
        ("action_expert.", "gemma_expert.model."),
    ):
        if key.startswith(depi):
            return "model.paligemma_with_expert." + lerobot + key.removeprefix(depi)
    return "model." + key


def test_save_pretrained_round_trip(tmp_path: Path, make_batch) -> None:
    torch.manual_seed(0)
    policy = PI0Policy(make_config("tiny_pi05", action_horizon=4)).eval()
    policy.save_pretrained(tmp_path / "ckpt")
    assert json.loads((tmp_path / "ckpt" / "config.json").read_text())["type"] == "pi05"
    loaded = PI0Policy.from_pretrained(tmp_path / "ckpt").eval()
    assert loaded.config == policy.config
    batch = make_batch(policy.config)
    noise = torch.randn(2, 4, 32)
    torch.testing.assert_close(
        loaded.sample_actions(batch, noise=noise), policy.sample_actions(batch, noise=noise)
    )


def test_lerobot_layout_with_other_action_dim(tmp_path: Path, make_batch) -> None:
    torch.manual_seed(0)
    source = PI0Policy(make_config("tiny"))
    state = {_to_lerobot_key(k): v for k, v in _separate_projections(source).items()}
    state["model.paligemma_with_expert.gemma_expert.lm_head.weight"] = torch.zeros(3, 32)  # unused by pi0
    state["model.action_in_proj.weight"] = torch.zeros(32, 14)  # a checkpoint trained with action_dim 14
    state["model.something_else.weight"] = torch.zeros(2)
    state["model.paligemma_with_expert.paligemma.lm_head.weight"] = state.pop(
        "model.paligemma_with_expert.paligemma.model.language_model.embed_tokens.weight"
    )  # tied head only
    save_file(state, str(tmp_path / "model.safetensors"))
    assert detect_layout(list(state)) == "lerobot"

    target = PI0Policy(make_config("tiny"))
    fresh_in_proj = target.action_in_proj.weight.clone()
    with pytest.raises(WeightLoadError, match="reinitialized"):
        load_weights(target, tmp_path, strict=True)
    report = load_weights(target, tmp_path)
    assert report.layout == "lerobot"
    assert report.reinitialized == ["action_in_proj.weight: checkpoint (32, 14) vs model (32, 32)"]
    assert report.unexpected == ["model.something_else.weight"]
    assert "model.paligemma_with_expert.gemma_expert.lm_head.weight" in report.ignored
    assert report.missing == []
    torch.testing.assert_close(target.action_in_proj.weight, fresh_in_proj)
    torch.testing.assert_close(
        target.language_model.embed_tokens.weight, source.language_model.embed_tokens.weight
    )
    torch.testing.assert_close(
        target.action_expert.layers[1].mlp.gate_up_proj.weight,
        source.action_expert.layers[1].mlp.gate_up_proj.weight,
    )
    assert "reinitialized 1" in report.summary()


def test_sharded_checkpoint_and_missing_keys(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = PI0Policy(make_config("tiny"))
    state = source.state_dict()
    names = sorted(state)
    vision = {k: state[k] for k in names if k.startswith("vision_tower.")}
    rest = {k: state[k] for k in names if not k.startswith(("vision_tower.", "state_proj."))}
    save_file(vision, str(tmp_path / "model-00001-of-00002.safetensors"))
    save_file(rest, str(tmp_path / "model-00002-of-00002.safetensors"))
    weight_map = {k: "model-00001-of-00002.safetensors" for k in vision}
    weight_map.update({k: "model-00002-of-00002.safetensors" for k in rest})
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    target = PI0Policy(make_config("tiny"))
    report = load_weights(target, tmp_path, layout="depi")
    assert sorted(report.missing) == ["state_proj.bias", "state_proj.weight"]
    assert not report.ok and len(report.loaded) == len(state) - 2


def test_separate_projections_load_into_the_fused_rows(tmp_path: Path, make_batch) -> None:
    torch.manual_seed(0)
    base = make_config("tiny")
    lora = {"lora_rank": 2, "lora_alpha": 2.0}
    config = make_config("tiny", vlm=type(base.vlm)(**{**vars(base.vlm), **lora}))
    source = PI0Policy(config).eval()
    with torch.no_grad():  # non-zero adapters so that a misplaced lora_b block changes the output
        for name, p in source.named_parameters():
            if name.endswith(".lora_b"):
                p.normal_(0.0, 0.1)
    separate = _separate_projections(source)
    assert "language_model.layers.0.self_attn.q_proj.lora_a" in separate
    assert not any(".qkv_proj." in k or ".gate_up_proj." in k for k in separate)
    save_file(separate, str(tmp_path / "model.safetensors"))
    target = PI0Policy(config).eval()
    report = load_weights(target, tmp_path, layout="depi", strict=True)
    assert report.ok and len(report.loaded) == len(separate)
    for key, value in source.state_dict().items():
        torch.testing.assert_close(target.state_dict()[key], value, rtol=0, atol=0)
    batch = make_batch(config)
    noise = torch.randn(2, config.action_horizon, config.action_dim)
    torch.testing.assert_close(target.sample_actions(batch, noise=noise), source.sample_actions(batch, noise=noise))

    del separate["action_expert.layers.1.self_attn.k_proj.weight"]
    save_file(separate, str(tmp_path / "model.safetensors"))
    report = load_weights(PI0Policy(config), tmp_path, layout="depi")
    assert report.missing == ["action_expert.layers.1.self_attn.k_proj.weight"]
    with pytest.raises(WeightLoadError, match="k_proj"):
        load_weights(PI0Policy(config), tmp_path, layout="depi", strict=True)


def test_lora_adapters_are_new_when_loading_a_base_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(0)
    PI0Policy(make_config("tiny")).save_pretrained(tmp_path)
    base = make_config("tiny")
    lora = make_config("tiny", vlm=type(base.vlm)(**{**vars(base.vlm), "lora_rank": 2, "lora_alpha": 2.0}))
    report = load_weights(PI0Policy(lora), tmp_path, strict=True)
    assert report.ok and report.new_lora and all(k.endswith((".lora_a", ".lora_b")) for k in report.new_lora)


def test_bad_inputs_are_explained(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_weights(PI0Policy(make_config("tiny")), tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"type": "act"}))
    with pytest.raises(FileNotFoundError):
        PI0Policy.from_pretrained(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="field 'type'"):
        PI0Policy.from_pretrained(tmp_path)
    save_file({"foo.bar": torch.zeros(1)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(WeightLoadError, match="Unrecognised checkpoint layout"):
        load_weights(PI0Policy(make_config("tiny")), tmp_path)


@pytest.mark.parametrize(
    ("key", "pi05", "expected"),
    [
        (
            "model.paligemma_with_expert.paligemma.model.language_model.layers.0.self_attn.q_proj.weight",
            False,
            "language_model.layers.0.self_attn.q_proj.weight",
        ),
        (  # lerobot < 0.4 / transformers 4.x layout
            "model.paligemma_with_expert.paligemma.language_model.model.layers.3.mlp.up_proj.weight",
            False,
            "language_model.layers.3.mlp.up_proj.weight",
        ),
        (  # openpi PyTorch state dict (no "model." prefix)
            "paligemma_with_expert.paligemma.model.vision_tower.vision_model.post_layernorm.bias",
            False,
            "vision_tower.post_layernorm.bias",
        ),
        (
            "model.paligemma_with_expert.gemma_expert.model.layers.1.input_layernorm.dense.weight",
            True,
            "action_expert.layers.1.input_layernorm.dense.weight",
        ),
        ("model.time_mlp_in.weight", False, "action_time_mlp_in.weight"),
        ("model.action_time_mlp_out.bias", True, "time_mlp_out.bias"),
        ("model.paligemma_with_expert.gemma_expert.lm_head.weight", False, None),
    ],
)
def test_lerobot_key_mapping(key: str, pi05: bool, expected: str | None) -> None:
    assert map_lerobot_key(key, pi05) == expected
