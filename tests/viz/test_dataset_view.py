"""depi-viz dataset: .rrd files written from datasets the tests make and from the shared Reachy2 recording, read
back with rerun's reader: entity paths, rows per timeline, values equal to the parquet's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from depi.datasets.format.meta import load_meta
from depi.viz.cli import main
from tests.datasets.factories import expected_action, expected_state
from tests.viz.conftest import read_rrd


def test_episode_as_video_frames_encoded_images_and_named_series(video_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "ep1.rrd"
    assert main(["dataset", str(video_dataset), "--episode_index=1", f"--save={out}"]) == 0
    entities = read_rrd(out)
    assert "/timestamp/0" not in entities
    assert {"/cameras/front", "/cameras/wrist", "/task", "/observation.state/joint_0", "/action/joint_2"} <= set(entities)
    n = 12  # episode 1 of (8, 12, 5)
    for path in ("/cameras/front", "/cameras/wrist", "/observation.state/joint_3", "/action/joint_0"):
        assert entities[path].timelines["frame_index"] == list(range(n))
        assert len(entities[path].timelines["timestamp"]) == n
    state = [row[0] for row in entities["/observation.state/joint_3"].components["Scalars:scalars"]]
    np.testing.assert_allclose(state, [expected_state(1, f, 4)[3] for f in range(n)], rtol=1e-6)
    action = [row[0] for row in entities["/action/joint_2"].components["Scalars:scalars"]]
    np.testing.assert_allclose(action, [expected_action(1, f, 3)[2] for f in range(n)], rtol=1e-6)
    # The video frames point into the episode's span of its mp4 (v3.0: after episode 0's 8 frames).
    meta = load_meta(video_dataset)
    start = meta.episode(1).video_from_timestamp["observation.images.front"]
    refs = entities["/cameras/front"].components["VideoFrameReference:timestamp"]
    seconds = np.asarray([r[0] if isinstance(r, list) else r for r in refs], dtype=np.float64) / 1e9
    np.testing.assert_allclose(seconds, start + np.arange(n) / 10, atol=1e-3)
    assert entities["/cameras/front"].static["AssetVideo:blob"]  # the mp4 itself, decoded by the viewer
    assert len(entities["/cameras/wrist"].components["EncodedImage:blob"]) == n
    assert entities["/task"].static["TextDocument:text"][0][0] in ("pick up the cube", "open the drawer")


def test_missing_video_is_reported_and_the_rest_logged(reachy2_root: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "reachy2.rrd"
    assert main(["dataset", str(reachy2_root), f"--save={out}"]) == 0
    assert "missing video: ['observation.image']" in capsys.readouterr().out
    entities = read_rrd(out)
    assert "/cameras/observation.image" not in entities
    assert "is missing" in entities["/warnings"].static["TextLog:text"][0][0]
    names = load_meta(reachy2_root).features["observation.state"]["names"]
    series = sorted(p for p in entities if p.startswith("/observation.state/"))
    assert len(series) == 19 and len(entities[series[0]].timelines["frame_index"]) == 299
    if isinstance(names, list) and len(names) == 19:
        assert f"/observation.state/{names[0]}" in entities


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["dataset", "/tmp/does/not/exist"], "no such dataset folder"),
        (["dataset"], "needs a dataset"),
        (["viewit"], "unknown command"),
    ],
)
def test_user_errors(argv: list[str], message: str, capsys) -> None:
    from depi.viz.cli import console
    import sys

    sys.argv = ["depi-viz", *argv]
    with pytest.raises(SystemExit) as exit_info:
        console()
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
