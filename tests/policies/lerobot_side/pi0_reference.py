"""Reference values from lerobot's PI0Policy / PI05Policy at a small size (run with lerobot's Python 3.12 env).

Usage: python pi0_reference.py SPEC.json

SPEC.json: {"variant": "pi0" | "pi05", "out_dir": str, "seed": int, "vlm": {width, depth, mlp_dim, num_heads,
num_kv_heads, head_dim}, "expert": {...}, "vision": {width, depth, mlp_dim, num_heads}, "action_horizon": int,
"state_dim": int, "action_dim": int, "num_steps": int}. The inputs are read from <out_dir>/inputs.safetensors
(images float [0, 1] per camera "image.<i>" (B, 3, 224, 224), "image_mask.<i>" bool (B,), "tokens", "token_mask",
"state" (B, 32), "actions" (B, H, 32), "noise" (B, H, 32), "time" (B,)).

Writes <out_dir>/checkpoint (lerobot's save_pretrained: model.safetensors + config.json) and
<out_dir>/outputs.safetensors ("losses" (B, H, 32) elementwise squared error of lerobot's model.forward,
"actions" (B, H, 32) from model.sample_actions with the given noise).

lerobot hard-codes the Gemma 2B / 300M sizes, the vision tower size and the projector width; to build a small
model this script substitutes two names in lerobot's modeling module before building the policy:
``get_gemma_config`` (returns the small sizes from the spec) and the PaliGemma class (shrinks the SigLIP config and
sets the projector width to the language model's before building). The model code itself runs unchanged.
"""

import json
import sys
from pathlib import Path

import torch
from lerobot.configs.types import FeatureType, PolicyFeature
from safetensors.torch import load_file, save_file


def build_policy(spec: dict, num_cameras: int):
    """lerobot's PI0Policy / PI05Policy at the spec's sizes on CPU, seeded, in eval mode.

    The spec's optional ``dtype`` ("float32" default, or "bfloat16": lerobot's own bf16 policy, which keeps the vision
    tower, projector and norms in float32) is passed to lerobot's config.
    """
    pi05 = spec["variant"] == "pi05"
    if pi05:
        from lerobot.policies.pi05 import modeling_pi05 as modeling
        from lerobot.policies.pi05.configuration_pi05 import PI05Config as Config
        from lerobot.policies.pi05.modeling_pi05 import PI05Policy as Policy
    else:
        from lerobot.policies.pi0 import modeling_pi0 as modeling
        from lerobot.policies.pi0.configuration_pi0 import PI0Config as Config
        from lerobot.policies.pi0.modeling_pi0 import PI0Policy as Policy

    sizes = {"gemma_2b": spec["vlm"], "gemma_300m": spec["expert"]}
    modeling.get_gemma_config = lambda variant: modeling.GemmaConfig(**sizes[variant])
    paligemma_cls = modeling.PaliGemmaForConditionalGenerationWithPiGemma

    def small_paligemma(config):
        vision = spec["vision"]
        config.vision_config.hidden_size = vision["width"]
        config.vision_config.num_hidden_layers = vision["depth"]
        config.vision_config.intermediate_size = vision["mlp_dim"]
        config.vision_config.num_attention_heads = vision["num_heads"]
        config.vision_config.projection_dim = config.text_config.hidden_size
        return paligemma_cls(config=config)

    modeling.PaliGemmaForConditionalGenerationWithPiGemma = small_paligemma
    image_features = {
        f"observation.images.cam{i}": PolicyFeature(type=FeatureType.VISUAL, shape=(3, 224, 224))
        for i in range(num_cameras)
    }
    config = Config(
        device="cpu",
        dtype=spec.get("dtype", "float32"),
        chunk_size=spec["action_horizon"],
        n_action_steps=spec["action_horizon"],
        num_inference_steps=spec["num_steps"],
        input_features={
            **image_features,
            "observation.state": PolicyFeature(type=FeatureType.STATE, shape=(spec["state_dim"],)),
        },
        output_features={"action": PolicyFeature(type=FeatureType.ACTION, shape=(spec["action_dim"],))},
    )
    torch.manual_seed(spec["seed"])
    return Policy(config).eval()


def model_inputs(inputs: dict, pi05: bool) -> tuple[tuple, tuple]:
    """(images, masks, tokens, token_mask) and the state tuple (empty for pi0.5) for lerobot's model calls."""
    num_cams = len([k for k in inputs if k.startswith("image.")])
    images = [inputs[f"image.{i}"] * 2.0 - 1.0 for i in range(num_cams)]
    masks = [inputs[f"image_mask.{i}"] for i in range(num_cams)]
    return (images, masks, inputs["tokens"], inputs["token_mask"]), (() if pi05 else (inputs["state"],))


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    out = Path(spec["out_dir"])
    pi05 = spec["variant"] == "pi05"
    inputs = load_file(str(out / "inputs.safetensors"))
    policy = build_policy(spec, len([k for k in inputs if k.startswith("image.")]))
    policy.save_pretrained(out / "checkpoint")
    common, state = model_inputs(inputs, pi05)
    model = policy.model
    with torch.no_grad():
        losses = model.forward(*common, *state, inputs["actions"], inputs["noise"], inputs["time"])
        actions = model.sample_actions(*common, *state, noise=inputs["noise"].clone())
    save_file(
        {"losses": losses.contiguous(), "actions": actions.contiguous()}, str(out / "outputs.safetensors")
    )


if __name__ == "__main__":
    main(sys.argv[1])
