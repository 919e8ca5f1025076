"""Simulated demonstrations from scripted experts, and the simulator adapters closed-loop evaluation drives.

MuJoCo picks its OpenGL platform when it is first imported; headless machines need EGL, so importing
``depi.sim`` sets ``MUJOCO_GL=egl`` unless the caller chose a platform (import ``depi.sim`` before ``mujoco``).
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
