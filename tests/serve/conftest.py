"""A tiny checkpoint behind a real :class:`~depi.serve.server.PolicyServer` on a free local port.

The checkpoint is the evaluation tests' tiny run (tests/eval/conftest.py: Meta-World reach-v3, 2 training steps
of the tiny pi0, action_horizon 4); the server binds the layout of the first dataset in its manifest, as
``depi-serve`` does without ``--env`` / ``--dataset.*``.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.eval.conftest import TinyRun, tiny_run  # noqa: F401  (the shared tiny checkpoint fixture)


@dataclass
class Served:
    """A running server and what it serves."""

    server: Any  # depi.serve.server.PolicyServer
    checkpoint: Any  # depi.eval.policy_runner.Checkpoint
    binding: Any  # depi.eval.policy_runner.Binding
    metadata: dict

    @property
    def uri(self) -> str:
        return f"ws://127.0.0.1:{self.server.port}"


DEPI_SERVE = Path(sys.executable).parent / "depi-serve"


@dataclass
class ServeProcess:
    """A ``depi-serve`` console script running in its own process; ``stderr`` collects its lines as they come."""

    process: subprocess.Popen
    port: int
    stderr: list[str]

    @property
    def uri(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


def _lines_into(stream, lines: queue.Queue | list) -> None:
    """Read ``stream`` to its end as it is written (a pipe nobody reads fills up and blocks the writer)."""
    put = lines.put if isinstance(lines, queue.Queue) else lines.append
    for line in stream:
        put(line)
    if isinstance(lines, queue.Queue):
        put(None)  # end of stream


@contextmanager
def depi_serve(
    *flags: str, timeout_s: float = 120.0, stop_signal: int = signal.SIGINT, sigint_ignored: bool = False
) -> Iterator[ServeProcess]:
    """Run ``depi-serve --host=127.0.0.1 --port=0 FLAGS``, wait for its "listening on" line, stop it at exit.

    ``stop_signal`` is sent at exit; the process must end within 30 s or it is killed and the test fails.
    ``sigint_ignored`` starts it with SIGINT ignored, as a shell script's background job (``depi-serve &``) is.
    """
    command = [str(DEPI_SERVE), *flags, "--host=127.0.0.1", "--port=0"]
    if sigint_ignored:
        command = ["bash", "-c", 'trap "" INT; exec "$0" "$@"', *command]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    stdout: queue.Queue = queue.Queue()
    stderr: list[str] = []
    readers = [
        threading.Thread(target=_lines_into, args=(stream, sink), daemon=True)
        for stream, sink in ((process.stdout, stdout), (process.stderr, stderr))
    ]
    for reader in readers:
        reader.start()
    try:
        deadline, port = time.monotonic() + timeout_s, None
        while port is None:
            try:
                line = stdout.get(timeout=max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                raise AssertionError(f"depi-serve not listening after {timeout_s} s:\n{''.join(stderr)}") from None
            assert line is not None, f"depi-serve exited with {process.wait()}:\n{''.join(stderr)}"
            if "listening on ws://127.0.0.1:" in line:
                port = int(line.split("ws://127.0.0.1:")[1].split()[0])
        yield ServeProcess(process, port, stderr)
    finally:
        if process.poll() is None:
            process.send_signal(stop_signal)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise AssertionError(f"depi-serve still running 30 s after {signal.Signals(stop_signal).name}") from None
        for reader in readers:
            reader.join(timeout=10)  # the last lines of stderr are in ServeProcess.stderr


def make_server(checkpoint, binding, port: int = 0, seed: int = 0):
    """A started PolicyServer on 127.0.0.1 for ``checkpoint`` bound to ``binding``."""
    from depi.eval.policy_runner import PolicyRunner
    from depi.serve.policy import ServedPolicy, server_metadata
    from depi.serve.protocol import ObservationSpec
    from depi.serve.server import PolicyServer

    metadata = server_metadata(checkpoint, binding, None, "float32")
    policy = ServedPolicy(PolicyRunner(checkpoint, binding, seed=seed))
    server = PolicyServer(
        policy, metadata, host="127.0.0.1", port=port, validate=ObservationSpec.from_metadata(metadata).check
    )
    return server.start()


@pytest.fixture(scope="module")
def served(tiny_run: TinyRun) -> Iterator[Served]:  # noqa: F811
    from depi.eval.policy_runner import load_checkpoint
    from depi.serve.policy import BindingSource, resolve_binding

    checkpoint = load_checkpoint(tiny_run.checkpoint)
    binding = resolve_binding(checkpoint, BindingSource())
    server = make_server(checkpoint, binding)
    try:
        yield Served(server, checkpoint, binding, server.metadata)
    finally:
        server.stop()


def make_observation(metadata: dict, seed: int = 0, image_size: int = 64) -> dict:
    """A well-formed observation for the served layout: random state and camera images, task text."""
    rng = np.random.default_rng(seed)
    obs: dict = {
        "observation.state": rng.normal(size=metadata["state_dim"]).astype(np.float32),
        "task": "reach the goal",
    }
    for key in metadata["camera_keys"]:
        obs[key] = rng.integers(0, 256, size=(image_size, image_size, 3), dtype=np.uint8)
    return obs
