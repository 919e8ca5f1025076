"""Image helpers shared by the converters: decode encoded frames, resize with padding."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


class ImageDecodeError(ValueError):
    """Encoded image bytes could not be decoded into an RGB frame."""


def decode_image(data: bytes) -> np.ndarray:
    """Decode JPEG / PNG bytes into an RGB frame, uint8 (H, W, 3).

    Trailing zero padding after the image (ALOHA stores JPEGs zero-padded to a common length) is ignored.

    Raises:
        ImageDecodeError: the bytes are not a decodable image (the message says how many bytes were given).
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageDecodeError(f"cannot decode {len(data)} image bytes as JPEG/PNG ({error})") from error


def resize_with_pad(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize an RGB frame to fit in (height, width) keeping its aspect ratio, padding the rest with black.

    Same geometry as openpi's ``image_tools.resize_with_pad``: scale by ``max(w / width, h / height)``, bilinear
    interpolation, the resized image centred with zero padding split evenly (the extra pixel on the bottom/right).

    Args:
        image: uint8 (H, W, 3).
        height, width: output size in pixels.

    Returns:
        uint8 (height, width, 3); the input itself when it already has that size.
    """
    cur_h, cur_w = image.shape[:2]
    if (cur_h, cur_w) == (height, width):
        return image
    ratio = max(cur_w / width, cur_h / height)
    new_h, new_w = max(1, int(cur_h / ratio)), max(1, int(cur_w / ratio))
    resized = np.asarray(
        Image.fromarray(image).resize((new_w, new_h), resample=Image.BILINEAR), dtype=np.uint8
    )
    out = np.zeros((height, width, 3), dtype=np.uint8)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    out[top : top + new_h, left : left + new_w] = resized
    return out
