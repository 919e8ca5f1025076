"""Simulator tests render headless: MuJoCo must see ``MUJOCO_GL=egl`` before the first ``import mujoco``."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
