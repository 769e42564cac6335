"""Accuracy of the copula ops against an independent mpmath truth (issue 9).

The truth
---------
Written from the model's definition, not from the kernels: the marginal CDF F (probit: the
standard normal CDF, logit: the logistic CDF) at the exact floating-point thresholds, the Frank
copula by its textbook formula C(u, v) = -1/theta log1p(expm1(-theta u) expm1(-theta v) /
expm1(-theta)), the rectangle probability by the textbook four-term difference
P = C(u1, v1) - C(u0, v1) - C(u1, v0) + C(u0, v0), level masses by F(z_l) - F(z_{l-1}).
These forms cancel (for large |theta| and tiny P, many digits), so every value is evaluated at a
working precision that is raised until two precisions 30 digits apart agree to 60 significant
digits (never below 60 digits); `mp_adaptive`. Derivatives are central finite differences in
mpmath with step 1e-20 (truncation ~1e-40 relative), at a precision raised until two precisions
agree to 25 digits on every component (a derivative far smaller than value / step needs more
digits than the value); second derivatives (for the scales below) by the 4-point stencil with
step 1e-12 at that precision. Thresholds and theta of the grid are binary fractions, exact in
float32, so both dtypes are checked against one truth (2^-13 and 2^-7 stand for 1e-4 and 1e-2).

The reference itself is checked on known values: independence at theta -> 0, the Frechet bounds
as theta -> +-inf, the symmetry C(u, v) = C(v, u), the radial symmetry
C(u, v) = u + v - 1 + C(1 - u, 1 - v), and agreement with the subtraction-free rectangle form of
benchmarks/naive_copula.py (a second, differently written mpmath formula).

Inputs of float32 cases are rounded to float32 first; the truth is the model at those inputs, so
the errors measured are the op's own.

Criteria (issue 9, "Done when")
-------------------------------
* log P values: float64 |err| <= 1e-12 * scale; float32 |err| <= 1e-5 absolute where log P >= -30,
  and <= 1e-6 * scale below (an absolute 1e-5 is under float32's resolution of such log P).
* gradients (with respect to each threshold and theta): float64 |err| <= 1e-8 * scale, float32
  |err| <= 1e-3 * scale, for |theta| up to the cap, on high-mass, medium and tiny cells.
* frank_copula: C like the log-values (1e-12 / 1e-5 relative to scale), dC/d(u, v, theta) like
  the gradients.

"scale" of a quantity g(x) computed from inputs x_1..x_n (thresholds, theta; u, v) is
    scale(g) = max(|g|, sum_j max(|x_j|, 1) |dg/dx_j|),
the mixed condition number of g times |g|: how much g moves when every input moves by one unit
in its last place, divided by the unit roundoff (relative perturbations, absolute ones for inputs
below 1 in magnitude). No algorithm working in the op's precision can do better than
~eps * scale, so the criteria ask for results within 1e-8 (float64) and 1e-3 (float32) of the
best achievable, without a floor tuned to the current kernels. For a gradient the dg/dx_j are
second derivatives of log P, computed in mpmath like the first.

Cells with a true log P below the ops' floor log(1e-300) must return the floor and a zero
gradient (the documented contract). theta beyond the cap kThetaMaxDouble = 500: value and
z-gradient of theta = +-500, theta-gradient 0.

The grid is cached per parameter set in this module (the mpmath work is the test's cost).
Nothing is xfail: failures on the current kernels are the acceptance check of the fix.
"""
import functools
import math
import os
import sys

import mpmath
import pytest
import torch

import ccnn_ext

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
import naive_copula  # noqa: E402

FLOOR = math.log(1e-300)
THETA_CAP = 500.0
LOG10E = math.log10(math.e)
TOL_GRAD = {torch.float64: 1e-8, torch.float32: 1e-3}
TOL_VALUE_REL = {torch.float64: 1e-12, torch.float32: 1e-6}
TOL_VALUE_ABS32 = 1e-5
TRUSTED_LOGP = -30.0
FD_STEP = mpmath.mpf("1e-20")
FD2_STEP = mpmath.mpf("1e-12")

# binary fractions (exact in float32, so both dtypes share one truth); 2^-13 ~ 1e-4, 2^-7 ~ 1e-2
MAGNITUDES = [2.0**-13, 2.0**-7, 0.5, 2.0, 8.0, 20.0, 30.0, 49.0, 100.0, 200.0, 450.0, 499.0]  # 499: at the cap
THETAS = [s * m for m in MAGNITUDES for s in (1, -1)]
TABLE_THETAS = [2.0**-13, 2.0, -2.0, 30.0, -30.0, -40.0, 100.0, -100.0, 450.0]  # -40: float32 in double lanes
LINKS = ["probit", "logit"]
DTYPES = [torch.float64, torch.float32]

REPRO = (1.5, 2.0, 2.5, 3.0, 3.5)        # the issue's reproducer
OFFDIAG = (1.25, 1.875, 2.375, 3.125, 3.625)   # binary fractions, exact in float32
MEDIUM_R = (-1.0, -0.375, 0.125, 0.75, 1.25)
MEDIUM_S = (-0.8125, -0.1875, 0.3125, 0.875, 1.625)


def cells_for(theta):
    """(name, zr, zs, a, b): high mass (the reproducer and an off-diagonal variant), medium, tiny
    (the rare pair against the sign of theta)."""
    tiny = (5, 0) if theta > 0 else (5, 5)
    return [
        ("high", REPRO, REPRO, 0, 0),
        ("high-offdiag", REPRO, OFFDIAG, 0, 0),
        ("medium", MEDIUM_R, MEDIUM_S, 2, 2),
        ("tiny", REPRO, REPRO) + tiny,
    ]


# ------------------------------------------------------------------------------------------------
# mpmath truth
# ------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1 << 16)
def _mp_F(z, link, prec):
    return mpmath.ncdf(z) if link == "probit" else 1 / (1 + mpmath.exp(-z))


def mp_F(z, link):
    """The marginal CDF at the current precision (cached: finite differences move one input)."""
    return _mp_F(mpmath.mpf(z), link, mpmath.mp.prec)


def mp_C(u, v, t):
    if t == 0:
        return u * v
    return -mpmath.log1p(mpmath.expm1(-t * u) * mpmath.expm1(-t * v) / mpmath.expm1(-t)) / t


def mp_adaptive(f, dps, digits=60):
    """f() at increasing precision until two evaluations 30 digits apart agree to `digits`
    significant digits; returns (value, dps). f reads the precision from mpmath.mp."""
    dps = max(int(dps), digits)
    with mpmath.workdps(dps):
        prev = f()
    while True:
        nxt = dps + 30 + dps // 4
        with mpmath.workdps(nxt):
            cur = f()
        if cur == prev or abs(cur - prev) <= mpmath.mpf(10) ** (-digits) * abs(cur):
            return cur, nxt
        if nxt > 5000:
            raise ArithmeticError("mpmath reference did not converge")
        prev, dps = cur, nxt


def _fd_grad(f, x, h):
    out = []
    for i in range(len(x)):
        xp, xm = list(x), list(x)
        xp[i] += h
        xm[i] -= h
        out.append((f(xp) - f(xm)) / (2 * h))
    return out


def fd_grad_hess(f, x, dps):
    """f(x) for a list of floats x, its central-difference gradient (raising the precision from
    dps until two precisions agree to 25 digits on every component: a derivative far smaller
    than f / step needs more digits than f) and the conditioning sums
    cond_i = sum_j max(|x_j|, 1) |d2f/dx_i dx_j|, cond0 = sum_j max(|x_j|, 1) |df/dx_j|."""
    n = len(x)
    prev = None
    while True:
        with mpmath.workdps(dps):
            xm = [mpmath.mpf(v) for v in x]
            grad = _fd_grad(f, xm, FD_STEP)
        # a component that is exactly 0 is inconclusive (the step's effect is below the
        # precision: a derivative ~1e-300 of a log-probability ~-40): raise the precision
        zero = any(g == 0 for g in grad) and dps < 1500
        if prev is not None and not zero and all(a == b or abs(a - b) <= mpmath.mpf(10) ** -25 * abs(b)
                                                 for a, b in zip(prev, grad)):
            break
        if dps > 5000:
            raise ArithmeticError("finite differences did not converge")
        prev, dps = grad, dps + 40 + dps // 4
    with mpmath.workdps(dps):
        xm = [mpmath.mpf(v) for v in x]
        w = [max(abs(v), 1) for v in xm]
        val = f(xm)
        k = FD2_STEP

        def at(*shifts):
            y = list(xm)
            for j, hh in shifts:
                y[j] += hh
            return f(y)

        H = [[None] * n for _ in range(n)]
        for i in range(n):
            for j in range(i, n):
                if i == j:
                    H[i][i] = (at((i, k)) - 2 * val + at((i, -k))) / (k * k)
                else:
                    H[i][j] = H[j][i] = (at((i, k), (j, k)) - at((i, k), (j, -k))
                                         - at((i, -k), (j, k)) + at((i, -k), (j, -k))) / (4 * k * k)
        cond0 = sum(w[j] * abs(grad[j]) for j in range(n))
        cond = [sum(w[j] * abs(H[i][j]) for j in range(n)) for i in range(n)]
        return float(val), [float(g) for g in grad], float(cond0), [float(c) for c in cond]


def _dps_guess(theta):
    # the textbook forms lose ~|theta| log10(e) digits in 1 + ab/c and as much again in the
    # four-term difference of a cell of mass ~e^{-|theta|}; mp_adaptive confirms or raises it
    return 60 + LOG10E * min(abs(theta), THETA_CAP)


@functools.lru_cache(maxsize=None)
def truth_cell(zr, zs, a, b, theta, link):
    """log P(y_r = a, y_s = b) at exactly these float inputs (theta capped like the ops), the
    gradient with respect to (thresholds that bound the cell ..., theta) and the scales.

    Returns dict(value, scale_value, grads: {("r", k) | ("s", k) | "theta": (g, scale)})."""
    theta_c = max(-THETA_CAP, min(THETA_CAP, theta))
    # the inputs the cell depends on
    keys, x0 = [], []
    for side, zrow, lab in (("r", zr, a), ("s", zs, b)):
        for k in (lab - 1, lab):
            if 0 <= k < len(zrow):
                keys.append((side, k))
                x0.append(zrow[k])
    keys.append("theta")
    x0.append(theta_c)

    def logp(x):
        zr_, zs_ = list(zr), list(zs)
        for key, v in zip(keys, x):
            if key == "theta":
                t = v
            elif key[0] == "r":
                zr_[key[1]] = v
            else:
                zs_[key[1]] = v
        ur = [mpmath.mpf(0)] + [mp_F(z, link) for z in zr_] + [mpmath.mpf(1)]
        us = [mpmath.mpf(0)] + [mp_F(z, link) for z in zs_] + [mpmath.mpf(1)]
        P = (mp_C(ur[a + 1], us[b + 1], t) - mp_C(ur[a], us[b + 1], t)
             - mp_C(ur[a + 1], us[b], t) + mp_C(ur[a], us[b], t))
        return mpmath.log(P)

    _, dps = mp_adaptive(lambda: logp([mpmath.mpf(v) for v in x0]), _dps_guess(theta_c))
    val, grad, cond0, cond = fd_grad_hess(logp, x0, dps + 40)
    grads = {key: (g, max(abs(g), c)) for key, g, c in zip(keys, grad, cond)}
    if abs(theta) > THETA_CAP:
        grads["theta"] = (0.0, grads["theta"][1])
    return {"value": val, "scale_value": max(abs(val), cond0), "grads": grads}


@functools.lru_cache(maxsize=None)
def truth_level(zrow, level, link):
    """log P(y = level) of one AU, d/dz of its bounding thresholds, scales."""
    keys = [k for k in (level - 1, level) if 0 <= k < len(zrow)]
    x0 = [zrow[k] for k in keys]

    def logp(x):
        lo = hi = None
        for k, v in zip(keys, x):
            if k == level - 1:
                lo = v
            else:
                hi = v
        # the difference on the side where both CDFs are small (mpmath has no underflow)
        if hi is not None and (lo is None or hi <= 0):
            m = mp_F(hi, link) - (mp_F(lo, link) if lo is not None else 0)
        else:
            m = mp_F(-lo, link) - (mp_F(-hi, link) if hi is not None else 0)
        return mpmath.log(m)

    gap = min([abs(x0[1] - x0[0])] if len(x0) == 2 else [1.0])
    _, dps = mp_adaptive(lambda: logp([mpmath.mpf(v) for v in x0]), 60 - math.log10(max(gap, 1e-300)))
    val, grad, cond0, cond = fd_grad_hess(logp, x0, dps + 40)
    return {"value": val, "scale_value": max(abs(val), cond0),
            "grads": {k: (g, max(abs(g), c)) for k, g, c in zip(keys, grad, cond)}}


@functools.lru_cache(maxsize=None)
def truth_frank(u, v, theta):
    def C(x):
        return mp_C(x[0], x[1], x[2])

    _, dps = mp_adaptive(lambda: C([mpmath.mpf(u), mpmath.mpf(v), mpmath.mpf(theta)]),
                         60 + LOG10E * abs(theta))
    val, grad, cond0, cond = fd_grad_hess(C, [u, v, theta], dps + 40)
    return {"value": val, "scale_value": max(abs(val), cond0),
            "grads": [(g, max(abs(g), c)) for g, c in zip(grad, cond)]}


# ------------------------------------------------------------------------------------------------
# the reference on known values
# ------------------------------------------------------------------------------------------------
def test_reference_known_values():
    with mpmath.workdps(80):
        u, v = mpmath.mpf("0.3"), mpmath.mpf("0.8")
        # independence as theta -> 0 (C = uv + theta uv(1-u)(1-v)/2 + O(theta^2))
        t = mpmath.mpf("1e-30")
        assert abs(mp_C(u, v, t) - u * v) < 1e-29
        # symmetry and radial symmetry
        for t in (mpmath.mpf("0.5"), mpmath.mpf(-7), mpmath.mpf(40)):
            assert abs(mp_C(u, v, t) - mp_C(v, u, t)) < 1e-70
            assert abs(mp_C(u, v, t) - (u + v - 1 + mp_C(1 - u, 1 - v, t))) < 1e-70
    # Frechet bounds as theta -> +-inf (the gap closes like log(2)/theta on the diagonal)
    with mpmath.workdps(60 + int(LOG10E * 2000)):
        assert abs(mp_C(u, v, mpmath.mpf(2000)) - min(u, v)) < 1e-100
        # theta -> -inf: C - (u + v - 1) ~ e^{-|theta| (u + v - 1)} / |theta| (~7e-91 here)
        gap = mp_C(u, v, mpmath.mpf(-2000)) - max(u + v - 1, 0)
        assert 0 < gap and abs(gap / (mpmath.exp(-2000 * (u + v - 1)) / 2000) - 1) < 1e-50
        assert abs(mp_C(u, u, mpmath.mpf(2000)) - (u - mpmath.log(2) / 2000)) < 1e-200
    # independence of a cell at theta -> 0: P = product of the marginals
    lp = truth_cell(REPRO, MEDIUM_S, 0, 3, 1e-30, "probit")["value"]
    want = truth_level(REPRO, 0, "probit")["value"] + truth_level(MEDIUM_S, 3, "probit")["value"]
    assert abs(lp - want) < 1e-14
    # the cell's margins: sum over b of P(a, b) = P(a)
    for theta in (8.0, -100.0):
        total = mpmath.fsum(mpmath.exp(truth_cell(REPRO, MEDIUM_S, 2, b, theta, "logit")["value"])
                            for b in range(6))
        assert abs(mpmath.log(total) - truth_level(REPRO, 2, "logit")["value"]) < 1e-13


@pytest.mark.parametrize("theta", [0.5, 30.0, -49.0, 200.0, 450.0])
def test_reference_agrees_with_subtraction_free_form(theta):
    for name, zr, zs, a, b in cells_for(theta):
        for link in LINKS:
            want = float(naive_copula.mp_pair_logprob(zr, zs, a, b, theta, link, target=40))
            got = truth_cell(zr, zs, a, b, theta, link)["value"]
            assert abs(got - want) <= 1e-14 * max(1.0, abs(want)), (name, link)


def test_reproducer_theta_derivative_values():
    """The truth for the issue's reproducer, d log P / d theta of cell (0, 0), z = REPRO twice.

    Large-theta asymptotics on this diagonal cell: P = C(u, u) ~ u - log(2)/theta, so
    d log P / d theta ~ log(2) / (theta^2 P). The issue's table had ~1e-8 at theta = 200 and
    ~5e-14 at 450; the truth is ~1.8e-5 and ~3.7e-6."""
    u = float(mp_F(REPRO[0], "probit"))
    for theta, issue_value in ((20.0, 9.66e-4), (30.0, 5.83e-4), (49.0, 2.77e-4), (100.0, 7.43e-5)):
        g = truth_cell(REPRO, REPRO, 0, 0, theta, "probit")["grads"]["theta"][0]
        assert abs(g - issue_value) <= 0.01 * issue_value, (theta, g)
    for theta in (100.0, 200.0, 450.0):
        g = truth_cell(REPRO, REPRO, 0, 0, theta, "probit")["grads"]["theta"][0]
        asym = math.log(2) / theta**2 / (u - math.log(2) / theta)
        assert abs(g - asym) <= 0.05 * asym, (theta, g, asym)


# ------------------------------------------------------------------------------------------------
# checking the ops
# ------------------------------------------------------------------------------------------------
def _round(values, dtype):
    """Python floats rounded to dtype (exact in float64)."""
    return tuple(torch.tensor(values, dtype=torch.float64).to(dtype).double().tolist())


def _check(failures, label, got, want, scale, tol, abs_tol=None, dtype=torch.float64):
    """|got - want| <= tol * scale (or abs_tol), plus the smallest normal number of the dtype: a
    result below it may be flushed to zero (what FTZ hardware does), that is not an error."""
    if abs_tol is not None:
        bound = abs_tol
    else:
        bound = tol * scale
    bound += torch.finfo(dtype).tiny
    ok = math.isfinite(got) and abs(got - want) <= bound
    if not ok:
        failures.append(f"{label}: got {got:.10g}, want {want:.10g} (|err| {abs(got - want):.3g} > {bound:.3g})")


def _value_check(failures, label, got, truth, dtype):
    want = truth["value"]
    if want < FLOOR:  # the floor as the dtype holds it, to an ulp
        floor = float(torch.tensor(FLOOR, dtype=dtype))
        _check(failures, label + " (below floor)", got, floor, abs(floor), 2 * torch.finfo(dtype).eps, dtype=dtype)
    elif dtype == torch.float32 and want >= TRUSTED_LOGP:
        _check(failures, label, got, want, None, None, abs_tol=TOL_VALUE_ABS32, dtype=dtype)
    else:
        _check(failures, label, got, want, truth["scale_value"], TOL_VALUE_REL[dtype], dtype=dtype)


def _grad_check(failures, label, got, g_scale, truth, dtype):
    g, scale = g_scale
    if truth["value"] < FLOOR:
        g, scale = 0.0, 1.0
    _check(failures, label, got, g, scale, TOL_GRAD[dtype], dtype=dtype)


def _loglik_batch(link, dtype, thetas):
    """One sample per (theta, cell): z (B, 2, 5), labels (B, 2), theta (B, 1), and the truths."""
    zs, labels, ths, truths, names = [], [], [], [], []
    for theta in thetas:
        t = _round([theta], dtype)[0]
        for name, zr, zs_, a, b in cells_for(theta):
            zr, zs_ = _round(zr, dtype), _round(zs_, dtype)
            zs.append([zr, zs_])
            labels.append([a, b])
            ths.append(t)
            truths.append(truth_cell(zr, zs_, a, b, t, link))
            names.append(f"theta={theta:g} {name}")
    z = torch.tensor(zs, dtype=dtype)
    return z, torch.tensor(labels), torch.tensor(ths, dtype=dtype)[:, None], truths, names


EDGE = torch.tensor([[0, 1]])


def _run_loglik(z, labels, theta, link):
    zz, tt = z.clone().requires_grad_(), theta.clone().requires_grad_()
    out = ccnn_ext.pairwise_loglik(zz, tt, EDGE, labels, link)
    out.sum().backward()
    return out.detach(), zz.grad, tt.grad


@pytest.mark.parametrize("theta", THETAS, ids=lambda t: f"theta={t:g}")
@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("link", LINKS)
@pytest.mark.parametrize("quantity", ["value", "grad_z", "grad_theta"])
def test_pairwise_loglik(quantity, link, dtype, theta):
    """Per-sample theta (B, E) and shared theta (E,) for the four cells at this theta."""
    z, labels, th, truths, names = _loglik_batch(link, dtype, [theta])
    failures = []
    for mode in ("per-sample", "shared"):
        theta_in = th if mode == "per-sample" else th[:1, 0]
        out, gz, gt = _run_loglik(z, labels, theta_in, link)
        for i, (truth, name) in enumerate(zip(truths, names)):
            label = f"{mode} {name}"
            if quantity == "value":
                _value_check(failures, label, float(out[i, 0]), truth, dtype)
            elif quantity == "grad_z":
                a, b = labels[i].tolist()
                for q, side, lab in ((0, "r", a), (1, "s", b)):
                    for k in range(5):
                        g = truth["grads"].get((side, k), (0.0, 0.0))
                        if (side, k) not in truth["grads"]:
                            g = (0.0, 1.0)  # must be exactly 0 up to the tolerance
                        _grad_check(failures, f"{label} dz[{side}{k}]", float(gz[i, q, k]), g, truth, dtype)
            elif mode == "per-sample":
                _grad_check(failures, f"{label} dtheta", float(gt[i, 0]), truth["grads"]["theta"], truth, dtype)
        if quantity == "grad_theta" and mode == "shared":
            live = [t for t in truths if t["value"] >= FLOOR]
            want = sum(t["grads"]["theta"][0] for t in live)
            scale = sum(t["grads"]["theta"][1] for t in live) or 1.0
            _check(failures, f"shared theta={theta:g} dtheta (sum of {len(live)} cells)",
                   float(gt[0]), want, scale, TOL_GRAD[dtype], dtype=dtype)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("theta", [600.0, -1000.0, 1e4])
@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_pairwise_loglik_beyond_the_cap(dtype, theta):
    """|theta| > 500 behaves as theta = +-500 with a zero theta-gradient."""
    z, labels, th, truths, names = _loglik_batch("probit", dtype, [theta])
    out, gz, gt = _run_loglik(z, labels, th, "probit")
    failures = []
    for i, (truth, name) in enumerate(zip(truths, names)):
        _value_check(failures, name, float(out[i, 0]), truth, dtype)
        for key, g in truth["grads"].items():
            if key == "theta":
                _grad_check(failures, f"{name} dtheta", float(gt[i, 0]), g, truth, dtype)
            else:
                q = 0 if key[0] == "r" else 1
                _grad_check(failures, f"{name} dz{key}", float(gz[i, q, key[1]]), g, truth, dtype)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("theta", TABLE_THETAS, ids=lambda t: f"theta={t:g}")
@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("link", LINKS)
def test_pairwise_logtable(link, dtype, theta):
    """All 36 cells of the table of (REPRO, MEDIUM_S): values, and the gradients with respect to
    z and theta through a random upstream gradient (scale: the sum of the cells' |w| * scale)."""
    zr, zs = _round(REPRO, dtype), _round(MEDIUM_S, dtype)
    t = _round([theta], dtype)[0]
    z = torch.tensor([[zr, zs]], dtype=dtype, requires_grad=True)
    th = torch.tensor([t], dtype=dtype, requires_grad=True)
    table = ccnn_ext.pairwise_logtable(z, th, EDGE, link)
    w = torch.rand(table.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * 2 - 1
    table.backward(w.to(dtype))
    failures = []
    want_gz = torch.zeros(2, 5, dtype=torch.float64)
    scale_gz = torch.zeros(2, 5, dtype=torch.float64)
    want_gt = scale_gt = 0.0
    for a in range(6):
        for b in range(6):
            truth = truth_cell(zr, zs, a, b, t, link)
            _value_check(failures, f"cell ({a}, {b})", float(table[0, 0, a, b]), truth, dtype)
            if truth["value"] < FLOOR:
                continue
            wc = float(w[0, 0, a, b])
            for key, (g, s) in truth["grads"].items():
                if key == "theta":
                    want_gt += wc * g
                    scale_gt += abs(wc) * s
                else:
                    q = 0 if key[0] == "r" else 1
                    want_gz[q, key[1]] += wc * g
                    scale_gz[q, key[1]] += abs(wc) * s
    for q in range(2):
        for k in range(5):
            _check(failures, f"dz[{q}, {k}]", float(z.grad[0, q, k]), float(want_gz[q, k]),
                   float(scale_gz[q, k]), TOL_GRAD[dtype], dtype=dtype)
    _check(failures, "dtheta", float(th.grad[0]), want_gt, scale_gt, TOL_GRAD[dtype], dtype=dtype)
    assert not failures, "\n".join(failures)


def _nearly_equal(dtype):
    z0 = torch.tensor(0.3, dtype=dtype)
    inf = torch.tensor(math.inf, dtype=dtype)
    z1 = torch.nextafter(z0, inf)
    z2 = torch.nextafter(torch.nextafter(z1, inf), inf)
    z3 = torch.tensor(1.0, dtype=dtype)
    z4 = torch.nextafter(z3, inf)
    return tuple(float(v) for v in (z0, z1, z2, z3, z4))


ORDINAL_ROWS = {
    "moderate": lambda dtype: _round((-1.0, -0.3125, 0.25, 0.8125, 1.5), dtype),
    "far-tails": lambda dtype: _round((-40.0, -38.5, -9.0, 12.0, 37.0), dtype),
    "upper-tail": lambda dtype: _round((5.0, 8.0, 8.5, 20.0, 30.0), dtype),
    "nearly-equal": _nearly_equal,
    "narrow": lambda dtype: _round((-6.0, -6.0 + 1e-4, 2.0, 2.0 + 3e-6, 7.0), dtype),
    # tail levels just wider than float64's series switch (h |m| = 0.054 and 0.12): float32's
    # series reaches 0.5 (frank_math.h, narrow_interval)
    "near-narrow-tails": lambda dtype: _round((-6.0, -5.982, 2.0, 6.9, 6.935), dtype),
}


@pytest.mark.parametrize("rows", sorted(ORDINAL_ROWS))
@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("link", LINKS)
def test_ordinal_logprob(link, dtype, rows):
    zrow = ORDINAL_ROWS[rows](dtype)
    z = torch.tensor([[zrow]], dtype=dtype, requires_grad=True)
    out = ccnn_ext.ordinal_logprob(z, link)
    w = torch.rand(out.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 2 - 1
    out.backward(w.to(dtype))
    failures = []
    want = [0.0] * 5
    scale = [0.0] * 5
    for level in range(6):
        truth = truth_level(zrow, level, link)
        _value_check(failures, f"level {level}", float(out[0, 0, level]), truth, dtype)
        if truth["value"] < FLOOR:
            continue
        for k, (g, s) in truth["grads"].items():
            want[k] += float(w[0, 0, level]) * g
            scale[k] += abs(float(w[0, 0, level])) * s
    for k in range(5):
        _check(failures, f"dz[{k}]", float(z.grad[0, 0, k]), want[k], scale[k], TOL_GRAD[dtype], dtype=dtype)
    assert not failures, "\n".join(failures)


FRANK_POINTS = [(0.3, 0.6), (0.75, 0.75), (0.66, 0.70), (2.0**-27, 0.5), (1 - 2.0**-20, 0.3125), (0.05, 0.97)]


@pytest.mark.parametrize("theta", THETAS, ids=lambda t: f"theta={t:g}")
@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_frank_copula(dtype, theta):
    t = _round([theta], dtype)[0]
    pts = [_round(p, dtype) for p in FRANK_POINTS]
    u = torch.tensor([p[0] for p in pts], dtype=dtype, requires_grad=True)
    v = torch.tensor([p[1] for p in pts], dtype=dtype, requires_grad=True)
    th = torch.full((len(pts),), t, dtype=dtype, requires_grad=True)
    C = ccnn_ext.frank_copula(u, v, th)
    C.sum().backward()
    failures = []
    tol_v = 1e-12 if dtype == torch.float64 else 1e-5
    for i, (uu, vv) in enumerate(pts):
        truth = truth_frank(uu, vv, t)
        label = f"C({uu:g}, {vv:g}; {t:g})"
        _check(failures, label, float(C[i]), truth["value"], truth["scale_value"], tol_v, dtype=dtype)
        for name, got, (g, s) in zip(("du", "dv", "dtheta"), (u.grad[i], v.grad[i], th.grad[i]),
                                     truth["grads"]):
            _check(failures, f"{label} {name}", float(got), g, s, TOL_GRAD[dtype], dtype=dtype)
    assert not failures, "\n".join(failures)
