"""resize_with_pad geometry (openpi semantics), ResizeImages and CameraSlots."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from depi.transforms.image import CameraSlots, ResizeImages, resize_with_pad


def _content_box(image: torch.Tensor) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the non-zero pixels of a (C, H, W) image, bottom/right exclusive."""
    rows = torch.nonzero(image.amax(dim=(0, 2)) > 0).flatten()
    cols = torch.nonzero(image.amax(dim=(0, 1)) > 0).flatten()
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def test_wide_image_keeps_aspect_and_is_centred_with_zero_padding():
    image = torch.full((3, 480, 640), 200, dtype=torch.uint8)  # 4:3
    out = resize_with_pad(image, 224, 224)
    assert out.shape == (3, 224, 224) and out.dtype == torch.uint8
    top, bottom, left, right = _content_box(out)
    assert (left, right) == (0, 224)
    assert bottom - top == 168  # int(480 / (640 / 224))
    assert top == 28 and 224 - bottom == 28  # centred
    assert torch.all(out[:, :top] == 0) and torch.all(out[:, bottom:] == 0)
    assert torch.all(out[:, top:bottom] == 200)


def test_odd_padding_goes_to_the_bottom_and_right():
    out = resize_with_pad(torch.full((3, 10, 7), 50, dtype=torch.uint8), 10, 10)  # content 10x7, pad 3
    top, bottom, left, right = _content_box(out)
    assert (top, bottom) == (0, 10)
    assert (left, 10 - right) == (1, 2)


def test_tall_batched_and_float_images():
    images = torch.rand(2, 3, 300, 100)  # (B, C, H, W), float in [0, 1]
    out = resize_with_pad(images + 0.01, 224, 224)
    assert out.shape == (2, 3, 224, 224) and out.dtype == torch.float32
    top, bottom, left, right = _content_box(out[0])
    assert (top, bottom) == (0, 224) and right - left == 74  # int(100 / (300 / 224))
    assert left == (224 - 74) // 2


def test_image_at_target_size_is_unchanged_and_upscaling_works():
    image = torch.randint(0, 255, (3, 224, 224), dtype=torch.uint8)
    assert torch.equal(resize_with_pad(image, 224, 224), image)
    small = resize_with_pad(torch.full((3, 56, 112), 90, dtype=torch.uint8), 224, 224)
    assert _content_box(small) == (56, 168, 0, 224)


def test_gradient_survives_downscaling():
    ramp = torch.linspace(0, 255, 640).round().to(torch.uint8).expand(3, 480, 640)
    out = resize_with_pad(ramp, 224, 224)
    row = out[0, 112].to(torch.int32)
    assert torch.all(row[1:] >= row[:-1])  # still monotonic
    assert row[0] < 5 and row[-1] > 250


def test_channel_last_image_is_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"channel-first.*permute\(2, 0, 1\)"):
        resize_with_pad(np.zeros((480, 640, 3), dtype=np.uint8), 224, 224)
    with pytest.raises(ValueError, match=r"image\['base_0_rgb'\]"):
        ResizeImages()({"image": {"base_0_rgb": torch.zeros(480, 640, 3, dtype=torch.uint8)}})


def test_resize_images_transform_does_not_mutate_input():
    images = {"base_0_rgb": torch.ones(3, 96, 128, dtype=torch.uint8)}
    sample = {"image": images}
    out = ResizeImages(224, 224)(sample)
    assert out["image"]["base_0_rgb"].shape == (3, 224, 224)
    assert sample["image"] is images and images["base_0_rgb"].shape == (3, 96, 128)


def test_camera_slots_fill_missing_with_zero_images_and_false_masks():
    base = torch.ones(3, 224, 224, dtype=torch.uint8)
    out = CameraSlots()({"image": {"base_0_rgb": base}})
    assert list(out["image"]) == ["base_0_rgb", "left_wrist_0_rgb", "right_wrist_0_rgb"]
    assert out["image"]["base_0_rgb"] is base
    assert torch.all(out["image"]["left_wrist_0_rgb"] == 0)
    assert out["image"]["right_wrist_0_rgb"].shape == (3, 224, 224)
    assert {k: bool(v) for k, v in out["image_mask"].items()} == {
        "base_0_rgb": True,
        "left_wrist_0_rgb": False,
        "right_wrist_0_rgb": False,
    }


def test_camera_slots_keep_given_masks_and_refuse_unknown_slots():
    image = torch.zeros(3, 224, 224, dtype=torch.uint8)
    out = CameraSlots()({"image": {"base_0_rgb": image}, "image_mask": {"base_0_rgb": False}})
    assert not bool(out["image_mask"]["base_0_rgb"])
    with pytest.raises(ValueError, match=r"\['observation.images.top'\] are not model camera slots"):
        CameraSlots()({"image": {"observation.images.top": image}})
    with pytest.raises(ValueError, match="no camera image"):
        CameraSlots()({"image": {}})


@pytest.mark.parametrize("shape", [(480, 640), (96, 128), (300, 100), (56, 112)])
def test_matches_openpi_pil_bilinear_resize_within_one_level(shape):
    """openpi resizes with PIL's bilinear filter; the torch resize must agree to one uint8 level."""
    image_module = pytest.importorskip(
        "PIL.Image", reason="Pillow (a matplotlib dependency) is not installed"
    )
    h, w = shape
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w]
    gray = 127 + 100 * np.sin(xx / 17.0) * np.cos(yy / 23.0) + rng.normal(0, 20, (h, w))
    gray = gray.clip(0, 255).astype(np.uint8)
    hwc = np.stack([gray, 255 - gray, gray // 2], axis=-1)  # (H, W, 3)
    ratio = max(w / 224, h / 224)
    new_h, new_w = int(h / ratio), int(w / ratio)
    pil = np.asarray(image_module.fromarray(hwc).resize((new_w, new_h), resample=image_module.BILINEAR))
    expected = np.zeros((224, 224, 3), dtype=np.int64)
    top, left = (224 - new_h) // 2, (224 - new_w) // 2  # PIL paste offsets in openpi's resize_with_pad
    expected[top : top + new_h, left : left + new_w] = pil
    ours = resize_with_pad(torch.from_numpy(hwc).permute(2, 0, 1), 224, 224).permute(1, 2, 0).numpy()
    diff = np.abs(ours.astype(np.int64) - expected)
    assert diff.max() <= 1
    assert diff.mean() < 0.3


@pytest.mark.parametrize("channels_last", [False, True])
def test_uint8_downscale_matches_float_resize_within_one_level(channels_last):
    """Downscaled uint8 images take torch's uint8 kernel; it agrees with the float32 round trip."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:240, 0:320]
    smooth = np.stack([(xx * 0.7) % 255, (yy * 1.3) % 255, 128 + 100 * np.sin(xx / 9.0)]).astype(np.uint8)
    noisy = rng.integers(0, 256, (3, 240, 320), dtype=np.uint8)
    for array in (smooth, noisy):
        image = torch.from_numpy(array)
        if channels_last:  # how the video readers hand frames over: a (C, H, W) view of (H, W, C) memory
            image = torch.from_numpy(np.ascontiguousarray(array.transpose(1, 2, 0))).permute(2, 0, 1)
        fast = resize_with_pad(image, 224, 224)
        slow = resize_with_pad(image.float(), 224, 224).round().clamp(0, 255).to(torch.uint8)
        assert fast.dtype == torch.uint8 and fast.shape == (3, 224, 224) and fast.is_contiguous()
        assert (fast.int() - slow.int()).abs().max() <= 1
        assert torch.equal(fast[:, :28], torch.zeros(3, 28, 224, dtype=torch.uint8))  # 168 rows, centred
