"""Fixtures for dataset tests: on-disk LeRobot datasets written by ``tests/datasets/factories.py``.

* ``arrow_cache`` (autouse): points ``$DEPI_CACHE`` at a per-session temporary folder, so the memory-mapped
  Arrow copies never land in the user's home.
* ``make_dataset(spec=None, **spec_fields) -> Path``: writes a fresh dataset under ``tmp_path``.
* ``video_dataset`` (parametrized over v2.0, v2.1, v3.0): ``factories.VIDEO_DATASET_SPEC`` written once per
  session (treat it as read-only).
* ``reachy2_root``: the real recording in ``/work/shared/data`` (skips where the folder is absent).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.datasets.factories import REACHY2_ROOT, VIDEO_DATASET_SPEC, DatasetSpec, make_lerobot_dataset


@pytest.fixture(scope="session")
def _arrow_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("depi_cache")


@pytest.fixture(autouse=True)
def arrow_cache(_arrow_cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DEPI_CACHE", str(_arrow_cache_dir))
    return _arrow_cache_dir


@pytest.fixture
def make_dataset(tmp_path: Path):
    counter = iter(range(1_000_000))

    def make(spec: DatasetSpec | None = None, **spec_fields) -> Path:
        return make_lerobot_dataset(tmp_path / f"dataset_{next(counter)}", spec, **spec_fields)

    return make


@pytest.fixture(scope="session", params=["v2.0", "v2.1", "v3.0"])
def video_dataset(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp(f"video_dataset_{request.param}")
    return make_lerobot_dataset(root, VIDEO_DATASET_SPEC, version=request.param)


@pytest.fixture
def reachy2_root() -> Path:
    if not (REACHY2_ROOT / "meta" / "info.json").is_file():
        pytest.skip(f"shared recording not present at {REACHY2_ROOT}")
    return REACHY2_ROOT
