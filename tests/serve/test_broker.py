"""ActionChunkBroker: one action per call, a new chunk every n_action_steps, reset."""

from __future__ import annotations

import numpy as np
import pytest

from depi.serve.broker import ActionChunkBroker


class CountingPolicy:
    """Chunk k is ``k * 100 + arange(H)`` in every action dim; records the observations it was queried with."""

    def __init__(self, horizon: int = 4, action_dim: int = 2):
        self.horizon, self.action_dim = horizon, action_dim
        self.queries: list = []
        self.resets: list = []

    def infer(self, obs):
        self.queries.append(obs)
        base = 100 * (len(self.queries) - 1) + np.arange(self.horizon, dtype=np.float32)
        return {"actions": np.repeat(base[:, None], self.action_dim, axis=1), "policy_timing": {"infer_ms": 1.0}}

    def reset(self, seed=None):
        self.resets.append(seed)


def test_steps_through_chunks() -> None:
    policy = CountingPolicy(horizon=4)
    broker = ActionChunkBroker(policy, n_action_steps=3)
    actions = [broker.infer({"t": t})["actions"] for t in range(7)]
    assert [a[0] for a in actions] == [0, 1, 2, 100, 101, 102, 200]
    assert all(a.shape == (2,) for a in actions)
    assert [q["t"] for q in policy.queries] == [0, 3, 6]  # queried every n_action_steps with that step's obs
    assert broker.infer({})["policy_timing"] == {"infer_ms": 1.0}  # other reply entries pass through


def test_reset_drops_the_chunk_and_resets_the_policy() -> None:
    policy = CountingPolicy()
    broker = ActionChunkBroker(policy, n_action_steps=4)
    broker.infer({})
    broker.reset(seed=5)
    assert policy.resets == [5]
    assert broker.infer({})["actions"][0] == 100  # a fresh chunk
    ActionChunkBroker(object(), 1).reset()  # a policy without reset is fine


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="n_action_steps=0"):
        ActionChunkBroker(CountingPolicy(), 0)
    with pytest.raises(ValueError, match="exceeds the chunk length H=4"):
        ActionChunkBroker(CountingPolicy(horizon=4), 5).infer({})

    class NoActions:
        def infer(self, obs):
            return {"error": {"type": "x"}}

    with pytest.raises(ValueError, match="needs 'actions'"):
        ActionChunkBroker(NoActions(), 1).infer({})
