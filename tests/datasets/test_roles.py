"""Camera roles: name rules, priority among base-like cameras, mapping and annotation overrides."""

import pytest

from depi.constants import BASE_CAMERA, LEFT_WRIST_CAMERA, RIGHT_WRIST_CAMERA
from depi.datasets.mixture.roles import assign_camera_roles, camera_name


def keys(*names):
    return [f"observation.images.{n}" for n in names]


def test_so100_laptop_phone_wrist():
    result = assign_camera_roles(keys("laptop", "phone", "wrist"))
    assert result.slots == {
        BASE_CAMERA: "observation.images.laptop",
        LEFT_WRIST_CAMERA: "observation.images.wrist",
    }
    assert result.dropped == ["observation.images.phone"]
    assert set(result.sources.values()) == {"name"}


def test_single_camera_goes_to_base():
    assert assign_camera_roles(keys("phone")).slots == {BASE_CAMERA: "observation.images.phone"}


def test_base_priority_is_by_name_not_order():
    result = assign_camera_roles(keys("phone", "front", "cam_high"))
    assert result.slots[BASE_CAMERA] == "observation.images.cam_high"
    assert result.dropped == keys("phone", "front")


def test_unknown_name_ranks_last_ties_keep_dataset_order():
    assert assign_camera_roles(keys("foo", "bar")).slots[BASE_CAMERA] == "observation.images.foo"
    assert assign_camera_roles(keys("foo", "top")).slots[BASE_CAMERA] == "observation.images.top"


def test_bimanual_sides_by_name():
    result = assign_camera_roles(keys("cam_left_wrist", "cam_high", "cam_right_wrist", "cam_low"))
    assert result.slots == {
        BASE_CAMERA: "observation.images.cam_high",
        LEFT_WRIST_CAMERA: "observation.images.cam_left_wrist",
        RIGHT_WRIST_CAMERA: "observation.images.cam_right_wrist",
    }
    assert result.dropped == ["observation.images.cam_low"]


def test_unsided_wrists_fill_left_then_right_after_sided_ones():
    result = assign_camera_roles(keys("gripper", "left_hand"))
    assert result.slots[LEFT_WRIST_CAMERA] == "observation.images.left_hand"
    assert result.slots[RIGHT_WRIST_CAMERA] == "observation.images.gripper"


def test_mapping_overrides_names_and_can_drop():
    result = assign_camera_roles(
        keys("laptop", "phone"), mapping={"phone": BASE_CAMERA, "observation.images.laptop": "drop"}
    )
    assert result.slots == {BASE_CAMERA: "observation.images.phone"}
    assert result.dropped == ["observation.images.laptop"]
    assert result.sources["observation.images.phone"] == "mapping"


def test_annotation_camera_pose_overrides_names():
    result = assign_camera_roles(
        keys("laptop", "phone"), camera_poses={"phone": "wrist", "laptop": "third_person"}
    )
    assert result.slots == {
        BASE_CAMERA: "observation.images.laptop",
        LEFT_WRIST_CAMERA: "observation.images.phone",
    }
    assert result.sources["observation.images.phone"] == "annotation"


def test_annotated_views_pick_the_base_camera_by_pose_then_name():
    # Names alone would pick "front" (BASE_PRIORITY); the labels say "cam_b" looks from above.
    result = assign_camera_roles(keys("front", "cam_b", "cam_c"), camera_poses={"front": "side", "cam_b": "top"})
    assert result.slots == {BASE_CAMERA: "observation.images.cam_b"}
    assert result.dropped == keys("front", "cam_c")
    # Labelled cameras come before cameras known only by name; two "front" labels are not a conflict.
    result = assign_camera_roles(keys("top", "x", "y"), camera_poses={"x": "front", "y": "front"})
    assert result.slots == {BASE_CAMERA: "observation.images.x"}


def test_mapping_wins_over_annotation():
    result = assign_camera_roles(
        keys("phone"), mapping={"phone": BASE_CAMERA}, camera_poses={"phone": "wrist"}
    )
    assert result.slots == {BASE_CAMERA: "observation.images.phone"}


def test_bad_role_and_duplicate_slot_raise_with_origin():
    with pytest.raises(ValueError, match="roles.json.*phone'.*'sky'"):
        assign_camera_roles(keys("phone"), mapping={"phone": "sky"}, origin="roles.json")
    with pytest.raises(ValueError, match="both given slot"):
        assign_camera_roles(keys("a", "b"), mapping={"a": BASE_CAMERA, "b": BASE_CAMERA})
    with pytest.raises(ValueError, match="camera_pose 'ceiling'"):
        assign_camera_roles(keys("a"), camera_poses={"a": "ceiling"})


def test_camera_name():
    assert camera_name("observation.images.front") == "front"
    assert camera_name("front") == "front"
