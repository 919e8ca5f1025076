"""msgpack-numpy in openpi-client's encoding: round trips, the exact map layout, and what is refused."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from depi.serve import wire


def _openpi_encode(obj):
    """The encoding openpi_client.msgpack_numpy writes (bytes keys, dtype.str, shape), built by hand."""
    if isinstance(obj, np.ndarray):
        return {b"__ndarray__": True, b"data": obj.tobytes(), b"dtype": obj.dtype.str, b"shape": obj.shape}
    if isinstance(obj, np.generic):
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    return obj


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.float32).reshape(3, 4),
        np.arange(6, dtype=np.float64),
        np.arange(24, dtype=np.uint8).reshape(2, 4, 3),
        np.array([-1, 2**40], dtype=np.int64),
        np.array([True, False]),
        np.array(["ab", "xyz"]),
        np.zeros((0, 5), dtype=np.float32),
        np.array(3.5, dtype=np.float32),
        np.arange(12, dtype=np.int16).reshape(3, 4).T,  # not C-contiguous
        np.arange(3, dtype=">f8"),  # big-endian
    ],
    ids=lambda a: f"{a.dtype.str}{a.shape}",
)
def test_array_round_trip(array: np.ndarray) -> None:
    out = wire.unpackb(wire.packb({"x": array}))["x"]
    assert out.dtype == array.dtype and out.shape == array.shape
    np.testing.assert_array_equal(out, array)
    assert not out.flags.writeable  # a zero-copy view of the message


def test_scalars_and_plain_values_round_trip() -> None:
    message = {
        "f": np.float32(1.5), "i": np.int64(-7), "b": np.bool_(True), "text": "pick", "raw": b"\x00\x01",
        "nested": {"list": [1, 2.5, None], "array": np.ones(2, dtype=np.float32)},
    }  # fmt: skip
    out = wire.unpackb(wire.packb(message))
    assert type(out["f"]) is np.float32 and out["f"] == np.float32(1.5)
    assert type(out["i"]) is np.int64 and out["i"] == -7
    assert type(out["b"]) is np.bool_ and out["b"]
    assert out["text"] == "pick" and out["raw"] == b"\x00\x01" and out["nested"]["list"] == [1, 2.5, None]
    np.testing.assert_array_equal(out["nested"]["array"], np.ones(2, dtype=np.float32))


def test_layout_is_openpi_clients() -> None:
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    raw = msgpack.unpackb(wire.packb(array))
    assert raw == {b"__ndarray__": True, b"data": array.tobytes(), b"dtype": "<f4", b"shape": [2, 3]}
    raw = msgpack.unpackb(wire.packb(np.int32(4)))
    assert raw == {b"__npgeneric__": True, b"data": 4, b"dtype": "<i4"}
    # and what openpi's packer writes decodes here
    payload = msgpack.packb({"actions": array, "n": np.float64(2.0)}, default=_openpi_encode)
    out = wire.unpackb(payload)
    np.testing.assert_array_equal(out["actions"], array)
    assert out["n"] == 2.0


@pytest.mark.parametrize("value", [np.array([{}, 1], dtype=object), np.zeros(2, dtype="V4"), np.zeros(2, dtype="i4,f4")])
def test_object_and_void_arrays_are_not_sent(value: np.ndarray) -> None:
    with pytest.raises(TypeError, match="refused"):
        wire.packb({"x": value})


def test_unsupported_type_is_not_sent() -> None:
    with pytest.raises(TypeError, match="cannot send a set"):
        wire.packb({"x": {1, 2}})


def _array_map(**overrides) -> bytes:
    fields = {b"__ndarray__": True, b"data": b"\x00" * 8, b"dtype": "<f4", b"shape": [2]}
    fields.update({k.encode(): v for k, v in overrides.items()})
    return msgpack.packb({"x": fields})


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (_array_map(dtype="|O"), "refused"),
        (_array_map(dtype="|V8", shape=[1]), "refused"),
        (_array_map(dtype="[('a', '<i4')]"), "unknown dtype"),
        (_array_map(dtype="not-a-dtype"), "unknown dtype"),
        (_array_map(dtype=3), "dtype must be"),
        (_array_map(shape=[3]), "8 data bytes for shape"),
        (_array_map(shape=[-2]), "non-negative"),
        (_array_map(shape="2"), "shape must be"),
        (_array_map(data="text"), "data must be bytes"),
        (_array_map(dtype="S0"), "no size"),
        (msgpack.packb({"x": {b"__npgeneric__": True, b"data": "abc", b"dtype": "<f8"}}), "scalar encoding"),
        (msgpack.packb({"x": {b"__npgeneric__": True, b"data": 1, b"dtype": "|O"}}), "refused"),
        (b"\xc1\x00garbage", "not a msgpack message"),
        (msgpack.packb({"a": 1})[:-1], "not a msgpack message"),
        (msgpack.packb({"a": 1}) + b"\x01", "not a msgpack message"),
        (b"\xa2\xff\xfe", "not a msgpack message"),  # a str that is not UTF-8
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_malformed_messages_are_refused(payload: bytes, match: str) -> None:
    with pytest.raises(wire.WireError, match=match):
        wire.unpackb(payload)
