"""Where annotation replies come from: an OpenAI-compatible chat endpoint or a local transformers model.

* ``openai``: any server speaking ``POST <api_base>/chat/completions`` with image parts as data URLs —
  vLLM (``vllm serve Qwen/Qwen2.5-VL-7B-Instruct``), llama.cpp's ``llama-server``, Ollama (``/v1``), or a hosted
  API — through the ``openai`` client with its own retries off (:mod:`depi.annotate.run` retries, bounded).
* ``transformers``: a Qwen2-VL / Qwen2.5-VL checkpoint (``AutoModelForImageTextToText``) on this machine's GPU
  (or CPU); the image tokens are expanded as Qwen2-VL's processor does (one ``<|image_pad|>`` per merged
  patch: ``prod(image_grid_thw) / merge_size**2``), which works without torchvision.

Both expose ``complete(messages) -> str`` over the OpenAI message format built by
:func:`depi.annotate.prompt.build_messages`. Errors are sorted by :func:`classify`.
"""

from __future__ import annotations

import base64
import io
import os
import threading
from dataclasses import dataclass

from PIL import Image

from depi.annotate.prompt import MalformedReply
from depi.errors import DepiError

DEFAULT_MODEL = "Qwen/Qwen2.5-VL-7B-Instruct"


@dataclass
class VLMConfig:
    """The model behind the annotations (``--vlm.*``).

    Attributes:
        backend: ``openai`` (an OpenAI-compatible endpoint) or ``transformers`` (a local checkpoint).
        api_base: the endpoint's base URL, e.g. ``http://127.0.0.1:8000/v1`` (vLLM), ``http://127.0.0.1:11434/v1``
            (Ollama).
        model: model name sent to the endpoint, or the checkpoint (Hub id or folder) for ``transformers``.
        api_key: endpoint key (default ``$OPENAI_API_KEY``, else none).
        timeout_s: seconds per request before it counts as a timeout.
        concurrency: requests in flight (``openai``); the local model runs one at a time.
        max_retries: retries of a malformed reply, timeout, 429 or 5xx before the episode is recorded as failed.
        max_tokens: reply length cap, tokens. ``temperature``: sampling temperature (0: greedy).
        json_mode: ask the endpoint for ``response_format={"type": "json_object"}`` (vLLM, OpenAI support it).
        device: ``transformers`` device (``auto``: CUDA when present). ``dtype``: ``auto``, ``bfloat16``, ``float32``.
    """

    backend: str = "openai"
    api_base: str = "http://127.0.0.1:8000/v1"
    model: str = DEFAULT_MODEL
    api_key: str | None = None
    timeout_s: float = 120.0
    concurrency: int = 8
    max_retries: int = 3
    max_tokens: int = 256
    temperature: float = 0.0
    json_mode: bool = False
    device: str = "auto"
    dtype: str = "auto"

    def __post_init__(self) -> None:
        if self.backend not in ("openai", "transformers"):
            raise ValueError(f"--vlm.backend={self.backend}: expected 'openai' or 'transformers'.")
        if self.concurrency < 1 or self.max_retries < 0 or self.timeout_s <= 0:
            raise ValueError("--vlm.concurrency must be >= 1, --vlm.max_retries >= 0, --vlm.timeout_s > 0.")


class OpenAIBackend:
    """Chat completions through the ``openai`` client (``max_retries=0``)."""

    name = "openai"

    def __init__(self, cfg: VLMConfig) -> None:
        from openai import OpenAI

        self.cfg = cfg
        key = cfg.api_key or os.environ.get("OPENAI_API_KEY") or "none"
        self.client = OpenAI(base_url=cfg.api_base, api_key=key, timeout=cfg.timeout_s, max_retries=0)

    def complete(self, messages: list[dict]) -> str:
        extra = {"response_format": {"type": "json_object"}} if self.cfg.json_mode else {}
        response = self.client.chat.completions.create(
            model=self.cfg.model, messages=messages, max_tokens=self.cfg.max_tokens,
            temperature=self.cfg.temperature, **extra,
        )  # fmt: skip
        if not response.choices:
            raise MalformedReply("the endpoint returned no choices", "")
        return response.choices[0].message.content or ""


def _image(url: str) -> Image.Image:
    if not url.startswith("data:image/"):
        raise ValueError(f"only data: URLs are sent to the local model, got {url[:40]!r}")
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")


class TransformersBackend:
    """A local Qwen2-VL / Qwen2.5-VL; one generation at a time (a lock), greedy unless ``temperature`` > 0."""

    name = "transformers"

    def __init__(self, cfg: VLMConfig) -> None:
        import torch
        from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer

        self.cfg = cfg
        device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = {"auto": "auto", "bfloat16": torch.bfloat16, "float32": torch.float32}[cfg.dtype]
        self.tokenizer = AutoTokenizer.from_pretrained(cfg.model)
        self.image_processor = AutoImageProcessor.from_pretrained(cfg.model)
        self.model = AutoModelForImageTextToText.from_pretrained(cfg.model, dtype=dtype).to(device).eval()
        self.device = device
        self._lock = threading.Lock()

    def complete(self, messages: list[dict]) -> str:
        import torch

        conversation, images = [], []
        for message in messages:
            if isinstance(message["content"], str):
                conversation.append(message)
                continue
            parts = []
            for part in message["content"]:
                if part["type"] == "image_url":
                    images.append(_image(part["image_url"]["url"]))
                    parts.append({"type": "image"})
                else:
                    parts.append({"type": "text", "text": part["text"]})
            conversation.append({"role": message["role"], "content": parts})
        text = self.tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
        vision = self.image_processor(images=images, return_tensors="pt") if images else {}
        merge = getattr(self.image_processor, "merge_size", 2)
        for grid in vision.get("image_grid_thw", []):  # expand each placeholder as Qwen2-VL's processor does
            text = text.replace("<|image_pad|>", "<|placeholder|>" * (int(grid.prod()) // merge**2), 1)
        text = text.replace("<|placeholder|>", "<|image_pad|>")
        inputs = {**self.tokenizer(text, return_tensors="pt"), **vision}
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        sample = self.cfg.temperature > 0
        with self._lock, torch.inference_mode():
            out = self.model.generate(
                **inputs, max_new_tokens=self.cfg.max_tokens, do_sample=sample,
                **({"temperature": self.cfg.temperature} if sample else {}),
            )  # fmt: skip
        return self.tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


def make_backend(cfg: VLMConfig) -> OpenAIBackend | TransformersBackend:
    """The backend ``cfg.backend`` names."""
    return OpenAIBackend(cfg) if cfg.backend == "openai" else TransformersBackend(cfg)


def classify(error: BaseException) -> tuple[str, float | None]:
    """``("retry" | "fail" | "fatal", retry_after_s)`` for an error raised by ``complete``.

    retry: malformed reply, timeout, connection error, 429, 5xx. fatal (stops the run): bad key, no access, unknown
    model or endpoint path. fail: anything else (e.g. 400 for one request) — recorded for the episode.
    """
    import openai

    if isinstance(error, MalformedReply):
        return "retry", None
    if isinstance(error, (openai.APITimeoutError, openai.APIConnectionError, TimeoutError, ConnectionError)):
        return "retry", None
    if isinstance(error, openai.APIStatusError):
        after = error.response.headers.get("retry-after") if error.response is not None else None
        try:
            retry_after = float(after) if after is not None else None
        except ValueError:
            retry_after = None
        if error.status_code in (408, 429) or error.status_code >= 500:
            return "retry", retry_after
        if error.status_code in (401, 403, 404):
            return "fatal", None
    return "fail", None


def fatal_error(error: BaseException, cfg: VLMConfig) -> DepiError:
    """The one-line error for a run-stopping endpoint reply."""
    status = getattr(error, "status_code", "?")
    return DepiError(
        f"{cfg.api_base}: HTTP {status} for model {cfg.model!r} ({str(error).splitlines()[0]}); check --vlm.api_base, "
        "--vlm.model and --vlm.api_key"
    )
