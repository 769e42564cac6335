"""Independent float64 references for the trainer's tests: ordinal probit and Frank copula probabilities
by their textbook formulas, and brute-force MAP decoding. They double as stand-ins for the
`ccnn_ext` ops while those are not built yet (`install_standins`); nothing here ships in ccnn."""
import itertools
from types import SimpleNamespace

import numpy as np
import torch


def ordinal_logprob(z, link="probit"):
    """(B, Q, L-1) -> (B, Q, L): log(Phi(b) - Phi(a)) for consecutive cut points a < b, in float64:
    log Phi(b) + log(1 - Phi(a)/Phi(b)), mirrored (Phi(-a) - Phi(-b)) when a > 0."""
    zd = z.double()
    inf = torch.full_like(zd[..., :1], float("inf"))
    a = torch.cat([-inf, zd], dim=-1)
    b = torch.cat([zd, inf], dim=-1)
    upper = a > 0
    lo = torch.where(upper, -b, a)
    hi = torch.where(upper, -a, b)
    log_hi, log_lo = torch.special.log_ndtr(hi), torch.special.log_ndtr(lo)
    out = log_hi + torch.log(-torch.expm1((log_lo - log_hi).clamp_max(-1e-300)))
    return out.to(z.dtype)


def frank_cdf(u, v, theta):
    """Frank copula C(u, v) by the paper's Eq. 9; the independence copula uv plus its first-order term
    near theta = 0."""
    small = theta.abs() < 1e-6
    t = torch.where(small, torch.ones_like(theta), theta)
    c = -torch.log1p(torch.expm1(-t * u) * torch.expm1(-t * v) / torch.expm1(-t)) / t
    series = u * v + theta / 2 * u * (1 - u) * v * (1 - v)
    return torch.where(small, series, c)


def pairwise_logtable(z, theta, edges, link="probit"):
    """(B, E, L, L) log P_e(a, b) by inclusion-exclusion of the copula at the cut points (float64)."""
    dtype, z = z.dtype, z.double()
    B = z.shape[0]
    u = torch.special.ndtr(z)
    cdf = torch.cat([torch.zeros_like(u[..., :1]), u, torch.ones_like(u[..., :1])], dim=-1)  # (B,Q,L+1)
    theta = torch.as_tensor(theta, dtype=z.dtype)
    if theta.dim() == 1:
        theta = theta.expand(B, -1)
    r, s = edges[:, 0], edges[:, 1]
    ur = cdf[:, r, :, None]   # (B, E, L+1, 1)
    vs = cdf[:, s, None, :]   # (B, E, 1, L+1)
    C = frank_cdf(ur, vs, theta[:, :, None, None])
    P = C[..., 1:, 1:] - C[..., :-1, 1:] - C[..., 1:, :-1] + C[..., :-1, :-1]
    return torch.log(P.clamp_min(1e-300)).to(dtype)


def pairwise_loglik(z, theta, edges, labels, link="probit"):
    table = pairwise_logtable(z, theta, edges)
    L = table.shape[-1]
    r, s = edges[:, 0], edges[:, 1]
    a, b = labels[:, r], labels[:, s]
    observed = (a >= 0) & (b >= 0)
    pick = table.flatten(2).gather(2, (a.clamp_min(0) * L + b.clamp_min(0)).unsqueeze(-1)).squeeze(-1)
    return torch.where(observed, pick, torch.zeros_like(pick))


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


def _decode_exact(unary, pairwise, edges, **_):
    unary = np.asarray(unary, dtype=np.float64)
    pairwise = np.asarray(pairwise, dtype=np.float64)
    edges = np.asarray(edges)
    B = unary.shape[0]
    if pairwise.ndim == 3:
        pairwise = np.broadcast_to(pairwise, (B,) + pairwise.shape)
    labels, scores = zip(*(brute_force_map(unary[b], pairwise[b], edges) for b in range(B)))
    return SimpleNamespace(labels=np.stack(labels).astype(np.int64), score=np.array(scores),
                           bound=np.array(scores), status=np.zeros(B, dtype=np.int64),
                           iterations=np.zeros(B, dtype=np.int64))


def install_standins(monkeypatch):
    """Put the references in place of the `ccnn_ext` ops that this build does not have yet."""
    import ccnn_ext

    for name, fn in [("ordinal_logprob", ordinal_logprob), ("pairwise_logtable", pairwise_logtable),
                     ("pairwise_loglik", pairwise_loglik), ("decode_exact", _decode_exact),
                     ("decode_ad3", _decode_exact)]:
        if not hasattr(ccnn_ext, name):
            monkeypatch.setattr(ccnn_ext, name, fn, raising=False)
