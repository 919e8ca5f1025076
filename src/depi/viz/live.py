"""Live view of a control loop (``depi-control --control.display_data=true``), with the entity layout of the
dataset view (:mod:`depi.viz.log`): ``cameras/<camera>``, ``observation.state/<dim>``, ``action/<dim>`` on the
``frame_index`` / ``timestamp`` timelines, so a live session and a recorded episode read alike."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from depi.constants import OBS_IMAGES_PREFIX, OBS_STATE
from depi.viz.log import FRAME_INDEX, TIMESTAMP, open_recording, rerun


class LiveViewer:
    """One rerun recording fed step by step.

    Args:
        app_id: rerun application id.
        mode: ``local`` (spawn the viewer), ``distant`` (gRPC + web viewer on ``port``) or ``save``.
        save: write the stream to this ``.rrd`` file instead of a viewer (any mode).
        port: web viewer port of ``distant``.

    Raises:
        ModuleNotFoundError: rerun-sdk is missing (the ``viz`` extra).
    """

    def __init__(self, app_id: str, mode: str = "local", save: str | None = None, port: int = 9876) -> None:
        self.rr = rerun()
        self.rec = open_recording(app_id, "save" if save else mode, save, port)
        self.episode = 0

    def new_episode(self, episode: int, task: str) -> None:
        """Mark the start of an episode (a text entry ``episode``)."""
        self.episode = episode
        self.rec.log("episode", self.rr.TextDocument(f"episode {episode}: {task}"))

    def log_step(
        self, frame_index: int, timestamp_s: float, observation: Mapping[str, Any], action: np.ndarray | None
    ) -> None:
        """Log one step: each ``observation.images.<cam>`` uint8 (H, W, 3), ``observation.state`` (S,) and the
        action (A,) sent."""
        rr, rec = self.rr, self.rec
        rec.set_time(FRAME_INDEX, sequence=int(frame_index))
        rec.set_time(TIMESTAMP, duration=float(timestamp_s))
        for key, value in observation.items():
            if key.startswith(OBS_IMAGES_PREFIX):
                rec.log(f"cameras/{key.removeprefix(OBS_IMAGES_PREFIX)}", rr.Image(np.asarray(value)))
        for prefix, values in ((OBS_STATE, observation.get(OBS_STATE)), ("action", action)):
            if values is not None:
                for d, v in enumerate(np.asarray(values, dtype=np.float64).reshape(-1)):
                    rec.log(f"{prefix}/{d}", rr.Scalars(v))

    def close(self) -> None:
        """Flush and end the recording."""
        self.rec.flush()
        self.rec.disconnect()
