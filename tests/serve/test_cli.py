"""``depi-serve``: robot-layout binding (env, dataset root, manifest), flag errors, and the console script
serving over websockets in its own process."""

from __future__ import annotations

import signal
import urllib.request
from pathlib import Path

import pytest

from depi.cli import run
from depi.serve.cli import PROG, main
from tests.eval.conftest import TinyRun
from tests.serve.conftest import Served, depi_serve, make_observation

def test_binding_from_env_dataset_root_and_manifest_agree(served: Served, tiny_run: TinyRun) -> None:
    from depi.serve.policy import BindingSource, resolve_binding

    checkpoint = served.checkpoint
    from_manifest = resolve_binding(checkpoint, BindingSource())
    from_repo_id = resolve_binding(checkpoint, BindingSource(repo_id=from_manifest.name))
    from_root = resolve_binding(checkpoint, BindingSource(dataset_root=str(tiny_run.dataset_root)))
    from_env = resolve_binding(checkpoint, BindingSource(env="metaworld/reach-v3"))
    assert from_manifest == from_repo_id == from_root == from_env
    assert from_manifest.name == "local/metaworld_reach-v3" and from_manifest.embodiment == "sawyer/s4_a4"
    with pytest.raises(ValueError, match="not in the checkpoint's mixture"):
        resolve_binding(checkpoint, BindingSource(repo_id="someone/else"))
    with pytest.raises(ValueError, match="has no norm stats"):
        resolve_binding(checkpoint, BindingSource(env="so100_transfer_cube"))


def _run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exited:
        run(main, argv, prog=PROG)
    return int(exited.value.code), capsys.readouterr().err


def test_user_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, err = _run([], capsys)
    assert code == 2 and "depi-serve: error: --policy.path is required" in err
    code, err = _run(["--policy.path=x", "--prot=9000"], capsys)
    assert code == 2 and "unknown flag --prot; did you mean --port" in err
    code, err = _run(["--policy.path=x", "--env=so101_pick_place", "--dataset.root=y"], capsys)
    assert code == 2 and "not both" in err
    code, err = _run([f"--policy.path={tmp_path}"], capsys)
    assert code == 1 and f"--policy.path={tmp_path}: neither a checkpoint folder" in err
    assert "Traceback" not in err
    code, _ = _run(["--help"], capsys)
    assert code == 0


def test_console_script_serves(tiny_run: TinyRun) -> None:
    from depi.serve.client import PolicyClient

    # Started as a shell script's background job is (SIGINT ignored), Ctrl-C must still stop it.
    with depi_serve(f"--policy.path={tiny_run.checkpoint.parent.parent}", sigint_ignored=True) as served:
        with urllib.request.urlopen(f"http://127.0.0.1:{served.port}/healthz", timeout=10) as response:
            assert response.read() == b"OK\n"
        with PolicyClient(served.uri) as client:
            meta = client.get_server_metadata()
            assert meta["step"] == 2 and meta["repo_id"] == "local/metaworld_reach-v3"
            assert client.infer(make_observation(meta))["actions"].shape == (4, 4)
    assert served.process.returncode == 130  # Ctrl-C: "depi-serve: interrupted"
    assert "depi-serve: interrupted" in "".join(served.stderr)


def test_sigterm_closes_every_connection_then_exits_cleanly(tiny_run: TinyRun) -> None:
    from websockets.exceptions import ConnectionClosedOK
    from websockets.sync.client import connect

    with depi_serve(f"--policy.path={tiny_run.checkpoint}", stop_signal=signal.SIGTERM) as served:
        with connect(served.uri, open_timeout=10) as websocket:
            websocket.recv(timeout=10)  # the metadata frame
            served.process.send_signal(signal.SIGTERM)  # docker stop, systemd, kill
            with pytest.raises(ConnectionClosedOK) as closed:
                websocket.recv(timeout=30)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001  # going away
        assert served.process.wait(timeout=30) == 0
    err = "".join(served.stderr)
    assert "SIGTERM received: closing 1 connection(s)" in err and "depi-serve: stopped by SIGTERM" in err
    assert "Traceback" not in err
