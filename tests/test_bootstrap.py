"""The two-level bootstrap of ccnn.bootstrap against references: metrics.evaluate on the resampled
frames themselves (brute force, the same draws), the exact bootstrap distribution of a tiny case
(all outcomes enumerated), and hand-computed percentiles."""
import itertools
import math

import numpy as np
import pytest

from ccnn.bootstrap import (average_over_aus, bootstrap_models, draw_counts, icc_from_sums, mae_from_sums,
                            percentile_interval, replicate_statistics, subject_sums)
from ccnn.metrics import evaluate, icc31, mae


def _seed_data(rng, subjects, frames, Q=3, missing=0.1):
    labels = rng.integers(0, 6, size=(subjects * frames, Q))
    preds = np.clip(labels + rng.integers(-2, 3, size=labels.shape), 0, 5).astype(float)
    labels[rng.random(labels.shape) < missing] = -1
    names = np.repeat([f"s{i}" for i in range(subjects)], frames)
    return labels, preds, names


def test_icc_and_mae_from_sums_equal_the_metrics_on_the_frames():
    rng = np.random.default_rng(1)
    labels, preds, names = _seed_data(rng, 4, 15)
    _, sums = subject_sums(labels, preds, names)
    total = sums.sum(0)
    np.testing.assert_allclose(icc_from_sums(total), icc31(labels, preds), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(mae_from_sums(total), mae(labels, preds), rtol=1e-12)


def test_icc_from_sums_is_nan_where_the_metric_is():
    labels = np.array([[1, 2, -1], [1, 2, -1], [1, 3, 4]])
    preds = np.array([[1, 0, 0], [1, 0, 0], [1, 0, 0]], dtype=float)  # AU 0: constant, AU 2: one frame
    _, sums = subject_sums(labels, preds, np.array(["a", "a", "b"]))
    ours, reference = icc_from_sums(sums.sum(0)), icc31(labels, preds)
    assert np.isnan(ours[0]) and np.isnan(reference[0]) and np.isnan(ours[2]) and np.isnan(reference[2])
    assert ours[1] == pytest.approx(reference[1])


def test_replicates_equal_brute_force_on_the_resampled_frames():
    """Same draws: resample seeds and subjects, concatenate the chosen subjects' frames (a subject
    drawn twice counts twice), evaluate with ccnn.metrics, average over the drawn seeds."""
    rng = np.random.default_rng(2)
    seeds = [_seed_data(rng, s, 7) for s in (3, 4, 2)]
    sums = [subject_sums(*seed)[1] for seed in seeds]
    draws = draw_counts(np.random.default_rng(5), [3, 4, 2], 40)
    icc, mae_ = replicate_statistics(sums, draws)
    choice, counts = draws
    for r in range(40):
        iccs, maes = [], []
        for j, k in enumerate(choice[r]):
            labels, preds, names = seeds[k]
            order = np.unique(names)
            rows = np.concatenate([np.flatnonzero(names == order[i]) for i in range(len(order))
                                   for _ in range(counts[k][r, j, i])])
            metrics = evaluate(labels[rows], preds[rows], [1, 2, 4])
            iccs.append(metrics["icc_avg"])
            maes.append(metrics["mae_avg"])
        assert icc[r] == pytest.approx(np.mean(iccs), abs=1e-10)
        assert mae_[r] == pytest.approx(np.mean(maes), abs=1e-12)


def test_draws_resample_seeds_and_subjects_uniformly():
    choice, counts = draw_counts(np.random.default_rng(0), [3, 5], 20000)
    assert np.bincount(choice.ravel(), minlength=2) / choice.size == pytest.approx([0.5, 0.5], abs=0.01)
    for S, c in zip([3, 5], counts):
        assert (c.sum(-1) == S).all()                      # every slot draws S subjects
        assert c.mean((0, 1)) == pytest.approx(np.ones(S), abs=0.02)


def test_monte_carlo_matches_the_exact_bootstrap_distribution():
    """2 seeds of 2 subjects: the 4 seed draws x 4 x 4 subject draws (256 equally likely outcomes)
    give the exact distribution of the statistic; the Monte Carlo replicates must follow it."""
    rng = np.random.default_rng(3)
    seeds = [_seed_data(rng, 2, 10, missing=0.0) for _ in range(2)]
    sums = [subject_sums(*seed)[1] for seed in seeds]
    exact = []
    for pick in itertools.product(range(2), repeat=2):
        slots = [[np.bincount(d, minlength=2) for d in itertools.product(range(2), repeat=2)] for _ in pick]
        for a, b in itertools.product(slots[0], slots[1]):
            values = [average_over_aus(icc_from_sums(np.einsum("s,sqc->qc", c, sums[k])))
                      for k, c in zip(pick, (a, b))]
            exact.append(np.mean(values))
    exact = np.array(exact)
    mc, _ = replicate_statistics(sums, draw_counts(np.random.default_rng(4), [2, 2], 40000))
    assert np.nanmean(mc) == pytest.approx(np.nanmean(exact), abs=0.01)
    for q in np.nanpercentile(exact, [10, 50, 90]):
        assert np.mean(mc <= q) == pytest.approx(np.mean(exact <= q), abs=0.02)


def test_percentile_interval_by_hand():
    assert percentile_interval(np.arange(101.0)) == pytest.approx((2.5, 97.5))
    assert percentile_interval(np.array([np.nan, 1.0, 1.0])) == (1.0, 1.0)
    assert all(math.isnan(v) for v in percentile_interval(np.array([np.nan])))


def test_bootstrap_models_pairs_the_draws_and_checks_shapes():
    rng = np.random.default_rng(6)
    labels, preds, names = _seed_data(rng, 4, 8)
    sums = subject_sums(labels, preds, names)[1]
    out = bootstrap_models({"A": [sums], "B": [sums]}, replicates=50)
    np.testing.assert_array_equal(out["A"]["icc"], out["B"]["icc"])  # same draws: zero difference
    with pytest.raises(ValueError, match="same seeds and test subjects"):
        bootstrap_models({"A": [sums], "B": [sums[:2]]})


def test_subject_sums_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="labels and preds must be"):
        subject_sums(np.zeros((3, 2)), np.zeros((3, 3)), np.array(["a"] * 3))
