"""Benchmark of the MAP decoder: ccnn_ext.decode_ad3 / decode_exact against the reference AD3
(PyPI `ad3` 2.2.1) and exhaustive search, on fully connected graphs with L = 6 states.

Problems (tests/decode_problems.py): random Gaussian tables, and the CCNN objective (log ordinal
marginals + log discretised Frank-copula joints) with |theta| in [2, 6], all positive or of mixed
sign. For Q in {5, 8, 12}:
  - correctness first: decode_exact against exhaustive search (Q <= 8), its certificates, AD3's
    bounds and statuses against the optimum, identical results for 1 and all threads;
  - per-problem time on one thread (a batch solved with num_threads=1, divided by its size; and
    the latency of one call per problem, B = 1, Python overhead included);
  - quality: fraction of problems decoded exactly optimally, mean score gap to the optimum;
  - the reference AD3 at its defaults (ad3.general_graph: 1000 iterations, eta 0.1, adaptive eta),
    timed per problem *including building its factor graph from Python*, as its users must; its
    decode is the per-node argmax of its posteriors;
  - batch throughput of 10,000 Q = 12 problems on 1, 2 and all cores.
Timings: warm-up, then the median of repeats. Writes decode_cpu.json and .md into --out (default:
the ignored scratch folder build/bench-results; the committed results are in benchmarks/results).
Exits with status 1 when a correctness check or an acceptance figure fails. The reference comes
from benchmarks/install_reference_ad3.sh (put its folder on PYTHONPATH); without it its columns
and figures are skipped. General factor graphs are benchmarked by benchmarks/bench_general.py.

    python benchmarks/bench_decode.py --out benchmarks/results   # full run (a few minutes)
    python benchmarks/bench_decode.py --quick                    # small smoke run
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))  # the problem generator shared with the tests
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

from common import SCRATCH_DIR, busy, cpu_name, load_average, markdown_table, write_results  # noqa: E402

import ccnn_ext  # noqa: E402
from decode_problems import KINDS, make_problems, score_labels  # noqa: E402

try:
    import ad3 as reference_ad3
except ImportError:  # the reference columns are skipped
    reference_ad3 = None

NUM_LEVELS = 6
SIZES = (5, 8, 12)
OPTIMAL_RTOL = 1e-9  # "exactly optimal": within 1e-9 * max(1, |optimum|) of the optimum


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def tolerance(optimum):
    return OPTIMAL_RTOL * np.maximum(1.0, np.abs(optimum))


def quality(score, optimum):
    return {
        "fraction_optimal": float(np.mean(score >= optimum - tolerance(optimum))),
        "mean_gap": float(np.mean(optimum - score)),
    }


def run_reference(unary, pairwise, edges):
    """Reference AD3 at its defaults, one problem at a time, graph built from Python."""
    labels = np.empty(unary.shape[:2], dtype=np.int64)
    statuses = []
    for i in range(len(unary)):
        marginals, _, _, status = reference_ad3.general_graph(unary[i], edges, pairwise[i], verbose=0)
        labels[i] = np.asarray(marginals).reshape(unary.shape[1:]).argmax(axis=1)
        statuses.append(status)
    return labels, statuses


class Checks:
    def __init__(self):
        self.failures = []

    def expect(self, condition, message):
        if not condition:
            self.failures.append(message)
            print("CHECK FAILED:", message, flush=True)


def bench_config(kind, num_nodes, n, n_reference, n_exhaustive, repeats, checks):
    unary, pairwise, edges = make_problems(kind, n, num_nodes, NUM_LEVELS, seed=1000 * num_nodes + KINDS.index(kind))
    tag = f"{kind} Q={num_nodes}"
    row = {"kind": kind, "Q": num_nodes, "L": NUM_LEVELS, "edges": len(edges), "problems": n}

    # Correctness first.
    exact = ccnn_ext.decode_exact(unary, pairwise, edges, num_threads=1)
    optimum = exact.score
    checks.expect(bool(exact.optimal.all()), f"{tag}: decode_exact did not certify every problem")
    checks.expect(bool((exact.bound - exact.score <= tolerance(optimum)).all()), f"{tag}: exact bound gap")
    checks.expect(np.allclose(score_labels(unary, pairwise, edges, exact.labels), exact.score, rtol=0, atol=1e-9),
                  f"{tag}: exact score does not match its labels")
    if n_exhaustive:
        sub = slice(0, n_exhaustive)
        brute = ccnn_ext.decode_exhaustive(unary[sub], pairwise[sub], edges, num_threads=1)
        checks.expect(bool((np.abs(brute.score - optimum[sub]) <= tolerance(optimum[sub])).all()),
                      f"{tag}: decode_exact disagrees with exhaustive search")
        row["exhaustive_checked"] = n_exhaustive
        row["exhaustive_ms"] = 1e3 * median_time(
            lambda: ccnn_ext.decode_exhaustive(unary[sub], pairwise[sub], edges, num_threads=1),
            max(1, repeats // 2)) / n_exhaustive
    ad3 = ccnn_ext.decode_ad3(unary, pairwise, edges, num_threads=1)
    checks.expect(bool((ad3.bound >= optimum - tolerance(optimum)).all()), f"{tag}: AD3 bound below the optimum")
    checks.expect(bool((ad3.score <= optimum + tolerance(optimum)).all()), f"{tag}: AD3 score above the optimum")
    checks.expect(bool((ad3.score[ad3.optimal] >= optimum[ad3.optimal] - tolerance(optimum[ad3.optimal])).all()),
                  f"{tag}: AD3 'optimal' status on a non-optimal labelling")
    parallel = ccnn_ext.decode_ad3(unary, pairwise, edges, num_threads=0)
    checks.expect(np.array_equal(parallel.labels, ad3.labels) and np.array_equal(parallel.bound, ad3.bound),
                  f"{tag}: AD3 results depend on the number of threads")

    # One-thread timings: batched, and one call per problem.
    warm = slice(0, min(n, 50))
    ccnn_ext.decode_ad3(unary[warm], pairwise[warm], edges, num_threads=1)
    ccnn_ext.decode_exact(unary[warm], pairwise[warm], edges, num_threads=1)
    row["ad3_ms"] = 1e3 * median_time(lambda: ccnn_ext.decode_ad3(unary, pairwise, edges, num_threads=1), repeats) / n
    row["exact_ms"] = 1e3 * median_time(lambda: ccnn_ext.decode_exact(unary, pairwise, edges, num_threads=1), repeats) / n
    n_calls = min(n, 200)

    def per_call(decode):
        for i in range(n_calls):
            decode(unary[i:i + 1], pairwise[i:i + 1], edges, num_threads=1)

    row["ad3_call_ms"] = 1e3 * median_time(lambda: per_call(ccnn_ext.decode_ad3), repeats) / n_calls
    row["exact_call_ms"] = 1e3 * median_time(lambda: per_call(ccnn_ext.decode_exact), repeats) / n_calls
    row["ad3"] = quality(ad3.score, optimum)
    row["ad3"]["status"] = {name: int((ad3.status == code).sum()) for code, name in enumerate(ccnn_ext.STATUS_NAMES)}
    row["ad3"]["mean_iterations"] = float(ad3.iterations.mean())
    row["exact"] = quality(exact.score, optimum)
    row["exact"]["certified"] = int(exact.optimal.sum())
    row["exact"]["mean_nodes"] = float(exact.iterations.mean())
    row["exact"]["max_nodes"] = int(exact.iterations.max())

    if reference_ad3 is not None and n_reference:
        sub = slice(0, n_reference)
        run_reference(unary[:5], pairwise[:5], edges)  # warm-up
        ref_repeats = 3 if kind != "gaussian" else 1  # on Gaussian tables it runs to its limit
        result = {}

        def timed():
            result["labels"], result["status"] = run_reference(unary[sub], pairwise[sub], edges)

        row["reference_ms"] = 1e3 * median_time(timed, ref_repeats) / n_reference
        ref_score = score_labels(unary[sub], pairwise[sub], edges, result["labels"])
        row["reference"] = quality(ref_score, optimum[sub])
        row["reference"]["status"] = {s: result["status"].count(s) for s in sorted(set(result["status"]))}
        row["reference"]["problems"] = n_reference
        # Our quality on the same subset, for a like-for-like comparison.
        row["ad3_on_reference_subset"] = quality(ad3.score[sub], optimum[sub])
    print(json.dumps(row), flush=True)
    return row


def bench_throughput(kind, n, repeats, checks):
    unary, pairwise, edges = make_problems(kind, n, 12, NUM_LEVELS, seed=777 + KINDS.index(kind))
    cores = os.cpu_count() or 1
    thread_counts = sorted({1, 2, cores})
    rows = []
    for name, decode in (("ad3", ccnn_ext.decode_ad3), ("exact", ccnn_ext.decode_exact)):
        decode(unary[:200], pairwise[:200], edges, num_threads=0)  # warm-up
        reference = decode(unary, pairwise, edges, num_threads=1)
        row = {"kind": kind, "method": name, "Q": 12, "problems": n}
        for threads in thread_counts:
            seconds = median_time(lambda: decode(unary, pairwise, edges, num_threads=threads), repeats)
            row[f"per_second_{threads}"] = n / seconds
        again = decode(unary, pairwise, edges, num_threads=cores)
        checks.expect(np.array_equal(again.labels, reference.labels), f"throughput {kind} {name}: thread-dependent")
        row["speedup_2"] = row["per_second_2"] / row["per_second_1"] if 2 in thread_counts else None
        row["speedup_all"] = row[f"per_second_{cores}"] / row["per_second_1"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def verdicts(rows, throughput):
    """The issue's acceptance figures."""
    out = []
    by = {(r["kind"], r["Q"]): r for r in rows}
    for kind in ("frank_pos", "frank_mixed"):
        r = by.get((kind, 12))
        if r is None:
            continue
        if "reference_ms" in r:
            ours, ref = r["ad3_on_reference_subset"], r["reference"]
            speed = r["reference_ms"] / r["ad3_ms"]
            better = ours["fraction_optimal"] >= ref["fraction_optimal"] and ours["mean_gap"] <= ref["mean_gap"] + 1e-12
            out.append({"bar": f"{kind} Q=12: decode_ad3 >= 10x faster than reference AD3 with at least its quality",
                        "value": f"{speed:.1f}x; optimal {ours['fraction_optimal']:.3f} vs {ref['fraction_optimal']:.3f}; "
                                 f"mean gap {ours['mean_gap']:.4g} vs {ref['mean_gap']:.4g}",
                        "pass": bool(speed >= 10 and better)})
            speed = r["reference_ms"] / r["exact_ms"]
            certified = r["exact"]["certified"] == r["problems"]
            out.append({"bar": f"{kind} Q=12: decode_exact >= 20x faster than reference AD3, certifying all "
                               f"{r['problems']} problems",
                        "value": f"{speed:.1f}x; certified {r['exact']['certified']}/{r['problems']}",
                        "pass": bool(speed >= 20 and certified)})
    r = by.get(("gaussian", 8))
    if r is not None:
        out.append({"bar": "gaussian Q=8: decode_exact optimal on all problems",
                    "value": f"certified {r['exact']['certified']}/{r['problems']} "
                             f"(checked against exhaustive search on {r.get('exhaustive_checked', 0)})",
                    "pass": bool(r["exact"]["certified"] == r["problems"] and r["exact"]["fraction_optimal"] == 1.0)})
    for t in throughput:
        if t.get("speedup_2") is not None:
            out.append({"bar": f"{t['kind']} Q=12, {t['problems']} problems, {t['method']}: 2 threads >= 1.8x one thread",
                        "value": f"{t['speedup_2']:.2f}x", "pass": bool(t["speedup_2"] >= 1.8)})
    return out


def fmt_load(load):
    return f"{load[0]:.1f}" if load else "n/a"


def markdown(meta, rows, throughput, bars):
    lines = ["# MAP decoder benchmark (CPU)", "",
             f"Device: {meta['cpu']}, {meta['cores']} logical cores; {meta['platform']}; Python {meta['python']}, "
             f"numpy {meta['numpy']}, ccnn {meta['ccnn']}, reference ad3 {meta['reference_ad3'] or 'not installed'}. "
             f"Load average (1 min) at start / end: {fmt_load(meta['load_average_at_start'])} / "
             f"{fmt_load(meta['load_average_at_end'])}" + (
                 " -- the machine was busy: timings, and above all the thread scaling, are unreliable."
                 if busy(meta["load_average_at_start"], meta["cores"]) else "."),
             "Fully connected graphs, L = 6. Times are per problem on one thread: `batched` = a batch solved with "
             "num_threads=1 divided by its size, `per call` = one Python call per problem (B = 1). The reference AD3 "
             "runs at its defaults and is timed per problem including building its factor graph from Python; its "
             "decode is the argmax of its posteriors. `opt` = fraction decoded exactly optimally, `gap` = mean score "
             "gap to the optimum (certified by decode_exact). `speed-up` = reference ms / batched ms. Median of "
             "repeats after warm-up.", ""]
    header = ["problems", "Q", "n", "ad3 ms batched", "ad3 ms per call", "ad3 opt", "ad3 gap", "ad3 statuses",
              "exact ms batched", "exact ms per call", "exact certified", "ref ms", "ref opt", "ref gap",
              "ref statuses", "speed-up ad3", "speed-up exact", "exhaustive ms"]
    body = []
    for r in rows:
        st = r["ad3"]["status"]
        ref = r.get("reference")
        body.append(
            [r["kind"], r["Q"], r["problems"], f"{r['ad3_ms']:.4f}", f"{r['ad3_call_ms']:.4f}",
             f"{r['ad3']['fraction_optimal']:.3f}", f"{r['ad3']['mean_gap']:.4g}",
             f"{st['optimal']}/{st['fractional']}/{st['iteration_limit']}", f"{r['exact_ms']:.4f}",
             f"{r['exact_call_ms']:.4f}", f"{r['exact']['certified']}/{r['problems']}"]
            + ([f"{r['reference_ms']:.3f}", f"{ref['fraction_optimal']:.3f}", f"{ref['mean_gap']:.4g}",
                f"{', '.join(f'{k} {v}' for k, v in ref['status'].items())} (n={ref['problems']})",
                f"{r['reference_ms'] / r['ad3_ms']:.1f}x", f"{r['reference_ms'] / r['exact_ms']:.1f}x"]
               if ref else ["-"] * 6)
            + [f"{r['exhaustive_ms']:.3f} (n={r['exhaustive_checked']})" if "exhaustive_ms" in r else "-"])
    lines.append(markdown_table(header, body))
    lines += ["AD3 statuses: optimal/fractional/iteration_limit. Reference statuses as it reports them.", ""]
    if throughput:
        counts = sorted(int(k.split("_")[-1]) for k in throughput[0] if k.startswith("per_second_"))
        lines.append(markdown_table(
            ["batch throughput (Q = 12)", "method", "problems"] + [f"{c} thread{'s' * (c > 1)}/s" for c in counts]
            + ["2 vs 1", "all vs 1"],
            [[t["kind"], t["method"], t["problems"]] + [f"{t[f'per_second_{c}']:.0f}" for c in counts]
             + [f"{t['speedup_2']:.2f}x" if t["speedup_2"] is not None else "-", f"{t['speedup_all']:.2f}x"]
             for t in throughput]))
    lines.append(markdown_table(["acceptance figure", "measured", "pass"],
                                [[b["bar"], b["value"], "yes" if b["pass"] else "NO"] for b in bars]))
    if meta["reference_ad3"] is None:
        lines += ["The reference `ad3` package is not installed: its columns are skipped "
                  "(install it with benchmarks/install_reference_ad3.sh).", ""]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--out", default=SCRATCH_DIR, help="folder for decode_cpu.json/.md (default: %(default)s)")
    args = parser.parse_args()
    if reference_ad3 is None:
        print("reference `ad3` not installed: skipping its columns (benchmarks/install_reference_ad3.sh installs it)")
    start_load = load_average()
    n = 100 if args.quick else 1000
    repeats = 3 if args.quick else 5
    checks = Checks()
    rows = []
    for num_nodes in SIZES:
        for kind in KINDS:
            hard = kind == "gaussian" and num_nodes == 12  # AD3 runs to its limit; the reference takes ~60 ms
            count = n // 5 if hard else n
            rows.append(bench_config(
                kind, num_nodes, count,
                n_reference=count if kind != "gaussian" else min(count, 200),
                n_exhaustive=count if num_nodes == 5 else (min(count, 40) if num_nodes == 8 else 0),
                repeats=2 if hard else repeats, checks=checks))
    throughput = []
    for kind in ("frank_pos", "frank_mixed"):
        throughput += bench_throughput(kind, 1000 if args.quick else 10000, repeats=3, checks=checks)
    bars = verdicts(rows, throughput)
    meta = {
        "load_average_at_start": start_load, "load_average_at_end": load_average(),
        "cpu": cpu_name(), "cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
        "numpy": np.__version__, "ccnn": ccnn_ext.__version__,
        "reference_ad3": getattr(reference_ad3, "__version__", None) if reference_ad3 else None,
        "quick": args.quick, "levels": NUM_LEVELS, "optimal_rtol": OPTIMAL_RTOL,
        "reference_timing": "per problem, including building its factor graph from Python (ad3.general_graph)",
    }
    suffix = "_quick" if args.quick else ""
    paths = write_results(f"decode_cpu{suffix}", {"meta": meta, "configs": rows, "throughput": throughput,
                                                  "acceptance": bars, "check_failures": checks.failures},
                          markdown(meta, rows, throughput, bars), args.out)
    print("wrote", *paths)
    for b in bars:
        print(("PASS " if b["pass"] else "FAIL ") + b["bar"] + ": " + b["value"])
    failed = [b for b in bars if not b["pass"]]
    if checks.failures or failed:
        print(f"{len(checks.failures)} correctness check(s) and {len(failed)} acceptance figure(s) failed")
        sys.exit(1)


if __name__ == "__main__":
    main()
