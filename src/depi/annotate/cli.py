"""``depi-annotate``: re-annotate task texts and label camera poses with a vision-language model.

Examples::

    # a vLLM server: vllm serve Qwen/Qwen2.5-VL-7B-Instruct --limit-mm-per-prompt '{"image": 4}'
    depi-annotate --repo_ids=data_ids/so100_community.json --vlm.api_base=http://127.0.0.1:8000/v1
    depi-annotate --root=/data/lerobot --vlm.api_base=http://127.0.0.1:11434/v1 --vlm.model=qwen2.5vl:7b  # Ollama
    depi-annotate --repo_id=me/my_recording --vlm.backend=transformers --vlm.model=Qwen/Qwen2.5-VL-3B-Instruct
    depi-annotate --root=outputs/recordings/so101 --write_tasks=true       # also rename the dataset's tasks

Writes ``<output_dir>/<owner>_<name>.json`` per dataset (default ``data_ids/annotations``, read by the mixture;
format in :mod:`depi.annotate.run`) and the review page ``--report``. Datasets are never modified unless
``--write_tasks=true`` (v3.0 only, :mod:`depi.annotate.tasks`). Exit status 0 when every episode was
annotated, 1 when some failed (each recorded with its raw reply).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from depi.annotate.backends import VLMConfig, make_backend
from depi.annotate.report import write_report
from depi.annotate.run import DatasetResult, annotate_dataset
from depi.annotate.tasks import retitle_tasks
from depi.cli import parse, run
from depi.datasets.format.meta import DatasetFormatError
from depi.datasets.mixture.selection import select_datasets


@dataclass
class AnnotateConfig:
    """Flags of ``depi-annotate``.

    Attributes:
        repo_id, repo_ids, root, num_datasets: the selection, as the mixture reads it (``root``: a dataset, a
            folder of datasets, or the folder holding ``<owner>/<name>``).
        vlm: the model (``--vlm.backend``, ``--vlm.api_base``, ``--vlm.model``, ``--vlm.concurrency``,
            ``--vlm.timeout_s``, ``--vlm.max_retries`` ...).
        output_dir: where annotation files go (default ``data_ids/annotations``).
        sample_fps: frames sampled per second of episode; ``max_frames``: at most this many per camera.
        max_episodes: annotate the first N episodes of each dataset (None: all).
        force: re-annotate episodes already annotated with this model and prompt version.
        write_tasks: also rename the tasks in each v3.0 dataset's ``meta/tasks.parquet``.
        report: the HTML review page.
    """

    repo_id: str | None = None
    repo_ids: str | None = None
    root: str | None = None
    num_datasets: int | None = None
    vlm: VLMConfig = field(default_factory=VLMConfig)
    output_dir: str | None = None
    sample_fps: float = 1.0
    max_frames: int = 8
    max_episodes: int | None = None
    force: bool = False
    write_tasks: bool = False
    report: str = "outputs/annotate/report.html"

    def __post_init__(self) -> None:
        if self.sample_fps <= 0 or self.max_frames < 2:
            raise ValueError("--sample_fps must be > 0 and --max_frames >= 2.")


def main(argv: list[str]) -> int:
    cfg = parse(AnnotateConfig, argv, prog="depi-annotate")
    refs = select_datasets(repo_id=cfg.repo_id, repo_ids=cfg.repo_ids, root=cfg.root, num_datasets=cfg.num_datasets)
    backend = make_backend(cfg.vlm)
    results: list[DatasetResult] = []
    problems: list[str] = []
    for ref in refs:
        if ref.root is None:
            problems.append(f"{ref.repo_id}: {ref.missing_reason}")
            continue
        try:
            result = annotate_dataset(
                ref.repo_id, ref.root, backend, cfg.vlm, output_dir=cfg.output_dir, sample_fps=cfg.sample_fps,
                max_frames=cfg.max_frames, max_episodes=cfg.max_episodes, force=cfg.force,
            )  # fmt: skip
        except (DatasetFormatError, FileNotFoundError, KeyError) as err:
            problems.append(f"{ref.repo_id}: not annotated: {err}")
            continue
        results.append(result)
        if cfg.write_tasks:
            renamed = retitle_tasks(ref.root, {e.episode_index: e.task for e in result.episodes if e.task})
            print(f"{ref.repo_id}: {len(renamed)} tasks renamed in {ref.root}/meta/tasks.parquet", file=sys.stderr)
    report = write_report(cfg.report, results)
    episodes = sum(len(r.episodes) for r in results)
    failed = sum(len(r.failed) for r in results)
    print(f"annotated {episodes - failed}/{episodes} episodes of {len(results)} datasets; {failed} failed "
          f"(recorded with their raw replies)", file=sys.stderr)  # fmt: skip
    for r in results:
        print(f"  {r.path}", file=sys.stderr)
    for line in problems:
        print(f"  skipped {line}", file=sys.stderr)
    print(f"review: {report}", file=sys.stderr)
    return 1 if failed or problems else 0


def console() -> None:
    run(main, prog="depi-annotate")
