"""Benchmark of the decoder on general factor graphs, through the reference AD3 API: the same
builder code makes each graph with ``ccnn_ext.ad3`` and, when it is installed, with the reference
package (PyPI ``ad3`` 2.2.1, benchmarks/install_reference_ad3.sh), so both solve identical graphs
and both are timed *including graph construction from Python*.

Families (random scores, a fixed seed):
  chain      a sequence factor over 20 positions with 5 states (PFactorSequence)
  parser     a dependency tree over 12 words (PFactorTree) with head automata on every head
  multilabel 20 binary labels, pair factors between neighbours, an XOR over the first 5 and
             AT-MOST-ONE groups of 3 over the rest
  grid       simple_grid 10 x 10 with 3 states, Potts pairwise scores
  mixed      a random pairwise graph over variables of 2 to 5 states (dense factors)
Per family: milliseconds per problem on one thread (median of the problems), the fraction
certified ("integral"), and the mean value; AD3 (``solve()``) and exact (``branch_and_bound``).

    python benchmarks/bench_general.py            # 20 problems per family
    python benchmarks/bench_general.py --quick    # 3 problems per family
"""
import argparse
import statistics
import sys
import time

import numpy as np

import ccnn_ext.ad3 as ours
from ccnn_ext.ad3 import extensions as our_extensions

try:
    import ad3 as reference
    from ad3 import extensions as reference_extensions
except ImportError:
    reference = reference_extensions = None


def build_chain(api, ext, rng, length=20, states=5):
    g = api.PFactorGraph()
    variables = [g.create_multi_variable(states) for _ in range(length)]
    for v in variables:
        v.set_log_potentials(rng.normal(size=states))
    factor = ext.PFactorSequence()
    g.declare_factor(factor, [v.get_state(k) for v in variables for k in range(states)])
    factor.initialize([states] * length)
    factor.set_additional_log_potentials(list(rng.normal(size=2 * states + (length - 1) * states * states)))
    return g


def build_parser(api, ext, rng, words=12):
    n = words + 1
    g = api.PFactorGraph()
    arcs = [(h, m) for m in range(1, n) for h in range(n) if h != m]
    arc_vars = {}
    for a in arcs:
        arc_vars[a] = g.create_binary_variable()
        arc_vars[a].set_log_potential(rng.normal())
    tree = ext.PFactorTree()
    g.declare_factor(tree, [arc_vars[a] for a in arcs])
    tree.initialize(n, arcs)
    for h in range(n):
        for side in (1, -1):
            modifiers = list(range(h + 1, n)) if side > 0 else list(range(h - 1, 0, -1))
            if not modifiers:
                continue
            length = len(modifiers) + 1
            triples = [(h, h + side * m, h + side * s) for s in range(1, length + 1) for m in range(s)]
            automaton = ext.PFactorHeadAutomaton()
            g.declare_factor(automaton, [arc_vars[(h, m)] for m in modifiers])
            automaton.initialize(length, triples)
            automaton.set_additional_log_potentials(list(0.5 * rng.normal(size=len(triples))))
    return g


def build_multilabel(api, ext, rng, labels=20):
    g = api.PFactorGraph()
    variables = [g.create_binary_variable() for _ in range(labels)]
    for v in variables:
        v.set_log_potential(rng.normal())
    for i in range(labels - 1):
        g.create_factor_pair([variables[i], variables[i + 1]], rng.normal())
    g.create_factor_logic("XOR", variables[:5])
    for start in range(5, labels - 2, 3):
        g.create_factor_logic("ATMOSTONE", variables[start:start + 3])
    return g


def build_grid(api, ext, rng, size=10, states=3):
    g = api.PFactorGraph()
    grid = [[g.create_multi_variable(states) for _ in range(size)] for _ in range(size)]
    for row in grid:
        for v in row:
            v.set_log_potentials(rng.normal(size=states))
    potts = np.eye(states).ravel()
    for i in range(size):
        for j in range(size):
            if j:
                g.create_factor_dense([grid[i][j - 1], grid[i][j]], potts)
            if i:
                g.create_factor_dense([grid[i - 1][j], grid[i][j]], potts)
    return g


def build_mixed(api, ext, rng, nodes=12, degree=3):
    g = api.PFactorGraph()
    states = rng.integers(2, 6, size=nodes)
    variables = [g.create_multi_variable(int(k)) for k in states]
    for v, k in zip(variables, states):
        v.set_log_potentials(rng.normal(size=int(k)))
    for a in range(nodes):
        for b in rng.choice([x for x in range(nodes) if x > a], size=min(degree, nodes - a - 1), replace=False):
            g.create_factor_dense([variables[a], variables[int(b)]], rng.normal(size=int(states[a] * states[b])))
    return g


FAMILIES = {"chain": build_chain, "parser": build_parser, "multilabel": build_multilabel, "grid": build_grid,
            "mixed": build_mixed}


def run(api, ext, family, seeds, exact):
    times, statuses, values = [], [], []
    for seed in seeds:
        start = time.perf_counter()
        graph = FAMILIES[family](api, ext, np.random.default_rng(seed))
        value, _, _, status = graph.solve(branch_and_bound=exact)
        times.append(time.perf_counter() - start)
        statuses.append(status)
        values.append(value)
    return {"ms": 1e3 * statistics.median(times), "integral": statuses.count("integral") / len(seeds),
            "value": float(np.mean(values))}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    seeds = range(3 if args.quick else 20)
    if reference is None:
        print("reference `ad3` not installed: its columns are skipped", file=sys.stderr)
    header = f"{'family':<11} {'mode':<6} {'ccnn ms':>9} {'certified':>9} {'value':>10}"
    if reference is not None:
        header += f" {'ref ms':>9} {'certified':>9} {'value':>10} {'speed-up':>8}"
    print(header)
    for family in FAMILIES:
        for exact in (False, True):
            mine = run(ours, our_extensions, family, seeds, exact)
            line = (f"{family:<11} {'exact' if exact else 'ad3':<6} {mine['ms']:9.2f} {mine['integral']:9.0%} "
                    f"{mine['value']:10.3f}")
            if reference is not None:
                theirs = run(reference, reference_extensions, family, seeds, exact)
                line += (f" {theirs['ms']:9.2f} {theirs['integral']:9.0%} {theirs['value']:10.3f} "
                         f"{theirs['ms'] / mine['ms']:7.1f}x")
            print(line, flush=True)


if __name__ == "__main__":
    main()
