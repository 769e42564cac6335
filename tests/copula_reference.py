"""Independent references for the copula ops, used by the tests and the benchmark.

Two kinds, both written without looking at the kernels' formulas for the pairwise terms:

* Pure PyTorch, vectorised, any dtype, differentiable by autograd: the Frank copula by the
  stable closed forms of docs/design.md section 3.2 (plus their theta ~ 0 series), ordinal log-masses by
  scipy's `_log_gauss_mass` cases, and pair probabilities by the textbook four-term difference
  P(a, b) = C(u1, v1) - C(u0, v1) - C(u1, v0) + C(u0, v0) with the floor before the log.
  The kernels compute pair probabilities in a product form instead (no four-term difference), so
  agreement is a real check. The four-term difference cancels when P is tiny, so comparisons with
  this reference use cells with P >= 1e-6 (float64).
* mpmath at 60 digits (`mp_*`), slow, for spot values at the extremes (theta = +-50, +-1e-6, 0;
  u, v at or 1e-8 from 0 and 1; tiny probabilities).
"""
import math

import mpmath
import torch

# Probabilities are floored at 1e-300 before the log (the value the ops document).
LOG_PROB_FLOOR = math.log(1e-300)

_LN2 = math.log(2.0)
_SERIES_SWITCH = {torch.float64: 3e-3, torch.float32: 0.15}


# ----------------------------------------------------------------------------------------------
# pure PyTorch
# ----------------------------------------------------------------------------------------------
def _log1mexp(x):
    """log(1 - exp(-x)) for x > 0 (Maechler's two branches)."""
    near = x <= _LN2
    x_near = torch.where(near, x, torch.full_like(x, 0.5))
    x_far = torch.where(near, torch.ones_like(x), x)
    return torch.where(near, torch.log(-torch.expm1(-x_near)), torch.log1p(-torch.exp(-x_far)))


def frank_copula(u, v, theta):
    """Frank copula C(u, v; theta), elementwise with broadcasting, differentiable in all three."""
    u, v, theta = torch.broadcast_tensors(u, v, theta)
    inside = (u > 0) & (u < 1) & (v > 0) & (v < 1)
    us = torch.where(inside, u, torch.full_like(u, 0.5))
    vs = torch.where(inside, v, torch.full_like(v, 0.5))

    small = theta.abs() < _SERIES_SWITCH[theta.dtype]
    t = torch.where(small, torch.ones_like(theta), theta)
    a = t.abs()
    lu, lv, l1 = _log1mexp(a * us), _log1mexp(a * vs), _log1mexp(a)
    L_pos = lu + lv - l1
    c_pos = -_log1mexp(-L_pos) / a
    L_neg = a * (us + vs - 1) + lu + lv - l1
    c_neg = torch.logaddexp(L_neg, torch.zeros_like(L_neg)) / a  # softplus without a cutoff
    closed = torch.where(t > 0, c_pos, c_neg)

    th = torch.where(small, theta, torch.zeros_like(theta))
    p, q = us * (1 - us), vs * (1 - vs)
    ab = (1 - 2 * us) * (1 - 2 * vs)
    series = us * vs + p * q * (
        th / 2 + th**2 * ab / 12 + th**3 * (6 * p * q - p - q) / 24
        + th**4 * ab * (36 * p * q - 3 * p - 3 * q - 1) / 720
    )
    c_inside = torch.where(small, series, closed)
    boundary = torch.where((u <= 0) | (v <= 0), torch.zeros_like(u), torch.where(u >= 1, v, u))
    return torch.where(inside, c_inside, boundary)


def cut_cdfs(z, link="probit"):
    """(B, Q, L-1) thresholds -> (B, Q, L+1) CDF values with 0 and 1 at the ends."""
    u = torch.special.ndtr(z) if link == "probit" else torch.sigmoid(z)
    return torch.cat([torch.zeros_like(u[..., :1]), u, torch.ones_like(u[..., :1])], dim=-1)


def _log_gauss_mass(a, b):
    """log(Phi(b) - Phi(a)) for finite a < b, scipy's three cases."""
    left, right = b <= 0, a > 0
    central = ~(left | right)
    log_ndtr = torch.special.log_ndtr

    def log_diff(hi, lo):  # log(exp(hi) - exp(lo)), hi > lo
        return hi + _log1mexp(hi - lo)

    al, bl = torch.where(left, a, a - 1), torch.where(left, b, torch.zeros_like(b) - 1)
    ar, br = torch.where(right, a, torch.ones_like(a)), torch.where(right, b, b + 1)
    ac, bc = torch.where(central, a, torch.zeros_like(a) - 1), torch.where(central, b, torch.ones_like(b))
    m_left = log_diff(log_ndtr(bl), log_ndtr(al))
    m_right = log_diff(log_ndtr(-ar), log_ndtr(-br))
    m_central = torch.log1p(-torch.special.ndtr(ac) - torch.special.ndtr(-bc))
    return torch.where(left, m_left, torch.where(right, m_right, m_central))


def ordinal_logprob(z, link="probit"):
    """(B, Q, L-1) -> (B, Q, L): log P(y = l), floored at 1e-300."""
    if link == "probit":
        first = torch.special.log_ndtr(z[..., :1])
        last = torch.special.log_ndtr(-z[..., -1:])
        middle = _log_gauss_mass(z[..., :-1], z[..., 1:])
    else:
        logsig = torch.nn.functional.logsigmoid
        first, last = logsig(z[..., :1]), logsig(-z[..., -1:])
        a, b = z[..., :-1], z[..., 1:]
        middle = logsig(a) + logsig(-b) + (b - a) + _log1mexp(b - a)  # log(sig(b) - sig(a))
    return torch.cat([first, middle, last], dim=-1).clamp_min(LOG_PROB_FLOOR)


def _theta_per_sample(theta, batch):
    return theta.expand(batch, -1) if theta.dim() == 1 else theta


def _log_floored(p):
    tiny = max(math.exp(LOG_PROB_FLOOR), torch.finfo(p.dtype).tiny)
    return torch.log(p.clamp_min(tiny)).clamp_min(LOG_PROB_FLOOR)


def pairwise_logtable(z, theta, edges, link="probit"):
    """(B, E, L, L) log P_e(a, b) by the four-term difference of the copula at the cut points."""
    cdf = cut_cdfs(z, link)
    r, s = edges[:, 0], edges[:, 1]
    th = _theta_per_sample(theta, z.shape[0])[:, :, None, None]
    C = frank_copula(cdf[:, r, :, None], cdf[:, s, None, :], th)  # (B, E, L+1, L+1)
    P = C[..., 1:, 1:] - C[..., :-1, 1:] - C[..., 1:, :-1] + C[..., :-1, :-1]
    return _log_floored(P)


def pairwise_loglik(z, theta, edges, labels, link="probit"):
    """(B, E) log P_e(labels[:, r], labels[:, s]); 0 where a label is -1."""
    cdf = cut_cdfs(z, link)
    r, s = edges[:, 0], edges[:, 1]
    a, b = labels[:, r], labels[:, s]
    missing = (a < 0) | (b < 0)
    a, b = a.clamp_min(0), b.clamp_min(0)
    ur, vs = cdf[:, r, :], cdf[:, s, :]  # (B, E, L+1)
    u0, u1 = ur.gather(2, a[..., None]), ur.gather(2, a[..., None] + 1)
    v0, v1 = vs.gather(2, b[..., None]), vs.gather(2, b[..., None] + 1)
    uu = torch.cat([u1, u0, u1, u0], dim=2)
    vv = torch.cat([v1, v1, v0, v0], dim=2)
    th = _theta_per_sample(theta, z.shape[0])[:, :, None]
    C = frank_copula(uu, vv, th)
    P = C[..., 0] - C[..., 1] - C[..., 2] + C[..., 3]
    return torch.where(missing, torch.zeros_like(P), _log_floored(P))


# ----------------------------------------------------------------------------------------------
# random problems for the tests
# ----------------------------------------------------------------------------------------------
def all_pairs(Q):
    """(Q(Q-1)/2, 2) int64: the fully connected edge set."""
    return torch.tensor([(r, s) for r in range(Q) for s in range(r + 1, Q)], dtype=torch.int64)


def random_thresholds(B, Q, L, dtype=torch.float64, seed=0, spread=2.0):
    """(B, Q, L-1) increasing thresholds: steps in [0.05, 1.05), centres N(0, spread^2)."""
    g = torch.Generator().manual_seed(seed)
    steps = 0.05 + torch.rand(B, Q, L - 1, generator=g, dtype=torch.float64)
    z = torch.cumsum(steps, -1) - steps.sum(-1, keepdim=True) / 2
    return (z + spread * torch.randn(B, Q, 1, generator=g, dtype=torch.float64)).to(dtype)


def random_labels(B, Q, L, seed=0, missing=0.15):
    """(B, Q) int64 levels, a fraction `missing` of them -1."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, L, (B, Q), generator=g)
    return torch.where(torch.rand(B, Q, generator=g) < missing, torch.full_like(labels, -1), labels)


# ----------------------------------------------------------------------------------------------
# mpmath, 60 significant digits
# ----------------------------------------------------------------------------------------------
MP_DPS = 60


def mp_frank(u, v, theta):
    """C(u, v; theta) at high precision (theta == 0: independence)."""
    with mpmath.workdps(MP_DPS):
        u, v, t = mpmath.mpf(u), mpmath.mpf(v), mpmath.mpf(theta)
        if t == 0:
            return u * v
        g = lambda x: mpmath.expm1(-t * x)  # noqa: E731
        return -mpmath.log1p(g(u) * g(v) / g(1)) / t


def mp_frank_grad(u, v, theta):
    """(dC/du, dC/dv, dC/dtheta) at high precision, by the closed-form derivatives."""
    with mpmath.workdps(MP_DPS):
        u, v, t = mpmath.mpf(u), mpmath.mpf(v), mpmath.mpf(theta)
        if t == 0:
            return v, u, u * (1 - u) * v * (1 - v) / 2
        e = lambda x: mpmath.exp(-t * x)  # noqa: E731
        g = lambda x: mpmath.expm1(-t * x)  # noqa: E731
        K = 1 + g(u) * g(v) / g(1)
        du = e(u) * g(v) / (g(1) * K)
        dv = e(v) * g(u) / (g(1) * K)
        # dK/dtheta with dg(x)/dtheta = -x e^{-theta x}
        dg = lambda x: -x * e(x)  # noqa: E731
        dK = (dg(u) * g(v) + g(u) * dg(v)) / g(1) - g(u) * g(v) * dg(1) / g(1) ** 2
        dt = mpmath.log(K) / t**2 - dK / (t * K)
        return du, dv, dt


def mp_ncdf(z, link="probit"):
    with mpmath.workdps(MP_DPS):
        z = mpmath.mpf(z)
        return mpmath.ncdf(z) if link == "probit" else 1 / (1 + mpmath.exp(-z))


def mp_cuts(zrow, link="probit"):
    """One AU's thresholds -> [0, F(z_1), ..., F(z_{L-1}), 1] as mpf."""
    return [mpmath.mpf(0)] + [mp_ncdf(float(z), link) for z in zrow] + [mpmath.mpf(1)]


def mp_cell(ur, vs, a, b, theta):
    """P(a, b) from two lists of mpf cut CDFs, by the four-term difference at 60 digits."""
    with mpmath.workdps(MP_DPS):
        C = lambda x, y: mp_frank(x, y, theta)  # noqa: E731
        return C(ur[a + 1], vs[b + 1]) - C(ur[a], vs[b + 1]) - C(ur[a + 1], vs[b]) + C(ur[a], vs[b])
