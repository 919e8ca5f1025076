"""The real openpi-client (PyPI ``openpi-client``, numpy 1.x, in ``<repo>/.venv-openpi``) against ``depi-serve``.

Skipped when that environment is absent, unless ``DEPI_REQUIRE_OPENPI=1`` (then it fails); ``make openpi-env``
builds it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.eval.conftest import TinyRun
from tests.serve.conftest import depi_serve

REPO = Path(__file__).resolve().parents[2]
OPENPI_PYTHON = REPO / ".venv-openpi" / "bin" / "python"
SESSION = Path(__file__).parent / "openpi_side" / "session.py"

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def openpi_python() -> Path:
    if not OPENPI_PYTHON.exists():
        reason = f"{OPENPI_PYTHON} missing: build it with `make openpi-env`"
        if os.environ.get("DEPI_REQUIRE_OPENPI") == "1":
            pytest.fail(reason + " (DEPI_REQUIRE_OPENPI=1 requires it)")
        pytest.skip(reason)
    return OPENPI_PYTHON


def test_openpi_client_session(openpi_python: Path, tiny_run: TinyRun, tmp_path: Path) -> None:
    from depi.eval.policy_runner import PolicyRunner, load_checkpoint
    from depi.serve.policy import BindingSource, resolve_binding

    out = tmp_path / "session.npz"
    with depi_serve(f"--policy.path={tiny_run.checkpoint}", "--seed=0") as served:
        result = subprocess.run(
            [str(openpi_python), str(SESSION), str(served.port), str(out)], capture_output=True, text=True, timeout=300
        )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["numpy"].startswith("1.")  # the client really is on numpy 1, the server on numpy 2
    meta = summary["metadata"]
    assert meta["action_horizon"] == 4 and meta["action_dim"] == 4 and meta["step"] == 2
    assert meta["camera_keys"] and len(meta["norm_stats_sha256"]) == 64
    assert summary["first_dtype"] == "float32" and summary["first_shape"] == [4, 4]
    assert summary["policy_timing"]["infer_ms"] > 0 and "infer_ms" in summary["server_timing_keys"]
    assert summary["step_shape"] == [4]  # openpi's ActionChunkBroker slices depi's chunk one step at a time
    assert summary["missing_error"]["type"] == "missing_key"
    assert summary["missing_error"]["field"] == "observation.state"
    assert summary["garbage_error"]["type"] == "bad_message"
    assert summary["last_shape"] == [4, 4]  # the connection survived both bad requests

    # The served actions are the in-process policy's: same checkpoint, same seed, same first observation.
    recorded = np.load(out)
    obs = {"observation.state": recorded["obs_state"], "task": "reach the goal"}
    obs.update({k.removeprefix("image:"): recorded[k] for k in recorded.files if k.startswith("image:")})
    checkpoint = load_checkpoint(tiny_run.checkpoint)
    runner = PolicyRunner(checkpoint, resolve_binding(checkpoint, BindingSource()), seed=0)
    np.testing.assert_allclose(recorded["first_actions"], runner.infer(obs)["actions"], rtol=1e-4, atol=1e-5)
