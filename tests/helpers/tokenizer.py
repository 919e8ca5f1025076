"""A tiny SentencePiece model standing in for PaliGemma's tokenizer in tests (nothing is downloaded)."""

from __future__ import annotations

from pathlib import Path

import sentencepiece

_TEXT = (
    "pick place the red green blue cube block bowl plate cup drawer open close put into onto on in "
    "left right top bottom arm gripper move push pull stack towel fold lift lower grasp release "
    "task state action robot table kitchen sink"
)
_WORDS = _TEXT.split(" ")


def make_tiny_sentencepiece(path: str | Path, vocab_size: int = 300) -> Path:
    """Train a small byte-fallback SentencePiece model and write it to ``path`` (a ``.model`` file).

    The model has BOS (id 2) and EOS (id 1) like PaliGemma's (pad 0, unk 3), keeps whitespace and newlines
    as written (identity normalization, no dummy prefix, as Gemma's), and encodes any text thanks to byte fallback. Training on the
    generated corpus takes well under a second.

    Args:
        path: Output file, conventionally ``<dir>/tokenizer.model``.
        vocab_size: Vocabulary size; must exceed the 256 byte pieces plus the specials and characters.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    corpus = path.with_suffix(".corpus.txt")
    lines = []
    for i, word in enumerate(_WORDS):
        other = _WORDS[(i * 7 + 3) % len(_WORDS)]
        state = " ".join(str((i * 37 + k * 11) % 256) for k in range(8))
        lines.append(f"Task: {word} the {other}, State: {state};")
        lines.append("Action: ")
    corpus.write_text("\n".join(lines * 4) + "\n")
    sentencepiece.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(path.with_suffix("")),
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
    )
    corpus.unlink()
    trained = path.with_suffix(".model")
    if trained != path:
        trained.replace(path)
    path.with_suffix(".vocab").unlink(missing_ok=True)
    return path
