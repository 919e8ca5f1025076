"""Benchmark: depi's pi0 / pi0.5 vs lerobot's PI0Policy / PI05Policy, same config, same inputs, one run.

Measures, on CPU in float32 (or ``--dtype bfloat16``), the minimum wall time (over ``--repeats`` calls and ``--rounds`` alternating rounds
of lerobot then depi, so that load from other processes hits both sides alike) of

* a training step: flow-matching loss forward + backward (gradients zeroed between repeats), and
* action-chunk inference: ``sample_actions`` with ``num_steps`` Euler steps (prefix KV cache in both), for
  ``--inference-batch-size`` observations (default 1: the latency a robot or the policy server sees).

lerobot runs in its own Python 3.12 environment (``.venv-lerobot``) as a subprocess that builds its policy at the
same sizes (``tests/policies/lerobot_side/pi0_reference.py``), saves it, times it on the same inputs and prints
JSON; depi loads lerobot's checkpoint so both run identical weights. Prints a table with lerobot / depi time
ratios (speed-ups, > 1 means depi is faster): depi eager vs lerobot eager, and depi compiled with ``torch.compile`` vs lerobot eager (compile time excluded, one warm-up call), plus the load
average so that runs on a busy machine can be recognised.

Usage::

    PYTHONPATH=src .venv/bin/python benchmarks/bench_policy.py                 # small size, a few minutes
    PYTHONPATH=src .venv/bin/python benchmarks/bench_policy.py --size medium --variant pi05 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
LEROBOT_SIDE = REPO / "tests" / "policies" / "lerobot_side"

# Gemma sizes keep 8 query heads / 1 KV head (lerobot's joint attention assumes 8 heads).
SIZES = {
    "tiny": {"vlm": (32, 2, 64, 16), "expert": (32, 2, 64, 16), "vision": (32, 2, 64, 2)},
    "small": {"vlm": (256, 4, 1024, 32), "expert": (128, 4, 512, 32), "vision": (128, 4, 512, 4)},
    "medium": {"vlm": (1024, 6, 4096, 128), "expert": (512, 6, 2048, 128), "vision": (384, 6, 1536, 6)},
}


def make_spec(args: argparse.Namespace, out_dir: Path) -> dict:
    size = SIZES[args.size]
    vlm, expert, vision = size["vlm"], size["expert"], size["vision"]

    def gemma(s: tuple[int, int, int, int]) -> dict:
        return {
            "width": s[0],
            "depth": s[1],
            "mlp_dim": s[2],
            "head_dim": s[3],
            "num_heads": 8,
            "num_kv_heads": 1,
        }

    return {
        "variant": args.variant,
        "out_dir": str(out_dir),
        "seed": 0,
        "vlm": gemma(vlm),
        "expert": gemma(expert),
        "vision": {"width": vision[0], "depth": vision[1], "mlp_dim": vision[2], "num_heads": vision[3]},
        "action_horizon": args.horizon,
        "state_dim": 8,
        "action_dim": 7,
        "num_steps": args.num_steps,
        "repeats": args.repeats,
        "threads": args.threads,
        "compile": args.compile,
        "dtype": args.dtype,
        "inference_batch_size": args.inference_batch_size,
    }


def make_inputs(spec: dict, batch_size: int, cameras: int, prompt_len: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    h = spec["action_horizon"]
    inputs = {f"image.{i}": torch.rand(batch_size, 3, 224, 224, generator=g) for i in range(cameras)}
    inputs.update({f"image_mask.{i}": torch.ones(batch_size, dtype=torch.bool) for i in range(cameras)})
    state = torch.zeros(batch_size, 32)
    state[:, : spec["state_dim"]] = torch.randn(batch_size, spec["state_dim"], generator=g)
    actions = torch.zeros(batch_size, h, 32)
    actions[..., : spec["action_dim"]] = torch.randn(batch_size, h, spec["action_dim"], generator=g)
    inputs.update(
        {
            "tokens": torch.randint(0, 1000, (batch_size, prompt_len), generator=g),
            "token_mask": torch.ones(batch_size, prompt_len, dtype=torch.bool),
            "state": state,
            "actions": actions,
            "noise": torch.randn(batch_size, h, 32, generator=g),
            "time": torch.rand(batch_size, generator=g) * 0.999 + 0.001,
        }
    )
    return inputs


def timed(fn, repeats: int, warmup: int = 1) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of the fastest of ``repeats`` calls after ``warmup`` calls.

    The minimum is the least disturbed by other load; CPU seconds (all threads of this process) are reported too
    because on a shared machine they vary much less than wall time.
    """
    for _ in range(warmup):
        fn()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus)


def run_lerobot_side(spec_path: str) -> None:
    """Entry point inside lerobot's env: build, save, time; print JSON on the last line."""
    sys.path.insert(0, str(LEROBOT_SIDE))
    from pi0_reference import build_policy, model_inputs
    from safetensors.torch import load_file

    spec = json.loads(Path(spec_path).read_text())
    torch.set_num_threads(spec["threads"])
    out = Path(spec["out_dir"])
    inputs = load_file(str(out / "inputs.safetensors"))
    policy = build_policy(spec, len([k for k in inputs if k.startswith("image.")]))
    policy.save_pretrained(out / "checkpoint")
    common, state = model_inputs(inputs, spec["variant"] == "pi05")
    model = policy.model.train()

    def train_step() -> None:
        model.zero_grad(set_to_none=True)
        model.forward(*common, *state, inputs["actions"], inputs["noise"], inputs["time"])[
            ..., :7
        ].mean().backward()

    n = spec["inference_batch_size"]
    infer_inputs = {k: v[:n] for k, v in inputs.items()}
    infer_common, infer_state = model_inputs(infer_inputs, spec["variant"] == "pi05")

    def infer() -> None:
        model.sample_actions(*infer_common, *infer_state, noise=infer_inputs["noise"].clone())

    train_s, train_cpu = timed(train_step, spec["repeats"])
    model.eval()
    infer_s, infer_cpu = timed(infer, spec["repeats"])
    params = sum(p.numel() for p in model.parameters())
    print(
        json.dumps(
            {
                "train_step_s": train_s,
                "train_step_cpu_s": train_cpu,
                "inference_s": infer_s,
                "inference_cpu_s": infer_cpu,
                "params": params,
            }
        )
    )


def run_depi_side(spec: dict, inputs: dict[str, torch.Tensor]) -> dict:
    from depi.constants import (
        ACTION_DIM_MASK,
        ACTIONS,
        IMAGE,
        IMAGE_MASK,
        STATE,
        TOKENIZED_PROMPT,
        TOKENIZED_PROMPT_MASK,
    )
    from depi.policies.pi0 import GemmaConfig, PI0Policy, SiglipConfig, load_weights, make_config

    cams = [k for k in inputs if k.startswith("image.")]
    config = make_config(
        "tiny" if spec["variant"] == "pi0" else "tiny_pi05",
        vlm=GemmaConfig(**spec["vlm"]),
        expert=GemmaConfig(**spec["expert"]),
        vision=SiglipConfig(**spec["vision"]),
        action_horizon=spec["action_horizon"],
        num_steps=spec["num_steps"],
    )
    policy = PI0Policy(config)
    if (Path(spec["out_dir"]) / "checkpoint").is_dir():
        load_weights(policy, Path(spec["out_dir"]) / "checkpoint", layout="lerobot", strict=True)
    if spec["dtype"] == "bfloat16":  # lerobot's bf16 policy: vision tower and projector stay float32
        policy.to(torch.bfloat16)
        policy.vision_tower.float()
        policy.multi_modal_projector.float()
    b = inputs["tokens"].shape[0]
    dim_mask = torch.zeros(b, 32, dtype=torch.bool)
    dim_mask[:, : spec["action_dim"]] = True
    batch = {
        IMAGE: {c: inputs[c] for c in cams},
        IMAGE_MASK: {c: inputs[c.replace("image", "image_mask")] for c in cams},
        TOKENIZED_PROMPT: inputs["tokens"],
        TOKENIZED_PROMPT_MASK: inputs["token_mask"],
        STATE: inputs["state"],
        ACTIONS: inputs["actions"],
        ACTION_DIM_MASK: dim_mask,
    }
    policy.train()
    noise, time_ = inputs["noise"], inputs["time"]
    loss_fns = {"eager": policy.compute_loss}
    sample_fns = {"eager": policy.sample_actions}
    if spec["compile"]:
        loss_fns["compiled"] = torch.compile(policy.compute_loss)
        sample_fns["compiled"] = torch.compile(policy.sample_actions)
    result = {"params": sum(p.numel() for p in policy.parameters())}
    for mode, loss_fn in loss_fns.items():

        def train_step(loss_fn=loss_fn) -> None:
            policy.zero_grad(set_to_none=True)
            loss_fn(batch, noise=noise, time=time_)[0].backward()

        warmup = 3 if mode == "compiled" else 1  # inductor finishes compiling over the first calls
        wall, cpu = timed(train_step, spec["repeats"], warmup)
        result[f"train_step_s_{mode}"], result[f"train_step_cpu_s_{mode}"] = wall, cpu
    policy.eval()
    n = spec["inference_batch_size"]
    infer_batch = {k: ({c: t[:n] for c, t in v.items()} if isinstance(v, dict) else v[:n]) for k, v in batch.items()}
    infer_noise = noise[:n]
    for mode, sample_fn in sample_fns.items():
        warmup = 3 if mode == "compiled" else 1
        wall, cpu = timed(
            lambda sample_fn=sample_fn: sample_fn(infer_batch, noise=infer_noise), spec["repeats"], warmup
        )
        result[f"inference_s_{mode}"], result[f"inference_cpu_s_{mode}"] = wall, cpu
    return result


def _best(runs: list[dict]) -> dict | None:
    return {k: min(r[k] for r in runs) for k in runs[0]} if runs else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--variant", choices=["pi0", "pi05"], default="pi0")
    parser.add_argument("--batch-size", type=int, default=2, help="training-step batch")
    parser.add_argument(
        "--inference-batch-size",
        type=int,
        default=1,
        help="observations per action chunk (1 = the latency a robot or the policy server sees)",
    )
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--prompt-len", type=int, default=16)
    parser.add_argument("--horizon", type=int, default=50)
    parser.add_argument("--num-steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--dtype",
        choices=["float32", "bfloat16"],
        default="float32",
        help="parameter dtype on both sides; bfloat16 follows lerobot's policy (vision tower in float32)",
    )
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument(
        "--no-compile", dest="compile", action="store_false", help="skip the torch.compile rows"
    )
    parser.add_argument("--lerobot-python", default=str(REPO / ".venv-lerobot" / "bin" / "python"))
    parser.add_argument("--lerobot-side", metavar="SPEC", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.lerobot_side:
        run_lerobot_side(args.lerobot_side)
        return

    from safetensors.torch import save_file

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        spec = make_spec(args, Path(tmp))
        inputs = make_inputs(spec, args.batch_size, args.cameras, args.prompt_len)
        save_file({k: v.contiguous() for k, v in inputs.items()}, str(Path(tmp) / "inputs.safetensors"))
        (Path(tmp) / "spec.json").write_text(json.dumps(spec))
        lerobot_runs, depi_runs = [], []
        for _ in range(args.rounds):
            if Path(args.lerobot_python).exists():
                run = subprocess.run(
                    [args.lerobot_python, __file__, "--lerobot-side", str(Path(tmp) / "spec.json")],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if run.returncode != 0:
                    raise RuntimeError(f"lerobot side failed (exit {run.returncode}):\n{run.stderr[-3000:]}")
                lerobot_runs.append(json.loads(run.stdout.strip().splitlines()[-1]))
            depi_runs.append(run_depi_side(spec, inputs))
        if not lerobot_runs:
            print(f"lerobot env not found at {args.lerobot_python}; timing depi only.")
    lerobot, depi = _best(lerobot_runs), _best(depi_runs)
    load = os.getloadavg()
    print(
        f"\n{args.variant} size={args.size} batch={args.batch_size} (inference {args.inference_batch_size}) "
        f"cameras={args.cameras} "
        f"horizon={args.horizon} num_steps={args.num_steps} threads={args.threads} device=cpu {args.dtype} "
        f"params={depi['params']:,} load average before={load_before[0]:.2f} after={load[0]:.2f}"
    )
    print(
        "lerobot runs eager; 'compiled' is depi under torch.compile (inductor), compile time and 3 warm-up calls excluded."
    )
    print(f"{'measure':<44}{'depi':>10}{'lerobot':>10}{'lerobot / depi':>16}")
    modes = ["eager", "compiled"] if args.compile else ["eager"]
    for key, label in (
        ("train_step_s", "training step, wall s"),
        ("train_step_cpu_s", "training step, CPU s"),
        ("inference_s", "action chunk inference, wall s"),
        ("inference_cpu_s", "action chunk inference, CPU s"),
    ):
        for mode in modes:
            ours = depi[f"{key}_{mode}"]
            ref = f"{lerobot[key]:>10.4f}{lerobot[key] / ours:>15.2f}x" if lerobot else f"{'-':>10}{'-':>16}"
            print(f"{label + f' ({mode})':<44}{ours:>10.4f}{ref}")


if __name__ == "__main__":
    main()
