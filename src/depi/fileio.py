"""Atomic file writes shared by the packages that write small JSON documents (transforms, norm stats, reports)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_json(path: str | Path, data: Any, indent: int = 2) -> Path:
    """Write ``data`` as JSON atomically: a temp file in the same folder, flushed and fsync-ed, then renamed.

    A crash leaves either the old file or the new one, never a half-written file (the temp file is removed on
    error). Creates the parent folder. Returns ``path``.

    Raises:
        TypeError: ``data`` is not JSON-serialisable (nothing is written).
        OSError: the folder is not writable.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=indent)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
