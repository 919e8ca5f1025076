"""Prompt tokenization in the pi0 and pi0.5 formats (openpi's PaligemmaTokenizer behaviour)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from depi.transforms.tokenize import (
    PaligemmaTokenizer,
    TokenizePrompt,
    clean_prompt,
    discretize_state,
    load_sentencepiece,
    pi05_prompt,
)


def test_pi0_tokens_are_bos_text_newline_then_padding(tokenizer_path):
    sp = load_sentencepiece(str(tokenizer_path))
    tokens, mask = PaligemmaTokenizer(tokenizer_path, max_len=48).tokenize("  pick_the red\ncube ")
    expected = [sp.bos_id(), *sp.EncodeAsIds("pick the red cube"), *sp.EncodeAsIds("\n")]
    assert tokens.shape == (48,) and tokens.dtype == np.int64 and mask.dtype == bool
    assert tokens[: len(expected)].tolist() == expected
    assert mask.tolist() == [True] * len(expected) + [False] * (48 - len(expected))
    assert np.all(tokens[len(expected) :] == 0)


def test_clean_prompt_matches_openpi():
    assert clean_prompt("  put_the cup\nin the sink \n") == "put the cup in the sink"


def test_discretized_state_bins():
    state = np.array([-1.5, -1.0, -0.999, 0.0, 0.5, 0.999, 1.0, 2.0])
    assert discretize_state(state).tolist() == [-1, 0, 0, 128, 192, 255, 255, 255]
    assert discretize_state(torch.tensor([0.0])).tolist() == [128]


def test_pi05_prompt_text_and_tokens(tokenizer_path):
    state = np.array([-1.0, 0.0, 0.5], dtype=np.float32)
    text = pi05_prompt("stack_the blocks", state)
    assert text == "Task: stack the blocks, State: 0 128 192;\nAction: "
    sp = load_sentencepiece(str(tokenizer_path))
    tokens, mask = PaligemmaTokenizer(tokenizer_path, max_len=200).tokenize("stack_the blocks", state)
    n = int(mask.sum())
    assert tokens.shape == (200,) and mask[:n].all() and not mask[n:].any()
    assert tokens[:n].tolist() == [sp.bos_id(), *sp.EncodeAsIds(text)]
    assert sp.DecodeIds(tokens[1:n].tolist()) == text


def test_prompt_state_is_zero_padded_to_prompt_state_dim(tokenizer_path):
    sample = {"prompt": "lift the cup", "state": torch.tensor([-1.0, 0.5])}
    padded = TokenizePrompt(str(tokenizer_path), 200, discrete_state_input=True, prompt_state_dim=4)(sample)
    same = TokenizePrompt(str(tokenizer_path), 200, discrete_state_input=True)(
        {**sample, "state": torch.tensor([-1.0, 0.5, 0.0, 0.0])}
    )
    assert torch.equal(padded["tokenized_prompt"], same["tokenized_prompt"])
    sp = load_sentencepiece(str(tokenizer_path))
    n = int(padded["tokenized_prompt_mask"].sum())
    assert sp.DecodeIds(padded["tokenized_prompt"][1:n].tolist()).endswith("State: 0 192 128 128;\nAction: ")
    with pytest.raises(ValueError, match="more than prompt_state_dim=1"):
        TokenizePrompt(str(tokenizer_path), 200, discrete_state_input=True, prompt_state_dim=1)(sample)


def test_truncation_keeps_max_len_and_warns_once(tokenizer_path, caplog):
    tokenizer = PaligemmaTokenizer(tokenizer_path, max_len=8)
    with caplog.at_level(logging.WARNING, logger="depi.transforms.tokenize"):
        tokens, mask = tokenizer.tokenize("pick the red cube and place it on the green plate")
        tokenizer.tokenize("push the blue block into the open drawer")
    assert tokens.shape == (8,) and mask.all()
    assert tokens[0] == load_sentencepiece(str(tokenizer_path)).bos_id()
    warnings = [r for r in caplog.records if "truncated" in r.getMessage()]
    assert len(warnings) == 1 and "max_token_len=8" in warnings[0].getMessage()


def test_transform_outputs_torch_and_uses_state_for_pi05(tokenizer_path):
    sample = {"prompt": "fold the towel", "state": np.array([0.0, 1.0], dtype=np.float32)}
    pi0 = TokenizePrompt(str(tokenizer_path), max_token_len=48)(sample)
    pi05 = TokenizePrompt(str(tokenizer_path), max_token_len=200, discrete_state_input=True)(sample)
    assert pi0["tokenized_prompt"].dtype == torch.int64 and pi0["tokenized_prompt"].shape == (48,)
    assert pi0["tokenized_prompt_mask"].dtype == torch.bool
    assert pi05["tokenized_prompt"].shape == (200,)
    assert pi05["tokenized_prompt_mask"].sum() > pi0["tokenized_prompt_mask"].sum()
    assert pi0["prompt"] == "fold the towel" and "tokenized_prompt" not in sample


def test_transform_errors(tokenizer_path, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"Tokenizer model not found.*paligemma_tokenizer\.model"):
        TokenizePrompt(str(tmp_path / "missing.model"))
    bad = tmp_path / "bad.model"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a SentencePiece model"):
        TokenizePrompt(str(bad))
    with pytest.raises(KeyError, match="needs sample key 'prompt'"):
        TokenizePrompt(str(tokenizer_path))({"state": np.zeros(2)})
    with pytest.raises(KeyError, match="needs sample key 'state'"):
        TokenizePrompt(str(tokenizer_path), 200, discrete_state_input=True)({"prompt": "x"})
    with pytest.raises(TypeError, match="must be one str, found list"):
        TokenizePrompt(str(tokenizer_path))({"prompt": ["a", "b"]})
