"""The download manifest: what ``depi-download`` fetched, at which revision, and what it excluded.

``<root>/depi_manifest.json``::

    {"format": 1,
     "datasets": {
       "owner/name": {"status": "ok", "revision": "<commit sha>", "cameras": ["observation.images.front"],
                      "files": [{"path": "meta/info.json", "size": 1234, "sha256": null}, ...],
                      "bytes": 123456, "finished_at": "2026-12-06T15:00:00+00:00"},
       "owner/broken": {"status": "excluded", "revision": "<sha or null>", "reason": "...", "files": [...]}}}

Rewritten atomically (:func:`depi.fileio.write_json`) after every dataset, so an interrupted run leaves the
entries of the datasets it finished and a rerun resumes from them. ``HF_HUB_OFFLINE=1`` runs read it alone.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

from depi.fileio import write_json

MANIFEST_NAME = "depi_manifest.json"
FORMAT = 1


@dataclass
class FileEntry:
    """One fetched file: ``path`` relative to the dataset root, ``size`` in bytes, ``sha256`` (LFS files)."""

    path: str
    size: int
    sha256: str | None = None


@dataclass
class DatasetEntry:
    """One dataset's outcome: ``status`` ``"ok"`` or ``"excluded"`` (then ``reason``)."""

    status: str
    revision: str | None
    files: list[FileEntry] = field(default_factory=list)
    cameras: list[str] = field(default_factory=list)
    reason: str | None = None
    bytes: int = 0
    finished_at: str | None = None

    @classmethod
    def from_json(cls, raw: dict) -> DatasetEntry:
        files = [FileEntry(**f) for f in raw.get("files", [])]
        return cls(**{**raw, "files": files})

    def present(self, dataset_root: Path) -> bool:
        """Every listed file exists under ``dataset_root`` with its recorded size (a ``stat`` each)."""
        for f in self.files:
            path = dataset_root / f.path
            if not path.is_file() or path.stat().st_size != f.size:
                return False
        return True


class Manifest:
    """The manifest of one download root; thread-safe ``set`` that rewrites the file atomically.

    Raises (on load):
        ValueError: the file is not a manifest (names the file and the fix: delete it to start over).
    """

    def __init__(self, root: str | Path) -> None:
        self.path = Path(root) / MANIFEST_NAME
        self.datasets: dict[str, DatasetEntry] = {}
        self._lock = threading.Lock()
        if self.path.is_file():
            try:
                raw = json.loads(self.path.read_text())
                self.datasets = {k: DatasetEntry.from_json(v) for k, v in raw["datasets"].items()}
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise ValueError(
                    f"{self.path}: not a depi download manifest ({type(err).__name__}: {err}); delete it to "
                    "download from scratch"
                ) from err

    def get(self, repo_id: str) -> DatasetEntry | None:
        return self.datasets.get(repo_id)

    def set(self, repo_id: str, entry: DatasetEntry) -> None:
        with self._lock:
            self.datasets[repo_id] = entry
            write_json(self.path, {"format": FORMAT, "datasets": {k: asdict(v) for k, v in self.datasets.items()}})
