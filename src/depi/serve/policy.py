"""A checkpoint made servable: which robot layout it is bound to, what the server announces, what runs.

The binding (robot layout -> model inputs) comes, in this order, from:

* ``--env=<sim env>``: the env's :class:`~depi.sim.envs.EnvSpec` (robot_type, cameras, state / action dims);
* ``--dataset.root=<LeRobot dataset>``: its ``meta/info.json``;
* ``--dataset.repo_id=<id>``, or else the first dataset of the checkpoint's ``mixture_manifest.json``: the
  embodiment and camera slots training recorded for it, with the state / action dims of that embodiment's
  norm stats (nothing else is read, so the dataset need not be on the serving machine).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import depi
from depi.constants import CAMERA_SLOTS
from depi.eval.policy_runner import NORM_STATS_DIR, Binding, Checkpoint, PolicyRunner
from depi.serve import protocol
from depi.transforms.norm_stats import load_group_norm_stats
from depi.train.run_layout import COMPLETE_MARKER


@dataclass
class BindingSource:
    """Where the robot layout comes from (at most one of ``env`` / ``dataset_root``; see the module doc).

    Attributes:
        env: a registered sim env name (``so101_pick_place``, ``metaworld/reach-v3``, ``so100_transfer_cube``).
        dataset_root: a LeRobot dataset folder of the robot.
        repo_id: the dataset's id in the checkpoint's mixture (picks a manifest entry; names a dataset root).
    """

    env: str | None = None
    dataset_root: str | None = None
    repo_id: str | None = None


def _manifest_entry(checkpoint: Checkpoint, repo_id: str | None = None, folder: str | None = None) -> dict | None:
    for entry in checkpoint.manifest.get("datasets", []):
        if (repo_id is not None and entry.get("repo_id") == repo_id) or (
            folder is not None and Path(entry.get("root", "")).name == folder
        ):
            return entry
    return None


def _binding_from_manifest(checkpoint: Checkpoint, entry: Mapping[str, Any]) -> Binding:
    name, embodiment = entry["repo_id"], entry.get("embodiment")
    slots = entry.get("camera_slots")
    if not embodiment or not slots:
        raise ValueError(
            f"{checkpoint.path / 'mixture_manifest.json'}: dataset {name!r} lacks 'embodiment' or 'camera_slots' "
            "(written by older depi-train); name the robot layout with --env=<sim env> or --dataset.root=<dataset>"
        )
    stats = load_group_norm_stats(checkpoint.path / NORM_STATS_DIR, embodiment)
    return Binding(name, embodiment, dict(slots), len(stats["state"].mean), len(stats["actions"].mean))


def resolve_binding(checkpoint: Checkpoint, source: BindingSource) -> Binding:
    """The feature map the served policy applies to each observation (see the module doc for the order).

    Raises:
        ValueError: both ``env`` and ``dataset_root``; an unknown env; a ``repo_id`` not in the manifest; an
            empty manifest; the layout's embodiment has no norm stats in the checkpoint.
        ModuleNotFoundError: the env's simulator package is missing.
        FileNotFoundError: unreadable dataset meta.
    """
    if source.env and source.dataset_root:
        raise ValueError("give one of --env and --dataset.root, not both: each names the robot layout")
    if source.env:
        from depi.sim.envs import SimEnvConfig, make_env
        from depi.sim.generate import dataset_name

        with make_env(SimEnvConfig(source.env, image_size=8)) as env:  # only the spec is read
            spec = env.spec
        entry = _manifest_entry(checkpoint, source.repo_id, dataset_name(source.env))
        name = entry["repo_id"] if entry else source.repo_id or f"depi_sim/{dataset_name(source.env)}"
        return checkpoint.bind(name, spec.robot_type, list(spec.camera_keys), spec.state_dim, spec.action_dim)
    if source.dataset_root:
        root = Path(source.dataset_root)
        entry = _manifest_entry(checkpoint, source.repo_id, root.name)
        return checkpoint.bind_dataset(root, entry["repo_id"] if entry else source.repo_id)
    datasets = checkpoint.manifest.get("datasets", [])
    if source.repo_id:
        entry = _manifest_entry(checkpoint, source.repo_id)
        if entry is None:
            known = [d.get("repo_id") for d in datasets]
            raise ValueError(f"--dataset.repo_id={source.repo_id}: not in the checkpoint's mixture {known}")
        return _binding_from_manifest(checkpoint, entry)
    if not datasets:
        raise ValueError(
            f"{checkpoint.path / 'mixture_manifest.json'} lists no dataset; name the robot layout with "
            "--env=<sim env> or --dataset.root=<dataset>"
        )
    return _binding_from_manifest(checkpoint, datasets[0])


def checkpoint_step(checkpoint: Checkpoint) -> int:
    """The training step of a checkpoint: from ``checkpoint_complete.json``, else its folder name, else -1."""
    marker = checkpoint.path / COMPLETE_MARKER
    if marker.is_file():
        return int(json.loads(marker.read_text()).get("step", -1))
    return int(checkpoint.path.name) if checkpoint.path.name.isdigit() else -1


def server_metadata(checkpoint: Checkpoint, binding: Binding, num_steps: int | None, dtype: str) -> dict[str, Any]:
    """What ``depi-serve`` sends each client on connecting: :data:`depi.serve.protocol.METADATA_KEYS`, plus
    ``camera_slots`` (image slot -> camera key), ``repo_id`` (the bound dataset / env), ``policy_type``,
    ``num_steps`` (denoising), ``dtype``, ``checkpoint`` (path), ``depi_version``, ``server``, ``protocol_version``.
    """
    camera_keys = [binding.slots[slot] for slot in CAMERA_SLOTS if slot in binding.slots]
    policy_config = checkpoint.policy.config
    return {
        "action_horizon": checkpoint.action_horizon,
        "action_dim": binding.action_dim,
        "control_fps": checkpoint.control_fps,
        "camera_keys": list(dict.fromkeys(camera_keys)),
        "state_dim": binding.state_dim,
        "embodiment": binding.embodiment,
        "step": checkpoint_step(checkpoint),
        "norm_stats_sha256": protocol.norm_stats_sha256(checkpoint.path),
        "camera_slots": dict(binding.slots),
        "repo_id": binding.name,
        "policy_type": policy_config.type,
        "num_steps": int(num_steps or policy_config.num_steps),
        "dtype": dtype,
        "checkpoint": str(checkpoint.path),
        "depi_version": depi.__version__,
        "server": protocol.SERVER_NAME,
        "protocol_version": protocol.PROTOCOL_VERSION,
    }


class ServedPolicy:
    """A :class:`PolicyRunner` behind the server: ``infer(obs)`` and ``reset(seed)``.

    Observations are checked on the event loop first (:meth:`~depi.serve.protocol.ObservationSpec.check`).
    """

    def __init__(self, runner: PolicyRunner):
        self.runner = runner

    def infer(self, obs: Mapping[str, Any]) -> dict[str, Any]:
        """``{"actions": float32 (H, A)}`` in the robot's units (see :meth:`PolicyRunner.infer`)."""
        return self.runner.infer(obs)

    def reset(self, seed: int) -> None:
        """Reseed the noise generator."""
        self.runner.reset(seed)
