"""The standard pi0 / pi0.5 transform pipeline, built from a small typed config.

Inputs (dataset sample or robot observation -> model), in openpi's order:
``DeltaActions`` (optional) -> ``Normalize`` -> ``ResizeImages`` -> ``CameraSlots`` -> ``TokenizePrompt``
-> ``PadStateActions``. Outputs (model -> robot): ``Unnormalize`` -> ``AbsoluteActions`` (optional).

The output pipeline reads the sample's ``embodiment`` and its unnormalized ``state``: pass the robot's
observation.state (raw, as the robot reported it) and the embodiment with the model's ``actions``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from depi.constants import ACTIONS, CAMERA_SLOTS, IMAGE_RESOLUTION, MAX_ACTION_DIM, MAX_STATE_DIM, STATE
from depi.transforms.actions import AbsoluteActions, DeltaActions
from depi.transforms.base import Transform, TransformGroup
from depi.transforms.image import CameraSlots, ResizeImages
from depi.transforms.norm_stats import NormStats
from depi.transforms.normalize import NORM_MODES, Normalize, Unnormalize
from depi.transforms.pad import PadStateActions
from depi.transforms.tokenize import PI0_MAX_TOKEN_LEN, PI05_MAX_TOKEN_LEN, TokenizePrompt

MODEL_TYPES = ("pi0", "pi05")


@dataclass
class TransformsConfig:
    """How a policy's samples are transformed.

    Attributes:
        model_type: ``"pi0"`` (state as a continuous input) or ``"pi05"`` (state discretized in the prompt).
        tokenizer_path: Local path of PaliGemma's SentencePiece ``.model`` file.
        norm_mode: ``"quantile"`` or ``"zscore"``; ``None`` picks openpi's default for the model type
            (pi0: z-score, pi0.5: quantile).
        clip_quantiles: Clip quantile-normalized values to [-1, 1].
        delta_action_mask: Per-dim True for actions made relative to the state (see ``make_bool_mask``);
            ``None`` keeps absolute actions.
        max_token_len: Prompt tokens; ``None`` gives 48 for pi0 and 200 for pi0.5.
        prompt_state_dim: pi0.5: dims of the discretized state in the prompt, zero-padded (lerobot's
            convention, 32); ``None`` writes the state's own dims (openpi's convention with unpadded states).
        image_height: Model image height, pixels.
        image_width: Model image width, pixels.
        camera_slots: Model camera slots, in model order.
        state_dim: Padded state dim.
        action_dim: Padded action dim.
        default_embodiment: Stats group for samples without an ``embodiment`` key (serving one robot).
    """

    model_type: str = "pi0"
    tokenizer_path: str = ""
    norm_mode: str | None = None
    clip_quantiles: bool = False
    delta_action_mask: tuple[bool, ...] | None = None
    max_token_len: int | None = None
    prompt_state_dim: int | None = MAX_STATE_DIM
    image_height: int = IMAGE_RESOLUTION[0]
    image_width: int = IMAGE_RESOLUTION[1]
    camera_slots: tuple[str, ...] = CAMERA_SLOTS
    state_dim: int = MAX_STATE_DIM
    action_dim: int = MAX_ACTION_DIM
    default_embodiment: str | None = None

    def __post_init__(self) -> None:
        if self.model_type not in MODEL_TYPES:
            raise ValueError(f"model_type must be one of {MODEL_TYPES}, found '{self.model_type}'.")
        if self.norm_mode is not None and self.norm_mode not in NORM_MODES:
            raise ValueError(f"norm_mode must be one of {NORM_MODES} or None, found '{self.norm_mode}'.")
        if not self.tokenizer_path:
            raise ValueError(
                "tokenizer_path is empty; set it to the local path of PaliGemma's `paligemma_tokenizer.model`."
            )

    @property
    def resolved_norm_mode(self) -> str:
        """``norm_mode``, or openpi's default for ``model_type``."""
        if self.norm_mode is not None:
            return self.norm_mode
        return "quantile" if self.model_type == "pi05" else "zscore"

    @property
    def resolved_max_token_len(self) -> int:
        """``max_token_len``, or 48 (pi0) / 200 (pi0.5)."""
        if self.max_token_len is not None:
            return self.max_token_len
        return PI05_MAX_TOKEN_LEN if self.model_type == "pi05" else PI0_MAX_TOKEN_LEN


def make_pipeline(
    config: TransformsConfig, norm_stats: Mapping[str, Mapping[str, NormStats]]
) -> TransformGroup:
    """Build the input and output pipelines of a pi0 / pi0.5 policy.

    Args:
        config: The transforms config.
        norm_stats: embodiment group id -> canonical key (``state``, ``actions``) -> stats, computed on the
            actions as the pipeline sees them (delta actions when ``delta_action_mask`` is set).

    Returns:
        A :class:`~depi.transforms.base.TransformGroup`; ``group.inputs(sample)`` gives the canonical model
        sample, ``group.outputs({"actions", "state", "embodiment"})`` gives robot actions.

    Raises:
        ValueError: See :class:`~depi.transforms.normalize.Normalize` (e.g. quantile mode without q01/q99).
        FileNotFoundError: ``tokenizer_path`` does not exist.
    """
    mode = config.resolved_norm_mode
    common = {"norm_stats": norm_stats, "mode": mode, "default_embodiment": config.default_embodiment}
    group = TransformGroup()
    if config.delta_action_mask is not None:
        mask = tuple(config.delta_action_mask)
        group = group.push(inputs=[DeltaActions(mask)], outputs=[AbsoluteActions(mask)])
    group = group.push(
        inputs=[Normalize(**common, keys=(STATE, ACTIONS), clip=config.clip_quantiles)],
        outputs=[Unnormalize(**common)],
    )
    model_inputs: list[Transform] = [
        ResizeImages(config.image_height, config.image_width),
        CameraSlots(config.camera_slots, config.image_height, config.image_width),
        TokenizePrompt(
            config.tokenizer_path,
            max_token_len=config.resolved_max_token_len,
            discrete_state_input=config.model_type == "pi05",
            prompt_state_dim=config.prompt_state_dim if config.model_type == "pi05" else None,
        ),
        PadStateActions(config.state_dim, config.action_dim),
    ]
    return group.push(inputs=model_inputs)
