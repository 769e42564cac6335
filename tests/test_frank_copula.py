"""ccnn_ext.frank_copula: values and derivatives against mpmath at the extremes, the PyTorch
reference, gradcheck, continuity across theta = 0, boundaries, bad input, opcheck, CUDA parity."""
import itertools

import pytest
import torch

import ccnn_ext
from copula_reference import frank_copula as ref_frank
from copula_reference import mp_frank, mp_frank_grad

CUDA = torch.cuda.is_available() and ccnn_ext.built_with_cuda()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA device and a CUDA build")

THETAS = [-50.0, -7.5, -1.0, -0.1, -1e-6, 0.0, 1e-6, 2e-3, 4e-3, 0.2, 3.0, 50.0]
UNITS = [0.0, 1e-8, 0.03, 0.5, 0.77, 1 - 1e-8, 1.0]


def _grid():
    cases = list(itertools.product(UNITS, UNITS, THETAS))
    u, v, t = (torch.tensor(c, dtype=torch.float64) for c in zip(*cases))
    return cases, u, v, t


def _value_and_grads(u, v, t):
    u, v, t = (x.clone().requires_grad_() for x in (u, v, t))
    c = ccnn_ext.frank_copula(u, v, t)
    du, dv, dt = torch.autograd.grad(c.sum(), (u, v, t))
    return c.detach(), du, dv, dt


def test_float64_matches_mpmath_at_the_extremes():
    cases, u, v, t = _grid()
    c, du, dv, dt = _value_and_grads(u, v, t)
    for i, (uu, vv, tt) in enumerate(cases):
        want = float(mp_frank(uu, vv, tt))
        assert abs(c[i].item() - want) <= 1e-12 * abs(want), (uu, vv, tt, c[i].item(), want)
        gu, gv, gt = (float(x) for x in mp_frank_grad(uu, vv, tt))
        if 0 < uu < 1 and 0 < vv < 1:  # the derivatives of C at the square's edges are one-sided
            assert abs(du[i].item() - gu) <= 1e-8, (uu, vv, tt, "du", du[i].item(), gu)
            assert abs(dv[i].item() - gv) <= 1e-8, (uu, vv, tt, "dv", dv[i].item(), gv)
        assert abs(dt[i].item() - gt) <= 1e-8, (uu, vv, tt, "dtheta", dt[i].item(), gt)


def test_float64_derivatives_at_the_square_edges():
    # C(0, v) = C(u, 0) = 0, C(1, v) = v, C(u, 1) = u exactly; dC/du(u, 1) = 1, dC/du(u, 0) = 0;
    # dC/du(0, v) and dC/du(1, v) are the one-sided conditional CDFs.
    v = torch.tensor([1e-8, 0.3, 0.9], dtype=torch.float64)
    for theta in (-20.0, 0.0, 5.0):
        t = torch.full_like(v, theta)
        for edge in (0.0, 1.0):
            u = torch.full_like(v, edge)
            c, du, dv, dt = _value_and_grads(u, v, t)
            assert torch.equal(c, v * edge)
            assert torch.equal(dv, torch.full_like(v, edge))
            assert torch.equal(dt, torch.zeros_like(v))
            for i in range(3):
                want = float(mp_frank_grad(edge if edge else 1e-30, v[i].item(), theta)[0])
                if edge == 1.0:
                    want = float(mp_frank_grad(1 - 1e-30, v[i].item(), theta)[0])
                assert abs(du[i].item() - want) <= 1e-8
        c, du, dv, dt = _value_and_grads(v, torch.ones_like(v), t)
        assert torch.equal(c, v) and torch.equal(du, torch.ones_like(v))


def test_float32_matches_mpmath():
    cases, u, v, t = _grid()
    u32, v32, t32 = u.float(), v.float(), t.float()
    c = ccnn_ext.frank_copula(u32, v32, t32)
    for i in range(len(cases)):
        # compare at the float32-rounded inputs; the log-space forms give a relative error of
        # about |log C| * eps (3e-6 at C ~ 1e-16)
        want = float(mp_frank(u32[i].item(), v32[i].item(), t32[i].item()))
        assert abs(c[i].item() - want) <= 5e-6 * abs(want) + 1e-30, (cases[i], c[i].item(), want)


def test_matches_reference_and_gradcheck_on_random_inputs():
    g = torch.Generator().manual_seed(1)
    u = torch.rand(400, dtype=torch.float64, generator=g)
    v = torch.rand(400, dtype=torch.float64, generator=g)
    t = (torch.rand(400, dtype=torch.float64, generator=g) - 0.5) * 100
    torch.testing.assert_close(ccnn_ext.frank_copula(u, v, t), ref_frank(u, v, t), rtol=1e-12, atol=0)
    args = [x[:30].clone().requires_grad_() for x in (u, v, t)]
    assert torch.autograd.gradcheck(ccnn_ext.frank_copula, args)


def test_broadcasting_and_scalar_theta():
    u = torch.tensor([[0.2], [0.7]], dtype=torch.float64, requires_grad=True)  # (2, 1)
    v = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64, requires_grad=True)  # (3,)
    t = torch.tensor(4.0, dtype=torch.float64, requires_grad=True)
    c = ccnn_ext.frank_copula(u, v, t)
    assert c.shape == (2, 3)
    torch.testing.assert_close(c, ref_frank(u, v, t), rtol=1e-12, atol=0)
    assert torch.autograd.gradcheck(ccnn_ext.frank_copula, (u, v, t))
    c_number = ccnn_ext.frank_copula(u.detach(), v.detach(), 4.0)
    assert torch.equal(c_number, c.detach())


def test_continuity_across_theta_zero_and_the_series_switch():
    # Both sides of the series switch and a sweep through theta = 0 follow mpmath, so the switch
    # leaves no visible step in C or its derivatives.
    u = torch.tensor([0.1, 0.35, 0.8], dtype=torch.float64)
    v = torch.tensor([0.6, 0.35, 0.95], dtype=torch.float64)
    # tolerances for (C, dC/du, dC/dtheta); the closed-form dC/dtheta cancels to ~eps/|theta| at
    # the switch, the series' truncation error meets it there
    for dtype, switch, tol in ((torch.float64, 3e-3, (1e-14, 1e-13, 2e-12)),
                               (torch.float32, 0.15, (5e-7, 2e-6, 1e-5))):
        near_switch = [s * switch * (1 + d) for s in (1, -1) for d in (-1e-6, 1e-6)]
        sweep = torch.linspace(-2 * switch, 2 * switch, 41, dtype=torch.float64).tolist()
        uu, vv = u.to(dtype), v.to(dtype)
        for th in near_switch + sweep:
            th = float(torch.tensor(th, dtype=dtype))
            c, du, _, dt = _value_and_grads(uu, vv, torch.full((3,), th, dtype=dtype))
            for i in range(3):
                want = [float(x) for x in (mp_frank(float(uu[i]), float(vv[i]), th),
                                           *mp_frank_grad(float(uu[i]), float(vv[i]), th))]
                assert abs(c[i].item() - want[0]) <= tol[0], (dtype, th, i)
                assert abs(du[i].item() - want[1]) <= tol[1], (dtype, th, i)
                assert abs(dt[i].item() - want[3]) <= tol[2], (dtype, th, i)


def test_identities():
    g = torch.Generator().manual_seed(2)
    u = torch.rand(200, dtype=torch.float64, generator=g)
    v = torch.rand(200, dtype=torch.float64, generator=g)
    t = (torch.rand(200, dtype=torch.float64, generator=g) - 0.5) * 60
    c = ccnn_ext.frank_copula(u, v, t)
    torch.testing.assert_close(c, ccnn_ext.frank_copula(v, u, t), rtol=1e-14, atol=0)  # symmetry
    # reflection: C_theta(u, v) = u - C_{-theta}(u, 1 - v)
    torch.testing.assert_close(c, u - ccnn_ext.frank_copula(u, 1 - v, -t), rtol=0, atol=1e-14)
    assert bool((c >= (u + v - 1).clamp_min(0) - 1e-15).all() and (c <= torch.minimum(u, v) + 1e-15).all())


def test_non_contiguous_inputs():
    g = torch.Generator().manual_seed(3)
    u = torch.rand(6, 4, dtype=torch.float64, generator=g).t()
    v = torch.rand(8, 6, dtype=torch.float64, generator=g)[::2]
    t = (torch.randn(6, 8, dtype=torch.float64, generator=g) * 5).t()[::2]
    assert not u.is_contiguous() and not v.is_contiguous() and not t.is_contiguous()
    want = ccnn_ext.frank_copula(u.contiguous(), v.contiguous(), t.contiguous())
    assert torch.equal(ccnn_ext.frank_copula(u, v, t), want)


@pytest.mark.parametrize(
    "args, error, match",
    [
        ((torch.tensor([1.5]), torch.tensor([0.5]), torch.tensor([1.0])), ValueError, "u and v must lie in"),
        ((torch.tensor([0.5]), torch.tensor([-0.1]), torch.tensor([1.0])), ValueError, "u and v must lie in"),
        ((torch.tensor([0.5]), torch.tensor([float("nan")]), torch.tensor([1.0])), ValueError, "u and v"),
        ((torch.tensor([0.5]), torch.tensor([0.5]), torch.tensor([float("inf")])), ValueError, "theta must be finite"),
        ((torch.tensor([0.5]), torch.tensor([0.5], dtype=torch.float64), torch.tensor([1.0])), TypeError, "v must have the dtype of u"),
        ((torch.tensor([1, 0]), torch.tensor([0, 1]), torch.tensor([1, 1])), TypeError, "u must be float32 or float64"),
        # numbers beside an integer tensor: the tensor's dtype is named (not an int64 overflow of nan)
        ((torch.tensor([1, 0]), 0.5, float("nan")), TypeError, "u must be float32 or float64"),
        ((torch.rand(3), torch.rand(4), torch.tensor(1.0)), ValueError, "broadcastable"),
    ],
)
def test_bad_input(args, error, match):
    with pytest.raises(error, match=match):
        ccnn_ext.frank_copula(*args)


def test_opcheck():
    g = torch.Generator().manual_seed(4)
    u = torch.rand(5, 3, dtype=torch.float64, generator=g, requires_grad=True)
    v = torch.rand(3, dtype=torch.float64, generator=g, requires_grad=True)
    t = torch.tensor(-3.0, dtype=torch.float64, requires_grad=True)
    torch.library.opcheck(torch.ops.ccnn.frank_copula, (u, v, t))
    grad = torch.rand(5, 3, dtype=torch.float64, generator=g)
    torch.library.opcheck(torch.ops.ccnn.frank_copula_backward, (grad, u.detach(), v.detach(), t.detach()))


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_matches_cpu(dtype):
    cases, u, v, t = _grid()
    cpu = _value_and_grads(u.to(dtype), v.to(dtype), t.to(dtype))
    gpu = _value_and_grads(u.to(dtype).cuda(), v.to(dtype).cuda(), t.to(dtype).cuda())
    tol = 1e-12 if dtype == torch.float64 else 2e-6
    for a, b in zip(cpu, gpu):
        torch.testing.assert_close(b.cpu(), a, rtol=tol, atol=tol)


def test_docstring_examples():
    import doctest

    import ccnn_ext.copula

    result = doctest.testmod(ccnn_ext.copula)
    assert result.attempted >= 5 and result.failed == 0


def test_docs_example_runs():
    import pathlib
    import re

    text = (pathlib.Path(__file__).parents[1] / "docs" / "copula.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    exec(compile(code, "docs/copula.md", "exec"), {})
