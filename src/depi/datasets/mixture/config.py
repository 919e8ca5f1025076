"""``DatasetConfig``: the ``--dataset.*`` flags shared by training and ``depi-stats`` (parsed by draccus)."""

from __future__ import annotations

from dataclasses import dataclass

from depi.datasets.mixture.sampler import WEIGHTINGS

EMBODIMENT_KEYS = ("robot_type_dims", "dims", "robot_type", "dataset", "all")
"""How datasets are grouped for normalization stats (see :func:`depi.datasets.mixture.dataset.embodiment_key`)."""


@dataclass
class DatasetConfig:
    """Selection and shaping of a multi-dataset mixture.

    Attributes:
        repo_id: one dataset ``owner/name``.
        repo_ids: path to a JSON list of ``owner/name``.
        root: a dataset folder, a folder of datasets, or the folder holding ``<owner>/<name>`` for the ids.
        num_datasets: the first N ids of ``curated_list``.
        curated_list: curated id list (default ``data_ids/so100_community.json``).
        download: fetch ids missing locally from the Hub with :mod:`depi.hub.download` into ``root`` (default
            ``$HF_LEROBOT_HOME``): meta first, then data and the used cameras' videos, resumable from its
            manifest (off: missing ids are reported as excluded).
        control_fps: control rate (Hz) of the action chunks; datasets at other fps are resampled.
        action_horizon: H, steps per action chunk (a chunk spans ``H / control_fps`` seconds).
        weighting: dataset weights, one of ``frames``, ``uniform``, ``temperature``, ``file``.
        temperature_alpha: exponent of ``temperature`` weighting (``w ∝ frames ** alpha``).
        weights_file: JSON ``{"owner/name": weight}`` for ``file`` weighting.
        camera_roles_file: per-dataset camera role mapping (default ``data_ids/camera_roles.json``).
        annotations_dir: per-dataset annotation files (default ``data_ids/annotations``).
        embodiment_key: normalization grouping, one of :data:`EMBODIMENT_KEYS`.
        min_valid_fraction: stop when fewer than this fraction of the selected datasets are usable.
        max_load_retries: replacement samples tried when a sample fails to load, before raising.
        tolerance_s: seconds a timestamp may deviate from the ``1 / fps`` grid (handed to each source;
            LeRobot's default 1e-4).
        video_backend: video decoder handed to each source (None: the reader's default).
        holdout_dir: folder of split files (``<repo_id with '/' -> '__'>.json``, written by
            ``depi-eval offline --split.splits_dir=DIR``): each dataset with a file there loses its
            ``test_episodes`` from what is sampled, weighted and used for the norm stats (the evaluation
            then scores them as truly held out). None: every episode is used.
        report_path: where the build report (kept / excluded datasets) is written as JSON; None: not written.
        seed: sampler seed.
    """

    repo_id: str | None = None
    repo_ids: str | None = None
    root: str | None = None
    num_datasets: int | None = None
    curated_list: str | None = None
    download: bool = False
    control_fps: float = 30.0
    action_horizon: int = 50
    weighting: str = "frames"
    temperature_alpha: float = 0.5
    weights_file: str | None = None
    camera_roles_file: str | None = None
    annotations_dir: str | None = None
    embodiment_key: str = "robot_type_dims"
    min_valid_fraction: float = 0.5
    max_load_retries: int = 10
    tolerance_s: float = 1e-4
    video_backend: str | None = None
    holdout_dir: str | None = None
    report_path: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.weighting not in WEIGHTINGS:
            raise ValueError(
                f"--dataset.weighting={self.weighting!r}; expected one of {', '.join(WEIGHTINGS)}."
            )
        if self.weighting == "file" and self.weights_file is None:
            raise ValueError(
                "--dataset.weighting=file needs --dataset.weights_file=<repo_id -> weight JSON>."
            )
        if self.embodiment_key not in EMBODIMENT_KEYS:
            raise ValueError(
                f"--dataset.embodiment_key={self.embodiment_key!r}; "
                f"expected one of {', '.join(EMBODIMENT_KEYS)}."
            )
        if not self.control_fps > 0 or self.action_horizon < 1:
            raise ValueError(
                f"--dataset.control_fps ({self.control_fps}) must be > 0 and --dataset.action_horizon "
                f"({self.action_horizon}) >= 1."
            )
        if not 0.0 <= self.min_valid_fraction <= 1.0:
            raise ValueError(f"--dataset.min_valid_fraction={self.min_valid_fraction} must be in [0, 1].")
        if not self.tolerance_s > 0:
            raise ValueError(f"--dataset.tolerance_s={self.tolerance_s} must be > 0 (seconds).")
        if self.max_load_retries < 0:
            raise ValueError(f"--dataset.max_load_retries={self.max_load_retries} must be >= 0.")
