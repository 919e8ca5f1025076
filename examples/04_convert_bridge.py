"""Convert Bridge V2 (RLDS tfrecords) to LeRobot v3.0 and validate the result.

    python examples/04_convert_bridge.py --data_dir ../shared/data/bridge_v2_rlds_sample/bridge_dataset/1.0.0
"""

import argparse

from depi.convert.bridge_rlds import BridgeConvertConfig, convert_bridge
from depi.datasets.format.validate import validate_dataset

parser = argparse.ArgumentParser()
parser.add_argument("--data_dir", default="../shared/data/bridge_v2_rlds_sample/bridge_dataset/1.0.0")
parser.add_argument("--output_dir", default="outputs/examples/datasets")
parser.add_argument("--max_episodes", type=int, default=5)
args = parser.parse_args()

root = convert_bridge(BridgeConvertConfig(data_dir=args.data_dir, output_dir=args.output_dir,
                                          repo_name="bridge_lerobot_224", resize=224, max_episodes=args.max_episodes))
report = validate_dataset(root)
print(root, "validation:", "clean" if report.ok else report.problems)
