"""Fixtures for the Hub tests: LeRobot datasets written by the tests, served by a local fake Hub.

* ``hub_online`` (autouse): huggingface_hub's offline switch off (the session sets ``HF_HUB_OFFLINE=1`` so no
  other test can reach a network).
* ``repos``: ``<tmp>/repos`` with ``alice/v30`` (v3.0, cameras front / wrist / side) and ``bob/v21`` (v2.1,
  cameras front / wrist); the mixture's rules use front + wrist, so ``side`` is never fetched by default.
* ``fake_hub``: a running :class:`tests.helpers.hub_server.FakeHub` over ``repos``.
"""

from __future__ import annotations

from pathlib import Path

import huggingface_hub.constants
import pytest

from tests.datasets.factories import CameraSpec, DatasetSpec, make_lerobot_dataset
from tests.helpers.hub_server import FakeHub

CAMERAS = tuple(CameraSpec(f"observation.images.{n}", height=16, width=24) for n in ("front", "wrist", "side"))
SPEC = DatasetSpec(version="v3.0", episode_lengths=(4, 5), fps=10, state_dim=3, action_dim=3, cameras=CAMERAS)


@pytest.fixture(autouse=True)
def hub_online(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


def write_repo(repos: Path, repo_id: str, **overrides) -> Path:
    return make_lerobot_dataset(repos / repo_id, SPEC, **overrides)


@pytest.fixture
def repos(tmp_path: Path) -> Path:
    root = tmp_path / "repos"
    write_repo(root, "alice/v30")
    write_repo(root, "bob/v21", version="v2.1", cameras=CAMERAS[:2])
    return root


@pytest.fixture
def fake_hub(repos: Path):
    with FakeHub(repos) as hub:
        yield hub
