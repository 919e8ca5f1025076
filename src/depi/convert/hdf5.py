"""HDF5 episode files (ALOHA-style and custom layouts) -> LeRobot v3.0, through a small mapping file.

One HDF5 file is one episode. The mapping file (YAML or JSON) says which HDF5 dataset is what::

    fps: 50                                   # Hz, required
    task: "transfer the cube"                 # task text of every episode, required
    task_attribute: language_instruction      # optional: root attribute holding a per-file task (else `task`)
    robot_type: aloha                         # optional
    file_pattern: "*.hdf5"                    # optional glob under --input_dir, recursive; default *.hdf5 and *.h5
    state: /observations/qpos                 # (T, D) or (T,)  -> observation.state float32 (D,)
    action: /action                           # (T, D) or (T,)  -> action float32 (D,)
    action_from_next_state: false             # true: action[t] = state[t + 1], the last frame is dropped
    cameras:                                  # camera name -> dataset; or one group path: every dataset in it
      cam_high: /observations/images/cam_high
    extra:                                    # optional: more low-dim features, LeRobot key -> dataset
      observation.velocity: /observations/qvel
    state_names: [...]                        # optional per-dimension names (LeRobot features' "names")
    action_names: [...]
    resize: null                              # optional: resize cameras with padding to N x N pixels
    video_codec: h264

ALOHA (``act`` / ``aloha`` recording scripts) stores ``/observations/qpos`` (T, 14), ``/action`` (T, 14) and
``/observations/images/<cam>`` as raw uint8 (T, H, W, 3) or, when recorded with compression, as zero-padded
JPEG bytes (T, N) uint8; both are read. Cameras may also be (T, 3, H, W) or variable-length bytes (T,).

``action_from_next_state``: for datasets that record only states (positions), the action of frame t is the
state of frame t + 1 (the position commanded next), so the last frame has no action and is dropped: an episode
of T recorded states becomes T - 1 frames. ``action`` must then be absent from the mapping.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import yaml

from depi.constants import ACTION, OBS_IMAGES_PREFIX, OBS_STATE
from depi.convert.images import ImageDecodeError, decode_image, resize_with_pad
from depi.convert.progress import ConvertProgress, SourceEpisode, write_episodes
from depi.datasets.format.writer import DatasetWriter


class HDF5MappingError(ValueError):
    """The mapping file is malformed, or an HDF5 file does not hold what the mapping names."""


@dataclass
class HDF5Mapping:
    """Parsed mapping file (see the module docstring for every field)."""

    fps: float
    task: str
    state: str
    action: str | None = None
    action_from_next_state: bool = False
    cameras: dict[str, str] | str = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)
    task_attribute: str | None = None
    robot_type: str | None = None
    file_pattern: str | None = None
    state_names: list[str] | None = None
    action_names: list[str] | None = None
    resize: int | None = None
    video_codec: str = "h264"
    source: str = "<mapping>"

    def __post_init__(self) -> None:
        where = f"mapping file {self.source}"
        if not isinstance(self.fps, (int, float)) or self.fps <= 0:
            raise HDF5MappingError(
                f"{where}: 'fps' is {self.fps!r}, expected a positive number of frames per second."
            )
        if not isinstance(self.task, str) or not self.task.strip():
            raise HDF5MappingError(
                f"{where}: 'task' is {self.task!r}, expected the task text, e.g. 'fold the towel'."
            )
        if self.action_from_next_state and self.action is not None:
            raise HDF5MappingError(
                f"{where}: 'action' is {self.action!r} and 'action_from_next_state' is true; keep only one of them."
            )
        if not self.action_from_next_state and self.action is None:
            raise HDF5MappingError(
                f"{where}: 'action' is missing; name the HDF5 dataset holding actions (e.g. /action), or set "
                "'action_from_next_state: true' for datasets that record only states."
            )
        for name in ("state", "action", "task_attribute", "robot_type", "file_pattern"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise HDF5MappingError(f"{where}: {name!r} is {value!r}, expected a string.")
        if not isinstance(self.cameras, (str, dict)) or (
            isinstance(self.cameras, dict) and not all(isinstance(v, str) for v in self.cameras.values())
        ):
            raise HDF5MappingError(
                f"{where}: 'cameras' is {self.cameras!r}; expected a dict camera name -> HDF5 dataset path, or one "
                "HDF5 group path whose datasets are the cameras."
            )
        if not isinstance(self.extra, dict) or not all(isinstance(v, str) for v in self.extra.values()):
            raise HDF5MappingError(
                f"{where}: 'extra' is {self.extra!r}; expected a dict LeRobot key -> HDF5 path."
            )
        if self.resize is not None and self.resize <= 0:
            raise HDF5MappingError(
                f"{where}: 'resize' is {self.resize}, expected a positive number of pixels."
            )
        for key in self.extra:
            if key in (OBS_STATE, ACTION) or key.startswith(OBS_IMAGES_PREFIX):
                raise HDF5MappingError(f"{where}: 'extra' key {key!r} clashes with state/action/cameras.")

    @classmethod
    def from_file(cls, path: str | Path) -> HDF5Mapping:
        """Read a ``.yaml`` / ``.yml`` / ``.json`` mapping file.

        Raises:
            FileNotFoundError: no such file.
            HDF5MappingError: unknown or missing keys, wrong values (names the file and the key).
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"mapping file {path} not found (pass --mapping path/to/mapping.yaml).")
        text = path.read_text()
        raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        if not isinstance(raw, dict):
            raise HDF5MappingError(
                f"mapping file {path}: expected a mapping of keys to values, got {type(raw).__name__}."
            )
        allowed = {f.name for f in fields(cls)} - {"source"}
        unknown = sorted(set(raw) - allowed)
        if unknown:
            raise HDF5MappingError(
                f"mapping file {path}: unknown keys {unknown}; allowed keys are {sorted(allowed)}."
            )
        missing = sorted({"fps", "task", "state"} - set(raw))
        if missing:
            raise HDF5MappingError(f"mapping file {path}: required keys {missing} are missing.")
        return cls(**raw, source=str(path))

    def settings(self) -> dict[str, Any]:
        """The mapping as plain data, recorded in the sidecar so a resumed run must use the same mapping."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "source"}


def episode_files(input_dir: str | Path, pattern: str | None) -> list[Path]:
    """HDF5 files under ``input_dir`` (recursive), sorted by relative path; one file is one episode.

    Raises:
        FileNotFoundError: ``input_dir`` is missing or holds no matching file.
    """
    input_dir = Path(input_dir)
    if not input_dir.is_dir():
        raise FileNotFoundError(f"--input_dir {input_dir} is not a directory.")
    patterns = [pattern] if pattern else ["*.hdf5", "*.h5"]
    files = sorted({p for pat in patterns for p in input_dir.rglob(pat) if p.is_file()})
    if not files:
        raise FileNotFoundError(f"no HDF5 file matching {patterns} under {input_dir}.")
    return files


def _open(file: Path) -> h5py.File:
    try:
        return h5py.File(file, "r")
    except OSError as error:
        raise HDF5MappingError(f"{file}: not a readable HDF5 file ({error}).") from error


def _dataset(handle: h5py.File, path: str, role: str, file: Path, mapping: HDF5Mapping) -> h5py.Dataset:
    node = handle.get(path)
    if not isinstance(node, h5py.Dataset):
        found: list[str] = []
        handle.visititems(
            lambda name, obj: found.append("/" + name) if isinstance(obj, h5py.Dataset) else None
        )
        what = "is a group, not a dataset" if node is not None else "not found"
        raise HDF5MappingError(
            f"{file}: HDF5 path {path!r} ({role}) {what}; the file holds datasets {found}. Fix {role!r} in "
            f"mapping file {mapping.source}."
        )
    return node


def _camera_paths(handle: h5py.File, file: Path, mapping: HDF5Mapping) -> dict[str, str]:
    if isinstance(mapping.cameras, dict):
        return dict(mapping.cameras)
    group = handle.get(mapping.cameras)
    if not isinstance(group, h5py.Group):
        raise HDF5MappingError(
            f"{file}: HDF5 group {mapping.cameras!r} (cameras) not found. Fix 'cameras' in mapping file "
            f"{mapping.source}: a group path or a dict camera name -> dataset path."
        )
    return {
        name: f"{mapping.cameras.rstrip('/')}/{name}"
        for name in sorted(group)
        if isinstance(group[name], h5py.Dataset)
    }


def _low_dim(dataset: h5py.Dataset, role: str, file: Path) -> np.ndarray:
    array = np.asarray(dataset[()])
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.dtype.kind not in "fiub":
        raise HDF5MappingError(
            f"{file}: {dataset.name} ({role}) is {array.dtype} {array.shape}, expected numbers shaped (T, D) or (T,)."
        )
    return array.astype(np.float32)


def _camera_frame(dataset: h5py.Dataset, index: int, file: Path) -> np.ndarray:
    """Frame ``index`` of a camera dataset as uint8 (H, W, 3): raw HWC / CHW, or encoded bytes (padded or vlen)."""
    item = dataset[index]
    try:
        if isinstance(item, (bytes, np.bytes_)):
            return decode_image(bytes(item))
        item = np.asarray(item)
        if item.ndim == 1 and item.dtype == np.uint8:
            return decode_image(item.tobytes())
    except ImageDecodeError as error:
        raise HDF5MappingError(f"{file}: {dataset.name}[{index}]: {error}") from error
    if item.ndim == 3 and item.shape[0] == 3 and item.shape[-1] != 3:
        item = item.transpose(1, 2, 0)
    if item.ndim != 3 or item.shape[-1] != 3 or item.dtype != np.uint8:
        raise HDF5MappingError(
            f"{file}: {dataset.name}[{index}] is {item.dtype} {item.shape}; expected uint8 (H, W, 3), (3, H, W) "
            "or encoded JPEG/PNG bytes."
        )
    return item


@dataclass
class HDF5Episode:
    """Low-dim arrays of one episode file, and its camera datasets (read frame by frame)."""

    file: Path
    task: str
    state: np.ndarray  # float32 (T, D_state)
    action: np.ndarray  # float32 (T, D_action)
    extra: dict[str, np.ndarray]  # LeRobot key -> float32 (T, D)
    cameras: dict[str, str]  # camera name -> HDF5 dataset path

    @property
    def num_frames(self) -> int:
        return int(self.state.shape[0])


def read_episode(file: Path, mapping: HDF5Mapping) -> HDF5Episode:
    """Check ``file`` against the mapping and read its low-dim arrays (cameras stay on disk).

    With ``action_from_next_state`` the arrays are already cut to T - 1 frames (``action[t] = state[t + 1]``).

    Raises:
        HDF5MappingError: a mapped path is missing, a shape is wrong, or lengths disagree (names the file and the
            HDF5 path).
    """
    with _open(file) as handle:
        state = _low_dim(_dataset(handle, mapping.state, "state", file, mapping), "state", file)
        length = state.shape[0]
        if mapping.action_from_next_state:
            if length < 2:
                raise HDF5MappingError(
                    f"{file}: {mapping.state} has {length} frames; action_from_next_state needs 2+."
                )
            state, action = state[:-1], state[1:].copy()
        else:
            action = _low_dim(_dataset(handle, mapping.action, "action", file, mapping), "action", file)  # type: ignore[arg-type]
        extra = {
            key: _low_dim(_dataset(handle, path, key, file, mapping), key, file)
            for key, path in mapping.extra.items()
        }
        cameras = _camera_paths(handle, file, mapping)
        lengths = {
            mapping.state: length,
            **{path: extra[key].shape[0] for key, path in mapping.extra.items()},
        }
        if not mapping.action_from_next_state:
            lengths[mapping.action] = action.shape[0]  # type: ignore[index]
        for name, path in cameras.items():
            lengths[path] = _dataset(handle, path, f"cameras.{name}", file, mapping).shape[0]
        if len(set(lengths.values())) != 1:
            raise HDF5MappingError(
                f"{file}: datasets have different numbers of frames {lengths}; every mapped dataset must have one "
                "row per frame."
            )
        task = mapping.task
        if mapping.task_attribute and mapping.task_attribute in handle.attrs:
            value = handle.attrs[mapping.task_attribute]
            text = value.decode() if isinstance(value, bytes) else str(value)
            task = text.strip() or mapping.task
    keep = state.shape[0]
    return HDF5Episode(
        file=file,
        task=task,
        state=state,
        action=action,
        extra={key: value[:keep] for key, value in extra.items()},
        cameras=cameras,
    )


def episode_frames(
    episode: HDF5Episode, camera_shapes: dict[str, tuple[int, int, int]], resize: int | None
) -> Iterator[dict]:
    """Yield the episode's frames for the writer, reading one camera frame at a time from the file.

    Raises:
        HDF5MappingError: a camera frame's shape differs from the dataset's (suggests ``resize`` in the mapping).
    """
    with _open(episode.file) as handle:
        for t in range(episode.num_frames):
            frame: dict[str, Any] = {OBS_STATE: episode.state[t], ACTION: episode.action[t]}
            frame.update({key: values[t] for key, values in episode.extra.items()})
            for name, shape in camera_shapes.items():
                image = _camera_frame(handle[episode.cameras[name]], t, episode.file)
                image = resize_with_pad(image, resize, resize) if resize else image
                if image.shape != shape:
                    raise HDF5MappingError(
                        f"{episode.file}: {episode.cameras[name]}[{t}] is {image.shape}, the dataset's camera "
                        f"{name!r} is {shape}. Set 'resize: N' in the mapping file to bring every camera to N x N."
                    )
                frame[f"{OBS_IMAGES_PREFIX}{name}"] = image
            yield frame


def _features(
    first: HDF5Episode, mapping: HDF5Mapping
) -> tuple[dict[str, dict], dict[str, tuple[int, int, int]]]:
    def vector(values: np.ndarray, names: list[str] | None, key: str) -> dict:
        dim = int(values.shape[1])
        if names is not None and len(names) != dim:
            raise HDF5MappingError(
                f"mapping file {mapping.source}: {key} has {dim} dims in {first.file}, names list {len(names)}."
            )
        return {"dtype": "float32", "shape": (dim,), "names": names}

    features = {
        OBS_STATE: vector(first.state, mapping.state_names, "state_names"),
        ACTION: vector(first.action, mapping.action_names, "action_names"),
        **{key: vector(values, None, key) for key, values in first.extra.items()},
    }
    shapes: dict[str, tuple[int, int, int]] = {}
    with _open(first.file) as handle:
        for name, path in first.cameras.items():
            image = _camera_frame(handle[path], 0, first.file)
            shapes[name] = (mapping.resize, mapping.resize, 3) if mapping.resize else tuple(image.shape)  # type: ignore[assignment]
            features[f"{OBS_IMAGES_PREFIX}{name}"] = {
                "dtype": "video",
                "shape": shapes[name],
                "names": ["height", "width", "channels"],
            }
    return features, shapes


def convert_hdf5(mapping: HDF5Mapping, input_dir: str | Path, output_dir: str | Path, repo_name: str) -> Path:
    """Convert every HDF5 episode file under ``input_dir`` to a LeRobot v3.0 dataset at ``output_dir/repo_name``.

    Files stream through one at a time, cameras frame by frame. Resumable like the Bridge converter: rerunning
    the same command skips the files listed in ``meta/depi_convert_episodes.jsonl``.

    Returns:
        The dataset root.

    Raises:
        FileNotFoundError: no input files. HDF5MappingError: a file does not match the mapping.
        ConvertResumeError: the output exists but was started with another mapping or input_dir.
    """
    input_dir = Path(input_dir)
    root = Path(output_dir) / repo_name
    files = episode_files(input_dir, mapping.file_pattern)
    settings = {"input_dir": str(input_dir.resolve()), "mapping": mapping.settings()}
    if root.exists():
        progress = ConvertProgress.load(root, "hdf5", settings)
        writer = DatasetWriter.resume(root)
    else:
        first = read_episode(files[0], mapping)
        features, shapes = _features(first, mapping)
        root.parent.mkdir(parents=True, exist_ok=True)
        writer = DatasetWriter.create(
            root,
            repo_id=repo_name,
            fps=mapping.fps,  # type: ignore[arg-type]
            features=features,
            robot_type=mapping.robot_type,
            video_codec=mapping.video_codec,
        )
        progress = ConvertProgress(root=root, converter="hdf5", settings=settings, cameras=sorted(shapes))
        progress.save()
    camera_shapes = {
        key[len(OBS_IMAGES_PREFIX) :]: tuple(feature["shape"])
        for key, feature in writer.features.items()
        if key.startswith(OBS_IMAGES_PREFIX)
    }
    done = progress.done_source_ids

    def converted() -> Iterator[SourceEpisode]:
        for file in files:
            source_id = file.relative_to(input_dir).as_posix()
            if source_id in done:
                continue
            episode = read_episode(file, mapping)
            missing = sorted(set(camera_shapes) - set(episode.cameras))
            if missing:
                raise HDF5MappingError(
                    f"{file}: cameras {missing} of the dataset are missing from this file."
                )
            yield SourceEpisode(
                source_id=source_id,
                task=episode.task,
                frames=episode_frames(episode, camera_shapes, mapping.resize),  # type: ignore[arg-type]
                details={"num_frames": episode.num_frames},
            )

    write_episodes(writer, progress, converted(), total=len(files), desc="hdf5 -> LeRobot")
    return root
