"""The policy a robot loop talks to: a ``depi-serve`` / openpi server (``ws://``) or a checkpoint in-process, and
the receding-horizon executor that turns its chunks into one action per robot step.

Both policies offer ``infer(obs) -> {"actions": float32 (H, A)}``, ``get_server_metadata()`` (the keys of
:data:`depi.serve.protocol.METADATA_KEYS`), ``reset(seed)`` and ``close()``. Only :func:`open_policy` with a
checkpoint path imports torch (lazily); the ``ws://`` path needs numpy, msgpack and websockets.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from depi.datasets.mixture.chunks import env_steps_of_chunk, resample_chunk


class LocalPolicy:
    """A checkpoint in this process, with the server's metadata (the same binding rules as ``depi-serve``).

    Args:
        path: checkpoint or run folder.
        env: sim env whose layout the robot has (sim robots); or
        dataset_root: a dataset recorded on the robot (real arms); neither: the checkpoint's first dataset.
        device, dtype, num_steps, seed: as ``depi-serve``'s ``--policy.*`` flags.

    Raises:
        FileNotFoundError / ValueError: see :func:`depi.eval.policy_runner.load_checkpoint` and
            :func:`depi.serve.policy.resolve_binding`.
    """

    def __init__(
        self, path: str, env: str | None = None, dataset_root: str | None = None, device: str = "cpu",
        dtype: str = "float32", num_steps: int | None = None, seed: int = 0,
    ) -> None:  # fmt: skip
        from depi.eval.policy_runner import PolicyRunner, load_checkpoint
        from depi.serve.policy import BindingSource, resolve_binding, server_metadata

        checkpoint = load_checkpoint(path, device, dtype)
        binding = resolve_binding(checkpoint, BindingSource(env=env, dataset_root=dataset_root))
        self.runner = PolicyRunner(checkpoint, binding, num_steps=num_steps, seed=seed)
        self.metadata = server_metadata(checkpoint, binding, num_steps, dtype)

    def get_server_metadata(self) -> dict[str, Any]:
        return dict(self.metadata)

    def infer(self, obs: Mapping[str, Any]) -> dict[str, Any]:
        return self.runner.infer(obs)

    def reset(self, seed: int | None = None) -> None:
        self.runner.reset(0 if seed is None else seed)

    def close(self) -> None:
        pass


def open_policy(path: str, *, env: str | None = None, dataset_root: str | None = None, timeout_s: float = 30.0,
                **options: Any):  # fmt: skip
    """A :class:`depi.serve.client.PolicyClient` for ``ws://host:port``, else a :class:`LocalPolicy`.

    Raises:
        depi.serve.client.PolicyConnectionError: the server cannot be reached.
        FileNotFoundError / ValueError: see :class:`LocalPolicy`.
    """
    if path.startswith(("ws://", "wss://")):
        from depi.serve.client import PolicyClient

        return PolicyClient(path, timeout_s=timeout_s)
    return LocalPolicy(path, env=env, dataset_root=dataset_root, **options)


class ChunkExecutor:
    """Receding horizon on a robot: one chunk (H steps at the policy's ``control_fps``) is read at the robot's
    ``fps`` by linear interpolation (:func:`depi.datasets.mixture.chunks.resample_chunk`, the rule training chunks
    were built with) and its first ``n_action_steps`` robot steps are executed before the next query.

    Args:
        policy: see the module docstring.
        robot_fps: the robot's control loop rate (Hz).
        n_action_steps: robot steps per chunk; None: every step the chunk covers.

    Raises:
        ValueError: ``n_action_steps`` exceeds the steps one chunk covers.
    """

    def __init__(self, policy: Any, robot_fps: float, n_action_steps: int | None = None) -> None:
        self.policy, self.metadata = policy, policy.get_server_metadata()
        horizon, control_fps = int(self.metadata["action_horizon"]), float(self.metadata["control_fps"])
        self.positions = env_steps_of_chunk(horizon, control_fps, robot_fps)
        if n_action_steps is not None and not 1 <= n_action_steps <= len(self.positions):
            raise ValueError(
                f"--control.n_action_steps={n_action_steps}: a chunk of {horizon} steps at {control_fps:g} Hz "
                f"covers {len(self.positions)} steps at {robot_fps:g} Hz; pass 1..{len(self.positions)}"
            )
        self.n_action_steps = n_action_steps or len(self.positions)
        self.inference_seconds: list[float] = []
        self._queue: list[np.ndarray] = []

    def reset(self, seed: int | None = None) -> None:
        """Drop the queued actions and reseed the policy's sampling noise."""
        self._queue = []
        self.policy.reset(seed)

    def act(self, obs: Mapping[str, Any]) -> np.ndarray:
        """The action for this robot step: float32 (A,)."""
        if not self._queue:
            start = time.perf_counter()
            chunk = np.asarray(self.policy.infer(obs)["actions"], dtype=np.float32)  # (H, A) at control_fps
            self.inference_seconds.append(time.perf_counter() - start)
            at_robot_rate, _ = resample_chunk(chunk, self.positions)
            self._queue = list(at_robot_rate[: self.n_action_steps])
        return self._queue.pop(0)
