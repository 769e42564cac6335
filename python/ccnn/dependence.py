"""The learned dependency structure against the truth of the synthetic data: the copula parameter theta
of each AU pair against the generator's Kendall tau (`synth_labels.expected_kendall_tau`).

theta and tau are on different scales (Frank: tau = 1 - 4/theta (1 - D_1(theta))), so the check uses
ranks: Spearman's rank correlation over all pairs, and the sign agreement on the strong pairs
(|true tau| >= STRONG_TAU). An edge pruned after training counts as theta = 0 (no dependence learned).
"""
from __future__ import annotations

import math

import numpy as np
from scipy import integrate, stats

STRONG_TAU = 0.2


def frank_tau(theta: float) -> float:
    """Kendall's tau of the Frank copula with parameter theta (0 at theta = 0)."""
    if abs(theta) < 1e-8:
        return 0.0
    debye, _ = integrate.quad(lambda t: t / math.expm1(t) if t else 1.0, 0.0, abs(theta))
    tau = 1.0 - 4.0 / abs(theta) * (1.0 - debye / abs(theta))
    return math.copysign(tau, theta)


def spearman(x, y) -> float:
    """Spearman's rank correlation (ties at their average rank); NaN if a side is constant."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(stats.spearmanr(x, y).statistic)


def theta_vs_tau(association: dict, aus, true_tau: np.ndarray, strong: float = STRONG_TAU) -> dict:
    """Compare learned {(au_r, au_s): theta} (one dataset's edges) with the true (Q, Q) tau over `aus`.
    Returns {"pairs", "spearman", "strong_pairs", "sign_agreement", "table": [[au_r, au_s, tau,
    theta, frank tau], ...]}."""
    aus = [int(a) for a in aus]
    true_tau = np.asarray(true_tau, dtype=np.float64)
    if true_tau.shape != (len(aus), len(aus)):
        raise ValueError(f"true_tau must be ({len(aus)}, {len(aus)}) for aus {aus}, got {true_tau.shape}")
    learned = {tuple(sorted((int(a), int(b)))): float(v) for (a, b), v in association.items()}
    table = []
    for r in range(len(aus)):
        for s in range(r + 1, len(aus)):
            theta = learned.get((aus[r], aus[s]), 0.0)
            table.append([aus[r], aus[s], float(true_tau[r, s]), theta, frank_tau(theta)])
    tau = np.array([row[2] for row in table])
    theta = np.array([row[3] for row in table])
    strong_rows = np.abs(tau) >= strong
    agree = np.sign(theta[strong_rows]) == np.sign(tau[strong_rows])
    return {"pairs": len(table), "spearman": spearman(theta, tau),
            "strong_pairs": int(strong_rows.sum()),
            "sign_agreement": float(agree.mean()) if strong_rows.any() else math.nan,
            "strong_threshold": strong, "table": table}
