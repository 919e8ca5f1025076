"""Action chunks defined in seconds, at one control rate, from datasets recorded at any fps.

A chunk of ``H`` steps at ``control_fps`` starting at frame ``r`` covers times ``t_k = t_r + k / control_fps``
(seconds, ``k = 0 .. H-1``) whatever the dataset's fps, so a 50-step chunk means the same duration in every
dataset of a mixture. Recorded frame ``i`` of an episode sits at its nominal time ``i / fps`` (LeRobot
writes ``timestamp = frame_index / fps`` and checks recorded timestamps against that grid).

Method: linear interpolation between the two recorded frames around ``t_k`` (first-order hold). Why: the
actions of the LeRobot arms are joint-position targets, continuous in time; linear interpolation keeps
each step between two recorded targets (no overshoot past joint limits, unlike cubic splines), and unlike
nearest-frame lookup it does not turn a 15-fps recording into a 30-Hz staircase of repeated targets. When
``fps == control_fps`` the query times hit recorded frames and the chunk is the recorded actions exactly.

Past the episode's last frame the step is padding: it repeats the last recorded action (LeRobot's
``delta_timestamps`` behaviour) and its ``action_is_pad`` flag is True so the loss ignores it.
"""

from __future__ import annotations

import numpy as np

# Query positions within this many frames of a recorded frame count as on it (float round-off).
POSITION_EPS = 1e-6


def chunk_positions(frame_in_episode: int, fps: float, control_fps: float, horizon: int) -> np.ndarray:
    """Fractional frame positions (in recorded frames, relative to the episode start) of a chunk's steps.

    Returns:
        float64 (H,): ``frame_in_episode + k * fps / control_fps``.
    """
    return frame_in_episode + np.arange(horizon, dtype=np.float64) * (fps / control_fps)


def resample_chunk(episode_actions: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Interpolate an episode's actions at fractional frame positions (method in the module docstring).

    Args:
        episode_actions: (L, D) the episode's recorded actions, L >= 1.
        positions: (H,) fractional frame positions >= 0 (see :func:`chunk_positions`).

    Returns:
        ``(actions, is_pad)``: float32 (H, D) and bool (H,), True where the position is past frame L-1.

    Raises:
        ValueError: empty episode or a negative position.
    """
    length = episode_actions.shape[0]
    if length == 0:
        raise ValueError("Cannot build an action chunk from an episode with no frames.")
    if positions.size and positions.min() < 0:
        raise ValueError(f"Chunk positions must be >= 0, found {positions.min()}.")
    is_pad = positions > (length - 1) + POSITION_EPS
    clipped = np.clip(positions, 0.0, length - 1)
    lo = np.floor(clipped + POSITION_EPS).astype(np.int64)
    lo = np.minimum(lo, length - 1)
    frac = np.clip(clipped - lo, 0.0, 1.0)
    frac[frac < POSITION_EPS] = 0.0
    hi = np.minimum(lo + 1, length - 1)
    a = episode_actions.astype(np.float64, copy=False)
    actions = a[lo] + frac[:, None] * (a[hi] - a[lo])
    return actions.astype(np.float32), is_pad


def env_steps_of_chunk(horizon: int, control_fps: float, env_fps: float) -> np.ndarray:
    """Fractional chunk positions of the env steps one chunk covers: ``j * control_fps / env_fps``.

    Returns:
        float64 (n,), every position <= H - 1 (the chunk's last step); n >= 1.
    """
    ratio = control_fps / env_fps
    count = int(np.floor((horizon - 1) / ratio + 1e-9)) + 1
    return np.arange(count, dtype=np.float64) * ratio
