"""The fused Frank copula ops of ccnn: thin wrappers over ``torch.ops.ccnn.*``.

Kernels: ``csrc/copula/`` (math in ``frank_math.h``, CPU in ``copula_cpu.cpp``, CUDA in
``copula.cu``); argument shapes in ``csrc/copula/copula.h``; the long story in ``docs/copula.md``.

Every op takes float32 or float64 (one dtype per call), works on CPU and CUDA, has a fused
backward registered with ``torch.library.register_autograd`` and a fake implementation, so it
runs under ``torch.compile``, exports with ``torch.export`` and passes ``torch.library.opcheck``.

Numerics shared by the probability ops: probabilities are computed in log space without
subtracting copula values, so they keep full relative precision however small they are; a
log-probability is clamped below at ``LOG_PROB_FLOOR = log(1e-300)`` (the gradient is zero
there). float32 results agree with float64 to 1e-5 in log-probability at every theta (rounding
the cut-point CDFs to float costs about |theta| * 2.6e-7, so edges with |theta| > 30 are computed
in float64, levels included).

Bad arguments raise ``TypeError`` (dtype) or ``ValueError`` (shape, device, range, values) naming
the argument. The value checks (finite and strictly increasing ``z``, finite ``theta``, label and
edge ranges) cost one host synchronisation per call on CUDA; they are skipped while the current
stream is capturing a CUDA graph, and ``set_data_checks(False)`` turns them off (what a CUDA
training loop wants: no copula op then synchronises, so a step can be captured by CUDA graphs or
``torch.compile(mode="reduce-overhead")``). Without the checks, an out-of-range edge or label
index never crashes a CUDA kernel: the outputs that depend on it are NaN.
"""
import contextlib
import math

import torch

from . import _C

__all__ = [
    "LOG_PROB_FLOOR",
    "frank_copula",
    "ordinal_logprob",
    "pairwise_loglik",
    "pairwise_logtable",
    "set_data_checks",
    "data_checks",
    "data_checks_enabled",
]

LOG_PROB_FLOOR = math.log(1e-300)
_LINKS = ("probit", "logit")
_ops = torch.ops.ccnn


def set_data_checks(enabled: bool) -> None:
    """Turn the value checks of the copula ops on (default) or off, process-wide.

    On CUDA each checked call synchronises with the host once; with the checks off none does, and
    bad indices give NaN results instead of a ValueError. Shape, dtype and device checks stay, and
    on the CPU the index checks (edges, labels) always run."""
    _C.set_data_checks(bool(enabled))


@contextlib.contextmanager
def data_checks(enabled: bool):
    """The copula ops' value checks on or off inside a ``with`` block (the setting is restored
    after it). A CUDA training loop turns them off: each costs a host synchronisation."""
    previous = data_checks_enabled()
    set_data_checks(enabled)
    try:
        yield
    finally:
        set_data_checks(previous)


def data_checks_enabled() -> bool:
    return _C.data_checks_enabled()


def _check_link(link):
    if link not in _LINKS:
        raise ValueError(f'link must be "probit" or "logit", got {link!r}')
    return link


def _tensor(name, x):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    return x


def _as_tensor(name, x, like):
    """A tensor or numbers as a tensor beside `like` (a number next to an integer tensor becomes
    float64, so that the op names the tensor's dtype)."""
    if isinstance(x, torch.Tensor):
        return x
    dtype = like.dtype if like.is_floating_point() else torch.float64
    try:
        if x is None or isinstance(x, (str, bytes)):
            raise TypeError
        return torch.as_tensor(x, dtype=dtype, device=like.device)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{name} must be a tensor or numbers, got {type(x).__name__}") from None


# ------------------------------------------------------------------------------------------------
# public API
# ------------------------------------------------------------------------------------------------
def frank_copula(u, v, theta):
    """Frank copula C(u, v; theta), elementwise with broadcasting.

    Args:
        u, v: tensors (or numbers) with values in [0, 1].
        theta: finite Frank parameter(s), tensor or number; theta = 0 is independence (C = uv).
    Returns:
        C with the broadcast shape, differentiable in u, v and theta.

    Within the Frechet bounds max(u + v - 1, 0) <= C <= min(u, v) for every theta; float64 to
    ~1e-14 relative, derivatives to a few ulp relative to their scale (docs/copula.md). Near
    theta = 0 a series is used (|theta| < 3e-3 in float64, < 0.15 in float32).

    >>> import torch, ccnn_ext
    >>> ccnn_ext.frank_copula(torch.tensor([0.3, 0.5]), torch.tensor(0.6), 2.0)
    tensor([0.2268, 0.3576])
    """
    ref = next((t for t in (u, v, theta) if isinstance(t, torch.Tensor)), None)
    if ref is None:
        ref = torch.tensor(0.0)
    return _ops.frank_copula(_as_tensor("u", u, ref), _as_tensor("v", v, ref), _as_tensor("theta", theta, ref))


def ordinal_logprob(z, link="probit"):
    """Log-probabilities of the ordinal levels of each AU.

    Args:
        z: (B, Q, L-1) standardised thresholds (psi_k - mu) / sigma, strictly increasing along
            the last axis.
        link: "probit" (standard normal CDF) or "logit" (logistic CDF).
    Returns:
        (B, Q, L) log P(y_q = l) = log(F(z_l) - F(z_{l-1})) with F(z_{-1}) = 0, F(z_{L-1}) = 1,
        computed stably (scipy's _log_gauss_mass cases, a series for narrow intervals), clamped
        below at LOG_PROB_FLOOR; differentiable in z.

    >>> import torch, ccnn_ext
    >>> ccnn_ext.ordinal_logprob(torch.tensor([[[-1.0, 0.0, 1.0]]])).exp()
    tensor([[[0.1587, 0.3413, 0.3413, 0.1587]]])
    """
    return _ops.ordinal_logprob(_tensor("z", z), _check_link(link))


def pairwise_loglik(z, theta, edges, labels, link="probit"):
    """Log-likelihood of the observed label pair of every edge under its Frank copula.

    Args:
        z: (B, Q, L-1) standardised thresholds, strictly increasing along the last axis.
        theta: (E,) Frank parameters shared by the batch, or (B, E) per sample; finite.
        edges: (E, 2) int64 AU pairs (r, s) with r != s.
        labels: (B, Q) int64 levels in [-1, L-1]; -1 = not annotated.
        link: "probit" or "logit" marginal CDF.
    Returns:
        (B, E) log P(y_r = labels[:, r], y_s = labels[:, s]); 0 (and no gradient) where either
        label is -1; clamped below at LOG_PROB_FLOOR. Differentiable in z and theta.

    >>> import torch, ccnn_ext
    >>> z = torch.tensor([[[-0.5, 0.5], [0.0, 1.0]]])
    >>> ccnn_ext.pairwise_loglik(z, torch.tensor([4.0]), torch.tensor([[0, 1]]),
    ...                          torch.tensor([[0, 0]])).exp()
    tensor([[0.2448]])
    """
    z, edges, labels = _tensor("z", z), _tensor("edges", edges), _tensor("labels", labels)
    theta = _as_tensor("theta", theta, z)
    link = _check_link(link)
    if torch.is_grad_enabled() and (z.requires_grad or theta.requires_grad):
        # training: one pass computes the values and their local derivatives for the backward
        return _ops.pairwise_loglik_fwd(z, theta, edges, labels, link)[0]
    return _ops.pairwise_loglik(z, theta, edges, labels, link)


def pairwise_logtable(z, theta, edges, link="probit"):
    """Log joint table of every label pair of every edge (what the decoder consumes).

    Args: as pairwise_loglik, without labels.
    Returns:
        (B, E, L, L) log P(y_r = a, y_s = b), clamped below at LOG_PROB_FLOOR; each table's
        probabilities sum to 1 and its margins are the unary probabilities exp(ordinal_logprob).
        Differentiable in z and theta.

    >>> import torch, ccnn_ext
    >>> z = torch.tensor([[[0.0], [0.0]]])
    >>> ccnn_ext.pairwise_logtable(z, torch.tensor([0.0]), torch.tensor([[0, 1]])).exp()
    tensor([[[[0.2500, 0.2500],
              [0.2500, 0.2500]]]])
    """
    z, edges = _tensor("z", z), _tensor("edges", edges)
    return _ops.pairwise_logtable(z, _as_tensor("theta", theta, z), edges, _check_link(link))


# ------------------------------------------------------------------------------------------------
# autograd and fake (meta) implementations
# ------------------------------------------------------------------------------------------------
def _check_devices(ref_name, ref, **others):
    """The device check of the real ops (copula.h, check_same_device), for the fake implementations:
    under FakeTensorMode or on meta tensors a mismatch must fail the same way."""
    for name, t in others.items():
        if t.device != ref.device:
            raise ValueError(f"{name} must be on the device of {ref_name} ({ref.device}), got {t.device}")


@torch.library.register_fake("ccnn::frank_copula")
def _frank_copula_fake(u, v, theta):
    _check_devices("u", u, v=v, theta=theta)
    return u.new_empty(torch.broadcast_shapes(u.shape, v.shape, theta.shape))


@torch.library.register_fake("ccnn::frank_copula_backward")
def _frank_copula_backward_fake(grad, u, v, theta):
    _check_devices("u", u, v=v, theta=theta)
    _check_devices("the forward input", u, grad=grad)
    shape = torch.broadcast_shapes(u.shape, v.shape, theta.shape)
    return u.new_empty(shape), u.new_empty(shape), u.new_empty(shape)


def _frank_copula_setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _frank_copula_backward(ctx, grad):
    u, v, theta = ctx.saved_tensors
    grads = _ops.frank_copula_backward(grad, u, v, theta)
    return tuple(
        g.sum_to_size(x.shape) if needed else None
        for g, x, needed in zip(grads, (u, v, theta), ctx.needs_input_grad)
    )


torch.library.register_autograd(
    "ccnn::frank_copula", _frank_copula_backward, setup_context=_frank_copula_setup
)


@torch.library.register_fake("ccnn::ordinal_logprob")
def _ordinal_logprob_fake(z, link):
    return z.new_empty((z.shape[0], z.shape[1], z.shape[2] + 1))


@torch.library.register_fake("ccnn::ordinal_logprob_backward")
def _ordinal_logprob_backward_fake(grad, z, logp, link):
    _check_devices("the forward input", z, grad=grad)
    _check_devices("z", z, logp=logp)
    return torch.empty_like(z)


def _ordinal_logprob_setup(ctx, inputs, output):
    z, link = inputs
    ctx.save_for_backward(z, output)
    ctx.link = link


def _ordinal_logprob_backward(ctx, grad):
    z, logp = ctx.saved_tensors
    return _ops.ordinal_logprob_backward(grad, z, logp, ctx.link), None


torch.library.register_autograd(
    "ccnn::ordinal_logprob", _ordinal_logprob_backward, setup_context=_ordinal_logprob_setup
)


def _per_sample_theta_grad(grad_theta, theta):
    # The kernels return (B, E) per-sample gradients; a shared theta sums them (a deterministic
    # reduction, no atomics).
    return grad_theta.sum(0) if theta.dim() == 1 else grad_theta


@torch.library.register_fake("ccnn::pairwise_loglik")
def _pairwise_loglik_fake(z, theta, edges, labels, link):
    _check_devices("z", z, theta=theta, edges=edges, labels=labels)
    return z.new_empty((z.shape[0], edges.shape[0]))


@torch.library.register_fake("ccnn::pairwise_loglik_fwd")
def _pairwise_loglik_fwd_fake(z, theta, edges, labels, link):
    _check_devices("z", z, theta=theta, edges=edges, labels=labels)
    return z.new_empty((z.shape[0], edges.shape[0])), z.new_empty((z.shape[0], edges.shape[0], 5))


@torch.library.register_fake("ccnn::pairwise_loglik_bwd")
def _pairwise_loglik_bwd_fake(grad, partials, z, edges, labels):
    _check_devices("z", z, partials=partials, edges=edges, labels=labels)
    _check_devices("the forward input", z, grad=grad)
    return torch.empty_like(z), z.new_empty((z.shape[0], edges.shape[0]))


def _second_derivative_error(op_name):
    return RuntimeError(
        f"ccnn: second derivatives through {op_name} are not implemented (the op's backward "
        "is not differentiable); use torch.autograd.grad without create_graph=True"
    )


class _NoSecondDerivative(torch.autograd.Function):
    """The identity on a first derivative, with `inputs` (the op's inputs) as inputs: a second
    backward through it raises. pairwise_loglik's backward op takes the forward's local
    derivatives instead of theta, so without this, a gradient taken with create_graph=True would
    not depend on theta in autograd's eyes, and a second derivative in theta would be a silent 0."""

    @staticmethod
    def forward(ctx, derivative, op_name, *inputs):
        ctx.op_name = op_name
        return derivative.view_as(derivative)

    @staticmethod
    def backward(ctx, *grads):
        raise _second_derivative_error(ctx.op_name)


def _refuse_second_derivatives(op_name, derivatives, *inputs):
    """derivatives unchanged, except under create_graph=True with an input needing gradients:
    then each goes through _NoSecondDerivative."""
    if not torch.is_grad_enabled() or not any(t.requires_grad for t in inputs):
        return derivatives
    return tuple(None if d is None else _NoSecondDerivative.apply(d, op_name, *inputs) for d in derivatives)


def _pairwise_loglik_setup(ctx, inputs, output):
    z, theta, edges, labels, link = inputs
    ctx.save_for_backward(z, theta, edges, labels)
    ctx.link = link


def _pairwise_loglik_backward(ctx, grad):
    # Called only when the plain forward ran under autograd (the wrapper prefers
    # pairwise_loglik_fwd): recompute the local derivatives.
    z, theta, edges, labels = ctx.saved_tensors
    _, partials = _ops.pairwise_loglik_fwd(z, theta, edges, labels, ctx.link)
    grad_z, grad_theta = _ops.pairwise_loglik_bwd(grad, partials, z, edges, labels)
    grad_z, grad_theta = _refuse_second_derivatives(
        "pairwise_loglik", (grad_z, _per_sample_theta_grad(grad_theta, theta)), z, theta, grad)
    return grad_z, grad_theta, None, None, None


torch.library.register_autograd(
    "ccnn::pairwise_loglik", _pairwise_loglik_backward, setup_context=_pairwise_loglik_setup
)


def _pairwise_loglik_fwd_setup(ctx, inputs, output):
    z, theta, edges, labels, link = inputs
    ctx.mark_non_differentiable(output[1])
    ctx.save_for_backward(output[1], z, theta, edges, labels)


def _pairwise_loglik_fwd_backward(ctx, grad, grad_partials):
    partials, z, theta, edges, labels = ctx.saved_tensors
    grad_z, grad_theta = _ops.pairwise_loglik_bwd(grad, partials, z, edges, labels)
    grad_z, grad_theta = _refuse_second_derivatives(
        "pairwise_loglik", (grad_z, _per_sample_theta_grad(grad_theta, theta)), z, theta, grad)
    return grad_z, grad_theta, None, None, None


torch.library.register_autograd(
    "ccnn::pairwise_loglik_fwd", _pairwise_loglik_fwd_backward, setup_context=_pairwise_loglik_fwd_setup
)


@torch.library.register_fake("ccnn::pairwise_logtable")
def _pairwise_logtable_fake(z, theta, edges, link):
    _check_devices("z", z, theta=theta, edges=edges)
    L = z.shape[2] + 1
    return z.new_empty((z.shape[0], edges.shape[0], L, L))


@torch.library.register_fake("ccnn::pairwise_logtable_backward")
def _pairwise_logtable_backward_fake(grad, z, theta, edges, link):
    _check_devices("z", z, theta=theta, edges=edges)
    _check_devices("the forward input", z, grad=grad)
    return torch.empty_like(z), z.new_empty((z.shape[0], edges.shape[0]))


def _pairwise_logtable_setup(ctx, inputs, output):
    z, theta, edges, link = inputs
    ctx.save_for_backward(z, theta, edges)
    ctx.link = link


def _pairwise_logtable_backward(ctx, grad):
    z, theta, edges = ctx.saved_tensors
    grad_z, grad_theta = _ops.pairwise_logtable_backward(grad, z, theta, edges, ctx.link)
    return grad_z, _per_sample_theta_grad(grad_theta, theta), None, None


torch.library.register_autograd(
    "ccnn::pairwise_logtable", _pairwise_logtable_backward, setup_context=_pairwise_logtable_setup
)


# Second derivatives are not implemented. The backward ops get an autograd formula that refuses
# (at the second backward, with create_graph=True) instead of torch's default of a warning and a
# silent zero.
def _refuse_double_backward(op_name):
    def setup(ctx, inputs, output):
        pass

    def backward(ctx, *grads):
        raise _second_derivative_error(op_name)

    torch.library.register_autograd(f"ccnn::{op_name}", backward, setup_context=setup)


for _name in ("frank_copula_backward", "ordinal_logprob_backward", "pairwise_loglik_bwd",
              "pairwise_logtable_backward"):
    _refuse_double_backward(_name)


# Mixed precision: inside torch.autocast regions (bf16/fp16 on CUDA, bf16 on CPU) the ops' floating
# inputs are cast to float32, so they run and return in float32 (the kernels take float32 or
# float64; their accuracy needs at least float32).
for _name in ("frank_copula", "ordinal_logprob", "pairwise_loglik", "pairwise_loglik_fwd",
              "pairwise_logtable"):
    for _device in ("cpu", "cuda"):
        torch.library.register_autocast(f"ccnn::{_name}", _device, torch.float32)
