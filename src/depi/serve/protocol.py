"""The wire contract of ``depi-serve`` beyond openpi's: metadata keys, error replies, control messages, and the
check of one observation against the metadata. Torch-free (numpy only), so robots and clients can use it.

A connection carries, in binary msgpack-numpy frames (:mod:`depi.serve.wire`)::

    server -> client   metadata (once, right after the handshake; keys in METADATA_KEYS)
    client -> server   observation: {"observation.state": (S,), "observation.images.<cam>": uint8 (H, W, 3)
                       or (3, H, W), "task" (or "prompt"): str}
    server -> client   {"actions": float32 (H, A), "policy_timing": {...}, "server_timing": {...}}
                       or {"error": {"type": str, "message": str, "field": str | None}}
    client -> server   {"__ctrl__": "reset", "seed": int | None}  ->  {"__ack__": "reset"}

A malformed request gets an error reply naming the field, and the connection keeps serving.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

OBS_STATE = "observation.state"
OBS_IMAGES_PREFIX = "observation.images."
TASK_KEYS = ("task", "prompt")
ACTIONS = "actions"
ERROR = "error"
CONTROL = "__ctrl__"
ACK = "__ack__"
RESET = "reset"
SERVER_NAME = "depi-serve"
PROTOCOL_VERSION = 1

METADATA_KEYS = (
    "action_horizon",  # int H: steps per action chunk
    "action_dim",  # int A: real action dims of the robot
    "control_fps",  # float Hz: step k of a chunk is the target k / control_fps seconds after the observation
    "camera_keys",  # list[str]: full keys (observation.images.<cam>) the server expects
    "state_dim",  # int S: observation.state dims
    "embodiment",  # str: normalization group of the checkpoint this robot layout maps to
    "step",  # int: training step of the checkpoint
    "norm_stats_sha256",  # str: see norm_stats_sha256()
)

# Error types of an error reply.
TEXT_FRAME = "text_frame"  # a text frame: the protocol is binary msgpack
BAD_MESSAGE = "bad_message"  # not msgpack, not a map, or a malformed ndarray encoding
MISSING_KEY = "missing_key"
BAD_DTYPE = "bad_dtype"
BAD_SHAPE = "bad_shape"
BAD_VALUE = "bad_value"
UNKNOWN_CAMERA = "unknown_camera"
UNKNOWN_CONTROL = "unknown_control"
INFERENCE_FAILED = "inference_failed"  # the policy raised on a well-formed observation (see the server log)


class RequestError(ValueError):
    """A request the server refuses; becomes an error reply ``{"error": {"type", "message", "field"}}``.

    Attributes:
        type: one of the error types above (``missing_key``, ``bad_shape`` ...).
        field: the observation key at fault, or None.
    """

    def __init__(self, type: str, message: str, field: str | None = None):
        super().__init__(message)
        self.type = type
        self.field = field

    def reply(self) -> dict[str, Any]:
        """The error reply of this error."""
        return error_reply(self.type, str(self), self.field)


def error_reply(type: str, message: str, field: str | None = None) -> dict[str, Any]:
    """``{"error": {"type": type, "message": message, "field": field}}``."""
    return {ERROR: {"type": type, "message": message, "field": field}}


def norm_stats_sha256(checkpoint_dir: str | Path) -> str:
    """Hex SHA-256 over a checkpoint's ``norm_stats/`` files: for each file in sorted relative-path order, its
    relative POSIX path (UTF-8), a NUL byte, its bytes, a NUL byte. Equal hashes: the same normalization.

    Raises:
        FileNotFoundError: ``<checkpoint_dir>/norm_stats`` has no file.
    """
    root = Path(checkpoint_dir) / "norm_stats"
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
    if not files:
        raise FileNotFoundError(f"{root}: no norm stats files; the checkpoint is incomplete (depi-train writes them).")
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


@dataclass(frozen=True)
class ObservationSpec:
    """What an observation must hold for one served robot layout.

    Attributes:
        camera_keys: full camera keys (``observation.images.<cam>``) the policy reads.
        state_dim: S, dims of ``observation.state``.
    """

    camera_keys: tuple[str, ...]
    state_dim: int

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> ObservationSpec:
        """The spec a server's metadata announces."""
        return cls(tuple(metadata["camera_keys"]), int(metadata["state_dim"]))

    def check(self, obs: Any) -> dict[str, Any]:
        """Validate a decoded observation; return a copy with ``observation.state`` as float32 (S,) and each
        camera as a writable uint8 array (other keys pass through).

        Raises:
            RequestError: not a map with str keys (``bad_message``); a missing state, camera or task
                (``missing_key``); an ``observation.images.*`` key the server does not read (``unknown_camera``);
                a wrong dtype (``bad_dtype``), shape (``bad_shape``), a non-finite state or an empty task
                (``bad_value``). The message names the key, what was found and what is expected.
        """
        if not isinstance(obs, Mapping):
            raise RequestError(BAD_MESSAGE, f"an observation is a map of keys to values; got {type(obs).__name__}")
        bad_keys = [k for k in obs if not isinstance(k, str)]
        if bad_keys:
            raise RequestError(BAD_MESSAGE, f"observation keys must be str; got {bad_keys[:3]!r}")
        out = dict(obs)
        out[OBS_STATE] = self._state(obs)
        for key in obs:
            if key.startswith(OBS_IMAGES_PREFIX) and key not in self.camera_keys:
                raise RequestError(
                    UNKNOWN_CAMERA,
                    f"{key!r} is not a camera of this policy; it reads {list(self.camera_keys)}",
                    key,
                )
        for key in self.camera_keys:
            if key not in obs:
                raise RequestError(
                    MISSING_KEY, f"observation has no {key!r}; the policy reads {list(self.camera_keys)}", key
                )
            out[key] = _image(key, obs[key])
        task_key = next((k for k in TASK_KEYS if k in obs), None)
        if task_key is None:
            raise RequestError(MISSING_KEY, "observation has no task text: send 'task' (or 'prompt'): str", "task")
        task = obs[task_key]
        if not isinstance(task, str):
            raise RequestError(BAD_DTYPE, f"{task_key!r} must be str; got {type(task).__name__}", task_key)
        if not task.strip():
            raise RequestError(BAD_VALUE, f"{task_key!r} is empty; send the task text", task_key)
        return out

    def _state(self, obs: Mapping[str, Any]) -> np.ndarray:
        if OBS_STATE not in obs:
            raise RequestError(MISSING_KEY, f"observation has no {OBS_STATE!r}: float32 ({self.state_dim},)", OBS_STATE)
        value = obs[OBS_STATE]
        try:
            state = np.asarray(value)
        except (TypeError, ValueError) as error:
            raise RequestError(BAD_DTYPE, f"{OBS_STATE!r}: not an array ({error})", OBS_STATE) from None
        if state.dtype.kind not in "fiu":
            raise RequestError(
                BAD_DTYPE, f"{OBS_STATE!r} has dtype {state.dtype}; expected a float (or int) array", OBS_STATE
            )
        if state.shape != (self.state_dim,):
            raise RequestError(
                BAD_SHAPE, f"{OBS_STATE!r} has shape {state.shape}; expected ({self.state_dim},)", OBS_STATE
            )
        state = state.astype(np.float32)
        if not np.isfinite(state).all():
            raise RequestError(BAD_VALUE, f"{OBS_STATE!r} holds NaN or inf: {state.tolist()}", OBS_STATE)
        return state


def _image(key: str, value: Any) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise RequestError(BAD_DTYPE, f"{key!r} must be a uint8 array (H, W, 3); got {type(value).__name__}", key)
    if value.dtype != np.uint8:
        raise RequestError(
            BAD_DTYPE, f"{key!r} has dtype {value.dtype}; expected uint8 (H, W, 3) or (3, H, W) in 0..255", key
        )
    if value.ndim != 3 or 3 not in (value.shape[0], value.shape[-1]) or 0 in value.shape:
        raise RequestError(BAD_SHAPE, f"{key!r} has shape {value.shape}; expected (H, W, 3) or (3, H, W)", key)
    return np.array(value)  # writable copy: the decoded frame is a read-only view of the message
