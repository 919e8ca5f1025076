"""TFRecord files and ``tf.train.Example`` records, read without TensorFlow.

A TFRecord file is a sequence of records, each framed as (TensorFlow ``core/lib/io/record_writer.cc``)::

    uint64 length (little endian) | uint32 masked_crc32c(length bytes) | data[length] | uint32 masked_crc32c(data)

where ``masked_crc32c(x) = ((crc >> 15) | (crc << 17)) + 0xA282EAD8 (mod 2**32)`` and crc32c is the Castagnoli
CRC (polynomial 0x82F63B78, reflected). Both CRCs are verified; a mismatch is a :class:`TFRecordError` naming
the file and the record's byte offset.

A record written by TFDS / RLDS is a serialized ``tf.train.Example`` protobuf (``tensorflow/core/example/
example.proto`` and ``feature.proto``)::

    Example { Features features = 1; }
    Features { map<string, Feature> feature = 1; }          # map entry: { string key = 1; Feature value = 2; }
    Feature { oneof kind { BytesList bytes_list = 1; FloatList float_list = 2; Int64List int64_list = 3; } }
    BytesList { repeated bytes value = 1; }  FloatList { repeated float value = 1; }  Int64List { repeated int64 value = 1; }

decoded here with a minimal protobuf wire-format parser (varint, 64-bit, length-delimited and 32-bit wire
types; packed and unpacked repeated scalars), so no ``protobuf`` or ``tensorflow`` dependency is needed.
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Container, Iterator
from pathlib import Path
from typing import BinaryIO, cast

import numpy as np

try:  # C implementation from the optional `crc32c` package (`pip install depi[convert]`), ~1 GB/s.
    from crc32c import crc32c as _crc32c_native
except ImportError:  # the pure-Python table below is used instead (~10 MB/s).
    _crc32c_native = None

_CRC32C_POLY = 0x82F63B78  # Castagnoli, bit-reflected
_MASK_DELTA = 0xA282EAD8
_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")

FeatureValue = np.ndarray | list[bytes]
"""A decoded ``tf.train.Feature``: ``list[bytes]`` (bytes_list), float32 (N,) (float_list) or int64 (N,)."""


class TFRecordError(ValueError):
    """A TFRecord file or ``tf.train.Example`` record is malformed (truncated, bad CRC, bad protobuf)."""


def _make_crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _CRC32C_POLY if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _make_crc_table()


def crc32c_python(data: bytes) -> int:
    """CRC-32C (Castagnoli) of ``data`` in pure Python (RFC 3720 appendix B.4); returns an unsigned 32-bit int."""
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def crc32c(data: bytes) -> int:
    """CRC-32C of ``data``; uses the ``crc32c`` package when installed, else :func:`crc32c_python`."""
    if _crc32c_native is not None:
        return _crc32c_native(data)
    return crc32c_python(data)


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC-32C of ``data`` (rotate right by 15 bits, add 0xA282EAD8), unsigned 32-bit int."""
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


def _open(path: Path) -> BinaryIO:
    handle = open(path, "rb")  # noqa: SIM115 - closed by the caller's context manager
    magic = handle.read(2)
    handle.seek(0)
    if magic == b"\x1f\x8b":  # GZIP-compressed TFRecord (TFRecordOptions(compression_type="GZIP"))
        return gzip.GzipFile(fileobj=handle, mode="rb")  # type: ignore[return-value]
    return handle


def iter_tfrecord(
    path: str | Path, *, start_offset: int = 0, verify_crc: bool = True
) -> Iterator[tuple[int, bytes]]:
    """Yield ``(byte_offset, record_bytes)`` for each record of a TFRecord file, streaming (one record in memory).

    Args:
        path: the ``.tfrecord`` file (uncompressed, or GZIP-compressed: offsets are then in the decompressed stream).
        start_offset: byte offset of the first record to read (an offset this function yielded before).
        verify_crc: check the masked CRC-32C of each length and each payload.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        TFRecordError: truncated header or payload, or a CRC mismatch; names the file and the record's offset.
    """
    path = Path(path)
    with _open(path) as handle:
        if start_offset:
            handle.seek(start_offset)
        offset = start_offset
        while True:
            header = handle.read(_HEADER.size)
            if not header:
                return
            if len(header) < _HEADER.size:
                raise TFRecordError(
                    f"{path}: truncated TFRecord header at byte offset {offset} ({len(header)} of "
                    f"{_HEADER.size} bytes); the file was cut short, re-copy or re-generate it."
                )
            length, length_crc = _HEADER.unpack(header)
            if verify_crc and masked_crc32c(header[:8]) != length_crc:
                raise TFRecordError(
                    f"{path}: corrupt TFRecord at byte offset {offset}: the length field's CRC does not match "
                    f"(stored {length_crc:#010x}, computed {masked_crc32c(header[:8]):#010x}); the file is "
                    "damaged or not a TFRecord file."
                )
            data = handle.read(length)
            footer = handle.read(_FOOTER.size)
            if len(data) < length or len(footer) < _FOOTER.size:
                raise TFRecordError(
                    f"{path}: truncated TFRecord at byte offset {offset}: expected {length} payload bytes and a "
                    f"4-byte CRC, the file ends first; the file was cut short, re-copy or re-generate it."
                )
            if verify_crc:
                (data_crc,) = _FOOTER.unpack(footer)
                computed = masked_crc32c(data)
                if computed != data_crc:
                    raise TFRecordError(
                        f"{path}: corrupt TFRecord at byte offset {offset}: the payload's CRC does not match "
                        f"(stored {data_crc:#010x}, computed {computed:#010x}); the file is damaged."
                    )
            yield offset, data
            offset += _HEADER.size + length + _FOOTER.size


# --- protobuf wire format ---------------------------------------------------------------------------------------
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise TFRecordError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise TFRecordError("varint longer than 10 bytes")


def _iter_fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield ``(field_number, wire_type, value)``; value is an int for varints, bytes otherwise."""
    pos = 0
    end = len(buf)
    while pos < end:
        key, pos = _read_varint(buf, pos)
        field, wire_type = key >> 3, key & 7
        if wire_type == _VARINT:
            value, pos = _read_varint(buf, pos)
            yield field, wire_type, value
        elif wire_type == _LEN:
            length, pos = _read_varint(buf, pos)
            if pos + length > end:
                raise TFRecordError(f"length-delimited field {field} runs past the end of its message")
            yield field, wire_type, buf[pos : pos + length]
            pos += length
        elif wire_type == _I64:
            if pos + 8 > end:
                raise TFRecordError(f"64-bit field {field} runs past the end of its message")
            yield field, wire_type, buf[pos : pos + 8]
            pos += 8
        elif wire_type == _I32:
            if pos + 4 > end:
                raise TFRecordError(f"32-bit field {field} runs past the end of its message")
            yield field, wire_type, buf[pos : pos + 4]
            pos += 4
        else:
            raise TFRecordError(f"unsupported protobuf wire type {wire_type} (field {field})")


def _to_int64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _decode_feature(buf: bytes) -> FeatureValue:
    for kind, wire_type, payload in _iter_fields(buf):
        if wire_type != _LEN:
            raise TFRecordError(f"Feature field {kind} has wire type {wire_type}, expected a sub-message")
        payload = cast(bytes, payload)
        if kind == 1:  # BytesList
            return [bytes(v) for f, w, v in _iter_fields(payload) if f == 1 and w == _LEN]  # type: ignore[arg-type]
        if kind == 2:  # FloatList: packed (one LEN field) and/or unpacked (I32 fields)
            parts = [v for f, _, v in _iter_fields(payload) if f == 1]
            return np.frombuffer(b"".join(parts), dtype="<f4").astype(np.float32)  # type: ignore[arg-type]
        if kind == 3:  # Int64List: packed varints and/or unpacked varints
            values: list[int] = []
            for f, w, v in _iter_fields(payload):
                if f != 1:
                    continue
                if w == _VARINT:
                    values.append(_to_int64(v))  # type: ignore[arg-type]
                else:
                    pos = 0
                    while pos < len(v):  # type: ignore[arg-type]
                        item, pos = _read_varint(v, pos)  # type: ignore[arg-type]
                        values.append(_to_int64(item))
            return np.asarray(values, dtype=np.int64)
    return []  # a Feature with no kind set: TensorFlow parses it as an empty list


def parse_example(record: bytes) -> dict[str, FeatureValue]:
    """Decode a serialized ``tf.train.Example`` into ``{feature name: value}``.

    Values: ``list[bytes]`` for a bytes_list (strings, encoded images), ``np.float32 (N,)`` for a float_list,
    ``np.int64 (N,)`` for an int64_list. Sequences stored flattened by RLDS (``steps/observation/state`` of an
    episode with T steps and 7 dims) come back flat, (T * 7,): reshape them with the schema.

    Raises:
        TFRecordError: the bytes are not a well-formed ``tf.train.Example``.
    """
    features: dict[str, FeatureValue] = {}
    for field, wire_type, features_msg in _iter_fields(record):
        if field != 1 or wire_type != _LEN:
            continue
        for entry_field, entry_wire, entry in _iter_fields(features_msg):  # type: ignore[arg-type]
            if entry_field != 1 or entry_wire != _LEN:
                continue
            name = b""
            value: FeatureValue = []
            for f, w, v in _iter_fields(entry):  # type: ignore[arg-type]
                if f == 1 and w == _LEN:
                    name = v  # type: ignore[assignment]
                elif f == 2 and w == _LEN:
                    value = _decode_feature(v)  # type: ignore[arg-type]
            features[name.decode("utf-8")] = value
    return features


def read_examples(
    path: str | Path, *, skip_offsets: Container[int] = ()
) -> Iterator[tuple[int, dict[str, FeatureValue]]]:
    """Yield ``(byte_offset, parse_example(record))`` for each record of a TFRecord file, CRCs verified.

    Args:
        skip_offsets: byte offsets of records to read past without decoding them (already converted ones).

    Raises:
        TFRecordError: as :func:`iter_tfrecord`, or a record that is not a ``tf.train.Example``, naming the file
            and the record's byte offset.
    """
    for offset, record in iter_tfrecord(path):
        if offset in skip_offsets:
            continue
        try:
            example = parse_example(record)
        except TFRecordError as error:
            raise TFRecordError(
                f"{path}: record at byte offset {offset} is not a valid tf.train.Example ({error})."
            ) from error
        yield offset, example
