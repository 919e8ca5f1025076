"""Sample transforms shared by training and serving: one serializable pipeline per policy.

Importing this package registers every built-in transform, so
``TransformGroup.load(checkpoint_dir)`` can rebuild a saved pipeline.
"""

from depi.transforms.actions import AbsoluteActions, DeltaActions, make_bool_mask
from depi.transforms.base import (
    Pipeline,
    Transform,
    TransformGroup,
    register_transform,
    registered_transforms,
    transform_from_config,
)
from depi.transforms.image import CameraSlots, ResizeImages, resize_with_pad
from depi.transforms.norm_stats import (
    NormStats,
    load_group_norm_stats,
    load_norm_stats,
    save_group_norm_stats,
    save_norm_stats,
)
from depi.transforms.normalize import MissingNormStatsError, Normalize, Unnormalize
from depi.transforms.pad import PadStateActions
from depi.transforms.pipeline import TransformsConfig, make_pipeline
from depi.transforms.tokenize import PaligemmaTokenizer, TokenizePrompt

__all__ = [
    "AbsoluteActions",
    "CameraSlots",
    "DeltaActions",
    "MissingNormStatsError",
    "NormStats",
    "Normalize",
    "PadStateActions",
    "PaligemmaTokenizer",
    "Pipeline",
    "ResizeImages",
    "TokenizePrompt",
    "Transform",
    "TransformGroup",
    "TransformsConfig",
    "Unnormalize",
    "load_group_norm_stats",
    "load_norm_stats",
    "make_bool_mask",
    "make_pipeline",
    "register_transform",
    "registered_transforms",
    "resize_with_pad",
    "save_group_norm_stats",
    "save_norm_stats",
    "transform_from_config",
]
