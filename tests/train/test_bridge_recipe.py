"""The ``pi0_bridge_finetune`` recipe end to end on real Bridge V2 episodes: RLDS -> ``depi-convert bridge`` ->
``depi-validate`` -> ``depi-stats`` -> ``depi-train`` (tiny policy) -> a checkpoint that carries the norm stats
and transforms training used.

The recording is ``<repo>/../shared/data/bridge_v2_rlds_sample``; the tests skip where it is absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from depi.constants import ACTIONS, STATE
from depi.convert.cli import main as convert_main
from depi.datasets.format.validate import main as validate_main
from depi.transforms.base import TransformGroup
from depi.transforms.norm_stats import NormStats, load_group_norm_stats
from depi.transforms.normalize import Normalize
from tests.helpers.tokenizer import make_tiny_sentencepiece

BRIDGE_RLDS = Path(__file__).resolve().parents[2].parent / "shared/data/bridge_v2_rlds_sample"
BRIDGE_VERSION_DIR = BRIDGE_RLDS / "bridge_dataset" / "1.0.0"
HORIZON = 16
# The tiny pi0 (depi.policies.pi0.config.make_config("tiny")) as flags on top of the preset.
TINY_POLICY_FLAGS = [
    "--policy.vision.width=32",
    "--policy.vision.depth=2",
    "--policy.vision.mlp_dim=64",
    "--policy.vision.num_heads=2",
    "--policy.vlm.width=32",
    "--policy.vlm.depth=2",
    "--policy.vlm.mlp_dim=64",
    "--policy.vlm.num_heads=8",
    "--policy.vlm.num_kv_heads=1",
    "--policy.vlm.head_dim=16",
    "--policy.expert.width=32",
    "--policy.expert.depth=2",
    "--policy.expert.mlp_dim=64",
    "--policy.expert.num_heads=8",
    "--policy.expert.num_kv_heads=1",
    "--policy.expert.head_dim=16",
    "--policy.max_token_len=24",
]

pytestmark = pytest.mark.skipif(
    not (BRIDGE_VERSION_DIR / "dataset_info.json").is_file(),
    reason=f"the Bridge V2 RLDS sample is not present at {BRIDGE_RLDS}",
)


@pytest.fixture(scope="module")
def bridge_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four converted episodes (LeRobot v3.0, 5 fps, cameras padded to 64 x 64), validated."""
    out = tmp_path_factory.mktemp("bridge")
    flags = ["--data_dir", str(BRIDGE_VERSION_DIR), "--output_dir", str(out), "--max_episodes", "4"]
    assert convert_main(["bridge", *flags, "--resize", "64"]) == 0
    root = out / "bridge_lerobot_224"
    assert validate_main([str(root)]) == 0
    return root


def _normalize_of(group: TransformGroup) -> Normalize:
    found = [t for t in group.inputs.transforms if isinstance(t, Normalize)]
    assert len(found) == 1, group.to_config()
    return found[0]


def _assert_same_stats(a: NormStats, b: NormStats) -> None:
    for name in ("mean", "std", "q01", "q99"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_bridge_finetune_preset_trains_and_checkpoint_carries_its_stats(
    tmp_path: Path, bridge_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from depi.datasets.mixture.stats_cli import main as stats_main
    from depi.train.__main__ import main as train_main

    stats_dir = tmp_path / "stats"
    dataset_flags = [f"--dataset.root={bridge_root}", f"--dataset.annotations_dir={tmp_path}"]
    monkeypatch.setattr("sys.argv", ["depi-stats", *dataset_flags, f"--output_dir={stats_dir}"])
    stats_main()
    run = tmp_path / "run"
    tokenizer = make_tiny_sentencepiece(tmp_path / "tok" / "tokenizer.model")
    train_main(
        [
            "--config_path=pi0_bridge_finetune",
            *TINY_POLICY_FLAGS,
            *dataset_flags,
            f"--transforms.tokenizer_path={tokenizer}",
            "--batch_size=2",
            "--steps=3",
            "--save_freq=3",
            "--num_workers=0",
            "--log_freq=1",
            "--per_dataset_loss_freq=1",
            f"--output_dir={run}",
            "--optim.warmup_steps=1",
            "--optim.decay_steps=3",
        ]
    )

    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]
    assert all(np.isfinite(r["loss"]) for r in records)
    checkpoint = run / "checkpoints" / "000000003"
    manifest = json.loads((checkpoint / "mixture_manifest.json").read_text())
    assert manifest["action_horizon"] == HORIZON and manifest["control_fps"] == 5.0
    (group,) = {d["embodiment"] for d in manifest["datasets"]}
    saved = load_group_norm_stats(checkpoint / "norm_stats", group)
    reference = load_group_norm_stats(stats_dir, group)
    transforms = TransformGroup.load(checkpoint)
    normalize = _normalize_of(transforms)
    assert normalize.mode == "quantile"
    assert set(normalize.norm_stats) == {group}
    for key in (STATE, ACTIONS):
        assert saved[key].dim == 7
        _assert_same_stats(saved[key], reference[key])  # depi-stats and training agree
        _assert_same_stats(saved[key], normalize.norm_stats[group][key])  # what training normalized with


def test_delta_action_recipe_normalizes_with_delta_chunk_stats(tmp_path: Path, bridge_root: Path) -> None:
    """The delta-action path on the converted episodes: ``depi-stats --delta_action_mask`` stats are those of
    the delta chunks the pipeline produces (normalized actions fill [-1, 1] between q01 and q99), training
    with them gives a finite loss, and the checkpoint carries the same stats and the ``DeltaActions`` step."""
    from depi.datasets.mixture.dataset import MultiLeRobotDataset
    from depi.datasets.mixture.stats import DeltaStatsSpec, compute_group_stats
    from depi.datasets.mixture.stats_cli import StatsConfig, group_inputs, run_stats
    from depi.policies.pi0 import PI0Policy
    from depi.train.config import parse_args
    from depi.train.factory import MixtureTrainData, TransformedDataset, transforms_config
    from depi.train.loop import train
    from depi.transforms.actions import DeltaActions, make_bool_mask
    from depi.transforms.pipeline import make_pipeline

    mask = make_bool_mask(6, -1)
    tokenizer = make_tiny_sentencepiece(tmp_path / "tok" / "tokenizer.model")
    cfg = parse_args(
        [
            "--config_path=pi0_bridge_finetune",
            *TINY_POLICY_FLAGS,
            f"--dataset.root={bridge_root}",
            f"--dataset.annotations_dir={tmp_path}",
            f"--transforms.tokenizer_path={tokenizer}",
            "--batch_size=2",
            "--steps=2",
            "--save_freq=2",
            "--num_workers=0",
            "--log_freq=1",
            f"--output_dir={tmp_path / 'run'}",
            "--optim.warmup_steps=1",
            "--optim.decay_steps=2",
        ]
    )
    assert cfg.dataset.action_horizon == HORIZON
    delta = DeltaStatsSpec(mask, cfg.dataset.action_horizon, cfg.dataset.control_fps)
    cli_stats = run_stats(
        StatsConfig(dataset=cfg.dataset, output_dir=str(tmp_path / "stats"), delta_action_mask=list(mask))
    )
    mixture = MultiLeRobotDataset(cfg.dataset, verbose=False)
    norm_stats = compute_group_stats(group_inputs(mixture.index), tmp_path / "run_stats", delta=delta)
    (group,) = norm_stats
    _assert_same_stats(norm_stats[group][ACTIONS], cli_stats[group][ACTIONS])
    spec = transforms_config(cfg)
    spec.delta_action_mask = mask
    transforms = make_pipeline(spec, norm_stats)

    normalized = []
    for i in range(len(mixture)):
        sample = transforms.inputs(mixture[i])
        normalized.append(np.asarray(sample[ACTIONS])[:, :7])
    normalized = np.concatenate(normalized)  # (frames * H, 7)
    inside = np.mean((normalized >= -1.0 - 1e-4) & (normalized <= 1.0 + 1e-4), axis=0)
    assert np.all(inside >= 0.97), inside  # q01 -> -1, q99 -> +1 on the delta chunks themselves

    data = MixtureTrainData(
        dataset=TransformedDataset(mixture, transforms),
        sampler=mixture.make_sampler(batch_size=cfg.batch_size),
        dataset_names=mixture.repo_ids,
        transforms=transforms,
        norm_stats=norm_stats,
        manifest={"action_horizon": cfg.dataset.action_horizon, "delta_action_mask": list(mask)},
    )
    torch.manual_seed(0)
    result = train(cfg, policy=PI0Policy(cfg.policy), data=data)
    assert len(result.losses) == 2 and all(np.isfinite(result.losses))
    saved = load_group_norm_stats(result.checkpoint / "norm_stats", group)
    loaded = TransformGroup.load(result.checkpoint)
    assert any(isinstance(t, DeltaActions) and t.mask == mask for t in loaded.inputs.transforms)
    for key in (STATE, ACTIONS):
        _assert_same_stats(saved[key], norm_stats[group][key])
        _assert_same_stats(saved[key], _normalize_of(loaded).norm_stats[group][key])
