"""Write a small LeRobot v3.0 dataset, read it back with LeRobotSource, and validate it.

    python examples/01_write_read_validate.py [--output_dir outputs/examples/toy_dataset]
"""

import argparse
import shutil
from pathlib import Path

import numpy as np

from depi.datasets.format.source import LeRobotSource
from depi.datasets.format.validate import validate_dataset
from depi.datasets.format.writer import DatasetWriter

parser = argparse.ArgumentParser()
parser.add_argument("--output_dir", default="outputs/examples/toy_dataset")
args = parser.parse_args()
root = Path(args.output_dir)
shutil.rmtree(root, ignore_errors=True)

features = {
    "observation.state": {"dtype": "float32", "shape": (6,), "names": None},
    "action": {"dtype": "float32", "shape": (6,), "names": None},
    "observation.images.front": {"dtype": "video", "shape": (96, 128, 3), "names": ["height", "width", "channels"]},
}
rng = np.random.default_rng(0)
with DatasetWriter.create(root, repo_id="examples/toy_dataset", fps=30, features=features, robot_type="so100") as w:
    for episode in range(2):
        for t in range(40):
            image = np.full((96, 128, 3), 4 * t, dtype=np.uint8)
            state = rng.normal(size=6).astype(np.float32)
            w.add_frame({"observation.state": state, "action": state + 0.1, "observation.images.front": image},
                        task="move the arm")
        w.save_episode()

source = LeRobotSource(root=root, delta_timestamps={"action": [k / 30 for k in range(10)]})
sample = source[35]
print(f"{len(source)} frames, {source.num_episodes} episodes, fps {source.fps}, cameras {source.camera_keys}")
print("action chunk", tuple(sample["action"].shape), "padded steps", int(sample["action_is_pad"].sum()))
print("front camera", tuple(sample["observation.images.front"].shape), sample["observation.images.front"].dtype)
report = validate_dataset(root)
print("validation:", "clean" if report.ok else report.problems)
