"""LeRobot feature specs: normalize the ``features`` given to the writer, and check each frame value against them.

A feature spec follows lerobot 0.6 (``datasets/feature_utils.py``): ``{"dtype": ..., "shape": [...], "names": ...}``
with dtype ``video`` / ``image`` (HWC uint8 cameras), ``string``, or a numeric dtype; numeric features are scalars
(shape (1,)) or vectors (D,). The default columns (timestamp, frame_index, episode_index, index, task_index) are
added by the writer.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
from PIL import Image

from depi.constants import EPISODE_INDEX, FRAME_INDEX, INDEX, TASK, TASK_INDEX, TIMESTAMP
from depi.datasets.format.stats_compute import CAMERA_DTYPES
from depi.datasets.format.video_encode import VideoEncodeConfig

DEFAULT_FEATURES = {
    TIMESTAMP: {"dtype": "float32", "shape": [1], "names": None},
    FRAME_INDEX: {"dtype": "int64", "shape": [1], "names": None},
    EPISODE_INDEX: {"dtype": "int64", "shape": [1], "names": None},
    INDEX: {"dtype": "int64", "shape": [1], "names": None},
    TASK_INDEX: {"dtype": "int64", "shape": [1], "names": None},
}
NUMERIC_DTYPES = {"float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"}


def normalize_features(
    features: Mapping[str, dict], use_videos: bool, fps: float, config: VideoEncodeConfig
) -> dict[str, dict]:
    """The user features as they go into ``info.json``: shapes as lists, camera ``names``, and for ``video``
    features the ``info`` block lerobot writes (codec, pix_fmt, fps, GOP, CRF).

    Raises:
        ValueError: a default column or ``task`` given as a feature, a ``/`` in a name, a missing dtype/shape,
            a camera shape that is not (H, W, 3), an unsupported dtype, or a numeric shape that is not 1-D.
    """
    spec: dict[str, dict] = {}
    for key, feature in features.items():
        if key in DEFAULT_FEATURES or key == TASK:
            raise ValueError(
                f"feature {key!r} is written by the writer itself; remove it from the features spec"
            )
        if "/" in key:
            raise ValueError(
                f"feature {key!r}: names must not contain '/' (they become parquet column paths)"
            )
        if "dtype" not in feature or "shape" not in feature:
            raise ValueError(
                f"feature {key!r} is {feature!r}; expected a dict with 'dtype' and 'shape' (and 'names')"
            )
        dtype, shape = feature["dtype"], [int(d) for d in feature["shape"]]
        if dtype == "video" and not use_videos:
            dtype = "image"
        entry = {"dtype": dtype, "shape": shape, "names": feature.get("names")}
        if dtype in CAMERA_DTYPES:
            if len(shape) != 3 or shape[2] != 3:
                raise ValueError(f"feature {key!r}: camera shape {tuple(shape)}, expected (height, width, 3)")
            entry["names"] = feature.get("names") or ["height", "width", "channels"]
            if dtype == "video":
                entry["info"] = {
                    "video.height": shape[0], "video.width": shape[1], "video.codec": config.codec_name,
                    "video.pix_fmt": config.pix_fmt, "video.is_depth_map": False, "video.fps": fps,
                    "video.channels": 3, "has_audio": False, "video.g": config.g, "video.crf": config.crf,
                }  # fmt: skip
        elif dtype == "string":
            if shape != [1]:
                raise ValueError(f"feature {key!r}: string features have shape (1,), got {tuple(shape)}")
        elif dtype not in NUMERIC_DTYPES:
            raise ValueError(
                f"feature {key!r}: dtype {dtype!r} unsupported; expected video, image, string or {sorted(NUMERIC_DTYPES)}"
            )
        elif len(shape) != 1:
            raise ValueError(f"feature {key!r}: shape {tuple(shape)}; numeric features must be (1,) or (D,)")
        spec[key] = entry
    return spec


def check_frame_value(key: str, value: Any, feature: dict) -> Any:
    """``value`` (numpy, torch or Python number/str) as numpy in the feature's dtype and shape.

    Floats are accepted for float features (then cast), integers/bools for integer features; cameras must be
    uint8 of exactly the feature's (H, W, 3) shape.

    Raises:
        ValueError: wrong shape, dtype or type, or NaN/inf; the message names the key, what was found and what
            was expected.
    """
    dtype, shape = feature["dtype"], tuple(feature["shape"])
    if dtype == "string":
        if not isinstance(value, str):
            raise ValueError(f"add_frame: {key!r} is {type(value).__name__}, expected str")
        return value
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if dtype in CAMERA_DTYPES:
        if array.dtype != np.uint8 or array.shape != shape:
            raise ValueError(
                f"add_frame: camera {key!r} is {array.dtype} {array.shape}, expected uint8 {shape} (height, width, "
                "channels); convert float images with (img * 255).round().astype(np.uint8) and CHW with .transpose(1, 2, 0)"
            )
        return array
    if array.shape != shape and not (shape == (1,) and array.shape == ()):
        raise ValueError(f"add_frame: {key!r} has shape {array.shape}, expected {shape}")
    target = np.dtype(dtype)
    kind_ok = {"f": "fiub", "i": "iub", "u": "iub", "b": "b"}[target.kind]
    if array.dtype.kind not in kind_ok:
        raise ValueError(f"add_frame: {key!r} has dtype {array.dtype}, expected {dtype}")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        bad = np.flatnonzero(~np.isfinite(array.reshape(-1))).tolist()
        raise ValueError(f"add_frame: {key!r} holds NaN or inf at positions {bad}, expected finite values")
    return array.astype(target).reshape(shape)


def png_bytes(image: np.ndarray) -> bytes:
    """PNG encoding of a uint8 (H, W, 3) image, as stored in the ``bytes`` field of an image column."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def frames_table(features: Mapping[str, dict], columns: Mapping[str, Any], length: int) -> pa.Table:
    """The parquet table of ``length`` frames, typed as lerobot writes it (``get_hf_features_from_features``).

    Args:
        features: ``info.json`` features (``video`` features are skipped: they live in MP4 files).
        columns: key -> values of the frames: numeric arrays (N,) or (N, D); for ``image`` features a list of
            ``{"bytes": png, "path": None}``; for ``string`` features a list of str.
        length: number of frames N.

    Returns:
        A table with shape-(1,) features as scalar columns, vectors as ``fixed_size_list<D>``, images as
        ``struct<bytes: binary, path: string>``, and the ``huggingface`` schema metadata lerobot's loader reads.
    """
    arrays, hf_features = {}, {}
    for key, feature in features.items():
        dtype = feature["dtype"]
        if dtype == "video":
            continue
        if dtype == "image":
            arrays[key] = pa.array(columns[key], pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
            hf_features[key] = {"_type": "Image"}
        elif dtype == "string":
            arrays[key] = pa.array(columns[key], pa.string())
            hf_features[key] = {"dtype": "string", "_type": "Value"}
        elif tuple(feature["shape"]) == (1,):
            arrays[key] = pa.array(
                np.asarray(columns[key]).reshape(length), pa.from_numpy_dtype(np.dtype(dtype))
            )
            hf_features[key] = {"dtype": dtype, "_type": "Value"}
        else:
            dim = int(feature["shape"][0])
            flat = pa.array(np.asarray(columns[key]).reshape(-1), pa.from_numpy_dtype(np.dtype(dtype)))
            arrays[key] = pa.FixedSizeListArray.from_arrays(flat, dim)
            hf_features[key] = {"feature": {"dtype": dtype, "_type": "Value"}, "length": dim, "_type": "List"}
    table = pa.table(arrays)
    return table.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": hf_features}})})


# pandas metadata so that ``pandas.read_parquet(meta/tasks.parquet)`` indexes tasks by their text, as lerobot does.
TASKS_PANDAS_META = {
    "index_columns": ["task"],
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
            "name": "task",
            "field_name": "task",
            "pandas_type": "unicode",
            "numpy_type": "object",
            "metadata": None,
        },
    ],
    "attributes": {},
    "pandas_version": "2.2.0",
}


def tasks_table(tasks: Mapping[str, int]) -> pa.Table:
    """``meta/tasks.parquet``: columns ``task_index`` (int64) and ``task`` (str), rows by task_index, with pandas
    metadata making ``task`` the index (what lerobot's ``load_tasks`` expects)."""
    names = sorted(tasks, key=tasks.__getitem__)
    table = pa.table(
        {TASK_INDEX: pa.array([tasks[n] for n in names], pa.int64()), TASK: pa.array(names, pa.string())}
    )
    return table.replace_schema_metadata({"pandas": json.dumps(TASKS_PANDAS_META)})
