"""The end-of-run summary of ``depi-train``: where the outputs are, and commands that run as printed."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterable
from pathlib import Path

from depi.train import checkpoint as ckpt

SIM_ENVS = ("so101_pick_place", "so100_transfer_cube")


def console_command(name: str) -> str:
    """``name`` if it is on PATH, else the path of this interpreter's console script (a venv not activated)."""
    beside = Path(sys.executable).parent / name
    if shutil.which(name) or not beside.exists():
        return name
    return str(beside)


def sim_envs_of(repo_ids: Iterable[str]) -> list[str]:
    """Sim env names whose ``depi-gen-demos`` datasets are in the mixture (``local/metaworld_reach-v3`` ->
    ``metaworld/reach-v3``), in mixture order."""
    envs = []
    for repo_id in repo_ids:
        name = repo_id.rsplit("/", 1)[-1]
        if name in SIM_ENVS:
            envs.append(name)
        elif name.startswith("metaworld_"):
            envs.append("metaworld/" + name.removeprefix("metaworld_"))
    return envs


def quick_eval_env(envs: list[str]) -> str | None:
    """The env a few-minute closed-loop check runs on: Meta-World reach (the quickest) when present."""
    return "metaworld/reach-v3" if "metaworld/reach-v3" in envs else (envs[0] if envs else None)


def format_summary(
    run_dir: Path, checkpoint: Path | None, plot: Path | None, steps: int, policy_class: str, data_root: str | None,
    repo_ids: Iterable[str] = (),
) -> str:  # fmt: skip
    """The summary printed at the end of training (paths, then runnable follow-up commands)."""
    model_dir = checkpoint / ckpt.MODEL_DIR if checkpoint else None
    evaluate, train = console_command("depi-eval"), console_command("depi-train")
    dataset = data_root or "<a dataset of the mixture>"
    envs = sim_envs_of(repo_ids)
    quick = quick_eval_env(envs)
    lines = [
        f"\nTraining done: {steps} optimizer steps.",
        f"  run folder:   {run_dir}",
        f"  checkpoint:   {checkpoint}",
        f"  metrics:      {run_dir / 'metrics.jsonl'}",
        f"  loss/lr plot: {plot}",
        f"  evaluate it:  {evaluate} offline --policy.path={checkpoint} --dataset.root={dataset}",
    ]
    if quick is not None:
        lines += [
            f"                {evaluate} sim --env={quick} --policy.path={checkpoint} --episodes=5 "
            "--compare='[expert,zero]'   (closed loop with reference rows, a few minutes on 2 CPUs)",
            f"                (sim envs of this mixture: {', '.join(envs)})",
        ]
    lines += [
        f"  serve it:     {console_command('depi-serve')} --policy.path={checkpoint}"
        + (f" --env={quick}" if quick else "") + " --port=8000",
        f"  load it:      {policy_class}.from_pretrained('{model_dir}') with "
        f"depi.transforms.base.TransformGroup.load('{checkpoint}') for its inputs/outputs",
        f"  fine-tune it: {train} --policy.path={model_dir} --dataset.repo_id=<owner/name>",
        f"  resume it:    {train} --resume=true --output_dir={run_dir} --steps=<more steps>",
    ]
    return "\n".join(lines) + "\n"
