"""Parity with lerobot's PI0Policy / PI05Policy at a small size (interop).

Reference procedure: ``lerobot_side/pi0_reference.py`` runs in lerobot's Python 3.12 env (``.venv-lerobot``):
it builds lerobot's policy with small Gemma / SigLIP sizes from a seed, saves it with lerobot's
``save_pretrained``, and computes the elementwise flow-matching loss and sampled actions on inputs this test
wrote (images, prompt, state, actions, noise, time). depi then loads lerobot's checkpoint with its lerobot
loader (``load_weights(layout="lerobot", strict=True)``) and must reproduce both within 1e-4 in float32.
Set ``DEPI_REQUIRE_LEROBOT=1`` to make a missing lerobot env a failure instead of a skip.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from depi.constants import (
    ACTION_IS_PAD,
    ACTIONS,
    IMAGE,
    IMAGE_MASK,
    STATE,
    TOKENIZED_PROMPT,
    TOKENIZED_PROMPT_MASK,
)
from depi.policies.pi0 import GemmaConfig, PI0Policy, SiglipConfig, load_weights, make_config

REPO = Path(__file__).resolve().parents[3]
LEROBOT_PYTHON = REPO / ".venv-lerobot" / "bin" / "python"
SCRIPT = Path(__file__).resolve().parents[1] / "lerobot_side" / "pi0_reference.py"

pytestmark = pytest.mark.interop


def _lerobot_python() -> Path:
    if not LEROBOT_PYTHON.exists():
        if os.environ.get("DEPI_REQUIRE_LEROBOT") == "1":
            pytest.fail(
                f"DEPI_REQUIRE_LEROBOT=1 but {LEROBOT_PYTHON} does not exist; create the lerobot env."
            )
        pytest.skip(
            f"lerobot env not found at {LEROBOT_PYTHON} (Python 3.12 + lerobot 0.6); parity not checked."
        )
    return LEROBOT_PYTHON


@pytest.mark.parametrize("variant", ["pi0", "pi05"])
def test_matches_lerobot(variant: str, tmp_path: Path, make_batch) -> None:
    python = _lerobot_python()
    gemma = {"depth": 2, "num_heads": 8, "num_kv_heads": 1, "head_dim": 16}
    vlm, expert = {"width": 32, "mlp_dim": 64, **gemma}, {"width": 24, "mlp_dim": 48, **gemma}
    vision = {"width": 32, "depth": 2, "mlp_dim": 64, "num_heads": 2}
    horizon, action_dim, state_dim, steps = 6, 7, 8, 3
    config = make_config(
        "tiny" if variant == "pi0" else "tiny_pi05",
        vlm=GemmaConfig(**vlm),
        expert=GemmaConfig(**expert),
        vision=SiglipConfig(**vision),
        action_horizon=horizon,
        num_steps=steps,
    )
    batch = make_batch(config, batch_size=2, seed=3, real_action_dims=action_dim)
    batch[ACTION_IS_PAD][:] = False  # lerobot's loss does not mask padded steps
    batch[STATE][:, state_dim:] = 0.0
    g = torch.Generator().manual_seed(4)
    noise = torch.randn(2, horizon, 32, generator=g)
    time = torch.tensor([0.3, 0.8])
    cams = list(batch[IMAGE])
    inputs = {
        **{f"image.{i}": batch[IMAGE][c].float() / 255.0 for i, c in enumerate(cams)},
        **{f"image_mask.{i}": batch[IMAGE_MASK][c] for i, c in enumerate(cams)},
        "tokens": batch[TOKENIZED_PROMPT],
        "token_mask": batch[TOKENIZED_PROMPT_MASK],
        "state": batch[STATE],
        "actions": batch[ACTIONS],
        "noise": noise,
        "time": time,
    }
    save_file({k: v.contiguous() for k, v in inputs.items()}, str(tmp_path / "inputs.safetensors"))
    spec = {
        "variant": variant,
        "out_dir": str(tmp_path),
        "seed": 0,
        "vlm": vlm,
        "expert": expert,
        "vision": vision,
        "action_horizon": horizon,
        "state_dim": state_dim,
        "action_dim": action_dim,
        "num_steps": steps,
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    run = subprocess.run(
        [str(python), str(SCRIPT), str(tmp_path / "spec.json")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, f"lerobot reference failed:\n{run.stderr[-4000:]}"
    ref = load_file(str(tmp_path / "outputs.safetensors"))

    policy = PI0Policy(config).eval()
    report = load_weights(policy, tmp_path / "checkpoint", layout="lerobot", strict=True)
    assert report.ok and report.loaded
    # lerobot reads images as float in [0, 1]; give depi the same floats.
    batch[IMAGE] = {c: inputs[f"image.{i}"] for i, c in enumerate(cams)}
    loss, _ = policy.compute_loss(batch, noise=noise, time=time)
    ref_loss = ref["losses"][:, :, :action_dim].mean()
    torch.testing.assert_close(loss, ref_loss, atol=1e-4, rtol=1e-4)
    actions = policy.sample_actions(batch, noise=noise)
    torch.testing.assert_close(actions, ref["actions"], atol=1e-4, rtol=1e-4)
