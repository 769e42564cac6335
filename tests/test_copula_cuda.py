"""The CUDA kernels of the copula ops (skipped without a CUDA device and a CUDA build): parity with
the CPU kernels for every op, forward and backward (float32 and float64, shared and per-sample
theta, both links, L = 2 and 6 (specialised kernels), 9 (generic kernel) and 17 (the table
backward's multi-pass path), missing labels), bitwise determinism, NaN instead of a crash for
out-of-range indices with the data checks off, index checks of the internal backward ops, a
forward + backward step captured in a CUDA graph, opcheck on CUDA, empty sizes.

Tolerances come from the conditioning, measured rather than guessed: each CUDA result must be as
close to the float64 CPU result as the CPU result of the same dtype is (factor 4), plus a floor of
a few hundred ulps of the dtype times (1 + max |theta|) (the amplification of the rounding of the
cut-point CDFs by theta) times the magnitude (the element's own, plus the tensor's mean magnitude
for sums of terms of both signs).
"""
import math

import pytest
import torch

import ccnn_ext
from copula_reference import all_pairs, random_labels, random_thresholds

CUDA = torch.cuda.is_available() and ccnn_ext.built_with_cuda()
pytestmark = pytest.mark.skipif(not CUDA, reason="needs a CUDA device and a CUDA build")

LINKS = ["probit", "logit"]
DTYPES = [torch.float32, torch.float64]
ops = torch.ops.ccnn


def problem(B, Q, L, seed, theta_max=8.0, per_sample=False, dtype=torch.float64, missing=0.15):
    g = torch.Generator().manual_seed(seed + 300)
    z = random_thresholds(B, Q, L, seed=seed, spread=1.5)
    edges = all_pairs(Q)
    shape = (B, edges.shape[0]) if per_sample else (edges.shape[0],)
    theta = (torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1) * theta_max
    flat = theta.view(-1)
    flat[: min(3, flat.numel())] = torch.tensor([0.0, 1e-7, -2e-3], dtype=torch.float64)[: min(3, flat.numel())]
    labels = random_labels(B, Q, L, seed=seed, missing=missing)
    return z.to(dtype), theta.to(dtype), edges, labels


def assert_as_accurate(name, got, cpu, ref, kappa, ulps):
    """got (CUDA) must be within 4 * |cpu - ref| + ulps * eps * kappa * (|ref| + mean |ref|) of ref
    (the float64 CPU result), elementwise; non-finite entries must match."""
    eps = torch.finfo(cpu.dtype).eps
    got, cpu, ref = got.detach().cpu().double(), cpu.detach().double(), ref.detach().double()
    finite = torch.isfinite(ref)
    assert torch.equal(torch.isfinite(got), finite), f"{name}: non-finite entries differ"
    if not bool(finite.any()):
        return
    g, c, r = got[finite], cpu[finite], ref[finite]
    scale = r.abs() + r.abs().mean()
    tol = 4 * (c - r).abs() + ulps * eps * kappa * scale
    err = (g - r).abs()
    worst = int(torch.argmax(err - tol))
    assert bool((err <= tol).all()), (
        f"{name}: |cuda - ref| = {err[worst].item():.3e} > tol {tol[worst].item():.3e} "
        f"(ref {r[worst].item():.6e}, cuda {g[worst].item():.6e}, cpu {c[worst].item():.6e})"
    )


def run(device, dtype, fn, inputs, upstream_seed=0):
    """fn's output and the gradients of <output, a fixed random upstream> w.r.t. the float inputs."""
    leaves = [x.detach().to(device=device, dtype=dtype).clone().requires_grad_() if x.is_floating_point()
              else x.to(device) for x in inputs]
    out = fn(*leaves)
    g = torch.Generator().manual_seed(upstream_seed)
    up = torch.randn(out.shape, generator=g, dtype=torch.float64)
    out_for_grad = torch.where(torch.isfinite(out), out, torch.zeros_like(out))
    (out_for_grad * up.to(device=device, dtype=dtype)).sum().backward()
    return [out] + [x.grad for x in leaves if x.is_floating_point()]


def check_parity(name, fn, inputs, dtype, kappa, value_ulps=64, grad_ulps=512):
    ref = run("cpu", torch.float64, fn, inputs)
    cpu = run("cpu", dtype, fn, inputs) if dtype != torch.float64 else ref
    got = run("cuda", dtype, fn, inputs)
    for i, (g, c, r) in enumerate(zip(got, cpu, ref)):
        assert_as_accurate(f"{name}[{i}]", g, c, r, kappa, value_ulps if i == 0 else grad_ulps)


# ---- parity ------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_frank_copula_parity(dtype):
    g = torch.Generator().manual_seed(1)
    u = torch.rand(4000, generator=g, dtype=torch.float64)
    v = torch.rand(4000, generator=g, dtype=torch.float64)
    theta = (torch.rand(4000, generator=g, dtype=torch.float64) * 2 - 1) * 20
    check_parity("frank_copula", ccnn_ext.frank_copula, (u, v, theta), dtype, kappa=21.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("link", LINKS)
@pytest.mark.parametrize("L", [2, 6, 9])
def test_ordinal_logprob_parity(dtype, link, L):
    z = random_thresholds(64, 7, L, seed=2, spread=2.0)
    check_parity("ordinal_logprob", lambda z: ccnn_ext.ordinal_logprob(z, link), (z,), dtype, kappa=1.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("link", LINKS)
@pytest.mark.parametrize("per_sample", [False, True])
@pytest.mark.parametrize("L", [2, 6, 9])
def test_pairwise_loglik_parity(dtype, link, per_sample, L):
    z, theta, edges, labels = problem(B=96, Q=6, L=L, seed=3 + L, per_sample=per_sample)
    kappa = 1 + theta.abs().max().item()

    def fn(z, theta):
        return ccnn_ext.pairwise_loglik(z, theta, edges.to(z.device), labels.to(z.device), link)

    check_parity("pairwise_loglik", fn, (z, theta), dtype, kappa)
    # missing labels: value 0 on the device too
    zc, tc = z.to("cuda", dtype), theta.to("cuda", dtype)
    out = fn(zc, tc).cpu()
    missing = (labels[:, edges[:, 0]] < 0) | (labels[:, edges[:, 1]] < 0)
    assert missing.any() and bool((out[missing] == 0).all())
    # the plain (inference) op agrees with the training op's values (which evaluate the level
    # factors in a form that also serves the gradient: a few ulps apart)
    plain = ops.pairwise_loglik(zc, tc, edges.cuda(), labels.cuda(), link)
    train, _ = ops.pairwise_loglik_fwd(zc, tc, edges.cuda(), labels.cuda(), link)
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(plain, train, rtol=16 * eps, atol=16 * eps * kappa)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("link", LINKS)
@pytest.mark.parametrize("per_sample", [False, True])
@pytest.mark.parametrize("L", [2, 6, 9, 17])
def test_pairwise_logtable_parity(dtype, link, per_sample, L):
    B = 8 if L == 17 else 24
    z, theta, edges, _ = problem(B=B, Q=5, L=L, seed=5 + L, per_sample=per_sample)
    kappa = 1 + theta.abs().max().item()

    def fn(z, theta):
        return ccnn_ext.pairwise_logtable(z, theta, edges.to(z.device), link)

    check_parity("pairwise_logtable", fn, (z, theta), dtype, kappa)


@pytest.mark.parametrize("dtype", DTYPES)
def test_float_edges_beyond_float_range_run_in_double(dtype):
    # |theta| > 30: float inputs are promoted to double per cell, on both devices (values only)
    z, theta, edges, labels = problem(B=16, Q=4, L=6, seed=7, per_sample=True)
    theta[:, 0], theta[:, 1] = 60.0, -75.0
    for fn in (lambda z, t, e: ops.pairwise_logtable(z, t, e, "probit"),
               lambda z, t, e: ops.pairwise_loglik(z, t, e, labels.to(z.device), "logit")):
        ref = fn(z, theta, edges)
        cpu = fn(z.to(dtype), theta.to(dtype), edges)
        got = fn(z.to("cuda", dtype), theta.to("cuda", dtype), edges.cuda())
        assert_as_accurate("promoted", got, cpu, ref, kappa=76.0, ulps=64)


def test_table_cells_equal_loglik_on_device():
    # one assembly routine (table_assembly.h): a table cell is the loglik of that label pair
    z, theta, edges, _ = problem(B=32, Q=4, L=6, seed=8, theta_max=30.0)
    zc, tc, ec = z.cuda(), theta.cuda(), edges.cuda()
    table = ops.pairwise_logtable(zc, tc, ec, "probit")
    labels = torch.randint(0, 6, (32, 4), generator=torch.Generator().manual_seed(8)).cuda()
    loglik = ops.pairwise_loglik(zc, tc, ec, labels, "probit")
    picked = table.flatten(2).gather(2, (labels[:, ec[:, 0]] * 6 + labels[:, ec[:, 1]])[..., None])[..., 0]
    eps = torch.finfo(torch.float64).eps
    assert bool(((picked - loglik).abs() <= 4 * eps * (1 + loglik.abs())).all())


@pytest.mark.parametrize("dtype", DTYPES)
def test_internal_backward_ops_parity(dtype):
    # pairwise_loglik_bwd from the same partials: the same fixed-order sums as the CPU
    z, theta, edges, labels = problem(B=64, Q=6, L=6, seed=9, dtype=dtype)
    _, partials = ops.pairwise_loglik_fwd(z, theta, edges, labels, "probit")
    grad = torch.randn(partials.shape[:2], generator=torch.Generator().manual_seed(9), dtype=torch.float64).to(dtype)
    cpu = ops.pairwise_loglik_bwd(grad, partials, z, edges, labels)
    got = ops.pairwise_loglik_bwd(grad.cuda(), partials.cuda(), z.cuda(), edges.cuda(), labels.cuda())
    eps = torch.finfo(dtype).eps
    for c, g in zip(cpu, got):
        torch.testing.assert_close(g.cpu(), c, rtol=4 * eps, atol=4 * eps * c.abs().max().item())


# ---- determinism -------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_bitwise_deterministic(dtype):
    z, theta, edges, labels = problem(B=512, Q=8, L=6, seed=10, per_sample=True, dtype=dtype)
    results = []
    for _ in range(2):
        zc = z.cuda().clone().requires_grad_()
        tc = theta.cuda().clone().requires_grad_()
        a = ccnn_ext.pairwise_loglik(zc, tc, edges.cuda(), labels.cuda())
        t = ccnn_ext.pairwise_logtable(zc, tc, edges.cuda())
        up = torch.linspace(-1, 1, t.numel(), dtype=dtype, device="cuda").view_as(t)
        (a.sum() + (t * up).sum()).backward()
        results.append([x.detach().clone() for x in (a, t, zc.grad, tc.grad)])
    for x, y in zip(*results):
        assert torch.equal(x, y)


# ---- bad indices -------------------------------------------------------------------------------

@pytest.fixture
def checks_off():
    ccnn_ext.set_data_checks(False)
    try:
        yield
    finally:
        ccnn_ext.set_data_checks(True)


def test_out_of_range_indices_give_nan_with_checks_off(checks_off):
    z, theta, edges, labels = problem(B=6, Q=4, L=5, seed=11, missing=0.0)
    zc, tc = z.cuda().requires_grad_(), theta.cuda().requires_grad_()
    bad_edges = edges.clone()
    bad_edges[1, 1] = 10**9
    bad_edges[4, 0] = -(10**12)
    bad_labels = labels.clone()
    bad_labels[2, 3] = 10**12
    ec, lc = bad_edges.cuda(), bad_labels.cuda()

    out = ccnn_ext.pairwise_loglik(zc, tc, ec, labels.cuda())
    out.sum().backward()
    torch.cuda.synchronize()  # an out-of-bounds access would surface here
    out = out.detach().cpu()
    assert bool(torch.isnan(out[:, [1, 4]]).all()) and bool(torch.isfinite(out[:, [0, 2, 3, 5]]).all())
    assert bool(torch.isnan(tc.grad.cpu()[[1, 4]]).all())

    out = ccnn_ext.pairwise_loglik(zc.detach(), tc.detach(), edges.cuda(), lc).cpu()
    touches_3 = (edges == 3).any(1)
    assert bool(torch.isnan(out[2, touches_3]).all()) and bool(torch.isfinite(out[2, ~touches_3]).all())
    assert bool(torch.isfinite(out[[0, 1, 3, 4, 5]]).all())

    table = ccnn_ext.pairwise_logtable(zc, tc, ec)
    (table.nan_to_num(0.0)).sum().backward()
    torch.cuda.synchronize()
    table = table.detach().cpu()
    assert bool(torch.isnan(table[:, [1, 4]]).all()) and bool(torch.isfinite(table[:, [0, 2, 3, 5]]).all())

    # the internal backward ops, called directly with bad indices
    _, partials = ops.pairwise_loglik_fwd(z.cuda(), theta.cuda(), edges.cuda(), labels.cuda(), "probit")
    grad = torch.ones(partials.shape[:2], dtype=z.dtype, device="cuda")
    gz, gt = ops.pairwise_loglik_bwd(grad, partials, z.cuda(), ec, lc)
    gz2, gt2 = ops.pairwise_logtable_backward(torch.ones_like(table).cuda(), z.cuda(), theta.cuda(), ec, "probit")
    torch.cuda.synchronize()
    assert bool(torch.isnan(gt.cpu()[:, [1, 4]]).all()) and bool(torch.isnan(gt2.cpu()[:, [1, 4]]).all())
    assert bool(torch.isnan(gz.cpu()[2, 3]).all())


def test_internal_backward_ops_check_indices():
    z, theta, edges, labels = problem(B=3, Q=4, L=5, seed=12)
    zc, tc, ec, lc = z.cuda(), theta.cuda(), edges.cuda(), labels.cuda()
    _, partials = ops.pairwise_loglik_fwd(zc, tc, ec, lc, "probit")
    grad = torch.ones(partials.shape[:2], dtype=z.dtype, device="cuda")
    bad_edges = ec.clone()
    bad_edges[2, 1] = 10**9
    bad_labels = lc.clone()
    bad_labels[1, 2] = 10**12
    with pytest.raises(ValueError, match=r"edges must hold AU indices"):
        ops.pairwise_loglik_bwd(grad, partials, zc, bad_edges, lc)
    with pytest.raises(ValueError, match=r"labels must be in"):
        ops.pairwise_loglik_bwd(grad, partials, zc, ec, bad_labels)
    with pytest.raises(ValueError, match=r"edges must hold AU indices"):
        ops.pairwise_logtable_backward(torch.ones(3, 6, 5, 5, dtype=z.dtype, device="cuda"), zc, tc, bad_edges, "probit")


# ---- CUDA graphs -------------------------------------------------------------------------------

@pytest.mark.parametrize("checks", [False, True])
def test_training_step_captured_in_cuda_graph(checks):
    # with checks on, the capture must skip the synchronising validation by itself
    z0, theta0, edges, labels = problem(B=256, Q=6, L=6, seed=13, per_sample=False)
    z = z0.cuda().requires_grad_()
    theta = theta0.cuda().requires_grad_()
    ec, lc = edges.cuda(), labels.cuda()

    def step():
        loss = -ccnn_ext.pairwise_loglik(z, theta, ec, lc).sum()
        loss = loss - ccnn_ext.pairwise_logtable(z, theta, ec).exp().mul(0.5).sum()
        loss = loss - ccnn_ext.ordinal_logprob(z).sum()
        gz, gt = torch.autograd.grad(loss, (z, theta))
        return loss.detach(), gz, gt

    ccnn_ext.set_data_checks(checks)
    try:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                step()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static = step()
        # new inputs, in place
        g = torch.Generator().manual_seed(14)
        with torch.no_grad():
            z.add_(0.01 * torch.randn(z.shape, generator=g, dtype=z.dtype).cuda())
            theta.mul_(0.9)
        graph.replay()
        torch.cuda.synchronize()
        eager = step()
    finally:
        ccnn_ext.set_data_checks(True)
    for s, e in zip(static, eager):  # the same kernels on the same data
        torch.testing.assert_close(s, e, rtol=1e-13, atol=1e-13)


# ---- opcheck and empty sizes -------------------------------------------------------------------

def test_opcheck_cuda():
    z, theta, edges, labels = problem(B=3, Q=4, L=5, seed=15)
    zc, tc, ec, lc = z.cuda().requires_grad_(), theta.cuda().requires_grad_(), edges.cuda(), labels.cuda()
    for link in LINKS:
        torch.library.opcheck(ops.pairwise_loglik, (zc, tc, ec, lc, link))
        torch.library.opcheck(ops.pairwise_loglik_fwd, (zc, tc, ec, lc, link))
        torch.library.opcheck(ops.pairwise_logtable, (zc, tc, ec, link))
        torch.library.opcheck(ops.ordinal_logprob, (zc, link))
    _, partials = ops.pairwise_loglik_fwd(zc.detach(), tc.detach(), ec, lc, "probit")
    grad = torch.randn(partials.shape[:2], dtype=torch.float64, device="cuda")
    torch.library.opcheck(ops.pairwise_loglik_bwd, (grad, partials, zc.detach(), ec, lc))
    gt = torch.randn(3, ec.shape[0], 5, 5, dtype=torch.float64, device="cuda")
    torch.library.opcheck(ops.pairwise_logtable_backward, (gt, zc.detach(), tc.detach(), ec, "logit"))
    gl = torch.randn(3, 4, 5, dtype=torch.float64, device="cuda")
    torch.library.opcheck(ops.ordinal_logprob_backward, (gl, zc.detach(), ops.ordinal_logprob(zc.detach(), "probit"), "probit"))
    u = torch.rand(7, dtype=torch.float64, device="cuda", requires_grad=True)
    v = torch.rand(7, dtype=torch.float64, device="cuda", requires_grad=True)
    t = torch.tensor(3.0, dtype=torch.float64, device="cuda", requires_grad=True)
    torch.library.opcheck(ops.frank_copula, (u, v, t))


def test_gradcheck_cuda():
    z, theta, edges, labels = problem(B=3, Q=4, L=4, seed=16, theta_max=6.0)
    zc, tc, ec, lc = z.cuda().requires_grad_(), theta.cuda().requires_grad_(), edges.cuda(), labels.cuda()
    assert torch.autograd.gradcheck(lambda z, t: ccnn_ext.pairwise_loglik(z, t, ec, lc), (zc, tc))
    assert torch.autograd.gradcheck(lambda z, t: ccnn_ext.pairwise_logtable(z, t, ec, "logit"), (zc, tc))


@pytest.mark.parametrize("B, Q, E", [(0, 4, 3), (5, 4, 0), (0, 3, 0)])
def test_empty_sizes(B, Q, E):
    z = random_thresholds(max(B, 1), Q, 6, seed=17)[:B].cuda().requires_grad_()
    edges = all_pairs(Q)[:E].cuda()
    theta = torch.linspace(-2, 2, E, dtype=torch.float64, device="cuda").requires_grad_()
    labels = torch.zeros(B, Q, dtype=torch.int64, device="cuda")
    out = ccnn_ext.pairwise_loglik(z, theta, edges, labels)
    table = ccnn_ext.pairwise_logtable(z, theta, edges)
    assert out.shape == (B, E) and table.shape == (B, E, 6, 6)
    (out.sum() + table.sum()).backward()
    torch.cuda.synchronize()
    assert z.grad.shape == z.shape and bool((z.grad == 0).all())
    assert theta.grad.shape == theta.shape and bool((theta.grad == 0).all())


def test_large_batch_runs():
    # 2^17 (b, e) pairs: many blocks, the grid-stride loops and the CSR gather at scale
    z, theta, edges, labels = problem(B=8192, Q=6, L=6, seed=18, dtype=torch.float32)
    zc, tc = z.cuda().requires_grad_(), theta.cuda().requires_grad_()
    out = ccnn_ext.pairwise_loglik(zc, tc, edges.cuda(), labels.cuda())
    out.sum().backward()
    ref = ccnn_ext.pairwise_loglik(z.double(), theta.double(), edges, labels)
    kappa = 1 + theta.abs().max().item()
    err = (out.detach().cpu().double() - ref).abs()
    assert bool((err <= 1e-4 * kappa * (1 + ref.abs())).all())
    assert bool(torch.isfinite(zc.grad).all()) and bool(torch.isfinite(tc.grad).all())
    assert math.isfinite(out.sum().item())
