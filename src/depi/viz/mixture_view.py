"""``depi-viz mixture``: canonical samples of a mixture, as the model is fed them (before normalization).

Per sample (timeline ``sample``): each image slot (``mixture/image/<slot>``) with the camera that fills it and
its role, an absent slot cleared and labelled absent (never a black image); ``observation.state`` on its real
dims; the action chunk on its real dims against ``chunk_time`` (seconds: step k at k / control_fps);
``action_is_pad`` per step; a text panel with the dataset id, embodiment group, episode / frame, prompt and the
real vs padded dims.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from depi.constants import (
    ACTION_DIM_MASK, ACTION_IS_PAD, ACTIONS, DATASET_INDEX, EMBODIMENT, EPISODE_INDEX, FRAME_INDEX, IMAGE,
    IMAGE_MASK, PROMPT, STATE,
)  # fmt: skip
from depi.datasets.mixture.config import DatasetConfig
from depi.viz.cli import OutputOptions
from depi.viz.log import rerun

SAMPLE, CHUNK_TIME = "sample", "chunk_time"


@dataclass
class MixtureViewConfig(OutputOptions):
    """Flags of ``depi-viz mixture``.

    Attributes:
        dataset: the selection flags of training (``--dataset.root``, ``--dataset.repo_ids``, ...).
        num_samples: samples drawn (uniformly over the mixture's frames, seeded).
        seed: seed of the draw.
    """

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    num_samples: int = 16
    seed: int = 0


def _numpy(value: Any) -> np.ndarray:
    return value.numpy() if hasattr(value, "numpy") else np.asarray(value)


def log_sample(rec: Any, k: int, sample: dict, entry: Any, control_fps: float) -> None:
    """Sample ``k`` of the view (module docstring); ``entry`` is its dataset's index entry."""
    rr = rerun()
    rec.set_time(SAMPLE, sequence=k)
    for slot, image in sample[IMAGE].items():
        camera = entry.roles.slots.get(slot)
        if bool(_numpy(sample[IMAGE_MASK][slot])):
            rec.log(f"mixture/image/{slot}", rr.Image(np.transpose(_numpy(image), (1, 2, 0))))
            rec.log(f"mixture/image/{slot}/camera", rr.TextDocument(f"{slot} <- {camera}"))
        else:
            rec.log(f"mixture/image/{slot}", rr.Clear(recursive=False))
            rec.log(f"mixture/image/{slot}/camera", rr.TextDocument(f"{slot}: absent (masked out, not attended)"))
    state = _numpy(sample[STATE])
    for d in range(entry.state_dim):
        rec.log(f"mixture/state/{d}", rr.Scalars(float(state[d])))
    actions, is_pad = _numpy(sample[ACTIONS]), _numpy(sample[ACTION_IS_PAD])
    real = np.flatnonzero(_numpy(sample[ACTION_DIM_MASK]))
    steps = np.arange(len(actions))
    indexes = [rr.TimeColumn(SAMPLE, sequence=np.full(len(steps), k)),
               rr.TimeColumn(CHUNK_TIME, duration=steps / control_fps)]  # fmt: skip
    for d in real:
        rec.send_columns(f"mixture/actions/{d}", indexes=indexes, columns=rr.Scalars.columns(scalars=actions[:, d]))
    rec.send_columns("mixture/action_is_pad", indexes=indexes,
                     columns=rr.Scalars.columns(scalars=is_pad.astype(np.float64)))  # fmt: skip
    text = (
        f"**{entry.repo_id}** (dataset {int(sample[DATASET_INDEX])}), embodiment `{sample[EMBODIMENT]}`\n\n"
        f"episode {int(sample[EPISODE_INDEX])}, frame {int(sample[FRAME_INDEX])}\n\n"
        f"prompt: {sample[PROMPT]!r}\n\n"
        f"state dims: {entry.state_dim} real of {len(state)}; action dims: {len(real)} real "
        f"({real.min()}..{real.max()}), {actions.shape[1] - len(real)} padded; chunk: {len(actions)} steps at "
        f"{control_fps:g} Hz, {int(is_pad.sum())} past the episode's end"
    )
    rec.log("mixture/sample", rr.TextDocument(text, media_type=rr.MediaType.MARKDOWN))


def view_mixture(config: MixtureViewConfig, open_recording) -> dict:
    """Draw and log ``config.num_samples`` samples; returns ``{"samples": [global indices], "datasets": n}``."""
    import rerun.blueprint as rrb

    from depi.datasets.mixture.dataset import MultiLeRobotDataset
    from depi.datasets.mixture.roles import CAMERA_SLOTS

    print("depi-viz: indexing the mixture ...", flush=True)
    mixture = MultiLeRobotDataset(config.dataset, verbose=False)
    rng = np.random.default_rng(config.seed)
    picks = sorted(rng.choice(len(mixture), size=min(config.num_samples, len(mixture)), replace=False).tolist())
    rec = open_recording(config, "depi_viz_mixture")
    for k, index in enumerate(tqdm(picks, desc="mixture samples", unit="sample")):
        sample = mixture[index]
        log_sample(rec, k, sample, mixture.index.entries[int(sample[DATASET_INDEX])], mixture.config.control_fps)
    images = [rrb.Vertical(rrb.Spatial2DView(origin=f"mixture/image/{s}", name=s),
                           rrb.TextDocumentView(origin=f"mixture/image/{s}/camera"), row_shares=[4, 1])
              for s in CAMERA_SLOTS]  # fmt: skip
    rec.send_blueprint(rrb.Blueprint(rrb.Vertical(
        rrb.Horizontal(*images),
        rrb.Horizontal(rrb.TimeSeriesView(origin="mixture/actions", name="action chunk (s)"),
                       rrb.TimeSeriesView(origin="mixture/action_is_pad", name="action_is_pad"),
                       rrb.TextDocumentView(origin="mixture/sample", name="sample")),
    )))  # fmt: skip
    rec.flush()
    print(f"depi-viz: {len(picks)} samples of {len(mixture.index.entries)} dataset(s)"
          + (f" -> {config.save}" if config.save else ""))  # fmt: skip
    return {"samples": picks, "datasets": len(mixture.index.entries)}
