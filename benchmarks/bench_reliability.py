"""Benchmark: depi's reliability claims measured end to end, tables and figures from one run (docs/reliability.md).

1. **Fault injection**: a mixture of 20 LeRobot datasets, 14 of them broken one way each
   (:mod:`tests.reliability.faults`), built by :class:`MultiLeRobotDataset` and read frame by frame through 2
   DataLoader workers. Per dataset: excluded with its reason, or served, with every unreadable sample replaced
   and counted in a logged warning.
2. **kill -9 of training**: the real ``depi-train`` console script (the demo preset on the demo mixture, tiny
   flags) is SIGKILLed at ``--train_kills`` random points, ``--save_kills`` of them while a checkpoint is being
   written (a ``.tmp-<step>`` folder exists), and restarted each time with ``--resume=true``. After each kill the
   latest checkpoint must load; at the end the per-step losses must equal an uninterrupted run's exactly.
3. **kill -9 of recording**: a :class:`DatasetWriter` process (:mod:`tests.reliability.writer_worker`) is
   SIGKILLed at random frames and in the middle of episode saves, then resumed. After each kill every saved
   episode must read back frame for frame; the lost episode must be reported by ``DatasetWriter.resume``.
4. **Serving under load** (``benchmarks/bench_serve.py`` at a reduced size): malformed requests from 8 clients.

Usage::

    PYTHONPATH=src:. .venv/bin/python benchmarks/bench_reliability.py               # ~15 minutes on 2 cores
    PYTHONPATH=src:. .venv/bin/python benchmarks/bench_reliability.py --skip train,serve

Tables go to stdout and ``--report`` (markdown); figures to ``--figures`` as ``reliability_*.png``. The demo
mixture is generated into ``outputs/sim_demos`` on first use (by the first training run, before any kill).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO)]

from tests.reliability.faults import EXPECTED, FAULTS, make_fault_mixture, serve_every_frame  # noqa: E402
from tests.reliability.killing import latest_checkpoint_loads, logged_steps, losses, run_and_kill  # noqa: E402

SHORT_REASON = 110


def markdown(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- 1. faults
def bench_faults(work: Path, figures: Path) -> str:
    from depi.datasets.mixture.config import DatasetConfig
    from depi.datasets.mixture.dataset import MultiLeRobotDataset

    root = work / "faults"
    made = make_fault_mixture(root, good=6)
    warnings: list[str] = []
    handler = logging.Handler(level=logging.WARNING)
    handler.emit = lambda record: warnings.append(record.getMessage())
    logging.getLogger("depi").addHandler(handler)
    try:
        config = DatasetConfig(root=str(root), control_fps=10, action_horizon=3, min_valid_fraction=0.2,
                               max_load_retries=50, report_path=str(work / "mixture_report.json"))  # fmt: skip
        start = time.perf_counter()
        mixture = MultiLeRobotDataset(config, verbose=False)
        build_s = time.perf_counter() - start
    finally:
        logging.getLogger("depi").removeHandler(handler)
    start = time.perf_counter()
    served = serve_every_frame(mixture, work / "load.log", workers=2)
    serve_s = time.perf_counter() - start
    names = [e.repo_id for e in mixture.index.entries]
    excluded = {x.repo_id: x.reason for x in mixture.index.excluded}
    owners = np.searchsorted(mixture.index.offsets, np.arange(len(mixture)), side="right") - 1
    indexed = {repo: int(mixture.index.num_frames[d]) for d, repo in enumerate(names)}
    as_indexed = {repo: 0 for repo in names}  # indices answered by their own dataset
    for g, (d, *_) in enumerate(served["samples"]):
        as_indexed[names[owners[g]]] += int(d == owners[g])
    nonfinite = sum(not (np.isfinite(s).all() and np.isfinite(a).all()) for *_, s, a in served["samples"])

    rows, bars = [], []
    for repo in made:
        fault = repo.split("/")[1] if repo.startswith("fault/") else "none"
        expected = EXPECTED.get(fault, "served")
        failures = served["failures"].get(repo, 0)
        warned = [w for w in warnings if repo in w or f"{fault}:" in w] if fault != "none" else []
        frames, own = indexed.get(repo, 0), as_indexed.get(repo, 0)
        if repo in excluded:
            outcome, detail = "excluded", excluded[repo]
        elif failures:
            outcome, detail = "replaced", f"{failures} load failures logged, {frames - own} samples replaced"
        elif warned:
            outcome, detail = "served", "warning: " + warned[0]
        else:
            outcome, detail = "served", ""
        verdict = "yes" if outcome == expected else "**no**"
        detail = detail.replace(f"{made[repo]}/", "").replace(str(made[repo]), repo)
        detail = detail if len(detail) <= SHORT_REASON else detail[: SHORT_REASON - 1] + "…"
        rows.append([repo, outcome, verdict, frames, own, frames - own, failures, detail.replace("|", "/")])
        bars.append((repo, outcome, own, frames - own))
    table = markdown(["dataset", "outcome", "as expected", "frames indexed", "served as indexed", "replaced",
                      "load failures logged", "reason / log"], rows)  # fmt: skip
    summary = (
        f"{len(made)} datasets ({len(FAULTS)} broken), mixture built in {build_s * 1000:.0f} ms, {len(served['samples'])} "
        f"of {len(mixture)} indices served through 2 workers in {serve_s:.1f} s; crashes 0; non-finite samples "
        f"served {nonfinite}; datasets unaccounted for {len(made) - len(names) - len(excluded)}."
    )
    _plot_faults(bars, figures / "reliability_faults.png")
    return f"### Fault injection\n\n{summary}\n\n{table}\n"


def _plot_faults(bars: list[tuple[str, str, int, int]], path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 6.4))
    y = np.arange(len(bars))[::-1]
    for yi, (repo, outcome, own, replaced) in zip(y, bars):
        ax.barh(yi, own, color="tab:green", height=0.6)
        ax.barh(yi, replaced, left=own, color="moccasin", edgecolor="tab:orange", hatch="///", height=0.6)
        if outcome == "excluded":
            ax.text(0.2, yi, "excluded when the mixture is built, with its reason", va="center", fontsize=7)
    ax.set_yticks(y, [b[0] for b in bars], fontsize=7)
    ax.set_xlabel("frames of the dataset in the mixture")
    ax.legend([plt.Rectangle((0, 0), 1, 1, color="tab:green"),
               plt.Rectangle((0, 0), 1, 1, facecolor="moccasin", edgecolor="tab:orange", hatch="///")],
              ["served as indexed", "unreadable: load failure logged, another frame served"], loc="upper center",
              bbox_to_anchor=(0.5, -0.09), ncol=2, fontsize=8)  # fmt: skip
    ax.set_title("20 datasets, 14 broken, every frame read through 2 DataLoader workers", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------- 2. train
def bench_train(work: Path, figures: Path, steps: int, save_freq: int, kills: int, save_kills: int, seed: int) -> str:
    train_bin = Path(sys.executable).parent / "depi-train"
    flags = ["--config_path=demo", f"--steps={steps}", f"--save_freq={save_freq}", "--log_freq=1", "--keep_last=2",
             "--batch_size=4"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}:{REPO}"}
    full = work / "train_full"
    start = time.perf_counter()
    assert run_and_kill([str(train_bin), *flags, f"--output_dir={full}"], full, env=env, timeout_s=3600) == "finished"
    full_s = time.perf_counter() - start

    rng = np.random.default_rng(seed)
    kinds = ["save"] * save_kills + ["step"] * (kills - save_kills)
    rng.shuffle(kinds)
    run = work / "train_killed"
    rows, lifetimes = [], []
    for i, kind in enumerate(kinds):
        resumed_from = (latest_checkpoint_loads(run) or 0) if i else 0
        # --resume=true once a checkpoint exists; before the first one a user starts the run again
        resume = ["--resume=true"] if resumed_from else flags
        cmd = [str(train_bin), *resume, f"--output_dir={run}"]
        low = max(resumed_from + 2, i * steps // len(kinds) + 1)  # kill i falls in the i-th of equal windows
        target = int(rng.integers(low, max(low + 1, (i + 1) * steps // len(kinds))))
        if kind == "step":
            outcome = run_and_kill(cmd, run, at_step=target, env=env, timeout_s=3600)
        else:  # the first checkpoint save from that step on
            outcome = run_and_kill(cmd, run, in_save=True, after_step=target, env=env, timeout_s=3600)
        reached = logged_steps(run)
        tmp = sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(".tmp-")) if (run / "checkpoints").is_dir() else []
        loaded = latest_checkpoint_loads(run)
        lifetimes.append((resumed_from, reached, kind))
        when = f"while saving the step-{reached} checkpoint" if kind == "save" else f"after step {reached}"
        rows.append([i + 1, when, outcome, resumed_from or "— (new run)", reached, ", ".join(tmp) or "—",
                     loaded if loaded is not None else "none yet", reached - (loaded or 0)])  # fmt: skip
    last_from = latest_checkpoint_loads(run) or 0
    cmd = [str(train_bin), *(["--resume=true"] if last_from else flags), f"--output_dir={run}"]
    assert run_and_kill(cmd, run, env=env, timeout_s=3600) == "finished"
    lifetimes.append((last_from, logged_steps(run), "end"))
    full_losses, run_losses = losses(full), losses(run)
    stale = [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(".tmp-")]
    equal = full_losses == run_losses
    max_diff = max((abs(a - b) for a, b in zip(full_losses, run_losses)), default=0.0)
    table = markdown(["kill", "when", "outcome", "process resumed from step", "last step logged",
                      "left behind", "latest checkpoint loads (step)", "steps to redo"], rows)  # fmt: skip
    summary = (
        f"`depi-train {' '.join(flags)}`; uninterrupted run {full_s:.0f} s. {len(kinds)} SIGKILLs, then a last "
        f"`--resume=true` to the end. Per-step losses equal to the uninterrupted run's: **{equal}** "
        f"({len(run_losses)} vs {len(full_losses)} steps, max |Δ| = {max_diff:.3g}); the latest checkpoint "
        f"loads after every kill; half-written checkpoint folders left at the end: {len(stale)}."
    )
    _plot_train(full_losses, run_losses, lifetimes, figures / "reliability_resume.png")
    return f"### kill -9 of depi-train\n\n{summary}\n\n{table}\n"


def _plot_train(full: list[float], resumed: list[float], lifetimes: list, path: Path) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    fig, (ax, ax_p) = plt.subplots(2, 1, figsize=(8, 5.5), sharex=True, height_ratios=[3, 1.4])
    steps = np.arange(1, len(full) + 1)
    ax.plot(steps, full, color="tab:blue", lw=2.5, alpha=0.5, label="uninterrupted run")
    ax.plot(np.arange(1, len(resumed) + 1), resumed, "k.", ms=4, label=f"killed {len(lifetimes) - 1} times and resumed")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(ScalarFormatter())
    ax.set_ylabel("training loss")
    for i, (_, end, kind) in enumerate(lifetimes[:-1]):
        ax.axvline(end, color="tab:red" if kind == "step" else "tab:orange", ls="--", lw=1)
    ax.legend(loc="upper right")
    ax.set_title("kill -9 of depi-train, resumed with --resume=true: identical per-step losses")
    for i, (start, end, kind) in enumerate(lifetimes):
        color = {"step": "tab:red", "save": "tab:orange", "end": "tab:green"}[kind]
        ax_p.plot([start + 0.5, end], [i, i], color=color, lw=5, solid_capstyle="butt")
    ax_p.set_yticks(range(len(lifetimes)), [f"process {i + 1}" for i in range(len(lifetimes))], fontsize=7)
    ax_p.invert_yaxis()
    ax_p.set_xlabel("optimizer step (red: killed mid-step, orange: killed mid-save, green: ran to the end)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --------------------------------------------------------------------------------------------- 3. writer
def bench_writer(work: Path, figures: Path, episodes: int, kills: int, save_kills: int, seed: int) -> str:
    from depi.datasets.format.source import LeRobotSource
    from depi.datasets.format.validate import validate_dataset
    from tests.reliability.writer_worker import episode_length, frame

    root = work / "writer"
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}:{REPO}"}
    cmd = [sys.executable, "-m", "tests.reliability.writer_worker", str(root), str(episodes)]
    rng = np.random.default_rng(seed)
    kinds = ["save"] * save_kills + ["frame"] * (kills - save_kills)
    rng.shuffle(kinds)
    targets = sorted(rng.choice(np.arange(1, episodes - 1), size=kills, replace=False))
    rows, timeline = [], []

    def check_saved() -> tuple[int, bool, int]:
        source = LeRobotSource(root=root, video_backend="pyav")
        ok = True
        for i in range(len(source)):
            item = source[i]
            e, t = int(item["episode_index"]), int(item["frame_index"])
            ok &= bool(np.array_equal(item["observation.state"].numpy(), frame(e, t)["observation.state"]))
        return source.num_episodes, ok, len(validate_dataset(root).problems)

    for kind, episode in zip(kinds, targets):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        t = int(rng.integers(1, episode_length(episode)))
        at = f"saving {episode}" if kind == "save" else f"frame {episode} {t}"
        recovered = []
        for line in proc.stdout:
            if line.startswith("recovered"):
                recovered.append(line.split(" ", 1)[1].strip().replace(f"{root}/", ""))
            if line.strip() == at:
                proc.kill()
                break
        proc.wait()
        if rows:  # this process reported what the previous kill left
            rows[-1][-1] = "; ".join(recovered) or "—"
        saved, frames_ok, problems = check_saved()
        timeline.append((saved, episode, kind, t + 1 if kind == "frame" else episode_length(episode)))
        when = f"during the save of episode {episode}" if kind == "save" else f"at frame {t} of episode {episode}"
        rows.append([len(rows) + 1, when,
                     saved, "yes" if frames_ok else "**no**", problems, ""])  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    recovered = [line.split(" ", 1)[1].replace(f"{root}/", "") for line in proc.stdout.splitlines()
                 if line.startswith("recovered")]  # fmt: skip
    rows[-1][-1] = "; ".join(recovered) or "—"
    saved, frames_ok, problems = check_saved()
    timeline.append((saved, episodes, "end", 0))
    table = markdown(["kill", "when", "episodes saved", "all read back exactly", "validation problems",
                      "reported by the next DatasetWriter.resume"], rows)  # fmt: skip
    summary = (
        f"{kills} SIGKILLs ({save_kills} between an episode's data/video writes and its meta row), each followed by "
        f"a resume; final dataset: {saved} of {episodes} episodes, read back exactly: {frames_ok}, "
        f"`depi-validate` problems: {problems}."
    )
    _plot_writer(timeline, episodes, figures / "reliability_writer.png")
    return f"### kill -9 of a DatasetWriter\n\n{summary}\n\n{table}\n"


def _plot_writer(timeline: list, episodes: int, path: Path) -> None:
    import matplotlib.pyplot as plt

    from tests.reliability.writer_worker import episode_length

    fig, ax = plt.subplots(figsize=(8, 3.6))
    for row, (saved, episode, kind, lost_frames) in enumerate(timeline):
        left = 0
        for e in range(saved):
            ax.barh(row, episode_length(e), left=left, color="tab:green" if e % 2 else "yellowgreen", height=0.6)
            left += episode_length(e)
        ax.barh(row, lost_frames, left=left, color="none", edgecolor="tab:red", hatch="///", height=0.6)
        label = {"save": "killed mid-save", "frame": "killed mid-episode", "end": f"finished: {saved} episodes"}
        ax.text(left + lost_frames + 1, row, label[kind], va="center", fontsize=7)
    ticks = [f"after kill {i + 1}" for i in range(len(timeline) - 1)] + ["last resume"]
    ax.set_yticks(range(len(timeline)), ticks, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, sum(episode_length(e) for e in range(episodes)) * 1.15)
    ax.set_xlabel("frames (green: saved episodes, read back exactly; hatched: the episode lost, reported on resume)")
    ax.set_title("kill -9 of a DatasetWriter: what is on disk after each kill")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------- 4. serve
def bench_serving(requests: int) -> str:
    cmd = [sys.executable, str(REPO / "benchmarks/bench_serve.py"), "--requests", str(requests),
           "--single_requests", str(max(20, requests // 10)), "--rounds", "1"]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": f"{REPO / 'src'}:{REPO}"}).stdout  # fmt: skip
    lines = out.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("depi-serve, "))  # the results header
    table = "\n".join(lines[first:]).strip()
    command = " ".join(Path(c).name if "/" in c else c for c in cmd[1:])
    return f"### Serving under load\n\n`{command}`\n\n```\n{table}\n```\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip", default="", help="comma-separated parts to leave out: faults,train,writer,serve")
    parser.add_argument("--steps", type=int, default=100, help="training steps of the killed run")
    parser.add_argument("--save_freq", type=int, default=10)
    parser.add_argument("--train_kills", type=int, default=5)
    parser.add_argument("--save_kills", type=int, default=2, help="of the kills, those during a checkpoint save")
    parser.add_argument("--episodes", type=int, default=12, help="episodes the killed writer records")
    parser.add_argument("--writer_kills", type=int, default=5)
    parser.add_argument("--serve_requests", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--figures", type=Path, default=REPO / "docs/images")
    parser.add_argument("--report", type=Path, default=REPO / "outputs/bench_reliability.md")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    args.figures.mkdir(parents=True, exist_ok=True)
    sections = [f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}.\n"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        parts = {
            "faults": lambda: bench_faults(work, args.figures),
            "train": lambda: bench_train(work, args.figures, args.steps, args.save_freq, args.train_kills,
                                         args.save_kills, args.seed),  # fmt: skip
            "writer": lambda: bench_writer(work, args.figures, args.episodes, args.writer_kills, 2, args.seed),
            "serve": lambda: bench_serving(args.serve_requests),
        }
        for name, part in parts.items():
            if name in skip:
                continue
            start = time.perf_counter()
            section = part()
            sections.append(section + f"\n({name}: {time.perf_counter() - start:.0f} s)\n")
            print(sections[-1], flush=True)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text("\n".join(sections))
    print(f"report: {args.report}; figures: {args.figures}/reliability_*.png")


if __name__ == "__main__":
    main()
