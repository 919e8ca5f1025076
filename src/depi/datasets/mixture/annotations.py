"""Per-dataset curation files: camera role mappings and task / camera annotations.

* ``data_ids/camera_roles.json``: ``{"owner/name": {"<camera name or key>": "<slot> | wrist | drop"}}``.
* ``data_ids/annotations/<owner>_<name>.json`` (format in ``data_ids/annotations/README.md``)::

      {"repo_id": "owner/name",
       "cameras": {"laptop": {"camera_pose": "third_person"}, "phone": {"camera_pose": "wrist"}},
       "episodes": {"0": {"task": "Pick the red cube and place it in the bowl."}}}

  ``cameras`` and ``episodes`` are optional; an episode without an entry keeps the dataset's own task.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from depi.fileio import read_json_file

DATA_IDS_DIR = Path(__file__).resolve().parents[4] / "data_ids"
CAMERA_ROLES_FILE = DATA_IDS_DIR / "camera_roles.json"
ANNOTATIONS_DIR = DATA_IDS_DIR / "annotations"


def _read_object(path: Path) -> dict:
    return read_json_file(path, "JSON file", dict, "a JSON object at the top level", "fix or delete the file")


def load_camera_roles(path: str | Path | None) -> dict[str, dict[str, str]]:
    """Read the camera role mapping file; a missing default file means no overrides.

    Raises:
        FileNotFoundError: an explicitly given ``path`` does not exist.
        ValueError: the file is not ``{repo_id: {camera: role}}`` with string roles.
    """
    if path is None:
        if not CAMERA_ROLES_FILE.is_file():
            return {}
        path = CAMERA_ROLES_FILE
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Camera roles file {path} not found; pass an existing JSON file.")
    data = _read_object(path)
    for repo_id, mapping in data.items():
        if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
            raise ValueError(
                f"{path}: entry {repo_id!r} must map camera names to role strings, found {mapping!r}."
            )
    return data


@dataclass
class Annotation:
    """One dataset's annotation file, parsed.

    Attributes:
        camera_poses: camera name or key -> ``camera_pose`` (:data:`depi.datasets.mixture.roles.CAMERA_POSE_ROLES`).
        episode_tasks: ``episode_index`` -> re-annotated task text.
    """

    camera_poses: dict[str, str] = field(default_factory=dict)
    episode_tasks: dict[int, str] = field(default_factory=dict)


def annotation_path(annotations_dir: str | Path | None, repo_id: str) -> Path:
    """``<annotations_dir>/<owner>_<name>.json`` (default dir ``data_ids/annotations``)."""
    return Path(annotations_dir or ANNOTATIONS_DIR) / f"{repo_id.replace('/', '_')}.json"


def load_annotation(annotations_dir: str | Path | None, repo_id: str) -> Annotation | None:
    """The dataset's annotation, or None when it has no file.

    Raises:
        ValueError: malformed file (names the file and the field).
    """
    path = annotation_path(annotations_dir, repo_id)
    if not path.is_file():
        return None
    data = _read_object(path)
    result = Annotation()
    for name, camera in (data.get("cameras") or {}).items():
        if not isinstance(camera, dict) or not isinstance(camera.get("camera_pose"), str):
            raise ValueError(
                f"{path}: cameras.{name} must be an object with a string 'camera_pose', found {camera!r}."
            )
        result.camera_poses[name] = camera["camera_pose"]
    for index, episode in (data.get("episodes") or {}).items():
        if (
            not str(index).isdigit()
            or not isinstance(episode, dict)
            or not isinstance(episode.get("task"), str)
        ):
            raise ValueError(
                f"{path}: episodes.{index} must be keyed by an episode_index and hold a string 'task', "
                f"found {episode!r}."
            )
        result.episode_tasks[int(index)] = episode["task"]
    return result
