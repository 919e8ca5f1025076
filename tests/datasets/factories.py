"""Write real on-disk LeRobot datasets (v2.0, v2.1, v3.0) for tests, with pyarrow and PyAV only.

Usage::

    from tests.datasets.factories import CameraSpec, DatasetSpec, make_lerobot_dataset, identify_frame

    spec = DatasetSpec(version="v3.0", episode_lengths=(8, 12), fps=10,
                       cameras=(CameraSpec("observation.images.front"),
                                CameraSpec("observation.images.wrist", storage="image")))
    root = make_lerobot_dataset(tmp_path / "ds", spec)      # -> Path holding meta/, data/, videos/
    root = make_lerobot_dataset(tmp_path / "v2", spec, version="v2.1", codec="libsvtav1")  # field overrides

In tests under ``tests/datasets`` the ``make_dataset`` and ``video_dataset`` fixtures of ``conftest.py`` wrap
this (and point the Arrow cache at a temporary folder).

Every value identifies its (episode, frame), so a test can check that the right frame came back:

* ``observation.state[d] = expected_state(episode, frame, dim)[d] = episode * 1000 + frame + d / 100``
* ``action[d] = expected_action(episode, frame, dim)[d] = -(episode * 1000 + frame) - d / 100``
* camera images (:func:`frame_image`): a 4 x 6 grid of blocks, each block on/off encodes one bit of
  ``episode * 2**13 + frame`` (frame < 8192, episode < 1024; the last block is always on); the "on" colour
  tells the camera apart (``CAMERA_COLOURS[camera position]``). :func:`identify_frame` reads
  (episode, frame, camera position) back from a decoded (C, H, W) or (H, W, C) uint8 image; the blocks
  survive lossy codecs (H.264, HEVC, AV1 at the default quality).

Layout follows lerobot (``src/lerobot/datasets/utils.py``): v2.x has one parquet / mp4 per episode and
``episodes.jsonl`` / ``tasks.jsonl`` (+ ``episodes_stats.jsonl`` for v2.1, ``stats.json`` for v2.0);
v3.0 concatenates ``episodes_per_file`` episodes per parquet and per mp4 and writes
``meta/episodes/chunk-000/file-000.parquet``, ``meta/tasks.parquet`` and ``meta/stats.json``.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

GRID_ROWS, GRID_COLS = 4, 6
FRAME_BITS, EPISODE_BITS = 13, 10  # frame < 8192, episode < 1024; the last of the 24 blocks is always on
CAMERA_COLOURS = ((255, 255, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255))

V2_DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
V2_VIDEO_PATH = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
V3_DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
V3_VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
V3_EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"


@dataclass(frozen=True)
class CameraSpec:
    """One camera: ``storage="video"`` writes mp4 files, ``"image"`` PNG bytes inside the parquet."""

    key: str
    storage: Literal["video", "image"] = "video"
    height: int = 64
    width: int = 96


@dataclass(frozen=True)
class DatasetSpec:
    """What :func:`make_lerobot_dataset` writes. ``codec``: PyAV encoder name (``libx264``, ``libsvtav1``,
    ``libx265``); ``gop_size``: keyframe interval in frames (lerobot encodes with 2); ``crf``: quality;
    ``variable_length_lists``: store state/action as ``list<float>`` (like the reachy2 recording) instead of
    ``fixed_size_list``; ``episodes_per_file``: v3.0 episodes per parquet / mp4 (None: all in one);
    ``textured``: draw the "off" blocks of video frames as a moving noise texture (values < 96), so that video
    decoding costs about what camera footage costs (benchmarks); frames stay identifiable."""

    version: Literal["v2.0", "v2.1", "v3.0"] = "v3.0"
    episode_lengths: tuple[int, ...] = (8, 12)
    fps: int = 10
    state_dim: int = 6
    action_dim: int = 6
    cameras: tuple[CameraSpec, ...] = ()
    codec: str = "libx264"
    gop_size: int = 4
    crf: int = 23
    tasks: tuple[str, ...] = ("pick up the cube", "open the drawer")
    robot_type: str = "so100"
    variable_length_lists: bool = False
    episodes_per_file: int | None = None
    chunks_size: int = 1000
    textured: bool = False
    extra_info: dict = field(default_factory=dict)


# 3 episodes (8, 12, 5 frames) at 10 fps, a video camera and an image-in-parquet camera; v3.0 puts two
# episodes per file, so concatenated mp4s and file boundaries are both exercised.
VIDEO_DATASET_SPEC = DatasetSpec(
    episode_lengths=(8, 12, 5),
    fps=10,
    state_dim=4,
    action_dim=3,
    cameras=(CameraSpec("observation.images.front"), CameraSpec("observation.images.wrist", storage="image")),
    episodes_per_file=2,
)
# A real Reachy2 recording (LeRobot v3.0) shipped beside the repository; tests skip where it is absent.
REACHY2_ROOT = Path(__file__).resolve().parents[3] / "shared" / "data" / "reachy2_apple_storage_v30"


def expected_state(episode_index: int, frame_index: int, dim: int) -> np.ndarray:
    """float32 (dim,) ``observation.state`` written for this frame."""
    return (episode_index * 1000 + frame_index + np.arange(dim) / 100).astype(np.float32)


def expected_action(episode_index: int, frame_index: int, dim: int) -> np.ndarray:
    """float32 (dim,) ``action`` written for this frame."""
    return (-(episode_index * 1000 + frame_index) - np.arange(dim) / 100).astype(np.float32)


def _texture(height: int, width: int, frame_index: int) -> np.ndarray:
    """uint8 (H, W, 3) smooth noise in [0, 96) that drifts 3 pixels per frame."""
    rng = np.random.default_rng(height * 10007 + width)
    coarse = rng.integers(0, 96, size=(height // 8 + 2, width // 8 + 2, 3), dtype=np.uint8)
    fine = np.repeat(np.repeat(coarse, 8, axis=0), 8, axis=1)[:height, : width + 8]
    noise = rng.integers(0, 16, size=fine.shape, dtype=np.uint8)
    return np.roll(fine // 2 + noise + fine // 3, 3 * frame_index, axis=1)[:, :width]


def frame_image(
    episode_index: int,
    frame_index: int,
    height: int,
    width: int,
    camera_position: int = 0,
    textured: bool = False,
) -> np.ndarray:
    """uint8 (H, W, 3) image identifying (episode, frame, camera position); see the module docstring."""
    if not (0 <= frame_index < 2**FRAME_BITS and 0 <= episode_index < 2**EPISODE_BITS):
        raise ValueError(f"frame_image encodes frame < {2**FRAME_BITS} and episode < {2**EPISODE_BITS}")
    code = episode_index * 2**FRAME_BITS + frame_index + 2 ** (FRAME_BITS + EPISODE_BITS)
    bits = [(code >> b) & 1 for b in range(GRID_ROWS * GRID_COLS)]
    rows = np.arange(height) * GRID_ROWS // height
    cols = np.arange(width) * GRID_COLS // width
    on = np.array(bits, dtype=bool).reshape(GRID_ROWS, GRID_COLS)[rows[:, None], cols[None, :]]
    image = _texture(height, width, frame_index) if textured else np.zeros((height, width, 3), dtype=np.uint8)
    image[on] = CAMERA_COLOURS[camera_position % len(CAMERA_COLOURS)]
    return image


def identify_frame(image: np.ndarray) -> tuple[int, int, int]:
    """(episode, frame, camera position) encoded in a decoded uint8 image, (C, H, W) or (H, W, C)."""
    image = np.asarray(image)
    if image.shape[0] == 3 and image.shape[-1] != 3:
        image = image.transpose(1, 2, 0)
    height, width = image.shape[:2]
    code, on_pixels = 0, []
    for b in range(GRID_ROWS * GRID_COLS):
        r, c = divmod(b, GRID_COLS)
        y0, y1 = r * height // GRID_ROWS, (r + 1) * height // GRID_ROWS
        x0, x1 = c * width // GRID_COLS, (c + 1) * width // GRID_COLS
        dy, dx = max((y1 - y0) // 4, 0), max((x1 - x0) // 4, 0)
        block = image[y0 + dy : y1 - dy, x0 + dx : x1 - dx].reshape(-1, 3).astype(np.float32).mean(axis=0)
        if block.max() > 128:
            code |= 1 << b
            on_pixels.append(block)
    camera = 0
    if on_pixels:
        mean = np.mean(on_pixels, axis=0)
        camera = int(np.argmin([np.abs(mean - np.array(c)).sum() for c in CAMERA_COLOURS]))
    return (code >> FRAME_BITS) & (2**EPISODE_BITS - 1), code & (2**FRAME_BITS - 1), camera


def _list_type(dim: int, variable: bool) -> pa.DataType:
    return pa.list_(pa.float32()) if variable else pa.list_(pa.float32(), dim)


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _features(spec: DatasetSpec) -> dict:
    features: dict = {
        "observation.state": {
            "dtype": "float32",
            "shape": [spec.state_dim],
            "names": [f"joint_{i}" for i in range(spec.state_dim)],
        },
        "action": {
            "dtype": "float32",
            "shape": [spec.action_dim],
            "names": [f"joint_{i}" for i in range(spec.action_dim)],
        },
    }
    for cam in spec.cameras:
        ft = {
            "dtype": cam.storage,
            "shape": [cam.height, cam.width, 3],
            "names": ["height", "width", "channels"],
        }
        if cam.storage == "video":
            ft["info"] = {
                "video.fps": float(spec.fps),
                "video.height": cam.height,
                "video.width": cam.width,
                "video.channels": 3,
                "video.codec": spec.codec,
                "video.pix_fmt": "yuv420p",
                "video.is_depth_map": False,
                "has_audio": False,
            }
        features[cam.key] = ft
    features["timestamp"] = {"dtype": "float32", "shape": [1], "names": None}
    for key in ("frame_index", "episode_index", "index", "task_index"):
        features[key] = {"dtype": "int64", "shape": [1], "names": None}
    return features


def _frames_table(spec: DatasetSpec, episodes: list[int], starts: dict[int, int]) -> pa.Table:
    cols: dict[str, list] = {
        k: []
        for k in (
            "observation.state",
            "action",
            "timestamp",
            "frame_index",
            "episode_index",
            "index",
            "task_index",
        )
    }
    images: dict[str, list] = {c.key: [] for c in spec.cameras if c.storage == "image"}
    for ep in episodes:
        for f in range(spec.episode_lengths[ep]):
            cols["observation.state"].append(expected_state(ep, f, spec.state_dim))
            cols["action"].append(expected_action(ep, f, spec.action_dim))
            cols["timestamp"].append(f / spec.fps)
            cols["frame_index"].append(f)
            cols["episode_index"].append(ep)
            cols["index"].append(starts[ep] + f)
            cols["task_index"].append(ep % len(spec.tasks))
            for pos, cam in enumerate(spec.cameras):
                if cam.storage == "image":
                    png = _png(frame_image(ep, f, cam.height, cam.width, pos))
                    images[cam.key].append({"bytes": png, "path": f"frame_{ep:06d}_{f:06d}.png"})
    arrays = {
        "observation.state": pa.array(
            cols["observation.state"], _list_type(spec.state_dim, spec.variable_length_lists)
        ),
        "action": pa.array(cols["action"], _list_type(spec.action_dim, spec.variable_length_lists)),
        "timestamp": pa.array(cols["timestamp"], pa.float32()),
        **{k: pa.array(cols[k], pa.int64()) for k in ("frame_index", "episode_index", "index", "task_index")},
    }
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    arrays.update({k: pa.array(v, image_type) for k, v in images.items()})
    return pa.table(arrays)


def _write_video(path: Path, spec: DatasetSpec, cam: CameraSpec, position: int, episodes: list[int]) -> None:
    """Encode the episodes' frames back to back into one mp4 (pts = running frame count at 1/fps)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(spec.codec, rate=spec.fps)
        stream.width, stream.height, stream.pix_fmt = cam.width, cam.height, "yuv420p"
        stream.codec_context.time_base = Fraction(1, spec.fps)
        options = {"g": str(spec.gop_size), "crf": str(spec.crf)}
        if spec.codec == "libx265":
            options["x265-params"] = "log-level=error"
        if spec.codec == "libsvtav1":
            options["preset"] = "8"
        stream.options = options
        pts = 0
        for ep in episodes:
            for f in range(spec.episode_lengths[ep]):
                image = frame_image(ep, f, cam.height, cam.width, position, spec.textured)
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts, frame.time_base = pts, Fraction(1, spec.fps)
                container.mux(stream.encode(frame))
                pts += 1
        container.mux(stream.encode(None))


def _low_dim_stats(values: np.ndarray) -> dict[str, list]:
    return {
        "min": values.min(0).tolist(),
        "max": values.max(0).tolist(),
        "mean": values.mean(0).tolist(),
        "std": values.std(0).tolist(),
        "count": [len(values)],
    }


def _episode_stats(spec: DatasetSpec, episodes: list[int]) -> dict[str, dict[str, list]]:
    state = np.stack(
        [expected_state(e, f, spec.state_dim) for e in episodes for f in range(spec.episode_lengths[e])]
    )
    action = np.stack(
        [expected_action(e, f, spec.action_dim) for e in episodes for f in range(spec.episode_lengths[e])]
    )
    return {"observation.state": _low_dim_stats(state), "action": _low_dim_stats(action)}


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _tasks_parquet(tasks: tuple[str, ...]) -> pa.Table:
    """tasks.parquet as pandas writes it: task strings in the index column ``__index_level_0__``."""
    pandas_meta = {
        "index_columns": ["__index_level_0__"],
        "column_indexes": [],
        "columns": [
            {
                "name": "task_index",
                "field_name": "task_index",
                "pandas_type": "int64",
                "numpy_type": "int64",
                "metadata": None,
            },
            {
                "name": None,
                "field_name": "__index_level_0__",
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": None,
            },
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.3",
    }
    table = pa.table(
        {"task_index": pa.array(range(len(tasks)), pa.int64()), "__index_level_0__": list(tasks)}
    )
    return table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})


def make_lerobot_dataset(root: str | Path, spec: DatasetSpec | None = None, **overrides) -> Path:
    """Write the dataset described by ``spec`` (fields overridable by keyword) under ``root``; returns root."""
    spec = DatasetSpec(**{**(spec.__dict__ if spec else {}), **overrides})
    root = Path(root)
    (root / "meta").mkdir(parents=True, exist_ok=True)
    n_eps = len(spec.episode_lengths)
    starts = {e: int(sum(spec.episode_lengths[:e])) for e in range(n_eps)}
    video_cams = [(p, c) for p, c in enumerate(spec.cameras) if c.storage == "video"]
    info = {
        "codebase_version": spec.version,
        "robot_type": spec.robot_type,
        "total_episodes": n_eps,
        "total_frames": int(sum(spec.episode_lengths)),
        "total_tasks": len(spec.tasks),
        "chunks_size": spec.chunks_size,
        "fps": spec.fps,
        "splits": {"train": f"0:{n_eps}"},
        "features": _features(spec),
    }
    if spec.version == "v3.0":
        _write_v3(root, spec, starts, video_cams, info)
    else:
        _write_v2(root, spec, starts, video_cams, info)
    info.update(spec.extra_info)
    (root / "meta" / "info.json").write_text(json.dumps(info, indent=2))
    return root


def _write_v2(root: Path, spec: DatasetSpec, starts: dict, video_cams: list, info: dict) -> None:
    n_eps = len(spec.episode_lengths)
    info.update(
        total_videos=n_eps * len(video_cams),
        total_chunks=(n_eps - 1) // spec.chunks_size + 1,
        data_path=V2_DATA_PATH,
        video_path=V2_VIDEO_PATH if video_cams else None,
    )
    for ep in range(n_eps):
        chunk = ep // spec.chunks_size
        data_file = root / V2_DATA_PATH.format(episode_chunk=chunk, episode_index=ep)
        data_file.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(_frames_table(spec, [ep], starts), data_file)
        for pos, cam in video_cams:
            path = root / V2_VIDEO_PATH.format(episode_chunk=chunk, video_key=cam.key, episode_index=ep)
            _write_video(path, spec, cam, pos, [ep])
    _write_jsonl(root / "meta/tasks.jsonl", [{"task_index": i, "task": t} for i, t in enumerate(spec.tasks)])
    _write_jsonl(
        root / "meta/episodes.jsonl",
        [
            {
                "episode_index": e,
                "tasks": [spec.tasks[e % len(spec.tasks)]],
                "length": spec.episode_lengths[e],
            }
            for e in range(n_eps)
        ],
    )
    if spec.version == "v2.1":
        _write_jsonl(
            root / "meta/episodes_stats.jsonl",
            [{"episode_index": e, "stats": _episode_stats(spec, [e])} for e in range(n_eps)],
        )
    else:
        (root / "meta/stats.json").write_text(json.dumps(_episode_stats(spec, list(range(n_eps)))))


def _write_v3(root: Path, spec: DatasetSpec, starts: dict, video_cams: list, info: dict) -> None:
    n_eps = len(spec.episode_lengths)
    per_file = spec.episodes_per_file or n_eps
    info.update(
        data_path=V3_DATA_PATH,
        video_path=V3_VIDEO_PATH if video_cams else None,
        data_files_size_in_mb=100,
        video_files_size_in_mb=500,
    )
    rows: list[dict] = []
    for file_counter, first in enumerate(range(0, n_eps, per_file)):
        episodes = list(range(first, min(first + per_file, n_eps)))
        chunk, file = divmod(file_counter, spec.chunks_size)
        data_file = root / V3_DATA_PATH.format(chunk_index=chunk, file_index=file)
        data_file.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(_frames_table(spec, episodes, starts), data_file)
        for pos, cam in video_cams:
            _write_video(
                root / V3_VIDEO_PATH.format(video_key=cam.key, chunk_index=chunk, file_index=file),
                spec,
                cam,
                pos,
                episodes,
            )
        offset = 0
        for ep in episodes:
            length = spec.episode_lengths[ep]
            row = {
                "episode_index": ep,
                "data/chunk_index": chunk,
                "data/file_index": file,
                "dataset_from_index": starts[ep],
                "dataset_to_index": starts[ep] + length,
            }
            for _, cam in video_cams:
                row.update(
                    {
                        f"videos/{cam.key}/chunk_index": chunk,
                        f"videos/{cam.key}/file_index": file,
                        f"videos/{cam.key}/from_timestamp": offset / spec.fps,
                        f"videos/{cam.key}/to_timestamp": (offset + length) / spec.fps,
                    }
                )
            row.update({"tasks": [spec.tasks[ep % len(spec.tasks)]], "length": length})
            for key, stats in _episode_stats(spec, [ep]).items():
                row.update({f"stats/{key}/{name}": values for name, values in stats.items()})
            row.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
            rows.append(row)
            offset += length
    episodes_file = root / V3_EPISODES_PATH.format(chunk_index=0, file_index=0)
    episodes_file.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), episodes_file)
    pq.write_table(_tasks_parquet(spec.tasks), root / "meta/tasks.parquet")
    (root / "meta/stats.json").write_text(json.dumps(_episode_stats(spec, list(range(n_eps)))))
