"""Weights modes and the infinite sampler: determinism, resume, rank / worker sharding."""

import json

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, IterableDataset

from depi.datasets.mixture.sampler import MixtureSampler, compute_weights, load_weights_file

FRAMES = np.array([100, 400, 0, 1500], dtype=np.int64)


def test_weights_frames_uniform_temperature():
    np.testing.assert_allclose(compute_weights(FRAMES, "frames"), [0.05, 0.2, 0.0, 0.75])
    np.testing.assert_allclose(compute_weights(FRAMES, "uniform"), [1 / 3, 1 / 3, 0.0, 1 / 3])
    raw = np.sqrt([100.0, 400.0, 0.0, 1500.0])
    np.testing.assert_allclose(compute_weights(FRAMES, "temperature", alpha=0.5), raw / raw.sum())
    np.testing.assert_allclose(
        compute_weights(FRAMES, "temperature", alpha=1.0), compute_weights(FRAMES, "frames")
    )


def test_weights_file(tmp_path):
    path = tmp_path / "w.json"
    path.write_text(json.dumps({"a/x": 1, "b/y": 3, "c/z": 5, "d/w": 0}))
    raw = load_weights_file(path, ["a/x", "b/y", "c/z", "d/w"])
    np.testing.assert_allclose(compute_weights(FRAMES, "file", explicit=raw), [0.25, 0.75, 0.0, 0.0])
    with pytest.raises(ValueError, match="no weight for 1 dataset"):
        load_weights_file(path, ["a/x", "e/v"])
    with pytest.raises(ValueError, match="Unknown weighting 'nope'"):
        compute_weights(FRAMES, "nope")


def take(iterator, n):
    return [next(iterator) for _ in range(n)]


def test_empirical_frequencies_follow_weights_and_frames_in_range():
    weights = compute_weights(FRAMES, "uniform")
    sampler = MixtureSampler(FRAMES, weights, seed=3)
    draws = np.array(take(iter(sampler), 30000))
    offsets = np.concatenate([[0], np.cumsum(FRAMES)])
    dataset = np.searchsorted(offsets, draws, side="right") - 1
    counts = np.bincount(dataset, minlength=4) / len(draws)
    np.testing.assert_allclose(counts, weights, atol=0.01)
    assert counts[2] == 0 and draws.min() >= 0 and draws.max() < FRAMES.sum()


def test_deterministic_and_resume_reproduces_sequence():
    weights = compute_weights(FRAMES, "frames")
    full = take(iter(MixtureSampler(FRAMES, weights, seed=7)), 10000)
    assert full == take(iter(MixtureSampler(FRAMES, weights, seed=7)), 10000)
    assert full != take(iter(MixtureSampler(FRAMES, weights, seed=8)), 10000)
    first = MixtureSampler(FRAMES, weights, seed=7)
    take(iter(first), 1234)
    state = first.state_dict(num_consumed=6789)  # e.g. the loader prefetched more than was consumed
    resumed = MixtureSampler(FRAMES, weights, seed=7)
    resumed.load_state_dict(state)
    assert take(iter(resumed), 10000 - 6789) == full[6789:]
    with pytest.raises(ValueError, match="same seed"):
        MixtureSampler(FRAMES, weights, seed=1).load_state_dict(state)


def test_resume_on_another_world_size_continues_the_global_stream():
    weights = compute_weights(FRAMES, "frames")
    reference = take(iter(MixtureSampler(FRAMES, weights, seed=2)), 300)
    state = MixtureSampler(FRAMES, weights, seed=2, rank=0, world_size=2).state_dict(num_consumed=30)
    one = MixtureSampler(FRAMES, weights, seed=2)  # 2 ranks x 30 samples: the global stream is at sample 60
    one.load_state_dict(state)
    assert take(iter(one), 100) == reference[60:160]
    for rank in range(4):
        four = MixtureSampler(FRAMES, weights, seed=2, rank=rank, world_size=4)
        four.load_state_dict(state)
        assert take(iter(four), 20) == reference[60 + rank : 140 : 4]
    with pytest.raises(ValueError, match="cannot split evenly"):
        MixtureSampler(FRAMES, weights, seed=2, world_size=7).load_state_dict(state)


def test_ranks_disjoint_and_cover_the_global_stream():
    weights = compute_weights(FRAMES, "frames")
    reference = MixtureSampler(FRAMES, weights, seed=1)
    world = 3
    per_rank = [
        take(iter(MixtureSampler(FRAMES, weights, seed=1, rank=r, world_size=world)), 500)
        for r in range(world)
    ]
    interleaved = [per_rank[j % world][j // world] for j in range(1500)]
    assert interleaved == [reference.global_index(k) for k in range(1500)]


class _Stream(IterableDataset):
    def __init__(self, sampler):
        self.sampler = sampler

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        for k in self.sampler:
            yield torch.tensor([k, info.id if info else -1])


@pytest.mark.parametrize("num_workers", [1, 2])
def test_workers_disjoint_and_in_single_process_order(num_workers):
    weights = compute_weights(FRAMES, "frames")
    batch = 4
    sampler = MixtureSampler(FRAMES, weights, seed=5, rank=1, world_size=2, batch_size=batch, start=8)
    single = take(iter(MixtureSampler(FRAMES, weights, seed=5, rank=1, world_size=2, start=8)), 12 * batch)
    loader = DataLoader(_Stream(sampler), batch_size=batch, num_workers=num_workers)
    got, workers = [], []
    for i, b in enumerate(loader):
        got += b[:, 0].tolist()
        workers.append(set(b[:, 1].tolist()))
        if i == 11:
            break
    assert got == single
    assert all(len(w) == 1 for w in workers)  # each batch from one worker
    assert [w.pop() for w in workers] == [i % num_workers for i in range(12)]


def test_map_style_sampler_is_worker_agnostic():
    weights = compute_weights(FRAMES, "frames")
    sampler = MixtureSampler(FRAMES, weights, seed=2)
    loader = DataLoader(np.arange(FRAMES.sum()), batch_size=8, sampler=sampler, num_workers=2)
    got = []
    for i, b in enumerate(loader):
        got += b.tolist()
        if i == 4:
            break
    assert got == take(iter(MixtureSampler(FRAMES, weights, seed=2)), 40)


def test_bad_arguments():
    with pytest.raises(ValueError, match="rank 2"):
        MixtureSampler(FRAMES, np.ones(4) / 4, rank=2, world_size=2)
    with pytest.raises(ValueError, match="must both be"):
        MixtureSampler(FRAMES, np.ones(3) / 3)
