"""The converters' sidecar files and their resumable episode loop.

Two files record which source episodes are already in the output dataset and how they were mapped:

* ``<root>/meta/depi_convert.json``: the conversion's header, rewritten atomically (temporary file, fsync,
  ``os.replace``)::

      {"converter": "bridge" | "hdf5",
       "settings": {...},               # the options that change the output; a rerun must use the same ones
       "cameras": ["image_0", ...],     # cameras written as features of the dataset
       "image_shape": [224, 224, 3],    # (H, W, 3) of every written camera frame (Bridge)
       "complete": false}               # true once the source was exhausted and the writer finalized

* ``<root>/meta/depi_convert_episodes.jsonl``: one line per saved episode, appended and fsynced right after
  ``DatasetWriter.save_episode`` returns (an append, so the cost per episode does not grow with the dataset)::

      {"episode_index": 0, "source_id": "bridge_dataset-train.tfrecord-00000-of-00001@0", ...}

  A line cut short by a crash is removed on the next load; the episode it described is then recovered by
  :func:`write_episodes` (the dataset holds one more episode than the file lists).

Rerunning an interrupted conversion skips the listed ``source_id`` values. The per-episode lines also document
what the LeRobot format has no field for (cameras empty in the source and written as black frames, where a task
text came from).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from depi.datasets.format.writer import DatasetWriter

PROGRESS_PATH = "meta/depi_convert.json"
EPISODES_LOG_PATH = "meta/depi_convert_episodes.jsonl"


class ConvertResumeError(ValueError):
    """The output directory holds a dataset this conversion cannot append to."""


@dataclass
class ConvertProgress:
    """In-memory view of the sidecar files; :meth:`save` rewrites the header, :meth:`record_episode` appends."""

    root: Path
    converter: str
    settings: dict[str, Any]
    cameras: list[str]
    image_shape: list[int] | None = None
    episodes: list[dict[str, Any]] = field(default_factory=list)
    complete: bool = False

    @property
    def path(self) -> Path:
        return self.root / PROGRESS_PATH

    @property
    def episodes_path(self) -> Path:
        return self.root / EPISODES_LOG_PATH

    @property
    def done_source_ids(self) -> set[str]:
        """``source_id`` of every episode already saved in the output dataset."""
        return {str(episode["source_id"]) for episode in self.episodes}

    def save(self) -> None:
        """Rewrite the header atomically: a reader sees the previous or the new content, never a partial one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "converter": self.converter,
            "settings": self.settings,
            "cameras": self.cameras,
            "image_shape": self.image_shape,
            "complete": self.complete,
        }
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w") as handle:
            json.dump(payload, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)

    def record_episode(self, entry: dict[str, Any]) -> None:
        """Append one saved episode (with ``episode_index`` and ``source_id``) as a line, flushed and fsynced."""
        with open(self.episodes_path, "a") as handle:
            handle.write(json.dumps(entry) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self.episodes.append(entry)

    @classmethod
    def load(cls, root: Path, converter: str, settings: dict[str, Any]) -> ConvertProgress:
        """Read the sidecar files of an existing output dataset and check they belong to the same conversion.

        A last episode line without its newline (cut short by a crash) is removed from the file.

        Raises:
            ConvertResumeError: the header is missing (the directory was not written by ``depi-convert``), was
                written by the other converter, records different settings (the message names the field), or
                an episode line other than the last is not valid JSON.
        """
        path = root / PROGRESS_PATH
        if not path.is_file():
            raise ConvertResumeError(
                f"{root} already exists but has no {PROGRESS_PATH}, so it was not written by `depi-convert` and "
                "cannot be resumed. Pass another --output_dir / --repo_name, or delete that directory."
            )
        with open(path) as handle:
            payload = json.load(handle)
        if payload.get("converter") != converter:
            raise ConvertResumeError(
                f"{path}: field 'converter' is {payload.get('converter')!r}, this command is {converter!r}. "
                "Pass another --output_dir / --repo_name."
            )
        stored = payload.get("settings", {})
        for key in sorted(set(stored) | set(settings)):
            if stored.get(key) != settings.get(key):
                raise ConvertResumeError(
                    f"{path}: the dataset was started with {key}={stored.get(key)!r}, this run asks for "
                    f"{key}={settings.get(key)!r}. Rerun with the original value to resume, or pass another "
                    "--output_dir / --repo_name."
                )
        progress = cls(
            root=root,
            converter=converter,
            settings=stored,
            cameras=list(payload["cameras"]),
            image_shape=payload.get("image_shape"),
            complete=bool(payload.get("complete", False)),
        )
        progress.episodes = progress._read_episode_log()
        return progress

    def _read_episode_log(self) -> list[dict[str, Any]]:
        if not self.episodes_path.is_file():
            return []
        raw = self.episodes_path.read_bytes()
        complete_end = raw.rfind(b"\n") + 1
        if complete_end < len(raw):  # torn final line: the crash happened while appending it
            with open(self.episodes_path, "r+b") as handle:
                handle.truncate(complete_end)
                os.fsync(handle.fileno())
        episodes = []
        for number, line in enumerate(raw[:complete_end].decode("utf-8").splitlines(), start=1):
            try:
                episodes.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise ConvertResumeError(
                    f"{self.episodes_path}, line {number}: not valid JSON ({error}); the file was edited by hand. "
                    f"Restore it, or delete {self.root} and rerun."
                ) from error
        return episodes


@dataclass
class SourceEpisode:
    """One converted episode on its way to the writer.

    Attributes:
        source_id: stable id of the episode in the source (``<file>@<offset>``, a relative file path).
        task: task text of every frame.
        frames: T dicts ``{feature key: value}`` as ``DatasetWriter.add_frame`` takes them; may be a generator,
            so that a long episode streams from the source to the writer frame by frame.
        details: extra facts kept in the sidecar for this episode (missing cameras, task source...).
    """

    source_id: str
    task: str
    frames: Iterable[dict[str, Any]]
    details: dict[str, Any] = field(default_factory=dict)


def write_episodes(
    writer: DatasetWriter,
    progress: ConvertProgress,
    episodes: Iterable[SourceEpisode],
    *,
    total: int,
    desc: str,
) -> None:
    """Save ``episodes`` with ``writer`` one at a time, recording each in ``progress`` right after it is saved.

    ``episodes`` must follow the source order and leave out the ``progress.done_source_ids``. When the dataset
    holds more episodes than the sidecar lists (the process stopped between ``save_episode`` and the sidecar
    update), the next episodes of the source are the ones already saved: they are recorded, not written twice.
    Stops once the dataset holds ``total`` episodes; finalizes the writer (also on error, keeping every saved
    episode) and marks the sidecar complete when the source is exhausted or ``total`` is reached.

    Raises:
        ConvertResumeError: the dataset holds fewer episodes than the sidecar lists.
        ValueError: the writer refused a frame (NaN, wrong shape...); the message names the source episode and
            frame. The episodes saved before it stay, so a rerun resumes once the source is fixed.
    """
    if writer.num_episodes < len(progress.episodes):
        raise ConvertResumeError(
            f"{writer.root}: the dataset holds {writer.num_episodes} episodes but {progress.path} lists "
            f"{len(progress.episodes)}; it was modified outside `depi-convert`. Delete {writer.root} and rerun."
        )
    progress.complete = False
    with writer, tqdm(total=total, initial=len(progress.episodes), desc=desc, unit="episode") as bar:
        for episode in episodes:
            if len(progress.episodes) >= total:
                break
            if writer.num_episodes == len(progress.episodes):
                for frame_index, frame in enumerate(episode.frames):
                    try:
                        writer.add_frame(frame, task=episode.task)
                    except ValueError as error:
                        raise ValueError(
                            f"source episode {episode.source_id}, frame {frame_index}: {error}"
                        ) from error
                writer.save_episode()
            progress.record_episode(
                {"episode_index": len(progress.episodes), "source_id": episode.source_id, **episode.details}
            )
            bar.update(1)
    progress.complete = True
    progress.save()
