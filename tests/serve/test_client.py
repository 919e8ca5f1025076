"""PolicyClient against real servers: reconnect after a restart, bounded retries, reply and connect timeouts."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest

from depi.serve.client import PolicyClient, PolicyConnectionError, PolicyTimeoutError, normalize_uri
from depi.serve.server import PolicyServer
from tests.serve.conftest import Served, make_observation, make_server


def test_reconnects_after_a_server_restart(served: Served) -> None:
    first = make_server(served.checkpoint, served.binding)
    port = first.port
    obs = make_observation(first.metadata)
    client = PolicyClient(f"127.0.0.1:{port}", timeout_s=10, retries=5, backoff_s=0.05)
    try:
        assert client.infer(obs)["actions"].shape == (4, 4)
        first.stop()
        second = make_server(served.checkpoint, served.binding, port=port)  # same port, new process state
        try:
            assert client.infer(obs)["actions"].shape == (4, 4)  # the dropped connection is reopened
            assert client.get_server_metadata()["step"] == 2
        finally:
            second.stop()
    finally:
        client.close()


def test_unreachable_server_fails_after_bounded_retries() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    start = time.perf_counter()
    with pytest.raises(PolicyConnectionError, match=rf"ws://127.0.0.1:{port}: no connection after 3 attempts"):
        PolicyClient(f"ws://127.0.0.1:{port}", retries=2, backoff_s=0.05, max_backoff_s=0.1)
    assert time.perf_counter() - start < 5  # 0.05 + 0.1 s of backoff, refused connections are immediate
    lazy = PolicyClient(f"ws://127.0.0.1:{port}", retries=0, connect=False)  # nothing happens until a call
    with pytest.raises(PolicyConnectionError):
        lazy.get_server_metadata()


class GatedPolicy:
    """Answers zeros once ``gate`` is set: a server whose inference hangs until the test lets it go."""

    def __init__(self) -> None:
        self.gate = threading.Event()

    def infer(self, obs):
        self.gate.wait(timeout=30)
        return {"actions": np.zeros((2, 3), dtype=np.float32)}


def test_reply_timeout_then_recovery() -> None:
    policy = GatedPolicy()
    with PolicyServer(policy, {"action_horizon": 2}, host="127.0.0.1", port=0) as server:
        client = PolicyClient(f"ws://127.0.0.1:{server.port}", timeout_s=0.3, retries=1, backoff_s=0.01)
        start = time.perf_counter()
        with pytest.raises(PolicyTimeoutError, match="no reply within 0.3 s"):
            client.infer({"x": 1})
        assert time.perf_counter() - start < 2
        policy.gate.set()
        assert client.infer({"x": 1})["actions"].shape == (2, 3)  # a new connection serves the next call
        client.close()


def test_handshake_timeout() -> None:
    with socket.socket() as silent:  # accepts TCP connections, never answers the websocket handshake
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        start = time.perf_counter()
        with pytest.raises(PolicyConnectionError, match="TimeoutError"):
            PolicyClient(f"ws://127.0.0.1:{silent.getsockname()[1]}", timeout_s=0.2, retries=1, backoff_s=0.01)
        assert time.perf_counter() - start < 3


def test_settings_and_uri() -> None:
    assert normalize_uri("localhost:8000") == "ws://localhost:8000"
    assert normalize_uri("wss://robot.local/policy") == "wss://robot.local/policy"
    with pytest.raises(ValueError, match="timeout_s > 0"):
        PolicyClient("ws://127.0.0.1:1", timeout_s=0, connect=False)
