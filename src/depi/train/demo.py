"""The embedded default run: the ``demo`` preset on the bundled demo mixture, with nothing to download.

``depi-train`` with no arguments trains the tiny policy on the simulated demo datasets (SO-101 pick-place,
three Meta-World tasks, SO-100 transfer-cube; see :mod:`depi.sim.generate`). On first use this module
generates them into the preset's ``dataset.root`` (cached: a complete dataset with the same settings is
reused) and, since PaliGemma's tokenizer cannot be downloaded, trains a small PaliGemma-like SentencePiece
model on the datasets' tasks (:mod:`depi.transforms.tokenizer_train`), kept beside the data.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from depi.datasets.format.meta import load_meta
from depi.transforms.tokenizer_train import train_sentencepiece

logger = logging.getLogger(__name__)

DEMO_TOKENIZER = "demo_tokenizer.model"


def prepare_demo_data(cfg):
    """Generate the demo mixture and its tokenizer where ``cfg.demo_data`` asks for them.

    Args:
        cfg: a :class:`depi.train.config.TrainConfig`; only acted on when ``cfg.demo_data`` is True, with the
            datasets written into ``cfg.dataset.root``.

    Returns:
        ``cfg`` unchanged, or a copy whose ``transforms.tokenizer_path`` points at the demo tokenizer when none
        was given.

    Raises:
        ValueError: ``demo_data`` is set but ``dataset.root`` is not.
        ModuleNotFoundError: a simulator package is missing (the message names the install command).
        FileExistsError: a dataset folder in ``dataset.root`` was generated with other settings (other
            ``demo_episodes``, ``demo_image_size`` or ``demo_privileged_state``): the message names it and the fix.
    """
    if not cfg.demo_data:
        return cfg
    if not cfg.dataset.root:
        raise ValueError("--demo_data=true needs --dataset.root=<folder for the generated demo datasets>.")
    from depi.sim.generate import ensure_demo_mixture  # the simulators are an optional extra

    root = Path(cfg.dataset.root)
    logger.info("Demo mixture in %s (generated on first use, then reused).", root)
    roots = ensure_demo_mixture(
        root, envs=cfg.demo_envs, episodes=cfg.demo_episodes, image_size=cfg.demo_image_size,
        privileged_state=cfg.demo_privileged_state,
    )
    if cfg.transforms.tokenizer_path:
        return cfg
    tokenizer = root / DEMO_TOKENIZER
    if not tokenizer.exists():
        tasks = sorted({task for r in roots for task in load_meta(r).tasks})
        train_sentencepiece(tokenizer, tasks)
        logger.info("Trained the demo tokenizer on %d task texts: %s", len(tasks), tokenizer)
    return dataclasses.replace(cfg, transforms=dataclasses.replace(cfg.transforms, tokenizer_path=str(tokenizer)))
