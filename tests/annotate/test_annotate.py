"""depi-annotate against a local OpenAI-compatible server (good, malformed, slow and rate-limited replies), the
mixture reading its output, --write_tasks, the review report, and the transformers backend on a tiny random
Qwen2-VL."""

from __future__ import annotations

import base64
import io
import json
import threading

import pytest
from PIL import Image

from depi.annotate import cli
from depi.annotate.backends import TransformersBackend, VLMConfig
from depi.annotate.prompt import PROMPT_VERSION, MalformedReply, parse_reply
from depi.annotate.run import annotate_dataset
from depi.constants import PROMPT
from depi.datasets.format.meta import load_meta
from depi.datasets.format.validate import validate_dataset
from depi.datasets.mixture.config import DatasetConfig
from depi.datasets.mixture.dataset import MultiLeRobotDataset
from depi.errors import DepiError
from depi.hub.retry import RetryPolicy
from tests.annotate.tiny_qwen import make_tiny_qwen2_vl
from tests.datasets.factories import CameraSpec, DatasetSpec, make_lerobot_dataset
from tests.helpers.openai_server import OpenAIServer, Scripted

CAMERAS = (CameraSpec("observation.images.laptop", height=24, width=32),
           CameraSpec("observation.images.phone", height=24, width=32))  # fmt: skip
SPEC = DatasetSpec(version="v3.0", episode_lengths=(12, 9, 10), fps=10, state_dim=3, action_dim=3, cameras=CAMERAS,
                   tasks=("test", "so100 demo"))  # fmt: skip
GOOD = {"task": "Pick up the red cube and place it in the box.", "cameras": {"laptop": "side", "phone": "top"}}


def user_text(body: dict) -> str:
    return next(p["text"] for p in body["messages"][1]["content"] if p["type"] == "text")


def images(body: dict) -> list[Image.Image]:
    urls = [p["image_url"]["url"] for p in body["messages"][1]["content"] if p["type"] == "image_url"]
    return [Image.open(io.BytesIO(base64.b64decode(u.split(",", 1)[1]))) for u in urls]


def run_cli(tmp_path, api_base, root, *extra):
    return cli.main([f"--root={root}", f"--vlm.api_base={api_base}", "--vlm.model=test-vlm", "--vlm.timeout_s=1",
                     f"--output_dir={tmp_path / 'ann'}", f"--report={tmp_path / 'report.html'}", *extra])  # fmt: skip


def test_annotations_reach_the_mixture(tmp_path):
    root = make_lerobot_dataset(tmp_path / "me" / "rec", SPEC)
    with OpenAIServer(lambda body: Scripted(json.dumps(GOOD))) as server:
        assert run_cli(tmp_path, server.api_base, tmp_path) == 0
        assert len(server.requests) == 3
        body = server.requests[0]
        assert body["model"] == "test-vlm" and "laptop, phone" in user_text(body)
        assert '"test"' in user_text(body) or '"so100 demo"' in user_text(body)
        sheets = images(body)
        assert len(sheets) == 2 and sheets[0].height == 160  # one contact sheet per camera
    doc = json.loads((tmp_path / "ann" / "me_rec.json").read_text())
    assert doc["provenance"]["prompt_version"] == PROMPT_VERSION and doc["provenance"]["model"] == "test-vlm"
    assert doc["episodes"]["1"]["task"] == GOOD["task"] and doc["episodes"]["1"]["original_task"] in SPEC.tasks
    assert doc["cameras"]["phone"] == {"camera_pose": "top", "votes": {"top": 3}}
    assert doc["failures"] == {}
    # The mixture prompts with the new text and feeds base_0_rgb from the camera labelled "top".
    mixture = MultiLeRobotDataset(DatasetConfig(root=str(tmp_path), annotations_dir=str(tmp_path / "ann"),
                                                control_fps=10, action_horizon=2), verbose=False)  # fmt: skip
    entry = mixture.index.entries[0]
    assert entry.roles.slots["base_0_rgb"] == "observation.images.phone"
    assert mixture[0][PROMPT] == GOOD["task"]
    assert "Pick up the red cube" in (tmp_path / "report.html").read_text()


def test_bad_replies_are_retried_then_recorded(tmp_path):
    root = make_lerobot_dataset(tmp_path / "ds", SPEC)
    calls: dict[int, int] = {}
    lock = threading.Lock()

    def replies(body: dict) -> Scripted:  # the first episode meets every fault in turn (concurrency 1)
        with lock:
            n = len(calls)
            calls[n] = 1
        script = [Scripted("Sure! Here is the JSON: {"),          # malformed
                  Scripted(retry_after=0.05, status=429),            # rate limited
                  Scripted(json.dumps(GOOD), delay_s=1.5),           # too slow: the client times out
                  Scripted(json.dumps({"task": "x"}))]               # breaks the schema
        return script[n] if n < len(script) else Scripted("```json\n" + json.dumps(GOOD) + "\n```")

    cfg = VLMConfig(api_base="", model="m", timeout_s=1.0, concurrency=1, max_retries=4)
    with OpenAIServer(replies) as server:
        cfg.api_base = server.api_base
        from depi.annotate.backends import OpenAIBackend

        result = annotate_dataset("me/ds", root, OpenAIBackend(cfg), cfg, output_dir=tmp_path / "ann",
                                  policy=RetryPolicy(base_wait_s=0.01), progress=False)  # fmt: skip
        assert [e.task for e in result.episodes] == [GOOD["task"]] * 3
        assert result.episodes[0].attempts == 5 and len(server.requests) == 7

    def always_bad(body: dict) -> Scripted:
        return Scripted("I cannot see any robot <here>")

    with OpenAIServer(always_bad) as server:
        code = run_cli(tmp_path, server.api_base, root, "--force=true", "--vlm.max_retries=2")
        assert code == 1 and len(server.requests) == 3 * 3  # 3 episodes x (1 try + 2 retries), then stop
    doc = json.loads((tmp_path / "ann" / "local_ds.json").read_text())
    assert set(doc["failures"]) == {"0", "1", "2"} and doc["episodes"] == {}
    assert doc["failures"]["0"]["raw"] == "I cannot see any robot <here>" and doc["failures"]["0"]["attempts"] == 3
    assert "not JSON" in doc["failures"]["0"]["error"]
    report = (tmp_path / "report.html").read_text()
    assert "failed after 3 tries" in report and "&lt;here&gt;" in report


def test_resume_asks_only_for_what_is_missing(tmp_path):
    root = make_lerobot_dataset(tmp_path / "ds", SPEC)
    seen = []

    def replies(body: dict) -> Scripted:
        seen.append(1)
        return Scripted(json.dumps(GOOD)) if len(seen) != 2 else Scripted(status=400)  # 400: not retried

    with OpenAIServer(replies) as server:
        assert run_cli(tmp_path, server.api_base, root, "--vlm.concurrency=1") == 1
        assert len(server.requests) == 3
        assert run_cli(tmp_path, server.api_base, root) == 0
        assert len(server.requests) == 4  # only the failed episode is asked again
        assert run_cli(tmp_path, server.api_base, root) == 0
        assert len(server.requests) == 4


def test_write_tasks_renames_v30_tasks(tmp_path):
    root = make_lerobot_dataset(tmp_path / "ds", SPEC)
    with OpenAIServer(lambda body: Scripted(json.dumps(GOOD | {"task": "Stack the blocks." if '"test"' in user_text(body)
                                                                  else "Open the drawer."}))) as server:  # fmt: skip
        assert run_cli(tmp_path, server.api_base, root, "--write_tasks=true") == 0
    meta = load_meta(root)
    assert sorted(meta.tasks) == ["Open the drawer.", "Stack the blocks."]
    assert {t for ep in meta.episodes for t in ep.tasks} == set(meta.tasks)
    assert validate_dataset(root).ok
    v21 = make_lerobot_dataset(tmp_path / "v21", SPEC, version="v2.1")
    with OpenAIServer(lambda body: Scripted(json.dumps(GOOD))) as server, pytest.raises(ValueError, match="v3.0"):
        run_cli(tmp_path, server.api_base, v21, "--write_tasks=true")


def test_refused_endpoint_stops_with_one_message(tmp_path):
    root = make_lerobot_dataset(tmp_path / "ds", SPEC)
    with OpenAIServer(lambda body: Scripted(status=401)) as server, pytest.raises(DepiError, match="--vlm.api_key"):
        run_cli(tmp_path, server.api_base, root)


def test_schema_rejects_unknown_poses_and_cameras():
    with pytest.raises(MalformedReply, match="cameras/laptop"):
        parse_reply(json.dumps({"task": "Pick it.", "cameras": {"laptop": "ceiling"}}), ["laptop"])
    with pytest.raises(MalformedReply, match="phone"):
        parse_reply(json.dumps({"task": "Pick it.", "cameras": {"laptop": "top"}}), ["laptop", "phone"])
    assert parse_reply('{"task": "  Pick   it. ", "cameras": {}}', []).task == "Pick it."


def test_transformers_backend_runs_a_tiny_qwen2_vl(tmp_path):
    model = make_tiny_qwen2_vl(tmp_path / "qwen")
    root = make_lerobot_dataset(tmp_path / "ds", SPEC)
    cfg = VLMConfig(backend="transformers", model=str(model), max_tokens=12, max_retries=1, device="cpu")
    result = annotate_dataset("me/ds", root, TransformersBackend(cfg), cfg, output_dir=tmp_path / "ann",
                              max_episodes=1, policy=RetryPolicy(base_wait_s=0.0), progress=False)  # fmt: skip
    [episode] = result.episodes
    # Random weights answer gibberish: generated, parsed, rejected, retried once, recorded with the raw text.
    assert episode.task is None and episode.attempts == 2 and episode.raw
    doc = json.loads((tmp_path / "ann" / "me_ds.json").read_text())
    assert doc["failures"]["0"]["raw"] == episode.raw and doc["provenance"]["backend"] == "transformers"
