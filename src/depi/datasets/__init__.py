"""LeRobot datasets: one dataset's format (:mod:`depi.datasets.format`) and the mixture over many
(:mod:`depi.datasets.mixture`).

The main classes are importable from here; they load on first use, so ``import depi.datasets`` stays cheap
and needs no torch (the writer and validator run in torch-free environments such as the robot side).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "DatasetMeta": "depi.datasets.format.meta",
    "DatasetFormatError": "depi.datasets.format.meta",
    "load_meta": "depi.datasets.format.meta",
    "LeRobotSource": "depi.datasets.format.source",
    "DatasetWriter": "depi.datasets.format.writer",
    "validate_dataset": "depi.datasets.format.validate",
    "DatasetConfig": "depi.datasets.mixture.config",
    "MultiLeRobotDataset": "depi.datasets.mixture.dataset",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'depi.datasets' has no attribute {name!r}")
