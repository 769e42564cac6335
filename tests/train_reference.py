"""Brute-force MAP decoding by enumeration, the independent reference of the model's decoding tests;
nothing here ships in ccnn."""
import itertools

import numpy as np


def brute_force_map(unary, pairwise, edges):
    """Exact argmax of sum_q unary[q, y_q] + sum_e pairwise[e, y_r, y_s] by enumeration (one sample)."""
    unary, pairwise, edges = np.asarray(unary), np.asarray(pairwise), np.asarray(edges)
    Q, L = unary.shape
    best, best_y = -np.inf, None
    for y in itertools.product(range(L), repeat=Q):
        score = sum(unary[q, y[q]] for q in range(Q))
        score += sum(pairwise[e, y[r], y[s]] for e, (r, s) in enumerate(edges))
        if score > best:
            best, best_y = score, y
    return np.array(best_y), best
