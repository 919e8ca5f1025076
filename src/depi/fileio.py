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


def read_json_file(path: str | Path, what: str, expect: type, expected: str, fix: str) -> Any:
    """Parse the JSON file ``path`` holding ``what``, whose top level must be an ``expect`` (list, dict),
    described as ``expected`` in the message.

    Raises:
        FileNotFoundError: no such file (the message says what to pass: ``fix``).
        ValueError: not valid JSON, or the top level is not an ``expect``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} not found; {fix}.")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error}); {fix}.") from error
    if not isinstance(data, expect):
        raise ValueError(f"{path}: expected {expected}, found {type(data).__name__}.")
    return data
