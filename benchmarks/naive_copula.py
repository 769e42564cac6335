"""Baselines for the copula ops: what a user would write without ccnn, and a high-precision truth.

Two parts, importable by the benchmark and by the tests (``sys.path`` needs ``benchmarks/``):

* ``naive_*``: the plain PyTorch functions a user writes from the textbook formulas, about ten
  lines each, no care for cancellation: the marginal CDF at the thresholds (``torch.special.ndtr``
  for probit, ``torch.sigmoid`` for logit) padded with 0 and 1, the Frank copula by
  C(u, v) = -1/theta * log1p(expm1(-theta u) expm1(-theta v) / expm1(-theta)), the rectangle
  probability P = C(u1, v1) - C(u0, v1) - C(u1, v0) + C(u0, v0), and log(max(P, tiny)). These are
  the functions the benchmark times in eager mode and under ``torch.compile``; theta = 0 gives
  NaN (a user would not special-case it either; the benchmark's theta are never 0).
* ``mp_*``: an mpmath reference for log P of a label pair, written independently of the kernels.
  It uses the subtraction-free rectangle form
  P = -(1/theta) log1p(c (a1 - a0)(b1 - b0) / ((c + a0 b1)(c + a1 b0))),
  a_i = expm1(-theta u_i), b_j = expm1(-theta v_j), c = expm1(-theta), and chooses its working
  precision by evaluating at two precisions until they agree (so large theta and tiny masses,
  where the cancellation eats digits, get more of them). ``mp_pair_logprob`` is accurate to about
  ``target`` significant digits (default 30).
"""
import math

import mpmath
import torch


# ------------------------------------------------------------------------------------------------
# naive PyTorch
# ------------------------------------------------------------------------------------------------
def _cdf(z, link):
    u = torch.special.ndtr(z) if link == "probit" else torch.sigmoid(z)
    return torch.cat([torch.zeros_like(u[..., :1]), u, torch.ones_like(u[..., :1])], dim=-1)


def _frank(u, v, theta):
    return -torch.log1p(torch.expm1(-theta * u) * torch.expm1(-theta * v) / torch.expm1(-theta)) / theta


def _log(p):
    return torch.log(p.clamp_min(torch.finfo(p.dtype).tiny))


def naive_pairwise_loglik(z, theta, edges, labels, link: str = "probit"):
    """(B, E) log P(labels of r, labels of s) by the textbook four-term difference; 0 if missing."""
    cdf = _cdf(z, link)                                   # (B, Q, L+1)
    r, s = edges[:, 0], edges[:, 1]
    a, b = labels[:, r], labels[:, s]                     # (B, E)
    missing = (a < 0) | (b < 0)
    a, b = a.clamp_min(0).unsqueeze(-1), b.clamp_min(0).unsqueeze(-1)
    cr, cs = cdf[:, r], cdf[:, s]                         # (B, E, L+1)
    u0, u1 = cr.gather(2, a).squeeze(-1), cr.gather(2, a + 1).squeeze(-1)
    v0, v1 = cs.gather(2, b).squeeze(-1), cs.gather(2, b + 1).squeeze(-1)
    th = theta.expand(z.shape[0], -1) if theta.dim() == 1 else theta
    P = _frank(u1, v1, th) - _frank(u0, v1, th) - _frank(u1, v0, th) + _frank(u0, v0, th)
    return torch.where(missing, torch.zeros_like(P), _log(P))


def naive_pairwise_logtable(z, theta, edges, link: str = "probit"):
    """(B, E, L, L) log P(a, b) for every cell, the four-term difference on the corner grid."""
    cdf = _cdf(z, link)
    r, s = edges[:, 0], edges[:, 1]
    th = (theta.expand(z.shape[0], -1) if theta.dim() == 1 else theta)[..., None, None]
    C = _frank(cdf[:, r, :, None], cdf[:, s, None, :], th)   # (B, E, L+1, L+1)
    P = C[..., 1:, 1:] - C[..., :-1, 1:] - C[..., 1:, :-1] + C[..., :-1, :-1]
    return _log(P)


def naive_ordinal_logprob(z, link: str = "probit"):
    """(B, Q, L) log(F(z_l) - F(z_{l-1}))."""
    cdf = _cdf(z, link)
    return _log(cdf[..., 1:] - cdf[..., :-1])


# ------------------------------------------------------------------------------------------------
# mpmath truth
# ------------------------------------------------------------------------------------------------
LOG10E = math.log10(math.e)


def mp_cdf(z, link):
    """F(z) and 1 - F(z) as mpf at the current precision (z an exact float or mpf)."""
    z = mpmath.mpf(z)
    if link == "probit":
        return mpmath.ncdf(z), mpmath.ncdf(-z)
    return 1 / (1 + mpmath.exp(-z)), 1 / (1 + mpmath.exp(z))


def mp_cuts(zrow, link):
    """[(F, 1-F)] at the cut points -inf, z_1, ..., z_{L-1}, +inf."""
    one, zero = mpmath.mpf(1), mpmath.mpf(0)
    return [(zero, one)] + [mp_cdf(z, link) for z in zrow] + [(one, zero)]


def mp_level_mass(lo, hi):
    """F(hi) - F(lo) from two (F, 1-F) pairs, taking the difference on the side with less
    cancellation (mpmath has no overflow or underflow, only finite precision)."""
    return hi[0] - lo[0] if hi[0] <= mpmath.mpf(0.5) else lo[1] - hi[1]


def mp_rectangle(cu0, cu1, cv0, cv1, theta):
    """P(u0 < U <= u1, v0 < V <= v1) under Frank(theta), subtraction-free up to the a1 - a0 terms
    (cu*, cv*: (F, 1-F) pairs at the cell's corners)."""
    t = mpmath.mpf(theta)
    mu = mp_level_mass(cu0, cu1)
    mv = mp_level_mass(cv0, cv1)
    if t == 0:
        return mu * mv
    u0, u1, v0, v1 = cu0[0], cu1[0], cv0[0], cv1[0]
    a0, a1 = mpmath.expm1(-t * u0), mpmath.expm1(-t * u1)
    b0, b1 = mpmath.expm1(-t * v0), mpmath.expm1(-t * v1)
    da = mpmath.exp(-t * u0) * mpmath.expm1(-t * mu)   # a1 - a0 without the subtraction
    db = mpmath.exp(-t * v0) * mpmath.expm1(-t * mv)
    c = mpmath.expm1(-t)
    return -mpmath.log1p(c * da * db / ((c + a0 * b1) * (c + a1 * b0))) / t


def mp_frank(u, v, theta):
    """C(u, v; theta) by the textbook formula at the current precision (theta = 0: uv)."""
    u, v, t = mpmath.mpf(u), mpmath.mpf(v), mpmath.mpf(theta)
    if t == 0:
        return u * v
    return -mpmath.log1p(mpmath.expm1(-t * u) * mpmath.expm1(-t * v) / mpmath.expm1(-t)) / t


def base_dps(theta, target=30):
    """A first guess of the digits needed: the target plus what e^{-|theta|} costs."""
    return int(target + 10 + LOG10E * abs(float(theta)))


def adaptive(f, dps, target=30, max_dps=4000):
    """f() evaluated at increasing precision until two precisions agree to `target` digits;
    returns (value, dps that gave it). f must read the precision from mpmath.mp."""
    with mpmath.workdps(dps):
        prev = f()
    while True:
        dps2 = int(dps * 1.5) + 20
        with mpmath.workdps(dps2):
            cur = f()
        if cur == prev or abs(cur - prev) <= mpmath.mpf(10) ** (-target) * abs(cur):
            return cur, dps2
        if dps2 > max_dps:
            raise ArithmeticError(f"no agreement up to {dps2} digits: {prev} vs {cur}")
        prev, dps = cur, dps2


def mp_pair_logprob(zr, zs, a, b, theta, link, target=30):
    """log P(y_r = a, y_s = b) for thresholds zr, zs (sequences of floats), as mpf (the exact
    value of the model at exactly these floating-point inputs)."""
    def f():
        cr, cs = mp_cuts(zr, link), mp_cuts(zs, link)
        return mpmath.log(mp_rectangle(cr[a], cr[a + 1], cs[b], cs[b + 1], theta))
    return adaptive(f, base_dps(theta, target), target)[0]
