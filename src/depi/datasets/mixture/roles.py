"""Camera roles: which of a dataset's cameras feeds each of the model's image slots.

pi0 / pi0.5 see three image slots (openpi's model inputs): ``base_0_rgb`` (a third-person view),
``left_wrist_0_rgb`` and ``right_wrist_0_rgb``. Community LeRobot datasets name their cameras freely
(``laptop``, ``phone``, ``front``, ``wrist``, ``cam_high`` ...), so each camera gets a role:

1. an explicit per-dataset mapping (``data_ids/camera_roles.json``) wins;
2. else a ``camera_pose`` from the dataset's annotation file;
3. else the name rules below.

Name rules (case-insensitive, on the camera name without ``observation.images.``):

* a name containing ``wrist``, ``hand`` or ``gripper`` is a wrist camera; ``left`` / ``right`` in the name
  picks the side; wrist cameras with no side fill ``left_wrist_0_rgb`` first, then ``right_wrist_0_rgb``
  (a single-arm robot's only wrist camera is ``left_wrist_0_rgb``, as in openpi's DROID / LIBERO inputs);
* every other camera is base-like. Only one can feed ``base_0_rgb``: the one whose name matches the earliest
  entry of :data:`BASE_PRIORITY` (ties: dataset order). A camera matching no entry ranks last.

Cameras left without a slot (a second base-like camera, a third wrist camera, or one mapped to ``drop``) are
dropped: never decoded, and listed in the build summary so nothing disappears silently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from depi.constants import BASE_CAMERA, CAMERA_SLOTS, LEFT_WRIST_CAMERA, OBS_IMAGES_PREFIX, RIGHT_WRIST_CAMERA

DROP = "drop"
"""Role value that excludes a camera on purpose."""

WRIST_WORDS = ("wrist", "hand", "gripper")

BASE_PRIORITY = (
    "cam_high",
    "high",
    "top",
    "overhead",
    "front",
    "base",
    "exterior",
    "image_0",
    "laptop",
    "main",
    "scene",
    "side",
    "phone",
)
"""Base-like camera names, best first: views from above / in front of the robot show the whole workspace."""

BASE_LIKE = "base_like"

CAMERA_POSE_ROLES = {
    "top": BASE_LIKE,
    "front": BASE_LIKE,
    "side": BASE_LIKE,
    "third_person": BASE_CAMERA,
    "base": BASE_CAMERA,
    "static": BASE_CAMERA,
    "wrist": "wrist",
    "left_wrist": LEFT_WRIST_CAMERA,
    "right_wrist": RIGHT_WRIST_CAMERA,
    "unused": DROP,
}
"""Annotation ``camera_pose`` values and the role each gives (``wrist``: side decided by the name rules).
``top`` / ``front`` / ``side`` (the labels ``depi-annotate`` writes) are base-like: one of them feeds
``base_0_rgb``, preferred in the order of :data:`BASE_POSE_PRIORITY`, before cameras known only by name."""

BASE_POSE_PRIORITY = ("top", "front", "side")

VALID_ROLES = (*CAMERA_SLOTS, DROP, "wrist")


@dataclass
class RoleAssignment:
    """Result of :func:`assign_camera_roles` for one dataset.

    Attributes:
        slots: image slot (``base_0_rgb`` ...) -> full camera key (``observation.images.laptop``); slots with
            no camera are absent (their ``image_mask`` is False).
        dropped: camera keys that feed no slot, in dataset order.
        sources: camera key -> where its role came from (``"mapping"``, ``"annotation"``, ``"name"``).
    """

    slots: dict[str, str] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)


def camera_name(camera_key: str) -> str:
    """``observation.images.laptop`` -> ``laptop`` (keys without the prefix are returned unchanged)."""
    return camera_key[len(OBS_IMAGES_PREFIX) :] if camera_key.startswith(OBS_IMAGES_PREFIX) else camera_key


def _wrist_side(name: str) -> str | None:
    if "left" in name:
        return LEFT_WRIST_CAMERA
    if "right" in name:
        return RIGHT_WRIST_CAMERA
    return None


def _base_rank(name: str) -> int:
    for rank, word in enumerate(BASE_PRIORITY):
        if word in name:
            return rank
    return len(BASE_PRIORITY)


def _lookup(overrides: Mapping[str, str], camera_key: str) -> str | None:
    if camera_key in overrides:
        return overrides[camera_key]
    return overrides.get(camera_name(camera_key))


def _check_role(role: str, camera_key: str, origin: str) -> str:
    if role not in VALID_ROLES:
        raise ValueError(
            f"{origin}: camera {camera_key!r} has role {role!r}; expected one of {', '.join(VALID_ROLES)}. "
            "Fix the role in that file."
        )
    return role


def assign_camera_roles(
    camera_keys: Sequence[str],
    mapping: Mapping[str, str] | None = None,
    camera_poses: Mapping[str, str] | None = None,
    *,
    origin: str = "camera roles",
) -> RoleAssignment:
    """Give each camera of one dataset an image slot (see the module docstring for the rules).

    Args:
        camera_keys: the dataset's camera keys in dataset order (``observation.images.<name>`` or bare names).
        mapping: explicit roles, camera key or bare name -> slot name, ``"wrist"`` or ``"drop"``
            (one dataset's entry of ``data_ids/camera_roles.json``).
        camera_poses: annotation ``camera_pose`` per camera key or bare name (values in
            :data:`CAMERA_POSE_ROLES`).
        origin: file name used in error messages.

    Returns:
        The :class:`RoleAssignment`; at most one camera per slot.

    Raises:
        ValueError: an unknown role or camera pose, or two cameras mapped explicitly to the same slot.
    """
    mapping = mapping or {}
    camera_poses = camera_poses or {}
    result = RoleAssignment()
    wanted: list[tuple[str, str]] = []  # (camera key, role) in dataset order
    pose_rank: dict[str, int] = {}  # base-like cameras labelled by an annotation
    for key in camera_keys:
        role = _lookup(mapping, key)
        if role is not None:
            wanted.append((key, _check_role(role, key, origin)))
            result.sources[key] = "mapping"
            continue
        pose = _lookup(camera_poses, key)
        if pose is not None:
            if pose not in CAMERA_POSE_ROLES:
                raise ValueError(
                    f"{origin}: camera {key!r} has camera_pose {pose!r}; expected one of "
                    f"{', '.join(CAMERA_POSE_ROLES)}. Fix the annotation file."
                )
            wanted.append((key, CAMERA_POSE_ROLES[pose]))
            result.sources[key] = "annotation"
            if pose in BASE_POSE_PRIORITY:
                pose_rank[key] = BASE_POSE_PRIORITY.index(pose)
            continue
        name = camera_name(key).lower()
        wanted.append((key, "wrist" if any(w in name for w in WRIST_WORDS) else BASE_LIKE))
        result.sources[key] = "name"

    # Explicit slots first, so rules fill only what is left.
    for key, role in wanted:
        if role in CAMERA_SLOTS:
            if role in result.slots:
                raise ValueError(
                    f"{origin}: cameras {result.slots[role]!r} and {key!r} are both given slot {role!r}; "
                    "map one of them to another slot or to 'drop'."
                )
            result.slots[role] = key
    wrists = [key for key, role in wanted if role == "wrist"]
    for key in sorted(wrists, key=lambda k: _wrist_side(camera_name(k).lower()) is None):
        side = _wrist_side(camera_name(key).lower())
        free = [s for s in (LEFT_WRIST_CAMERA, RIGHT_WRIST_CAMERA) if s not in result.slots]
        slot = side if side is not None else (free[0] if free else None)
        if slot is not None and slot not in result.slots:
            result.slots[slot] = key
    base_like = [key for key, role in wanted if role == BASE_LIKE]
    if BASE_CAMERA not in result.slots and base_like:
        rank = len(BASE_POSE_PRIORITY)
        result.slots[BASE_CAMERA] = min(
            base_like, key=lambda k: (pose_rank.get(k, rank), _base_rank(camera_name(k).lower()))
        )
    used = set(result.slots.values())
    result.dropped = [key for key in camera_keys if key not in used]
    result.slots = {slot: result.slots[slot] for slot in CAMERA_SLOTS if slot in result.slots}
    return result
