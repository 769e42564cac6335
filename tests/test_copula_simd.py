"""The copula kernels evaluate label pairs, levels and threshold rows in SIMD lanes
(csrc/copula/frank_simd.h), float32 and float64 alike. float32 against float64 on the same inputs
(float64 copies of the float32 thresholds and thetas), so any difference is the float path's own
error; each compiled version's float64 against the careful PyTorch reference (both dtypes against
mpmath: test_copula_accuracy.py, test_ordinal_logprob.py)."""
import itertools
import pathlib

import pytest
import torch

import ccnn_ext

TESTS = pathlib.Path(__file__).resolve().parent


def _problem(per_sample, seed):
    g = torch.Generator().manual_seed(seed)
    B, Q, L = 300, 8, 6
    z = torch.sort(torch.randn(B, Q, L - 1, generator=g) * 1.2 + 1.0, dim=-1).values
    edges = torch.tensor(list(itertools.combinations(range(Q), 2)))
    labels = torch.randint(0, L, (B, Q), generator=g)
    labels[torch.rand(B, Q, generator=g) < 0.6] = 0  # AU data: mostly intensity 0
    labels[torch.rand(B, Q, generator=g) < 0.05] = -1
    shape = (B, len(edges)) if per_sample else (len(edges),)
    theta = torch.randn(shape, generator=g) * 15  # includes |theta| > 30: the double fallback
    return z, theta, edges, labels


@pytest.mark.parametrize("link", ["probit", "logit"])
@pytest.mark.parametrize("per_sample", [False, True])
def test_float_lanes_match_float64(link, per_sample):
    z, theta, edges, labels = _problem(per_sample, seed=3)
    grad = torch.randn(labels.shape[0], len(edges), dtype=torch.float64)
    results = {}
    for dtype in (torch.float32, torch.float64):
        zz = z.to(dtype).detach().clone().requires_grad_()
        tt = theta.to(dtype).detach().clone().requires_grad_()
        out = ccnn_ext.pairwise_loglik(zz, tt, edges, labels, link=link)
        (out * grad.to(dtype)).sum().backward()
        results[dtype] = (out.double(), zz.grad.double(), tt.grad.double())
    (lp32, gz32, gt32), (lp64, gz64, gt64) = results[torch.float32], results[torch.float64]
    assert torch.isfinite(lp32).all() and torch.isfinite(gz32).all() and torch.isfinite(gt32).all()
    scored = lp64 >= -30
    assert (lp32 - lp64)[scored].abs().max() < 1e-5
    # gradients: float32 rounding of the cut-point CDFs, ~|theta| * 6e-8 relative, sets the scale
    assert ((gz32 - gz64).abs() <= 1e-4 * gz64.abs().max()).all()
    scale = gt64.abs() + 1e-3 * gt64.abs().max()
    assert ((gt32 - gt64).abs() <= 2e-3 * scale).all()


@pytest.mark.parametrize("link", ["probit", "logit"])
def test_float_lanes_on_near_narrow_tail_levels(link):
    """Levels in a tail (|midpoint| 3 to 8) with h |midpoint| from 0.03 to 0.6, around the switch to
    the Hermite series: a difference of two float tails there multiplies their relative error by
    up to 20 at h |m| = 0.05, which is why float's series reaches to 0.5 (frank_math.h,
    narrow_interval). Unary and pairwise log P stay within 1e-5 of float64's where log P >= -30."""
    g = torch.Generator().manual_seed(11)
    n = 4000
    mid = (3 + 5 * torch.rand(n, generator=g, dtype=torch.float64)) * torch.where(
        torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    h = (0.03 + 0.57 * torch.rand(n, generator=g, dtype=torch.float64)) / mid.abs()
    z = torch.stack([mid - h, mid + h, mid + h + 1.0], -1).float().view(n, 1, 3)
    z = z[(z.diff(dim=-1) > 0).all(-1).view(-1)]
    lp32, lp64 = ccnn_ext.ordinal_logprob(z, link).double(), ccnn_ext.ordinal_logprob(z.double(), link)
    scored = lp64 >= -30
    assert scored.sum() > 1000
    assert (lp32 - lp64)[scored].abs().max() <= 1e-5
    z2 = torch.cat([z, torch.tensor([[-1.0, 0.0, 1.0]]).expand(z.shape[0], 1, 3)], 1)
    edges = torch.tensor([[0, 1]])
    for theta, labels in ((0.5, [1, 2]), (5.0, [1, 0]), (-30.0, [1, 3])):
        lab = torch.tensor([labels]).expand(z2.shape[0], 2).contiguous()
        a = ccnn_ext.pairwise_loglik(z2, torch.tensor([theta]), edges, lab, link).double()
        b = ccnn_ext.pairwise_loglik(z2.double(), torch.tensor([theta], dtype=torch.float64), edges, lab, link)
        keep = b >= -30
        assert (a - b)[keep].abs().max() <= 1e-5, (theta, labels)


@pytest.mark.parametrize("op", ["logtable", "loglik"])
def test_float_pairs_at_large_theta(op):
    """Rounding the cut-point CDFs to float costs about |theta| * 2.6e-7 in log P: float32 stays
    within 1e-5 of float64 up to kFloatThetaLimit = 30, beyond which edges are evaluated in double
    from double levels (only the output's rounding is left: 2e-6), shared or per-sample theta."""
    g = torch.Generator().manual_seed(9)
    B, Q, L = 150, 6, 7
    edges = torch.tensor(list(itertools.combinations(range(Q), 2)))
    for scale in (0.003, 0.03, 0.3, 1.0):
        steps = torch.rand(B, Q, L - 1, generator=g, dtype=torch.float64) * scale + scale * 0.05
        z = (torch.cumsum(steps, -1) + torch.randn(B, Q, 1, generator=g, dtype=torch.float64) * 1.5).float()
        assert (z.diff(dim=-1) > 0).all()
        labels = torch.randint(0, L, (B, Q), generator=g)
        for low, high, bar in ((15.0, 30.0, 1e-5), (30.0, 80.0, 2e-6)):
            for shape in ((len(edges),), (B, len(edges))):
                sign = torch.where(torch.rand(shape, generator=g) < 0.5, -1.0, 1.0)
                theta = ((low + (high - low) * torch.rand(shape, generator=g)) * sign).float()
                if op == "logtable":
                    a = ccnn_ext.pairwise_logtable(z, theta, edges).double()
                    b = ccnn_ext.pairwise_logtable(z.double(), theta.double(), edges)
                else:
                    a = ccnn_ext.pairwise_loglik(z, theta, edges, labels).double()
                    b = ccnn_ext.pairwise_loglik(z.double(), theta.double(), edges, labels)
                scored = b >= -30
                assert (a - b)[scored].abs().max() <= bar, (scale, low, shape, (a - b)[scored].abs().max())


@pytest.mark.parametrize("simd", ["avx512", "avx2", "avx", "base"])
def test_every_compiled_simd_version_agrees(simd, tmp_path):
    """The library picks the widest SIMD version the processor runs when it loads; CCNN_SIMD caps it,
    so every version this processor can run is checked, each in a subprocess that reports the
    version it ran; a version the processor lacks is skipped. float32 against float64; float64
    (double lanes) against the careful PyTorch reference; 6 and 16 levels."""
    script = tmp_path / "check.py"
    script.write_text(
        "import torch, itertools, ccnn_ext\n"
        "def check(L):\n"
        "    g = torch.Generator().manual_seed(5)\n"
        "    B, Q = 67, 6\n"
        "    z = torch.sort(torch.randn(B, Q, L - 1, generator=g) * 1.2 + 1.0, dim=-1).values\n"
        "    edges = torch.tensor(list(itertools.combinations(range(Q), 2)))\n"
        "    labels = torch.randint(-1, L, (B, Q), generator=g)\n"
        "    theta = torch.randn(len(edges), generator=g) * 10\n"
        "    out = [ccnn_ext.pairwise_loglik(z, theta, edges, labels), ccnn_ext.pairwise_logtable(z, theta, edges),\n"
        "           ccnn_ext.ordinal_logprob(z)]\n"
        "    ref = [ccnn_ext.pairwise_loglik(z.double(), theta.double(), edges, labels),\n"
        "           ccnn_ext.pairwise_logtable(z.double(), theta.double(), edges), ccnn_ext.ordinal_logprob(z.double())]\n"
        "    for a, b in zip(out, ref):\n"
        "        keep = b >= -30\n"
        "        assert (a.double() - b)[keep].abs().max() < 1e-5, (a.double() - b)[keep].abs().max()\n"
        "    w = torch.randn(B, Q, L, generator=g, dtype=torch.float64)\n"
        "    grads = []\n"
        "    for zz in (z.clone().requires_grad_(), z.double().requires_grad_()):\n"
        "        (ccnn_ext.ordinal_logprob(zz) * w.to(zz.dtype)).sum().backward()\n"
        "        grads.append(zz.grad.double())\n"
        "    assert ((grads[0] - grads[1]).abs() <= 1e-4 * grads[1].abs().max()).all()\n"
        "    import sys\n"
        f"    sys.path.insert(0, {str(TESTS)!r})\n"
        "    from copula_reference import ordinal_logprob as careful\n"
        "    z64 = z.double().requires_grad_()\n"
        "    z_ref = z.double().requires_grad_()\n"
        "    lp, ref = ccnn_ext.ordinal_logprob(z64), careful(z_ref)\n"
        "    assert ((lp - ref).abs() <= 1e-12 * ref.abs().clamp_min(1)).all(), (lp - ref).abs().max()\n"
        "    (lp * w).sum().backward()\n"
        "    (ref * w).sum().backward()\n"
        "    assert ((z64.grad - z_ref.grad).abs() <= 1e-10 * z_ref.grad.abs().max()).all()\n"
        "    from copula_reference import pairwise_loglik as careful_loglik, pairwise_logtable as careful_table\n"
        "    zd, td = z.double(), theta.double()\n"
        "    for got, ref in ((ccnn_ext.pairwise_loglik(zd, td, edges, labels), careful_loglik(zd, td, edges, labels)),\n"
        "                     (ccnn_ext.pairwise_logtable(zd, td, edges), careful_table(zd, td, edges))):\n"
        "        keep = ref > -9  # (the reference's four-term difference cancels for small P)\n"
        "        assert ((got - ref)[keep].abs() <= 1e-9 * ref[keep].abs().clamp_min(1)).all(), (got - ref)[keep].abs().max()\n"
        "    for ours, theirs in ((lambda a, t: ccnn_ext.pairwise_loglik(a, t, edges, labels),\n"
        "                          lambda a, t: careful_loglik(a, t, edges, labels)),\n"
        "                         (lambda a, t: ccnn_ext.pairwise_logtable(a, t, edges),\n"
        "                          lambda a, t: careful_table(a, t, edges))):\n"
        "        grads = []\n"
        "        for op in (ours, theirs):\n"
        "            a, t = zd.clone().requires_grad_(), td.clone().requires_grad_()\n"
        "            lp = op(a, t)\n"
        "            (lp * (lp > -9)).sum().backward()\n"
        "            grads.append((a.grad, t.grad))\n"
        "        for g, r in zip(*grads):\n"
        "            assert ((g - r).abs() <= 1e-7 * r.abs().max()).all(), (g - r).abs().max()\n"
        "for L in (6, 16):  # (16: a longer scale than the AUs' 6 levels)\n"
        "    check(L)\n"
        "print('ok', ccnn_ext.simd_level())\n")
    import os
    import subprocess
    import sys
    result = subprocess.run([sys.executable, str(script)], env={**os.environ, "CCNN_SIMD": simd},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-2000:]
    ran = result.stdout.split()[-1]
    if ran != simd:
        order = ["base", "avx", "avx2", "avx512"]
        assert order.index(ran) < order.index(simd), (simd, ran)  # capped only by the processor
        pytest.skip(f"this processor runs at most the {ran} version, not {simd}")
