"""Build a pi0 policy from a preset and sample an action chunk (the tiny preset runs on a CPU in a second).

    python examples/03_policy_inference.py [--preset tiny|tiny_pi05|pi0|pi05]
"""

import argparse

import torch

from depi.constants import (
    BASE_CAMERA, IMAGE, IMAGE_MASK, LEFT_WRIST_CAMERA, STATE, TOKENIZED_PROMPT, TOKENIZED_PROMPT_MASK,
)
from depi.policies.pi0 import PI0Policy, make_config

parser = argparse.ArgumentParser()
parser.add_argument("--preset", default="tiny")
args = parser.parse_args()

config = make_config(args.preset)
policy = PI0Policy(config).eval()
size = config.vision.image_size
batch = {
    IMAGE: {BASE_CAMERA: torch.randint(0, 256, (1, 3, size, size), dtype=torch.uint8),
            LEFT_WRIST_CAMERA: torch.zeros(1, 3, size, size, dtype=torch.uint8)},
    IMAGE_MASK: {BASE_CAMERA: torch.tensor([True]), LEFT_WRIST_CAMERA: torch.tensor([False])},  # no wrist camera
    TOKENIZED_PROMPT: torch.randint(0, 1000, (1, 12)),
    TOKENIZED_PROMPT_MASK: torch.ones(1, 12, dtype=torch.bool),
    STATE: torch.zeros(1, config.state_dim),
}
with torch.no_grad():
    actions = policy.sample_actions(batch, noise=torch.zeros(1, config.action_horizon, config.action_dim))
n_params = sum(p.numel() for p in policy.parameters())
print(f"{args.preset}: {n_params / 1e6:.1f}M parameters, action chunk {tuple(actions.shape)} in {config.num_steps} steps")
