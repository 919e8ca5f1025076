"""Load a LeRobot dataset with the real lerobot package and dump every frame's arrays to an .npz file.

Run inside the lerobot environment (Python >= 3.12, lerobot 0.6.x):

    .venv-lerobot/bin/python tests/datasets/lerobot_side/read_with_lerobot.py ROOT REPO_ID OUT.npz

OUT.npz holds ``observation.state`` and ``action`` (N, D) float32, each camera key as uint8 (N, C, H, W)
(lerobot returns float images in [0, 1]; they are scaled back by 255 and rounded), ``episode_index``,
``frame_index``, ``index`` (N,) int64, ``timestamp`` (N,) float32, ``task`` (N,) strings, plus
``meta_total_episodes``, ``meta_total_frames`` and ``meta_fps`` as read by lerobot's metadata.
"""

import sys
from pathlib import Path

import numpy as np
import torch
from lerobot.datasets.lerobot_dataset import LeRobotDataset


def main() -> None:
    root, repo_id, out_path = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    dataset = LeRobotDataset(repo_id, root=root, video_backend="pyav")
    camera_keys = list(dataset.meta.camera_keys)
    columns: dict[str, list] = {}
    for idx in range(len(dataset)):
        item = dataset[idx]
        for key, value in item.items():
            if key in camera_keys:
                value = torch.round(value * 255).to(torch.uint8).numpy()
            elif isinstance(value, torch.Tensor):
                value = value.numpy()
            columns.setdefault(key, []).append(value)
    arrays = {key: np.asarray(values) for key, values in columns.items()}
    arrays["meta_total_episodes"] = np.asarray(dataset.meta.total_episodes)
    arrays["meta_total_frames"] = np.asarray(dataset.meta.total_frames)
    arrays["meta_fps"] = np.asarray(dataset.meta.fps)
    np.savez(out_path, **arrays)


if __name__ == "__main__":
    main()
