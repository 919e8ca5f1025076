"""TFRecord framing, CRC-32C and tf.train.Example decoding, on records written here and on the Bridge sample."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest
from tests.convert.rlds_fixtures import encode_example, frame_record, write_tfrecord

from depi.convert.tfrecord import (
    TFRecordError,
    crc32c,
    crc32c_python,
    iter_tfrecord,
    masked_crc32c,
    parse_example,
    read_examples,
)

BRIDGE_SAMPLE = Path(__file__).resolve().parents[3] / "shared/data/bridge_v2_rlds_sample/bridge_dataset/1.0.0"


def test_crc32c_matches_published_vector() -> None:
    # RFC 3720 B.4 / iSCSI check value of CRC-32C over ASCII "123456789".
    assert crc32c_python(b"123456789") == 0xE3069283
    assert crc32c(b"123456789") == 0xE3069283
    data = os.urandom(1000)
    assert crc32c(data) == crc32c_python(data)
    assert crc32c_python(b"") == 0


def test_masked_crc_is_rotation_plus_delta() -> None:
    crc = crc32c_python(b"abc")
    assert masked_crc32c(b"abc") == ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def test_records_roundtrip_with_offsets(tmp_path: Path) -> None:
    records = [b"", b"x", os.urandom(5000)]
    offsets = write_tfrecord(tmp_path / "a.tfrecord", records)
    read = list(iter_tfrecord(tmp_path / "a.tfrecord"))
    assert [r for _, r in read] == records
    assert [o for o, _ in read] == offsets == [0, 16, 33]
    assert [r for _, r in iter_tfrecord(tmp_path / "a.tfrecord", start_offset=offsets[2])] == records[2:]


def test_gzip_compressed_file(tmp_path: Path) -> None:
    with gzip.open(tmp_path / "a.tfrecord.gz", "wb") as handle:
        handle.write(frame_record(b"one") + frame_record(b"two"))
    assert [r for _, r in iter_tfrecord(tmp_path / "a.tfrecord.gz")] == [b"one", b"two"]


@pytest.mark.parametrize(
    ("position", "offset", "message"),
    [(9, 0, "length field's CRC"), (35 + 12 + 2, 35, "payload's CRC")],
)
def test_corrupt_byte_is_reported_with_file_and_offset(
    tmp_path: Path, position: int, offset: int, message: str
) -> None:
    path = tmp_path / "bad.tfrecord"
    write_tfrecord(path, [b"first-record-xyz!!!", b"second"])  # record 0 spans bytes [0, 35)
    raw = bytearray(path.read_bytes())
    raw[position] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(
        TFRecordError, match=rf"bad.tfrecord: corrupt TFRecord at byte offset {offset}.*{message}"
    ):
        list(iter_tfrecord(path))


def test_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "cut.tfrecord"
    write_tfrecord(path, [b"a" * 100, b"b" * 100])
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(TFRecordError, match=r"cut.tfrecord: truncated TFRecord at byte offset 116"):
        list(iter_tfrecord(path))
    path.write_bytes(path.read_bytes()[:120])
    with pytest.raises(TFRecordError, match=r"truncated TFRecord header at byte offset 116"):
        list(iter_tfrecord(path))


@pytest.mark.parametrize("packed", [True, False])
def test_example_decoding(packed: bool) -> None:
    features = {
        "floats": np.array([1.5, -2.25, 3e-8], np.float32),
        "ints": np.array([0, 1, -1, 2**40, -(2**63)], np.int64),
        "strings": [b"hello", b"", "déjà".encode()],
        "steps/observation/state": np.arange(14, dtype=np.float32),
    }
    decoded = parse_example(encode_example(features, packed=packed))
    assert set(decoded) == set(features)
    np.testing.assert_array_equal(decoded["floats"], features["floats"])
    assert decoded["floats"].dtype == np.float32
    np.testing.assert_array_equal(decoded["ints"], features["ints"])
    assert decoded["ints"].dtype == np.int64
    assert decoded["strings"] == features["strings"]
    np.testing.assert_array_equal(
        decoded["steps/observation/state"].reshape(2, 7), np.arange(14).reshape(2, 7)
    )


def test_bad_example_names_file_and_offset(tmp_path: Path) -> None:
    path = tmp_path / "junk.tfrecord"
    offsets = write_tfrecord(path, [encode_example({"a": [b"x"]}), b"\x0a\xff\xff\x01"])
    with pytest.raises(
        TFRecordError,
        match=rf"junk.tfrecord: record at byte offset {offsets[1]} is not a valid tf.train.Example",
    ):
        list(read_examples(path))


@pytest.mark.skipif(not BRIDGE_SAMPLE.is_dir(), reason=f"shared Bridge sample not found at {BRIDGE_SAMPLE}")
@pytest.mark.parametrize("split", ["train", "val"])
def test_bridge_sample_records(split: str) -> None:
    path = BRIDGE_SAMPLE / f"bridge_dataset-{split}.tfrecord-00000-of-00001"
    episodes = list(read_examples(path))
    assert len(episodes) == 25
    for _, example in episodes:
        num_steps = len(example["steps/is_first"])
        assert num_steps == 10
        assert example["steps/is_first"].tolist() == [1] + [0] * 9
        assert example["steps/observation/state"].shape == (70,)
        assert example["steps/action"].shape == (70,)
        assert example["steps/language_embedding"].shape == (10 * 512,)
        assert all(jpg.startswith(b"\xff\xd8") for jpg in example["steps/observation/image_0"])
        assert example["steps/language_instruction"][0]
