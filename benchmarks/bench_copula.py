"""Benchmark of the fused Frank copula ops against the pure-PyTorch reference.

Times ccnn_ext.pairwise_loglik and ccnn_ext.pairwise_logtable, forward (under no_grad) and
forward+backward, against the vectorised eager reference of tests/copula_reference.py (the one the
tests use) and, on CUDA, against torch.compile of that reference. float32, Q = 12 AUs (66 edges,
fully connected), L = 6 levels, theta shared per edge, 10% of labels missing.

Correctness is checked first at every size (on up to 512 samples): ccnn float32 against the
reference in float64 (values where P >= 1e-6, gradients through the entries with P >= 1e-4); the
script exits with status 1 if a check fails. Then each case is timed (warm-up, repeats, median).
Results: a table on stdout and benchmarks/results/copula_<device>.{json,md}.

    python benchmarks/bench_copula.py                      # CPU, 2 threads, B = 128, 4096, 65536
    python benchmarks/bench_copula.py --device cuda
    python benchmarks/bench_copula.py --quick              # small sizes, few repeats
    python benchmarks/bench_copula.py --threads 1 --sizes 128,1024
"""
import argparse
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

import torch  # noqa: E402

import ccnn_ext  # noqa: E402
import copula_reference as reference  # noqa: E402
from common import environment, markdown_table, time_call, write_results  # noqa: E402

Q, L = 12, 6
EDGES = reference.all_pairs(Q)
E = EDGES.shape[0]
OPS = ("pairwise_loglik", "pairwise_logtable")
MODES = ("forward", "forward+backward")
# The bars: (device type, op, mode, B, implementation compared with, minimum speedup)
BARS = [
    ("cpu", "pairwise_loglik", "forward+backward", 4096, "eager", 10.0),
    ("cpu", "pairwise_logtable", "forward", 4096, "eager", 5.0),
    ("cuda", "pairwise_loglik", "forward+backward", 65536, "eager", 20.0),
    ("cuda", "pairwise_loglik", "forward+backward", 65536, "compiled", 2.0),
]


def make_inputs(B, device, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = reference.random_thresholds(B, Q, L, seed=seed, spread=1.5)
    theta = (torch.rand(E, generator=g, dtype=torch.float64) - 0.5) * 20
    labels = reference.random_labels(B, Q, L, seed=seed, missing=0.1)
    return z.to(device, dtype), theta.to(device, dtype), EDGES.to(device), labels.to(device)


def call(impl, op, z, theta, edges, labels):
    if op == "pairwise_loglik":
        return impl.pairwise_loglik(z, theta, edges, labels)
    return impl.pairwise_logtable(z, theta, edges)


def check_correctness(B, device):
    """ccnn float32 against the float64 reference on up to 512 samples; returns the errors."""
    n = min(B, 512)
    z, theta, edges, labels = make_inputs(n, device, seed=1)
    report = {}
    for op in OPS:
        want = call(reference, op, z.double(), theta.double(), edges, labels)
        got = call(ccnn_ext, op, z, theta, edges, labels).double()
        trusted = want >= math.log(1e-6)  # the reference's four-term difference cancels below
        value_error = (got - want)[trusted].abs().max().item()
        # gradients through the entries the reference computes accurately
        weight = torch.where(want >= math.log(1e-4), torch.rand_like(want), torch.zeros_like(want))
        grads = []
        for impl, dtype in ((ccnn_ext, torch.float32), (reference, torch.float64)):
            zz = z.detach().to(dtype, copy=True).requires_grad_()
            tt = theta.detach().to(dtype, copy=True).requires_grad_()
            call(impl, op, zz, tt, edges, labels).backward(weight.to(dtype))
            grads.append((zz.grad.double(), tt.grad.double()))
        # relative to the gradient's scale: an entry sums many terms that may cancel
        grad_error = max(((a - b).abs().max() / b.abs().max().clamp_min(1)).item()
                         for a, b in zip(*grads))
        ok = value_error <= 1e-4 and grad_error <= 1e-4
        report[op] = {"max_abs_log_error": value_error, "max_rel_grad_error": grad_error, "ok": ok}
    return report


def reference_fits(op, B, device):
    """Whether the eager reference's intermediates (~100 tensors of its corner values) fit."""
    corners = B * E * (4 if op == "pairwise_loglik" else (L + 1) ** 2)
    need = corners * 4 * 100
    if torch.device(device).type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return need < 0.8 * free
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        available = int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        available = 8 << 30
    return need < 0.6 * available


def bench_case(impl, op, mode, inputs, device, warmup, repeats):
    z, theta, edges, labels = inputs
    if mode == "forward":
        def fn():
            with torch.no_grad():
                call(impl, op, z, theta, edges, labels)
    else:
        zz, tt = z.clone().requires_grad_(), theta.clone().requires_grad_()
        grad_out = torch.rand_like(call(ccnn_ext, op, z, theta, edges, labels))

        def fn():
            zz.grad = tt.grad = None
            call(impl, op, zz, tt, edges, labels).backward(grad_out)
    return time_call(fn, device, warmup=warmup, repeats=repeats)


class CompiledReference:
    """torch.compile of the reference functions (CUDA only)."""

    def __init__(self):
        self.pairwise_loglik = torch.compile(reference.pairwise_loglik, dynamic=False)
        self.pairwise_logtable = torch.compile(reference.pairwise_logtable, dynamic=False)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    parser.add_argument("--sizes", default=None, help="comma-separated batch sizes (default 128,4096,65536)")
    parser.add_argument("--quick", action="store_true", help="B = 128, 1024 and fewer repeats")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not (torch.cuda.is_available() and ccnn_ext.built_with_cuda()):
        parser.error("--device cuda needs a CUDA device and ccnn built with CUDA")
    torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else (
        [128, 1024] if args.quick else [128, 4096, 65536])
    warmup, repeats = (1, 3) if args.quick else (2, 7)

    impls = {"ccnn": ccnn_ext, "eager": reference}
    if device.type == "cuda":
        impls["compiled"] = CompiledReference()

    env = environment(device, torch.get_num_threads())
    print(f"device {env['device_name']} ({device}), {env['threads']} threads, torch {env['torch']}, "
          f"ccnn {env['ccnn']}; Q={Q}, E={E}, L={L}, float32")

    correctness, results = {}, []
    for B in sizes:
        correctness[B] = check_correctness(B, device)
        for op, rep in correctness[B].items():
            print(f"check B={B} {op}: max |log P error| {rep['max_abs_log_error']:.2e}, "
                  f"max grad error {rep['max_rel_grad_error']:.2e} -> {'ok' if rep['ok'] else 'FAILED'}")
        if not all(rep["ok"] for rep in correctness[B].values()):
            print("correctness check failed; not timing")
            return 1
        inputs = make_inputs(B, device)
        for op in OPS:
            for mode in MODES:
                row = {"op": op, "mode": mode, "B": B}
                for name, impl in impls.items():
                    if name != "ccnn" and not reference_fits(op, B, device):
                        row[name] = None  # would not fit in memory
                        continue
                    row[name] = bench_case(impl, op, mode, inputs, device, warmup, repeats)
                results.append(row)
                times = "  ".join(f"{k} {v['median_ms']:9.2f} ms" if v else f"{k} {'(skipped)':>12}"
                                  for k, v in row.items() if k in impls)
                print(f"{op:18s} {mode:17s} B={B:<6d} {times}")

    def speedup(row, other):
        return row[other]["median_ms"] / row["ccnn"]["median_ms"] if row.get(other) else None

    bars = []
    for dev, op, mode, B, other, minimum in BARS:
        row = next((r for r in results if (r["op"], r["mode"], r["B"]) == (op, mode, B)), None)
        if dev != device.type or row is None or speedup(row, other) is None:
            continue
        s = speedup(row, other)
        bars.append({"op": op, "mode": mode, "B": B, "versus": other, "speedup": s,
                     "required": minimum, "met": s >= minimum})
        print(f"bar: {op} {mode} B={B} vs {other}: {s:.1f}x (required {minimum:g}x) -> "
              f"{'met' if s >= minimum else 'NOT met'}")

    header = ["op", "mode", "B", "ccnn ms"] + [f"{k} ms" for k in impls if k != "ccnn"] + [
        f"speedup vs {k}" for k in impls if k != "ccnn"]
    rows = []
    for r in results:
        others = [k for k in impls if k != "ccnn"]
        rows.append([r["op"], r["mode"], r["B"], f"{r['ccnn']['median_ms']:.2f}"]
                    + [f"{r[k]['median_ms']:.2f}" if r[k] else "skipped (memory)" for k in others]
                    + [f"{speedup(r, k):.1f}x" if r[k] else "-" for k in others])
    markdown = (
        f"# Copula ops benchmark ({device.type})\n\n"
        f"Device: {env['device_name']}; threads: {env['threads']}; torch {env['torch']}; "
        f"ccnn {env['ccnn']}; Python {env['python']}; {env['date']}"
        + (f"; load average {env['load_average_at_start'][0]} on {env['cpu_count']} CPUs"
           if "load_average_at_start" in env else "") + ".\n"
        f"float32, Q = {Q} (E = {E} edges), L = {L}; median of up to {repeats} runs after "
        f"{warmup} warm-up; eager = the PyTorch reference of tests/copula_reference.py"
        + ("; compiled = torch.compile of it" if device.type == "cuda" else "") + ".\n\n"
        + markdown_table(header, rows)
        + "".join(f"\nBar: {b['op']} {b['mode']} B={b['B']} vs {b['versus']}: {b['speedup']:.1f}x "
                  f"(required {b['required']:g}x): {'met' if b['met'] else 'not met'}." for b in bars)
        + "\n"
    )
    payload = {"environment": env, "sizes": {"Q": Q, "E": E, "L": L, "B": sizes},
               "correctness": {str(k): v for k, v in correctness.items()},
               "results": results, "bars": bars}
    paths = write_results(f"copula_{device.type}", payload, markdown)
    print("wrote " + " and ".join(paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
