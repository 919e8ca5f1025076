"""One LeRobot dataset on disk (codebase v2.0, v2.1, v3.0): meta, root resolution, frames and videos
(:class:`~depi.datasets.format.source.LeRobotSource`), the v3.0 writer and the validator."""
