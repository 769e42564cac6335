"""Property-based tests of the decoders (hypothesis, fixed seed, bounded examples): on random small
pairwise problems with scores of any sign and magnitude up to the overflow limit, decode_exact
returns the brute-force optimum, decode_ad3 never reports a score above its bound nor "optimal"
for a labelling worse than the optimum, and scores beyond the limit are refused."""
import itertools

import numpy as np
import pytest

import ccnn_ext

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

SETTINGS = dict(deadline=None, derandomize=True, max_examples=60)


@st.composite
def problems(draw):
    Q = draw(st.integers(1, 4))
    L = draw(st.integers(2, 3))
    edges = [e for e in itertools.combinations(range(Q), 2) if draw(st.booleans())]
    edges = np.array(edges, dtype=np.int64).reshape(-1, 2)
    scale = draw(st.sampled_from([1e-9, 1.0, 1e3, 1e8, 1e250]))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    unary = rng.normal(size=(1, Q, L)) * scale
    pairwise = rng.normal(size=(1, len(edges), L, L)) * scale
    if draw(st.booleans()):  # ties
        unary = np.round(unary / scale) * scale
        pairwise = np.round(pairwise / scale) * scale
    return unary, pairwise, edges


def brute_force(unary, pairwise, edges):
    Q, L = unary.shape
    scores = []
    for y in itertools.product(range(L), repeat=Q):
        s = sum(unary[q, y[q]] for q in range(Q))
        s += sum(pairwise[e, y[r], y[s_]] for e, (r, s_) in enumerate(edges))
        scores.append(s)
    return max(scores)


def score_of(labels, unary, pairwise, edges):
    s = sum(unary[q, labels[q]] for q in range(len(labels)))
    return s + sum(pairwise[e, labels[r], labels[t]] for e, (r, t) in enumerate(edges))


@settings(**SETTINGS)
@given(problems())
def test_exact_decoding_finds_the_brute_force_optimum(problem):
    unary, pairwise, edges = problem
    best = brute_force(unary[0], pairwise[0], edges)
    result = ccnn_ext.decode_exact(unary, pairwise, edges, time_limit=None)
    assert result.status_names[0] == "optimal"
    labels = result.labels[0]
    assert np.all((labels >= 0) & (labels < unary.shape[2]))
    got = score_of(labels, unary[0], pairwise[0], edges)
    tol = 1e-9 * max(1.0, abs(best)) + 1e-12 * np.abs(unary).sum() + 1e-12 * np.abs(pairwise).sum()
    assert got >= best - tol and np.isfinite(result.score[0])


@settings(**SETTINGS)
@given(problems())
def test_ad3_never_claims_more_than_it_has(problem):
    unary, pairwise, edges = problem
    best = brute_force(unary[0], pairwise[0], edges)
    result = ccnn_ext.decode_ad3(unary, pairwise, edges)
    got = score_of(result.labels[0], unary[0], pairwise[0], edges)
    slack = 1e-9 * (np.abs(unary).sum() + np.abs(pairwise).sum() + 1.0)
    assert np.isfinite(result.score[0]) and np.isfinite(result.bound[0])
    assert got <= best + slack                      # a labelling cannot beat the optimum
    assert result.bound[0] >= best - slack          # the bound is an upper bound
    if result.status_names[0] == "optimal":
        assert got >= best - slack


@settings(deadline=None, derandomize=True, max_examples=20)
@given(st.integers(1, 3), st.sampled_from([1e301, 1e306, np.inf, np.nan]))
def test_scores_beyond_the_limit_are_refused(Q, value):
    unary = np.zeros((1, Q, 2))
    unary[0, 0, 0] = value
    edges = np.zeros((0, 2), dtype=np.int64)
    pairwise = np.zeros((1, 0, 2, 2))
    for decode in (ccnn_ext.decode_exact, ccnn_ext.decode_ad3):
        with pytest.raises(ValueError):
            decode(unary, pairwise, edges)
