"""Build the policy and the training data of a run from its :class:`~depi.train.config.TrainConfig`.

The policy comes from the policy registry (``--policy.type``), optionally filled with pretrained weights
(``--policy.path``). The data is the mixture (:class:`~depi.datasets.mixture.dataset.MultiLeRobotDataset`), its
per-embodiment normalization stats (computed exactly, cached under the run folder) and the standard
pi0 / pi0.5 transform pipeline applied in the DataLoader workers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import Dataset

from depi.datasets.mixture.dataset import MultiLeRobotDataset
from depi.datasets.mixture.sampler import MixtureSampler
from depi.datasets.mixture.stats import DeltaStatsSpec, compute_group_stats
from depi.datasets.mixture.stats_cli import group_inputs
from depi.policies.registry import make_policy
from depi.train.config import TrainConfig
from depi.transforms.base import TransformGroup
from depi.transforms.norm_stats import NormStats
from depi.transforms.pipeline import TransformsConfig, make_pipeline
from depi.transforms.tokenize import load_sentencepiece

logger = logging.getLogger(__name__)


def build_policy(cfg: TrainConfig) -> nn.Module:
    """The policy of ``cfg.policy``, with the weights of ``cfg.pretrained_path`` when set.

    Pretrained weights load by key mapping (depi, lerobot or PaliGemma layouts, detected); tensors whose
    shape differs are re-initialised and listed in the logged load report.
    """
    policy = make_policy(cfg.policy)
    if cfg.pretrained_path is not None:
        from depi.policies.pi0.weights import load_weights

        report = load_weights(policy, cfg.pretrained_path)
        logger.info("Loaded pretrained weights from %s: %s", cfg.pretrained_path, report)
    return policy


class TransformedDataset(Dataset):
    """``dataset[i]`` passed through the input pipeline (runs inside the DataLoader workers)."""

    def __init__(self, dataset: Dataset, transforms: TransformGroup) -> None:
        self.dataset = dataset
        self.transforms = transforms

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.transforms.inputs(self.dataset[index])


@dataclass
class MixtureTrainData:
    """The mixture as :class:`depi.train.data.TrainData`."""

    dataset: TransformedDataset
    sampler: MixtureSampler
    dataset_names: list[str]
    transforms: TransformGroup
    norm_stats: dict[str, dict[str, NormStats]]
    manifest: dict[str, Any]


def transforms_config(cfg: TrainConfig) -> TransformsConfig:
    """The transform pipeline settings of a run (model type and image size from the policy, the rest from
    ``--transforms``): images are resized-with-pad to the vision tower's ``image_size``.

    Raises:
        ValueError: ``--transforms.tokenizer_path`` is not set.
    """
    spec = cfg.transforms
    if spec.tokenizer_path is None:
        raise ValueError(
            "--transforms.tokenizer_path is not set: pass the local path of PaliGemma's SentencePiece model "
            "(paligemma_tokenizer.model, see docs) to tokenize the prompts."
        )
    return TransformsConfig(
        model_type=cfg.policy.type,
        tokenizer_path=spec.tokenizer_path,
        norm_mode=spec.norm_mode,
        clip_quantiles=spec.clip_quantiles,
        max_token_len=cfg.policy.max_token_len,
        delta_action_mask=None if spec.delta_action_mask is None else tuple(spec.delta_action_mask),
        image_height=cfg.policy.vision.image_size,
        image_width=cfg.policy.vision.image_size,
    )


def check_vocabulary(cfg: TrainConfig) -> None:
    """Refuse a tokenizer with more pieces than the policy's token embedding has rows.

    The small CPU presets size the embedding to their small tokenizer (``vlm.vocab_size: 1024``) instead of
    PaliGemma's 257,152 rows: AdamW otherwise spends most of a tiny model's step updating rows no prompt uses.

    Raises:
        ValueError: the tokenizer's piece count exceeds ``--policy.vlm.vocab_size`` (names both and the fix).
        FileNotFoundError: ``--transforms.tokenizer_path`` does not exist.
    """
    path = transforms_config(cfg).tokenizer_path
    pieces = load_sentencepiece(path).get_piece_size()
    rows = cfg.policy.vlm.vocab_size
    if pieces > rows:
        raise ValueError(
            f"--transforms.tokenizer_path={path} has {pieces} pieces but the policy's token embedding has "
            f"--policy.vlm.vocab_size={rows} rows: set --policy.vlm.vocab_size to at least {pieces} "
            "(257152 for PaliGemma's tokenizer)."
        )


def build_train_data(cfg: TrainConfig, run_dir: Path, accelerator) -> MixtureTrainData:
    """Index the mixture, compute (or reuse) its norm stats, and wrap it in the transform pipeline.

    The main process indexes and computes the stats first (written to ``<run_dir>/norm_stats``); the other
    processes then reuse them from that cache. Returns this rank's :class:`MixtureTrainData`. Its manifest lists,
    per dataset, the frames trained on and the ``held_out_episodes`` (``--dataset.holdout_dir``), which
    ``depi-eval offline`` uses as its test split.

    Raises:
        RuntimeError / ValueError / FileNotFoundError: from the mixture (too few usable datasets, bad selection),
            :func:`check_vocabulary` or the transforms (missing tokenizer, stats without quantiles in quantile
            mode).
    """
    check_vocabulary(cfg)
    with accelerator.main_process_first():
        mixture = MultiLeRobotDataset(cfg.dataset, verbose=accelerator.is_main_process)
        delta = None
        if cfg.transforms.delta_action_mask is not None:
            delta = DeltaStatsSpec(
                tuple(cfg.transforms.delta_action_mask), cfg.dataset.action_horizon, cfg.dataset.control_fps
            )
        norm_stats = compute_group_stats(group_inputs(mixture.index), Path(run_dir) / "norm_stats", delta=delta)
    transforms = make_pipeline(transforms_config(cfg), norm_stats)
    sampler = mixture.make_sampler(
        rank=accelerator.process_index, world_size=accelerator.num_processes, batch_size=cfg.batch_size
    )
    kept_frames = mixture.index.kept_frames
    manifest = {
        "control_fps": cfg.dataset.control_fps,
        "action_horizon": cfg.dataset.action_horizon,
        "weighting": cfg.dataset.weighting,
        "seed": cfg.dataset.seed,
        "delta_action_mask": cfg.transforms.delta_action_mask,
        "holdout_dir": cfg.dataset.holdout_dir,
        "datasets": [
            {
                "repo_id": entry.repo_id,
                "root": str(entry.root),
                "codebase_version": entry.codebase_version,
                "fps": entry.fps,
                "frames": int(kept_frames[i]),
                "held_out_episodes": mixture.index.held_out_episodes(i),
                "embodiment": entry.embodiment,
                "weight": float(mixture.weights[i]),
                "camera_slots": dict(entry.roles.slots),
            }
            for i, entry in enumerate(mixture.index.entries)
        ],
        "excluded": [{"repo_id": x.repo_id, "reason": x.reason} for x in mixture.index.excluded],
    }
    return MixtureTrainData(
        dataset=TransformedDataset(mixture, transforms),
        sampler=sampler,
        dataset_names=mixture.repo_ids,
        transforms=transforms,
        norm_stats=norm_stats,
        manifest=manifest,
    )
