"""Session-wide test settings: caches and the LeRobot home point into a temporary folder.

Set at import (before any test imports depi) so that subprocesses started by tests inherit them, and nothing
lands in, or is read from, the user's ``~/.cache``.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

_SESSION_DIR = tempfile.mkdtemp(prefix="depi-tests-")
atexit.register(shutil.rmtree, _SESSION_DIR, ignore_errors=True)
os.environ["DEPI_CACHE"] = os.path.join(_SESSION_DIR, "depi_cache")
os.environ["HF_LEROBOT_HOME"] = os.path.join(_SESSION_DIR, "lerobot_home")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MUJOCO_GL", "egl")
