"""The observation check of depi-serve (torch-free) and the norm-stats hash announced in the metadata."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from depi.serve.protocol import ObservationSpec, RequestError, norm_stats_sha256

SPEC = ObservationSpec(camera_keys=("observation.images.front", "observation.images.wrist"), state_dim=3)
GOOD = {
    "observation.state": np.zeros(3, dtype=np.float64),
    "observation.images.front": np.zeros((8, 10, 3), dtype=np.uint8),
    "observation.images.wrist": np.zeros((3, 8, 10), dtype=np.uint8),  # channel-first is accepted too
    "task": "pick",
}


def test_good_observation_is_normalized() -> None:
    frozen = np.zeros((8, 10, 3), dtype=np.uint8)
    frozen.flags.writeable = False
    out = SPEC.check({**GOOD, "observation.images.front": frozen, "extra": 1})
    assert out["observation.state"].dtype == np.float32
    assert out["observation.images.front"].flags.writeable
    assert out["extra"] == 1
    assert SPEC.check({**{k: v for k, v in GOOD.items() if k != "task"}, "prompt": "pick"})["prompt"] == "pick"
    assert SPEC.check({**GOOD, "observation.state": [1, 2, 3]})["observation.state"].tolist() == [1, 2, 3]


def _without(key: str) -> dict:
    return {k: v for k, v in GOOD.items() if k != key}


@pytest.mark.parametrize(
    ("obs", "type", "field"),
    [
        ([1, 2], "bad_message", None),
        ({**GOOD, 3: "x"}, "bad_message", None),
        (_without("observation.state"), "missing_key", "observation.state"),
        (_without("observation.images.wrist"), "missing_key", "observation.images.wrist"),
        (_without("task"), "missing_key", "task"),
        ({**GOOD, "observation.images.top": GOOD["observation.images.front"]}, "unknown_camera", "observation.images.top"),
        ({**GOOD, "observation.state": np.zeros(4)}, "bad_shape", "observation.state"),
        ({**GOOD, "observation.state": np.zeros((1, 3))}, "bad_shape", "observation.state"),
        ({**GOOD, "observation.state": np.array(["a", "b", "c"])}, "bad_dtype", "observation.state"),
        ({**GOOD, "observation.state": [[1], [2, 3]]}, "bad_dtype", "observation.state"),
        ({**GOOD, "observation.state": np.array([0, np.nan, 0])}, "bad_value", "observation.state"),
        ({**GOOD, "observation.images.front": np.zeros((8, 10, 3), np.float32)}, "bad_dtype", "observation.images.front"),
        ({**GOOD, "observation.images.front": np.zeros((8, 10), np.uint8)}, "bad_shape", "observation.images.front"),
        ({**GOOD, "observation.images.front": np.zeros((8, 10, 4), np.uint8)}, "bad_shape", "observation.images.front"),
        ({**GOOD, "observation.images.front": [[1]]}, "bad_dtype", "observation.images.front"),
        ({**GOOD, "task": 3}, "bad_dtype", "task"),
        ({**GOOD, "task": "  "}, "bad_value", "task"),
    ],
)
def test_bad_observation_names_the_field(obs, type: str, field: str | None) -> None:
    with pytest.raises(RequestError) as caught:
        SPEC.check(obs)
    assert caught.value.type == type and caught.value.field == field
    reply = caught.value.reply()["error"]
    assert reply["type"] == type and reply["field"] == field
    if field is not None:
        assert field in reply["message"]


def test_norm_stats_hash(tmp_path: Path) -> None:
    (tmp_path / "norm_stats" / "so101" / "s6_a6").mkdir(parents=True)
    stats = tmp_path / "norm_stats" / "so101" / "s6_a6" / "norm_stats.json"
    stats.write_text('{"norm_stats": {}}')
    first = norm_stats_sha256(tmp_path)
    assert len(first) == 64 and norm_stats_sha256(tmp_path) == first
    stats.write_text('{"norm_stats": {"state": {}}}')
    assert norm_stats_sha256(tmp_path) != first
    with pytest.raises(FileNotFoundError, match="no norm stats files"):
        norm_stats_sha256(tmp_path / "elsewhere")
