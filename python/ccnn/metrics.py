"""Evaluation metrics for AU intensity estimation: ICC (Shrout & Fleiss) and MAE, per AU and averaged.

Labels use -1 for "not annotated"; every metric here skips those entries (per AU).
"""
from __future__ import annotations

import math

import numpy as np

_ICC_KINDS = ("1,1", "2,1", "3,1", "1,k", "2,k", "3,k")


def _mean_squares(ratings: np.ndarray):
    """Two-way ANOVA mean squares of an n x k ratings matrix (targets x raters)."""
    n, k = ratings.shape
    grand = ratings.mean()
    ss_total = ((ratings - grand) ** 2).sum()
    ss_rows = k * ((ratings.mean(axis=1) - grand) ** 2).sum()
    ss_cols = n * ((ratings.mean(axis=0) - grand) ** 2).sum()
    bms = ss_rows / (n - 1)                                 # between targets
    jms = ss_cols / (k - 1)                                 # between raters (judges)
    ems = (ss_total - ss_rows - ss_cols) / ((n - 1) * (k - 1))  # residual
    wms = (ss_total - ss_rows) / (n * (k - 1))              # within targets
    return bms, jms, ems, wms


def icc(ratings, kind: str = "3,1") -> float:
    """Intra-class correlation of an n x k ratings matrix (n targets, k raters), Shrout & Fleiss (1979).

    kind: "1,1", "2,1", "3,1" (single measure) or "1,k", "2,k", "3,k" (average of the k raters).
    ICC(3,1), the default, is the two-way mixed, consistency, single-measure coefficient used for AU
    intensity. Returns NaN when the coefficient is undefined (all ratings identical).
    """
    if kind not in _ICC_KINDS:
        raise ValueError(f"icc: kind must be one of {_ICC_KINDS}, got {kind!r}")
    x = np.asarray(ratings, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2:
        raise ValueError(f"icc: ratings must be an n x k matrix with n >= 2 and k >= 2, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("icc: ratings must be finite")
    n, k = x.shape
    bms, jms, ems, wms = _mean_squares(x)
    model, form = kind.split(",")
    if model == "1":
        num, den = bms - wms, bms + (k - 1) * wms
        if form == "k":
            den = bms
    elif model == "2":
        num, den = bms - ems, bms + (k - 1) * ems + k * (jms - ems) / n
        if form == "k":
            den = bms + (jms - ems) / n
    else:
        num, den = bms - ems, bms + (k - 1) * ems
        if form == "k":
            den = bms
    scale = max(abs(bms), abs(jms), abs(ems), abs(wms))
    if den <= 1e-12 * scale or scale == 0.0:
        return math.nan
    return float(num / den)


def _paired(y_true, y_pred, name):
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if t.shape != p.shape:
        raise ValueError(f"{name}: y_true and y_pred must have the same shape, got {t.shape} and {p.shape}")
    if t.ndim not in (1, 2):
        raise ValueError(f"{name}: expected (N,) or (N, Q) arrays, got shape {t.shape}")
    bad = np.argwhere(_observed(t) & ~np.isfinite(p))
    if bad.size:
        index = tuple(int(i) for i in bad[0])
        raise ValueError(f"{name}: y_pred must be finite where y_true is annotated; "
                         f"y_pred[{', '.join(map(str, index))}] is {p[index]}")
    return t, p


def _observed(t):
    """Mask of annotated entries: -1 (and NaN) in the ground truth mean 'missing'."""
    return np.isfinite(t) & (t != -1)


def icc31(y_true, y_pred):
    """ICC(3,1) between ground truth and prediction (two raters), skipping missing (-1) labels.

    (N,) inputs give a float; (N, Q) inputs give a (Q,) array, one ICC per AU (column).
    An AU with fewer than two annotated samples, or a constant ground truth and prediction, gives NaN.
    """
    t, p = _paired(y_true, y_pred, "icc31")
    if t.ndim == 2:
        return np.array([icc31(t[:, q], p[:, q]) for q in range(t.shape[1])])
    keep = _observed(t)
    if keep.sum() < 2:
        return math.nan
    return icc(np.stack([t[keep], p[keep]], axis=1), "3,1")


def mae(y_true, y_pred):
    """Mean absolute error skipping missing (-1) labels; (N, Q) inputs give a (Q,) array."""
    t, p = _paired(y_true, y_pred, "mae")
    if t.ndim == 2:
        return np.array([mae(t[:, q], p[:, q]) for q in range(t.shape[1])])
    keep = _observed(t)
    if not keep.any():
        return math.nan
    return float(np.abs(t[keep] - p[keep]).mean())


def au_name(au: int) -> str:
    """OpenFace-style AU name, e.g. 1 -> 'AU01'."""
    return f"AU{int(au):02d}"


def evaluate(y_true, y_pred, aus) -> dict:
    """ICC(3,1) and MAE per AU and averaged (over the AUs where they are defined).

    Returns {"icc_avg": float, "mae_avg": float, "per_au": {"AU01": {"icc": .., "mae": .., "n": ..}}}.
    """
    t, p = _paired(y_true, y_pred, "evaluate")
    if t.ndim != 2 or t.shape[1] != len(aus):
        raise ValueError(f"evaluate: expected (N, {len(aus)}) arrays for aus={list(aus)}, got {t.shape}")
    iccs, maes = icc31(t, p), mae(t, p)
    per_au = {
        au_name(au): {"icc": float(iccs[q]), "mae": float(maes[q]), "n": int(_observed(t[:, q]).sum())}
        for q, au in enumerate(aus)
    }
    return {
        "icc_avg": _nanmean(iccs),
        "mae_avg": _nanmean(maes),
        "per_au": per_au,
    }


def _nanmean(values) -> float:
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else math.nan
