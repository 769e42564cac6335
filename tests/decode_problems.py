"""Random MAP problems for the decoder's tests and benchmark, with an independent numpy oracle.

A problem is (unary, pairwise, edges): unary (B, Q, L), pairwise (B, E, L, L), edges (E, 2); the
score of a labelling y is sum_q unary[q, y_q] + sum_e pairwise[e, y_r, y_s] for edges[e] = (r, s).

Kinds:
- "gaussian": every score an independent N(0, 1) draw (hard, frustrated problems);
- "frank_pos" / "frank_mixed": the CCNN decoding objective (docs/design.md, section 3.4) built from a
  small float64 implementation of its model that shares no code with ccnn: ordinal probit marginals
  P_q(l) = u_{l+1} - u_l with u_k = Phi(psi_k) from random cut points psi_k, and the
  discretised Frank copula joint
      P_e(a, b) = C(u_{a+1}, v_{b+1}) - C(u_a, v_{b+1}) - C(u_{a+1}, v_b) + C(u_a, v_b)
  with |theta_e| drawn from [2, 6], all positive or of random sign; unary = log P_q, pairwise =
  log P_e (probabilities floored at 1e-12 before the log).
"""
import itertools

import numpy as np

KINDS = ("gaussian", "frank_pos", "frank_mixed")
PROBABILITY_FLOOR = 1e-12


def complete_edges(num_nodes):
    """All pairs (r, s), r < s, in lexicographic order: (E, 2) int64."""
    return np.array(list(itertools.combinations(range(num_nodes), 2)), dtype=np.int64).reshape(-1, 2)


def frank_copula(u, v, theta):
    """C(u, v) of the Frank copula, theta != 0 (float64; accurate for the |theta| <= 6 used here)."""
    return -np.log1p(np.expm1(-theta * u) * np.expm1(-theta * v) / np.expm1(-theta)) / theta


def ordinal_cut_points(rng, batch, num_nodes, num_levels):
    """CDF values u_0 = 0 < u_1 < ... < u_L = 1 of random ordinal probit marginals: (B, Q, L + 1).

    The cut points are psi_k = Phi^{-1}(U_(k)) for sorted uniform draws U_(1) < ... < U_(L-1) (with
    mu = 0, sigma = 1), so u_k = Phi(psi_k) = U_(k) and the marginals are uniform on the simplex."""
    u = np.sort(rng.uniform(size=(batch, num_nodes, num_levels - 1)), axis=-1)
    zeros = np.zeros((batch, num_nodes, 1))
    return np.concatenate([zeros, u, zeros + 1.0], axis=-1)


def frank_problem_tables(rng, batch, num_nodes, num_levels, edges, mixed_signs):
    u = ordinal_cut_points(rng, batch, num_nodes, num_levels)
    marginals = np.diff(u, axis=-1)
    theta = rng.uniform(2.0, 6.0, size=(batch, len(edges)))
    if mixed_signs:
        theta *= rng.choice([-1.0, 1.0], size=theta.shape)
    ur = u[:, edges[:, 0], :, None]  # (B, E, L + 1, 1)
    vs = u[:, edges[:, 1], None, :]  # (B, E, 1, L + 1)
    c = frank_copula(ur, vs, theta[:, :, None, None])
    joint = c[:, :, 1:, 1:] - c[:, :, :-1, 1:] - c[:, :, 1:, :-1] + c[:, :, :-1, :-1]
    unary = np.log(np.maximum(marginals, PROBABILITY_FLOOR))
    pairwise = np.log(np.maximum(joint, PROBABILITY_FLOOR))
    return unary, pairwise


def make_problems(kind, batch, num_nodes, num_levels=6, seed=0, edges=None):
    """`batch` random problems of one kind on `edges` (default: the complete graph)."""
    rng = np.random.default_rng(seed)
    edges = complete_edges(num_nodes) if edges is None else np.asarray(edges, dtype=np.int64)
    if kind == "gaussian":
        unary = rng.normal(size=(batch, num_nodes, num_levels))
        pairwise = rng.normal(size=(batch, len(edges), num_levels, num_levels))
    elif kind in ("frank_pos", "frank_mixed"):
        unary, pairwise = frank_problem_tables(rng, batch, num_nodes, num_levels, edges,
                                               mixed_signs=kind == "frank_mixed")
    else:
        raise ValueError(f"unknown problem kind {kind!r}; expected one of {KINDS}")
    return unary, pairwise, edges


def score_labels(unary, pairwise, edges, labels):
    """Scores of labellings: unary (B, Q, L), pairwise (B, E, L, L), labels (B, Q) -> (B,)."""
    b = np.arange(unary.shape[0])[:, None]
    total = np.take_along_axis(unary, labels[:, :, None], axis=2)[:, :, 0].sum(axis=1)
    e = np.arange(len(edges))[None, :]
    total += pairwise[b, e, labels[:, edges[:, 0]], labels[:, edges[:, 1]]].sum(axis=1)
    return total


def exhaustive_map(unary, pairwise, edges):
    """Brute-force MAP of each problem (all L^Q labellings; keep Q * log2(L) small).

    Returns (labels (B, Q) int64, optimum (B,), runner_up (B,)): the runner-up is the best score
    among labellings other than the arg max (tells how close a tie is)."""
    batch, num_nodes, num_levels = unary.shape
    grid = np.array(list(itertools.product(range(num_levels), repeat=num_nodes)), dtype=np.int64)
    labels = np.empty((batch, num_nodes), dtype=np.int64)
    optimum = np.empty(batch)
    runner_up = np.empty(batch)
    for i in range(batch):
        scores = unary[i][np.arange(num_nodes), grid].sum(axis=1)
        for e, (r, s) in enumerate(edges):
            scores += pairwise[i, e][grid[:, r], grid[:, s]]
        order = np.argsort(scores)[::-1]
        labels[i] = grid[order[0]]
        optimum[i] = scores[order[0]]
        runner_up[i] = scores[order[1]]
    return labels, optimum, runner_up
