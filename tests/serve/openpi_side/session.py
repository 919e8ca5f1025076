"""One session of the real openpi-client against a policy server; runs in ``.venv-openpi`` (numpy 1.x).

    .venv-openpi/bin/python tests/serve/openpi_side/session.py PORT OUT.npz

Connects with ``openpi_client.websocket_client_policy.WebsocketClientPolicy``, reads the metadata, sends one
well-formed observation (recorded in OUT.npz with the reply), steps ``ActionChunkBroker`` through one chunk,
then sends a request missing ``observation.state`` and a garbage frame (both must get error replies on the same
connection) and a last good request. Prints a JSON summary on stdout.
"""

from __future__ import annotations

import json
import sys

import numpy as np
from openpi_client import action_chunk_broker, msgpack_numpy, websocket_client_policy


def observation(metadata: dict, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    obs = {"observation.state": rng.normal(size=metadata["state_dim"]).astype(np.float32), "task": "reach the goal"}
    for key in metadata["camera_keys"]:
        obs[key] = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    return obs


def main(port: int, out: str) -> None:
    policy = websocket_client_policy.WebsocketClientPolicy("ws://127.0.0.1", port)
    metadata = policy.get_server_metadata()
    obs = observation(metadata, seed=0)
    first = policy.infer(obs)

    horizon = int(metadata["action_horizon"])
    broker = action_chunk_broker.ActionChunkBroker(policy, action_horizon=horizon)
    steps = [broker.infer(observation(metadata, seed=1))["actions"] for _ in range(horizon)]

    missing = policy.infer({k: v for k, v in obs.items() if k != "observation.state"})
    policy._ws.send(b"\xc1 not msgpack")  # the client's own connection: a frame no packer would write
    garbage = msgpack_numpy.unpackb(policy._ws.recv())
    last = policy.infer(obs)

    np.savez(out, obs_state=obs["observation.state"], first_actions=first["actions"], steps=np.stack(steps),
             **{f"image:{k}": obs[k] for k in metadata["camera_keys"]})  # fmt: skip
    print(json.dumps({
        "numpy": np.__version__,
        "metadata": {k: v for k, v in metadata.items() if isinstance(v, (int, float, str, list, dict))},
        "first_dtype": str(first["actions"].dtype),
        "first_shape": list(first["actions"].shape),
        "policy_timing": first.get("policy_timing"),
        "server_timing_keys": sorted(first.get("server_timing", {})),
        "step_shape": list(steps[0].shape),
        "missing_error": missing.get("error"),
        "garbage_error": garbage.get("error"),
        "last_shape": list(last["actions"].shape),
    }))  # fmt: skip


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
