"""Train a small SentencePiece tokenizer laid out like PaliGemma's, for runs without the real one.

PaliGemma's tokenizer (257,152 pieces) cannot be downloaded here. The demo run and the tests use a small model
trained on the prompts they will see, with PaliGemma's special-token ids (pad 0, eos 1, bos 2, unk 3), Gemma's
normalization (identity, no dummy prefix, whitespace kept) and byte fallback, so any text still encodes.
A policy trained with it must be served with the same file (it is recorded in the checkpoint's transforms).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import sentencepiece

_BASE_WORDS = (
    "pick place the red green blue cube block bowl plate cup drawer open close put into onto on in left right "
    "top bottom arm gripper move push pull stack towel fold lift lower grasp release reach hand over transfer "
    "task state action robot table kitchen sink"
).split(" ")


def train_sentencepiece(path: str | Path, texts: Iterable[str] = (), vocab_size: int = 400) -> Path:
    """Train a byte-fallback BPE SentencePiece model on ``texts`` and write it atomically to ``path``.

    The corpus is ``texts`` plus prompts in openpi's pi0.5 layout (``Task: ..., State: <ints 0..255>;``) over
    a small fixed word list, so the pieces cover the digits and separators of the discretized-state prompt.
    Training is deterministic for the same inputs and takes well under a second.

    Args:
        path: output ``.model`` file.
        texts: task strings the model will be asked to encode.
        vocab_size: number of pieces; must exceed the 256 byte pieces plus the specials and characters
            (at least 300 for the built-in corpus).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        RuntimeError: SentencePiece refused the settings (e.g. ``vocab_size`` too small for the corpus);
            the message is SentencePiece's.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [t.strip() for t in texts if t.strip()]
    for i, word in enumerate(_BASE_WORDS):
        other = _BASE_WORDS[(i * 7 + 3) % len(_BASE_WORDS)]
        state = " ".join(str((i * 37 + k * 11) % 256) for k in range(8))
        lines.append(f"Task: {word} the {other}, State: {state};")
        lines.append("Action: ")
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        corpus = Path(tmp) / "corpus.txt"
        corpus.write_text("\n".join(lines * 4) + "\n")
        prefix = Path(tmp) / "spm"
        sentencepiece.SentencePieceTrainer.train(
            input=str(corpus),
            model_prefix=str(prefix),
            vocab_size=vocab_size,
            model_type="bpe",
            byte_fallback=True,
            character_coverage=1.0,
            normalization_rule_name="identity",
            remove_extra_whitespaces=False,
            add_dummy_prefix=False,
            pad_id=0,
            eos_id=1,
            bos_id=2,
            unk_id=3,
            minloglevel=2,
            num_threads=1,
        )
        os.replace(prefix.with_suffix(".model"), path)
    return path
