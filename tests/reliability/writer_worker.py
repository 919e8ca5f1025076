"""A recording process to be killed: ``python -m tests.reliability.writer_worker ROOT EPISODES``.

Records ``EPISODES`` episodes of deterministic frames (:func:`frame`, one 24x16 video camera, a 4-dim state, a
3-dim action) with :class:`depi.datasets.format.writer.DatasetWriter`, creating the dataset or resuming it, and
prints one line per event for a watcher: ``recovered <text>`` (what :meth:`DatasetWriter.resume` repaired),
``frame <episode> <t>``, ``saving <episode>``, ``saved <episode>``, ``finished``. Each frame is slowed by
``FRAME_S`` and each save, between its data/video writes and its meta row, by ``SAVE_S``, so that a watcher can
kill the process mid-episode or in the middle of a save.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from depi.datasets.format.writer import DatasetWriter

FPS, H, W = 10, 16, 24
FRAME_S, SAVE_S = 0.01, 0.3
FEATURES = {
    "observation.state": {"dtype": "float32", "shape": (4,), "names": None},
    "action": {"dtype": "float32", "shape": (3,), "names": None},
    "observation.images.front": {"dtype": "video", "shape": (H, W, 3), "names": ["height", "width", "channels"]},
}


def episode_length(episode: int) -> int:
    return 8 + (7 * episode) % 13


def frame(episode: int, t: int) -> dict[str, np.ndarray]:
    """The frame ``t`` of ``episode``: a seeded state and action, a flat grey image."""
    rng = np.random.default_rng(1000 * episode + t)
    return {
        "observation.state": rng.normal(size=4).astype(np.float32),
        "action": rng.normal(size=3).astype(np.float32),
        "observation.images.front": np.full((H, W, 3), (8 * t + 40 * episode) % 256, np.uint8),
    }


def main(root: str, episodes: str) -> None:
    path = Path(root)
    if (path / "meta/info.json").exists():
        writer = DatasetWriter.resume(path)
        for line in writer.recovered:
            print("recovered", line, flush=True)
    else:
        writer = DatasetWriter.create(path, repo_id="bench/writer", fps=FPS, features=FEATURES)
    save_row = writer._save_episode_row

    def slow_save_row(row):  # data and video of the episode are written; its meta row is not yet
        print("saving", writer.num_episodes, flush=True)
        time.sleep(SAVE_S)
        return save_row(row)

    writer._save_episode_row = slow_save_row
    while writer.num_episodes < int(episodes):
        episode = writer.num_episodes
        for t in range(episode_length(episode)):
            writer.add_frame(frame(episode, t), task=f"task {episode % 3}")
            print("frame", episode, t, flush=True)
            time.sleep(FRAME_S)
        writer.save_episode()
        print("saved", episode, flush=True)
    writer.finalize()
    print("finished", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
