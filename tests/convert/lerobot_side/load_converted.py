"""Load a converted dataset with the real lerobot package; dump state, action, task and camera shapes to .npz.

Run inside the lerobot environment (Python >= 3.12, lerobot 0.6.x):

    .venv-lerobot/bin/python tests/convert/lerobot_side/load_converted.py ROOT REPO_ID OUT.npz
"""

import sys
from pathlib import Path

import numpy as np
from lerobot.datasets.lerobot_dataset import LeRobotDataset


def main() -> None:
    root, repo_id, out_path = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    dataset = LeRobotDataset(repo_id, root=root, video_backend="pyav")
    items = [dataset[idx] for idx in range(len(dataset))]
    camera_keys = list(dataset.meta.camera_keys)
    np.savez(
        out_path,
        state=np.stack([item["observation.state"].numpy() for item in items]),
        action=np.stack([item["action"].numpy() for item in items]),
        task=np.asarray([item["task"] for item in items]),
        camera_keys=np.asarray(camera_keys),
        camera_shapes=np.asarray([tuple(items[0][key].shape) for key in camera_keys]),
        fps=np.asarray(dataset.meta.fps),
    )


if __name__ == "__main__":
    main()
