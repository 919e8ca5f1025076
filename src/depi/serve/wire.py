"""msgpack with numpy arrays, in openpi-client's encoding (``openpi_client.msgpack_numpy``), without pickle.

An ndarray travels as the map ``{b"__ndarray__": True, b"data": <raw bytes, C order>, b"dtype": dtype.str,
b"shape": [...]}``; a numpy scalar as ``{b"__npgeneric__": True, b"data": <python value>, b"dtype": dtype.str}``.
Object (``O``) and void / structured (``V``) dtypes are refused both ways, so decoding never builds Python objects
from the payload. Torch-free: numpy and msgpack only. Works with numpy 1 and 2 (``dtype.str`` is the same).
"""

from __future__ import annotations

import math
from typing import Any

import msgpack
import numpy as np

NDARRAY = b"__ndarray__"
NPGENERIC = b"__npgeneric__"
REFUSED_KINDS = "OV"


class WireError(ValueError):
    """A message that is not valid msgpack-numpy (garbage bytes, malformed or refused array encoding)."""


def _encode(obj: Any) -> Any:
    if isinstance(obj, (np.ndarray, np.generic)) and obj.dtype.kind in REFUSED_KINDS:
        raise TypeError(f"cannot send a numpy array or scalar of dtype {obj.dtype} (object and void dtypes are refused)")
    if isinstance(obj, np.ndarray):
        return {NDARRAY: True, b"data": obj.tobytes(), b"dtype": obj.dtype.str, b"shape": list(obj.shape)}
    if isinstance(obj, np.generic):
        return {NPGENERIC: True, b"data": obj.item(), b"dtype": obj.dtype.str}
    raise TypeError(f"cannot send a {type(obj).__name__}: send numpy arrays, numbers, str, bytes, lists and dicts")


def _dtype(value: Any) -> np.dtype:
    if not isinstance(value, (str, bytes)):
        raise WireError(f"array encoding: dtype must be a dtype string such as '<f4'; got {value!r}")
    try:
        dtype = np.dtype(value.decode() if isinstance(value, bytes) else value)
    except (TypeError, ValueError, UnicodeDecodeError) as error:
        raise WireError(f"array encoding: unknown dtype {value!r} ({error})") from None
    if dtype.kind in REFUSED_KINDS:
        raise WireError(f"array encoding: dtype {value!r} refused (object and void dtypes are never decoded)")
    return dtype


def _decode(obj: dict) -> Any:
    if obj.get(NDARRAY) is True:
        dtype, shape, data = _dtype(obj.get(b"dtype")), obj.get(b"shape"), obj.get(b"data")
        if not isinstance(shape, (list, tuple)) or not all(isinstance(n, int) and n >= 0 for n in shape):
            raise WireError(f"array encoding: shape must be a list of non-negative ints; got {shape!r}")
        if not isinstance(data, bytes):
            raise WireError(f"array encoding: data must be bytes; got {type(data).__name__}")
        if dtype.itemsize == 0:
            raise WireError(f"array encoding: dtype {dtype.str!r} has no size")
        expected = math.prod(shape) * dtype.itemsize
        if len(data) != expected:
            raise WireError(
                f"array encoding: {len(data)} data bytes for shape {list(shape)} of {dtype.str}; expected {expected}"
            )
        return np.frombuffer(data, dtype=dtype).reshape(shape)  # read-only view of the message
    if obj.get(NPGENERIC) is True:
        dtype = _dtype(obj.get(b"dtype"))
        try:
            return dtype.type(obj.get(b"data"))
        except (TypeError, ValueError, OverflowError) as error:
            raise WireError(f"scalar encoding: {obj.get(b'data')!r} is not a {dtype.str} ({error})") from None
    return obj


def packb(obj: Any) -> bytes:
    """Serialize ``obj`` (dicts, lists, str, numbers, bytes, numpy arrays and scalars) to msgpack bytes.

    Raises:
        TypeError: an unsupported type, or an object / void dtype.
    """
    return msgpack.packb(obj, default=_encode, use_bin_type=True)


def unpackb(data: bytes) -> Any:
    """Deserialize msgpack bytes; array encodings become read-only numpy arrays, scalars numpy scalars.

    Raises:
        WireError: not msgpack (the message says where it failed), trailing bytes, or a malformed / refused array
            encoding.
    """
    try:
        return msgpack.unpackb(data, object_hook=_decode, raw=False, strict_map_key=False)
    except WireError:
        raise
    except (ValueError, TypeError, msgpack.UnpackException, msgpack.ExtraData) as error:
        detail = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        raise WireError(f"not a msgpack message ({detail})") from None
