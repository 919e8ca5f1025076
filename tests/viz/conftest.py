"""Shared fixtures of the viz tests; .rrd files are read back with :func:`depi.viz.read.read_rrd` (rerun's reader)."""

from __future__ import annotations

import pytest

from tests.datasets.conftest import _arrow_cache_dir, arrow_cache, reachy2_root, video_dataset  # noqa: F401

pytest.importorskip("rerun", reason="rerun-sdk is not installed (the viz extra)")

from depi.viz.read import read_rrd  # noqa: E402, F401
