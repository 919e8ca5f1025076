"""Image helpers of the converters."""

from __future__ import annotations

import numpy as np
import pytest
from tests.convert.rlds_fixtures import jpeg

from depi.convert.images import ImageDecodeError, decode_image, resize_with_pad


def test_resize_with_pad_keeps_aspect_and_centres() -> None:
    image = np.full((48, 64, 3), 200, np.uint8)
    out = resize_with_pad(image, 32, 32)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert (out[:4] == 0).all() and (out[28:] == 0).all()  # 48x64 -> 24x32, 4 rows of padding each side
    assert (out[4:28] == 200).all()
    tall = resize_with_pad(np.full((100, 50, 3), 9, np.uint8), 224, 224)
    assert (tall[:, :56] == 0).all() and (tall[:, 168:] == 0).all() and (tall[:, 56:168] == 9).all()
    assert resize_with_pad(image, 48, 64) is image


def test_decode_image_ignores_trailing_zero_padding() -> None:
    image = np.tile(np.arange(0, 256, 8, dtype=np.uint8)[None, :, None], (16, 1, 3))
    decoded = decode_image(jpeg(image) + b"\x00" * 300)
    assert decoded.shape == (16, 32, 3)
    assert np.abs(decoded.astype(int) - image).mean() < 3
    with pytest.raises(ImageDecodeError, match=r"cannot decode 5 image bytes"):
        decode_image(b"\xff\xd8abc")
