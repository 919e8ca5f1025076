"""Serve a checkpoint with ``depi-serve`` and drive it from a client, one action at a time.

    python examples/05_serve_client.py --policy.path outputs/train/<run> [--steps 12]

Starts ``depi-serve`` on a free local port, reads the server's metadata (action horizon, control rate, the
camera keys it expects), then sends observations through :class:`depi.serve.client.PolicyClient` wrapped in an
:class:`depi.serve.broker.ActionChunkBroker`: the broker asks the server for a chunk every ``action_horizon``
steps and hands out one action per call, as a robot loop at ``control_fps`` would. The client side imports only
numpy, msgpack and websockets (no torch): it runs in lerobot's Python 3.12 environment as well. An openpi-client
``WebsocketClientPolicy`` speaks to the same server unchanged.
"""

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

from depi.serve.broker import ActionChunkBroker
from depi.serve.client import PolicyClient, PolicyServerError

parser = argparse.ArgumentParser()
parser.add_argument("--policy.path", dest="policy_path", required=True, help="checkpoint or run folder")
parser.add_argument("--steps", type=int, default=12, help="control steps to run")
args = parser.parse_args()

serve = [str(Path(sys.executable).parent / "depi-serve"), f"--policy.path={args.policy_path}", "--host=127.0.0.1",
         "--port=0", "--log_level=WARNING"]  # fmt: skip
server = subprocess.Popen(serve, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
try:
    for line in server.stdout:
        if "listening on " in line:
            uri = line.split("listening on ")[1].split()[0]
            break
    else:
        sys.exit(f"depi-serve exited with {server.wait()} before listening")

    with PolicyClient(uri) as client:
        meta = client.get_server_metadata()
        print(f"server {uri}: embodiment {meta['embodiment']}, step {meta['step']}, "
              f"action_horizon {meta['action_horizon']}, action_dim {meta['action_dim']}, "
              f"control_fps {meta['control_fps']}, cameras {meta['camera_keys']}")  # fmt: skip

        rng = np.random.default_rng(0)

        def observation() -> dict:
            obs = {"observation.state": rng.normal(size=meta["state_dim"]).astype(np.float32), "task": "reach the goal"}
            for key in meta["camera_keys"]:
                obs[key] = rng.integers(0, 256, size=(224, 224, 3), dtype=np.uint8)
            return obs

        broker = ActionChunkBroker(client, n_action_steps=meta["action_horizon"])
        for step in range(args.steps):
            action = broker.infer(observation())["actions"]
            print(f"step {step:2d}: action {np.array2string(action, precision=3, suppress_small=True)}")

        try:  # a malformed request gets an error reply; the connection stays usable
            client.infer({"task": "no state"})
        except PolicyServerError as error:
            print(f"malformed request answered: {error}")
        print(f"after the error: chunk {client.infer(observation())['actions'].shape}")
finally:
    server.send_signal(signal.SIGINT)  # Ctrl-C: depi-serve closes the connection and exits
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        raise
