"""Load a training checkpoint and run it on raw observations: ``infer(obs) -> {"actions": (H, A)}``.

The runner rebuilds, from the checkpoint alone, every step that training applied to a dataset frame:

1. **frame -> canonical sample**, as :class:`depi.datasets.mixture.dataset.MultiLeRobotDataset` does: each camera
   goes to its image slot by the same role rules (and the run's role-mapping file), resized with padding to
   224 x 224; ``observation.state`` is zero-padded to 32; the prompt is the task text; the embodiment is the
   key the run's ``--dataset.embodiment_key`` gives this robot layout;
2. the checkpoint's **input transforms** (``transforms.json``: normalize, tokenize, pad);
3. ``PI0Policy.sample_actions`` (flow matching, Euler steps from noise);
4. the **output transforms** (unnormalize, absolute actions), then the first A (the robot's real) dims.

:meth:`PolicyRunner.infer` follows openpi-client's thin contract (``infer(obs: dict) -> dict``) so a websocket
server can wrap it unchanged. Actions come out at the checkpoint's control rate (``control_fps``, Hz): step
``k`` of the chunk is the target ``k / control_fps`` seconds after the observation.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import draccus
import numpy as np
import torch
from torch.utils.data import default_collate

from depi.constants import (
    ACTIONS,
    CAMERA_SLOTS,
    EMBODIMENT,
    IMAGE,
    IMAGE_MASK,
    IMAGE_RESOLUTION,
    MAX_STATE_DIM,
    OBS_STATE,
    PROMPT,
    STATE,
    TASK,
)
from depi.datasets.mixture.annotations import load_camera_roles
from depi.datasets.format.meta import load_meta
from depi.datasets.mixture.index import embodiment_key
from depi.datasets.mixture.roles import assign_camera_roles
from depi.policies.pi0 import PI0Policy
from depi.train.run_layout import MODEL_DIR, TRAIN_CONFIG_FILE
from depi.train.config import TrainConfig
from depi.transforms.base import TransformGroup
from depi.transforms.image import resize_with_pad
from depi.transforms.norm_stats import list_groups

MANIFEST_FILE = "mixture_manifest.json"
POLICY_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
NORM_STATS_DIR = "norm_stats"


@dataclass
class EvalPolicyConfig:
    """Which policy acts.

    Attributes:
        path: a checkpoint folder (``<run>/checkpoints/<step>``, or a run folder for its latest checkpoint); in
            ``depi-eval sim``, ``expert`` runs the env's scripted expert instead.
        device: torch device of the policy.
        num_steps: flow-matching denoising steps; None: the policy config's.
        dtype: parameter dtype: ``float32``, or ``bfloat16`` (the language model and action expert in bf16, the
            vision tower and projector in float32, as lerobot's bf16 mode; fastest on GPUs and on CPUs with
            AMX-BF16, actions differ from float32 by bf16 rounding).
        compile: run ``sample_actions`` through ``torch.compile`` (the first chunk pays the compilation, tens of
            seconds; see docs/benchmarks.md for the speed-up).
    """

    path: str | None = None
    device: str = "cpu"
    num_steps: int | None = None
    dtype: str = "float32"
    compile: bool = False

    def __post_init__(self) -> None:
        if self.dtype not in POLICY_DTYPES:
            raise ValueError(f"--policy.dtype={self.dtype!r}; expected one of {sorted(POLICY_DTYPES)}.")


@dataclass(frozen=True)
class Binding:
    """How one dataset's (or simulator's) frames map onto the model: its per-dataset feature map.

    Attributes:
        name: repo_id of the dataset or name of the env, for messages.
        embodiment: normalization group key (e.g. ``so101/s6_a6``).
        slots: image slot (``base_0_rgb`` ...) -> LeRobot camera key (``observation.images.front``).
        state_dim: S, real ``observation.state`` dims.
        action_dim: A, real action dims.
    """

    name: str
    embodiment: str
    slots: Mapping[str, str]
    state_dim: int
    action_dim: int


@dataclass
class Checkpoint:
    """What a checkpoint folder holds for inference.

    Attributes:
        path: the checkpoint folder (``<run>/checkpoints/<step>``).
        policy: the policy in eval mode.
        transforms: input / output pipelines saved with the checkpoint.
        manifest: ``mixture_manifest.json`` (datasets, embodiments, control_fps, action_horizon).
        config: the run's :class:`~depi.train.config.TrainConfig`.
        embodiments: embodiment groups with norm stats in the checkpoint.
    """

    path: Path
    policy: PI0Policy
    transforms: TransformGroup
    manifest: dict[str, Any]
    config: TrainConfig
    embodiments: tuple[str, ...]

    @property
    def control_fps(self) -> float:
        """Control rate (Hz) of the predicted action chunks."""
        return float(self.manifest["control_fps"])

    @property
    def action_horizon(self) -> int:
        """H, steps per predicted chunk."""
        return int(self.policy.config.action_horizon)

    def embodiment_for(self, name: str, robot_type: str | None, state_dim: int, action_dim: int) -> str:
        """The embodiment key the run gives this robot layout (``--dataset.embodiment_key``).

        Raises:
            ValueError: the checkpoint has no norm stats for it: the model was not trained on that embodiment.
        """
        key = embodiment_key(self.config.dataset.embodiment_key, robot_type, state_dim, action_dim, name)
        if key not in self.embodiments:
            raise ValueError(
                f"{name}: embodiment {key!r} (robot_type={robot_type!r}, state dims {state_dim}, action dims "
                f"{action_dim}) has no norm stats in {self.path / NORM_STATS_DIR}; the checkpoint was trained "
                f"on {list(self.embodiments)}. Evaluate an env / dataset of those embodiments, or train on "
                "data of this one."
            )
        return key

    def bind(
        self, name: str, robot_type: str | None, camera_keys: list[str], state_dim: int, action_dim: int
    ) -> Binding:
        """The feature map of a dataset / env named ``name`` (a repo_id, e.g. ``depi_sim/so101_pick_place``).

        Camera roles come from the run's role-mapping file (``--dataset.camera_roles_file``) then the name rules
        (:func:`depi.datasets.mixture.roles.assign_camera_roles`), as in training.

        Raises:
            ValueError: no norm stats for the embodiment, or no camera feeds an image slot.
        """
        embodiment = self.embodiment_for(name, robot_type, state_dim, action_dim)
        mapping = load_camera_roles(self.config.dataset.camera_roles_file).get(name)
        roles = assign_camera_roles(camera_keys, mapping, origin=f"camera roles of {name}")
        if not roles.slots:
            raise ValueError(f"{name}: no camera among {camera_keys} feeds an image slot of the policy.")
        return Binding(name, embodiment, dict(roles.slots), state_dim, action_dim)

    def bind_dataset(self, root: str | Path, repo_id: str | None = None) -> Binding:
        """:meth:`bind` for a LeRobot dataset on disk (reads its ``meta/info.json``).

        ``repo_id`` should be the id the training mixture gave the dataset (``mixture_manifest.json``), since
        role mappings and ``--dataset.embodiment_key=dataset`` are keyed by it; None: the root's last two parts.

        Raises:
            FileNotFoundError / ValueError: unreadable meta, or see :meth:`bind`.
        """
        meta = load_meta(Path(root), repo_id)
        repo_id = repo_id or meta.repo_id
        state_dim = int(meta.features[OBS_STATE]["shape"][0])
        action_dim = int(meta.features["action"]["shape"][0])
        return self.bind(repo_id, meta.robot_type, list(meta.camera_keys), state_dim, action_dim)


def load_checkpoint(path: str | Path, device: str = "cpu", dtype: str = "float32") -> Checkpoint:
    """Read a checkpoint folder written by ``depi-train`` (layout in :mod:`depi.train.checkpoint`).

    Args:
        path: ``<run>/checkpoints/<step>``; a run folder is accepted too (its latest complete checkpoint).
        device: torch device of the policy.
        dtype: ``float32`` or ``bfloat16`` (see :class:`EvalPolicyConfig`).

    Raises:
        FileNotFoundError: the folder or one of its files (named) is missing.
        ValueError: an unknown ``dtype``.
    """
    if dtype not in POLICY_DTYPES:
        raise ValueError(f"dtype={dtype!r}; expected one of {sorted(POLICY_DTYPES)}.")
    from depi.train.run_layout import latest_checkpoint

    path = Path(path)
    if not (path / MODEL_DIR).is_dir():
        latest = latest_checkpoint(path)
        if latest is None:
            raise FileNotFoundError(
                f"--policy.path={path}: neither a checkpoint folder (with {MODEL_DIR}/) nor a run folder with a "
                "complete checkpoint under checkpoints/; pass <run>/checkpoints/<step> written by depi-train."
            )
        path = latest
    for name in (MANIFEST_FILE, TRAIN_CONFIG_FILE, NORM_STATS_DIR):
        if not (path / name).exists():
            raise FileNotFoundError(
                f"checkpoint {path} lacks {name}; it is written by depi-train with every save."
            )
    policy = PI0Policy.from_pretrained(path / MODEL_DIR).to(device=device, dtype=POLICY_DTYPES[dtype]).eval()
    policy.vision_tower.float()  # SigLIP and its projector stay float32 in bf16 mode (lerobot's layout)
    policy.multi_modal_projector.float()
    config = draccus.parse(TrainConfig, config_path=path / TRAIN_CONFIG_FILE, args=[])
    return Checkpoint(
        path=path,
        policy=policy,
        transforms=TransformGroup.load(path),
        manifest=json.loads((path / MANIFEST_FILE).read_text()),
        config=config,
        embodiments=tuple(list_groups(path / NORM_STATS_DIR)),
    )


def canonical_from_frame(frame: Mapping[str, Any], binding: Binding, prompt: str) -> dict[str, Any]:
    """A LeRobot-keyed frame -> the canonical sample of the mixture (without actions).

    Args:
        frame: ``observation.state`` float (S,); ``observation.images.<camera>`` uint8 (H, W, 3) (channel-last, as
            simulators and robots give them) or (3, H, W) torch tensors (as datasets decode them).
        binding: the dataset's feature map.
        prompt: task text.

    Returns:
        ``image`` slot -> uint8 (3, 224, 224), ``image_mask`` slot -> 0-d bool tensor, ``state`` float32 (32,),
        ``prompt``, ``embodiment`` (see :mod:`depi.datasets.mixture.dataset`).

    Raises:
        KeyError: a bound camera or ``observation.state`` is missing from ``frame``.
        ValueError: ``observation.state`` does not have S dims.
    """
    if OBS_STATE not in frame:
        raise KeyError(f"{binding.name}: observation has no {OBS_STATE!r}; keys: {sorted(frame)}")
    raw_state = np.asarray(frame[OBS_STATE], dtype=np.float32).reshape(-1)
    if raw_state.shape != (binding.state_dim,):
        raise ValueError(
            f"{binding.name}: {OBS_STATE} has shape {raw_state.shape}, expected ({binding.state_dim},)"
        )
    state = np.zeros(MAX_STATE_DIM, dtype=np.float32)
    state[: binding.state_dim] = raw_state
    height, width = IMAGE_RESOLUTION
    images, masks = {}, {}
    for slot in CAMERA_SLOTS:
        key = binding.slots.get(slot)
        if key is None:
            images[slot] = torch.zeros(3, height, width, dtype=torch.uint8)
        else:
            if key not in frame:
                raise KeyError(f"{binding.name}: observation has no camera {key!r}; keys: {sorted(frame)}")
            image = frame[key]
            if not isinstance(image, torch.Tensor):  # simulators may hand flipped views (negative strides)
                image = torch.from_numpy(np.ascontiguousarray(image))
            if image.ndim == 3 and image.shape[-1] == 3 and image.shape[0] != 3:
                image = image.permute(2, 0, 1)  # (H, W, 3) -> (3, H, W)
            images[slot] = resize_with_pad(image.contiguous(), height, width)
        masks[slot] = torch.tensor(key is not None)
    return {
        IMAGE: images,
        IMAGE_MASK: masks,
        STATE: torch.from_numpy(state),
        PROMPT: prompt,
        EMBODIMENT: binding.embodiment,
    }


class PolicyRunner:
    """One checkpoint bound to one dataset / env layout; turns observations into action chunks.

    Args:
        checkpoint: the loaded checkpoint.
        binding: the feature map of the robot (see :meth:`Checkpoint.bind`).
        num_steps: flow-matching denoising steps; None: the policy config's ``num_steps``.
        seed: seed of the noise generator, so a rollout is reproducible.
        compile: sample through ``torch.compile(policy.sample_actions)``.
    """

    def __init__(
        self,
        checkpoint: Checkpoint,
        binding: Binding,
        num_steps: int | None = None,
        seed: int = 0,
        compile: bool = False,
    ):
        self.checkpoint = checkpoint
        self.binding = binding
        self.num_steps = num_steps
        self.device = next(checkpoint.policy.parameters()).device
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        sample = checkpoint.policy.sample_actions
        self._sample_actions = torch.compile(sample) if compile else sample

    def reset(self, seed: int) -> None:
        """Reseed the noise generator (at the start of an episode)."""
        self.generator.manual_seed(seed)

    def infer(self, obs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """openpi-client's contract: one observation -> one action chunk.

        Args:
            obs: a LeRobot-keyed frame (see :func:`canonical_from_frame`) plus ``task`` (or ``prompt``): str.

        Returns:
            ``{"actions": float32 (H, A)}`` in the robot's action units, step k at ``k / control_fps`` seconds.

        Raises:
            KeyError: the observation lacks the task text, the state or a bound camera.
        """
        prompt = obs.get(TASK, obs.get(PROMPT))
        if not isinstance(prompt, str):
            raise KeyError(f"{self.binding.name}: observation needs the task text under {TASK!r} (str)")
        return {ACTIONS: self.predict(canonical_from_frame(obs, self.binding, prompt))}

    def predict(self, sample: Mapping[str, Any], noise: torch.Tensor | None = None) -> np.ndarray:
        """A canonical sample (unnormalized ``state`` (32,), images, prompt, embodiment) -> float32 (H, A).

        Args:
            sample: as the mixture gives it; its ``actions``, if any, are ignored.
            noise: float32 (1, H, 32) flow-matching start; None: drawn from the runner's generator.
        """
        policy = self.checkpoint.policy
        inputs = {k: v for k, v in sample.items() if k != ACTIONS}
        model_sample = self.checkpoint.transforms.inputs(inputs)
        batch = _to_device(default_collate([model_sample]), self.device)
        if noise is None:
            shape = (1, policy.config.action_horizon, policy.config.action_dim)
            noise = torch.randn(shape, generator=self.generator, device=self.device)
        actions = self._sample_actions(batch, noise=noise, num_steps=self.num_steps)  # (1, H, 32) normalized
        out = self.checkpoint.transforms.outputs(
            {
                ACTIONS: actions[0].float().cpu().numpy(),
                STATE: np.asarray(sample[STATE]),
                EMBODIMENT: sample[EMBODIMENT],
            }
        )
        return np.asarray(out[ACTIONS], dtype=np.float32)[:, : self.binding.action_dim]


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, list):
        return [_to_device(v, device) for v in batch]
    return batch
