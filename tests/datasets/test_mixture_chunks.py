"""Action chunks in seconds: resampling between fps, padding past the episode end."""

import numpy as np
import pytest

from depi.datasets.mixture.chunks import chunk_positions, resample_chunk


def ramp(length, fps, dim=2):
    t = np.arange(length) / fps  # seconds
    return np.stack([t * (d + 1) for d in range(dim)], axis=1).astype(np.float32)


def test_same_fps_is_exact_copy_with_pad_after_end():
    actions = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
    chunk, pad = resample_chunk(actions, chunk_positions(6, 30, 30, 6))
    np.testing.assert_array_equal(chunk[:4], actions[6:10])
    np.testing.assert_array_equal(chunk[4:], np.repeat(actions[9:10], 2, axis=0))
    assert pad.tolist() == [False] * 4 + [True] * 2


def test_15fps_chunk_covers_same_seconds_as_30fps():
    horizon, control = 50, 30.0
    a30, a15 = ramp(300, 30.0), ramp(150, 15.0)
    c30, p30 = resample_chunk(a30, chunk_positions(60, 30.0, control, horizon))  # starts at t = 2 s
    c15, p15 = resample_chunk(a15, chunk_positions(30, 15.0, control, horizon))  # starts at t = 2 s
    np.testing.assert_allclose(c15, c30, atol=1e-5)  # a linear signal is recovered exactly
    assert not p30.any() and not p15.any()
    expected_t = 2.0 + np.arange(horizon) / control
    np.testing.assert_allclose(c15[:, 0], expected_t, atol=1e-5)


def test_interpolates_midpoints_and_pads_by_time():
    actions = np.array([[0.0], [10.0], [20.0]], dtype=np.float32)  # 15 fps episode lasting 2 frames' time
    chunk, pad = resample_chunk(actions, chunk_positions(1, 15.0, 30.0, 4))
    np.testing.assert_allclose(chunk[:, 0], [10.0, 15.0, 20.0, 20.0])
    assert pad.tolist() == [False, False, False, True]


def test_errors():
    with pytest.raises(ValueError, match="no frames"):
        resample_chunk(np.zeros((0, 2)), np.zeros(3))
    with pytest.raises(ValueError, match=">= 0"):
        resample_chunk(np.zeros((3, 2)), np.array([-1.0]))
