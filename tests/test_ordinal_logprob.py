"""ccnn_ext.ordinal_logprob: log-probabilities of ordinal levels against mpmath (tails, narrow
intervals), the PyTorch reference, float32 vs float64, gradcheck, bad input, opcheck, CUDA parity."""
import math

import mpmath
import pytest
import torch

import ccnn_ext
from copula_reference import LOG_PROB_FLOOR, MP_DPS, random_thresholds
from copula_reference import ordinal_logprob as ref_ordinal

CUDA = torch.cuda.is_available() and ccnn_ext.built_with_cuda()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA device and a CUDA build")
LINKS = ["probit", "logit"]

# Rows of 5 thresholds (L = 6) that stress every case of the log-mass: both ends in a far tail,
# narrow intervals in the centre and in each tail, wide intervals across 0, very wide spreads.
EXTREME_ROWS = [
    [-40.0, -39.5, -39.0, -38.0, -37.0],
    [36.0, 37.0, 38.0, 39.0, 40.0],
    [-1e-7, 0.0, 1e-7, 2e-7, 1.0],
    [-3.0, -3.0 + 1e-5, -2.0, 2.0, 2.0 + 1e-6],
    [5.0, 5.0 + 1e-6, 6.0, 7.0, 8.0],
    [-8.0, -1.0, 0.0, 1.0, 8.0],
    [-12.0, -11.9, 11.9, 12.0, 30.0],
    [-0.5, -0.2, 0.1, 0.4, 0.7],
]


def mp_ordinal_logprob(zrow, link):
    """log(F(b) - F(a)) at 60 digits, through the survival function when both ends are above 0
    (1 - F(36) is 1e-284: lost next to 1 at any sensible precision)."""
    with mpmath.workdps(MP_DPS):
        ends = [-mpmath.inf] + [mpmath.mpf(z) for z in zrow] + [mpmath.inf]
        F = mpmath.ncdf if link == "probit" else (lambda x: 1 / (1 + mpmath.exp(-x)))
        out = []
        for a, b in zip(ends[:-1], ends[1:]):
            mass = F(-a) - F(-b) if a >= 0 else F(b) - F(a)
            out.append(float(mpmath.log(mass)))
        return out


@pytest.mark.parametrize("link", LINKS)
def test_float64_matches_mpmath(link):
    z = torch.tensor([EXTREME_ROWS], dtype=torch.float64)
    got = ccnn_ext.ordinal_logprob(z, link)[0]
    for row, zrow in zip(got, EXTREME_ROWS):
        want = mp_ordinal_logprob(zrow, link)
        for l in range(6):
            w = max(want[l], LOG_PROB_FLOOR)
            assert abs(row[l].item() - w) <= 1e-12 * max(1.0, abs(w)), (zrow, l, row[l].item(), w)


def test_float64_tails_match_mpmath_over_the_whole_range():
    """The double lanes' erfc (Cephes' rational forms, e^{-x^2} from the exact x^2): log Phi(z) and
    log Phi(-z) for z from -37.5 to 37.5 (erfc arguments 0 to 26.5, down to 1e-307; the floor
    below 1e-300) within 1e-14 relative, every lane position filled (a whole number of vectors and a partial one)."""
    zs = [float(x) for x in torch.linspace(-37.5, 37.5, 1503, dtype=torch.float64)] + [0.0, 1.414, 1.415, 11.3, 11.32]
    got = ccnn_ext.ordinal_logprob(torch.tensor(zs, dtype=torch.float64).view(-1, 1, 1))[:, 0]
    with mpmath.workdps(40):
        for z, (lo, hi) in zip(zs, got.tolist()):
            for value, arg in ((lo, z), (hi, -z)):
                want = max(float(mpmath.log(mpmath.ncdf(arg))), LOG_PROB_FLOOR)
                assert abs(value - want) <= 1e-14 * max(1.0, abs(want)), (arg, value, want)


@pytest.mark.parametrize("link", LINKS)
def test_float64_random_rows_match_mpmath(link):
    """float64 rows in SIMD lanes (8 on AVX-512), wide and narrow levels anywhere in [-35, 35]."""
    g = torch.Generator().manual_seed(11)
    centre = torch.rand(61, 1, 1, generator=g, dtype=torch.float64) * 60 - 30
    gaps = torch.rand(61, 1, 5, generator=g, dtype=torch.float64) * torch.tensor([0.05, 0.5, 3.0])[
        torch.randint(0, 3, (61, 1, 5), generator=g)]
    z = (centre + gaps.cumsum(-1)).clamp(-35, 35)
    z = z[(z.diff(dim=-1) > 0).all(-1).squeeze(-1)]
    got = ccnn_ext.ordinal_logprob(z, link)
    for row, zrow in zip(got[:, 0].tolist(), z[:, 0].tolist()):
        want = mp_ordinal_logprob(zrow, link)
        for value, w in zip(row, want):
            w = max(w, LOG_PROB_FLOOR)
            assert abs(value - w) <= 1e-12 * max(1.0, abs(w)), (zrow, value, w)


@pytest.mark.parametrize("link", LINKS)
def test_float32_within_1e4_of_float64(link):
    z32 = random_thresholds(64, 6, 6, spread=3.0, seed=1).float()
    rows = torch.tensor(EXTREME_ROWS, dtype=torch.float32)
    # keep rows that are still strictly increasing in float32
    rows = rows[(rows.diff(dim=-1) > 0).all(-1)]
    lp32 = torch.cat([ccnn_ext.ordinal_logprob(z32, link).flatten(0, 1), ccnn_ext.ordinal_logprob(rows[None], link)[0]])
    z64 = torch.cat([z32.double().flatten(0, 1), rows.double()])
    lp64 = ccnn_ext.ordinal_logprob(z64[None], link)[0]
    big = lp64 >= math.log(1e-6)
    assert big.sum() > 100
    assert (lp32.double() - lp64)[big].abs().max().item() <= 1e-4
    # and relatively everywhere (log space has no floor-like loss of precision)
    assert ((lp32.double() - lp64).abs() <= 1e-5 * lp64.abs().clamp_min(1)).all()


@pytest.mark.parametrize("link", LINKS)
def test_matches_reference_sums_to_one_and_gradcheck(link):
    z = random_thresholds(16, 5, 6, seed=2)
    lp = ccnn_ext.ordinal_logprob(z, link)
    torch.testing.assert_close(lp, ref_ordinal(z, link), rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(lp.logsumexp(-1), torch.zeros(16, 5, dtype=torch.float64), rtol=0, atol=1e-14)
    zz = random_thresholds(3, 2, 6, seed=3).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: ccnn_ext.ordinal_logprob(x, link), (zz,))
    # tails and a narrow-ish interval (gradcheck's finite differences need spacing >> 1e-6)
    tails = torch.tensor([[[-0.02, -0.01, 0.0, 0.02, 1.0], [-30.0, -29.5, -1.0, 29.0, 29.5],
                           EXTREME_ROWS[5]]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: ccnn_ext.ordinal_logprob(x, link), (tails.requires_grad_(),))


def test_two_levels_and_non_contiguous_input():
    z = torch.tensor([[[0.3], [-1.2]]], dtype=torch.float64)
    lp = ccnn_ext.ordinal_logprob(z)
    want = torch.tensor([[[math.log(0.5 * math.erfc(-0.3 / math.sqrt(2))), math.log(0.5 * math.erfc(0.3 / math.sqrt(2)))],
                          [math.log(0.5 * math.erfc(1.2 / math.sqrt(2))), math.log(0.5 * math.erfc(-1.2 / math.sqrt(2)))]]],
                        dtype=torch.float64)
    torch.testing.assert_close(lp, want, rtol=1e-14, atol=0)
    zn = random_thresholds(4, 3, 6, seed=4).transpose(0, 1)
    assert not zn.is_contiguous()
    assert torch.equal(ccnn_ext.ordinal_logprob(zn), ccnn_ext.ordinal_logprob(zn.contiguous()))


@pytest.mark.parametrize("link", LINKS)
@pytest.mark.parametrize("rows, levels", [(1, 2), (5, 3), (17, 6), (33, 7), (70, 12)])
def test_float32_rows_in_lanes_match_float64(link, rows, levels):
    """The float32 kernel runs 4 to 16 threshold rows side by side (one per SIMD lane), level after
    level: row counts that leave a partial block and any number of levels give float64's values and
    gradients to float32 accuracy."""
    z = random_thresholds(rows, 1, levels, spread=3.0, seed=rows).float()
    z = z[:, (z.diff(dim=-1) > 0).all(-1).all(0)] if levels > 2 else z
    grad = torch.randn(z.shape[0], z.shape[1], levels, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    got, want = {}, {}
    for dtype, out in ((torch.float32, got), (torch.float64, want)):
        zz = z.to(dtype).detach().clone().requires_grad_()
        lp = ccnn_ext.ordinal_logprob(zz, link)
        lp.backward(grad.to(dtype))
        out["lp"], out["grad"] = lp.double(), zz.grad.double()
    scored = want["lp"] >= -30
    assert (got["lp"] - want["lp"])[scored].abs().max() <= 1e-5
    assert ((got["grad"] - want["grad"]).abs() <= 1e-4 * want["grad"].abs().max()).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bad_value_far_into_a_large_input_is_found(dtype):
    """The float32 kernel checks the thresholds inside its parallel tasks: an offender in the last
    row of a large input is reported with its index, while a row starting below the previous row's
    end (legal: rows are independent) is not."""
    z = random_thresholds(4096, 12, 6, seed=8).to(dtype)
    z[1, 3] -= 100.0  # below the row before it: fine
    ccnn_ext.ordinal_logprob(z)
    for index, value, match in (((4095, 11, 4), float("nan"), r"z\[4095, 11, 4\] is not"),
                                ((4095, 11, 2), -50.0, r"z\[4095, 11\] is not")):
        bad = z.clone()
        bad[index] = value
        with pytest.raises(ValueError, match=match):
            ccnn_ext.ordinal_logprob(bad)


@pytest.mark.parametrize(
    "z, link, error, match",
    [
        (torch.zeros(2, 3), "probit", ValueError, "z must have shape"),
        (torch.zeros(2, 3, 0), "probit", ValueError, "at least one threshold"),
        (torch.tensor([[[0.0, 0.0]]]), "probit", ValueError, "strictly increasing"),
        (torch.tensor([[[1.0, 0.5]]]), "logit", ValueError, "strictly increasing"),
        (torch.tensor([[[0.0, float("nan")]]]), "probit", ValueError, "z must be finite"),
        (torch.tensor([[[-float("inf"), 0.0]]]), "probit", ValueError, "z must be finite"),
        (torch.tensor([[[0, 1]]]), "probit", TypeError, "z must be float32 or float64"),
        (torch.tensor([[[0.0, 1.0]]]), "cauchit", ValueError, "link must be"),
    ],
)
def test_bad_input(z, link, error, match):
    with pytest.raises(error, match=match):
        ccnn_ext.ordinal_logprob(z, link)


def test_opcheck():
    z = random_thresholds(3, 2, 5, seed=5).requires_grad_()
    for link in LINKS:
        torch.library.opcheck(torch.ops.ccnn.ordinal_logprob, (z, link))
        grad = torch.randn(3, 2, 5, dtype=torch.float64)
        logp = torch.ops.ccnn.ordinal_logprob(z.detach(), link)
        torch.library.opcheck(torch.ops.ccnn.ordinal_logprob_backward, (grad, z.detach(), logp, link))


@needs_cuda
@pytest.mark.parametrize("link", LINKS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_matches_cpu(link, dtype):
    z = torch.cat([random_thresholds(32, 8, 6, seed=6), torch.tensor([EXTREME_ROWS] * 32, dtype=torch.float64)], 1)
    z = z.to(dtype)
    z = z[:, (z.diff(dim=-1) > 0).all(-1).all(0)]  # rows that stay increasing in float32
    zc, zg = z.clone().requires_grad_(), z.cuda().requires_grad_()
    a, b = ccnn_ext.ordinal_logprob(zc, link), ccnn_ext.ordinal_logprob(zg, link)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(b.cpu(), a, rtol=tol, atol=tol)
    g = torch.randn_like(a)
    ga, = torch.autograd.grad(a, zc, g)
    gb, = torch.autograd.grad(b, zg, g.cuda())
    torch.testing.assert_close(gb.cpu(), ga, rtol=tol, atol=tol)


@pytest.mark.parametrize("link", LINKS)
@pytest.mark.parametrize("dtype, big", [(torch.float64, 1e200), (torch.float32, 3e19)])
def test_huge_thresholds_give_floored_values_and_zero_gradients(link, dtype, big):
    # z^2 overflows for these thresholds; levels beyond them have mass 0 (floored, no gradient), and
    # every other value must equal the one with moderate thresholds (the masses moved are < 1e-300).
    def rows(lo, lo2, hi):
        return torch.tensor([[[lo, lo2, 0.0, 1.0, 2.0], [-2.0, -1.0, 0.0, 1.0, hi]]], dtype=dtype)
    z_big, z_mod = rows(-big, -big / 10, big), rows(-800.0, -700.0, 800.0)
    theta, edges = torch.tensor([3.0], dtype=dtype), torch.tensor([[0, 1]])
    tol = dict(rtol=1e-12, atol=0) if dtype == torch.float64 else dict(rtol=1e-5, atol=0)
    for labels in ([0, 0], [1, 4], [2, 3], [2, 5], [0, 5], [3, 2]):
        lab = torch.tensor([labels])
        z = z_big.clone().requires_grad_()
        got = ccnn_ext.pairwise_loglik(z, theta, edges, lab, link)
        got.sum().backward()
        assert torch.isfinite(z.grad).all(), (labels, z.grad)
        assert z.grad[0, 0, :2].eq(0).all() and z.grad[0, 1, 4].eq(0)
        want = ccnn_ext.pairwise_loglik(z_mod, theta, edges, lab, link)
        if want.item() > LOG_PROB_FLOOR:
            torch.testing.assert_close(got.detach(), want, **tol)
        else:
            assert got.item() == pytest.approx(LOG_PROB_FLOOR)
    for op in (lambda z: ccnn_ext.ordinal_logprob(z, link),
               lambda z: ccnn_ext.pairwise_logtable(z, theta, edges, link)):
        z = z_big.clone().requires_grad_()
        out = op(z)
        out.sum().backward()
        assert torch.isfinite(out).all() and torch.isfinite(z.grad).all()
        assert z.grad[0, 0, :2].eq(0).all() and z.grad[0, 1, 4].eq(0)
        live = op(z_mod) > LOG_PROB_FLOOR
        torch.testing.assert_close(out.detach()[live], op(z_mod)[live], **tol)
