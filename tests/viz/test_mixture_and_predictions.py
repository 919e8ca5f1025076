"""depi-viz mixture and predictions, read back from the .rrd."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from depi.viz.cli import main
from tests.eval.conftest import TinyRun, tiny_run  # noqa: F401  (the shared tiny checkpoint fixture)
from tests.viz.conftest import read_rrd


def test_mixture_samples_show_slots_masks_and_the_chunk_in_seconds(video_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "mixture.rrd"
    assert main(["mixture", f"--dataset.root={video_dataset}", "--num_samples=3", f"--save={out}"]) == 0
    entities = read_rrd(out)
    # front -> base slot, wrist -> left wrist slot, right wrist absent: cleared and labelled, never an image
    assert len(entities["/mixture/image/base_0_rgb"].components["Image:buffer"]) == 3
    assert "Image:buffer" not in entities["/mixture/image/right_wrist_0_rgb"].components
    labels = [t[0] for t in entities["/mixture/image/right_wrist_0_rgb/camera"].components["TextDocument:text"]]
    assert labels == ["right_wrist_0_rgb: absent (masked out, not attended)"] * 3
    # 3 real action dims of 32 (the padded ones are not plotted), 50 chunk steps at 30 Hz each
    assert sorted(p for p in entities if p.startswith("/mixture/actions/")) == [f"/mixture/actions/{d}" for d in range(3)]
    chunk = entities["/mixture/actions/0"]
    assert chunk.timelines["sample"] == [k for k in range(3) for _ in range(50)]
    np.testing.assert_allclose(np.asarray(chunk.timelines["chunk_time"][:50]) / 1e9, np.arange(50) / 30, atol=1e-6)
    text = entities["/mixture/sample"].components["TextDocument:text"][0][0]
    assert "embodiment `so100/s4_a3`" in text and "3 real" in text and "29 padded" in text


def test_predictions_overlay_the_recorded_actions(tiny_run: TinyRun, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "predictions.rrd"
    assert main(["predictions", f"--policy.path={tiny_run.checkpoint}", f"--dataset_root={tiny_run.dataset_root}",
                 "--every=20", f"--save={out}"]) == 0  # fmt: skip
    entities = read_rrd(out)
    recorded = sorted(p for p in entities if p.startswith("/recorded/action/"))
    assert len(recorded) == 4  # Meta-World: xyz + gripper
    length = len(entities[recorded[0]].timelines["frame_index"])
    chunks = sorted({p.rsplit("/", 1)[1] for p in entities if p.startswith("/predicted/action/")})
    assert chunks == sorted(f"frame_{f}" for f in range(0, length, 20))
    first = entities[f"{recorded[0].replace('recorded', 'predicted')}/frame_20"]
    assert len(first.components["Scalars:scalars"]) == 4  # action_horizon 4
    np.testing.assert_allclose(np.asarray(first.timelines["timestamp"]) / 1e9, 20 / 80 + np.arange(4) / 30, atol=1e-6)
    mse = [v[0] for v in entities["/error/mse"].components["Scalars:scalars"]]
    assert len(mse) == len(chunks) and all(np.isfinite(mse)) and min(mse) > 0
