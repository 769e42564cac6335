"""ccnn_ext.pairwise_logtable: tables sum to one with the unary probabilities as margins, agree
with pairwise_loglik, the PyTorch reference and mpmath, float32 vs float64, gradcheck, bad input,
opcheck, CUDA parity."""
import math

import mpmath
import pytest
import torch

import ccnn_ext
from copula_reference import LOG_PROB_FLOOR, MP_DPS, all_pairs, mp_cell, mp_cuts, random_thresholds
from copula_reference import pairwise_logtable as ref_logtable

CUDA = torch.cuda.is_available() and ccnn_ext.built_with_cuda()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA device and a CUDA build")
LINKS = ["probit", "logit"]


def problem(B=16, Q=4, L=6, seed=0, theta_scale=20.0, per_sample=False, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed + 200)
    z = random_thresholds(B, Q, L, seed=seed, spread=1.5).to(dtype)
    edges = all_pairs(Q)
    shape = (B, edges.shape[0]) if per_sample else (edges.shape[0],)
    theta = ((torch.rand(shape, generator=g, dtype=torch.float64) - 0.5) * 2 * theta_scale).to(dtype)
    return z, theta, edges


@pytest.mark.parametrize("link", LINKS)
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
def test_tables_sum_to_one_with_unary_margins(link, dtype, tol):
    z, theta, edges = problem(B=32, Q=5, seed=1, theta_scale=50.0, per_sample=True, dtype=dtype)
    theta[0, :4] = torch.tensor([0.0, 1e-7, -60.0, 75.0], dtype=dtype)  # at 0 and beyond float range
    table = ccnn_ext.pairwise_logtable(z, theta, edges, link).double()
    unary = ccnn_ext.ordinal_logprob(z, link).double()
    zero = torch.zeros(table.shape[:2], dtype=torch.float64)
    torch.testing.assert_close(table.flatten(2).logsumexp(-1), zero, rtol=0, atol=tol)
    # margins, in probability (log-margins of tiny levels are as precise, but relative)
    rows, cols = table.logsumexp(-1).exp(), table.logsumexp(-2).exp()
    torch.testing.assert_close(rows, unary[:, edges[:, 0]].exp(), rtol=tol, atol=tol)
    torch.testing.assert_close(cols, unary[:, edges[:, 1]].exp(), rtol=tol, atol=tol)


@pytest.mark.parametrize("link", LINKS)
def test_independence_at_theta_zero(link):
    z, theta, edges = problem(B=4, seed=2)
    table = ccnn_ext.pairwise_logtable(z, torch.zeros_like(theta), edges, link)
    unary = ccnn_ext.ordinal_logprob(z, link)
    want = unary[:, edges[:, 0], :, None] + unary[:, edges[:, 1], None, :]
    torch.testing.assert_close(table, want, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("link", LINKS)
def test_agrees_with_loglik_and_reference(link):
    z, theta, edges = problem(B=24, Q=4, seed=3, theta_scale=50.0)
    table = ccnn_ext.pairwise_logtable(z, theta, edges, link)
    L = table.shape[-1]
    labels = torch.randint(0, L, (24, 4), generator=torch.Generator().manual_seed(3))
    loglik = ccnn_ext.pairwise_loglik(z, theta, edges, labels, link)
    picked = table.flatten(2).gather(2, (labels[:, edges[:, 0]] * L + labels[:, edges[:, 1]])[..., None])[..., 0]
    torch.testing.assert_close(picked, loglik, rtol=0, atol=1e-13)
    want = ref_logtable(z, theta, edges, link)
    trusted = want >= math.log(1e-6)
    assert trusted.sum() > 1000
    tol = 1e-15 * torch.exp(-want[trusted]) + 1e-12  # the reference's four-term difference
    assert bool(((table[trusted] - want[trusted]).abs() <= tol).all())


@pytest.mark.parametrize("L", [13, 16, 24])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_many_levels(L, dtype):
    """Tables of more levels than the usual 6 (the SIMD kernels size their buffers for each L):
    float64 cells agree with the careful reference, every cell equals pairwise_loglik of its label
    pair, and the gradients equal those of pairwise_loglik summed over the cells (an independent
    kernel: the pair kernel's partials, not the table's backward)."""
    link = "probit"
    B, Q = 3, 3
    z, theta, edges = problem(B=B, Q=Q, L=L, seed=11, theta_scale=40.0, per_sample=True, dtype=dtype)
    E = edges.shape[0]
    weights = torch.rand(B, E, L, L, generator=torch.Generator().manual_seed(L), dtype=torch.float64).to(dtype)
    z_t, theta_t = z.clone().requires_grad_(), theta.clone().requires_grad_()
    table = ccnn_ext.pairwise_logtable(z_t, theta_t, edges, link)
    (table * weights).sum().backward()
    if dtype == torch.float64:
        want = ref_logtable(z, theta, edges, link)
        trusted = want >= math.log(1e-6)
        tol = 1e-15 * torch.exp(-want[trusted]) + 1e-12
        assert bool(((table.detach()[trusted] - want[trusted]).abs() <= tol).all())
    # every cell (a, c) of edge e as the label pair (a, c) of AUs (r, s)
    a, c = (x.reshape(-1) for x in torch.meshgrid(torch.arange(L), torch.arange(L), indexing="ij"))
    z_p, theta_p = z.clone().requires_grad_(), theta.clone().requires_grad_()
    total = 0
    for e in range(E):
        r, s = edges[e].tolist()
        labels = torch.zeros(B, L * L, Q, dtype=torch.int64)
        labels[:, :, r], labels[:, :, s] = a, c
        loglik = ccnn_ext.pairwise_loglik(z_p.repeat_interleave(L * L, 0), theta_p[:, e:e + 1].repeat_interleave(L * L, 0),
                                          edges[e:e + 1], labels.reshape(-1, Q), link).reshape(B, L, L)
        atol = 1e-13 if dtype == torch.float64 else 2e-6
        torch.testing.assert_close(table.detach()[:, e], loglik.detach(), rtol=0, atol=atol)
        total = total + (loglik * weights[:, e]).sum()
    total.backward()
    rtol = 1e-10 if dtype == torch.float64 else 2e-4
    torch.testing.assert_close(z_t.grad, z_p.grad, rtol=rtol, atol=rtol * z_p.grad.abs().max().item())
    torch.testing.assert_close(theta_t.grad, theta_p.grad, rtol=rtol, atol=rtol * theta_p.grad.abs().max().item())


def test_float64_matches_mpmath_at_the_extremes():
    zr = [-5.612001244174789, -0.3, 2e-5, 3e-5, 5.612001244174789]  # CDFs at 1e-8 from 0 and 1
    zs = [-7.0, -2.0, 0.5, 0.5 + 1e-6, 7.0]
    z = torch.tensor([[zr, zs]], dtype=torch.float64)
    thetas = torch.tensor([[-50.0], [-1e-6], [0.0], [1e-6], [50.0]], dtype=torch.float64)
    for theta in thetas:
        table = ccnn_ext.pairwise_logtable(z, theta, all_pairs(2))[0, 0]
        ur, vs = mp_cuts(zr), mp_cuts(zs)
        for a in range(6):
            for c in range(6):
                with mpmath.workdps(MP_DPS):
                    want = max(float(mpmath.log(mp_cell(ur, vs, a, c, float(theta)))), LOG_PROB_FLOOR)
                assert abs(table[a, c].item() - want) <= 1e-11 * max(1.0, abs(want)), (float(theta), a, c)


@pytest.mark.parametrize("link", LINKS)
def test_float32_within_1e4_of_float64(link):
    z, theta, edges = problem(B=64, Q=5, seed=4, theta_scale=50.0, per_sample=True, dtype=torch.float32)
    t32 = ccnn_ext.pairwise_logtable(z, theta, edges, link)
    t64 = ccnn_ext.pairwise_logtable(z.double(), theta.double(), edges, link)
    big = t64 >= math.log(1e-6)
    assert big.sum() > 5000
    assert (t32.double() - t64)[big].abs().max().item() <= 1e-4
    assert ((t32.double() - t64).abs() <= 1e-4 * t64.abs().clamp_min(1)).all()


@pytest.mark.parametrize("link", LINKS)
def test_gradcheck(link):
    z, theta, edges = problem(B=2, Q=3, L=4, seed=5, theta_scale=8.0)
    f = lambda z, t: ccnn_ext.pairwise_logtable(z, t, edges, link)  # noqa: E731
    assert torch.autograd.gradcheck(f, (z.requires_grad_(), theta.requires_grad_()))
    theta2 = torch.tensor([[0.0, -70.0, 40.0], [1e-8, 55.0, -4.0]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(f, (z, theta2))


def test_non_contiguous_inputs():
    z, theta, edges = problem(B=6, Q=4, seed=6, per_sample=True)
    zn = z.transpose(0, 1).contiguous().transpose(0, 1)
    tn = theta.t().contiguous().t()
    en = edges.t().contiguous().t()
    assert not any(x.is_contiguous() for x in (zn, tn, en))
    assert torch.equal(ccnn_ext.pairwise_logtable(zn, tn, en), ccnn_ext.pairwise_logtable(z, theta, edges))


@pytest.mark.parametrize(
    "mutate, error, match",
    [
        (lambda z, t, e: (z[..., :0], t, e), ValueError, "at least one threshold"),
        (lambda z, t, e: (z, t[None], e), ValueError, r"theta must have shape \(E,\)"),
        (lambda z, t, e: (z, t, e.float()), TypeError, "edges must be int64"),
        (lambda z, t, e: (z, t, e - 1), ValueError, r"edges must hold AU indices"),
        (lambda z, t, e: (z.flip(-1), t, e), ValueError, "strictly increasing"),
        (lambda z, t, e: (z, t * float("nan"), e), ValueError, "theta must be finite"),
    ],
)
def test_bad_input(mutate, error, match):
    z, theta, edges = problem(B=3, Q=3, seed=7)
    with pytest.raises(error, match=match):
        ccnn_ext.pairwise_logtable(*mutate(z, theta, edges))


def test_opcheck():
    z, theta, edges = problem(B=2, Q=3, L=4, seed=8)
    z.requires_grad_()
    theta.requires_grad_()
    for link in LINKS:
        torch.library.opcheck(torch.ops.ccnn.pairwise_logtable, (z, theta, edges, link))
    grad = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    torch.library.opcheck(torch.ops.ccnn.pairwise_logtable_backward, (grad, z.detach(), theta.detach(), edges, "logit"))


@needs_cuda
@pytest.mark.parametrize("link", LINKS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_matches_cpu(link, dtype):
    z, theta, edges = problem(B=32, Q=5, seed=9, theta_scale=60.0, per_sample=True, dtype=dtype)
    outs = []
    for device in ("cpu", "cuda"):
        zz = z.to(device).requires_grad_()
        tt = theta.to(device).requires_grad_()
        out = ccnn_ext.pairwise_logtable(zz, tt, edges.to(device), link)
        (out * torch.linspace(-1, 1, out.numel(), dtype=dtype, device=device).view_as(out)).sum().backward()
        outs.append([x.cpu() for x in (out, zz.grad, tt.grad)])
    tol = 1e-11 if dtype == torch.float64 else 2e-4
    for a, b in zip(*outs):
        torch.testing.assert_close(b, a, rtol=tol, atol=tol)
