"""A tiny SentencePiece model standing in for PaliGemma's tokenizer in tests (nothing is downloaded)."""

from __future__ import annotations

from pathlib import Path

from depi.transforms.tokenizer_train import train_sentencepiece


def make_tiny_sentencepiece(path: str | Path, vocab_size: int = 300) -> Path:
    """Write a small PaliGemma-like SentencePiece model to ``path`` (see :func:`train_sentencepiece`)."""
    return train_sentencepiece(path, vocab_size=vocab_size)
