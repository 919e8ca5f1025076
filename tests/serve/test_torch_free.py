"""The robot side of serving runs without torch: client, broker, wire and protocol, in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.serve.conftest import Served

SCRIPT = textwrap.dedent(
    """
    import sys
    sys.modules["torch"] = None  # any `import torch` now raises ImportError
    import numpy as np
    from depi.serve.broker import ActionChunkBroker
    from depi.serve.client import PolicyClient
    from depi.serve import protocol, wire

    with PolicyClient(sys.argv[1]) as client:
        meta = client.get_server_metadata()
        obs = {"observation.state": np.zeros(meta["state_dim"], np.float32), "task": "reach the goal"}
        for key in meta["camera_keys"]:
            obs[key] = np.zeros((32, 32, 3), np.uint8)
        broker = ActionChunkBroker(client, n_action_steps=meta["action_horizon"])
        steps = [broker.infer(obs)["actions"].shape for _ in range(meta["action_horizon"] + 1)]
    assert "torch" not in sys.modules or sys.modules["torch"] is None
    print("steps", steps)
    """
)


def test_client_and_broker_import_and_run_without_torch(served: Served) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, served.uri], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "steps [(4,), (4,), (4,), (4,), (4,)]" in result.stdout
