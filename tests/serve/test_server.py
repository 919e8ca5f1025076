"""depi-serve's server over real websockets: metadata, inference equal to the in-process runner, one error reply
per malformed request on a connection that keeps serving, health check, concurrent clients."""

from __future__ import annotations

import threading
import urllib.request

import msgpack
import numpy as np
import pytest
from websockets.sync.client import connect

from depi.serve import wire
from depi.serve.client import PolicyClient, PolicyServerError
from depi.serve.protocol import METADATA_KEYS, norm_stats_sha256
from tests.serve.conftest import Served, make_observation


class Raw:
    """A bare websocket connection: frames as the client sends them, replies decoded."""

    def __init__(self, uri: str):
        self.ws = connect(uri, compression=None, max_size=None).__enter__()  # closed by close()
        self.metadata = wire.unpackb(self.ws.recv(timeout=10))

    def ask(self, frame: bytes | str) -> dict:
        self.ws.send(frame)
        return wire.unpackb(self.ws.recv(timeout=30))

    def close(self) -> None:
        self.ws.close()


def test_metadata(served: Served) -> None:
    raw = Raw(served.uri)
    meta = raw.metadata
    raw.close()
    assert set(METADATA_KEYS) <= set(meta)
    checkpoint = served.checkpoint
    assert meta["action_horizon"] == checkpoint.action_horizon == 4
    assert meta["action_dim"] == served.binding.action_dim == 4
    assert meta["state_dim"] == served.binding.state_dim == 4
    assert meta["control_fps"] == checkpoint.control_fps and isinstance(meta["control_fps"], float)
    assert meta["camera_keys"] == sorted(set(served.binding.slots.values()))
    assert all(key.startswith("observation.images.") for key in meta["camera_keys"])
    assert meta["embodiment"] == served.binding.embodiment == checkpoint.manifest["datasets"][0]["embodiment"]
    assert meta["step"] == 2
    assert meta["norm_stats_sha256"] == norm_stats_sha256(checkpoint.path)
    assert meta["policy_type"] == "pi0" and meta["server"] == "depi-serve"


def test_inference_equals_the_in_process_runner(served: Served) -> None:
    from depi.eval.policy_runner import PolicyRunner

    obs = make_observation(served.metadata, seed=1)
    with PolicyClient(served.uri) as client:
        client.reset(seed=123)
        first = client.infer(obs)
        second = client.infer(obs)
    runner = PolicyRunner(served.checkpoint, served.binding, seed=123)
    expected = [runner.infer(obs)["actions"], runner.infer(obs)["actions"]]
    assert first["actions"].dtype == np.float32 and first["actions"].shape == (4, 4)
    np.testing.assert_allclose(first["actions"], expected[0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(second["actions"], expected[1], rtol=0, atol=1e-6)
    assert not np.allclose(first["actions"], second["actions"])  # the noise advances between requests
    assert first["policy_timing"]["infer_ms"] > 0
    assert set(first["server_timing"]) >= {"infer_ms", "queue_ms"}  # prev_total_ms too: the reset came before
    assert second["server_timing"]["prev_total_ms"] >= first["server_timing"]["infer_ms"]


GOOD = make_observation({"state_dim": 4, "camera_keys": ["observation.images.corner2"]})


def _frame(**changes) -> bytes:
    obs = {k: v for k, v in GOOD.items() if k not in changes or changes[k] is not None}
    obs.update({k: v for k, v in changes.items() if v is not None})
    return wire.packb(obs)


MALFORMED = {
    "missing_state": (_frame(**{"observation.state": None}), "missing_key", "observation.state"),
    "missing_camera": (_frame(**{"observation.images.corner2": None}), "missing_key", "observation.images.corner2"),
    "missing_task": (_frame(task=None), "missing_key", "task"),
    "unknown_camera": (_frame(**{"observation.images.wrist": GOOD["observation.images.corner2"]}), "unknown_camera",
                       "observation.images.wrist"),
    "state_shape": (_frame(**{"observation.state": np.zeros(7, np.float32)}), "bad_shape", "observation.state"),
    "state_dtype": (_frame(**{"observation.state": np.array(["a"] * 4)}), "bad_dtype", "observation.state"),
    "state_nan": (_frame(**{"observation.state": np.full(4, np.nan, np.float32)}), "bad_value", "observation.state"),
    "image_dtype": (_frame(**{"observation.images.corner2": np.zeros((8, 8, 3), np.float32)}), "bad_dtype",
                    "observation.images.corner2"),
    "image_shape": (_frame(**{"observation.images.corner2": np.zeros((8, 8), np.uint8)}), "bad_shape",
                    "observation.images.corner2"),
    "task_type": (_frame(task=7), "bad_dtype", "task"),
    "not_a_map": (wire.packb([1, 2, 3]), "bad_message", None),
    "garbage": (b"\xc1\xc1 not msgpack", "bad_message", None),
    "truncated": (_frame()[:100], "bad_message", None),
    "object_dtype": (msgpack.packb({"x": {b"__ndarray__": True, b"data": b"", b"dtype": "|O", b"shape": [0]}}),
                     "bad_message", None),
    "short_data": (msgpack.packb({"x": {b"__ndarray__": True, b"data": b"12", b"dtype": "<f4", b"shape": [4]}}),
                   "bad_message", None),
    "text_frame": ("hello", "text_frame", None),
    "unknown_control": (wire.packb({"__ctrl__": "shutdown"}), "unknown_control", "__ctrl__"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_request_gets_an_error_and_the_connection_keeps_serving(served: Served, case: str) -> None:
    frame, error_type, field = MALFORMED[case]
    raw = Raw(served.uri)
    try:
        reply = raw.ask(frame)
        assert set(reply) == {"error"}
        assert reply["error"]["type"] == error_type and reply["error"]["field"] == field
        assert isinstance(reply["error"]["message"], str) and reply["error"]["message"]
        if field is not None:
            assert field in reply["error"]["message"]
        good = raw.ask(_frame())  # same connection
        assert good["actions"].shape == (4, 4)
    finally:
        raw.close()


def test_client_raises_the_error_reply(served: Served) -> None:
    with PolicyClient(served.uri) as client:
        with pytest.raises(PolicyServerError, match=r"\[bad_shape\].*observation.state") as caught:
            client.infer({**GOOD, "observation.state": np.zeros(2, np.float32)})
        assert caught.value.type == "bad_shape" and caught.value.field == "observation.state"
        assert client.infer(GOOD)["actions"].shape == (4, 4)


def test_healthz(served: Served) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{served.server.port}/healthz", timeout=10) as response:
        assert response.status == 200
        assert response.read() == b"OK\n"


def test_concurrent_clients_and_a_client_that_leaves_mid_request(served: Served) -> None:
    leaver = Raw(served.uri)
    leaver.ws.send(_frame())
    leaver.close()  # gone before its reply
    results: list = []
    errors: list = []

    def work() -> None:
        try:
            with PolicyClient(served.uri) as client:
                for _ in range(3):
                    results.append(client.infer(GOOD)["actions"].shape)
        except Exception as error:  # collected for the assertion below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and results == [(4, 4)] * 12


class FailingPolicy:
    """Raises on request: a policy bug must come back as an error reply, not end the server or connection."""

    def infer(self, obs):
        if obs.get("fail"):
            raise RuntimeError("CUDA out of memory")
        return {"actions": np.ones((2, 2), dtype=np.float32)}


def test_a_policy_exception_is_answered_and_the_server_lives() -> None:
    from depi.serve.server import PolicyServer

    with PolicyServer(FailingPolicy(), {}, host="127.0.0.1", port=0) as server:
        raw = Raw(f"ws://127.0.0.1:{server.port}")
        reply = raw.ask(wire.packb({"fail": True}))
        assert reply["error"]["type"] == "inference_failed"
        assert "RuntimeError: CUDA out of memory" in reply["error"]["message"]
        assert raw.ask(wire.packb({"fail": False}))["actions"].shape == (2, 2)
        raw.close()
        assert server.requests == 2 and server.errors == 1
