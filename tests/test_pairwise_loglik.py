"""ccnn_ext.pairwise_loglik: against mpmath at the extremes, the PyTorch reference, float32 vs
float64, gradients (gradcheck, reference autograd), missing labels, shared vs per-sample theta,
non-contiguous inputs, determinism, bad input, opcheck, torch.compile, CUDA parity."""
import math

import mpmath
import pytest
import torch

import ccnn_ext
from copula_reference import (
    LOG_PROB_FLOOR,
    MP_DPS,
    all_pairs,
    mp_cell,
    mp_cuts,
    random_labels,
    random_thresholds,
)
from copula_reference import pairwise_loglik as ref_loglik

CUDA = torch.cuda.is_available() and ccnn_ext.built_with_cuda()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA device and a CUDA build")
LINKS = ["probit", "logit"]

# Thresholds whose CDFs sit at 1e-8 from 0 and 1 (probit), with a narrow level in the middle.
EDGE_Z = [-5.612001244174789, -1.0, 0.0, 1e-4, 5.612001244174789]
THETAS = [-50.0, -3.0, -1e-6, 0.0, 1e-6, 0.7, 50.0]


def problem(B=32, Q=5, L=6, seed=0, theta_scale=20.0, per_sample=False, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed + 100)
    z = random_thresholds(B, Q, L, seed=seed, spread=1.5).to(dtype)
    edges = all_pairs(Q)
    shape = (B, edges.shape[0]) if per_sample else (edges.shape[0],)
    theta = ((torch.rand(shape, generator=g, dtype=torch.float64) - 0.5) * 2 * theta_scale).to(dtype)
    return z, theta, edges, random_labels(B, Q, L, seed=seed)


def all_label_pairs(zr, zs, theta, link):
    """loglik of every label pair (a, c) of one edge: B = L * L samples with Q = 2."""
    L = len(zr) + 1
    z = torch.tensor([zr, zs], dtype=torch.float64).expand(L * L, 2, L - 1)
    labels = torch.tensor([(a, c) for a in range(L) for c in range(L)])
    return ccnn_ext.pairwise_loglik(z, torch.tensor([theta], dtype=torch.float64), all_pairs(2), labels, link)


@pytest.mark.parametrize("link", LINKS)
def test_float64_matches_mpmath_at_the_extremes(link):
    zs_rows = [EDGE_Z, [-2.0, -1.0 + 1e-6, -1.0 + 2e-6, 3.0, 4.0]]
    for theta in THETAS:
        got = all_label_pairs(EDGE_Z, zs_rows[1], theta, link)
        ur, vs = mp_cuts(EDGE_Z, link), mp_cuts(zs_rows[1], link)
        for a in range(6):
            for c in range(6):
                with mpmath.workdps(MP_DPS):
                    want = max(float(mpmath.log(mp_cell(ur, vs, a, c, theta))), LOG_PROB_FLOOR)
                assert abs(got[6 * a + c, 0].item() - want) <= 1e-11 * max(1.0, abs(want)), (theta, a, c)


@pytest.mark.parametrize("link", LINKS)
@pytest.mark.parametrize("per_sample", [False, True])
def test_matches_reference(link, per_sample):
    z, theta, edges, labels = problem(B=48, seed=1, theta_scale=50.0, per_sample=per_sample)
    theta.view(-1)[:3] = torch.tensor([0.0, 1e-9, -2e-3], dtype=theta.dtype)  # near and at 0
    got = ccnn_ext.pairwise_loglik(z, theta, edges, labels, link)
    want = ref_loglik(z, theta, edges, labels, link)
    observed = (labels[:, edges[:, 0]] >= 0) & (labels[:, edges[:, 1]] >= 0)
    assert bool((got[~observed] == 0).all())
    trusted = observed & (want >= math.log(1e-6))  # the reference's four-term difference cancels below
    assert trusted.sum() > 150
    # the reference's rounding error in P is ~1e-16 (the size of the copula values), so its log
    # is good to ~1e-16 / P
    tol = 1e-15 * torch.exp(-want[trusted]) + 1e-12
    assert bool(((got[trusted] - want[trusted]).abs() <= tol).all())
    assert bool((got[observed] >= LOG_PROB_FLOOR).all() and (got <= 0).all())


@pytest.mark.parametrize("link", LINKS)
def test_float32_within_1e4_of_float64(link):
    z, theta, edges, labels = problem(B=256, Q=6, seed=2, theta_scale=50.0, per_sample=True, dtype=torch.float32)
    lp32 = ccnn_ext.pairwise_loglik(z, theta, edges, labels, link)
    lp64 = ccnn_ext.pairwise_loglik(z.double(), theta.double(), edges, labels, link)
    big = lp64 >= math.log(1e-6)
    assert big.sum() > 2000
    assert (lp32.double() - lp64)[big].abs().max().item() <= 1e-4
    # log space keeps float32 relatively accurate below 1e-6 too
    assert ((lp32.double() - lp64).abs() <= 1e-4 * lp64.abs().clamp_min(1)).all()


@pytest.mark.parametrize("link", LINKS)
def test_gradcheck(link):
    z, theta, edges, labels = problem(B=4, Q=4, seed=3, theta_scale=10.0)
    theta[:2] = torch.tensor([0.0, -1e-7], dtype=theta.dtype)
    f = lambda z, t: ccnn_ext.pairwise_loglik(z, t, edges, labels, link)  # noqa: E731
    assert torch.autograd.gradcheck(f, (z.requires_grad_(), theta.requires_grad_()))
    # per-sample theta beyond float range and near the fallback regime (large theta, large P)
    theta2 = torch.tensor([[60.0, -80.0, 30.0, -0.2, 45.0, 2.0]] * 4, dtype=torch.float64)
    assert torch.autograd.gradcheck(f, (z, theta2.requires_grad_()))
    # the plain op's own backward (recomputing the local derivatives)
    g = lambda z, t: torch.ops.ccnn.pairwise_loglik(z, t, edges, labels, link)  # noqa: E731
    assert torch.autograd.gradcheck(g, (z, theta))


@pytest.mark.parametrize("link", LINKS)
def test_gradients_match_reference_autograd(link):
    z, theta, edges, labels = problem(B=16, seed=4, theta_scale=20.0)
    labels = labels.clamp_min(0)
    mask = ref_loglik(z, theta, edges, labels, link) > math.log(1e-3)
    grads = []
    for f in (ccnn_ext.pairwise_loglik, ref_loglik):
        zz, tt = z.clone().requires_grad_(), theta.clone().requires_grad_()
        (f(zz, tt, edges, labels, link) * mask).sum().backward()
        grads.append((zz.grad, tt.grad))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-8)


def test_missing_labels_give_zero_and_no_gradient():
    z, theta, edges, labels = problem(B=6, Q=4, seed=5)
    labels[0] = -1
    labels[1, 2] = -1
    z.requires_grad_()
    theta.requires_grad_()
    out = ccnn_ext.pairwise_loglik(z, theta, edges, labels)
    assert bool((out[0] == 0).all())
    touches_2 = (edges == 2).any(1)
    assert bool((out[1, touches_2] == 0).all()) and bool((out[1, ~touches_2] < 0).all())
    out.sum().backward()
    assert bool((z.grad[0] == 0).all()) and bool((z.grad[1, 2] == 0).all())


def test_shared_theta_equals_per_sample_theta():
    z, theta, edges, labels = problem(B=10, seed=6)
    t1 = theta.clone().requires_grad_()
    t2 = theta.expand(10, -1).clone().requires_grad_()
    a = ccnn_ext.pairwise_loglik(z, t1, edges, labels)
    b = ccnn_ext.pairwise_loglik(z, t2, edges, labels)
    assert torch.equal(a, b)
    a.sum().backward()
    b.sum().backward()
    torch.testing.assert_close(t1.grad, t2.grad.sum(0), rtol=1e-14, atol=1e-14)


def test_non_contiguous_inputs_and_determinism():
    z, theta, edges, labels = problem(B=12, Q=5, seed=7, per_sample=True)
    zn = z.transpose(0, 1).contiguous().transpose(0, 1)
    tn = theta.t().contiguous().t()
    en = edges.t().contiguous().t()
    ln = labels.t().contiguous().t()
    assert not any(x.is_contiguous() for x in (zn, tn, en, ln))
    want = ccnn_ext.pairwise_loglik(z, theta, edges, labels)
    assert torch.equal(ccnn_ext.pairwise_loglik(zn, tn, en, ln), want)
    # bitwise identical values and gradients whatever the number of threads
    results = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            zz, tt = z.clone().requires_grad_(), theta.clone().requires_grad_()
            out = ccnn_ext.pairwise_loglik(zz, tt, edges, labels)
            out.sum().backward()
            results.append((out, zz.grad, tt.grad))
    finally:
        torch.set_num_threads(threads)
    for r in results[1:]:
        assert all(torch.equal(a, b) for a, b in zip(r, results[0]))


def _bad_cases():
    z, theta, edges, labels = problem(B=3, Q=4, L=4, seed=8)
    cases = {
        "rank": (z[0], theta, edges, labels, ValueError, r"z must have shape \(B, Q, L-1\)"),
        "theta shape": (z, theta[:-1], edges, labels, ValueError, r"theta must have shape \(E,\)"),
        "theta dtype": (z, theta.float(), edges, labels, TypeError, "theta must have the dtype of z"),
        "z dtype": (z.long(), theta, edges, labels, TypeError, "z must be float32 or float64"),
        "edges dtype": (z, theta, edges.int(), labels, TypeError, "edges must be int64"),
        "edges shape": (z, theta, edges[:, :1], labels, ValueError, r"edges must have shape \(E, 2\)"),
        "labels dtype": (z, theta, edges, labels.float(), TypeError, "labels must be int64"),
        "labels shape": (z, theta, edges, labels[:, :2], ValueError, r"labels must have shape \(B, Q\)"),
    }
    e = edges.clone()
    e[2, 1] = 4
    cases["edge out of range"] = (z, theta, e, labels, ValueError, r"edges must hold AU indices in \[0, Q-1\]")
    e = edges.clone()
    e[1, 1] = e[1, 0]
    cases["r == s"] = (z, theta, e, labels, ValueError, r"r != s")
    for bad in (-2, 4):
        lab = labels.clone()
        lab[1, 2] = bad
        cases[f"label {bad}"] = (z, theta, edges, lab, ValueError, r"labels must be in \[-1, L-1\]")
    zz = z.clone()
    zz[2, 1, 1] = zz[2, 1, 0]
    cases["not increasing"] = (zz, theta, edges, labels, ValueError, r"strictly increasing.*z\[2, 1\]")
    zz = z.clone()
    zz[0, 3, 2] = float("nan")
    cases["z nan"] = (zz, theta, edges, labels, ValueError, r"z must be finite; z\[0, 3, 2\]")
    tt = theta.clone()
    tt[4] = float("inf")
    cases["theta inf"] = (z, tt, edges, labels, ValueError, r"theta must be finite; theta\[4\]")
    return cases


@pytest.mark.parametrize("case", list(_bad_cases()))
def test_bad_input(case):
    z, theta, edges, labels, error, match = _bad_cases()[case]
    with pytest.raises(error, match=match):
        ccnn_ext.pairwise_loglik(z, theta, edges, labels)
    with pytest.raises(error, match=match):  # the training path checks the same
        ccnn_ext.pairwise_loglik(z.requires_grad_() if z.is_floating_point() else z, theta, edges, labels)


def test_bad_link():
    z, theta, edges, labels = problem(B=2, Q=3, seed=9)
    with pytest.raises(ValueError, match="link must be"):
        ccnn_ext.pairwise_loglik(z, theta, edges, labels, link="tanh")


def test_arguments_that_are_not_tensors_are_named():
    """Lists and None reached the dispatcher ('Expected a value of type Tensor', 'no fallback function
    is registered') or Python ('must be real number, not NoneType')."""
    z, theta, edges, labels = problem(B=2, Q=3, seed=9)
    table_args = dict(z=z, theta=theta, edges=edges)
    for op, args in ((ccnn_ext.pairwise_loglik, dict(table_args, labels=labels)),
                     (ccnn_ext.pairwise_logtable, table_args), (ccnn_ext.ordinal_logprob, dict(z=z))):
        for name in args:
            for bad in (None, [[0.0, 1.0]]):
                if name == "theta" and bad is not None:
                    continue  # (numbers are fine for theta)
                expected = (f"{name} must be a tensor or numbers, got NoneType" if name == "theta"
                            else f"{name} must be a torch.Tensor, got {type(bad).__name__}")
                with pytest.raises(TypeError, match=expected):
                    op(**{**args, name: bad})
    for name in ("u", "v", "theta"):
        with pytest.raises(TypeError, match=f"{name} must be a tensor or numbers, got str"):
            ccnn_ext.frank_copula(**{"u": 0.3, "v": 0.4, "theta": 2.0, name: "x"})
    assert torch.equal(ccnn_ext.pairwise_loglik(z, theta.tolist(), edges, labels),
                       ccnn_ext.pairwise_loglik(z, theta, edges, labels))


def test_data_checks_can_be_turned_off():
    z, theta, edges, labels = problem(B=2, Q=3, seed=10)
    labels[0, 0] = 7
    assert ccnn_ext.data_checks_enabled()
    with pytest.raises(ValueError):
        ccnn_ext.pairwise_loglik(z, theta, edges, labels)
    labels[0, 0] = 1
    ccnn_ext.set_data_checks(False)
    try:
        torch.testing.assert_close(ccnn_ext.pairwise_loglik(z, theta, edges, labels),
                                   ref_loglik(z, theta, edges, labels), rtol=1e-9, atol=1e-9)
    finally:
        ccnn_ext.set_data_checks(True)


def test_opcheck():
    z, theta, edges, labels = problem(B=3, Q=4, seed=11)
    z.requires_grad_()
    theta.requires_grad_()
    for link in LINKS:
        torch.library.opcheck(torch.ops.ccnn.pairwise_loglik, (z, theta, edges, labels, link))
        torch.library.opcheck(torch.ops.ccnn.pairwise_loglik_fwd, (z, theta, edges, labels, link))
    _, partials = torch.ops.ccnn.pairwise_loglik_fwd(z.detach(), theta.detach(), edges, labels, "probit")
    grad = torch.randn(3, edges.shape[0], dtype=torch.float64)
    torch.library.opcheck(torch.ops.ccnn.pairwise_loglik_bwd, (grad, partials, z.detach(), edges, labels))


def test_torch_compile_fullgraph_smoke():
    # backend "aot_eager" traces the ops through their fake implementations and autograd
    # formulas (everything inductor relies on) in ~3 s; inductor's C++ code generation adds ~20 s
    # on a small CPU machine, too slow for the unit tests.
    z, theta, edges, labels = problem(B=8, Q=4, seed=12)

    def loss(z, theta):
        return -ccnn_ext.pairwise_loglik(z, theta, edges, labels).sum() - ccnn_ext.ordinal_logprob(z).sum()

    torch._dynamo.reset()
    compiled = torch.compile(loss, fullgraph=True, backend="aot_eager")
    zz, tt = z.clone().requires_grad_(), theta.clone().requires_grad_()
    zc, tc = z.clone().requires_grad_(), theta.clone().requires_grad_()
    loss(zz, tt).backward()
    out = compiled(zc, tc)
    out.backward()
    torch.testing.assert_close(out, loss(z, theta), rtol=1e-14, atol=1e-12)
    torch.testing.assert_close(zc.grad, zz.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(tc.grad, tt.grad, rtol=1e-12, atol=1e-12)


@needs_cuda
def test_device_mismatch():
    z, theta, edges, labels = problem(B=2, Q=3, seed=13)
    with pytest.raises(ValueError, match="theta must be on the device of z"):
        ccnn_ext.pairwise_loglik(z.cuda(), theta, edges.cuda(), labels.cuda())
    with pytest.raises(ValueError, match="labels must be on the device of z"):
        ccnn_ext.pairwise_loglik(z.cuda(), theta.cuda(), edges.cuda(), labels)
    # z on the CPU, the rest on CUDA: the CUDA kernel is dispatched, and must refuse before it
    # builds a device guard on the CPU device
    with pytest.raises(ValueError, match="z must be on the CUDA device of the other arguments"):
        ccnn_ext.pairwise_loglik(z, theta.cuda(), edges.cuda(), labels.cuda())


@needs_cuda
@pytest.mark.parametrize("link", LINKS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("per_sample", [False, True])
def test_cuda_matches_cpu(link, dtype, per_sample):
    z, theta, edges, labels = problem(B=64, Q=6, seed=14, theta_scale=60.0, per_sample=per_sample, dtype=dtype)
    outs = []
    for device in ("cpu", "cuda"):
        zz = z.to(device).requires_grad_()
        tt = theta.to(device).requires_grad_()
        out = ccnn_ext.pairwise_loglik(zz, tt, edges.to(device), labels.to(device), link)
        out.sum().backward()
        outs.append([x.cpu() for x in (out, zz.grad, tt.grad)])
    tol = 1e-11 if dtype == torch.float64 else 2e-4
    for a, b in zip(*outs):
        torch.testing.assert_close(b, a, rtol=tol, atol=tol)
    # bad data is caught on the device too
    lab = labels.clone()
    lab[0, 0] = 9
    with pytest.raises(ValueError, match="labels must be in"):
        ccnn_ext.pairwise_loglik(z.cuda(), theta.cuda(), edges.cuda(), lab.cuda(), link)
