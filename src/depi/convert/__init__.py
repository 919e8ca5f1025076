"""Converters from other robot-data formats to LeRobot v3.0 (``depi-convert bridge | hdf5``).

* :mod:`depi.convert.tfrecord`: TFRecord files and ``tf.train.Example`` records, read without TensorFlow.
* :mod:`depi.convert.bridge_episodes` / :mod:`depi.convert.bridge_rlds`: Bridge V2 (RLDS ``bridge_dataset``).
* :mod:`depi.convert.hdf5`: ALOHA-style and custom HDF5 episode files through a mapping file.
* :mod:`depi.convert.progress`: the resumable episode loop and its ``meta/depi_convert*.json[l]`` sidecar files.
"""
