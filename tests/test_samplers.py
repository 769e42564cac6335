"""Balanced samplers: the balance they produce (measured), determinism, epochs, validation."""
import numpy as np
import pytest
import torch
from scipy import stats

from ccnn.data import (LevelBalancedSampler, MultiDatasetSampler, PairBalancedSampler,
                       SubjectBalancedSampler)


def imbalanced_labels(n=3000, seed=0):
    """Levels 0..5 with shares like AU intensities (mostly 0), 10% missing."""
    rng = np.random.default_rng(seed)
    y = rng.choice(6, size=n, p=[0.75, 0.1, 0.07, 0.04, 0.025, 0.015])
    y[rng.random(n) < 0.1] = -1
    return y


def shares(values, groups):
    counts = np.array([np.sum(values == g) for g in groups])
    return counts, counts / counts.sum()


def test_subject_balanced_equalises_very_unequal_subjects():
    subjects = np.repeat(["a", "b", "c", "d"], [2000, 300, 50, 7])
    draws = np.array(list(SubjectBalancedSampler(subjects, 4000, seed=1)))
    counts, share = shares(subjects[draws], ["a", "b", "c", "d"])
    assert np.abs(share - 0.25).max() <= 1 / 4000 + 1e-12        # equal up to one draw
    assert stats.chisquare(counts).pvalue > 0.99
    # within a subject, members are used evenly (without replacement in cycles)
    d_members = np.bincount(draws[subjects[draws] == "d"], minlength=len(subjects))[-7:]
    assert d_members.max() - d_members.min() <= 1
    a_members = draws[subjects[draws] == "a"]
    assert len(np.unique(a_members)) == len(a_members)           # 1000 of 2000: no repeats


def test_subject_balanced_uniform_within_subject_over_many_draws():
    subjects = np.repeat(["x", "y"], [30, 5])
    draws = np.array(list(SubjectBalancedSampler(subjects, 6000, seed=2)))
    counts = np.bincount(draws, minlength=35)
    assert np.ptp(counts[:30]) <= 1 and np.ptp(counts[30:]) <= 1


def test_level_balanced_gives_each_observed_level_an_equal_share():
    y = imbalanced_labels()
    sampler = LevelBalancedSampler(y, 1200, seed=0)
    draws = np.array(list(sampler))
    assert sampler.levels == [0, 1, 2, 3, 4, 5]
    assert (y[draws] >= 0).all()                                  # missing labels never drawn
    counts, share = shares(y[draws], range(6))
    assert np.abs(share - 1 / 6).max() <= 1 / 1200 + 1e-12
    # versus the data's own shares, which a uniform sampler would reproduce
    natural = np.bincount(y[y >= 0], minlength=6) / np.sum(y >= 0)
    assert natural.max() / natural.min() > 20


def test_level_balanced_skips_absent_levels():
    y = np.array([0, 0, 0, 0, 2, 2, 5, -1])
    draws = np.array(list(LevelBalancedSampler(y, 300, seed=0)))
    counts, _ = shares(y[draws], [0, 2, 5])
    assert counts.tolist() == [100, 100, 100]


def test_pair_balanced_equalises_observed_label_pairs():
    rng = np.random.default_rng(3)
    r = imbalanced_labels(4000, 1)
    s = np.where(r > 0, np.clip(r + rng.integers(-1, 2, size=r.shape), 0, 5), imbalanced_labels(4000, 2))
    sampler = PairBalancedSampler(r, s, 5000, seed=7)
    draws = np.array(list(sampler))
    assert (r[draws] >= 0).all() and (s[draws] >= 0).all()
    observed = {(a, b) for a, b in zip(r, s) if a >= 0 and b >= 0}
    assert set(sampler.pairs) == observed
    codes = [(a, b) for a, b in zip(r[draws], s[draws])]
    counts = np.array([codes.count(p) for p in sampler.pairs])
    assert counts.max() - counts.min() <= 1
    assert stats.chisquare(counts).pvalue > 0.99


def test_determinism_and_epochs():
    y = imbalanced_labels()
    a, b = LevelBalancedSampler(y, 500, seed=5), LevelBalancedSampler(y, 500, seed=5)
    assert list(a) == list(b) and len(a) == 500
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    b.set_epoch(1)
    assert list(a) == list(b)
    assert list(LevelBalancedSampler(y, 500, seed=6)) != first


def test_multi_dataset_sampler_equal_shares_and_offsets():
    sizes = [1000, 60, 300]
    offsets = list(np.cumsum([0] + sizes[:-1]))
    subjects = [np.repeat(np.arange(k), n // k) for k, n in zip([10, 3, 5], sizes)]
    parts = [SubjectBalancedSampler(s, len(s) // 4, seed=d) for d, s in enumerate(subjects)]
    sampler = MultiDatasetSampler(parts, offsets, 3001, seed=0)
    draws = np.array(list(sampler))
    dataset = np.searchsorted(np.cumsum(sizes), draws, side="right")
    counts = np.bincount(dataset, minlength=3)
    assert counts.max() - counts.min() <= 1 and counts.sum() == 3001
    for d in range(3):  # indices are shifted into each data set's range, and balanced within it
        local = draws[dataset == d] - offsets[d]
        assert local.min() >= 0 and local.max() < sizes[d]
        sub = np.bincount(subjects[d][local])
        assert sub.max() - sub.min() <= 2
    assert list(sampler) == list(draws)                     # reproducible
    sampler.set_epoch(3)
    assert list(sampler) != list(draws)


def test_samplers_work_with_a_dataloader():
    data = torch.utils.data.TensorDataset(torch.arange(100))
    sampler = SubjectBalancedSampler(np.arange(100) // 25, 64, seed=0)
    batches = list(torch.utils.data.DataLoader(data, batch_size=16, sampler=sampler))
    assert len(batches) == 4 and torch.cat([b[0] for b in batches]).tolist() == list(sampler)


@pytest.mark.parametrize("make", [
    lambda: SubjectBalancedSampler(["a"], 0),
    lambda: SubjectBalancedSampler(np.zeros((2, 2)), 5),
    lambda: LevelBalancedSampler(np.array([-1, -1]), 5),
    lambda: LevelBalancedSampler(np.array([0.5, 1.0]), 5),
    lambda: PairBalancedSampler(np.array([0, 1]), np.array([0]), 5),
    lambda: PairBalancedSampler(np.array([0, -1]), np.array([-1, 2]), 5),
    lambda: MultiDatasetSampler([], [], 5),
    lambda: MultiDatasetSampler([SubjectBalancedSampler(["a"], 2)], [-1], 5),
    lambda: MultiDatasetSampler([SubjectBalancedSampler(["a"], 2)], [0, 3], 5),
])
def test_bad_arguments(make):
    with pytest.raises(ValueError):
        make()
