"""The AD3 step budget on dependency parsers of 12, 20 and 30 words: the solve alone (graph built
before the clock starts), ccnn with the reference's budget (`max_qp_steps=10`, the default) and
with exact local solutions (`max_qp_steps=0`), against the reference AD3 (PyPI ``ad3`` 2.2.1) on
identical graphs: a tree factor over all arcs and a head automaton on each head and side, the
graphs of bench_general's parser families (drawn here with other seeds, 1000 on).

Per length: the median over the problems of the fastest of `repeats` solves, the speed-up against
the reference, the number certified (status integral / optimal), and the rounded objective (p > 1/2,
-inf when the tree constraint is violated) per problem against the reference's.

Needs the reference on PYTHONPATH (bash benchmarks/install_reference_ad3.sh):

    PYTHONPATH=$HOME/.cache/ccnn/reference-ad3 python benchmarks/bench_parser_lengths.py --out benchmarks/results
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_general import build_parser, parser_arcs, parser_automata, parser_scores  # noqa: E402
from common import SCRATCH_DIR, cpu_name, load_average, markdown_table, write_results  # noqa: E402

from ccnn_decoder import FactorGraph  # noqa: E402

try:
    import ad3 as reference
    from ad3 import extensions as reference_extensions
except ImportError:
    reference = reference_extensions = None

BUDGETS = (10, 0)


def build_ours(sc):
    n = sc["n"]
    arcs = parser_arcs(n)
    g = FactorGraph()
    literal = {a: g.add_binary_variable(s) for a, s in zip(arcs, sc["arcs"])}
    g.add_tree(n, arcs, [literal[a] for a in arcs])
    for (h, modifiers, _), scores in zip(parser_automata(n), sc["siblings"]):
        g.add_head_automaton([literal[(h, m)] for m in modifiers], scores)  # (default sibling order)
    return g


def fastest(solve, repeats):
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = solve()
        best = min(best, time.perf_counter() - start)
    return 1e3 * best, out


def run(words, problems, repeats):
    rows = {b: {"ms": [], "certified": 0, "objective": []} for b in BUDGETS}
    ref = {"ms": [], "certified": 0, "objective": []}
    for seed in range(1000, 1000 + problems):
        sc = parser_scores(np.random.default_rng(seed), words)
        judge = build_ours(sc)
        for budget in BUDGETS:
            graph = build_ours(sc)
            ms, s = fastest(lambda: graph.solve_ad3(max_qp_steps=budget), repeats)
            rows[budget]["ms"].append(ms)
            rows[budget]["certified"] += s.status == "optimal"
            rows[budget]["objective"].append(judge.score([int(p[1] > 0.5) for p in s.posteriors]))
        graph, keep = build_parser(reference, reference_extensions, sc)
        ms, (_, posteriors, _, status) = fastest(graph.solve, repeats)
        ref["ms"].append(ms)
        ref["certified"] += status == "integral"
        ref["objective"].append(judge.score([int(p > 0.5) for p in posteriors]))
        del graph, keep
    out = {"words": words, "problems": problems, "reference_ms": statistics.median(ref["ms"]),
           "reference_certified": ref["certified"]}
    for budget in BUDGETS:
        r = rows[budget]
        pairs = list(zip(r["objective"], ref["objective"]))
        out[f"budget_{budget}"] = {
            "ms": statistics.median(r["ms"]), "certified": r["certified"],
            "speedup": statistics.median(b / a for a, b in zip(r["ms"], ref["ms"])),
            "better": sum(a > b + 1e-9 for a, b in pairs), "worse": sum(a < b - 1e-9 for a, b in pairs)}
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--words", default="12,20,30", help="comma-separated sentence lengths")
    parser.add_argument("--problems", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=SCRATCH_DIR, help="folder for parser_lengths_cpu.json/.md")
    args = parser.parse_args()
    if reference is None:
        print("reference `ad3` not importable (bash benchmarks/install_reference_ad3.sh): nothing measured",
              file=sys.stderr)
        return
    start_load = load_average()
    results = []
    for words in (int(w) for w in args.words.split(",")):
        results.append(run(words, args.problems, args.repeats))
        r = results[-1]
        print(f"{words} words: reference {r['reference_ms']:.2f} ms; budget 10 {r['budget_10']['speedup']:.2f}x, "
              f"exact {r['budget_0']['speedup']:.2f}x", flush=True)
    meta = {"cpu": cpu_name(), "cores": os.cpu_count(), "python": sys.version.split()[0],
            "reference": f"PyPI ad3 {reference.__version__}", "load_average_at_start": start_load,
            "load_average_at_end": load_average(), "problems": args.problems, "repeats": args.repeats,
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    table = []
    for r in results:
        for budget, name in ((10, "10 (default)"), (0, "0 (exact local solutions)")):
            b = r[f"budget_{budget}"]
            table.append([r["words"], name, f"{b['ms']:.3f}", f"{r['reference_ms']:.3f}", f"{b['speedup']:.2f}x",
                          f"{b['certified']} vs {r['reference_certified']}",
                          f"{b['better']} better, {r['problems'] - b['better'] - b['worse']} equal, {b['worse']} worse"])
    markdown = (
        "# The AD3 step budget on parsers: ccnn_decoder vs the reference AD3 (PyPI ad3 2.2.1)\n\n"
        f"{meta['cpu']}, {meta['cores']} logical cores, one thread; load average at start {start_load}, at end "
        f"{meta['load_average_at_end']}. {args.problems} problems per length (seeds 1000 on), the solve alone "
        f"(graphs built before the clock), fastest of {args.repeats}, median over the problems; speed-up: median "
        "of the per-problem ratios against the reference; rounded objective: p > 1/2 scored by one scorer, "
        "per problem against the reference's.\n\n"
        + markdown_table(["words", "max_qp_steps", "ccnn solve ms", "reference solve ms",
                          "speed-up (solve)", "certified (ccnn vs reference)", "rounded objective vs reference"],
                         table))
    paths = write_results("parser_lengths_cpu", {"meta": meta, "rows": results}, markdown, args.out)
    print("\n".join(paths))


if __name__ == "__main__":
    main()
