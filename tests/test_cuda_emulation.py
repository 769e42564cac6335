"""The CUDA kernels of the copula ops (csrc/copula/*.cu) run on the CPU, through the emulation of
tests/cuda_emulation/cuda_runtime.h (in kernels that synchronise, every CUDA thread an OS thread
and real barriers for __syncthreads and the warp shuffles and ballots), against the CPU kernels
(tests/cpp/test_cuda_emulation.cpp runs them under the sanitizers): every launcher, both
dtypes, both links, shared and per-sample theta, L = 2 and 6 (specialised kernels), 9 (generic)
and 17 (the table backward's multi-pass path), missing labels, NaN for out-of-range indices, the
validation kernels' first offending indices, and bitwise repeatability under thread scheduling.

This runs the kernels' logic (indexing, work split, grid-stride loops, shared-memory reductions,
warp-collective code) on machines without a GPU; tests/test_copula_cuda.py runs the same
comparisons on a real device. Checked to fail on four planted bugs: an off-by-one in the
incidence scan's warp shuffle, a dropped cell in the table backward's theta sum, a missing
barrier between its passes, and a wrong level count on the 64-bit index path (a crash: the
emulated kernels run in this process, so an out-of-bounds write can take pytest down). Not covered here: the GPU memory model (a race shows only when the
threads happen to be scheduled so), libdevice's rounding (glibc's here), launch limits beyond the block and
grid sizes. Every test runs twice: with the kernels a call picks (32-bit indices, tables
specialised on L) and with the 64-bit index kernels that calls above 2^30 elements take (built
with CCNN_CUDA_INDEX64). The two libraries are built with the host compiler into
build/cuda-emulation/ (about 15 s each, once per change of their sources).
"""
import ctypes
import hashlib
import pathlib
import shutil
import subprocess
import sys

import pytest
import torch

import ccnn_ext
from copula_reference import all_pairs, random_labels, random_thresholds
from test_copula_cuda import assert_as_accurate, problem

ROOT = pathlib.Path(__file__).resolve().parents[1]
EMULATION = ROOT / "tests" / "cuda_emulation"
KERNELS = sorted((ROOT / "csrc" / "copula").glob("*.cu"))
ops = torch.ops.ccnn
LINKS = {"probit": 0, "logit": 1}
DTYPES = [torch.float32, torch.float64]
NO_ERROR = 2**63 - 1


def build_library(index64):
    """The emulated kernels as a shared library, rebuilt when a source changes; index64: built
    with CCNN_CUDA_INDEX64 (every call takes the 64-bit index kernels)."""
    compiler = shutil.which("c++") or shutil.which("g++")
    if compiler is None:
        pytest.skip("no C++ compiler")
    sources = sorted((ROOT / "csrc" / "copula").iterdir()) + sorted(EMULATION.iterdir())
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources if p.is_file())).hexdigest()[:16]
    folder = ROOT / "build" / "cuda-emulation" / ("index64" if index64 else "index32")
    library = folder / f"libcopula_emulated_{digest}.so"
    if library.exists():
        return library
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.iterdir():  # (builds of earlier sources)
        stale.unlink()
    rewritten = []
    for kernel in KERNELS:
        out = folder / f"{kernel.stem}_{digest}.cpp"
        subprocess.run([sys.executable, str(EMULATION / "rewrite_launches.py"), str(kernel), str(out)], check=True)
        rewritten.append(str(out))
    partial = library.with_suffix(".partial")
    command = [compiler, "-std=c++17", "-O1", "-ffp-contract=off", "-fPIC", "-shared", "-pthread",
               *(["-DCCNN_CUDA_INDEX64"] if index64 else []), f"-I{EMULATION}", f"-I{ROOT / 'csrc'}",
               *rewritten, str(EMULATION / "entry.cpp"), "-o", str(partial)]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, f"building the emulated kernels failed:\n{result.stderr[-4000:]}"
    partial.rename(library)
    return library


@pytest.fixture(scope="module", params=["index32", "index64"])
def emu(request):
    return ctypes.CDLL(str(build_library(request.param == "index64")))


def call(lib, name, dtype, *args):
    """Calls the entry point `name` for dtype: tensors by data pointer (contiguous CPU), None as a
    null pointer, Flag as a C int, other ints as int64."""
    function = getattr(lib, f"{name}_{'f32' if dtype == torch.float32 else 'f64'}")
    converted = []
    for a in args:
        if isinstance(a, torch.Tensor):
            assert a.is_contiguous() and a.device.type == "cpu"
            converted.append(ctypes.c_void_p(a.data_ptr()))
        elif a is None:
            converted.append(ctypes.c_void_p(0))
        elif isinstance(a, Flag):
            converted.append(ctypes.c_int(a.value))
        else:
            converted.append(ctypes.c_int64(a))
    status = function(*converted)
    assert status == 0, f"{name}: launch status {status}"


class Flag:
    """An int (C int) argument: per_sample and link."""

    def __init__(self, value):
        self.value = int(value)


def sizes(z, edges, theta):
    B, Q, K = z.shape
    return B, Q, K + 1, edges.shape[0], Flag(theta.dim() == 2)


def emulated_logtable(emu, z, theta, edges, link):
    B, Q, L, E, per_sample = sizes(z, edges, theta)
    out = torch.empty(B, E, L, L, dtype=z.dtype)
    call(emu, "pairwise_logtable", z.dtype, z, theta, edges, out, B, Q, L, E, per_sample, Flag(LINKS[link]))
    return out


def emulated_logtable_backward(emu, grad, z, theta, edges, link):
    B, Q, L, E, per_sample = sizes(z, edges, theta)
    grad_z, grad_theta = torch.empty_like(z), torch.empty(B, E, dtype=z.dtype)
    call(emu, "pairwise_logtable_backward", z.dtype, grad, z, theta, edges, grad_z, grad_theta, B, Q, L, E,
         per_sample, Flag(LINKS[link]))
    return grad_z, grad_theta.view(theta.shape) if theta.dim() == 2 else grad_theta


def emulated_loglik(emu, z, theta, edges, labels, link, with_partials=True):
    B, Q, L, E, per_sample = sizes(z, edges, theta)
    out = torch.empty(B, E, dtype=z.dtype)
    partials = torch.empty(B, E, 5, dtype=z.dtype) if with_partials else None
    call(emu, "pairwise_loglik", z.dtype, z, theta, edges, labels, out, partials, B, Q, L, E, per_sample,
         Flag(LINKS[link]))
    return out, partials


def emulated_loglik_bwd(emu, grad, partials, z, edges, labels, per_sample):
    B, Q, K = z.shape
    E = edges.shape[0]
    grad_z, grad_theta = torch.empty_like(z), torch.empty(B, E, dtype=z.dtype)
    call(emu, "pairwise_loglik_bwd", z.dtype, grad, partials, edges, labels, grad_z, grad_theta, B, Q, K + 1, E,
         Flag(per_sample))
    return grad_z, grad_theta


def upstream(shape, seed, dtype):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


# ---- parity with the CPU kernels ---------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_frank_copula(emu, dtype):
    g = torch.Generator().manual_seed(1)
    u, v = (torch.rand(700, generator=g, dtype=torch.float64) for _ in range(2))
    theta = (torch.rand(700, generator=g, dtype=torch.float64) * 2 - 1) * 20
    theta[:3] = torch.tensor([0.0, 1e-7, -2e-3])
    grad = upstream(700, 1, torch.float64)
    ref = [ops.frank_copula(u, v, theta), *ops.frank_copula_backward(grad, u, v, theta)]
    args = [x.to(dtype) for x in (u, v, theta)]
    cpu = [ops.frank_copula(*args), *ops.frank_copula_backward(grad.to(dtype), *args)]
    out = torch.empty(700, dtype=dtype)
    grads = [torch.empty(700, dtype=dtype) for _ in range(3)]
    call(emu, "frank_copula", dtype, *args, out, 700)
    call(emu, "frank_copula_backward", dtype, grad.to(dtype), *args, *grads, 700)
    for name, got, c, r in zip(("C", "dC/du", "dC/dv", "dC/dtheta"), [out, *grads], cpu, ref):
        assert_as_accurate(name, got, c, r, kappa=21.0, ulps=512)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("link", LINKS)
@pytest.mark.parametrize("L", [2, 6, 9])
def test_ordinal_logprob(emu, dtype, link, L):
    z64 = random_thresholds(9, 7, L, seed=2, spread=2.0)
    grad = upstream((9, 7, L), 2, torch.float64)
    ref = ops.ordinal_logprob(z64, link)
    ref_grad = ops.ordinal_logprob_backward(grad, z64, ref, link)
    z = z64.to(dtype)
    cpu = ops.ordinal_logprob(z, link)
    cpu_grad = ops.ordinal_logprob_backward(grad.to(dtype), z, cpu, link)
    out, grad_z = torch.empty_like(cpu), torch.empty_like(z)
    call(emu, "ordinal_logprob", dtype, z, out, 9 * 7, L, Flag(LINKS[link]))
    call(emu, "ordinal_logprob_backward", dtype, grad.to(dtype), z, out, grad_z, 9 * 7, L, Flag(LINKS[link]))
    assert_as_accurate("logp", out, cpu, ref, kappa=1.0, ulps=64)
    assert_as_accurate("grad z", grad_z, cpu_grad, ref_grad, kappa=1.0, ulps=512)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("L", [2, 6, 9])
def test_pairwise_loglik(emu, dtype, L):
    link = "probit" if L != 6 else "logit"
    per_sample = L == 9
    z64, theta64, edges, labels = problem(B=11, Q=6, L=L, seed=3 + L, per_sample=per_sample)
    kappa = 1 + theta64.abs().max().item()
    z, theta = z64.to(dtype), theta64.to(dtype)
    ref, ref_partials = ops.pairwise_loglik_fwd(z64, theta64, edges, labels, link)
    cpu, cpu_partials = ops.pairwise_loglik_fwd(z, theta, edges, labels, link)
    got, partials = emulated_loglik(emu, z, theta, edges, labels, link)
    assert_as_accurate("loglik", got, cpu, ref, kappa, ulps=64)
    assert_as_accurate("partials", partials, cpu_partials, ref_partials, kappa, ulps=512)
    missing = (labels[:, edges[:, 0]] < 0) | (labels[:, edges[:, 1]] < 0)
    assert missing.any() and bool((got[missing] == 0).all())
    plain, _ = emulated_loglik(emu, z, theta, edges, labels, link, with_partials=False)
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(plain, got, rtol=16 * eps, atol=16 * eps * kappa)
    # the backward from the same partials: the CPU's fixed-order sums
    grad = upstream(got.shape, L, dtype)
    cpu_bwd = ops.pairwise_loglik_bwd(grad, cpu_partials, z, edges, labels)
    got_bwd = emulated_loglik_bwd(emu, grad, cpu_partials, z, edges, labels, per_sample)
    for c, g in zip(cpu_bwd, got_bwd):
        torch.testing.assert_close(g.view(c.shape), c, rtol=4 * eps, atol=4 * eps * c.abs().max().item())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("L", [2, 6, 9, 17])
def test_pairwise_logtable(emu, dtype, L):
    link = "logit" if L in (6, 17) else "probit"
    per_sample = L in (9, 17)
    z64, theta64, edges, _ = problem(B=3 if L == 17 else 5, Q=5, L=L, seed=5 + L, per_sample=per_sample)
    kappa = 1 + theta64.abs().max().item()
    z, theta = z64.to(dtype), theta64.to(dtype)
    ref = ops.pairwise_logtable(z64, theta64, edges, link)
    cpu = ops.pairwise_logtable(z, theta, edges, link)
    got = emulated_logtable(emu, z, theta, edges, link)
    assert_as_accurate("logtable", got, cpu, ref, kappa, ulps=64)
    grad = upstream(ref.shape, L, torch.float64)
    grad.view(-1)[::7] = 0.0  # (cells with a zero upstream skip their derivatives)
    ref_bwd = ops.pairwise_logtable_backward(grad, z64, theta64, edges, link)
    cpu_bwd = ops.pairwise_logtable_backward(grad.to(dtype), z, theta, edges, link)
    got_bwd = emulated_logtable_backward(emu, grad.to(dtype), z, theta, edges, link)
    for name, g, c, r in zip(("grad z", "grad theta"), got_bwd, cpu_bwd, ref_bwd):
        assert_as_accurate(name, g.view(r.shape), c, r, kappa, ulps=512)


def test_float_edges_beyond_float_range_run_in_double(emu):
    z64, theta64, edges, labels = problem(B=6, Q=4, L=6, seed=7, per_sample=True)
    theta64[:, 0], theta64[:, 1] = 60.0, -75.0
    z, theta = z64.float(), theta64.float()
    assert_as_accurate("promoted table", emulated_logtable(emu, z, theta, edges, "probit"),
                       ops.pairwise_logtable(z, theta, edges, "probit"),
                       ops.pairwise_logtable(z64, theta64, edges, "probit"), kappa=76.0, ulps=64)
    assert_as_accurate("promoted loglik", emulated_loglik(emu, z, theta, edges, labels, "logit")[0],
                       ops.pairwise_loglik(z, theta, edges, labels, "logit"),
                       ops.pairwise_loglik(z64, theta64, edges, labels, "logit"), kappa=76.0, ulps=64)


# ---- scheduling, bad indices, validation -------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_bitwise_repeatable(emu, dtype):
    """Threads run in a different order each time: results that depend on it would differ."""
    z, theta, edges, labels = problem(B=7, Q=6, L=6, seed=10, per_sample=True, dtype=dtype)
    grad = upstream((7, edges.shape[0], 6, 6), 10, dtype)
    first = [emulated_logtable(emu, z, theta, edges, "probit"),
             *emulated_logtable_backward(emu, grad, z, theta, edges, "probit"),
             *emulated_loglik(emu, z, theta, edges, labels, "probit")]
    for _ in range(2):
        again = [emulated_logtable(emu, z, theta, edges, "probit"),
                 *emulated_logtable_backward(emu, grad, z, theta, edges, "probit"),
                 *emulated_loglik(emu, z, theta, edges, labels, "probit")]
        for x, y in zip(first, again):
            assert torch.equal(x, y)


def test_out_of_range_indices_give_nan(emu):
    z, theta, edges, labels = problem(B=6, Q=4, L=5, seed=11, missing=0.0)
    bad_edges = edges.clone()
    bad_edges[1, 1] = 10**9
    bad_edges[4, 0] = -(10**12)
    bad_labels = labels.clone()
    bad_labels[2, 3] = 10**12

    out, partials = emulated_loglik(emu, z, theta, bad_edges, labels, "probit")
    assert bool(torch.isnan(out[:, [1, 4]]).all()) and bool(torch.isfinite(out[:, [0, 2, 3, 5]]).all())
    out, _ = emulated_loglik(emu, z, theta, edges, bad_labels, "probit")
    touches_3 = (edges == 3).any(1)
    assert bool(torch.isnan(out[2, touches_3]).all()) and bool(torch.isfinite(out[2, ~touches_3]).all())
    assert bool(torch.isfinite(out[[0, 1, 3, 4, 5]]).all())

    table = emulated_logtable(emu, z, theta, bad_edges, "probit")
    assert bool(torch.isnan(table[:, [1, 4]]).all()) and bool(torch.isfinite(table[:, [0, 2, 3, 5]]).all())
    _, grad_theta = emulated_logtable_backward(emu, torch.ones_like(table), z, theta, bad_edges, "probit")
    assert bool(torch.isnan(grad_theta[:, [1, 4]]).all()) and bool(torch.isfinite(grad_theta[:, [0, 2, 3, 5]]).all())

    _, good_partials = ops.pairwise_loglik_fwd(z, theta, edges, labels, "probit")
    grad = torch.ones(good_partials.shape[:2], dtype=z.dtype)
    grad_z, grad_theta = emulated_loglik_bwd(emu, grad, good_partials, z, bad_edges, bad_labels, False)
    assert bool(torch.isnan(grad_theta[:, [1, 4]]).all())
    assert bool(torch.isnan(grad_z[2, 3]).all())


def first_errors(z, theta, edges, labels, L):
    """The smallest offending index of each kind (input_checks.h's order), written independently."""
    out = [NO_ERROR] * 7
    K = L - 1
    flat_z = z.reshape(-1)
    bad_z = (~torch.isfinite(flat_z)).nonzero()
    if len(bad_z):
        out[0] = int(bad_z[0])
    rows = z.reshape(-1, K)
    increasing = (rows[:, 1:] > rows[:, :-1]).all(1) if K > 1 else torch.ones(len(rows), dtype=torch.bool)
    bad_rows = (~increasing & torch.isfinite(rows).all(1)).nonzero()
    if len(bad_rows):
        out[1] = int(bad_rows[0])
    bad_theta = (~torch.isfinite(theta.reshape(-1))).nonzero()
    if len(bad_theta):
        out[2] = int(bad_theta[0])
    bad_labels = ((labels.reshape(-1) < -1) | (labels.reshape(-1) >= L)).nonzero()
    if len(bad_labels):
        out[3] = int(bad_labels[0])
    Q = z.shape[1]
    out_of_range = ((edges < 0) | (edges >= Q)).any(1).nonzero()
    if len(out_of_range):
        out[4] = int(out_of_range[0])
    loops = ((edges[:, 0] == edges[:, 1]) & ((edges >= 0) & (edges < Q)).all(1)).nonzero()
    if len(loops):
        out[5] = int(loops[0])
    return out


@pytest.mark.parametrize("dtype", DTYPES)
def test_validation_kernels_report_the_first_offender(emu, dtype):
    z, theta, edges, labels = problem(B=40, Q=6, L=6, seed=12, per_sample=True, dtype=dtype)
    first = torch.empty(7, dtype=torch.int64)

    def validate(z, theta, edges, labels):
        B, Q, L, E, per_sample = sizes(z, edges, theta)
        call(emu, "validate_pairwise", dtype, z, theta, theta.numel(), edges, labels, B, Q, L, E, per_sample, first)
        return first.tolist()

    assert validate(z, theta, edges, labels) == [NO_ERROR] * 7
    z[17, 2, 3], z[30, 0, 1] = float("nan"), float("inf")
    z[25, 4, 2] = z[25, 4, 1] - 0.5
    z[12, 1, 0] = z[12, 1, 1]
    theta[33, 7], theta[21, 2] = float("-inf"), float("nan")
    labels[9, 5], labels[38, 0] = 6, -2
    edges = edges.clone()
    edges[11, 0], edges[13, 1], edges[4, 1] = 6, -1, edges[4, 0]
    got = validate(z, theta, edges, labels)
    assert got == first_errors(z, theta, edges, labels, 6)
    assert got[:6] == [17 * 30 + 2 * 5 + 3, 12 * 6 + 1, 21 * 15 + 2, 9 * 6 + 5, 11, 4]

    g = torch.Generator().manual_seed(12)
    u, v = torch.rand(900, generator=g).to(dtype), torch.rand(900, generator=g).to(dtype)
    t = torch.zeros(900, dtype=dtype)
    u[611], v[402], t[250] = 1.5, float("nan"), float("inf")
    call(emu, "validate_frank", dtype, u, v, t, 900, first)
    assert first.tolist() == [NO_ERROR, NO_ERROR, 250, NO_ERROR, NO_ERROR, NO_ERROR, 402]


def test_empty_sizes(emu):
    for B, Q, E in ((0, 4, 6), (3, 1, 0)):
        z = random_thresholds(max(B, 1), Q, 6, seed=13)[:B]
        edges = all_pairs(Q) if E else torch.empty(0, 2, dtype=torch.int64)
        theta = torch.zeros(edges.shape[0], dtype=torch.float64)
        labels = random_labels(max(B, 1), Q, 6, seed=13)[:B]
        table = emulated_logtable(emu, z.contiguous(), theta, edges, "probit")
        assert table.shape == (B, E, 6, 6)
        grad_z, grad_theta = emulated_logtable_backward(emu, torch.zeros(B, E, 6, 6, dtype=torch.float64),
                                                        z.contiguous(), theta, edges, "probit")
        assert bool((grad_z == 0).all()) and grad_theta.numel() == B * E
        out, _ = emulated_loglik(emu, z.contiguous(), theta, edges, labels.contiguous(), "probit")
        assert out.shape == (B, E)
