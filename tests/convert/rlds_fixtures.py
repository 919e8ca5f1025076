"""Writers for tests: a tiny ``tf.train.Example`` encoder, TFRecord framing and a Bridge-like TFDS folder.

Independent of :mod:`depi.convert.tfrecord`'s decoder (only its CRC is reused; the CRC is checked against the
published CRC-32C test vector in test_tfrecord.py).
"""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import numpy as np
from PIL import Image

from depi.convert.tfrecord import masked_crc32c


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64 -> two's complement, 10 bytes
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def length_delimited(field: int, payload: bytes) -> bytes:
    return varint(field << 3 | 2) + varint(len(payload)) + payload


def encode_feature(value, packed: bool = True) -> bytes:
    if isinstance(value, list):  # bytes_list
        return length_delimited(1, b"".join(length_delimited(1, item) for item in value))
    array = np.asarray(value)
    if array.dtype.kind == "f":
        if packed:
            inner = length_delimited(1, array.astype("<f4").tobytes())
        else:
            inner = b"".join(varint(1 << 3 | 5) + struct.pack("<f", v) for v in array.tolist())
        return length_delimited(2, inner)
    if packed:
        inner = length_delimited(1, b"".join(varint(int(v)) for v in array.tolist()))
    else:
        inner = b"".join(varint(1 << 3 | 0) + varint(int(v)) for v in array.tolist())
    return length_delimited(3, inner)


def encode_example(features: dict, packed: bool = True) -> bytes:
    entries = b"".join(
        length_delimited(
            1, length_delimited(1, name.encode()) + length_delimited(2, encode_feature(v, packed))
        )
        for name, v in features.items()
    )
    return length_delimited(1, entries)


def frame_record(data: bytes) -> bytes:
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc32c(length)) + data + struct.pack("<I", masked_crc32c(data))


def write_tfrecord(path: Path, records: list[bytes]) -> list[int]:
    """Write framed records; returns each record's byte offset."""
    offsets, position = [], 0
    with open(path, "wb") as handle:
        for record in records:
            framed = frame_record(record)
            offsets.append(position)
            handle.write(framed)
            position += len(framed)
    return offsets


def jpeg(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def bridge_episode(
    rng: np.random.Generator,
    num_steps: int,
    instruction: str = "put the spoon in the pot",
    file_path: str = "/data/bridge/toykitchen1/put_spoon_in_pot/train/out.npy",
    empty_cameras: tuple[str, ...] = ("image_3",),
    size: tuple[int, int] = (48, 64),
) -> dict:
    """Features of one synthetic Bridge episode in the ``bridge_dataset`` schema; images are smooth gradients."""
    images = {}
    for k in range(4):
        camera = f"image_{k}"
        if camera in empty_cameras:
            images[camera] = [jpeg(np.zeros((*size, 3), np.uint8)) for _ in range(num_steps)]
        else:
            base = np.linspace(40, 200, size[1], dtype=np.float32)[None, :, None]
            images[camera] = [
                jpeg(np.broadcast_to(base + 5 * t + 10 * k, (*size, 3)).clip(0, 255).astype(np.uint8))
                for t in range(num_steps)
            ]
    features = {
        "steps/is_first": np.array([1] + [0] * (num_steps - 1), np.int64),
        "steps/is_last": np.array([0] * (num_steps - 1) + [1], np.int64),
        "steps/observation/state": rng.normal(size=num_steps * 7).astype(np.float32),
        "steps/action": rng.normal(size=num_steps * 7).astype(np.float32),
        "steps/language_instruction": [instruction.encode()] * num_steps,
        "steps/reward": np.zeros(num_steps, np.float32),
        "episode_metadata/file_path": [file_path.encode()],
        "episode_metadata/episode_id": np.array([int(rng.integers(0, 100))], np.int64),
    }
    for k in range(4):
        features[f"steps/observation/image_{k}"] = images[f"image_{k}"]
        features[f"episode_metadata/has_image_{k}"] = np.array([0], np.int64)
    return features


def write_bridge_dir(root: Path, splits: dict[str, list[dict]]) -> Path:
    """Write ``<root>/bridge_dataset/1.0.0`` with one shard per split; returns that folder."""
    data_dir = root / "bridge_dataset" / "1.0.0"
    data_dir.mkdir(parents=True)
    info = {"name": "bridge_dataset", "fileFormat": "tfrecord", "version": "1.0.0", "splits": []}
    for split, episodes in splits.items():
        write_tfrecord(
            data_dir / f"bridge_dataset-{split}.tfrecord-00000-of-00001",
            [encode_example(episode) for episode in episodes],
        )
        info["splits"].append(
            {
                "name": split,
                "filepathTemplate": "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}",
                "shardLengths": [str(len(episodes))],
            }
        )
    (data_dir / "dataset_info.json").write_text(json.dumps(info))
    return data_dir
