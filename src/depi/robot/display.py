"""``--control.display_data``: the robot loop's frames in a live rerun view (:class:`depi.viz.live.LiveViewer`,
the ``viz`` extra), imported only when asked for.

Frames are numbered across the whole run (episode 2 follows episode 1 on the timeline), at the loop's fps.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from depi.errors import UsageError

DISPLAY_MODES = ("local", "distant")
INSTALL_HINT = "pip install 'depi[viz]'"


class LiveDisplay:
    """Feeds each robot step to a :class:`depi.viz.live.LiveViewer`.

    Args:
        app_id: rerun application id (the viewer's title).
        fps: the loop rate (Hz); a frame's timestamp is ``frame_index / fps`` s.
        mode: ``local`` (spawn a viewer) or ``distant`` (serve one on a port).
        save: also write the stream to this ``.rrd`` file; None: do not.

    Raises:
        UsageError: an unknown ``mode``, or rerun / :mod:`depi.viz.live` is not installed.
    """

    def __init__(self, app_id: str, fps: float, mode: str = "local", save: str | None = None) -> None:
        if mode not in DISPLAY_MODES:
            raise UsageError(f"--control.display_mode={mode}: expected one of {list(DISPLAY_MODES)}")
        try:
            from depi.viz.live import LiveViewer
        except ModuleNotFoundError as error:
            missing = error.name or "depi.viz.live"
            what = "rerun-sdk" if missing.startswith("rerun") else missing
            raise UsageError(
                f"--control.display_data=true needs {what}, which is not installed: {INSTALL_HINT} "
                "(or drop --control.display_data)"
            ) from error
        self.viewer = LiveViewer(app_id, mode=mode, save=save)
        self.fps, self.frames = float(fps), 0

    def log_step(self, step: int, observation: dict[str, Any], action: np.ndarray | None) -> None:
        """Log one step: ``observation`` LeRobot-keyed (``observation.state`` float32 (S,),
        ``observation.images.<cam>`` uint8 (H, W, 3)), ``action`` float32 (A,) as sent to the robot."""
        self.viewer.log_step(self.frames, self.frames / self.fps, observation, action)
        self.frames += 1

    def close(self) -> None:
        self.viewer.close()


def open_display(enabled: bool, app_id: str, fps: float, mode: str = "local", save: str | None = None):
    """A :class:`LiveDisplay`, or None when ``enabled`` is False (nothing is imported then)."""
    return LiveDisplay(app_id, fps, mode, save) if enabled else None
