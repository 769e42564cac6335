"""pairwise_logtable over the length of the ordinal scale: ccnn against torch.compile of the naive
PyTorch function (and the same function eager) for L = 6 to 24 levels.

The AUs' intensity scale has 6 levels (the main benchmark, bench_copula.py, times that); other
ordinal targets are longer (the pain score PSPI has 16). Each L gets its own inputs: Q = 12 AUs
(66 edges, all pairs), thresholds and theta drawn as in bench_copula.py's "main" set (the
thresholds over the same range for every L), shared theta.
Forward under no_grad; forward+backward takes gradients with respect to z and theta. The three
implementations are called in turn in each round of repeats (the same machine load for each);
medians in ms; torch.compile's time (first call per L, grad mode and dtype) is excluded. The
op's accuracy at every L is the test suite's business (tests/test_pairwise_logtable.py).

    python benchmarks/bench_logtable_levels.py --out benchmarks/results   # update the committed results
    python benchmarks/bench_logtable_levels.py --quick --out /tmp/b       # small sizes (CI smoke)
"""
import argparse
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402

import ccnn_ext  # noqa: E402
import naive_copula as naive  # noqa: E402
from common import SCRATCH_DIR, environment, load_average, markdown_table, time_calls_interleaved, write_results  # noqa: E402

Q = 12
EDGES = torch.tensor([(a, b) for a in range(Q) for b in range(a + 1, Q)])
LEVELS = (6, 12, 13, 16, 24)
BASELINE = "torch.compile of the naive PyTorch function"


def make_inputs(B, L, seed=0):
    """float64 (z, theta): increasing thresholds with level 0 the most likely, spread over the same
    range whatever L (bench_copula.py's at L = 6: steps of 0.15-1 there, narrower with more
    levels), theta of mixed magnitude (|theta| 0.05-40, three in four positive)."""
    g = torch.Generator().manual_seed(seed + L)
    steps = (0.15 + 0.85 * torch.rand(B, Q, L - 1, generator=g, dtype=torch.float64)) * (5 / (L - 1))
    z = torch.cumsum(steps, -1) - steps[..., :1] + 1.0 + 0.5 * torch.randn(B, Q, 1, generator=g, dtype=torch.float64)
    E = EDGES.shape[0]
    magnitude = torch.exp(math.log(0.05) + (math.log(40.0) - math.log(0.05)) * torch.rand(E, generator=g,
                                                                                          dtype=torch.float64))
    sign = torch.where(torch.rand(E, generator=g) < 0.75, 1.0, -1.0).double()
    return z, magnitude * sign


def timed_calls(impls, z, theta, mode):
    """{name: a call of that implementation}, forward (no_grad) or forward+backward."""
    calls = {}
    for name, fn in impls.items():
        if mode == "forward":
            def call(fn=fn):
                with torch.no_grad():
                    fn(z, theta, EDGES)
        else:
            def call(fn=fn):
                zg, tg = z.detach().requires_grad_(), theta.detach().requires_grad_()
                fn(zg, tg, EDGES).sum().backward()
        calls[name] = call
    return calls


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=SCRATCH_DIR, help="folder for the .json and .md results")
    parser.add_argument("--batch", type=int, default=512, help="B (default 512)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds (default 7)")
    parser.add_argument("--quick", action="store_true", help="B = 16, L = 6 and 13, 3 rounds, no compile")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    B, levels, repeats = (16, (6, 13), 3) if args.quick else (args.batch, LEVELS, args.repeats)
    impls = {"ccnn": ccnn_ext.pairwise_logtable, "compiled": torch.compile(naive.naive_pairwise_logtable, dynamic=False),
             "eager": naive.naive_pairwise_logtable}
    if args.quick:
        del impls["compiled"]
    env = environment("cpu", args.threads)
    records = []
    for dtype in (torch.float32, torch.float64):
        for L in levels:
            # (each shape and grad mode is a new graph: past dynamo's recompile limit, 8, the compiled
            # function would silently run eager)
            torch._dynamo.reset()
            z64, theta64 = make_inputs(B, L)
            z, theta = z64.to(dtype), theta64.to(dtype)
            for mode in ("forward", "forward+backward"):
                times = time_calls_interleaved(timed_calls(impls, z, theta, mode), "cpu", warmup=2,
                                               repeats=repeats)
                record = {"dtype": str(dtype).replace("torch.", ""), "L": L, "mode": mode,
                          **{f"{name}_ms": t["median_ms"] for name, t in times.items()}}
                records.append(record)
                print(record, flush=True)
    env["load_average_at_end"] = load_average()
    sizes = {"B": B, "Q": Q, "E": int(EDGES.shape[0]), "levels": list(levels), "repeats": repeats}
    rows = []
    for r in records:
        row = [r["dtype"], str(r["L"]), r["mode"], f"{r['ccnn_ms']:.2f}"]
        if "compiled_ms" in r:
            row += [f"{r['compiled_ms']:.2f}", f"{r['compiled_ms'] / r['ccnn_ms']:.2f}x"]
        row += [f"{r['eager_ms']:.2f}", f"{r['eager_ms'] / r['ccnn_ms']:.2f}x"]
        rows.append(row)
    header = ["dtype", "L", "mode", "ccnn ms"]
    if not args.quick:
        header += ["compiled ms", f"speed-up vs {BASELINE}"]
    header += ["eager ms", "speed-up vs eager"]
    markdown = (
        f"# pairwise_logtable over the number of levels L (cpu)\n\n"
        f"Device: {env['device_name']}; threads: {args.threads} (of {env['cpu_count']} CPUs); torch {env['torch']}; "
        f"ccnn {env['ccnn']}; Python {env['python']}; load average {env['load_average_at_start']} at start, "
        f"{env['load_average_at_end']} at end.\n"
        f"B = {B}, Q = {Q} (E = {sizes['E']} edges, all pairs), shared theta (|theta| 0.05-40). Baseline: {BASELINE} "
        f"(benchmarks/naive_copula.py; compile time excluded), and the same function eager. Median ms of "
        f"{repeats} rounds after 2 warm-up calls, the three called in turn in each round.\n\n"
        + ("## Timings\n\n" if args.quick else f"## Timings: speed-up vs {BASELINE}\n\n")
        + markdown_table(header, rows) + "\n")
    paths = write_results("logtable_levels_cpu", {"environment": env, "sizes": sizes, "results": records}, markdown,
                          args.out)
    print("wrote", *paths)


if __name__ == "__main__":
    main()
