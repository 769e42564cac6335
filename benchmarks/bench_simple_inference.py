"""The reference AD3's one-call helpers, ccnn_decoder.ad3 against the reference (PyPI ad3 2.2.1).

pystruct's ``inference_method='ad3'`` (and code like it) calls ``general_graph`` once per sample
and per training step on small graphs, where the work around the solver (checking and converting
the arrays, building the graph, returning the marginals) weighs as much as the solve. Each case
below calls the same function of both packages on identical inputs (random scores, fixed seeds):

  chain5         general_graph, 5 nodes of 2 states in a chain
  chain20        general_graph, 20 nodes of 3 states in a chain
  labels14_tree  general_graph, 14 binary labels on a random spanning tree (pystruct's multi-label
                 CRF with a Chow-Liu tree)
  labels14_full  general_graph, 14 binary labels, every pair an edge (91 edges)
  typed          general_graph's typed form: 6 nodes of 2 states and 6 of 3, 15 random edges
  constrained    general_constrained_graph, 10 nodes of 3 states in a chain, an XOR over state 0
                 of the first 4 nodes
  grid10         simple_grid, 10 x 10 nodes of 3 states, Potts table
Modes: AD3 (exact=False, the default) and exact (exact=True; simple_grid has none).
Per case and mode: microseconds per call (the median over the problems of the fastest of
`repeats` calls, the two packages alternating call by call), and the problems where both return
the same status and the same value (relative 1e-6).

    PYTHONPATH=$HOME/.cache/ccnn/reference-ad3 python benchmarks/bench_simple_inference.py --out benchmarks/results
    python benchmarks/bench_simple_inference.py --quick      # 3 problems, into the scratch folder
"""
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import busy, cpu_name, load_average, markdown_table, parse_problem_arguments, write_results  # noqa: E402

import ccnn_decoder  # noqa: E402
import ccnn_decoder.ad3 as ours  # noqa: E402

try:
    import ad3 as reference
except ImportError:
    reference = None

VALUE_RTOL = 1e-6


def chain(rng, nodes, states):
    edges = np.array([(i, i + 1) for i in range(nodes - 1)])
    return (rng.normal(size=(nodes, states)), edges, rng.normal(size=(len(edges), states, states)))


def labels(rng, count, full):
    if full:
        edges = np.array([(i, j) for i in range(count) for j in range(i + 1, count)])
    else:  # a random spanning tree: node i joins an earlier one
        edges = np.array([(int(rng.integers(i)), i) for i in range(1, count)])
    return (rng.normal(size=(count, 2)), edges, rng.normal(size=(len(edges), 2, 2)))


def typed(rng):
    counts, states = (6, 6), (2, 3)
    unaries = [rng.normal(size=(n, k)) for n, k in zip(counts, states)]
    edges, weights = [], []
    for ti in range(2):
        for tj in range(2):
            pairs = sorted({(int(rng.integers(counts[ti])), int(rng.integers(counts[tj]))) for _ in range(4)})
            pairs = [(a, b) for a, b in pairs if ti != tj or a != b]
            edges.append(np.array(pairs, dtype=np.int64).reshape(-1, 2))
            weights.append(rng.normal(size=(len(pairs), states[ti], states[tj])))
    return unaries, edges, weights


def constrained(rng):
    unaries, edges, weights = chain(rng, 10, 3)
    return unaries, edges, weights, [("XOR", [0, 1, 2, 3], 0, False)]


def grid(rng):
    return rng.normal(size=(10, 10, 3)), np.eye(3)


# name: (function name, input maker, has an exact mode)
CASES = {
    "chain5": ("general_graph", lambda rng: chain(rng, 5, 2), True),
    "chain20": ("general_graph", lambda rng: chain(rng, 20, 3), True),
    "labels14_tree": ("general_graph", lambda rng: labels(rng, 14, False), True),
    "labels14_full": ("general_graph", lambda rng: labels(rng, 14, True), True),
    "typed": ("general_graph", typed, True),
    "constrained": ("general_constrained_graph", constrained, True),
    "grid10": ("simple_grid", grid, False),
}


def call(api, function, inputs, exact):
    if function == "simple_grid":
        return api.simple_grid(*inputs, verbose=0)
    return getattr(api, function)(*inputs, verbose=0, exact=exact)


def time_case(apis, function, problems, exact, repeats):
    """Per package: (median over problems of the fastest call in us, [(value, status)])."""
    best = [[float("inf")] * len(problems) for _ in apis]
    answers = [[None] * len(problems) for _ in apis]
    for p, inputs in enumerate(problems):
        for _ in range(repeats):
            for a, api in enumerate(apis):
                start = time.perf_counter()
                out = call(api, function, inputs, exact)
                best[a][p] = min(best[a][p], time.perf_counter() - start)
                answers[a][p] = (out[2], out[3])
    return [(statistics.median(times) * 1e6, ans) for times, ans in zip(best, answers)]


def agreement(mine, theirs):
    """(problems with the same status, "k/m": of the m certified by both, k with the same value)."""
    same_status = sum(a[1] == b[1] for a, b in zip(mine, theirs))
    both = [(a[0], b[0]) for a, b in zip(mine, theirs) if a[1] == b[1] == "integral"]
    same_value = sum(abs(x - y) <= VALUE_RTOL * max(1.0, abs(y)) for x, y in both)
    return same_status, f"{same_value}/{len(both)}"


def markdown(meta, rows):
    out = ["# The one-call helpers: ccnn_decoder.ad3 vs the reference AD3 (PyPI ad3 2.2.1)\n",
           f"{meta['cpu']}, {meta['cores']} logical cores, one thread; Python {meta['python']}, numpy "
           f"{meta['numpy']}. Load average (1/5/15 min) at start {meta['load_average_at_start']}, at end "
           f"{meta['load_average_at_end']}.",
           f"{meta['problems']} problems per case, each called {meta['repeats']} times per package, the two "
           "alternating (fastest kept), median over the problems; the same function and inputs for both, "
           "the whole call timed (argument checks, graph construction, solve, outputs). `same status`: "
           "problems where both return the same status; `same MAP value`: of the problems both certify "
           f"(\"integral\"), those where the values agree (relative {VALUE_RTOL:g}). Where the status is "
           "not \"integral\" the two report different values by design (ccnn: the best labelling's score "
           "or the LP objective; docs/decoder.md, the compatibility module's differences).\n"]
    header = ["case", "function", "mode", "ccnn us", "reference us", "speed-up vs the reference", "same status",
              "same MAP value"]
    out.append(markdown_table(header, [[r["case"], r["function"], r["mode"], f"{r['ours_us']:.1f}",
                                        f"{r['reference_us']:.1f}", f"{r['speedup']:.2f}x",
                                        f"{r['same_status']}/{meta['problems']}", r["same_map_value"]]
                                       for r in rows]))
    return "\n".join(out)


def main(argv=None):
    args, count, repeats = parse_problem_arguments(argv, __doc__, "simple_inference_cpu", repeats=7)
    if reference is None:
        print("reference `ad3` not importable (benchmarks/install_reference_ad3.sh): our columns only, "
              "nothing written", file=sys.stderr)
    apis = [ours] + ([reference] if reference else [])
    start_load = load_average()
    rows = []
    for case, (function, make, has_exact) in CASES.items():
        problems = [make(np.random.default_rng(seed)) for seed in range(count)]
        for exact in (False, True) if has_exact else (False,):
            time_case(apis, function, problems[:1], exact, 1)  # warm-up
            results = time_case(apis, function, problems, exact, repeats)
            mode = "exact" if exact else "ad3"
            if reference is None:
                print(f"{case:<14} {mode:<6} {results[0][0]:9.1f} us")
                continue
            (mine_us, mine), (theirs_us, theirs) = results
            same_status, same_value = agreement(mine, theirs)
            row = {"case": case, "function": function, "mode": mode, "ours_us": mine_us, "reference_us": theirs_us,
                   "speedup": theirs_us / mine_us, "same_status": same_status, "same_map_value": same_value}
            rows.append(row)
            print(f"{case:<14} {mode:<6} {mine_us:9.1f} us vs {theirs_us:9.1f} us  {row['speedup']:5.2f}x  "
                  f"same status {same_status}/{count}, same MAP value {same_value}", flush=True)
    if reference is None:
        return 0
    meta = {"cpu": cpu_name(), "cores": os.cpu_count(), "python": sys.version.split()[0], "numpy": np.__version__,
            "ccnn_decoder": ccnn_decoder.__file__, "reference": f"PyPI ad3 {reference.__version__}",
            "load_average_at_start": start_load, "load_average_at_end": load_average(),
            "busy": busy(start_load, os.cpu_count()), "problems": count, "repeats": repeats,
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    print("wrote", *write_results("simple_inference_cpu", {"meta": meta, "rows": rows}, markdown(meta, rows), args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
