"""Policies; the registry in :mod:`depi.policies.registry` maps ``--policy.type`` names to config classes."""

from depi.policies.registry import PolicyConfig, available_policies, config_class, make_policy

__all__ = ["PolicyConfig", "available_policies", "config_class", "make_policy"]
