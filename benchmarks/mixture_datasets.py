"""Synthetic LeRobot datasets for the mixture benchmark (``bench_mixture.py``).

* :func:`generate`: many small datasets named from ``data_ids/so100_community.json``; v2.1 and v3.0 mixed;
  fps 30 and 15; 6-dim state/action and some 7 / 14-dim; 1-3 cameras under varied names; about 1 % broken.
  Frames are real parquet rows; every mp4 path is a hard link to one tiny video (indexing never decodes
  video).
* :func:`write_video_datasets`: a few v3.0 datasets with real video cameras, written by depi's
  :class:`~depi.datasets.format.writer.DatasetWriter`, for sample-throughput measurements.

Both cache their output in the work directory (a marker file records a finished generation).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
CAMERA_NAMES = ("laptop", "phone", "front", "wrist", "top", "gripper", "cam_high", "overhead")
BROKEN_KINDS = ("missing_data", "missing_video", "no_action", "bad_version", "truncated_info")
GENERATOR_VERSION = "2"


def _tiny_video(path: Path, fps: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(4):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 60 * i, np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _vectors(values: np.ndarray) -> pa.Array:
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1), pa.float32()), values.shape[1])


def _frames(
    lengths: list[int], fps: int, dim: int, rng: np.random.Generator, first_episode: int, start: int
) -> pa.Table:
    n = sum(lengths)
    frame_index = np.concatenate([np.arange(length) for length in lengths])
    episode = np.repeat(np.arange(first_episode, first_episode + len(lengths)), lengths)
    return pa.table(
        {
            "observation.state": _vectors(rng.normal(size=(n, dim)).astype(np.float32)),
            "action": _vectors(rng.normal(size=(n, dim)).astype(np.float32)),
            "timestamp": pa.array((frame_index / fps).astype(np.float32)),
            "frame_index": pa.array(frame_index.astype(np.int64)),
            "episode_index": pa.array(episode.astype(np.int64)),
            "index": pa.array(np.arange(start, start + n, dtype=np.int64)),
            "task_index": pa.array(np.zeros(n, dtype=np.int64)),
        }
    )


def _features(dim: int, cameras: list[str], fps: int) -> dict:
    names = [f"joint_{i}" for i in range(dim)]
    features = {
        "observation.state": {"dtype": "float32", "shape": [dim], "names": names},
        "action": {"dtype": "float32", "shape": [dim], "names": names},
    }
    for cam in cameras:
        features[f"observation.images.{cam}"] = {
            "dtype": "video",
            "shape": [48, 64, 3],
            "names": ["height", "width", "channels"],
            "info": {
                "video.fps": float(fps),
                "video.height": 48,
                "video.width": 64,
                "video.codec": "h264",
                "video.pix_fmt": "yuv420p",
                "video.is_depth_map": False,
                "has_audio": False,
            },
        }
    features["timestamp"] = {"dtype": "float32", "shape": [1], "names": None}
    for key in ("frame_index", "episode_index", "index", "task_index"):
        features[key] = {"dtype": "int64", "shape": [1], "names": None}
    return features


def _stats(table: pa.Table) -> dict:
    out = {}
    for key in ("observation.state", "action"):
        x = table.column(key).combine_chunks().flatten().to_numpy().reshape(table.num_rows, -1)
        out[key] = {
            "min": x.min(0).tolist(),
            "max": x.max(0).tolist(),
            "mean": x.mean(0).tolist(),
            "std": x.std(0).tolist(),
            "count": [int(len(x))],
        }
    return out


def _tasks_table(task: str) -> pa.Table:
    """lerobot's ``tasks.parquet`` as pandas writes it: the task string is the index column."""
    table = pa.table({"task_index": pa.array([0], pa.int64()), "__index_level_0__": [task]})
    pandas_meta = {
        "index_columns": ["__index_level_0__"],
        "column_indexes": [],
        "creator": {"library": "pyarrow"},
        "columns": [
            {
                "name": "task_index",
                "field_name": "task_index",
                "pandas_type": "int64",
                "numpy_type": "int64",
                "metadata": None,
            },
            {
                "name": "task",
                "field_name": "__index_level_0__",
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": None,
            },
        ],
    }
    return table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})


def _link(video: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    os.link(video, target)


def _write_dataset(
    root: Path,
    version: str,
    fps: int,
    dim: int,
    cameras: list[str],
    lengths: list[int],
    rng: np.random.Generator,
    video: Path,
) -> None:
    (root / "meta").mkdir(parents=True, exist_ok=True)
    keys = [f"observation.images.{c}" for c in cameras]
    info = {
        "codebase_version": version,
        "robot_type": "so100" if dim == 6 else ("koch" if dim == 7 else "aloha"),
        "total_episodes": len(lengths),
        "total_frames": sum(lengths),
        "total_tasks": 1,
        "chunks_size": 1000,
        "fps": fps,
        "splits": {"train": f"0:{len(lengths)}"},
        "features": _features(dim, cameras, fps),
    }
    task = "Grasp a lego block and put it in the bin."
    if version == "v2.1":
        info.update(
            data_path="data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
            video_path="videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
        )
        episodes, stats, start = [], [], 0
        for ep, length in enumerate(lengths):
            table = _frames([length], fps, dim, rng, ep, start)
            path = root / f"data/chunk-000/episode_{ep:06d}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, path)
            for key in keys:
                _link(video, root / f"videos/chunk-000/{key}/episode_{ep:06d}.mp4")
            episodes.append({"episode_index": ep, "tasks": [task], "length": length})
            stats.append({"episode_index": ep, "stats": _stats(table)})
            start += length
        (root / "meta/episodes.jsonl").write_text("".join(json.dumps(e) + "\n" for e in episodes))
        (root / "meta/episodes_stats.jsonl").write_text("".join(json.dumps(s) + "\n" for s in stats))
        (root / "meta/tasks.jsonl").write_text(json.dumps({"task_index": 0, "task": task}) + "\n")
    else:
        info.update(
            data_path="data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
            video_path="videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
            data_files_size_in_mb=100,
            video_files_size_in_mb=500,
        )
        table = _frames(lengths, fps, dim, rng, 0, 0)
        (root / "data/chunk-000").mkdir(parents=True, exist_ok=True)
        pq.write_table(table, root / "data/chunk-000/file-000.parquet")
        for key in keys:
            _link(video, root / f"videos/{key}/chunk-000/file-000.mp4")
        rows, start = [], 0
        for ep, length in enumerate(lengths):
            row = {
                "episode_index": ep,
                "data/chunk_index": 0,
                "data/file_index": 0,
                "dataset_from_index": start,
                "dataset_to_index": start + length,
            }
            for key in keys:
                row.update(
                    {
                        f"videos/{key}/chunk_index": 0,
                        f"videos/{key}/file_index": 0,
                        f"videos/{key}/from_timestamp": start / fps,
                        f"videos/{key}/to_timestamp": (start + length) / fps,
                    }
                )
            row.update(
                {
                    "tasks": [task],
                    "length": length,
                    "meta/episodes/chunk_index": 0,
                    "meta/episodes/file_index": 0,
                }
            )
            rows.append(row)
            start += length
        (root / "meta/episodes/chunk-000").mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows), root / "meta/episodes/chunk-000/file-000.parquet")
        pq.write_table(_tasks_table(task), root / "meta/tasks.parquet")
        (root / "meta/stats.json").write_text(json.dumps(_stats(table)))
    (root / "meta/info.json").write_text(json.dumps(info, indent=1))


def _break(root: Path, kind: str) -> None:
    info_path = root / "meta/info.json"
    info = json.loads(info_path.read_text())
    if kind == "missing_data":
        next(root.glob("data/**/*.parquet")).unlink()
    elif kind == "missing_video":
        next(root.glob("videos/**/*.mp4")).unlink()
    elif kind == "no_action":
        del info["features"]["action"]
        info_path.write_text(json.dumps(info))
    elif kind == "bad_version":
        info["codebase_version"] = "v1.6"
        info_path.write_text(json.dumps(info))
    elif kind == "truncated_info":
        info_path.write_text(info_path.read_text()[:100])


def generate(workdir: Path, num_datasets: int) -> tuple[list[str], list[str], Path]:
    """Write (or reuse) the synthetic datasets.

    Returns:
        The repo ids (also written to ids.json), the broken ones, and the datasets root.
    """
    root = workdir / "datasets"
    marker = workdir / f"complete-v{GENERATOR_VERSION}-{num_datasets}.json"
    if marker.is_file():
        done = json.loads(marker.read_text())
        return done["ids"], done["broken"], root
    ids = json.loads((REPO / "data_ids/so100_community.json").read_text())
    ids = (ids + [f"bench/extra_{i:04d}" for i in range(max(0, num_datasets - len(ids)))])[:num_datasets]
    shutil.rmtree(root, ignore_errors=True)  # a run interrupted mid-generation leaves no half dataset behind
    rng = np.random.default_rng(0)
    videos = {fps: workdir / f"tiny_{fps}.mp4" for fps in (15, 30)}
    for fps, path in videos.items():
        _tiny_video(path, fps)
    broken = set(rng.choice(num_datasets, size=max(1, num_datasets // 100), replace=False).tolist())
    t0 = time.perf_counter()
    for i, repo_id in enumerate(ids):
        target = root / repo_id
        version = "v3.0" if rng.random() < 0.6 else "v2.1"
        fps = 30 if rng.random() < 0.8 else 15
        dim = int(rng.choice([6, 7, 14], p=[0.85, 0.1, 0.05]))
        cameras = list(rng.choice(CAMERA_NAMES, size=int(rng.integers(1, 4)), replace=False))
        lengths = rng.integers(100, 400, size=int(rng.integers(5, 30))).tolist()
        _write_dataset(target, version, fps, dim, cameras, lengths, rng, videos[fps])
        if i in broken:
            _break(target, BROKEN_KINDS[i % len(BROKEN_KINDS)])
        if i % 100 == 0:
            print(f"  generated {i}/{num_datasets} datasets ({time.perf_counter() - t0:.0f} s)", flush=True)
    (workdir / "ids.json").write_text(json.dumps(ids))
    broken_ids = [ids[i] for i in sorted(broken)]
    marker.write_text(json.dumps({"ids": ids, "broken": broken_ids}))
    return ids, broken_ids, root


def write_video_datasets(workdir: Path, count: int) -> tuple[list[str], Path]:
    """``count`` small v3.0 datasets with two real video cameras (laptop, wrist), fps 30 and 15."""
    from depi.datasets.format.writer import DatasetWriter

    root = workdir / "video_datasets"
    marker = workdir / f"video-complete-v{GENERATOR_VERSION}-{count}.json"
    ids = [f"bench/video_{i:02d}" for i in range(count)]
    if marker.is_file():
        return ids, root
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(1)
    for i, repo_id in enumerate(ids):
        fps = 30 if i % 2 == 0 else 15
        features = {
            "observation.state": {"dtype": "float32", "shape": (6,), "names": [f"j{k}" for k in range(6)]},
            "action": {"dtype": "float32", "shape": (6,), "names": [f"j{k}" for k in range(6)]},
            **{
                f"observation.images.{cam}": {
                    "dtype": "video",
                    "shape": (240, 320, 3),
                    "names": ["height", "width", "channels"],
                }
                for cam in ("laptop", "wrist")
            },
        }
        with DatasetWriter.create(
            root / repo_id, repo_id=repo_id, fps=fps, features=features, robot_type="so100"
        ) as writer:
            for _ in range(3):
                for f in range(100):
                    image = np.zeros((240, 320, 3), np.uint8)
                    image[:, (f * 3) % 320 :] = rng.integers(0, 255, 3, dtype=np.uint8)
                    writer.add_frame(
                        {
                            "observation.state": rng.normal(size=6).astype(np.float32),
                            "action": rng.normal(size=6).astype(np.float32),
                            "observation.images.laptop": image,
                            "observation.images.wrist": image[::-1].copy(),
                        },
                        task="Grasp a lego block and put it in the bin.",
                    )
                writer.save_episode()
    marker.write_text(json.dumps(ids))
    return ids, root
