"""PSDD (projected subgradient dual decomposition): ccnn_decoder.ad3's ``solve_lp_map_psdd``
against the reference AD3's (PyPI ``ad3`` 2.2.1) on identical graphs, the families of
bench_general.py (the same builders and seeds), defaults on both sides (eta 1, 1000 iterations),
one thread.

Per family: milliseconds per problem (the median over the problems of the fastest of `repeats`
runs, the two packages alternating; total = graph construction + solve, and the solve alone),
the fraction whose posteriors are integral (ccnn: also certified optimal; the reference returns
no status), and the rounded objective (binary: p > 1/2, multi-valued: the most probable state;
-inf when a hard factor forbids it) by one scorer for both, per problem against the reference's.
There is no bar: AD3 is the default solver (bench_general.py); this shows what a user of the
reference's PSDD gets here.

Needs the reference on PYTHONPATH (bash benchmarks/install_reference_ad3.sh):

    PYTHONPATH=$HOME/.cache/ccnn/reference-ad3 python benchmarks/bench_psdd.py --out benchmarks/results
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_general import FAMILIES, close, our_extensions, ours, reference, reference_extensions, rounded_score  # noqa: E402
from common import SCRATCH_DIR, busy, cpu_name, load_average, markdown_table, write_results  # noqa: E402


def solve_once(api, ext, build, scores):
    """(total seconds, solve seconds, value, posteriors, graph) of one build + PSDD solve."""
    start = time.perf_counter()
    graph, keep = build(api, ext, scores)
    built = time.perf_counter()
    value, posteriors, _ = graph.solve_lp_map_psdd()
    end = time.perf_counter()
    del keep
    return end - start, end - built, value, posteriors, graph


def run_family(family, count, repeats):
    make_scores, build = FAMILIES[family]
    apis = ((ours, our_extensions), (reference, reference_extensions))
    out = [{"total_ms": [], "solve_ms": [], "integral": [], "objective": []} for _ in apis]
    certified = 0
    for seed in range(count):
        scores = make_scores(np.random.default_rng(seed))
        judge = build(ours, our_extensions, scores)[0]
        best = [[float("inf"), float("inf")] for _ in apis]
        last = [None] * len(apis)
        for _ in range(repeats):
            for k, (api, ext) in enumerate(apis):
                total, solve, value, posteriors, graph = solve_once(api, ext, build, scores)
                best[k] = [min(best[k][0], total), min(best[k][1], solve)]
                last[k] = (value, posteriors, graph)
        # ccnn certified: its posteriors are a labelling whose score (the value) meets its dual bound
        value, posteriors, graph = last[0]
        certified += all(p in (0.0, 1.0) for p in posteriors) and graph.last_bound - value <= 1e-9 * max(1.0, abs(value))
        for o, (total, solve), (_, posteriors, _) in zip(out, best, last):
            o["total_ms"].append(1e3 * total)
            o["solve_ms"].append(1e3 * solve)
            o["integral"].append(all(p in (0.0, 1.0) for p in posteriors))
            o["objective"].append(rounded_score(judge, posteriors))
    row = {"family": family, "certified": certified / count}
    for name, o in zip(("ours", "reference"), out):
        finite = [x for x in o["objective"] if x > -np.inf]
        row[name] = {"ms": statistics.median(o["total_ms"]), "solve_ms": statistics.median(o["solve_ms"]),
                     "integral": sum(o["integral"]) / count,
                     "objective": float(np.mean(finite)) if finite else float("-inf"),
                     "infeasible_roundings": count - len(finite), "raw": o}
    pairs = list(zip(out[0]["objective"], out[1]["objective"]))
    row["better"] = sum(a > b and not close(a, b) for a, b in pairs)
    row["worse"] = sum(a < b and not close(a, b) for a, b in pairs)
    row["speedup"] = row["reference"]["ms"] / row["ours"]["ms"]
    row["solve_speedup"] = row["reference"]["solve_ms"] / row["ours"]["solve_ms"]
    return row


def objective(s):
    return f"{s['objective']:.4f}" + (f" ({s['infeasible_roundings']} infeasible)" if s["infeasible_roundings"] else "")


def markdown(meta, rows):
    lines = [f"# PSDD: ccnn_decoder.ad3 vs the reference AD3's ({meta['reference']})", "",
             f"{meta['cpu']}, {meta['cores']} logical cores, one thread; Python {meta['python']}. Load average "
             f"(1/5/15 min) at start {meta['load_average_at_start']}, at end {meta['load_average_at_end']}"
             + (" -- busy: absolute times inflated." if meta["busy"] else "."),
             f"`solve_lp_map_psdd()` with the defaults (eta 1, 1000 iterations) on bench_general.py's families, "
             f"{meta['problems']} problems each, each timed {meta['repeats']} times per package, alternating "
             "(fastest kept), median over the problems; `total` = construction + solve. `integral` = posteriors "
             "all 0 or 1; `certified` = ccnn's rounding met its dual bound (optimal; the reference returns no "
             "status); `objective` = mean score of the rounded posteriors (one scorer) over the feasible "
             "roundings (fewer infeasible roundings can lower that mean: compare per problem, last column). "
             "No bar: AD3 is the default solver.", ""]
    header = ["family", "ccnn total ms", "ccnn solve ms", "ccnn certified", "ccnn integral", "ccnn objective",
              "reference total ms", "reference solve ms", "reference integral", "reference objective",
              "speed-up (total)", "speed-up (solve)", "rounded objective vs reference"]
    body = [[r["family"], f"{r['ours']['ms']:.3f}", f"{r['ours']['solve_ms']:.3f}", f"{r['certified']:.0%}",
             f"{r['ours']['integral']:.0%}", objective(r["ours"]), f"{r['reference']['ms']:.3f}",
             f"{r['reference']['solve_ms']:.3f}", f"{r['reference']['integral']:.0%}", objective(r["reference"]),
             f"{r['speedup']:.2f}x", f"{r['solve_speedup']:.2f}x",
             f"{r['better']} better, {meta['problems'] - r['better'] - r['worse']} equal, {r['worse']} worse"]
            for r in rows]
    lines.append(markdown_table(header, body))
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--problems", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--families", default=",".join(FAMILIES), help="comma-separated subset")
    parser.add_argument("--out", default=SCRATCH_DIR, help="folder for psdd_cpu.json/.md (default: %(default)s)")
    args = parser.parse_args()
    families = args.families.split(",")
    unknown = [f for f in families if f not in FAMILIES]
    if unknown or args.problems < 1 or args.repeats < 1:
        parser.error(f"--families: unknown {unknown}" if unknown else "--problems and --repeats: expected >= 1")
    if reference is None:
        sys.exit("reference `ad3` not importable: bash benchmarks/install_reference_ad3.sh, then put it on PYTHONPATH")
    start_load = load_average()
    rows = []
    for family in families:
        run_family(family, 1, 1)  # warm-up
        row = run_family(family, args.problems, args.repeats)
        rows.append(row)
        print(f"{family}: {row['speedup']:.2f}x total, {row['solve_speedup']:.2f}x solve; certified "
              f"{row['certified']:.0%}; integral {row['ours']['integral']:.0%} vs {row['reference']['integral']:.0%}; "
              f"objective {row['ours']['objective']:.4f} vs {row['reference']['objective']:.4f}", flush=True)
    meta = {"cpu": cpu_name(), "cores": os.cpu_count(), "python": sys.version.split()[0],
            "reference": f"PyPI ad3 {reference.__version__}", "load_average_at_start": start_load,
            "load_average_at_end": load_average(), "busy": busy(start_load, os.cpu_count()),
            "problems": args.problems, "repeats": args.repeats, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    print("wrote", *write_results("psdd_cpu", {"meta": meta, "rows": rows}, markdown(meta, rows), args.out))


if __name__ == "__main__":
    main()
