"""Bridge V2 (RLDS / TFDS ``bridge_dataset`` builder) -> LeRobot v3.0.

The source is read by :mod:`depi.convert.bridge_episodes` (TFRecord + ``tf.train.Example``, no TensorFlow).

Mapping to LeRobot (fps 5, Bridge's control rate; ``robot_type`` ``widowx``):

* ``observation.state`` float32 (7,) <- ``steps/observation/state``: end-effector position (x, y, z in metres),
  orientation (roll, pitch, yaw in radians) and gripper opening, Bridge V2's convention.
* ``action`` float32 (7,) <- ``steps/action``: end-effector deltas (metres, radians) and the gripper command.
* ``observation.images.image_k`` video (H, W, 3) <- ``steps/observation/image_k`` (JPEG), optionally resized
  with padding to ``resize`` x ``resize`` (openpi's resize_with_pad).
* task <- the first non-empty ``steps/language_instruction`` of the episode.

Empty cameras: a camera is empty in an episode when every step's JPEG is missing (zero bytes) or decodes to an
all-black frame (the builder stores absent cameras as black images; ``has_image_k`` is not reliable, it is False
for present cameras in released shards). Before the first episode is written, the selected episodes are scanned
for each camera (stopping as soon as every camera was seen non-empty; ``--cameras image_0,...`` skips the scan
and writes the named cameras): a camera empty in every episode is left out of the dataset's features; a camera
empty in only some episodes is written as black frames there, and those episodes are listed with
``missing_cameras`` in ``meta/depi_convert_episodes.jsonl``. Single missing JPEGs inside an otherwise present
camera become black frames listed under ``blank_frames``.

Empty instructions: the task falls back to Bridge's task folder, the directory above the ``train``/``val``
folder in ``episode_metadata/file_path`` with ``_`` and ``-`` as spaces (``.../toysink2_bww/put_carrot_on_plate/
val/out.npy`` -> ``put carrot on plate``), else to :data:`UNLABELED_TASK`; ``task_source`` in
``meta/depi_convert_episodes.jsonl`` says which was used for each episode.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from depi.constants import ACTION, OBS_IMAGES_PREFIX, OBS_STATE
from depi.convert.bridge_episodes import (
    BRIDGE_CAMERAS,
    BridgeEpisode,
    BridgeFormatError,
    iter_episodes,
    num_split_episodes,
)
from depi.convert.images import ImageDecodeError, decode_image, resize_with_pad
from depi.convert.progress import ConvertProgress, ConvertResumeError, SourceEpisode, write_episodes
from depi.datasets.format.writer import DatasetWriter

BRIDGE_FPS = 5
BRIDGE_ROBOT_TYPE = "widowx"
STATE_NAMES = ["x", "y", "z", "roll", "pitch", "yaw", "gripper"]
ACTION_NAMES = ["delta_x", "delta_y", "delta_z", "delta_roll", "delta_pitch", "delta_yaw", "gripper"]
UNLABELED_TASK = "unlabeled bridge episode"
"""Task text of an episode with no language instruction and no task folder in its file path."""
_SPLIT_FOLDERS = {"train", "val", "test"}


def episode_task(episode: BridgeEpisode) -> tuple[str, str]:
    """``(task, task_source)``: the instruction, else the task folder of ``file_path``, else the fallback text.

    ``task_source`` is ``"instruction"``, ``"file_path"`` or ``"fallback"`` (see the module docstring).
    """
    for text in episode.instructions:
        if text:
            return text, "instruction"
    parts = PurePosixPath(episode.file_path).parts
    for i in range(len(parts) - 1, 0, -1):
        if parts[i] in _SPLIT_FOLDERS:
            folder = parts[i - 1].replace("_", " ").replace("-", " ").strip()
            if folder:
                return " ".join(folder.split()), "file_path"
    return UNLABELED_TASK, "fallback"


def _is_blank(data: bytes, where: str) -> tuple[bool, np.ndarray | None]:
    if not data:
        return True, None
    try:
        frame = decode_image(data)
    except ImageDecodeError as error:
        raise BridgeFormatError(f"{where}: {error}") from error
    return not frame.any(), frame


def scan_cameras(
    episodes: Iterator[BridgeEpisode], cameras: tuple[str, ...] = BRIDGE_CAMERAS
) -> tuple[list[str], tuple[int, int, int] | None]:
    """Find the cameras with content in at least one episode, and the source frame shape.

    Stops reading as soon as every camera was seen non-empty; a camera empty everywhere makes it read the whole
    split (name the cameras with ``--cameras`` to skip the scan on large splits).

    Returns:
        (cameras with content in ``cameras``' order, (H, W, 3) of the first decoded frame or None if none).
    """
    present: set[str] = set()
    shape: tuple[int, int, int] | None = None
    for episode in episodes:
        for camera in cameras:
            if camera in present:
                continue
            where = f"{episode.source_file} (record at byte offset {episode.record_offset}), camera {camera}"
            for data in episode.images[camera]:
                blank, frame = _is_blank(data, where)
                if frame is not None and shape is None:
                    shape = tuple(frame.shape)  # type: ignore[assignment]
                if not blank:
                    present.add(camera)
                    break
        if len(present) == len(cameras):
            break
    return [camera for camera in cameras if camera in present], shape


@dataclass
class EpisodeFrames:
    """Frames of one episode ready for the writer, and what had to be filled in.

    Attributes:
        frames: T dicts ``{observation.state: float32 (7,), action: float32 (7,), observation.images.<cam>:
            uint8 (H, W, 3)}``.
        missing_cameras: cameras empty for the whole episode (written as black frames).
        blank_frames: camera -> step indices whose JPEG was missing (written as black frames).
    """

    frames: list[dict[str, np.ndarray]]
    missing_cameras: list[str] = field(default_factory=list)
    blank_frames: dict[str, list[int]] = field(default_factory=dict)


def episode_frames(
    episode: BridgeEpisode, cameras: list[str], image_shape: tuple[int, int, int], resize: int | None
) -> EpisodeFrames:
    """Decode (and resize with padding) the episode's cameras and pair them with state and action per step.

    Args:
        episode: a decoded episode.
        cameras: cameras to write (``image_0``...).
        image_shape: (H, W, 3) every written frame must have (the dataset's feature shape).
        resize: when set, every frame is resized with padding to (resize, resize) first.

    Raises:
        BridgeFormatError: a JPEG does not decode, or a frame's shape differs from ``image_shape`` without
            ``resize`` (the message names the file, offset, camera, step and suggests ``--resize``).
    """
    where = f"{episode.source_file} (record at byte offset {episode.record_offset})"
    black = np.zeros(image_shape, dtype=np.uint8)
    per_camera: dict[str, list[np.ndarray]] = {}
    result = EpisodeFrames(frames=[])
    for camera in cameras:
        decoded: list[np.ndarray | None] = []
        for step, data in enumerate(episode.images[camera]):
            blank, frame = _is_blank(data, f"{where}, camera {camera}, step {step}")
            if frame is not None and not blank:
                frame = resize_with_pad(frame, resize, resize) if resize else frame
                if frame.shape != image_shape:
                    raise BridgeFormatError(
                        f"{where}, camera {camera}, step {step}: frame shape {frame.shape}, the dataset's "
                        f"feature shape is {image_shape}. Pass --resize N to bring every camera to N x N."
                    )
            decoded.append(frame)
        if all(frame is None or not frame.any() for frame in decoded):
            result.missing_cameras.append(camera)
        else:
            empty_steps = [step for step, frame in enumerate(decoded) if frame is None]
            if empty_steps:
                result.blank_frames[camera] = empty_steps
        per_camera[camera] = [
            black if frame is None or frame.shape != image_shape else frame for frame in decoded
        ]
    for step in range(episode.num_steps):
        frame = {OBS_STATE: episode.state[step], ACTION: episode.action[step]}
        for camera in cameras:
            frame[f"{OBS_IMAGES_PREFIX}{camera}"] = per_camera[camera][step]
        result.frames.append(frame)
    return result


def bridge_features(cameras: list[str], image_shape: tuple[int, int, int]) -> dict[str, dict]:
    """LeRobot feature spec of the converted dataset (state, action, one video feature per camera)."""
    features: dict[str, dict] = {
        OBS_STATE: {"dtype": "float32", "shape": (7,), "names": list(STATE_NAMES)},
        ACTION: {"dtype": "float32", "shape": (7,), "names": list(ACTION_NAMES)},
    }
    for camera in cameras:
        features[f"{OBS_IMAGES_PREFIX}{camera}"] = {
            "dtype": "video",
            "shape": tuple(image_shape),
            "names": ["height", "width", "channels"],
        }
    return features


@dataclass
class BridgeConvertConfig:
    """Options of ``depi-convert bridge`` (each field is a ``--flag``)."""

    # TFDS version folder holding dataset_info.json and the shards, e.g. .../bridge_dataset/1.0.0
    data_dir: Path
    # Parent folder: the dataset is written to <output_dir>/<repo_name>
    output_dir: Path
    # The output dataset's repo_id and folder name
    repo_name: str = "bridge_lerobot_224"
    # Resize every camera with padding (aspect kept) to resize x resize pixels; unset keeps the source size
    resize: int | None = None
    # Source split: train, val or all
    split: str = "train"
    # Stop once the output holds this many episodes (a rerun with a larger value appends)
    max_episodes: int | None = None
    # Codec of the mp4 files: h264, hevc or av1
    video_codec: str = "h264"
    # 'auto' (scan the split, drop cameras empty in every episode) or a comma-separated list written without a scan
    cameras: str = "auto"

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        self.output_dir = Path(self.output_dir)
        if self.resize is not None and self.resize <= 0:
            raise ValueError(f"--resize must be a positive number of pixels, got {self.resize}.")
        if self.max_episodes is not None and self.max_episodes <= 0:
            raise ValueError(f"--max_episodes must be positive, got {self.max_episodes}.")
        if not self.repo_name or ".." in Path(self.repo_name).parts or Path(self.repo_name).is_absolute():
            raise ValueError(
                f"--repo_name must be a relative name such as 'bridge_lerobot_224', got {self.repo_name!r}."
            )
        if self.cameras != "auto":
            unknown = [c for c in self.camera_list() if c not in BRIDGE_CAMERAS]
            if unknown or not self.camera_list():
                raise ValueError(
                    f"--cameras {self.cameras!r}: expected 'auto' or a comma-separated subset of {list(BRIDGE_CAMERAS)}."
                )

    def camera_list(self) -> list[str]:
        return [c.strip() for c in self.cameras.split(",") if c.strip()]

    @property
    def root(self) -> Path:
        return self.output_dir / self.repo_name

    def settings(self) -> dict[str, object]:
        """The options a resumed run must share with the run that started the dataset."""
        return {
            "data_dir": str(self.data_dir.resolve()),
            "split": self.split,
            "resize": self.resize,
            "cameras": self.cameras,
            "video_codec": self.video_codec,
        }


def _start_dataset(config: BridgeConvertConfig) -> tuple[DatasetWriter, ConvertProgress]:
    if config.cameras == "auto":
        cameras, shape = scan_cameras(iter_episodes(config.data_dir, config.split))
        if not cameras:
            raise BridgeFormatError(
                f"{config.data_dir}: no camera has a non-black frame in split {config.split!r}; nothing to convert."
            )
    else:
        cameras = config.camera_list()
        shape = (
            None
            if config.resize
            else scan_cameras(iter_episodes(config.data_dir, config.split), tuple(cameras))[1]
        )
    if config.resize:
        shape = (config.resize, config.resize, 3)
    if shape is None:
        raise BridgeFormatError(f"{config.data_dir}: split {config.split!r} holds no decodable camera frame.")
    config.root.parent.mkdir(parents=True, exist_ok=True)
    writer = DatasetWriter.create(
        config.root,
        repo_id=config.repo_name,
        fps=BRIDGE_FPS,
        features=bridge_features(cameras, shape),
        robot_type=BRIDGE_ROBOT_TYPE,
        use_videos=True,
        video_codec=config.video_codec,
    )
    progress = ConvertProgress(
        root=config.root,
        converter="bridge",
        settings=config.settings(),
        cameras=cameras,
        image_shape=list(shape),
    )
    progress.save()
    return writer, progress


def convert_bridge(config: BridgeConvertConfig) -> Path:
    """Convert Bridge V2 RLDS episodes to a LeRobot v3.0 dataset at ``config.root``, resuming a partial one.

    Episodes stream through one at a time (memory does not grow with the number of episodes). After each saved
    episode a line is appended to ``meta/depi_convert_episodes.jsonl`` (see :mod:`depi.convert.progress`);
    rerunning the same command after an interruption reopens the dataset with ``DatasetWriter.resume`` and skips
    the episodes it lists.

    Returns:
        The dataset root.

    Raises:
        FileNotFoundError / BridgeFormatError / TFRecordError: bad source (names the file, offset and field).
        ConvertResumeError: ``config.root`` exists but was not started by the same command.
    """
    if config.root.exists():
        progress = ConvertProgress.load(config.root, "bridge", config.settings())
        writer = DatasetWriter.resume(config.root)
    else:
        writer, progress = _start_dataset(config)
    if progress.image_shape is None:
        raise ConvertResumeError(
            f"{progress.path}: field 'image_shape' is missing; delete {config.root} and rerun."
        )
    image_shape = tuple(progress.image_shape)
    total = num_split_episodes(config.data_dir, config.split)
    if config.max_episodes is not None:
        total = min(total, config.max_episodes)

    def converted() -> Iterator[SourceEpisode]:
        for episode in iter_episodes(config.data_dir, config.split, skip=progress.done_source_ids):
            task, task_source = episode_task(episode)
            frames = episode_frames(episode, progress.cameras, image_shape, config.resize)  # type: ignore[arg-type]
            details: dict[str, object] = {
                "source_episode_id": episode.episode_id,
                "source_file_path": episode.file_path,
                "task_source": task_source,
            }
            if frames.missing_cameras:
                details["missing_cameras"] = frames.missing_cameras
            if frames.blank_frames:
                details["blank_frames"] = frames.blank_frames
            yield SourceEpisode(source_id=episode.source_id, task=task, frames=frames.frames, details=details)

    write_episodes(writer, progress, converted(), total=total, desc="bridge -> LeRobot")
    return config.root
