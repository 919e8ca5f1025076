"""Benchmark: depi's pi0 / pi0.5 vs lerobot's PI0Policy / PI05Policy, same config, same inputs, one run.

Measures, on CPU in float32 (or ``--dtype bfloat16``), the minimum wall time (and process CPU time) of

* a training step: flow-matching loss forward + backward (gradients zeroed between calls), and
* action-chunk inference: ``sample_actions`` with ``num_steps`` Euler steps (prefix KV cache in both), for
  ``--inference-batch-size`` observations (default 1: the latency a robot or the policy server sees),

each eager and under ``torch.compile`` (inductor, default mode, on both sides; compile time and 3 warm-up calls
excluded).

lerobot runs in its own Python 3.12 environment (``.venv-lerobot``) as a long-lived worker process that builds
its policy at the same sizes (``tests/policies/lerobot_side/pi0_reference.py``), saves it (depi loads that
checkpoint, so both run identical weights) and then times one call per request read from its stdin. Calls are
interleaved one by one, depi then lerobot then lerobot then depi, ``--repeats`` x ``--rounds`` times, so that load
from other processes hits both sides alike; both sides run ``--threads`` torch threads (default: what
:func:`depi.threads.configure_threads` picks from the CPUs this process may use) with the same OpenMP
environment. Prints a table with lerobot / depi time ratios (speed-ups, > 1 means depi is faster), eager vs
eager and compiled vs compiled, plus the load average so that runs on a busy machine can be recognised.

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


def run_lerobot_side(spec_path: str) -> None:
    """Entry point inside lerobot's env: build and save the policy, then answer timing requests.

    Prints ``{"ready": true, "params": N}``, then for each stdin line ``<train|infer> <eager|compiled>`` times one
    call and prints ``{"wall": s, "cpu": s}``; ``quit`` ends it.
    """
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
    model = policy.model
    n = spec["inference_batch_size"]
    infer_inputs = {k: v[:n] for k, v in inputs.items()}
    infer_common, infer_state = model_inputs(infer_inputs, spec["variant"] == "pi05")
    forward = {"eager": model.forward, "compiled": torch.compile(model.forward) if spec["compile"] else None}
    sample = {"eager": model.sample_actions,
              "compiled": torch.compile(model.sample_actions) if spec["compile"] else None}  # fmt: skip

    def train_step(mode: str) -> None:
        model.train()
        model.zero_grad(set_to_none=True)
        forward[mode](*common, *state, inputs["actions"], inputs["noise"], inputs["time"])[..., :7].mean().backward()

    def infer(mode: str) -> None:
        model.eval()
        sample[mode](*infer_common, *infer_state, noise=infer_inputs["noise"].clone())  # no_grad inside

    print(json.dumps({"ready": True, "params": sum(p.numel() for p in model.parameters())}), flush=True)
    for line in sys.stdin:
        if line.strip() == "quit":
            break
        what, mode = line.split()
        fn = train_step if what == "train" else infer
        wall, cpu = time.perf_counter(), time.process_time()
        fn(mode)
        print(json.dumps({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}), flush=True)


class LerobotWorker:
    """The lerobot side as a subprocess answering one timed call per request."""

    def __init__(self, python: str, spec_path: Path, env: dict) -> None:
        self.proc = subprocess.Popen([python, __file__, "--lerobot-side", str(spec_path)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
        self.params = self._reply()["params"]

    def _reply(self) -> dict:
        for line in self.proc.stdout:
            if line.startswith("{"):
                return json.loads(line)
        raise RuntimeError(f"lerobot side failed (exit {self.proc.wait()}):\n{self.proc.stderr.read()[-3000:]}")

    def call(self, what: str, mode: str) -> tuple[float, float]:
        self.proc.stdin.write(f"{what} {mode}\n")
        self.proc.stdin.flush()
        reply = self._reply()
        return reply["wall"], reply["cpu"]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


def depi_calls(spec: dict, inputs: dict[str, torch.Tensor]) -> tuple[dict, int]:
    """depi's policy on lerobot's saved weights: ``{(what, mode): call}`` and the parameter count."""
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
    n = spec["inference_batch_size"]
    infer_batch = {k: ({c: t[:n] for c, t in v.items()} if isinstance(v, dict) else v[:n]) for k, v in batch.items()}
    noise, time_, infer_noise = inputs["noise"], inputs["time"], inputs["noise"][:n]
    modes = {"eager": (policy.compute_loss, policy.sample_actions)}
    if spec["compile"]:
        modes["compiled"] = (torch.compile(policy.compute_loss), torch.compile(policy.sample_actions))
    calls = {}
    for mode, (loss_fn, sample_fn) in modes.items():

        def train_step(loss_fn=loss_fn) -> None:
            policy.train()
            policy.zero_grad(set_to_none=True)
            loss_fn(batch, noise=noise, time=time_)[0].backward()

        def infer(sample_fn=sample_fn) -> None:
            policy.eval()
            sample_fn(infer_batch, noise=infer_noise)

        calls[("train", mode)], calls[("infer", mode)] = train_step, infer
    return calls, sum(p.numel() for p in policy.parameters())


def _timed_once(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def interleaved(depi_fn, lerobot_fn, calls: int, warmup: int) -> dict[str, tuple[float, float]]:
    """Best (wall, CPU) seconds of each side over ``calls`` calls, alternating depi/lerobot order call by call."""
    for _ in range(warmup):
        depi_fn()
        lerobot_fn()
    times: dict[str, list[tuple[float, float]]] = {"depi": [], "lerobot": []}
    for i in range(calls):
        order = (("depi", depi_fn), ("lerobot", lerobot_fn))
        for side, fn in order if i % 2 == 0 else order[::-1]:
            times[side].append(fn())
    return {side: (min(w for w, _ in t), min(c for _, c in t)) for side, t in times.items()}


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
    parser.add_argument("--rounds", type=int, default=2, help="timed calls per side = repeats x rounds")
    parser.add_argument(
        "--dtype",
        choices=["float32", "bfloat16"],
        default="float32",
        help="parameter dtype on both sides; bfloat16 follows lerobot's policy (vision tower in float32)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads of both sides (default: depi's policy)")
    parser.add_argument(
        "--no-compile", dest="compile", action="store_false", help="skip the torch.compile rows"
    )
    parser.add_argument("--lerobot-python", default=str(REPO / ".venv-lerobot" / "bin" / "python"))
    parser.add_argument("--lerobot-side", metavar="SPEC", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.lerobot_side:
        run_lerobot_side(args.lerobot_side)
        return
    if args.threads is None:
        from depi.threads import configure_threads

        args.threads = configure_threads(0)

    from safetensors.torch import save_file

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    if not Path(args.lerobot_python).exists():
        raise SystemExit(f"lerobot env not found at {args.lerobot_python}: make lerobot-env")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    modes = ["eager", "compiled"] if args.compile else ["eager"]
    results: dict[tuple[str, str], dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        spec = make_spec(args, Path(tmp))
        inputs = make_inputs(spec, args.batch_size, args.cameras, args.prompt_len)
        save_file({k: v.contiguous() for k, v in inputs.items()}, str(Path(tmp) / "inputs.safetensors"))
        (Path(tmp) / "spec.json").write_text(json.dumps(spec))
        worker = LerobotWorker(args.lerobot_python, Path(tmp) / "spec.json", env)
        try:
            calls, params = depi_calls(spec, inputs)
            for mode in modes:
                for what in ("train", "infer"):
                    results[(what, mode)] = interleaved(
                        lambda fn=calls[(what, mode)]: _timed_once(fn),
                        lambda w=what, m=mode: worker.call(w, m),
                        calls=args.repeats * args.rounds, warmup=3 if mode == "compiled" else 1,
                    )  # fmt: skip
        finally:
            worker.close()
    load = os.getloadavg()
    print(
        f"\n{args.variant} size={args.size} batch={args.batch_size} (inference {args.inference_batch_size}) "
        f"cameras={args.cameras} horizon={args.horizon} num_steps={args.num_steps} threads={args.threads} "
        f"device=cpu {args.dtype} params={params:,} (lerobot {worker.params:,}) load average "
        f"before={load_before[0]:.2f} after={load[0]:.2f}"
    )
    print(f"best of {args.repeats * args.rounds} calls per side, interleaved call by call; 'compiled' is torch.compile "
          "(inductor) on both sides, compile time and 3 warm-up calls excluded.")  # fmt: skip
    print(f"{'measure':<44}{'depi':>10}{'lerobot':>10}{'lerobot / depi':>16}")
    for what, label in (("train", "training step"), ("infer", "action chunk inference")):
        for unit, index in (("wall s", 0), ("CPU s", 1)):
            for mode in modes:
                ours, ref = results[(what, mode)]["depi"][index], results[(what, mode)]["lerobot"][index]
                print(f"{f'{label}, {unit} ({mode})':<44}{ours:>10.4f}{ref:>10.4f}{ref / ours:>15.2f}x")


if __name__ == "__main__":
    main()
