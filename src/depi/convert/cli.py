"""``depi-convert``: convert robot datasets to LeRobot v3.0.

Subcommands (options parsed by draccus, so ``--config_path=x.yaml`` works too)::

    depi-convert bridge --data_dir DIR --output_dir DIR [--repo_name bridge_lerobot_224] [--resize 224]
                        [--split train|val|all] [--max_episodes N] [--video_codec h264] [--cameras auto]
    depi-convert hdf5 --mapping mapping.yaml --input_dir DIR --output_dir DIR --repo_name NAME

Rerunning an interrupted command resumes it (see :mod:`depi.convert.progress`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import draccus
from draccus.utils import DecodingError, ParsingError

from depi.convert.bridge_rlds import BridgeConvertConfig, convert_bridge
from depi.convert.hdf5 import HDF5Mapping, convert_hdf5


@dataclass
class HDF5ConvertConfig:
    """Options of ``depi-convert hdf5``: the mapping file (see :mod:`depi.convert.hdf5`) and the folders."""

    # YAML or JSON file saying which HDF5 dataset is state, action, each camera (see depi.convert.hdf5)
    mapping: Path
    # Folder searched recursively for the episode files (one HDF5 file per episode)
    input_dir: Path
    # Parent folder: the dataset is written to <output_dir>/<repo_name>
    output_dir: Path
    # The output dataset's repo_id and folder name
    repo_name: str


_USAGE = "usage: depi-convert {bridge,hdf5} [options]   (depi-convert <subcommand> --help for its options)"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``depi-convert`` console script; returns the exit status.

    Bad input (missing files, corrupt records, mapping errors) is reported as one line on stderr, exit status 2.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    try:
        if command == "bridge":
            root = convert_bridge(draccus.parse(BridgeConvertConfig, args=rest, prog="depi-convert bridge"))
        elif command == "hdf5":
            config = draccus.parse(HDF5ConvertConfig, args=rest, prog="depi-convert hdf5")
            mapping = HDF5Mapping.from_file(config.mapping)
            root = convert_hdf5(mapping, config.input_dir, config.output_dir, config.repo_name)
        else:
            print(f"depi-convert: unknown subcommand {command!r}\n{_USAGE}", file=sys.stderr)
            return 2
    except (DecodingError, ParsingError, FileNotFoundError, ValueError) as error:
        # draccus wraps a config's own validation error (__post_init__) in a ParsingError: show the original.
        shown = error.__cause__ if isinstance(error, ParsingError) and error.__cause__ else error
        print(f"depi-convert {command}: error: {shown}", file=sys.stderr)
        return 2
    print(f"LeRobot v3.0 dataset written to {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
