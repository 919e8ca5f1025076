"""Fixtures of the transform tests: a tiny SentencePiece tokenizer and stats of two embodiments."""

from __future__ import annotations

from pathlib import Path

import pytest

from depi.transforms.norm_stats import NormStats
from tests.helpers.norm_stats import make_stats
from tests.helpers.tokenizer import make_tiny_sentencepiece


@pytest.fixture(scope="session")
def tokenizer_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_sentencepiece(tmp_path_factory.mktemp("tokenizer") / "tokenizer.model")


@pytest.fixture
def two_embodiments() -> dict[str, dict[str, NormStats]]:
    return {
        "so100_6d": {"state": make_stats(6, 0), "actions": make_stats(6, 1)},
        "aloha_14d": {"state": make_stats(14, 2), "actions": make_stats(14, 3)},
    }
