"""Read Bridge V2 episodes from a TFDS / RLDS ``bridge_dataset`` directory, without TensorFlow.

Source layout (TFDS prepared dataset, schema of the ``bridge_dataset`` builder used by octo / OpenVLA)::

    <data_dir>/dataset_info.json   splits, shard lengths, file name template
    <data_dir>/features.json       feature schema
    <data_dir>/bridge_dataset-<split>.tfrecord-<shard>-of-<num_shards>

Each TFRecord record is one episode, a ``tf.train.Example`` whose per-step features are stored flattened over
the T steps: ``steps/observation/state`` float32 (T * 7,), ``steps/action`` float32 (T * 7,),
``steps/observation/image_0..3`` T JPEG strings, ``steps/language_instruction`` T strings, ``steps/is_first``
int64 (T,), and ``episode_metadata/{file_path, episode_id, has_image_k, has_language}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from depi.convert.tfrecord import FeatureValue, read_examples

BRIDGE_CAMERAS = ("image_0", "image_1", "image_2", "image_3")


class BridgeFormatError(ValueError):
    """The Bridge RLDS directory or one of its episodes does not match the ``bridge_dataset`` schema."""


@dataclass
class BridgeEpisode:
    """One decoded RLDS episode (images still JPEG-encoded).

    Attributes:
        source_file: TFRecord file name, relative to ``data_dir``.
        record_offset: byte offset of the episode's record in ``source_file``.
        state: float32 (T, 7). action: float32 (T, 7).
        images: camera name (``image_0``...) -> T JPEG byte strings (``b""`` where absent).
        instructions: T language instructions (may be empty strings).
        file_path: ``episode_metadata/file_path`` (the raw Bridge trajectory it came from), "" when absent.
        episode_id: ``episode_metadata/episode_id``, None when absent.
    """

    source_file: str
    record_offset: int
    state: np.ndarray
    action: np.ndarray
    images: dict[str, list[bytes]]
    instructions: list[str]
    file_path: str = ""
    episode_id: int | None = None

    @property
    def source_id(self) -> str:
        """``<file>@<byte offset>``: a stable id of the episode within the source directory."""
        return f"{self.source_file}@{self.record_offset}"

    @property
    def num_steps(self) -> int:
        return int(self.state.shape[0])


def split_files(data_dir: str | Path, split: str) -> list[Path]:
    """TFRecord shards of ``split`` (``train``, ``val``, or ``all`` for every split) from ``dataset_info.json``.

    Raises:
        FileNotFoundError: ``dataset_info.json`` or a shard it lists is missing.
        BridgeFormatError: unknown split, or ``dataset_info.json`` lacks ``splits`` / ``shardLengths``.
    """
    data_dir = Path(data_dir)
    info_path = data_dir / "dataset_info.json"
    if not info_path.is_file():
        raise FileNotFoundError(
            f"{info_path} not found: --data_dir must be a TFDS dataset version folder such as "
            "<tfds root>/bridge_dataset/1.0.0 holding dataset_info.json and the .tfrecord shards."
        )
    with open(info_path) as handle:
        info = json.load(handle)
    name = info.get("name", "bridge_dataset")
    splits = {entry["name"]: entry for entry in info.get("splits", [])}
    if not splits:
        raise BridgeFormatError(
            f"{info_path}: field 'splits' is missing or empty; expected the TFDS split list."
        )
    wanted = list(splits) if split == "all" else [split]
    files: list[Path] = []
    for split_name in wanted:
        if split_name not in splits:
            raise BridgeFormatError(
                f"{info_path}: no split {split_name!r}; found {sorted(splits)}. Pass --split with one of them or 'all'."
            )
        entry = splits[split_name]
        num_shards = len(entry.get("shardLengths", []))
        if num_shards == 0:
            raise BridgeFormatError(f"{info_path}: split {split_name!r} has no 'shardLengths'.")
        template = entry.get("filepathTemplate", "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}")
        for shard in range(num_shards):
            file_name = (
                template.replace("{DATASET}", name)
                .replace("{SPLIT}", split_name)
                .replace("{FILEFORMAT}", info.get("fileFormat", "tfrecord"))
                .replace("{SHARD_X_OF_Y}", f"{shard:05d}-of-{num_shards:05d}")
            )
            path = data_dir / file_name
            if not path.is_file():
                raise FileNotFoundError(f"{path} not found, but {info_path} lists it (split {split_name!r}).")
            files.append(path)
    return files


def num_split_episodes(data_dir: str | Path, split: str) -> int:
    """Number of episodes of ``split`` (or ``all``) according to ``dataset_info.json``'s shard lengths."""
    with open(Path(data_dir) / "dataset_info.json") as handle:
        info = json.load(handle)
    return sum(
        int(length)
        for entry in info["splits"]
        if split in ("all", entry["name"])
        for length in entry.get("shardLengths", [])
    )


def _field(example: dict[str, FeatureValue], key: str, where: str) -> FeatureValue:
    if key not in example:
        raise BridgeFormatError(
            f"{where}: feature {key!r} is missing; found {sorted(example)}. The record is not an episode of the "
            "bridge_dataset builder."
        )
    return example[key]


def decode_episode(
    example: dict[str, FeatureValue], *, source_file: str, record_offset: int
) -> BridgeEpisode:
    """Turn a parsed RLDS episode record into a :class:`BridgeEpisode`.

    Raises:
        BridgeFormatError: a required feature is missing or its length disagrees with the number of steps
            (``len(steps/is_first)``); the message names the file, the byte offset and the feature.
    """
    where = f"{source_file} (record at byte offset {record_offset})"
    num_steps = len(_field(example, "steps/is_first", where))
    if num_steps == 0:
        raise BridgeFormatError(f"{where}: episode has 0 steps ('steps/is_first' is empty).")

    def vector(key: str) -> np.ndarray:
        flat = np.asarray(_field(example, key, where), dtype=np.float32)
        if flat.size != num_steps * 7:
            raise BridgeFormatError(
                f"{where}: feature {key!r} holds {flat.size} floats, expected {num_steps} steps x 7 = {num_steps * 7}."
            )
        return flat.reshape(num_steps, 7)

    images: dict[str, list[bytes]] = {}
    for camera in BRIDGE_CAMERAS:
        key = f"steps/observation/{camera}"
        frames = example.get(key, [b""] * num_steps)
        if not isinstance(frames, list) or len(frames) != num_steps:
            raise BridgeFormatError(f"{where}: feature {key!r} should hold {num_steps} JPEG strings.")
        images[camera] = frames
    raw_instructions = example.get("steps/language_instruction", [b""] * num_steps)
    if not isinstance(raw_instructions, list):
        raise BridgeFormatError(f"{where}: feature 'steps/language_instruction' should be a bytes list.")
    file_path = example.get("episode_metadata/file_path", [])
    episode_id = example.get("episode_metadata/episode_id", [])
    return BridgeEpisode(
        source_file=source_file,
        record_offset=record_offset,
        state=vector("steps/observation/state"),
        action=vector("steps/action"),
        images=images,
        instructions=[text.decode("utf-8").strip() for text in raw_instructions],  # type: ignore[union-attr]
        file_path=file_path[0].decode("utf-8") if isinstance(file_path, list) and file_path else "",
        episode_id=int(episode_id[0]) if len(episode_id) else None,
    )


def iter_episodes(
    data_dir: str | Path, split: str, *, skip: set[str] | None = None
) -> Iterator[BridgeEpisode]:
    """Stream the episodes of ``split`` in file order, one record in memory at a time (CRCs verified).

    Args:
        skip: ``source_id`` values (``<file>@<offset>``) whose records are read past without being decoded.

    Raises:
        TFRecordError: a corrupt or truncated record (names the file and byte offset).
        BridgeFormatError: a record that is not a ``bridge_dataset`` episode.
    """
    skip = skip or set()
    for path in split_files(data_dir, split):
        skip_offsets = {int(sid.rpartition("@")[2]) for sid in skip if sid.rpartition("@")[0] == path.name}
        for offset, example in read_examples(path, skip_offsets=skip_offsets):
            yield decode_episode(example, source_file=path.name, record_offset=offset)
