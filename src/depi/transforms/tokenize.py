"""Prompt tokenization with PaliGemma's SentencePiece tokenizer, in the pi0 and pi0.5 formats.

Reference behaviour: openpi ``models/tokenizer.py`` (``PaligemmaTokenizer``) and lerobot's pi0.5 processor.

* pi0: ``BOS + encode(cleaned prompt) + encode("\\n")``, padded / truncated to ``max_len`` (48).
* pi0.5: ``BOS + encode("Task: {cleaned prompt}, State: {discretized state};\\nAction: ")``, ``max_len`` 200.
  The state (already normalized to [-1, 1]) is discretized into 256 bins:
  ``np.digitize(state, np.linspace(-1, 1, 257)[:-1]) - 1`` (values below -1 give -1, as in openpi).

The cleaned prompt is ``prompt.strip()`` with ``_`` and newlines replaced by spaces. Padding tokens are 0 with
mask False. The tokenizer is read from a local ``.model`` file (PaliGemma's is ``paligemma_tokenizer.model``);
nothing is downloaded.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import sentencepiece
import torch

from depi.constants import PROMPT, STATE, TOKENIZED_PROMPT, TOKENIZED_PROMPT_MASK
from depi.transforms.base import Sample, Transform, register_transform, require

logger = logging.getLogger(__name__)

PI0_MAX_TOKEN_LEN = 48
PI05_MAX_TOKEN_LEN = 200
STATE_BINS = 256


@functools.lru_cache(maxsize=8)
def load_sentencepiece(path: str) -> sentencepiece.SentencePieceProcessor:
    """Load (once per process and path) a SentencePiece model from a local ``.model`` file.

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: The file is not a SentencePiece model.
    """
    model = Path(path)
    if not model.is_file():
        raise FileNotFoundError(
            f"Tokenizer model not found: {model}. pi0 / pi0.5 use PaliGemma's SentencePiece tokenizer "
            "(`paligemma_tokenizer.model`, from the PaliGemma checkpoint or big_vision); pass its local path "
            "as tokenizer_path."
        )
    processor = sentencepiece.SentencePieceProcessor()
    try:
        processor.Load(str(model))
    except (RuntimeError, OSError) as err:
        raise ValueError(f"{model}: not a SentencePiece model ({err}).") from err
    return processor


def clean_prompt(prompt: str) -> str:
    """openpi's prompt cleaning: strip, then ``_`` and ``\\n`` become spaces."""
    return prompt.strip().replace("_", " ").replace("\n", " ")


def discretize_state(state: np.ndarray | torch.Tensor) -> np.ndarray:
    """Normalized state in [-1, 1] -> bin indices in 0..255 (-1 below -1), openpi's pi0.5 convention.

    Args:
        state: float (D,), normalized to [-1, 1] (quantile normalization).

    Returns:
        int64 (D,) ``np.digitize(state, np.linspace(-1, 1, 257)[:-1]) - 1``.
    """
    values = state.detach().cpu().numpy() if isinstance(state, torch.Tensor) else np.asarray(state)
    return np.digitize(values, bins=np.linspace(-1.0, 1.0, STATE_BINS + 1)[:-1]).astype(np.int64) - 1


def pi05_prompt(prompt: str, state: np.ndarray | torch.Tensor) -> str:
    """The pi0.5 text: ``"Task: {cleaned prompt}, State: {bins separated by spaces};\\nAction: "``."""
    state_str = " ".join(str(b) for b in discretize_state(state))
    return f"Task: {clean_prompt(prompt)}, State: {state_str};\nAction: "


@dataclass
class PaligemmaTokenizer:
    """pi0 / pi0.5 prompt tokenizer over a local SentencePiece model.

    Attributes:
        path: Local path of the SentencePiece ``.model`` file.
        max_len: Token sequence length after padding / truncation (48 for pi0, 200 for pi0.5).
    """

    path: str
    max_len: int = PI0_MAX_TOKEN_LEN
    _warned: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_len < 2:
            raise ValueError(f"max_len must be at least 2 tokens, found {self.max_len}.")
        self.path = str(self.path)
        load_sentencepiece(self.path)

    @property
    def processor(self) -> sentencepiece.SentencePieceProcessor:
        """The loaded SentencePiece processor (cached per process)."""
        return load_sentencepiece(self.path)

    def tokenize(
        self, prompt: str, state: np.ndarray | torch.Tensor | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Token ids and mask of one prompt.

        Args:
            prompt: Task text.
            state: ``None`` for the pi0 format; the normalized state float (D,) for the pi0.5 format.

        Returns:
            ``(tokens, mask)``: int64 (max_len,) and bool (max_len,), True on real tokens. Longer sequences
            are truncated to ``max_len`` with one warning per tokenizer.
        """
        sp = self.processor
        if state is None:
            ids = [sp.bos_id(), *sp.EncodeAsIds(clean_prompt(prompt)), *sp.EncodeAsIds("\n")]
        else:
            ids = [sp.bos_id(), *sp.EncodeAsIds(pi05_prompt(prompt, state))]
        if len(ids) > self.max_len:
            if not self._warned:
                logger.warning(
                    "Prompt of %d tokens exceeds max_token_len=%d and is truncated (prompt: %.80r); raise "
                    "max_token_len in the transforms config if this is frequent. Further truncations are "
                    "not reported.",
                    len(ids),
                    self.max_len,
                    prompt,
                )
                self._warned = True
            ids = ids[: self.max_len]
        n = len(ids)
        tokens = np.zeros(self.max_len, dtype=np.int64)
        tokens[:n] = ids
        mask = np.zeros(self.max_len, dtype=bool)
        mask[:n] = True
        return tokens, mask


@register_transform("tokenize_prompt")
@dataclass(frozen=True)
class TokenizePrompt(Transform):
    """Tokenize the sample's ``prompt`` (pi0 format, or pi0.5 format with the discretized state).

    Sample keys: reads ``prompt`` (str) and, with ``discrete_state_input``, ``state`` float (D,) normalized to
    [-1, 1]; writes ``tokenized_prompt`` int64 (max_token_len,) and ``tokenized_prompt_mask`` bool
    (max_token_len,) as torch tensors. ``prompt`` is kept.

    Attributes:
        tokenizer_path: Local SentencePiece model file.
        max_token_len: 48 for pi0, 200 for pi0.5.
        discrete_state_input: True for pi0.5 (state in the prompt).
        prompt_state_dim: With ``discrete_state_input``, zero-pad the state to this many dims before
            discretizing (lerobot's pi0.5 processor pads to ``max_state_dim`` = 32, so padded dims read
            ``128``); ``None`` discretizes the state as it arrives (openpi: the robot's real D dims).

    Raises:
        FileNotFoundError: ``tokenizer_path`` is missing (at construction).
        KeyError: ``prompt`` (or ``state`` for pi0.5) is missing.
        TypeError: ``prompt`` is not a string.
    """

    file_fields: ClassVar[tuple[str, ...]] = ("tokenizer_path",)

    tokenizer_path: str
    max_token_len: int = PI0_MAX_TOKEN_LEN
    discrete_state_input: bool = False
    prompt_state_dim: int | None = None
    _tokenizer: PaligemmaTokenizer = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tokenizer_path", str(self.tokenizer_path))
        object.__setattr__(self, "_tokenizer", PaligemmaTokenizer(self.tokenizer_path, self.max_token_len))

    def to_config(self) -> dict[str, Any]:
        return {
            "type": self.transform_type,
            "tokenizer_path": self.tokenizer_path,
            "max_token_len": self.max_token_len,
            "discrete_state_input": self.discrete_state_input,
            "prompt_state_dim": self.prompt_state_dim,
        }

    def __call__(self, sample: Sample) -> Sample:
        prompt = require(sample, PROMPT, "TokenizePrompt")
        if isinstance(prompt, np.ndarray) and prompt.ndim == 0:
            prompt = prompt.item()
        if not isinstance(prompt, str):
            raise TypeError(
                f"TokenizePrompt: sample['{PROMPT}'] must be one str, found {type(prompt).__name__}; "
                "apply the transforms per sample, before collation."
            )
        state = None
        if self.discrete_state_input:
            state = np.asarray(torch.as_tensor(require(sample, STATE, "TokenizePrompt (pi0.5)")).cpu())
            if self.prompt_state_dim is not None:
                if state.shape[-1] > self.prompt_state_dim:
                    raise ValueError(
                        f"TokenizePrompt: sample['{STATE}'] has {state.shape[-1]} dims, more than "
                        f"prompt_state_dim={self.prompt_state_dim}."
                    )
                state = np.pad(state, (0, self.prompt_state_dim - state.shape[-1]))
        tokens, mask = self._tokenizer.tokenize(prompt, state)
        return {
            **sample,
            TOKENIZED_PROMPT: torch.from_numpy(tokens),
            TOKENIZED_PROMPT_MASK: torch.from_numpy(mask),
        }
