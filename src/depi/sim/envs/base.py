"""What every simulator adapter offers: demonstration generation and closed-loop evaluation use only this.

Notation: ``S`` state dims, ``A`` action dims, ``E`` environment-state dims, ``H``/``W`` camera height/width.

An observation is a dict keyed like a LeRobot frame::

    {"observation.state": float32 (S,),                  # proprioception the policy may see
     "observation.environment_state": float32 (E,),      # privileged object / goal poses (experts, debugging)
     "observation.images.<camera>": uint8 (H, W, 3)}     # one entry per camera of ``EnvSpec.camera_names``

so a demonstration frame is ``{**observation, "action": action}`` and goes straight to ``DatasetWriter.add_frame``.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Protocol, Self

import numpy as np

from depi.constants import OBS_ENV_STATE, OBS_IMAGES_PREFIX, OBS_STATE

Observation = dict[str, np.ndarray]


@dataclass(frozen=True)
class SimEnvConfig:
    """How to build one simulator adapter.

    Attributes:
        name: registered env name: ``so101_pick_place``, ``metaworld/<task>`` (e.g. ``metaworld/reach-v3``) or
            ``so100_transfer_cube``.
        image_size: side of the square camera images in pixels (rendered at this size, no resize).
        max_episode_steps: steps after which an episode ends unsuccessfully; None for the env's default.
        shadows: keep the scene's shadow-casting lights. Off by default: with MuJoCo's software (llvmpipe) EGL
            rendering each shadow map is one more pass over the scene and dominates the frame time (compare
            ``benchmarks/bench_sim_demos.py`` with and without ``--shadows``); physics is unchanged.
        privileged_state: append ``observation.environment_state`` (object and goal poses, which a real robot
            does not measure) to ``observation.state`` (S + E,), so a policy sees the scene's layout without
            having to read it from the images (:class:`PrivilegedStateEnv`). For learning-capacity experiments
            and debugging; a policy trained so needs the same flag in closed loop and cannot run on a real arm.
        goal_marker: draw the goal region in the camera images where the simulator's scene does not show it
            (SO-101 pick-place: a flat green disc of the success radius at the goal; visual only, no physics).
            Without it that task's goal is invisible, so a policy seeing only images and proprioception can
            place the block right by chance alone. Meta-World shows its goals itself; SO-100 has none to show.
    """

    name: str
    image_size: int = 224
    max_episode_steps: int | None = None
    shadows: bool = False
    privileged_state: bool = False
    goal_marker: bool = True

    def __post_init__(self) -> None:
        if self.image_size < 8:
            raise ValueError(f"SimEnvConfig.image_size={self.image_size}: expected at least 8 pixels")
        if self.max_episode_steps is not None and self.max_episode_steps < 1:
            raise ValueError(
                f"SimEnvConfig.max_episode_steps={self.max_episode_steps}: expected >= 1 or None"
            )


@dataclass(frozen=True)
class EnvSpec:
    """Static description of an adapter: what a dataset of its episodes holds and how a policy drives it.

    Attributes:
        name: registered env name (``metaworld/reach-v3``).
        robot_type: LeRobot ``robot_type`` of the dataset (``so101``, ``sawyer``, ``so100_bimanual``).
        task: task text of every episode (the prompt).
        fps: control rate in Hz: one ``step`` advances the simulation by ``1 / fps`` seconds.
        camera_names: camera names without the ``observation.images.`` prefix.
        image_size: side of the square images in pixels.
        state_names: one name per ``observation.state`` dim (S,).
        action_names: one name per action dim (A,).
        env_state_dim: E, the size of ``observation.environment_state``.
        max_episode_steps: steps after which ``step`` reports done without success.
        action_low, action_high: float32 (A,) bounds the simulator clips actions to.
    """

    name: str
    robot_type: str
    task: str
    fps: int
    camera_names: tuple[str, ...]
    image_size: int
    state_names: tuple[str, ...]
    action_names: tuple[str, ...]
    env_state_dim: int
    max_episode_steps: int
    action_low: tuple[float, ...]
    action_high: tuple[float, ...]

    @property
    def state_dim(self) -> int:
        return len(self.state_names)

    @property
    def action_dim(self) -> int:
        return len(self.action_names)

    @property
    def camera_keys(self) -> tuple[str, ...]:
        """Full LeRobot keys of the cameras, e.g. ``("observation.images.front",)``."""
        return tuple(OBS_IMAGES_PREFIX + name for name in self.camera_names)

    def features(self) -> dict[str, dict]:
        """LeRobot feature spec of a dataset of this env's episodes (cameras as ``video``), for ``DatasetWriter``."""
        side = self.image_size
        features: dict[str, dict] = {
            OBS_STATE: {"dtype": "float32", "shape": (self.state_dim,), "names": list(self.state_names)},
            OBS_ENV_STATE: {"dtype": "float32", "shape": (self.env_state_dim,), "names": None},
            "action": {"dtype": "float32", "shape": (self.action_dim,), "names": list(self.action_names)},
        }
        for key in self.camera_keys:
            features[key] = {
                "dtype": "video",
                "shape": (side, side, 3),
                "names": ["height", "width", "channels"],
            }
        return features


class Expert(Protocol):
    """A scripted demonstrator bound to one adapter; it reads the simulator's privileged state.

    Attributes:
        name: what generated the actions, recorded in the dataset's generation sidecar
            (e.g. ``depi.sim.envs.so101.SO101PickPlaceExpert``).
    """

    name: str

    def reset(self) -> None:
        """Forget the previous episode; call right after ``SimEnv.reset``."""

    def act(self) -> np.ndarray:
        """The action for the env's current state: float32 (A,)."""


class SimEnv(ABC):
    """One simulator behind a fixed interface (like openpi's per-robot adapters): reset, step, render, success.

    Subclasses set ``spec`` and implement the abstract methods; images are rendered right-side up at
    ``spec.image_size``.

    Attributes:
        spec: the static description (fps, cameras, dims, task, max_episode_steps).
        packages: pip distributions whose versions determine the episodes (recorded with generated datasets).
    """

    spec: EnvSpec
    packages: tuple[str, ...] = ()

    @abstractmethod
    def reset(self, seed: int) -> Observation:
        """Start an episode whose initial object / goal placement is a pure function of ``seed``."""

    @abstractmethod
    def step(self, action: np.ndarray) -> tuple[Observation, bool, bool]:
        """Apply one action (A,) for ``1 / spec.fps`` seconds.

        Returns:
            ``(observation, success, done)``: success is the simulator's own success criterion at this step;
            done is True on success, on the simulator's failure conditions, and after ``max_episode_steps``.

        Raises:
            ValueError: the action is not finite or not of shape (A,).
        """

    @abstractmethod
    def render(self) -> dict[str, np.ndarray]:
        """Current camera images: camera name -> uint8 (H, W, 3)."""

    @abstractmethod
    def make_expert(self) -> Expert:
        """The scripted expert shipped with the simulator, bound to this env."""

    @abstractmethod
    def close(self) -> None:
        """Release the renderer and the simulator."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_action(self, action: np.ndarray) -> np.ndarray:
        """Return ``action`` as float64 (A,) or raise a ValueError naming what is wrong."""
        array = np.asarray(action, dtype=np.float64)
        if array.shape != (self.spec.action_dim,):
            raise ValueError(
                f"{self.spec.name}: action has shape {array.shape}, expected ({self.spec.action_dim},) "
                f"ordered as {list(self.spec.action_names)}"
            )
        if not np.all(np.isfinite(array)):
            raise ValueError(
                f"{self.spec.name}: action {array.tolist()} holds NaN or inf, expected finite values"
            )
        return array

    def _observation(self, state: np.ndarray, env_state: np.ndarray) -> Observation:
        """Assemble an observation dict from state (S,), environment state (E,) and a fresh render."""
        obs: Observation = {
            OBS_STATE: np.asarray(state, dtype=np.float32),
            OBS_ENV_STATE: np.asarray(env_state, dtype=np.float32),
        }
        for name, image in self.render().items():
            obs[OBS_IMAGES_PREFIX + name] = image
        return obs


ENV_STATE_NAME = "env_state_{}"
"""Name of environment-state dim ``i`` inside a privileged ``observation.state`` (:class:`PrivilegedStateEnv`)."""


class PrivilegedStateEnv(SimEnv):
    """An adapter whose ``observation.state`` is the inner one's state followed by its environment state.

    ``spec.state_names`` gains ``env_state_0 .. env_state_{E-1}``; everything else (actions, cameras, success,
    the expert) is the inner adapter's. Attributes not defined here are looked up on the inner adapter.
    """

    def __init__(self, inner: SimEnv) -> None:
        self.inner = inner
        extra = tuple(ENV_STATE_NAME.format(i) for i in range(inner.spec.env_state_dim))
        self.spec = dataclasses.replace(inner.spec, state_names=inner.spec.state_names + extra)
        self.packages = inner.packages

    def _privileged(self, obs: Observation) -> Observation:
        return {**obs, OBS_STATE: np.concatenate([obs[OBS_STATE], obs[OBS_ENV_STATE]]).astype(np.float32)}

    def reset(self, seed: int) -> Observation:
        return self._privileged(self.inner.reset(seed))

    def step(self, action: np.ndarray) -> tuple[Observation, bool, bool]:
        obs, success, done = self.inner.step(action)
        return self._privileged(obs), success, done

    def render(self) -> dict[str, np.ndarray]:
        return self.inner.render()

    def make_expert(self) -> Expert:
        return self.inner.make_expert()

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str):  # only reached for attributes this wrapper lacks
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)
