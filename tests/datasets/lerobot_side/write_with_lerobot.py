"""Write a small LeRobot v3.0 dataset with the real lerobot package and save the raw arrays it was given.

Run inside the lerobot environment (Python >= 3.12, lerobot 0.6.x):

    .venv-lerobot/bin/python tests/datasets/lerobot_side/write_with_lerobot.py ROOT REPO_ID ARRAYS.npz

The dataset has ``observation.state`` and ``action`` (float32, 6 dims), one video camera
``observation.images.front`` and one image camera ``observation.images.wrist`` (uint8 HWC 48x64), and three
episodes of 12, 9 and 15 frames at 10 fps with two tasks. ARRAYS.npz holds, concatenated over all frames in
write order: ``state`` (N, 6), ``action`` (N, 6), ``front`` (N, 48, 64, 3), ``wrist`` (N, 48, 64, 3),
``episode_index`` (N,), and ``tasks`` (one string per frame).
"""

import sys
from pathlib import Path

import numpy as np
from lerobot.datasets.lerobot_dataset import LeRobotDataset

FPS = 10
HEIGHT, WIDTH = 48, 64
EPISODE_LENGTHS = (12, 9, 15)
TASKS = ("pick the cube", "place the cube")


def smooth_image(rng: np.random.Generator, t: int) -> np.ndarray:
    """A smooth gradient image (codec friendly) that moves with the frame number ``t``; uint8 (H, W, 3)."""
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    base = rng.uniform(40, 200, size=3)
    img = np.stack([base[c] + 30 * np.sin((xs + 3 * t) / 9 + c) + 20 * np.cos(ys / 7) for c in range(3)], -1)
    return np.clip(img, 0, 255).astype(np.uint8)


def main() -> None:
    root, repo_id, arrays_path = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    features = {
        "observation.state": {"dtype": "float32", "shape": (6,), "names": [f"j{i}" for i in range(6)]},
        "action": {"dtype": "float32", "shape": (6,), "names": [f"j{i}" for i in range(6)]},
        "observation.images.front": {
            "dtype": "video",
            "shape": (HEIGHT, WIDTH, 3),
            "names": ["height", "width", "channels"],
        },
        "observation.images.wrist": {
            "dtype": "image",
            "shape": (HEIGHT, WIDTH, 3),
            "names": ["height", "width", "channels"],
        },
    }
    dataset = LeRobotDataset.create(repo_id, fps=FPS, features=features, root=root, robot_type="so101")
    rng = np.random.default_rng(0)
    out: dict[str, list] = {k: [] for k in ("state", "action", "front", "wrist", "episode_index", "tasks")}
    for episode_index, length in enumerate(EPISODE_LENGTHS):
        task = TASKS[episode_index % len(TASKS)]
        for t in range(length):
            frame = {
                "observation.state": rng.normal(size=6).astype(np.float32),
                "action": rng.normal(size=6).astype(np.float32),
                "observation.images.front": smooth_image(rng, t),
                "observation.images.wrist": rng.integers(0, 256, size=(HEIGHT, WIDTH, 3), dtype=np.uint8),
            }
            out["state"].append(frame["observation.state"])
            out["action"].append(frame["action"])
            out["front"].append(frame["observation.images.front"])
            out["wrist"].append(frame["observation.images.wrist"])
            out["episode_index"].append(episode_index)
            out["tasks"].append(task)
            dataset.add_frame({**frame, "task": task})
        dataset.save_episode()
    dataset.finalize()
    np.savez(arrays_path, **{k: np.asarray(v) for k, v in out.items()})


if __name__ == "__main__":
    main()
