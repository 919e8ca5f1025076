"""Receding-horizon execution of action chunks: one action per control step, a new chunk every n_action_steps.

Torch-free (numpy only); the policy is anything with ``infer(obs) -> {"actions": (H, A)}`` (a
:class:`depi.serve.client.PolicyClient`, a :class:`depi.eval.policy_runner.PolicyRunner`, an openpi client)::

    policy = ActionChunkBroker(PolicyClient("ws://127.0.0.1:8000"), n_action_steps=5)
    policy.reset()
    action = policy.infer(obs)["actions"]     # (A,): step k of the chunk queried at the last multiple of 5
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

ACTIONS = "actions"


class ChunkPolicy(Protocol):
    def infer(self, obs: Mapping[str, Any]) -> Mapping[str, Any]: ...


class ActionChunkBroker:
    """Serve a chunk policy one step at a time (openpi-client's ``ActionChunkBroker`` contract).

    Args:
        policy: returns ``{"actions": (H, A)}`` per observation.
        n_action_steps: actions executed from each chunk before the next query (1 <= n_action_steps <= H).

    Raises:
        ValueError: ``n_action_steps`` < 1.
    """

    def __init__(self, policy: ChunkPolicy, n_action_steps: int):
        if n_action_steps < 1:
            raise ValueError(f"n_action_steps={n_action_steps}: expected >= 1")
        self.policy = policy
        self.n_action_steps = n_action_steps
        self._chunk: Mapping[str, Any] | None = None
        self._step = 0

    def infer(self, obs: Mapping[str, Any]) -> dict[str, Any]:
        """The next action: ``{"actions": (A,)}`` plus the other entries of the chunk's reply (timings, ...).

        The policy is queried with ``obs`` at the first call and then every ``n_action_steps`` calls; the calls in
        between ignore ``obs``.

        Raises:
            ValueError: the reply has no ``actions`` (H, A) array, or H < ``n_action_steps``.
        """
        if self._chunk is None:
            reply = self.policy.infer(obs)
            actions = np.asarray(reply.get(ACTIONS)) if ACTIONS in reply else None
            if actions is None or actions.ndim != 2:
                shape = None if actions is None else actions.shape
                raise ValueError(f"the policy's reply needs 'actions' of shape (H, A); got {shape}")
            if actions.shape[0] < self.n_action_steps:
                raise ValueError(
                    f"n_action_steps={self.n_action_steps} exceeds the chunk length H={actions.shape[0]}; "
                    f"use n_action_steps <= {actions.shape[0]}"
                )
            self._chunk, self._step = {**reply, ACTIONS: actions}, 0
        out = {**self._chunk, ACTIONS: self._chunk[ACTIONS][self._step]}
        self._step += 1
        if self._step >= self.n_action_steps:
            self._chunk = None
        return out

    def reset(self, *args: Any, **kwargs: Any) -> None:
        """Drop the current chunk and reset the policy (its ``reset(*args, **kwargs)``, when it has one)."""
        self._chunk, self._step = None, 0
        reset = getattr(self.policy, "reset", None)
        if callable(reset):
            reset(*args, **kwargs)
