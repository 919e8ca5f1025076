"""Many LeRobot datasets as one: selection, index, camera roles, chunks in seconds, weights and the resumable
sampler, per-embodiment norm stats, and :class:`~depi.datasets.mixture.dataset.MultiLeRobotDataset`."""
