"""Prefix forward parity with transformers' PaliGemmaForConditionalGeneration at a tiny random config.

transformers' model is saved with ``save_pretrained`` and loaded into depi with the PaliGemma loader; with every
prefix token visible to every other (``token_type_ids`` all 0, PaliGemma's prefix-LM) the next-token logits must
agree within 1e-4 in float32.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from depi.constants import BASE_CAMERA, IMAGE, IMAGE_MASK, TOKENIZED_PROMPT, TOKENIZED_PROMPT_MASK
from depi.policies.pi0 import GemmaConfig, PI0Policy, SiglipConfig, WeightLoadError, load_weights, make_config

transformers = pytest.importorskip("transformers")

VOCAB, IMAGE_TOKEN = 1000, 999


def _hf_model() -> torch.nn.Module:
    config = transformers.PaliGemmaConfig(
        text_config={
            "model_type": "gemma",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 8,
            "num_key_value_heads": 1,
            "head_dim": 16,
            "vocab_size": VOCAB,
            "hidden_activation": "gelu_pytorch_tanh",
        },
        vision_config={
            "model_type": "siglip_vision_model",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "patch_size": 14,
            "image_size": 224,
            "vision_use_head": False,
        },
        image_token_index=IMAGE_TOKEN,
        vocab_size=VOCAB,
        projection_dim=32,
    )
    torch.manual_seed(0)
    model = transformers.PaliGemmaForConditionalGeneration(config).eval()
    with torch.no_grad():  # Gemma initialises norm scales at zero; randomise them so (1 + w) is exercised.
        for name, param in model.named_parameters():
            if "norm" in name and param.ndim == 1:
                param.normal_(0.0, 0.1)
    return model


def _depi_config():
    return make_config(
        "tiny",
        vision=SiglipConfig(width=32, depth=2, mlp_dim=64, num_heads=2),
        vlm=GemmaConfig(
            width=32, depth=2, mlp_dim=64, num_heads=8, num_kv_heads=1, head_dim=16, vocab_size=VOCAB
        ),
        expert=GemmaConfig(width=16, depth=2, mlp_dim=32, num_heads=8, num_kv_heads=1, head_dim=16),
    )


def test_prefix_logits_match_transformers(tmp_path: Path) -> None:
    hf = _hf_model()
    hf.save_pretrained(tmp_path)
    policy = PI0Policy(_depi_config()).eval()
    report = load_weights(policy, tmp_path, layout="paligemma")
    assert not report.unexpected and not report.reinitialized
    assert all(k.startswith(("action_expert.", "action_", "state_proj.")) for k in report.missing)
    assert "language_model.embed_tokens.weight" in report.loaded

    g = torch.Generator().manual_seed(1)
    pixels = torch.rand(2, 3, 224, 224, generator=g)
    text = torch.randint(0, IMAGE_TOKEN, (2, 7), generator=g)
    num_image = 256
    input_ids = torch.cat([torch.full((2, num_image), IMAGE_TOKEN), text], dim=1)
    with torch.no_grad():
        ref = hf(
            input_ids=input_ids,
            pixel_values=pixels * 2 - 1,
            token_type_ids=torch.zeros_like(input_ids),
            attention_mask=torch.ones_like(input_ids),
        ).logits
    batch = {
        IMAGE: {BASE_CAMERA: pixels},
        IMAGE_MASK: {BASE_CAMERA: torch.ones(2, dtype=torch.bool)},
        TOKENIZED_PROMPT: text,
        TOKENIZED_PROMPT_MASK: torch.ones(2, 7, dtype=torch.bool),
    }
    logits = policy.language_logits(batch)
    assert logits.shape == ref.shape == (2, num_image + 7, VOCAB)
    torch.testing.assert_close(logits, ref.float(), atol=1e-4, rtol=1e-4)


def test_strict_paligemma_load_refuses_partial(tmp_path: Path) -> None:
    _hf_model().save_pretrained(tmp_path)
    policy = PI0Policy(_depi_config())
    before = policy.language_model.layers[0].self_attn.qkv_proj.weight.clone()
    with pytest.raises(WeightLoadError, match="missing"):
        load_weights(policy, tmp_path, layout="paligemma", strict=True)
    torch.testing.assert_close(policy.language_model.layers[0].self_attn.qkv_proj.weight, before)
