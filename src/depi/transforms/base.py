"""The transform protocol, its registry, and pipelines that serialize to JSON.

A transform is a small callable ``sample -> sample`` that returns a new dict and never mutates the caller's
(openpi's ``DataTransformFn``, made serializable). Each transform class is registered under a name with
:func:`register_transform`; :meth:`Transform.to_config` gives a JSON-able dict ``{"type": name, **params}``
and :func:`transform_from_config` rebuilds an identical transform from it, so the pipeline is saved with the
checkpoint and rebuilt for serving without the training code.

:class:`TransformGroup` pairs the input pipeline (dataset/robot -> model) with the output pipeline
(model -> robot), like openpi's ``Group``: pushing a pair appends its input transform at the end of the
inputs and prepends its inverse at the start of the outputs, so inverse pairs nest.

A transform that reads a local file (the tokenizer model) names the field holding its path in ``file_fields``;
``TransformGroup.save(directory, copy_files=True)`` copies those files into the folder and records paths relative
to it, which :meth:`TransformGroup.load` resolves, so a checkpoint folder moves to another machine as a whole.
"""

from __future__ import annotations

import abc
import dataclasses
import filecmp
import json
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch

from depi.fileio import write_json

Sample = dict[str, Any]
TRANSFORMS_FILENAME = "transforms.json"

_REGISTRY: dict[str, type[Transform]] = {}
_T = TypeVar("_T", bound="type[Transform]")


class Transform(abc.ABC):
    """Base of every transform: a callable on one sample dict, serializable to a JSON-able dict.

    Subclasses are frozen dataclasses registered with :func:`register_transform`. The default
    :meth:`to_config` writes the dataclass fields (tuples become lists); a subclass whose fields are not
    JSON-able overrides :meth:`to_config` and :meth:`from_config`.
    """

    transform_type: ClassVar[str] = ""
    file_fields: ClassVar[tuple[str, ...]] = ()
    """Fields holding the path of a local file the transform reads (copied by ``TransformGroup.save``)."""

    @abc.abstractmethod
    def __call__(self, sample: Sample) -> Sample:
        """Return a new sample dict; never mutate ``sample`` or the arrays it holds."""

    def to_config(self) -> dict[str, Any]:
        """JSON-able dict ``{"type": <registered name>, **fields}``."""
        params = {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        return {"type": self.transform_type, **params}

    @classmethod
    def from_config(cls, params: Mapping[str, Any]) -> Transform:
        """Rebuild from the fields written by :meth:`to_config` (without ``type``)."""
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(params) - names)
        if unknown:
            raise ValueError(
                f"Transform '{cls.transform_type}': unknown field(s) {unknown} in its config; "
                f"expected a subset of {sorted(names)}."
            )
        return cls(**params)


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def register_transform(name: str) -> Callable[[_T], _T]:
    """Class decorator registering a :class:`Transform` subclass under ``name`` (the config's ``type``).

    Raises:
        ValueError: ``name`` is already registered to another class.
    """

    def decorator(cls: _T) -> _T:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"Transform type '{name}' is already registered to {_REGISTRY[name].__name__}.")
        cls.transform_type = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def registered_transforms() -> list[str]:
    """Sorted names of all registered transform types."""
    return sorted(_REGISTRY)


def transform_from_config(config: Mapping[str, Any]) -> Transform:
    """Rebuild one transform from ``{"type": name, **params}``.

    Raises:
        ValueError: ``type`` is missing or not registered, or the params do not fit the transform.
    """
    if not isinstance(config, Mapping) or "type" not in config:
        raise ValueError(f"A transform config must be an object with a 'type' field, found {config!r:.200}.")
    name = config["type"]
    if name not in _REGISTRY:
        raise ValueError(
            f"Unknown transform type '{name}'; registered types: {registered_transforms()}. "
            "Import the module that defines it (depi.transforms imports all built-in ones)."
        )
    return _REGISTRY[name].from_config({k: v for k, v in config.items() if k != "type"})


@register_transform("pipeline")
@dataclass(frozen=True)
class Pipeline(Transform):
    """Transforms applied in order; itself a transform, so pipelines nest.

    Attributes:
        transforms: The transforms, first applied first.
    """

    transforms: tuple[Transform, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "transforms", tuple(self.transforms))
        for t in self.transforms:
            if not isinstance(t, Transform):
                raise TypeError(
                    f"Pipeline items must be registered Transform instances, found {type(t).__name__}."
                )

    def __call__(self, sample: Sample) -> Sample:
        for t in self.transforms:
            sample = t(sample)
        return sample

    def __len__(self) -> int:
        return len(self.transforms)

    def to_config(self) -> dict[str, Any]:
        return {"type": self.transform_type, "transforms": self.to_list()}

    def to_list(self) -> list[dict[str, Any]]:
        """The configs of the transforms, in order."""
        return [t.to_config() for t in self.transforms]

    @classmethod
    def from_config(cls, params: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> Pipeline:
        """Rebuild from a list of transform configs, or from ``{"transforms": [...]}``."""
        items = params["transforms"] if isinstance(params, Mapping) else params
        return cls(tuple(transform_from_config(c) for c in items))


def _map_file_fields(config: Any, fn: Callable[[str, str], str]) -> Any:
    """A copy of one transform config with each file field's path replaced by ``fn(field, path)``; nested
    pipelines included, malformed configs and unknown types left as they are (:func:`transform_from_config`
    reports them)."""
    if not isinstance(config, Mapping):
        return config
    out = dict(config)
    cls = _REGISTRY.get(config.get("type"))
    if cls is Pipeline:
        items = out["transforms"] if isinstance(out.get("transforms"), list) else []
        out["transforms"] = [_map_file_fields(c, fn) for c in items]
    elif cls is not None:
        for name in cls.file_fields:
            if out.get(name):
                out[name] = fn(name, str(out[name]))
    return out


def _copy_into(directory: Path) -> Callable[[str, str], str]:
    """``fn(field, path)`` copying the file to ``<directory>/<field without _path>/<name>``; returns that path
    relative to ``directory`` (POSIX form).

    Raises:
        FileNotFoundError: the file does not exist.
        FileExistsError: another file with different bytes already sits at the target.
    """

    def copy(field: str, path: str) -> str:
        source = Path(path)
        if not source.is_file():
            raise FileNotFoundError(f"{field}={path}: no such file to copy into {directory}.")
        relative = Path(field.removesuffix("_path")) / source.name
        target = directory / relative
        if target.exists() and not filecmp.cmp(source, target, shallow=False):
            raise FileExistsError(
                f"{target} already holds another file than {source} ({field}); save into an empty folder."
            )
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        return relative.as_posix()

    return copy


@dataclass(frozen=True)
class TransformGroup:
    """Input and output pipelines of one policy (openpi's ``Group``).

    Attributes:
        inputs: Applied to a dataset sample or a robot observation before the model.
        outputs: Applied to the model's output (``actions``) to get robot commands.
    """

    inputs: Pipeline = Pipeline()
    outputs: Pipeline = Pipeline()

    def push(self, inputs: Iterable[Transform] = (), outputs: Iterable[Transform] = ()) -> TransformGroup:
        """New group with ``inputs`` appended after the current inputs and ``outputs`` put before the
        current outputs, so that the last input transform pushed is undone first."""
        return TransformGroup(
            inputs=Pipeline((*self.inputs.transforms, *inputs)),
            outputs=Pipeline((*outputs, *self.outputs.transforms)),
        )

    def to_config(self) -> dict[str, list[dict[str, Any]]]:
        """``{"inputs": [...], "outputs": [...]}`` of transform configs."""
        return {"inputs": self.inputs.to_list(), "outputs": self.outputs.to_list()}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TransformGroup:
        """Rebuild from :meth:`to_config`'s dict.

        Raises:
            ValueError: ``inputs`` or ``outputs`` is missing, or a transform config is invalid.
        """
        missing = [k for k in ("inputs", "outputs") if k not in config]
        if missing:
            raise ValueError(f"Transform group config lacks {missing}; expected keys 'inputs' and 'outputs'.")
        return cls(Pipeline.from_config(config["inputs"]), Pipeline.from_config(config["outputs"]))

    def save(self, directory: str | Path, copy_files: bool = False) -> Path:
        """Write ``<directory>/transforms.json`` atomically; returns its path.

        Args:
            directory: Created if missing.
            copy_files: Also copy the files the transforms read (their ``file_fields``, e.g. the tokenizer model
                to ``<directory>/tokenizer/<name>``) and record their paths relative to ``directory``.

        Raises:
            FileNotFoundError / FileExistsError: with ``copy_files``, a file to copy is missing, or its target
                holds another file.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = self.to_config()
        if copy_files:
            copy = _copy_into(directory)
            config = {key: [_map_file_fields(c, copy) for c in items] for key, items in config.items()}
        return write_json(directory / TRANSFORMS_FILENAME, config)

    @classmethod
    def load(cls, directory: str | Path) -> TransformGroup:
        """Read ``<directory>/transforms.json`` written by :meth:`save`.

        A relative file path (``tokenizer/<name>`` written by ``save(..., copy_files=True)``) is read from
        ``directory`` when the file is there; other paths are used as written.

        Raises:
            FileNotFoundError: The file is missing (it is written with every checkpoint).
            ValueError: The file is not valid JSON or holds an invalid transform config.
        """
        path = Path(directory) / TRANSFORMS_FILENAME
        if not path.is_file():
            raise FileNotFoundError(
                f"Transform pipeline file not found: {path}. It is written next to the model in every "
                "checkpoint folder; point to a checkpoint folder that holds it."
            )
        try:
            config = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err}).") from err
        def resolve(field: str, value: str) -> str:
            inside = Path(directory) / value
            return str(inside) if not Path(value).is_absolute() and inside.is_file() else value

        try:
            if isinstance(config, Mapping):
                config = {
                    key: [_map_file_fields(c, resolve) for c in items] if isinstance(items, list) else items
                    for key, items in config.items()
                }
            return cls.from_config(config)
        except (ValueError, TypeError, KeyError) as err:
            raise ValueError(f"{path}: {err}") from err


# --- array helpers shared by the transforms (numpy arrays and torch tensors alike) -------------------------

Array = np.ndarray | torch.Tensor


def copy_array(x: Array) -> Array:
    """A copy of ``x`` of the same kind (``np.ndarray`` or ``torch.Tensor``), dtype and device."""
    return x.clone() if isinstance(x, torch.Tensor) else np.array(x, copy=True)


def as_like(values: np.ndarray, ref: Array) -> Array:
    """``values`` as the kind, dtype and device of ``ref`` (stats arrays meet sample arrays)."""
    if isinstance(ref, torch.Tensor):
        return torch.as_tensor(values, dtype=ref.dtype, device=ref.device)
    return np.asarray(values, dtype=ref.dtype)


def as_float_array(x: Any, key: str) -> Array:
    """``x`` as a float array (torch float tensors kept as they are, others converted to float32).

    Raises:
        TypeError: ``x`` is not numeric.
    """
    if isinstance(x, torch.Tensor):
        return x if x.is_floating_point() else x.to(torch.float32)
    array = np.asarray(x)
    if not np.issubdtype(array.dtype, np.number) and array.dtype != np.bool_:
        raise TypeError(f"Sample key '{key}' must be a numeric array, found dtype {array.dtype}.")
    return array if np.issubdtype(array.dtype, np.floating) else array.astype(np.float32)


def require(sample: Mapping[str, Any], key: str, transform: str) -> Any:
    """``sample[key]``, or a ``KeyError`` naming the transform and the keys the sample has."""
    if key not in sample:
        raise KeyError(f"{transform} needs sample key '{key}', but the sample has keys {sorted(sample)}.")
    return sample[key]
