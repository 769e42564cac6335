"""Edges of the copula ops' domain: results that used to be silently wrong (issue 9, point 3)."""
import math

import pytest
import torch

import ccnn_ext

Z = torch.tensor([[[1.5, 2.0, 2.5, 3.0, 3.5], [1.5, 2.0, 2.5, 3.0, 3.5], [-1.0, 0.0, 0.5, 1.0, 2.0]]])
EDGES = torch.tensor([[0, 1], [1, 2]])
LABELS = torch.tensor([[0, 0, 3]])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("theta", [1e3, 1e4, 150.0, 88.0, 709.0])
def test_frank_copula_within_frechet_bounds(dtype, theta):
    u = torch.tensor([0.75, 0.66, 0.3, 1e-6, 0.999999], dtype=dtype)
    v = torch.tensor([0.75, 0.70, 0.9, 0.5, 0.999998], dtype=dtype)
    c = ccnn_ext.frank_copula(u, v, torch.tensor(theta, dtype=dtype))
    assert torch.isfinite(c).all()
    assert (c <= torch.minimum(u, v)).all()
    assert (c >= (u + v - 1).clamp_min(0) - 4 * torch.finfo(dtype).eps).all()
    # C(u, u) = u - log(2) / theta + O(e^{-theta min(u, 1-u)}) for large theta
    assert c[0].item() == pytest.approx(0.75 - math.log(2) / theta, rel=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_frank_copula_theta_gradient_finite_for_huge_theta(dtype):
    u = torch.tensor([0.75, 0.3], dtype=dtype)
    v = torch.tensor([0.75, 0.9], dtype=dtype)
    theta = torch.tensor(1e3, dtype=dtype, requires_grad=True)
    ccnn_ext.frank_copula(u, v, theta).sum().backward()
    # diagonal point: log(2) / theta^2; the other is exponentially small
    assert theta.grad.item() == pytest.approx(math.log(2) / 1e6, rel=1e-4)


@pytest.mark.parametrize("dtype,tiny", [(torch.float64, 1e-310), (torch.float32, 1e-40)])
def test_subnormal_theta_is_independence(dtype, tiny):
    z = Z.to(dtype)
    theta = torch.full((2,), tiny, dtype=dtype)
    pair = ccnn_ext.pairwise_loglik(z, theta, EDGES, LABELS)
    unary = ccnn_ext.ordinal_logprob(z)[0]
    expected = torch.stack([unary[0, 0] + unary[1, 0], unary[1, 0] + unary[2, 3]])
    torch.testing.assert_close(pair[0], expected, rtol=1e-6, atol=1e-6)
    table = ccnn_ext.pairwise_logtable(z, theta, EDGES)
    torch.testing.assert_close(table[0, 0], unary[0][:, None] + unary[1][None, :], rtol=1e-6, atol=1e-6)


def test_subnormal_threshold_gaps_give_finite_gradients():
    z = torch.tensor([[[0.0, 1e-44, 2e-44, 1.0, 2.0]]], dtype=torch.float32, requires_grad=True)
    ccnn_ext.ordinal_logprob(z).sum().backward()
    assert torch.isfinite(z.grad).all()
    z2 = torch.cat([z.detach(), z.detach()], 1).requires_grad_()
    table = ccnn_ext.pairwise_logtable(z2, torch.tensor([3.0]), torch.tensor([[0, 1]]))
    table.sum().backward()
    assert torch.isfinite(z2.grad).all()


@pytest.mark.parametrize("checks", [True, False])
@pytest.mark.parametrize("bad", [10**9, 10**12, -5])
def test_out_of_range_indices_raise_on_every_entry_point(checks, bad):
    z = Z.clone()
    edges = torch.tensor([[0, 1], [1, bad]])
    labels_bad = torch.tensor([[0, bad, 1]])
    calls = [
        lambda: ccnn_ext.pairwise_loglik(z, torch.ones(2), edges, LABELS),
        lambda: ccnn_ext.pairwise_loglik(z, torch.ones(2), EDGES, labels_bad),
        lambda: ccnn_ext.pairwise_logtable(z, torch.ones(2), edges),
        lambda: torch.ops.ccnn.pairwise_loglik_bwd(torch.ones(1, 2), torch.ones(1, 2, 5), z, edges, LABELS),
        lambda: torch.ops.ccnn.pairwise_loglik_bwd(torch.ones(1, 2), torch.ones(1, 2, 5), z, EDGES, labels_bad),
        lambda: torch.ops.ccnn.pairwise_logtable_backward(torch.ones(1, 2, 6, 6), z, torch.ones(2), edges, "probit"),
    ]
    ccnn_ext.set_data_checks(checks)
    try:
        for call in calls:
            with pytest.raises(ValueError, match="edges|labels"):
                call()
    finally:
        ccnn_ext.set_data_checks(True)


@pytest.mark.parametrize("op", ["loglik", "logtable", "ordinal", "frank"])
def test_double_backward_is_refused(op):
    z = Z.double().requires_grad_()
    theta = torch.tensor([2.0, -1.0], dtype=torch.float64, requires_grad=True)
    out = {
        "loglik": lambda: ccnn_ext.pairwise_loglik(z, theta, EDGES, LABELS),
        "logtable": lambda: ccnn_ext.pairwise_logtable(z, theta, EDGES),
        "ordinal": lambda: ccnn_ext.ordinal_logprob(z),
        "frank": lambda: ccnn_ext.frank_copula(torch.sigmoid(z), torch.sigmoid(z), theta[0]),
    }[op]().sum()
    (grad,) = torch.autograd.grad(out, z, create_graph=True)
    with pytest.raises(RuntimeError, match="second derivatives"):
        grad.sum().backward()


@pytest.mark.parametrize("op", ["loglik", "loglik_plain", "logtable", "frank"])
@pytest.mark.parametrize("needs_grad", ["theta", "z", "both"])
def test_second_derivatives_are_refused_whatever_needs_gradients(op, needs_grad):
    """A gradient penalty differentiates the first gradient again. With only theta needing
    gradients, pairwise_loglik's gradient once came out as a constant (its backward op takes the
    forward's local derivatives, not theta), and the penalty's own gradient was a silent 0; it
    must raise whichever inputs need gradients."""
    z = Z.double().requires_grad_(needs_grad != "theta")
    theta = torch.tensor([2.0, -1.0], dtype=torch.float64, requires_grad=needs_grad != "z")
    out = {
        "loglik": lambda: ccnn_ext.pairwise_loglik(z, theta, EDGES, LABELS),
        "loglik_plain": lambda: torch.ops.ccnn.pairwise_loglik(z, theta, EDGES, LABELS, "probit"),
        "logtable": lambda: ccnn_ext.pairwise_logtable(z, theta, EDGES),
        "frank": lambda: ccnn_ext.frank_copula(torch.sigmoid(z), torch.sigmoid(z), theta[0]),
    }[op]().sum()
    inputs = [x for x in (z, theta) if x.requires_grad]
    grads = torch.autograd.grad(out, inputs, create_graph=True)
    penalty = sum((g ** 2).sum() for g in grads)
    with pytest.raises(RuntimeError, match="second derivatives"):
        torch.autograd.grad(penalty, inputs)
    # without create_graph the first derivatives are those of the plain backward
    plain = torch.autograd.grad(out, inputs, retain_graph=True)
    for g, p in zip(grads, plain):
        torch.testing.assert_close(g.detach(), p, rtol=0, atol=0)


def test_vmap_of_the_forward_matches_a_loop():
    z = Z.double()
    thetas = torch.tensor([[2.0, -1.0], [0.0, 40.0], [-300.0, 1e-3]], dtype=torch.float64)
    for op in (lambda zz, th: ccnn_ext.pairwise_loglik(zz, th, EDGES, LABELS),
               lambda zz, th: ccnn_ext.pairwise_logtable(zz, th, EDGES)):
        batched = torch.func.vmap(lambda th: op(z, th))(thetas)
        torch.testing.assert_close(batched, torch.stack([op(z, th) for th in thetas]), rtol=0, atol=0)
        shifted = torch.stack([z, z - 0.25])
        batched = torch.func.vmap(lambda zz: op(zz, thetas[0]))(shifted)
        torch.testing.assert_close(batched, torch.stack([op(zz, thetas[0]) for zz in shifted]), rtol=0, atol=0)
    shifted = torch.stack([z, z + 1.0])
    torch.testing.assert_close(torch.func.vmap(ccnn_ext.ordinal_logprob)(shifted),
                               torch.stack([ccnn_ext.ordinal_logprob(zz) for zz in shifted]), rtol=0, atol=0)


class _EveryOp(torch.nn.Module):
    """Thresholds from features, then every copula op on them (what a deployed scorer computes)."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 3 * 5, dtype=torch.float64)
        self.theta = torch.nn.Parameter(torch.tensor([4.0, -250.0], dtype=torch.float64))
        self.register_buffer("edges", EDGES.clone())
        self.register_buffer("labels_", LABELS.clone())

    def forward(self, x):
        z = torch.cumsum(torch.nn.functional.softplus(self.linear(x).view(-1, 3, 5)), -1) - 3.0
        labels = self.labels_.expand(x.shape[0], -1)
        u = torch.sigmoid(z[:, 0])
        return (ccnn_ext.ordinal_logprob(z, "logit"), ccnn_ext.pairwise_loglik(z, self.theta, self.edges, labels),
                ccnn_ext.pairwise_logtable(z, self.theta, self.edges), ccnn_ext.frank_copula(u, u.flip(-1), self.theta[0]))


def test_torch_export_with_a_dynamic_batch_saves_loads_and_checks_its_input(tmp_path):
    torch.manual_seed(0)
    module = _EveryOp()
    x = torch.randn(5, 4, dtype=torch.float64)
    exported = torch.export.export(module, (x,), dynamic_shapes={"x": {0: torch.export.Dim("batch")}})
    ops = {str(node.target) for node in exported.graph.nodes if node.op == "call_function"}
    assert {"ccnn.ordinal_logprob.default", "ccnn.pairwise_logtable.default", "ccnn.frank_copula.default"} <= ops
    assert ops & {"ccnn.pairwise_loglik.default", "ccnn.pairwise_loglik_fwd.default"}
    torch.export.save(exported, tmp_path / "scorer.pt2")
    loaded = torch.export.load(tmp_path / "scorer.pt2").module()
    for batch in (5, 1, 9):
        x = torch.randn(batch, 4, dtype=torch.float64)
        with torch.no_grad():
            for got, expected in zip(loaded(x), module(x)):
                torch.testing.assert_close(got, expected, rtol=0, atol=0)
    with torch.no_grad():
        module.linear.bias.fill_(float("nan"))  # thresholds that are not finite: refused by name
    exported = torch.export.export(module, (x,))
    with pytest.raises(ValueError, match="z must be finite"):
        exported.module()(x)


@pytest.mark.parametrize("input_dtype", [torch.bfloat16, torch.float32])
def test_autocast_runs_in_float32(input_dtype):
    z = Z.to(input_dtype).requires_grad_()
    theta = torch.tensor([4.0, -2.0], dtype=input_dtype, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outs = [
            ccnn_ext.pairwise_loglik(z, theta, EDGES, LABELS),
            ccnn_ext.pairwise_logtable(z, theta, EDGES),
            ccnn_ext.ordinal_logprob(z),
            ccnn_ext.frank_copula(torch.sigmoid(z), torch.sigmoid(z), theta[0]),
        ]
    assert all(o.dtype == torch.float32 for o in outs)
    sum(o.sum() for o in outs).backward()
    assert z.grad.dtype == input_dtype and torch.isfinite(z.grad).all()
    # the float32 result of the rounded inputs, not a bfloat16 one
    expected = ccnn_ext.pairwise_loglik(Z.to(input_dtype).float(), theta.detach().float(), EDGES, LABELS)
    torch.testing.assert_close(outs[0].detach(), expected)


def test_data_checks_context_restores_the_setting():
    z = torch.tensor([[[1.0, 0.0]]])  # not increasing
    with ccnn_ext.data_checks(False):
        assert not ccnn_ext.data_checks_enabled()
        ccnn_ext.ordinal_logprob(z)  # value rules off: no error
    assert ccnn_ext.data_checks_enabled()
    with pytest.raises(ValueError, match="strictly increasing"):
        ccnn_ext.ordinal_logprob(z)
