"""Benchmark of the decoder on general factor graphs against the reference AD3 (PyPI ``ad3`` 2.2.1),
through the reference's own Python API: the same builder code makes each graph with
``ccnn_decoder.ad3`` and with the reference package, so both solve identical graphs, and both are
timed *including graph construction from Python* (the scores are drawn before the clock starts).

Families (random scores, fixed seeds):
  chain      a sequence factor over 20 positions with 5 states (PFactorSequence)
  parser     a dependency tree over 12 words (PFactorTree) with head automata on every head
  parser20   the same over 20 words
  multilabel 20 binary labels, pair factors between neighbours, an XOR over the first 5 and
             AT-MOST-ONE groups of 3 over the rest
  grid       a 10 x 10 grid of 3-state variables with Potts dense factors (as simple_grid builds)
  mixed      a random pairwise graph over 12 variables of 2 to 5 states (dense factors)
Modes: AD3 (``solve()``) and exact (``solve(branch_and_bound=True)``), one thread, defaults;
``--eta`` passes an initial step size to both packages' solve (results then go to
``general_cpu_eta<ETA>.*``; the bars stay those of issue 12).
Per family and mode: milliseconds per problem (the median over the problems of the fastest of
`repeats` runs, the two packages alternating run by run so that both see the same machine load;
total = construction + solve, and the solve alone), the fraction certified
("integral"), and the objective: the score of the labelling each one's posteriors round to (binary:
p > 1/2, multi-valued: the most probable state; -inf when a hard factor forbids it), scored by one
function for both. Also the construction time (total minus solve) and the builder's floor, its
code timed with every API call a C builtin that does nothing, and the speed-up problem by problem
(min, median, max). The bars of issue 12: AD3 mode >= 5x faster (the median totals) with at least
the reference's certified fraction and mean objective; exact mode certifies every problem the
reference certifies. A failed bar or check exits with status 1.

Needs the reference on PYTHONPATH (bash benchmarks/install_reference_ad3.sh; without it only our
columns are printed and nothing is written):

    PYTHONPATH=$HOME/.cache/ccnn/reference-ad3 python benchmarks/bench_general.py --out benchmarks/results
    python benchmarks/bench_general.py --quick      # 3 problems per family, into the scratch folder
    PYTHONPATH=... python benchmarks/bench_general.py --eta 0.3 --out benchmarks/results
    python benchmarks/bench_general.py --render benchmarks/results/general_cpu.json   # its .md again
"""
import argparse
import itertools
import json
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import SCRATCH_DIR, busy, cpu_name, load_average, markdown_table, write_results  # noqa: E402

import ccnn_decoder  # noqa: E402
import ccnn_decoder.ad3 as ours  # noqa: E402
from ccnn_decoder import _decoder  # noqa: E402
from ccnn_decoder.ad3 import extensions as our_extensions  # noqa: E402

try:
    import ad3 as reference
    from ad3 import extensions as reference_extensions
except ImportError:
    reference = reference_extensions = None

SPEEDUP_BAR = 5.0
DEFAULT_ETA = 0.1  # (both packages' default initial step size)
SCORE_RTOL = 1e-6


# ---- scores (drawn before timing) and builders (timed; the same code for both packages) ----

def chain_scores(rng, length=20, states=5):
    return {"unary": rng.normal(size=(length, states)),
            "transitions": rng.normal(size=2 * states + (length - 1) * states * states)}


def build_chain(api, ext, sc):
    g = api.PFactorGraph()
    length, states = sc["unary"].shape
    variables = [g.create_multi_variable(states) for _ in range(length)]
    for v, unary in zip(variables, sc["unary"]):
        v.set_log_potentials(unary)
    factor = ext.PFactorSequence()
    g.declare_factor(factor, [v.get_state(k) for v in variables for k in range(states)])
    factor.initialize([states] * length)
    factor.set_additional_log_potentials(sc["transitions"])
    return g, [factor]  # (the reference frees a declared factor with its Python object)


def parser_arcs(n):
    return [(h, m) for m in range(1, n) for h in range(n) if h != m]


def parser_automata(n):
    """(head, modifiers by distance, sibling triples) for each head and side."""
    out = []
    for h in range(n):
        for side in (1, -1):
            modifiers = list(range(h + 1, n)) if side > 0 else list(range(h - 1, 0, -1))
            if modifiers:
                length = len(modifiers) + 1
                triples = [(h, h + side * m, h + side * s) for s in range(1, length + 1) for m in range(s)]
                out.append((h, modifiers, triples))
    return out


def parser_scores(rng, words=12):
    n = words + 1
    return {"n": n, "arcs": rng.normal(size=len(parser_arcs(n))),
            "siblings": [0.5 * rng.normal(size=len(t)) for _, _, t in parser_automata(n)]}


def build_parser(api, ext, sc):
    n = sc["n"]
    g = api.PFactorGraph()
    arcs = parser_arcs(n)
    arc_vars = {}
    for a, score in zip(arcs, sc["arcs"]):
        arc_vars[a] = g.create_binary_variable()
        arc_vars[a].set_log_potential(score)
    tree = ext.PFactorTree()
    g.declare_factor(tree, [arc_vars[a] for a in arcs])
    tree.initialize(n, arcs)
    factors = [tree]
    for (h, modifiers, triples), scores in zip(parser_automata(n), sc["siblings"]):
        automaton = ext.PFactorHeadAutomaton()
        g.declare_factor(automaton, [arc_vars[(h, m)] for m in modifiers])
        automaton.initialize(len(modifiers) + 1, triples)
        automaton.set_additional_log_potentials(scores)
        factors.append(automaton)
    return g, factors


def multilabel_scores(rng, labels=20):
    return {"unary": rng.normal(size=labels), "pair": rng.normal(size=labels - 1)}


def build_multilabel(api, ext, sc):
    g = api.PFactorGraph()
    variables = [g.create_binary_variable() for _ in sc["unary"]]
    for v, score in zip(variables, sc["unary"]):
        v.set_log_potential(score)
    for i, score in enumerate(sc["pair"]):
        g.create_factor_pair([variables[i], variables[i + 1]], score)
    g.create_factor_logic("XOR", variables[:5])
    for start in range(5, len(variables) - 2, 3):
        g.create_factor_logic("ATMOSTONE", variables[start:start + 3])
    return g, []


def grid_scores(rng, size=10, states=3):
    return {"unary": rng.normal(size=(size, size, states)), "potts": np.eye(states).ravel()}


def build_grid(api, ext, sc):
    g = api.PFactorGraph()
    size, _, states = sc["unary"].shape
    grid = [[g.create_multi_variable(states) for _ in range(size)] for _ in range(size)]
    for row, unary_row in zip(grid, sc["unary"]):
        for v, unary in zip(row, unary_row):
            v.set_log_potentials(unary)
    for i in range(size):
        for j in range(size):
            if j:
                g.create_factor_dense([grid[i][j - 1], grid[i][j]], sc["potts"])
            if i:
                g.create_factor_dense([grid[i - 1][j], grid[i][j]], sc["potts"])
    return g, []


def mixed_scores(rng, nodes=12, degree=3):
    states = [int(k) for k in rng.integers(2, 6, size=nodes)]
    edges = [(a, int(b)) for a in range(nodes)
             for b in rng.choice([x for x in range(nodes) if x > a], size=min(degree, nodes - a - 1), replace=False)]
    return {"states": states, "unary": [rng.normal(size=k) for k in states], "edges": edges,
            "tables": [rng.normal(size=states[a] * states[b]) for a, b in edges]}


def build_mixed(api, ext, sc):
    g = api.PFactorGraph()
    variables = [g.create_multi_variable(k) for k in sc["states"]]
    for v, unary in zip(variables, sc["unary"]):
        v.set_log_potentials(unary)
    for (a, b), table in zip(sc["edges"], sc["tables"]):
        g.create_factor_dense([variables[a], variables[b]], table)
    return g, []


def parser20_scores(rng):
    return parser_scores(rng, words=20)


FAMILIES = {"chain": (chain_scores, build_chain), "parser": (parser_scores, build_parser),
            "parser20": (parser20_scores, build_parser),
            "multilabel": (multilabel_scores, build_multilabel), "grid": (grid_scores, build_grid),
            "mixed": (mixed_scores, build_mixed)}


# ---- the builder's own cost: every API call a C builtin that does nothing ----

class _NullVariable:
    pass


class _NullFactor:
    pass


def null_apis():
    """(api, extensions) whose every method the builders call is a C builtin ignoring its
    arguments (slice, list.append, dict.get, a bound __next__): timing a builder with them gives
    the floor of its construction time, what no implementation of the API can go below."""
    variable, factor = _NullVariable(), _NullFactor()
    variable.set_log_potential = variable.set_log_potentials = [].append
    variable.get_state = {k: variable for k in range(16)}.get
    factor.initialize = slice
    factor.set_additional_log_potentials = [].append
    graph = _NullVariable()
    graph.create_binary_variable = itertools.repeat(variable).__next__
    graph.create_multi_variable = {k: variable for k in range(1, 16)}.get
    graph.create_factor_dense = graph.create_factor_pair = graph.create_factor_logic = slice
    graph.declare_factor = slice
    api, extensions = _NullVariable(), _NullVariable()
    api.PFactorGraph = itertools.repeat(graph).__next__
    extensions.PFactorSequence = extensions.PFactorTree = extensions.PFactorHeadAutomaton = (
        itertools.repeat(factor).__next__)
    return api, extensions


def builder_floor_ms(build, problems, repeats):
    """Median over the problems of the fastest of `repeats` builds through null_apis()."""
    api, extensions = null_apis()
    times = []
    for scores, _ in problems:
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            build(api, extensions, scores)
            best = min(best, time.perf_counter() - start)
        times.append(1e3 * best)
    return statistics.median(times)


# ---- running and judging ----

def rounded_score(judge, posteriors):
    """Score (by ccnn's scorer, the same for both packages) of the labelling the unit posteriors
    round to; -inf when a hard factor forbids it."""
    labels, u = [], 0
    for var in judge._variables:
        if isinstance(var, ours.PBinaryVariable):
            labels.append(int(posteriors[u] > 0.5))
            u += 1
        else:
            k = len(var)
            labels.append(int(np.argmax(posteriors[u:u + k])))
            u += k
    variables, factors, unit_scores, factor_scores = judge._inputs()
    return _decoder.score_factor_graph(variables, factors, unit_scores, factor_scores, labels)


def solve_once(api, ext, build, scores, exact, eta):
    """(total seconds, solve seconds, value, posteriors, status) of one build + solve."""
    start = time.perf_counter()
    graph, keep = build(api, ext, scores)
    built = time.perf_counter()
    value, posteriors, _, status = graph.solve(eta=eta, branch_and_bound=exact)
    end = time.perf_counter()
    del graph, keep
    return end - start, end - built, value, posteriors, status


def run(apis, family, problems, exact, repeats, eta=DEFAULT_ETA):
    """One result dict per (api, extensions) pair. Each problem is timed `repeats` times per
    package, the packages alternating, so that both see the same load; the fastest is kept."""
    build = FAMILIES[family][1]
    outs = [{"total_ms": [], "solve_ms": [], "status": [], "objective": [], "value": []} for _ in apis]
    for scores, judge in problems:
        best = [[float("inf"), float("inf")] for _ in apis]
        last = [None] * len(apis)
        for _ in range(repeats):
            for k, (api, ext) in enumerate(apis):
                total, solve, *last[k] = solve_once(api, ext, build, scores, exact, eta)
                best[k] = [min(best[k][0], total), min(best[k][1], solve)]
        for out, (total, solve), (value, posteriors, status) in zip(outs, best, last):
            out["total_ms"].append(1e3 * total)
            out["solve_ms"].append(1e3 * solve)
            out["status"].append(status)
            out["value"].append(float(value))
            out["objective"].append(rounded_score(judge, posteriors))
    return outs


def summary(r):
    finite = [x for x in r["objective"] if x > -np.inf]
    return {"ms": statistics.median(r["total_ms"]), "solve_ms": statistics.median(r["solve_ms"]),
            "build_ms": statistics.median(t - s for t, s in zip(r["total_ms"], r["solve_ms"])),
            "certified": r["status"].count("integral") / len(r["status"]),
            "objective": float(np.mean(finite)) if finite else float("-inf"),
            "infeasible_roundings": len(r["objective"]) - len(finite)}


def close(a, b):
    if np.isinf(a) or np.isinf(b):  # (an infeasible rounding: close only to another)
        return a == b
    return abs(a - b) <= SCORE_RTOL * max(1.0, abs(a), abs(b))


def compare(family, exact, mine, theirs, checks):
    """The bar of this family and mode, and the consistency checks between the two."""
    m, t = summary(mine), summary(theirs)
    row = {"family": family, "mode": "exact" if exact else "ad3", "ours": m, "reference": t,
           "speedup": t["ms"] / m["ms"], "solve_speedup": t["solve_ms"] / m["solve_ms"],
           "ours_raw": mine, "reference_raw": theirs}
    # Per problem (an infeasible rounding scoring -inf): the mean above counts only the feasible
    # roundings, so turning an infeasible rounding into a feasible one can lower it.
    pairs = list(zip(mine["objective"], theirs["objective"]))
    row["per_problem"] = {"better": sum(a > b and not close(a, b) for a, b in pairs),
                          "worse": sum(a < b and not close(a, b) for a, b in pairs)}
    row["per_problem"]["equal"] = len(pairs) - row["per_problem"]["better"] - row["per_problem"]["worse"]
    both = [i for i, (a, b) in enumerate(zip(mine["status"], theirs["status"])) if a == b == "integral"]
    for i in both:  # two certificates must agree on the optimum
        if not close(mine["value"][i], theirs["value"][i]):
            checks.append(f"{family} {row['mode']} problem {i}: both certified, values "
                          f"{mine['value'][i]!r} vs {theirs['value'][i]!r}")
    if exact:
        missed = [i for i, s in enumerate(theirs["status"]) if s == "integral" and mine["status"][i] != "integral"]
        row["bar"] = "certifies every problem the reference's branch-and-bound certifies"
        row["pass"] = not missed
        row["measured"] = (f"certified {m['certified']:.0%} vs {t['certified']:.0%}"
                           + (f"; missed {missed}" if missed else ""))
    else:
        better = (m["certified"] >= t["certified"] and m["infeasible_roundings"] <= t["infeasible_roundings"]
                  and m["objective"] >= t["objective"] - SCORE_RTOL * max(1.0, abs(t["objective"])))
        row["bar"] = f">= {SPEEDUP_BAR:g}x faster with at least the reference's quality"
        row["pass"] = bool(row["speedup"] >= SPEEDUP_BAR and better)
        row["measured"] = (f"{row['speedup']:.2f}x; certified {m['certified']:.0%} vs {t['certified']:.0%}; "
                           f"objective {m['objective']:.4f} vs {t['objective']:.4f}")
    return row


def per_problem_speedup(row):
    """The reference's total over ccnn's, problem by problem: min, median and max. (The bar compares
    the median totals, which can pair a short problem of one package with a long one of the other.)"""
    ratios = sorted(b / a for a, b in zip(row["ours_raw"]["total_ms"], row["reference_raw"]["total_ms"]))
    return {"min": ratios[0], "median": statistics.median(ratios), "max": ratios[-1]}


def objective(summary_):
    infeasible = summary_["infeasible_roundings"]
    return f"{summary_['objective']:.4f}" + (f" ({infeasible} infeasible)" if infeasible else "")


def markdown(meta, rows):
    load = meta["load_average_at_start"]
    lines = [f"# General factor graphs: ccnn_decoder.ad3 vs the reference AD3 ({meta['reference']}), "
             f"both at eta = {meta.get('eta', DEFAULT_ETA):g}", "",
             f"{meta['cpu']}, {meta['cores']} logical cores, one thread; Python {meta['python']}, numpy "
             f"{meta['numpy']}. Load average (1/5/15 min) at start {load}, at end {meta['load_average_at_end']}"
             + (" -- the machine was busy (other jobs): absolute times are inflated, ratios less so." if meta["busy"]
                else "."),
             f"{meta['problems']} problems per family, each timed {meta['repeats']} times per package, the two "
             "alternating (fastest kept), median over "
             "the problems. `total` = graph construction from Python + solve; `solve` = the solve call alone. "
             "`certified` = status integral; `objective` = mean score of the rounded posteriors (one scorer for "
             "both) over the problems where the rounding is feasible, with the number of infeasible roundings "
             "(a hard factor violated).", ""]
    header = ["family", "mode", "ccnn total ms", "ccnn solve ms", "ccnn certified", "ccnn objective",
              "reference total ms", "reference solve ms", "reference certified", "reference objective",
              "speed-up (total)", "speed-up (solve)", "bar", "pass"]
    body = []
    for r in rows:
        m, t = r["ours"], r["reference"]
        body.append([r["family"], r["mode"], f"{m['ms']:.3f}", f"{m['solve_ms']:.3f}", f"{m['certified']:.0%}",
                     objective(m), f"{t['ms']:.3f}", f"{t['solve_ms']:.3f}", f"{t['certified']:.0%}",
                     objective(t), f"{r['speedup']:.2f}x", f"{r['solve_speedup']:.2f}x", r["bar"],
                     "yes" if r["pass"] else "NO"])
    lines.append(markdown_table(header, body))
    lines += ["Speed-up problem by problem (total time, the reference's over ccnn's): the bar above compares "
              "the median totals, which can pair one package's problem with another problem of the other.", ""]
    spread = [[r["family"], r["mode"]] + [f"{per_problem_speedup(r)[k]:.2f}x" for k in ("min", "median", "max")]
              for r in rows]
    lines.append(markdown_table(["family", "mode", "min", "median", "max"], spread))
    lines += ["Graph construction (AD3 rows; per problem, total minus solve, median over the problems) and the "
              "builder's floor: the same builder code with every API call a C builtin that does nothing.", ""]
    build_rows = [[r["family"], f"{r['ours']['build_ms']:.4f}", f"{r['reference']['build_ms']:.4f}",
                   f"{meta['builder_floor_ms'][r['family']]:.4f}"] for r in rows if r["mode"] == "ad3"]
    lines.append(markdown_table(["family", "ccnn build ms", "reference build ms", "builder floor ms"], build_rows))
    lines += ["Rounded objective per problem, ccnn against the reference (an infeasible rounding scores -inf): "
              + "; ".join(f"{r['family']} {r['mode']}: {r['per_problem']['better']} better, "
                          f"{r['per_problem']['equal']} equal, {r['per_problem']['worse']} worse" for r in rows)
              + ".", ""]
    if meta["check_failures"]:
        lines += ["Check failures:", ""] + [f"- {c}" for c in meta["check_failures"]] + [""]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 problems per family, 1 repeat")
    parser.add_argument("--problems", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--families", default=",".join(FAMILIES), help="comma-separated subset")
    parser.add_argument("--eta", type=float, default=None,
                        help=f"initial AD3 step size passed to both packages' solve (default: theirs, {DEFAULT_ETA})")
    parser.add_argument("--out", default=SCRATCH_DIR, help="folder for general_cpu.json/.md (default: %(default)s)")
    parser.add_argument("--render", metavar="JSON",
                        help="measure nothing: write the markdown of this results file beside it (.md)")
    args = parser.parse_args()
    if args.render:
        with open(args.render) as f:
            results = json.load(f)
        path = os.path.splitext(args.render)[0] + ".md"
        with open(path, "w") as f:
            f.write(markdown(results["meta"], results["rows"]))
        print("wrote", path)
        return
    count, repeats = (3, 1) if args.quick else (args.problems, args.repeats)
    families = args.families.split(",")
    unknown = [f for f in families if f not in FAMILIES]
    eta = DEFAULT_ETA if args.eta is None else args.eta
    if unknown or count < 1 or repeats < 1 or not eta > 0:
        parser.error(f"--families: unknown {unknown}; expected names from {list(FAMILIES)}" if unknown
                     else "--problems and --repeats: expected >= 1" if count < 1 or repeats < 1
                     else f"--eta: expected a positive number, got {eta}")
    if reference is None:
        print("reference `ad3` not importable (benchmarks/install_reference_ad3.sh): our columns only, "
              "nothing written", file=sys.stderr)
    start_load = load_average()
    rows, checks, floors = [], [], {}
    for family in families:
        make_scores, build = FAMILIES[family]
        problems = []
        for seed in range(count):
            scores = make_scores(np.random.default_rng(seed))
            problems.append((scores, build(ours, our_extensions, scores)[0]))
        floors[family] = builder_floor_ms(build, problems, max(repeats, 20))
        for exact in (False, True):
            apis = [(ours, our_extensions)] + ([(reference, reference_extensions)] if reference else [])
            run(apis, family, problems[:1], exact, 1, eta)  # warm-up
            results = run(apis, family, problems, exact, repeats, eta)
            if reference is None:
                s = summary(results[0])
                print(f"{family:<11} {'exact' if exact else 'ad3':<6} {s['ms']:9.3f} ms  certified {s['certified']:.0%}")
                continue
            mine, theirs = results
            row = compare(family, exact, mine, theirs, checks)
            rows.append(row)
            print(f"{'PASS' if row['pass'] else 'FAIL'} {family} {row['mode']}: {row['bar']}: {row['measured']} "
                  f"(ms {row['ours']['ms']:.3f} vs {row['reference']['ms']:.3f}; solve alone "
                  f"{row['solve_speedup']:.2f}x)", flush=True)
    if reference is None:
        return
    meta = {"cpu": cpu_name(), "cores": os.cpu_count(), "python": sys.version.split()[0], "numpy": np.__version__,
            "ccnn_decoder": ccnn_decoder.__file__, "reference": f"PyPI ad3 {reference.__version__}",
            "load_average_at_start": start_load, "load_average_at_end": load_average(),
            "busy": busy(start_load, os.cpu_count()), "problems": count, "repeats": repeats,
            "builder_floor_ms": floors, "check_failures": checks, "eta": eta, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    name = "general_cpu" if args.eta is None else f"general_cpu_eta{eta:g}"
    paths = write_results(name, {"meta": meta, "rows": rows}, markdown(meta, rows), args.out)
    print("wrote", *paths)
    for c in checks:
        print("CHECK FAILED:", c)
    if checks or not all(r["pass"] for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
