"""AU intensity labels of the synthetic data set: a latent Gaussian factor model (a Gaussian copula)
thresholded to ordinal levels 0..5.

For one context (disfa, fera, pain) with AUs q = 1..Q and factors k = 1..K:

    z_q(t) = sum_k A[q, k] f_k(t) + sqrt(1 - sum_k A[q, k]^2) e_q(t)        (latent, N(0, 1))
    y_q(t) = number of thresholds c[q, 1..5] below z_q(t)                     (level 0..5)

f_k and e_q are independent, stationary, unit-variance Gaussian processes over the frames of one
subject's video (white noise smoothed with a Gaussian kernel of `TEMPORAL_SIGMA_FRAMES`), so labels
are temporally smooth, and at every frame z ~ N(0, R) with R = A A^T + diag(1 - diag(A A^T)).
The thresholds make the marginals imbalanced (mostly 0, high levels rare). Because every frame has
the same joint law, the pairwise dependence of the labels is known exactly: `expected_kendall_tau`
computes Kendall's tau-b of each label pair from R and the thresholds (bivariate normal rectangle
probabilities), and the tests compare the labels' empirical tau with it.
"""
from __future__ import annotations

import numpy as np
from scipy.special import ndtri
from scipy.stats import multivariate_normal

LEVELS = 6
TEMPORAL_SIGMA_FRAMES = 5.0
MAX_COMMUNALITY = 0.95  # every AU keeps at least 5% of its latent variance as its own noise

# The AUs the generator can draw, with the FACS name of what they move.
AU_NAMES = {
    1: "inner brow raiser", 2: "outer brow raiser", 4: "brow lowerer", 5: "upper lid raiser",
    6: "cheek raiser", 7: "lid tightener", 9: "nose wrinkler", 10: "upper lip raiser",
    12: "lip corner puller", 14: "dimpler", 15: "lip corner depressor", 17: "chin raiser",
    20: "lip stretcher", 25: "lips part", 26: "jaw drop", 43: "eyes closed",
}

CONTEXT_AUS = {
    "disfa": [1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26],
    "fera": [6, 10, 12, 14, 17],
    "pain": [4, 6, 7, 9, 10, 12, 20, 25, 26, 43],
}

# Share of frames with level >= 1 (before context scaling); within the active frames, level k has
# weight LEVEL_DECAY^(k-1), so level 5 is about 7% of the active frames.
ACTIVE_RATE = {
    1: 0.18, 2: 0.16, 4: 0.25, 5: 0.12, 6: 0.22, 7: 0.20, 9: 0.12, 10: 0.20,
    12: 0.30, 14: 0.25, 15: 0.12, 17: 0.20, 20: 0.12, 25: 0.35, 26: 0.25, 43: 0.12,
}
LEVEL_DECAY = 0.65

# Factor loadings shared by all contexts (a factor is a facial "behaviour" that drives several AUs).
FACTORS = {
    "brow_raise": {1: 0.85, 2: 0.85, 5: 0.75, 26: 0.30, 25: 0.20},
    "smile": {6: 0.80, 12: 0.85, 25: 0.35, 10: 0.45, 14: 0.70, 15: -0.45, 7: 0.35},
    "mouth_open": {25: 0.75, 26: 0.80, 20: 0.55},
    "frown": {4: 0.85, 9: 0.65, 15: 0.60, 17: 0.70, 7: 0.45, 10: 0.30, 12: -0.30, 20: 0.25},
    "pain": {4: 0.35, 6: 0.45, 7: 0.55, 9: 0.45, 10: 0.55, 43: 0.75},
}

# Per context: how strongly each factor acts (0 = absent), per-AU loading multipliers, and a
# multiplier of the active rates. FERA's AU17 is made nearly independent (the paper observes AU17
# dependent in DISFA but independent in FERA2015); the pain context is dominated by the pain factor.
CONTEXTS = {
    "disfa": {"factor_scale": {"brow_raise": 1.0, "smile": 1.0, "mouth_open": 1.0, "frown": 1.0,
                               "pain": 0.0},
              "au_scale": {}, "rate_scale": 1.0},
    "fera": {"factor_scale": {"brow_raise": 0.0, "smile": 0.95, "mouth_open": 0.0, "frown": 0.8,
                              "pain": 0.6},
             "au_scale": {17: 0.3}, "rate_scale": 1.3},
    "pain": {"factor_scale": {"brow_raise": 0.0, "smile": 0.8, "mouth_open": 0.8, "frown": 0.9,
                              "pain": 1.2},
             "au_scale": {}, "rate_scale": 1.0},
}


def context_aus(context: str) -> list[int]:
    if context not in CONTEXT_AUS:
        raise ValueError(f"context must be one of {sorted(CONTEXT_AUS)}, got {context!r}")
    return list(CONTEXT_AUS[context])


def factor_loadings(context: str) -> tuple[list[int], list[str], np.ndarray]:
    """(aus, factor names, A (Q, K)) of a context; factors with no effect are dropped."""
    aus = context_aus(context)
    spec = CONTEXTS[context]
    names = [name for name, scale in spec["factor_scale"].items() if scale > 0]
    A = np.zeros((len(aus), len(names)))
    for k, name in enumerate(names):
        for q, au in enumerate(aus):
            A[q, k] = FACTORS[name].get(au, 0.0) * spec["factor_scale"][name]
    for q, au in enumerate(aus):
        A[q] *= spec["au_scale"].get(au, 1.0)
        communality = float(A[q] @ A[q])
        if communality > MAX_COMMUNALITY:
            A[q] *= np.sqrt(MAX_COMMUNALITY / communality)
    return aus, names, A


def latent_correlation(A: np.ndarray) -> np.ndarray:
    R = A @ A.T
    np.fill_diagonal(R, 1.0)
    return R


def level_probabilities(context: str) -> np.ndarray:
    """(Q, LEVELS) marginal probability of each level."""
    rate_scale = CONTEXTS[context]["rate_scale"]
    weights = LEVEL_DECAY ** np.arange(LEVELS - 1)
    probs = []
    for au in context_aus(context):
        active = min(ACTIVE_RATE[au] * rate_scale, 0.6)
        probs.append(np.concatenate([[1.0 - active], active * weights / weights.sum()]))
    return np.array(probs)


def thresholds_from_probabilities(probs: np.ndarray) -> np.ndarray:
    """(Q, LEVELS - 1) latent cut points c with P(z < c_k) = P(y < k)."""
    return ndtri(np.cumsum(probs, axis=1)[:, :-1])


def smooth_gaussian_noise(rng: np.random.Generator, shape: tuple[int, ...], frames: int,
                          sigma: float = TEMPORAL_SIGMA_FRAMES) -> np.ndarray:
    """(*shape, frames) stationary unit-variance Gaussian processes, smooth over the last axis."""
    radius = int(np.ceil(4 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel /= np.sqrt(np.sum(kernel ** 2))  # unit variance of the filtered white noise
    white = rng.standard_normal(shape + (frames + 2 * radius,))
    flat = white.reshape(-1, white.shape[-1])
    out = np.stack([np.convolve(row, kernel, mode="valid") for row in flat])
    return out.reshape(shape + (frames,))


def sample_latent(A: np.ndarray, frames: int, rng: np.random.Generator) -> np.ndarray:
    """(frames, Q) latent z of one subject's video."""
    Q, K = A.shape
    factors = smooth_gaussian_noise(rng, (K,), frames)
    unique = smooth_gaussian_noise(rng, (Q,), frames)
    own = np.sqrt(np.clip(1.0 - np.sum(A ** 2, axis=1), 0.0, None))
    return (A @ factors + own[:, None] * unique).T


def quantize(z: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Levels (frames, Q) int64 from latent z (frames, Q) and cut points (Q, LEVELS - 1)."""
    return np.sum(z[:, :, None] > thresholds[None], axis=2).astype(np.int64)


def sample_subject_labels(context: str, subject: int, frames: int, seed: int) -> np.ndarray:
    """(frames, Q) int64 levels of one subject's video, from its own generator (seed, subject)."""
    _, _, A = factor_loadings(context)
    cuts = thresholds_from_probabilities(level_probabilities(context))
    rng = np.random.default_rng([seed, context_id(context), subject, 0])
    return quantize(sample_latent(A, frames, rng), cuts)


def sample_labels(context: str, subjects: int, frames: int, seed: int) -> np.ndarray:
    """(subjects, frames, Q) int64 levels."""
    return np.stack([sample_subject_labels(context, s, frames, seed) for s in range(subjects)])


def context_id(context: str) -> int:
    return sorted(CONTEXT_AUS).index(context)


def joint_level_probabilities(rho: float, cuts_r: np.ndarray, cuts_s: np.ndarray) -> np.ndarray:
    """(LEVELS, LEVELS) P(y_r = a, y_s = b) of two thresholded standard normals with correlation rho."""
    inf = 12.0  # Phi(12) = 1 - 2e-33: the outer cells of the grid
    edges_r = np.concatenate([[-inf], cuts_r, [inf]])
    edges_s = np.concatenate([[-inf], cuts_s, [inf]])
    grid = np.stack(np.meshgrid(edges_r, edges_s, indexing="ij"), axis=-1).reshape(-1, 2)
    bvn = multivariate_normal(mean=[0.0, 0.0], cov=[[1.0, rho], [rho, 1.0]], abseps=1e-10, releps=1e-8)
    cdf = bvn.cdf(grid)
    cdf = np.asarray(cdf).reshape(len(edges_r), len(edges_s))
    joint = cdf[1:, 1:] - cdf[:-1, 1:] - cdf[1:, :-1] + cdf[:-1, :-1]
    return np.clip(joint, 0.0, None)


def kendall_tau_b_of_table(joint: np.ndarray) -> float:
    """Population Kendall's tau-b of a joint probability table of two ordinal variables."""
    joint = joint / joint.sum()
    # concordant mass: P(a' > a, b' > b) summed against p(a, b); discordant: a' > a, b' < b
    upper_right = np.cumsum(np.cumsum(joint[::-1, ::-1], axis=0), axis=1)[::-1, ::-1]
    lower_right = np.cumsum(np.cumsum(joint[::-1, :], axis=0), axis=1)[::-1, :]
    greater_both = np.zeros_like(joint)
    greater_both[:-1, :-1] = upper_right[1:, 1:]
    greater_r_less_s = np.zeros_like(joint)
    greater_r_less_s[:-1, 1:] = lower_right[1:, :-1]
    concordant = 2.0 * np.sum(joint * greater_both)
    discordant = 2.0 * np.sum(joint * greater_r_less_s)
    ties_r = np.sum(joint.sum(axis=1) ** 2)
    ties_s = np.sum(joint.sum(axis=0) ** 2)
    return float((concordant - discordant) / np.sqrt((1.0 - ties_r) * (1.0 - ties_s)))


def expected_kendall_tau(context: str) -> np.ndarray:
    """(Q, Q) Kendall's tau-b of every label pair implied by the model (1 on the diagonal)."""
    _, _, A = factor_loadings(context)
    R = latent_correlation(A)
    cuts = thresholds_from_probabilities(level_probabilities(context))
    Q = len(cuts)
    tau = np.eye(Q)
    for r in range(Q):
        for s in range(r + 1, Q):
            tau[r, s] = tau[s, r] = kendall_tau_b_of_table(
                joint_level_probabilities(R[r, s], cuts[r], cuts[s]))
    return tau


def dependency_structure(context: str) -> dict:
    """The ground truth saved in meta.json: model, loadings, correlations, marginals, tau."""
    aus, names, A = factor_loadings(context)
    probs = level_probabilities(context)
    R = latent_correlation(A)
    tau = expected_kendall_tau(context)
    pairs = [(aus[r], aus[s], float(tau[r, s])) for r in range(len(aus)) for s in range(r + 1, len(aus))]
    return {
        "model": "gaussian-factor-copula",
        "description": "z = A f + sqrt(1 - rowsum(A^2)) e, f and e independent smooth unit-variance "
                       "Gaussian processes over frames; level = number of thresholds below z",
        "temporal_sigma_frames": TEMPORAL_SIGMA_FRAMES,
        "factors": names,
        "loadings": {f"AU{au}": dict(zip(names, map(float, A[q]))) for q, au in enumerate(aus)},
        "latent_correlation": R.round(6).tolist(),
        "thresholds": thresholds_from_probabilities(probs).round(6).tolist(),
        "level_probabilities": probs.round(6).tolist(),
        "kendall_tau_b": tau.round(6).tolist(),
        "strongest_positive_pairs": [[r, s, round(t, 4)] for r, s, t in
                                     sorted(pairs, key=lambda p: -p[2])[:5]],
        "negative_pairs": [[r, s, round(t, 4)] for r, s, t in sorted(pairs, key=lambda p: p[2])
                           if t < -0.05],
    }
