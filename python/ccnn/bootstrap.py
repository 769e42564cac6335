"""Confidence intervals over test subjects and seeds: a two-level (hierarchical) bootstrap of the
average ICC(3,1) and MAE of several models evaluated on the same subjects.

Each seed has its own test subjects (the split depends on the seed). ICC and MAE of a set of frames
follow from a few sums per AU, so every (seed, subject, AU) is reduced once to

    SUMS = (n, sum t, sum p, sum t^2, sum p^2, sum t p, sum |t - p|)   (t: label, p: prediction)

over its annotated frames (`subject_sums`), and a resample of subjects is a weighted sum of those
rows. One bootstrap replicate draws seeds with replacement and, inside each drawn seed, its test
subjects with replacement; the statistic is the mean over the drawn seeds of the average over AUs.
All models see the same draws, so the difference of two models' replicates is their paired
difference (`percentile_interval` of it is the 95% interval of `ccnn compare --seeds`).
"""
from __future__ import annotations

import numpy as np

SUMS = ("n", "t", "p", "tt", "pp", "tp", "abs")


def subject_sums(labels, preds, subjects) -> tuple[np.ndarray, np.ndarray]:
    """(subject names (S,), sums (S, Q, len(SUMS))) of labels and predictions (N, Q) over the frames
    of each subject; missing labels (-1) are skipped per AU."""
    t = np.asarray(labels, dtype=np.float64)
    p = np.asarray(preds, dtype=np.float64)
    subjects = np.asarray(subjects)
    if t.shape != p.shape or t.ndim != 2 or len(subjects) != len(t):
        raise ValueError(f"subject_sums: labels and preds must be (N, Q) and subjects (N,), got "
                         f"{t.shape}, {p.shape} and {subjects.shape}")
    names = np.unique(subjects)
    out = np.zeros((len(names), t.shape[1], len(SUMS)))
    for i, name in enumerate(names):
        rows = subjects == name
        ts, ps = t[rows], p[rows]
        seen = (ts != -1) & np.isfinite(ts)
        ts, ps = np.where(seen, ts, 0.0), np.where(seen, ps, 0.0)
        out[i] = np.stack([seen.sum(0), ts.sum(0), ps.sum(0), (ts * ts).sum(0), (ps * ps).sum(0),
                           (ts * ps).sum(0), np.abs(ts - ps).sum(0)], axis=-1)
    return names, out


def icc_from_sums(sums: np.ndarray) -> np.ndarray:
    """ICC(3,1) of label and prediction (two raters) per row of sums (..., len(SUMS)), as the
    two-way ANOVA of metrics.icc: NaN with fewer than two frames or no variance."""
    n, st, sp, stt, spp, stp = (sums[..., i] for i in range(6))
    with np.errstate(invalid="ignore", divide="ignore"):
        grand = (st + sp) / (2 * n)
        ss_total = stt + spp - 2 * n * grand ** 2
        ss_rows = (stt + spp + 2 * stp) / 2 - 2 * n * grand ** 2
        ss_cols = n * ((st / n - grand) ** 2 + (sp / n - grand) ** 2)
        bms = ss_rows / (n - 1)
        ems = (ss_total - ss_rows - ss_cols) / (n - 1)
        scale = np.maximum(np.abs(bms), np.abs(ems))
        scale = np.maximum(scale, np.maximum(np.abs(ss_cols), np.abs(ss_total - ss_rows) / n))
        den = bms + ems
        icc = (bms - ems) / den
    undefined = (n < 2) | ~(den > 1e-12 * scale) | (scale == 0) | ~np.isfinite(icc)
    return np.where(undefined, np.nan, icc)


def mae_from_sums(sums: np.ndarray) -> np.ndarray:
    n = sums[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, sums[..., 6] / n, np.nan)


def average_over_aus(values: np.ndarray) -> np.ndarray:
    """Mean over the last axis (AUs) of the finite entries, as metrics.evaluate averages."""
    finite = np.isfinite(values)
    count = finite.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.where(finite, values, 0.0).sum(-1) / count, np.nan)


def draw_counts(rng: np.random.Generator, subjects_per_seed: list[int], replicates: int):
    """The draws of `replicates` bootstrap replicates: (seed choice (R, K), subject counts [(R, K, S_k)
    per seed k]): for replicate r, slot j uses seed choice[r, j], whose subjects are drawn
    counts[choice[r, j]][r, j] times each."""
    K = len(subjects_per_seed)
    if K < 1 or min(subjects_per_seed) < 1:
        raise ValueError(f"bootstrap needs at least one seed with test subjects, got {subjects_per_seed}")
    choice = rng.integers(0, K, size=(replicates, K))
    counts = [np.stack([np.bincount(row, minlength=S) for row in
                        rng.integers(0, S, size=(replicates * K, S))]).reshape(replicates, K, S)
              for S in subjects_per_seed]
    return choice, counts


def replicate_statistics(sums_by_seed: list[np.ndarray], draws) -> tuple[np.ndarray, np.ndarray]:
    """(average ICC (R,), average MAE (R,)) of one model for each replicate of `draws`;
    sums_by_seed[k]: that model's subject sums (S_k, Q, len(SUMS)) on seed k."""
    choice, counts = draws
    R, K = choice.shape
    icc, mae = np.zeros(R), np.zeros(R)
    for k, sums in enumerate(sums_by_seed):
        resampled = np.einsum("rjs,sqc->rjqc", counts[k], sums)          # (R, K, Q, C): every slot
        picked = choice == k                                              # (R, K) slots that use seed k
        icc += np.where(picked, average_over_aus(icc_from_sums(resampled)), 0.0).sum(1)
        mae += np.where(picked, average_over_aus(mae_from_sums(resampled)), 0.0).sum(1)
    return icc / K, mae / K


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central `level` percentile interval of bootstrap replicates (NaN replicates ignored)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_models(sums: dict, replicates: int = 2000, seed: int = 0) -> dict:
    """{model: {"icc": (R,), "mae": (R,)}} replicates of every model with shared draws.
    `sums`: {model: [subject sums of seed k, ...]}, every model with the same seeds and subjects."""
    models = list(sums)
    if not models:
        raise ValueError("bootstrap_models: no models")
    shapes = [[s.shape[0] for s in sums[m]] for m in models]
    if any(shape != shapes[0] for shape in shapes):
        raise ValueError(f"bootstrap_models: every model needs the same seeds and test subjects, got "
                         f"{dict(zip(models, shapes))}")
    draws = draw_counts(np.random.default_rng(seed), shapes[0], replicates)
    out = {}
    for model in models:
        icc, mae = replicate_statistics(sums[model], draws)
        out[model] = {"icc": icc, "mae": mae}
    return out
