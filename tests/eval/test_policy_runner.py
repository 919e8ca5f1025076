"""A checkpoint written by depi-train, run through PolicyRunner, gives the actions of the hand-built pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from depi.constants import ACTIONS, EMBODIMENT, IMAGE, IMAGE_MASK, STATE
from depi.datasets.mixture.config import DatasetConfig
from depi.datasets.mixture.dataset import MultiLeRobotDataset
from depi.datasets.format.source import LeRobotSource
from depi.eval.policy_runner import PolicyRunner, canonical_from_frame, load_checkpoint
from depi.policies.pi0 import PI0Policy
from depi.transforms.base import TransformGroup
from tests.eval.conftest import TinyRun


def _hand_built_actions(run: TinyRun, sample: dict, noise: torch.Tensor, action_dim: int) -> np.ndarray:
    """The pipeline spelled out: input transforms -> sample_actions -> output transforms -> real dims."""
    transforms = TransformGroup.load(run.checkpoint)
    policy = PI0Policy.from_pretrained(run.checkpoint / "model").eval()
    batch = default_collate([transforms.inputs({k: v for k, v in sample.items() if k != ACTIONS})])
    normalized = policy.sample_actions(batch, noise=noise)
    out = transforms.outputs(
        {ACTIONS: normalized[0].numpy(), STATE: sample[STATE].numpy(), EMBODIMENT: sample[EMBODIMENT]}
    )
    return np.asarray(out[ACTIONS])[:, :action_dim]


def test_runner_matches_the_hand_built_pipeline_on_a_dataset_frame(tiny_run: TinyRun) -> None:
    checkpoint = load_checkpoint(tiny_run.checkpoint)
    binding = checkpoint.bind_dataset(tiny_run.dataset_root)
    mixture = MultiLeRobotDataset(
        DatasetConfig(root=str(tiny_run.data_dir), control_fps=checkpoint.control_fps, action_horizon=4),
        verbose=False,
    )
    frame_index = 7
    sample = mixture[frame_index]  # the canonical sample training saw
    frame = LeRobotSource(root=tiny_run.dataset_root)[frame_index]  # the raw LeRobot frame
    assert binding.embodiment == sample[EMBODIMENT]

    canonical = canonical_from_frame(frame, binding, frame["task"])
    for slot, image in sample[IMAGE].items():
        assert torch.equal(canonical[IMAGE][slot], image), slot
        assert bool(canonical[IMAGE_MASK][slot]) == bool(sample[IMAGE_MASK][slot])
    assert torch.equal(canonical[STATE], sample[STATE])

    runner = PolicyRunner(checkpoint, binding, seed=3)
    got = runner.infer(frame)[ACTIONS]
    noise = torch.randn((1, 4, 32), generator=torch.Generator().manual_seed(3))
    expected = _hand_built_actions(tiny_run, sample, noise, binding.action_dim)
    assert got.shape == (4, binding.action_dim) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_runner_reset_reproduces_the_chunk(tiny_run: TinyRun) -> None:
    # A run folder stands for its latest complete checkpoint.
    checkpoint = load_checkpoint(tiny_run.checkpoint.parent.parent)
    runner = PolicyRunner(checkpoint, checkpoint.bind_dataset(tiny_run.dataset_root), seed=0)
    frame = LeRobotSource(root=tiny_run.dataset_root)[0]
    first = runner.infer(frame)[ACTIONS]
    assert not np.array_equal(first, runner.infer(frame)[ACTIONS])  # fresh noise per call
    runner.reset(0)
    np.testing.assert_array_equal(first, runner.infer(frame)[ACTIONS])


def test_unknown_embodiment_is_refused_with_the_known_ones(tiny_run: TinyRun) -> None:
    checkpoint = load_checkpoint(tiny_run.checkpoint)
    with pytest.raises(ValueError, match=r"no norm stats .* trained on \['sawyer/s\d+_a\d+'\]"):
        checkpoint.bind("someone/so101", "so101", ["observation.images.front"], 6, 6)


def test_missing_checkpoint_names_the_folder(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="neither a checkpoint folder"):
        load_checkpoint(tmp_path)


def test_channel_last_and_flipped_camera_images_are_accepted() -> None:
    from depi.eval.policy_runner import Binding

    binding = Binding("a/b", "arm/s2_a2", {"base_0_rgb": "observation.images.top"}, 2, 2)
    image = np.arange(48 * 64 * 3, dtype=np.uint8).reshape(48, 64, 3)
    flipped = image[::-1, ::-1]  # a view with negative strides, as a simulator's rotated render
    sample = canonical_from_frame(
        {"observation.state": np.array([1.0, 2.0]), "observation.images.top": flipped}, binding, "pick"
    )
    expected = canonical_from_frame(
        {"observation.state": np.array([1.0, 2.0]), "observation.images.top": flipped.copy()}, binding, "pick"
    )
    assert sample[IMAGE]["base_0_rgb"].shape == (3, 224, 224)
    assert torch.equal(sample[IMAGE]["base_0_rgb"], expected[IMAGE]["base_0_rgb"])
    assert not bool(sample[IMAGE_MASK]["left_wrist_0_rgb"])
    np.testing.assert_array_equal(sample[STATE][:3].numpy(), [1.0, 2.0, 0.0])


@pytest.mark.slow
def test_bf16_compiled_runner_stays_close_to_float32_eager(tiny_run: TinyRun) -> None:
    frame = LeRobotSource(root=tiny_run.dataset_root)[5]
    chunks = {}
    for dtype, compile in (("float32", False), ("bfloat16", True)):
        checkpoint = load_checkpoint(tiny_run.checkpoint, dtype=dtype)
        assert checkpoint.policy.vision_tower.embeddings.patch_embedding.weight.dtype == torch.float32
        assert checkpoint.policy.action_expert.layers[0].mlp.down_proj.weight.dtype == getattr(torch, dtype)
        runner = PolicyRunner(checkpoint, checkpoint.bind_dataset(tiny_run.dataset_root), seed=1, compile=compile)
        chunks[dtype] = runner.infer(frame)[ACTIONS]
    reference, fast = chunks["float32"], chunks["bfloat16"]
    assert fast.dtype == np.float32 and fast.shape == reference.shape
    scale = np.abs(reference).max()
    assert np.abs(fast - reference).max() < 0.05 * scale, (fast, reference)
    with pytest.raises(ValueError, match="float16"):
        load_checkpoint(tiny_run.checkpoint, dtype="float16")
