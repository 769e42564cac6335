"""Smoke test of benchmarks/bench_copula.py and a check of its baseline.

The benchmark's speed-ups are only as honest as its baseline: the naive PyTorch function must
compute the same model as the ops. On easy inputs (moderate theta, cells of reasonable mass) it
has to agree with the careful test reference; the benchmark itself shows where it does not.
"""
import json
import math
import os
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import copula_reference as careful  # noqa: E402
import naive_copula as naive  # noqa: E402


def _easy_problem(B=64, Q=5, L=6, seed=3):
    g = torch.Generator().manual_seed(seed)
    z = careful.random_thresholds(B, Q, L, seed=seed, spread=0.7)
    edges = careful.all_pairs(Q)
    theta = (torch.rand(edges.shape[0], generator=g, dtype=torch.float64) * 2 - 1) * 8
    theta = torch.where(theta.abs() < 0.1, torch.full_like(theta, 0.5), theta)  # naive: theta != 0
    labels = careful.random_labels(B, Q, L, seed=seed, missing=0.1)
    return z, theta, edges, labels


@pytest.mark.parametrize("link", ["probit", "logit"])
def test_naive_baseline_matches_careful_reference_on_easy_inputs(link):
    z, theta, edges, labels = _easy_problem()
    want = careful.pairwise_loglik(z, theta, edges, labels, link)
    got = naive.naive_pairwise_loglik(z, theta, edges, labels, link)
    ok = want > math.log(1e-6)  # the four-term difference of both is trusted there
    assert ok.float().mean() > 0.9
    torch.testing.assert_close(got[ok], want[ok], rtol=0, atol=1e-9)
    torch.testing.assert_close(got == 0, want == 0)  # missing labels

    want_t = careful.pairwise_logtable(z, theta, edges, link)
    got_t = naive.naive_pairwise_logtable(z, theta, edges, link)
    ok = want_t > math.log(1e-6)
    torch.testing.assert_close(got_t[ok], want_t[ok], rtol=0, atol=1e-9)

    torch.testing.assert_close(naive.naive_ordinal_logprob(z, link), careful.ordinal_logprob(z, link),
                               rtol=0, atol=1e-9)
    # and its gradients (autograd of the naive function) on the same cells
    zz, tt = z.clone().requires_grad_(), theta.clone().requires_grad_()
    w = (want > math.log(1e-4)).double()
    naive.naive_pairwise_loglik(zz, tt, edges, labels, link).backward(w)
    zc, tc = z.clone().requires_grad_(), theta.clone().requires_grad_()
    careful.pairwise_loglik(zc, tc, edges, labels, link).backward(w)
    torch.testing.assert_close(zz.grad, zc.grad, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(tt.grad, tc.grad, rtol=1e-6, atol=1e-8)


def test_mpmath_truth_matches_careful_reference():
    z, theta, edges, labels = _easy_problem(B=4)
    want = careful.pairwise_logtable(z, theta, edges)
    for b, e, a, c in [(0, 0, 0, 0), (1, 3, 2, 4), (3, 9, 5, 5), (2, 5, 1, 0)]:
        r, s = edges[e].tolist()
        lp = float(naive.mp_pair_logprob(z[b, r].tolist(), z[b, s].tolist(), a, c, float(theta[e]), "probit"))
        assert abs(lp - float(want[b, e, a, c])) <= 1e-9 * max(1.0, abs(lp))


def test_benchmark_quick_run_writes_results(tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([ROOT, os.path.join(ROOT, "python"), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, os.path.join(ROOT, "benchmarks", "bench_copula.py"), "--quick",
           "--no-compile", "--batch", "32", "--cells", "8", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(tmp_path / "copula_cpu.json") as f:
        payload = json.load(f)
    assert (tmp_path / "copula_cpu.md").read_text().count("speed-up vs torch.compile of the naive PyTorch function")
    for key in ("environment", "sizes", "baseline", "results", "compile_times", "accuracy", "bars"):
        assert key in payload, key
    env_ = payload["environment"]
    for key in ("torch", "threads", "device_name", "load_average_at_start", "load_average_at_end"):
        assert key in env_, key
    ops = {(r["op"], r["mode"], r["dtype"]) for r in payload["results"]}
    assert ops == {(op, mode, "float32") for op in ("pairwise_loglik", "pairwise_logtable", "ordinal_logprob")
                   for mode in ("forward", "forward+backward")}
    for r in payload["results"]:
        for impl in ("fused", "eager"):
            assert r[impl]["median_ms"] > 0
        assert "speedup_vs_compiled" in r and "speedup_vs_eager" in r
    acc = payload["accuracy"]
    assert {(a["set"], a["op"], a["impl"]) for a in acc} >= {
        (s, op, impl) for s in ("main", "tail") for op in ("pairwise_loglik", "pairwise_logtable")
        for impl in ("fused", "eager", "careful")}
    for a in acc:
        for key in ("max_abs_err_trusted", "max_rel_err_tiny", "nonfinite_out", "nonfinite_grad_z",
                    "nonfinite_grad_theta", "truth"):
            assert key in a
    assert any(b["what"].startswith("fused float32") for b in payload["bars"])


def test_a_failed_bar_exits_1(tmp_path, monkeypatch):
    import bench_copula
    monkeypatch.setattr(bench_copula, "ACCURACY_BAR", -1.0)  # no error can be below it
    threads = torch.get_num_threads()
    try:
        status = bench_copula.main(["--quick", "--no-compile", "--batch", "32", "--cells", "8", "--out", str(tmp_path)])
    finally:
        torch.set_num_threads(threads)
    assert status == 1
    with open(tmp_path / "copula_cpu.json") as f:
        bars = json.load(f)["bars"]
    assert [b["met"] for b in bars if b["applies"]] == [False]


def test_levels_benchmark_quick_run_writes_results(tmp_path):
    """benchmarks/bench_logtable_levels.py --quick: every (dtype, L, mode) timed for ccnn and eager."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([ROOT, os.path.join(ROOT, "python"), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, os.path.join(ROOT, "benchmarks", "bench_logtable_levels.py"), "--quick",
           "--out", str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(tmp_path / "logtable_levels_cpu.json") as f:
        payload = json.load(f)
    got = {(r["dtype"], r["L"], r["mode"]) for r in payload["results"]}
    assert got == {(d, L, m) for d in ("float32", "float64") for L in (6, 13)
                   for m in ("forward", "forward+backward")}
    assert all(r["ccnn_ms"] > 0 and r["eager_ms"] > 0 for r in payload["results"])
    assert "| float32 | 13 | forward |" in (tmp_path / "logtable_levels_cpu.md").read_text()
