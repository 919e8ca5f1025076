"""Save one episode of a LeRobot dataset to an .rrd file and read it back with rerun's reader.

    python examples/07_viz_dataset.py --root DATASET --episode_index 0 --save episode.rrd

Open the file with ``rerun episode.rrd``; ``depi-viz dataset ROOT --mode=local`` spawns the viewer directly.
"""

import argparse

from depi.viz.dataset_view import dataset_blueprint, log_episode
from depi.viz.log import open_recording
from depi.viz.read import read_rrd

parser = argparse.ArgumentParser()
parser.add_argument("--root", required=True)
parser.add_argument("--episode_index", type=int, default=0)
parser.add_argument("--save", default="episode.rrd")
args = parser.parse_args()

rec = open_recording("depi_example", "save", args.save)
report = log_episode(rec, args.root, args.episode_index)
rec.send_blueprint(dataset_blueprint(report))
rec.flush()
rec.disconnect()
print(f"logged {report['frames']} frames, cameras {report['cameras']} -> {args.save}")
for path, entity in sorted(read_rrd(args.save).items()):
    rows = {name: len(values) for name, values in entity.timelines.items()}
    if rows:
        print(f"{path}: rows per timeline {rows}")
