"""PNG figures of the three ``depi-viz`` views, drawn with matplotlib from what the .rrd files hold (read back with
rerun's reader; no viewer or GPU needed). Used for docs/images/viz_*.png.

    PYTHONPATH=src .venv/bin/python scripts/viz_figures.py --dataset DATASET.rrd --mixture MIXTURE.rrd \\
        --predictions PREDICTIONS.rrd --video_root DATASET_ROOT --out docs/images
"""

from __future__ import annotations

import argparse
from pathlib import Path

import av
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from depi.viz.read import read_rrd  # noqa: E402


def scalars(entity) -> np.ndarray:
    return np.asarray([v[0] for v in entity.components["Scalars:scalars"]], dtype=np.float64)


def seconds(entity, timeline: str = "timestamp") -> np.ndarray:
    return np.asarray(entity.timelines[timeline], dtype=np.float64) / 1e9


def video_frame(mp4: Path, at_s: float) -> np.ndarray:
    with av.open(str(mp4)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            if frame.time is not None and frame.time >= at_s - 1e-3:
                return frame.to_ndarray(format="rgb24")
    raise ValueError(f"{mp4}: no frame at {at_s} s")


def dataset_figure(rrd: Path, out: Path) -> None:
    entities = read_rrd(rrd)
    cams = [p for p in entities if p.startswith("/cameras/")]
    fig = plt.figure(figsize=(12, 5))
    grid = fig.add_gridspec(2, max(2, len(cams)))
    for i, cam in enumerate(cams):
        ax = fig.add_subplot(grid[0, i])
        blob = entities[cam].static.get("AssetVideo:blob")
        refs = entities[cam].components["VideoFrameReference:timestamp"]
        mid = len(refs) // 2
        tmp = out.parent / ".frame.mp4"
        tmp.write_bytes(bytes(blob[0][0] if isinstance(blob[0], list) else blob[0]))
        ref = refs[mid][0] if isinstance(refs[mid], list) else refs[mid]
        ax.imshow(video_frame(tmp, ref / 1e9))
        tmp.unlink()
        ax.set_title(f"{cam.removeprefix('/')} (frame {mid})", fontsize=9)
        ax.axis("off")
    for j, prefix in enumerate(("/observation.state/", "/action/")):
        ax = fig.add_subplot(grid[1, j])
        for path in sorted(p for p in entities if p.startswith(prefix)):
            ax.plot(seconds(entities[path]), scalars(entities[path]), lw=1, label=path.removeprefix(prefix))
        ax.set_title(prefix.strip("/"), fontsize=9)
        ax.set_xlabel("timestamp (s)")
        ax.legend(fontsize=6, ncol=3)
    task = entities["/task"].static["TextDocument:text"][0][0]
    fig.suptitle(f"depi-viz dataset — {task!r}")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def mixture_figure(rrd: Path, out: Path) -> None:
    entities = read_rrd(rrd)
    slots = ("base_0_rgb", "left_wrist_0_rgb", "right_wrist_0_rgb")
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.6), gridspec_kw={"width_ratios": [1, 1, 1, 1.6]})
    for ax, slot in zip(axes, slots, strict=False):
        image = entities.get(f"/mixture/image/{slot}")
        label = entities[f"/mixture/image/{slot}/camera"].components["TextDocument:text"][0][0]
        if image is not None and image.components.get("Image:buffer"):
            fmt = image.components["Image:format"][0]
            fmt = fmt[0] if isinstance(fmt, list) else fmt
            buffer = np.asarray(image.components["Image:buffer"][0][0], dtype=np.uint8)
            ax.imshow(buffer.reshape(fmt["height"], fmt["width"], -1))
        else:
            ax.text(0.5, 0.5, "absent\n(masked out)", ha="center", va="center", fontsize=12)
        ax.set_title(label, fontsize=8)
        ax.axis("off")
    ax = axes[3]
    for path in sorted(p for p in entities if p.startswith("/mixture/actions/")):
        e = entities[path]
        first = [i for i, s in enumerate(e.timelines["sample"]) if s == 0]
        ax.plot(seconds(e, "chunk_time")[first], scalars(e)[first], lw=1.2, label=f"dim {path.rsplit('/', 1)[1]}")
    pad = entities["/mixture/action_is_pad"]
    first = [i for i, s in enumerate(pad.timelines["sample"]) if s == 0]
    ax.fill_between(seconds(pad, "chunk_time")[first], 0, scalars(pad)[first], color="grey", alpha=0.2,
                    label="action_is_pad")  # fmt: skip
    ax.set_xlabel("chunk time (s)")
    ax.set_title("action chunk of sample 0 (real dims)", fontsize=9)
    ax.legend(fontsize=6)
    fig.suptitle("depi-viz mixture — what the model is fed")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def predictions_figure(rrd: Path, out: Path) -> None:
    entities = read_rrd(rrd)
    recorded = sorted(p for p in entities if p.startswith("/recorded/action/"))
    fig, axes = plt.subplots(1, len(recorded) + 1, figsize=(4 * (len(recorded) + 1), 3.4))
    for ax, path in zip(axes, recorded, strict=False):
        name = path.rsplit("/", 1)[1]
        ax.plot(seconds(entities[path]), scalars(entities[path]), color="black", lw=1.5, label="recorded")
        for i, chunk in enumerate(sorted(p for p in entities if p.startswith(f"/predicted/action/{name}/"))):
            ax.plot(seconds(entities[chunk]), scalars(entities[chunk]), color="tab:orange", lw=1,
                    label="predicted chunks" if i == 0 else None)  # fmt: skip
        ax.set_title(f"action {name}", fontsize=9)
        ax.set_xlabel("timestamp (s)")
        ax.legend(fontsize=7)
    mse = entities["/error/mse"]
    axes[-1].plot(seconds(mse), scalars(mse), marker="o")
    axes[-1].set_title("chunk MSE", fontsize=9)
    axes[-1].set_xlabel("timestamp (s)")
    fig.suptitle("depi-viz predictions — predicted chunks over the recorded actions")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--mixture", type=Path, required=True)
    parser.add_argument("--predictions", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    dataset_figure(args.dataset, args.out / "viz_dataset.png")
    mixture_figure(args.mixture, args.out / "viz_mixture.png")
    predictions_figure(args.predictions, args.out / "viz_predictions.png")
    print(f"wrote {', '.join(str(args.out / f'viz_{v}.png') for v in ('dataset', 'mixture', 'predictions'))}")


if __name__ == "__main__":
    main()
