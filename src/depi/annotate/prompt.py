"""The annotation prompt (versioned) and the JSON schema its reply must satisfy.

The model sees one contact sheet per camera (frames in time order) and the dataset's original task text, and
answers with JSON only::

    {"task": "Pick up the red cube and place it in the box.",
     "cameras": {"front": "front", "wrist": "wrist"}}

``task`` is one imperative sentence (3..200 characters); ``cameras`` gives every camera one of
:data:`CAMERA_POSES` (``front`` / ``top`` / ``side``: a fixed camera viewing the workspace from there;
``wrist``: mounted on the arm or gripper). The schema is JSON Schema draft 2020-12, checked with
``jsonschema``. Bump :data:`PROMPT_VERSION` whenever the text or schema changes: annotation files record it,
and a rerun re-annotates episodes labelled under another version.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import jsonschema

from depi.annotate.frames import EpisodeFrames, jpeg_data_url

PROMPT_VERSION = "depi-annotate-1"
CAMERA_POSES = ("front", "top", "side", "wrist")

SYSTEM = "You label robot demonstration episodes. You answer with one JSON object and nothing else."

INSTRUCTIONS = """The images are contact sheets of one robot episode, one per camera, frames in time order (left to right, \
top to bottom). Cameras, in image order: {cameras}.
The dataset's own task text is: "{task}" (it may be empty, generic or wrong).

Answer with JSON only, exactly this shape:
{{"task": "<one imperative sentence saying what the robot does in this episode, naming objects and places, e.g. \
Pick up the red cube and place it in the box.>",
 "cameras": {{{camera_slots}}}}}
Camera poses: "front", "top" or "side" for a fixed camera viewing the workspace from the front, from above or from \
the side; "wrist" for a camera mounted on the robot arm or gripper."""


class MalformedReply(ValueError):
    """The reply is not JSON or does not match the schema; ``raw`` is the reply text."""

    def __init__(self, message: str, raw: str) -> None:
        super().__init__(message)
        self.raw = raw


@dataclass(frozen=True)
class Reply:
    """A validated reply: the new ``task`` and camera name -> pose."""

    task: str
    cameras: dict[str, str]


def reply_schema(camera_names: list[str]) -> dict:
    """The JSON schema of a reply for a dataset with these camera names."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["task", "cameras"],
        "properties": {
            "task": {"type": "string", "minLength": 3, "maxLength": 200},
            "cameras": {
                "type": "object",
                "properties": {name: {"enum": list(CAMERA_POSES)} for name in camera_names},
                "required": list(camera_names),
                "additionalProperties": False,
            },
        },
    }


def build_messages(frames: EpisodeFrames) -> list[dict]:
    """OpenAI chat messages: the system line, then the contact sheets (data URLs) and the instructions."""
    names = list(frames.sheets)
    text = INSTRUCTIONS.format(
        cameras=", ".join(names) or "none",
        task=frames.task.replace('"', "'"),
        camera_slots=", ".join(f'"{n}": "<pose>"' for n in names),
    )
    images = [{"type": "image_url", "image_url": {"url": jpeg_data_url(sheet)}} for sheet in frames.sheets.values()]
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": [*images, {"type": "text", "text": text}]}]


_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


def parse_reply(raw: str, camera_names: list[str]) -> Reply:
    """Parse and validate a model reply (a surrounding Markdown code fence is tolerated).

    Raises:
        MalformedReply: not a JSON object, or it breaks the schema (message names the failing field).
    """
    text = raw.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise MalformedReply(f"reply is not JSON ({err.msg} at char {err.pos})", raw) from err
    try:
        jsonschema.validate(data, reply_schema(camera_names))
    except jsonschema.ValidationError as err:
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        raise MalformedReply(f"reply breaks the schema at {where}: {err.message}", raw) from err
    return Reply(" ".join(data["task"].split()), dict(data["cameras"]))
