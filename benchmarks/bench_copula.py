"""Benchmark of the fused Frank copula ops against the baselines a user would otherwise run.

Implementations, timed in one run on the same inputs:

* fused: ``ccnn_ext.pairwise_loglik`` / ``pairwise_logtable`` / ``ordinal_logprob``;
* naive eager: the plain PyTorch function of ``benchmarks/naive_copula.py`` (about ten lines:
  CDFs at the thresholds, the four corner CDFs, the Frank CDF by expm1/log1p, the four-term
  difference, log);
* naive compiled: ``torch.compile`` of exactly that function (default mode); its compile time
  (first call, per grad mode) is reported separately, never inside the medians;
* careful reference: the test suite's reference (``tests/copula_reference.py``), an accuracy
  baseline with ~100 intermediate tensors, not something a user would write; timed for
  completeness (float32 only, skipped when it would not fit in memory).

Forward is timed under ``no_grad``; forward+backward takes gradients with respect to z and theta
(z only for ordinal_logprob). Median of repeats after warm-up; fused, eager and compiled alternate
in each round of repeats.

Accuracy, per implementation and dtype, on two input sets of the same shape: "main" (the timed
inputs: thresholds and skewed labels like AU data, most labels 0, theta of mixed magnitude, some
|theta| of 5-40) and "tail" (|theta| 30-200, uniform labels so rare label pairs are common): the
maximum absolute error of log P against an mpmath reference (``naive_copula.mp_pair_logprob``,
30 significant digits, precision chosen adaptively) on a random subsample of cells, restricted to
cells with log P >= -30; the maximum relative error where log P < -30; and the fraction of
non-finite outputs and gradients over the whole set.

Bars (the issue's; the script exits with status 1 when one applies and fails):
CPU float32 at B = 4096: pairwise_loglik forward >= 1.5x and forward+backward >= 3x faster than
torch.compile of the naive function, pairwise_logtable forward >= 2x; fused float32 log P within
1e-5 (absolute) of the truth wherever log P >= -30. CUDA float32 at B = 65536: pairwise_loglik
forward+backward >= 20x the naive eager function and >= 2x its torch.compile.

    python benchmarks/bench_copula.py                          # CPU, 2 threads, B = 4096
    python benchmarks/bench_copula.py --device cpu --device cuda
    python benchmarks/bench_copula.py --out benchmarks/results # update the committed results
    python benchmarks/bench_copula.py --quick --out /tmp/b     # small sizes (CI smoke)
    python benchmarks/bench_copula.py --quick --no-compile ... # without torch.compile (tests)
"""
import argparse
import math
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))
# A fresh inductor cache, so the reported compile times are cold-start ones (a warm on-disk cache
# from an earlier run would make them look free); set TORCHINDUCTOR_CACHE_DIR to keep one.
if "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench_copula_inductor_")

import torch  # noqa: E402

import ccnn_ext  # noqa: E402
import copula_reference as careful  # noqa: E402
import naive_copula as naive  # noqa: E402
from common import environment, markdown_table, time_call, time_calls_interleaved, write_results  # noqa: E402

Q, L = 12, 6
EDGES = careful.all_pairs(Q)
E = EDGES.shape[0]
OPS = ("pairwise_loglik", "pairwise_logtable", "ordinal_logprob")
MODES = ("forward", "forward+backward")
DTYPES = {"float32": torch.float32, "float64": torch.float64}
BASELINE = "torch.compile of the naive PyTorch function"
# AU-like label distribution: most AUs absent (level 0), higher intensities ever rarer.
LABEL_PROBS = [0.70, 0.10, 0.08, 0.06, 0.04, 0.02]
MISSING = 0.05
# (device type, op, mode, B, baseline, minimum speed-up), all float32
SPEED_BARS = [
    ("cpu", "pairwise_loglik", "forward", 4096, "compiled", 1.5),
    ("cpu", "pairwise_loglik", "forward+backward", 4096, "compiled", 3.0),
    ("cpu", "pairwise_logtable", "forward", 4096, "compiled", 2.0),
    ("cuda", "pairwise_loglik", "forward+backward", 65536, "eager", 20.0),
    ("cuda", "pairwise_loglik", "forward+backward", 65536, "compiled", 2.0),
]
ACCURACY_BAR = 1e-5      # fused float32 |log P error| where log P >= -30 (every device)
TRUSTED_LOGP = -30.0
DEFAULT_B = {"cpu": 4096, "cuda": 65536}
QUICK_B = {"cpu": 128, "cuda": 4096}
IMPL_LABELS = {
    "fused": "fused (ccnn)",
    "eager": "naive eager",
    "compiled": "naive compiled",
    "careful": "careful reference (test suite)",
}


# ------------------------------------------------------------------------------------------------
# inputs
# ------------------------------------------------------------------------------------------------
def make_inputs(B, kind, seed=0):
    """float64 CPU (z, theta, labels); kind "main" (AU-like) or "tail" (large theta, rare pairs)."""
    g = torch.Generator().manual_seed(seed + (0 if kind == "main" else 1000))
    steps = 0.15 + 0.85 * torch.rand(B, Q, L - 1, generator=g, dtype=torch.float64)
    z = torch.cumsum(steps, -1) - steps[..., :1]
    if kind == "main":
        # level 0 most likely: first threshold around +1 (P(y = 0) ~ 0.6-0.95)
        z = z + 1.0 + 0.5 * torch.randn(B, Q, 1, generator=g, dtype=torch.float64)
        mag = torch.exp(math.log(0.05) + (math.log(40.0) - math.log(0.05))
                        * torch.rand(E, generator=g, dtype=torch.float64))
        sign = torch.where(torch.rand(E, generator=g) < 0.75, 1.0, -1.0).double()
        labels = torch.multinomial(torch.tensor(LABEL_PROBS), B * Q, replacement=True,
                                   generator=g).view(B, Q)
    else:
        z = z - z[..., -1:] / 2 + 1.5 * torch.randn(B, Q, 1, generator=g, dtype=torch.float64)
        mag = torch.exp(math.log(30.0) + (math.log(200.0) - math.log(30.0))
                        * torch.rand(E, generator=g, dtype=torch.float64))
        sign = torch.where(torch.rand(E, generator=g) < 0.6, 1.0, -1.0).double()
        labels = torch.randint(0, L, (B, Q), generator=g)
    labels = torch.where(torch.rand(B, Q, generator=g) < MISSING, torch.full_like(labels, -1), labels)
    return z, mag * sign, labels


class Impl:
    """The three ops of one implementation (callables with the ccnn_ext signatures)."""

    def __init__(self, loglik, logtable, ordinal):
        self.ops = {"pairwise_loglik": loglik, "pairwise_logtable": logtable,
                    "ordinal_logprob": ordinal}

    def __call__(self, op, z, theta, edges, labels, link="probit"):
        f = self.ops[op]
        if op == "pairwise_loglik":
            return f(z, theta, edges, labels, link)
        if op == "pairwise_logtable":
            return f(z, theta, edges, link)
        return f(z, link)


def make_impls(compile_naive=True):
    impls = {
        "fused": Impl(ccnn_ext.pairwise_loglik, ccnn_ext.pairwise_logtable, ccnn_ext.ordinal_logprob),
        "eager": Impl(naive.naive_pairwise_loglik, naive.naive_pairwise_logtable,
                      naive.naive_ordinal_logprob),
        "compiled": Impl(torch.compile(naive.naive_pairwise_loglik, dynamic=False),
                         torch.compile(naive.naive_pairwise_logtable, dynamic=False),
                         torch.compile(naive.naive_ordinal_logprob, dynamic=False)),
        "careful": Impl(careful.pairwise_loglik, careful.pairwise_logtable, careful.ordinal_logprob),
    }
    if not compile_naive:
        del impls["compiled"]
    return impls


def careful_fits(op, B, device, dtype):
    """Whether the careful reference's ~100 intermediates of the corner grid fit in memory."""
    corners = B * (E * 4 if op == "pairwise_loglik" else E * (L + 1) ** 2 if op == "pairwise_logtable"
                   else Q * (L + 1))
    need = corners * torch.finfo(dtype).bits // 8 * 100
    if torch.device(device).type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return need < 0.6 * free
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        available = int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        available = 8 << 30
    return need < 0.4 * available


# ------------------------------------------------------------------------------------------------
# timing
# ------------------------------------------------------------------------------------------------
def make_call(impl, op, mode, inputs):
    z, theta, edges, labels = inputs
    if mode == "forward":
        def fn():
            with torch.no_grad():
                return impl(op, z, theta, edges, labels)
        return fn
    zz = z.clone().requires_grad_()
    tt = theta.clone().requires_grad_()
    with torch.no_grad():
        grad_out = torch.rand_like(impl(op, z, theta, edges, labels))

    def fn():
        zz.grad = tt.grad = None
        out = impl(op, zz, tt, edges, labels)
        out.backward(grad_out)
        return out
    return fn


def timed_first_call(fn, device):
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t0


# ------------------------------------------------------------------------------------------------
# accuracy
# ------------------------------------------------------------------------------------------------
def subsample_cells(op, labels, n, seed):
    """n random cells (b, e, a, c) with both labels present (loglik) or any table cell."""
    g = torch.Generator().manual_seed(seed)
    B = labels.shape[0]
    r, s = EDGES[:, 0], EDGES[:, 1]
    if op == "pairwise_loglik":
        a, c = labels[:, r], labels[:, s]
        present = ((a >= 0) & (c >= 0)).nonzero()
        pick = present[torch.randperm(present.shape[0], generator=g)[:n]]
        b, e = pick[:, 0], pick[:, 1]
        return b, e, a[b, e], c[b, e]
    b = torch.randint(0, B, (n,), generator=g)
    e = torch.randint(0, E, (n,), generator=g)
    a = torch.randint(0, L, (n,), generator=g)
    c = torch.randint(0, L, (n,), generator=g)
    return b, e, a, c


def mp_truth(z64, theta64, cells, link="probit"):
    b, e, a, c = cells
    out = []
    for bi, ei, ai, ci in zip(b.tolist(), e.tolist(), a.tolist(), c.tolist()):
        r, s = EDGES[ei].tolist()
        lp = naive.mp_pair_logprob(z64[bi, r].tolist(), z64[bi, s].tolist(), ai, ci,
                                   float(theta64[ei]), link)
        out.append(float(lp))
    return torch.tensor(out, dtype=torch.float64)


def pick(op, out, cells):
    b, e, a, c = cells
    return out[b, e] if op == "pairwise_loglik" else out[b, e, a, c]


def nonfinite_fraction(t):
    return float((~torch.isfinite(t)).double().mean()) if t.numel() else 0.0


def accuracy_row(impl, op, inputs, cells, truth, chunk=None):
    """Errors of one implementation on one input set (inputs on the device, in the dtype)."""
    z, theta, edges, labels = inputs
    zz, tt = z.clone().requires_grad_(), theta.clone().requires_grad_()
    B = z.shape[0]
    step = chunk or B
    outs = []
    for i in range(0, B, step):  # chunked only for the memory-hungry careful reference
        zc = zz[i:i + step]
        lab = labels[i:i + step]
        out = impl(op, zc, tt, edges, lab)
        w = torch.rand(out.shape, generator=torch.Generator().manual_seed(i), dtype=torch.float64)
        out.backward(w.to(out.device, out.dtype))
        outs.append(out.detach())
    out = torch.cat(outs).double().cpu()
    got = pick(op, out, cells)
    err = (got - truth).abs()
    trusted = truth >= TRUSTED_LOGP
    tiny = ~trusted
    row = {
        "max_abs_err_trusted": float(err[trusted].max()) if trusted.any() else None,
        "n_trusted": int(trusted.sum()),
        "max_rel_err_tiny": float((err[tiny] / truth[tiny].abs()).max()) if tiny.any() else None,
        "n_tiny": int(tiny.sum()),
        "nonfinite_out": nonfinite_fraction(out),
        "nonfinite_grad_z": nonfinite_fraction(zz.grad),
        "nonfinite_grad_theta": nonfinite_fraction(tt.grad) if op != "ordinal_logprob" else None,
    }
    # non-finite outputs at sampled cells count as an infinite error (NaN would hide in a max)
    if trusted.any() and not torch.isfinite(err[trusted]).all():
        row["max_abs_err_trusted"] = float("inf")
    if tiny.any() and not torch.isfinite(err[tiny]).all():
        row["max_rel_err_tiny"] = float("inf")
    return row


# ------------------------------------------------------------------------------------------------
# one device
# ------------------------------------------------------------------------------------------------
def run_device(device, args):
    dev = torch.device(device)
    B = args.batch or (QUICK_B if args.quick else DEFAULT_B)[dev.type]
    dtypes = args.dtype or (["float32", "float64"] if dev.type == "cpu" and not args.quick else ["float32"])
    warmup, repeats = (1, 3) if args.quick else (3, args.repeats)
    n_cells = args.cells or (40 if args.quick else 300)
    impls = make_impls(compile_naive=not args.no_compile)
    env = environment(dev, torch.get_num_threads())
    print(f"== {env['device_name']} ({dev}), {env['threads']} threads, torch {env['torch']}, "
          f"load {env.get('load_average_at_start')}; B={B}, Q={Q}, E={E}, L={L}", flush=True)

    sets = {kind: make_inputs(B, kind, seed=args.seed) for kind in ("main", "tail")}
    edges = EDGES.to(dev)

    # ---- timing on the main set ----
    results, compile_times = [], []
    z64, th64, lab = sets["main"]
    for dname in dtypes:
        dt = DTYPES[dname]
        inputs = (z64.to(dev, dt), th64.to(dev, dt), edges, lab.to(dev))
        for op in OPS:
            for mode in MODES:
                row = {"op": op, "mode": mode, "B": B, "dtype": dname, "compiled": None}
                fns = {name: make_call(impl, op, mode, inputs) for name, impl in impls.items() if name != "careful"}
                if "compiled" in fns:
                    first = timed_first_call(fns["compiled"], dev)
                    compile_times.append({"op": op, "mode": mode, "dtype": dname, "first_call_s": first})
                max_s = 5.0 if args.quick else 20.0
                # fused, eager and compiled in alternation (the same load for each)
                row.update(time_calls_interleaved(fns, dev, warmup=warmup, repeats=repeats, max_seconds=max_s))
                row["careful"] = None
                if dname == "float32" and careful_fits(op, B, dev, dt):  # slow, for completeness: fewer runs
                    careful_fn = make_call(impls["careful"], op, mode, inputs)
                    row["careful"] = time_call(careful_fn, dev, warmup=1, repeats=3, max_seconds=max_s)
                for other in ("compiled", "eager", "careful"):
                    row[f"speedup_vs_{other}"] = (row[other]["median_ms"] / row["fused"]["median_ms"]
                                                  if row.get(other) else None)
                results.append(row)
                print(f"{op:18s} {mode:17s} {dname} B={B}: " + "  ".join(
                    f"{k} {row[k]['median_ms']:8.2f} ms" if row[k] else f"{k} (skipped)"
                    for k in impls) + f"  -> {_fmt(row['speedup_vs_compiled'], '.2f')}x vs compiled",
                    flush=True)

    # ---- accuracy, float64 truth by mpmath on a subsample of cells ----
    t_acc = time.perf_counter()
    accuracy = []
    for kind, (z64, th64, lab) in sets.items():
        for op in ("pairwise_loglik", "pairwise_logtable"):
            cells = subsample_cells(op, lab, n_cells, seed=args.seed + 7)
            truth = mp_truth(z64, th64, cells)
            for dname in dtypes:
                dt = DTYPES[dname]
                inputs = (z64.to(dev, dt), th64.to(dev, dt), edges, lab.to(dev))
                for name in impls:
                    chunk = 512 if name == "careful" else None
                    row = accuracy_row(impls[name], op, inputs, cells, truth, chunk)
                    row.update(set=kind, op=op, impl=name, dtype=dname, n_cells=len(truth),
                               truth=f"mpmath (30 digits) on {len(truth)} random cells")
                    accuracy.append(row)
                    print(f"accuracy {kind:4s} {op:17s} {name:8s} {dname}: max|err| "
                          f"{_fmt(row['max_abs_err_trusted'])} (log P >= -30, {row['n_trusted']} cells), "
                          f"max rel err {_fmt(row['max_rel_err_tiny'])} ({row['n_tiny']} cells below), "
                          f"non-finite out {row['nonfinite_out']:.3g} grad_z {row['nonfinite_grad_z']:.3g} "
                          f"grad_theta {_fmt(row['nonfinite_grad_theta'])}", flush=True)
    t_acc = time.perf_counter() - t_acc

    # ---- bars ----
    bars = []
    for dev_type, op, mode, bar_B, other, minimum in SPEED_BARS:
        if dev_type != dev.type:
            continue
        row = next((r for r in results if (r["op"], r["mode"], r["dtype"]) == (op, mode, "float32")), None)
        applies = row is not None and B == bar_B and row.get(f"speedup_vs_{other}") is not None
        s = row.get(f"speedup_vs_{other}") if row else None
        bars.append({"what": f"{op} {mode} float32 B={bar_B}: speed-up vs naive {other}",
                     "value": s, "required": f">= {minimum:g}x", "applies": applies,
                     "met": (s >= minimum) if applies else None})
    fused32 = [r for r in accuracy if r["impl"] == "fused" and r["dtype"] == "float32"]
    if fused32:
        worst = max(r["max_abs_err_trusted"] or 0.0 for r in fused32)
        bars.append({"what": "fused float32 max |log P error| vs mpmath where log P >= -30 (main and tail)",
                     "value": worst, "required": f"<= {ACCURACY_BAR:g}", "applies": True,
                     "met": worst <= ACCURACY_BAR})
    for b in bars:
        state = "not checked (sizes differ)" if not b["applies"] else ("met" if b["met"] else "NOT MET")
        print(f"bar: {b['what']}: {_fmt(b['value'], '.3g')} (required {b['required']}) -> {state}")

    env["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    env["cpu_threads_setting"] = torch.get_num_threads()
    payload = {
        "environment": env,
        "sizes": {"B": B, "Q": Q, "E": E, "L": L, "quick": bool(args.quick)},
        "baseline": BASELINE,
        "timing": {"warmup": warmup, "repeats": repeats, "statistic": "median_ms", "order": "interleaved rounds"},
        "results": results,
        "compile_times": compile_times,
        "accuracy": accuracy,
        "accuracy_seconds": t_acc,
        "bars": bars,
    }
    return payload, render_markdown(payload, dev)


def _fmt(x, spec=".2e"):
    if x is None:
        return "-"
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return format(x, spec)


def render_markdown(p, dev):
    env, sizes = p["environment"], p["sizes"]
    head = (
        f"# Copula ops benchmark ({dev.type})\n\n"
        f"Device: {env['device_name']}"
        + (f" (ccnn SIMD: {env['simd']})" if "simd" in env else "")
        + f"; threads: {env['threads']} (of {env['cpu_count']} CPUs); "
        f"torch {env['torch']}; ccnn {env['ccnn']}; Python {env['python']}; {env['date']}; "
        f"load average {env.get('load_average_at_start')} at start, {env.get('load_average_at_end')} "
        f"at end.\nB = {sizes['B']}, Q = {Q} (E = {E} edges, all pairs), L = {L}; theta shared per "
        f"edge, mixed magnitudes (|theta| 0.05-40); AU-like labels (70% level 0, 5% missing)"
        + ("; QUICK RUN (small sizes, few repeats: not for the record)" if sizes["quick"] else "")
        + ".\nnaive = the plain PyTorch function of benchmarks/naive_copula.py (textbook four-term "
        "difference); compiled = torch.compile of it (default mode); careful reference = "
        "tests/copula_reference.py (the test suite's accuracy reference, not a user's code). "
        f"Times in ms: median of up to {p['timing']['repeats']} runs after "
        f"{p['timing']['warmup']} warm-up calls, fused, eager and compiled called in turn in each round "
        f"(the same load for each); compile time excluded (table below).\n\n"
    )
    rows = []
    for r in p["results"]:
        ms = lambda k: f"{r[k]['median_ms']:.2f}" if r.get(k) else "-"  # noqa: E731
        rows.append([r["op"], r["mode"], r["dtype"], ms("fused"), ms("compiled"), ms("eager"),
                     ms("careful"), _fmt(r["speedup_vs_compiled"], ".2f") + "x",
                     _fmt(r["speedup_vs_eager"], ".2f") + "x"])
    timing = markdown_table(
        ["op", "mode", "dtype", "fused", "naive compiled", "naive eager", "careful reference",
         f"speed-up vs {BASELINE}", "speed-up vs naive eager"], rows)
    comp = markdown_table(["op", "mode", "dtype", "compile (first call) s"],
                          [[c["op"], c["mode"], c["dtype"], f"{c['first_call_s']:.1f}"]
                           for c in p["compile_times"]])
    acc_rows = [[a["set"], a["op"], IMPL_LABELS[a["impl"]], a["dtype"],
                 _fmt(a["max_abs_err_trusted"]) + f" ({a['n_trusted']})",
                 _fmt(a["max_rel_err_tiny"]) + f" ({a['n_tiny']})",
                 f"{a['nonfinite_out']:.3g}", f"{a['nonfinite_grad_z']:.3g}",
                 _fmt(a["nonfinite_grad_theta"], ".3g")] for a in p["accuracy"]]
    n = p["accuracy"][0]["n_cells"] if p["accuracy"] else 0
    acc = markdown_table(
        ["set", "op", "implementation", "dtype", "max abs err of log P, log P >= -30 (cells)",
         "max rel err, log P < -30 (cells)", "non-finite outputs", "non-finite grad z",
         "non-finite grad theta"], acc_rows)
    bars = "".join(
        f"- {b['what']}: {_fmt(b['value'], '.3g')} (required {b['required']}): "
        + ("not checked (sizes differ from the bar's)" if not b["applies"] else
           ("met" if b["met"] else "**NOT MET**")) + "\n" for b in p["bars"])
    # the load before the run (at the end it includes the benchmark's own threads)
    start = env.get("load_average_at_start")
    if start and start[0] > 0.5 * (env.get("cpu_count") or 1):
        head += ("**Warning: the machine was busy before the run (1-minute load average above half "
                 "the CPU count); the timings are noisy and not for the record.**\n\n")
    return (head + f"## Timings: speed-up vs {BASELINE}\n\n" + timing
            + "\n## torch.compile time of the naive function (excluded above)\n\nFirst call per grad mode "
            "and dtype, fresh inductor cache (a later dtype reuses what the first compiled).\n\n" + comp
            + f"\n## Accuracy of log P against mpmath\n\nTruth: mpmath, 30 significant digits "
            f"(naive_copula.mp_pair_logprob, working precision raised until two precisions agree), "
            f"on {n} random cells per set and op (the same cells for every implementation; "
            "loglik cells have both labels present). main = the timed inputs; tail = |theta| "
            "30-200, uniform labels. Non-finite fractions over the whole set, gradients through "
            "a random upstream gradient.\n\n" + acc
            + "\n## Bars (the issue's)\n\n" + bars)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", action="append", help="cpu (default) and/or cuda; repeatable")
    parser.add_argument("--out", default=os.path.join(ROOT, "runs", "bench"),
                        help="results directory (default runs/bench; the committed results are "
                             "benchmarks/results)")
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats (CI smoke)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    parser.add_argument("--batch", type=int, default=None, help="B (default 4096 CPU, 65536 CUDA)")
    parser.add_argument("--dtype", action="append", choices=sorted(DTYPES),
                        help="repeatable (default float32 and float64 on CPU, float32 on CUDA)")
    parser.add_argument("--repeats", type=int, default=9, help="timed repeats (default 9)")
    parser.add_argument("--cells", type=int, default=None,
                        help="cells per set and op checked against mpmath (default 300, quick 40)")
    parser.add_argument("--no-compile", action="store_true",
                        help="leave out the torch.compile baseline (for a fast smoke test only)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    devices = args.device or ["cpu"]
    for d in devices:
        if torch.device(d).type == "cuda" and not (torch.cuda.is_available() and ccnn_ext.built_with_cuda()):
            parser.error("--device cuda needs a CUDA device and ccnn built with CUDA")
    torch.set_num_threads(args.threads)
    failed = []
    for d in devices:
        t0 = time.perf_counter()
        payload, md = run_device(d, args)
        payload["wall_seconds"] = time.perf_counter() - t0
        paths = write_results(f"copula_{torch.device(d).type}", payload, md, out_dir=args.out)
        print(f"{d}: {payload['wall_seconds']:.0f} s; wrote " + " and ".join(paths), flush=True)
        failed += [b["what"] for b in payload["bars"] if b["applies"] and not b["met"]]
    if failed:
        print("bars not met:\n  " + "\n  ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
