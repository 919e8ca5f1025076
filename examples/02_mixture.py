"""Build a mixture over a folder of LeRobot datasets and look at one canonical sample.

    python examples/02_mixture.py --root outputs/sim_demos      # e.g. the demo mixture (depi-gen-demos)
"""

import argparse

from depi.datasets.mixture.config import DatasetConfig
from depi.datasets.mixture.dataset import MultiLeRobotDataset

parser = argparse.ArgumentParser()
parser.add_argument("--root", default="outputs/sim_demos", help="a dataset folder or a folder of datasets")
parser.add_argument("--action_horizon", type=int, default=10)
args = parser.parse_args()

mixture = MultiLeRobotDataset(DatasetConfig(root=args.root, action_horizon=args.action_horizon, weighting="uniform"))
sampler = mixture.make_sampler(rank=0, world_size=1, batch_size=1)
index = next(iter(sampler))
sample = mixture[index]
print("sample from", mixture.repo_ids[sample["dataset_index"]], "embodiment", sample["embodiment"])
for slot, image in sample["image"].items():
    print(f"  {slot:<20} {tuple(image.shape)} attended={bool(sample['image_mask'][slot])}")
print("  state", tuple(sample["state"].shape), "actions", tuple(sample["actions"].shape),
      "real action dims", int(sample["action_dim_mask"].sum()), "prompt:", sample["prompt"])
