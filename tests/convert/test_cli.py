"""The depi-convert console script."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tests.convert.rlds_fixtures import bridge_episode, write_bridge_dir

from depi.convert.cli import main
from depi.datasets.format.meta import load_meta


def test_bridge_subcommand(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    data_dir = write_bridge_dir(
        tmp_path / "src", {"train": [bridge_episode(rng, 3)], "val": [bridge_episode(rng, 2)]}
    )
    args = ["bridge", "--data_dir", str(data_dir), "--output_dir", str(tmp_path / "out"), "--split", "all"]
    assert main([*args, "--resize", "32", "--repo_name", "b32"]) == 0
    meta = load_meta(tmp_path / "out" / "b32")
    assert meta.total_episodes == 2 and meta.shapes["observation.images.image_0"] == (32, 32, 3)
    assert f"LeRobot v3.0 dataset written to {tmp_path / 'out' / 'b32'}" in capsys.readouterr().out

    shard = data_dir / "bridge_dataset-val.tfrecord-00000-of-00001"
    shard.write_bytes(shard.read_bytes()[:-7])
    # The camera scan reads the whole split (image_3 is black everywhere) and stops at the damage: nothing written.
    assert main([*args, "--repo_name", "cut"]) == 2
    assert (
        f"depi-convert bridge: error: {shard}: truncated TFRecord at byte offset 0" in capsys.readouterr().err
    )
    assert not (tmp_path / "out" / "cut").exists()
    # With the cameras named there is no scan: the train episode is written, then the damaged record stops it.
    assert main([*args, "--repo_name", "cut", "--cameras", "image_0"]) == 2
    assert (
        main([*args, "--repo_name", "cut", "--cameras", "image_0"]) == 2
    )  # a rerun resumes and stops there again
    assert f"{shard}: truncated TFRecord at byte offset 0" in capsys.readouterr().err
    assert load_meta(tmp_path / "out" / "cut").total_episodes == 1


def test_usage_and_unknown_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "depi-convert {bridge,hdf5}" in capsys.readouterr().out
    assert main(["rlds"]) == 2
    assert "unknown subcommand 'rlds'" in capsys.readouterr().err
    assert main([]) == 2


def test_option_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bridge", "--output_dir", str(tmp_path)]) == 2
    assert "depi-convert bridge: error: Missing required field(s) `data_dir`" in capsys.readouterr().err
    assert main(["bridge", "--output_dir", str(tmp_path), "--data_dir", str(tmp_path), "--resize", "0"]) == 2
    assert "--resize must be a positive number of pixels, got 0" in capsys.readouterr().err
