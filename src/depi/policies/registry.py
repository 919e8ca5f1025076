"""The one registry of policy types.

Each policy config class registers itself under its type name with ``@PolicyConfig.register_subclass("pi0")``
(draccus' choice registry, LeRobot's convention), which gives ``--policy.type=pi0`` on the command line. The same
registry builds the model: every config class names its model class in ``policy_class`` ("module:Class"), and
:func:`make_policy` imports and instantiates it, so there is no second dispatch table.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, ClassVar

import draccus


@dataclass
class PolicyConfig(draccus.ChoiceRegistry):
    """Base of every policy config; subclasses register a type name and set ``policy_class``."""

    policy_class: ClassVar[str] = ""

    @property
    def type(self) -> str:
        """The registered type name of this config (e.g. ``"pi0"``, ``"pi05"``)."""
        return self.get_choice_name(self.__class__)


def available_policies() -> list[str]:
    """Registered policy type names, sorted."""
    import depi.policies.pi0  # noqa: F401  (registers pi0 / pi05)

    return sorted(PolicyConfig.get_known_choices())


def config_class(type_name: str) -> type[PolicyConfig]:
    """The config class registered under ``type_name``.

    Raises:
        KeyError: the type is not registered; the message lists the registered ones.
    """
    names = available_policies()
    if type_name not in names:
        raise KeyError(f"Unknown policy type {type_name!r}; registered types: {names}.")
    return PolicyConfig.get_choice_class(type_name)


def make_policy(config: PolicyConfig) -> Any:
    """Build the model for ``config`` from the class its type names (``config.policy_class``, "module:Class").

    Raises:
        ValueError: the config class does not name a model class.
    """
    if not config.policy_class or ":" not in config.policy_class:
        raise ValueError(
            f"{type(config).__name__}.policy_class is {config.policy_class!r}; expected 'module:Class', "
            "e.g. 'depi.policies.pi0.model:PI0Policy'."
        )
    module_name, class_name = config.policy_class.split(":")
    return getattr(importlib.import_module(module_name), class_name)(config)
