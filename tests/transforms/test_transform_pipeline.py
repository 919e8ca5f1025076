"""Pipelines: registry, JSON round trip, and the standard pi0 / pi0.5 pipeline end to end."""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from depi.transforms import (
    Normalize,
    Pipeline,
    Transform,
    TransformGroup,
    TransformsConfig,
    make_bool_mask,
    make_pipeline,
    register_transform,
    transform_from_config,
)
from depi.transforms.tokenize import load_sentencepiece


def _sample(rng: np.random.Generator, embodiment: str = "so100_6d") -> dict:
    return {
        "image": {
            "base_0_rgb": torch.from_numpy(rng.integers(0, 256, (3, 480, 640), dtype=np.uint8)),
            "left_wrist_0_rgb": torch.from_numpy(rng.integers(0, 256, (3, 240, 320), dtype=np.uint8)),
        },
        "state": torch.from_numpy(rng.normal(size=6).astype(np.float32)),
        "actions": torch.from_numpy(rng.normal(size=(50, 6)).astype(np.float32)),
        "action_is_pad": torch.zeros(50, dtype=torch.bool),
        "prompt": "pick up the red cube",
        "embodiment": embodiment,
    }


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key, value in a.items():
        if isinstance(value, dict):
            _assert_same(value, b[key])
        elif isinstance(value, torch.Tensor):
            assert torch.equal(value, b[key]), key
        else:
            assert value == b[key], key


@pytest.mark.parametrize("model_type", ["pi0", "pi05"])
def test_standard_pipeline_gives_the_canonical_model_sample(model_type, tokenizer_path, two_embodiments):
    config = TransformsConfig(
        model_type=model_type, tokenizer_path=str(tokenizer_path), delta_action_mask=make_bool_mask(5, -1)
    )
    group = make_pipeline(config, two_embodiments)
    out = group.inputs(_sample(np.random.default_rng(0)))
    token_len = 200 if model_type == "pi05" else 48
    assert {k: tuple(v.shape) for k, v in out["image"].items()} == {
        "base_0_rgb": (3, 224, 224),
        "left_wrist_0_rgb": (3, 224, 224),
        "right_wrist_0_rgb": (3, 224, 224),
    }
    assert [bool(m) for m in out["image_mask"].values()] == [True, True, False]
    assert out["state"].shape == (32,) and out["state"].dtype == torch.float32
    assert out["actions"].shape == (50, 32) and out["actions"].dtype == torch.float32
    assert out["action_dim_mask"].tolist() == [True] * 6 + [False] * 26
    assert out["tokenized_prompt"].shape == (token_len,) and out["tokenized_prompt_mask"].shape == (
        token_len,
    )
    expected_mode = "quantile" if model_type == "pi05" else "zscore"
    assert next(t for t in group.inputs.transforms if isinstance(t, Normalize)).mode == expected_mode


def test_output_pipeline_recovers_absolute_actions(tokenizer_path, two_embodiments):
    config = TransformsConfig(
        model_type="pi05", tokenizer_path=str(tokenizer_path), delta_action_mask=make_bool_mask(5, -1)
    )
    group = make_pipeline(config, two_embodiments)
    sample = _sample(np.random.default_rng(1))
    model_sample = group.inputs(sample)
    # As at serving: the model's (padded, normalized) actions with the robot's raw state and embodiment.
    robot = group.outputs(
        {"actions": model_sample["actions"], "state": sample["state"], "embodiment": "so100_6d"}
    )
    torch.testing.assert_close(robot["actions"][:, :6], sample["actions"], atol=1e-5, rtol=0)


def test_group_round_trips_through_json_and_rebuilds_identically(tmp_path, tokenizer_path, two_embodiments):
    config = TransformsConfig(
        model_type="pi05",
        tokenizer_path=str(tokenizer_path),
        delta_action_mask=make_bool_mask(5, -1),
        clip_quantiles=True,
    )
    group = make_pipeline(config, two_embodiments)
    path = group.save(tmp_path)
    as_json = json.loads(path.read_text())
    assert [c["type"] for c in as_json["inputs"]] == [
        "delta_actions",
        "normalize",
        "resize_images",
        "camera_slots",
        "tokenize_prompt",
        "pad_state_actions",
    ]
    assert [c["type"] for c in as_json["outputs"]] == ["unnormalize", "absolute_actions"]
    rebuilt = TransformGroup.load(tmp_path)
    assert rebuilt == group
    assert rebuilt.to_config() == group.to_config()
    _assert_same(
        rebuilt.inputs(_sample(np.random.default_rng(2))), group.inputs(_sample(np.random.default_rng(2)))
    )


def test_group_pickles_for_dataloader_workers(tokenizer_path, two_embodiments):
    group = make_pipeline(
        TransformsConfig(model_type="pi0", tokenizer_path=str(tokenizer_path)), two_embodiments
    )
    clone = pickle.loads(pickle.dumps(group))
    _assert_same(
        clone.inputs(_sample(np.random.default_rng(3))), group.inputs(_sample(np.random.default_rng(3)))
    )


def test_pi05_prompt_carries_the_padded_state(tokenizer_path, two_embodiments):
    config = TransformsConfig(model_type="pi05", tokenizer_path=str(tokenizer_path))
    out = make_pipeline(config, two_embodiments).inputs(_sample(np.random.default_rng(5)))
    n = int(out["tokenized_prompt_mask"].sum())
    text = load_sentencepiece(str(tokenizer_path)).DecodeIds(out["tokenized_prompt"][1:n].tolist())
    state_text = text.split("State: ")[1].split(";")[0]
    assert len(state_text.split(" ")) == 32 and state_text.endswith(" 128" * 26)


@register_transform("test_add_one")
@dataclass(frozen=True)
class AddOne(Transform):
    """Adds 1 to ``sample[key]``: a minimal registered transform."""

    key: str = "x"

    def __call__(self, sample):
        return {**sample, self.key: sample[self.key] + 1}


def test_nested_pipelines_and_push_order():
    inner = Pipeline((AddOne(), AddOne()))
    outer = Pipeline((inner, AddOne("y")))
    assert outer({"x": 0, "y": 10}) == {"x": 2, "y": 11}
    rebuilt = transform_from_config(json.loads(json.dumps(outer.to_config())))
    assert rebuilt == outer
    group = TransformGroup().push([AddOne("a")], [AddOne("b")]).push([AddOne("c")], [AddOne("d")])
    assert [t.key for t in group.inputs.transforms] == ["a", "c"]
    assert [t.key for t in group.outputs.transforms] == ["d", "b"]


def test_registry_and_config_errors(tmp_path):
    with pytest.raises(ValueError, match=r"Unknown transform type 'warp'.*registered types"):
        transform_from_config({"type": "warp"})
    with pytest.raises(ValueError, match="'type' field"):
        transform_from_config({"height": 3})
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['size'\]"):
        transform_from_config({"type": "resize_images", "size": 3})
    with pytest.raises(ValueError, match="already registered"):
        register_transform("normalize")(type("Other", (Transform,), {}))
    with pytest.raises(FileNotFoundError, match="transforms.json"):
        TransformGroup.load(tmp_path)
    (tmp_path / "transforms.json").write_text(json.dumps({"inputs": []}))
    with pytest.raises(ValueError, match=r"transforms\.json.*lacks \['outputs'\]"):
        TransformGroup.load(tmp_path)


def test_config_validation():
    with pytest.raises(ValueError, match="model_type"):
        TransformsConfig(model_type="pi1", tokenizer_path="x")
    with pytest.raises(ValueError, match="tokenizer_path is empty"):
        TransformsConfig()
