"""Video decoding at timestamps (H.264, HEVC, AV1; PyAV and torchcodec) and image-in-parquet decoding."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from depi.datasets.format import video
from depi.datasets.format.video import (
    FrameTimestampError,
    PyAVVideoReader,
    VideoReaderCache,
    available_video_backends,
    decode_image,
    decode_video_frames,
)
from tests.datasets.factories import CameraSpec, frame_image, identify_frame

FPS = 10
LENGTHS = (17, 23)
FRAMES = [(e, f) for e, n in enumerate(LENGTHS) for f in range(n)]  # file frame -> (episode, frame)
MP4 = "videos/observation.images.front/chunk-000/file-000.mp4"


def _concatenated_video(make_dataset, codec: str, gop_size: int) -> Path:
    root = make_dataset(
        version="v3.0",
        codec=codec,
        gop_size=gop_size,
        fps=FPS,
        episode_lengths=LENGTHS,
        cameras=(CameraSpec("observation.images.front"),),
    )
    return root / MP4


@pytest.mark.parametrize("codec", ["libx264", "libx265", "libsvtav1"])
@pytest.mark.parametrize("gop_size", [2, 7])
def test_pyav_returns_the_frame_at_each_timestamp(make_dataset, codec: str, gop_size: int):
    path = _concatenated_video(make_dataset, codec, gop_size)
    reader = PyAVVideoReader(path)
    rng = np.random.default_rng(0)
    singles = rng.permutation(len(FRAMES))[:15]  # random access, backwards and forwards
    for k in singles.tolist():
        assert identify_frame(reader.frames_at([k / FPS])[0].numpy())[:2] == FRAMES[k]
    for _ in range(5):
        ks = np.sort(rng.choice(len(FRAMES), size=4, replace=False))
        frames = reader.frames_at(ks / FPS)
        assert frames.shape == (4, 3, 64, 96) and frames.dtype == torch.uint8
        assert [identify_frame(x.numpy())[:2] for x in frames] == [FRAMES[k] for k in ks.tolist()]
    reader.close()


@pytest.mark.skipif(
    "torchcodec" not in available_video_backends(),
    reason="torchcodec does not load here (needs FFmpeg shared libraries and a build for this torch)",
)
@pytest.mark.parametrize("codec", ["libx264", "libx265", "libsvtav1"])
def test_torchcodec_and_pyav_give_identical_frames(make_dataset, codec: str):
    path = _concatenated_video(make_dataset, codec, gop_size=7)
    timestamps = [k / FPS for k in (0, 3, 16, 17, 30, 39)]
    torch.testing.assert_close(
        decode_video_frames(path, timestamps, backend="torchcodec"),
        decode_video_frames(path, timestamps, backend="pyav"),
        rtol=0,
        atol=0,
    )


@pytest.mark.parametrize("backend", available_video_backends())
def test_timestamp_without_a_frame_is_an_error(make_dataset, backend: str):
    path = _concatenated_video(make_dataset, "libx264", gop_size=4)
    with pytest.raises(
        FrameTimestampError, match=r"file-000\.mp4: requested timestamp 4\.000000 s.*tolerance_s"
    ):
        decode_video_frames(path, [3.9, 4.0], backend=backend)
    with pytest.raises(
        FrameTimestampError, match=r"requested timestamp 0\.850000 s, closest decoded frame at 0\.8"
    ):
        decode_video_frames(path, [0.85], backend=backend)
    assert identify_frame(decode_video_frames(path, [0.85], tolerance_s=0.06, backend=backend)[0].numpy())[
        :2
    ] in (FRAMES[8], FRAMES[9])


def test_missing_file_and_unknown_backend(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="absent.mp4"):
        PyAVVideoReader(tmp_path / "absent.mp4")
    with pytest.raises(ValueError, match=r"video_backend='opencv' unknown"):
        VideoReaderCache("opencv")


def test_cache_keeps_readers_open_and_evicts_the_oldest(make_dataset):
    paths = [_concatenated_video(make_dataset, "libx264", gop_size=4) for _ in range(3)]
    cache = VideoReaderCache("pyav", max_open=2)
    first = cache.get(paths[0])
    assert cache.get(paths[0]) is first and len(cache) == 1
    cache.get(paths[1])
    cache.get(paths[2])
    assert len(cache) == 2 and cache.get(paths[0]) is not first  # evicted and reopened


def test_cache_travels_empty_and_sets_inherited_readers_aside(make_dataset):
    path = _concatenated_video(make_dataset, "libx264", gop_size=4)
    cache = VideoReaderCache("pyav")
    reader = cache.get(path)
    assert len(pickle.loads(pickle.dumps(cache))) == 0
    cache._pid = -1  # what a forked child sees: the readers belong to another process
    assert cache.get(path) is not reader
    assert reader in video._INHERITED_READERS
    video._INHERITED_READERS.remove(reader)
    reader.close()


def _encoded(image: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_decode_image_with_pillow_and_pyav(fmt: str):
    image = frame_image(3, 41, 48, 72, camera_position=2)
    data = _encoded(image, fmt)
    with_pil, with_pyav = decode_image(data), decode_image(data, use_pil=False)
    assert with_pil.shape == (3, 48, 72) and with_pil.dtype == torch.uint8
    assert identify_frame(with_pil.numpy()) == identify_frame(with_pyav.numpy()) == (3, 41, 2)
    if fmt == "PNG":  # lossless: exact pixels from both decoders
        np.testing.assert_array_equal(with_pil.permute(1, 2, 0).numpy(), image)
        torch.testing.assert_close(with_pil, with_pyav, rtol=0, atol=0)


def test_decode_image_refuses_garbage():
    with pytest.raises(ValueError, match="not PNG/JPEG"):
        decode_image(b"not an image")
    with pytest.raises(ValueError, match="not PNG/JPEG"):
        decode_image(b"not an image", use_pil=False)
