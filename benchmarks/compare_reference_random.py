"""Differential check of ``ccnn_decoder.ad3`` against the reference AD3 (PyPI ``ad3`` 2.2.1) on
random small factor graphs, with brute force and an LP solver as the judges.

Each graph (fixed seeds) has 2 to 7 binary variables, up to 2 multi-valued ones and 1 to 6
factors drawn from the reference API's: the seven logic factors (XOR, XOROUT, ATMOSTONE, OR,
OROUT, ANDOUT, IMPLY, random negations), pair, budget, knapsack (real costs and budget) and dense
factors, and every extension with random scores: sequence, general tree and general tree with
counts (over the multi-valued variables), dependency tree (3 nodes), head automaton, binary tree,
binary tree with counts (``has_count_scores`` given, no ``max_num_bins``), sequence compressor and
compression budget (over binary ones). Both packages build it with the same calls and solve it
twice: ``solve()`` (AD3) and ``solve(branch_and_bound=True)`` (exact). The reference runs in a
forked child, so that its crashes are counted rather than fatal. Judges:
  * the MAP by enumeration (every labelling scored by ccnn's scorer, which the tests check
    against an independent one);
  * the LP relaxation by scipy's ``linprog`` (HiGHS) over AD3's local polytope: per factor a
    distribution over its allowed configurations, except the knapsack, whose local polytope is
    the linear relaxation ``costs . y <= budget`` in both packages.
Counts per status pair, and every disagreement: ccnn's exact answer against the MAP (must
agree), its AD3 answer against the LP when it reports "fractional" (converged) and against the
MAP when "integral", the reference's the same way, and the two packages against each other.
Exits with status 1 when one of ccnn's answers disagrees with a judge.

    PYTHONPATH=$HOME/.cache/ccnn/reference-ad3 python benchmarks/compare_reference_random.py \\
        --seconds 300 --out benchmarks/results
"""
import argparse
import collections
import itertools
import math
import os
import pickle
import platform
import sys
import time

import numpy as np
from scipy.optimize import linprog

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import SCRATCH_DIR, write_results  # noqa: E402

import ccnn_decoder.ad3 as ours  # noqa: E402
import ccnn_decoder.ad3.extensions  # noqa: E402,F401  (ours.extensions)
from ccnn_decoder import _decoder  # noqa: E402

LOGIC = ("XOR", "XOROUT", "ATMOSTONE", "OR", "OROUT", "ANDOUT", "IMPLY")
VALUE_RTOL = 1e-6   # exact answers and integral AD3 answers against the MAP
LP_RTOL = 1e-3      # converged ("fractional") AD3 values against the LP (tolerance 1e-6 on residuals)


def random_graph(rng):
    """A graph as plain data: binary scores, multi-valued scores, factors."""
    num_binary, num_multi = int(rng.integers(2, 8)), int(rng.integers(0, 3))
    graph = {"binary": [round(float(x), 3) for x in rng.normal(size=num_binary)],
             "multi": [[round(float(x), 3) for x in rng.normal(size=int(rng.integers(2, 4)))] for _ in range(num_multi)],
             "factors": []}
    kinds = ["pair", "logic", "budget", "knapsack", "headautomaton", "binarytree", "sequencecompressor",
             "compressionbudget"] + (["tree"] if num_binary >= 4 else [])
    kinds += ["binarytreecounts"] + (["dense", "sequence"] if num_multi else [])
    kinds += ["generaltree"] + (["generaltreecounts"] if num_binary >= 3 else []) if num_multi == 2 else []
    for _ in range(int(rng.integers(1, 7))):
        kind = kinds[int(rng.integers(len(kinds)))]
        if kind in STRUCTURED:
            graph["factors"].append(structured_factor(kind, graph, rng))
            continue
        if kind == "dense":
            chosen = [int(v) for v in rng.permutation(num_multi)[:int(rng.integers(1, min(num_multi, 2) + 1))]]
            size = int(np.prod([len(graph["multi"][v]) for v in chosen]))
            graph["factors"].append(("dense", chosen, [round(float(x), 3) for x in rng.normal(size=size)]))
            continue
        count = 2 if kind == "pair" else int(rng.integers(2, min(num_binary, 5) + 1))
        chosen = [int(v) for v in rng.permutation(num_binary)[:count]]
        negated = [bool(x) for x in rng.random(count) < 0.3]
        if kind == "pair":
            graph["factors"].append(("pair", chosen, round(2 * float(rng.normal()), 3)))
        elif kind == "logic":
            graph["factors"].append((LOGIC[int(rng.integers(len(LOGIC)))], chosen, negated))
        elif kind == "budget":
            graph["factors"].append(("budget", chosen, int(rng.integers(0, count + 1)), negated))
        else:
            costs = [round(float(c), 2) for c in rng.uniform(0.1, 1.0, size=count)]
            graph["factors"].append(("knapsack", chosen, costs, round(float(rng.uniform(0.2, 2.0)), 2), negated))
    return graph


# The extension factors drawn (declare_factor): name, over binary (True) or multi-valued variables.
STRUCTURED = {"sequence": False, "generaltree": False, "tree": True, "headautomaton": True, "binarytree": True,
              "sequencecompressor": True, "compressionbudget": True, "binarytreecounts": True,
              "generaltreecounts": None}  # (None: the multi-valued nodes, then binary count literals)
EXTENSIONS = {"sequence": "PFactorSequence", "generaltree": "PFactorGeneralTree", "tree": "PFactorTree",
              "headautomaton": "PFactorHeadAutomaton", "binarytree": "PFactorBinaryTree",
              "sequencecompressor": "PFactorSequenceCompressor", "compressionbudget": "PFactorCompressionBudget",
              "binarytreecounts": "PFactorBinaryTreeCounts", "generaltreecounts": "PFactorGeneralTreeCounts"}


def structured_factor(kind, graph, rng):
    """(kind, variables, initialize's arguments, additional log-potentials)."""
    def scores(count):
        return [round(float(x), 3) for x in rng.normal(size=count)]

    if kind == "sequence":  # every multi-valued variable, in a random order
        chosen = [int(v) for v in rng.permutation(len(graph["multi"]))]
        states = [len(graph["multi"][v]) for v in chosen]
        count = states[0] + sum(a * b for a, b in zip(states, states[1:])) + states[-1]
        return ("sequence", chosen, (states,), scores(count))
    if kind in ("generaltree", "generaltreecounts"):  # node 0 the root, node 1 its child
        chosen = [int(v) for v in rng.permutation(2)]
        states = [len(graph["multi"][v]) for v in chosen]
        if kind == "generaltreecounts":  # and the literals "k nodes in state 0", k = 0..2
            chosen = (chosen, [int(v) for v in rng.permutation(len(graph["binary"]))[:3]])
        return (kind, chosen, ([-1, 0], states), scores(states[0] * states[1]))
    if kind == "tree":  # every arc over 3 nodes, on 4 binary variables
        chosen = [int(v) for v in rng.permutation(len(graph["binary"]))[:4]]
        return ("tree", chosen, (3, [(0, 1), (2, 1), (0, 2), (1, 2)]), [])
    if kind == "sequencecompressor":  # L - 1 positions and the indicator; a score per (m, s), 0 <= m < s <= L
        length = int(rng.integers(2, min(len(graph["binary"]), 4) + 1))
        chosen = [int(v) for v in rng.permutation(len(graph["binary"]))[:length]]
        pairs = [(m, e) for e in range(1, length + 1) for m in range(e)]
        return (kind, chosen, (length, [m for m, _ in pairs], [e for _, e in pairs]), scores(len(pairs)))
    if kind == "compressionbudget":  # L positions, then one literal per bigram position in -1..L-1
        length = int(rng.integers(1, min(len(graph["binary"]), 3) + 1))
        room = len(graph["binary"]) - length
        bigrams = sorted(int(p) - 1 for p in rng.permutation(length + 1)[:int(rng.integers(0, min(room, length + 1) + 1))])
        chosen = [int(v) for v in rng.permutation(len(graph["binary"]))[:length + len(bigrams)]]
        counts = [bool(x) for x in rng.random(length) < 0.7]
        return (kind, chosen, (length, int(rng.integers(0, length + 1)), counts, bigrams),
                scores(4 * length - len(bigrams)))
    count = int(rng.integers(1, min(len(graph["binary"]), 4) + 1))
    chosen = [int(v) for v in rng.permutation(len(graph["binary"]))[:count]]
    if kind == "headautomaton":  # positions 1..count; sibling (0, m, s) for 0 <= m < s <= count + 1
        length = count + 1
        siblings = [(0, m, s) for s in range(1, length + 1) for m in range(s)]
        return ("headautomaton", chosen, (length, siblings), scores(len(siblings)))
    parents = [-1] + [int(rng.integers(0, i)) for i in range(1, count)]
    if kind == "binarytree":
        return (kind, chosen, (parents,), scores(4 * (count - 1)))
    counted = [bool(x) for x in rng.random(count) < 0.7]  # binary tree with counts, scores per subtree count
    scored = [bool(x) for x in rng.random(count) < 0.5]
    subtree = [1] * count
    for i in range(count - 1, 0, -1):
        subtree[parents[i]] += subtree[i]
    extra = sum(subtree[i] + 1 for i in range(count) if scored[i])
    return (kind, chosen, (parents, counted, scored), scores(4 * (count - 1) + extra))


def declare(api, g, factor, binary, multi, keep):
    kind, chosen, arguments, additional = factor
    made = getattr(api.extensions, EXTENSIONS[kind])()
    if STRUCTURED[kind]:
        g.declare_factor(made, [binary[i] for i in chosen])
    elif STRUCTURED[kind] is None:
        nodes, counts = chosen
        g.declare_factor(made, [multi[i].get_state(k) for i in nodes for k in range(len(multi[i]))] +
                         [binary[i] for i in counts])
    else:
        g.declare_factor(made, [multi[i].get_state(k) for i in chosen for k in range(len(multi[i]))])
    made.initialize(*arguments)
    if additional:
        made.set_additional_log_potentials(additional)
    keep.append(made)


def build(api, graph, keep):
    """The graph through `api`'s PFactorGraph (the same calls for both packages); the Python
    objects go to `keep` (the reference frees a variable with its Python object)."""
    g = api.PFactorGraph()
    binary = [g.create_binary_variable() for _ in graph["binary"]]
    for v, score in zip(binary, graph["binary"]):
        v.set_log_potential(score)
    multi = [g.create_multi_variable(len(scores)) for scores in graph["multi"]]
    for v, scores in zip(multi, graph["multi"]):
        v.set_log_potentials(np.asarray(scores, dtype=np.float64))
    for factor in graph["factors"]:
        kind, chosen = factor[0], factor[1]
        if kind in STRUCTURED:
            declare(api, g, factor, binary, multi, keep)
        elif kind == "dense":
            g.create_factor_dense([multi[i] for i in chosen], np.asarray(factor[2], dtype=np.float64))
        elif kind == "pair":
            g.create_factor_pair([binary[i] for i in chosen], factor[2])
        elif kind == "budget":
            g.create_factor_budget([binary[i] for i in chosen], factor[2], factor[3])
        elif kind == "knapsack":
            g.create_factor_knapsack([binary[i] for i in chosen], factor[2], factor[3], factor[4])
        else:
            g.create_factor_logic(kind, [binary[i] for i in chosen], factor[2])
    keep.append((g, binary, multi))
    return g


def states_of(graph):
    return [2] * len(graph["binary"]) + [len(s) for s in graph["multi"]]


def map_value(graph):
    """The MAP score by enumeration (-inf when every labelling is forbidden)."""
    inputs = build(ours, graph, [])._inputs()
    return max(_decoder.score_factor_graph(*inputs, list(y)) for y in itertools.product(*map(range, states_of(graph))))


def factor_variables(graph, factor):
    """The factor's variables, numbered binary first, then multi-valued."""
    first_multi = len(graph["binary"])
    if STRUCTURED.get(factor[0], True) is None:
        nodes, counts = factor[1]
        return [first_multi + v for v in nodes] + counts
    over_multi = factor[0] == "dense" or STRUCTURED.get(factor[0]) is False
    return [first_multi + v for v in factor[1]] if over_multi else factor[1]


def lp_value(graph):
    """The LP relaxation's optimum over AD3's local polytope (None when infeasible)."""
    states, num_binary = states_of(graph), len(graph["binary"])
    first_unit = np.cumsum([0] + [1 if v < num_binary else k for v, k in enumerate(states)])[:-1]
    cost = list(-np.concatenate([graph["binary"]] + [np.asarray(s) for s in graph["multi"]]))
    equalities, inequalities = [], []  # (coefficients by column, right-hand side)
    zero = {"binary": [0.0] * num_binary, "multi": [[0.0] * len(s) for s in graph["multi"]]}
    for factor in graph["factors"]:
        variables = factor_variables(graph, factor)
        if factor[0] == "knapsack":
            row, rhs = {}, factor[3]
            for v, c, flipped in zip(variables, factor[2], factor[4]):
                row[first_unit[v]] = -c if flipped else c
                rhs -= c if flipped else 0.0
            inequalities.append((row, rhs))
            continue
        alone = build(ours, dict(zero, factors=[factor]), [])._inputs()  # (scores its configurations)
        start = len(cost)
        configurations = []
        for y in itertools.product(*[range(states[v]) for v in variables]):
            labels = [0] * len(states)
            for v, s in zip(variables, y):
                labels[v] = s
            score = _decoder.score_factor_graph(*alone, labels)
            if score > -math.inf:
                configurations.append(y)
                cost.append(-score)
        equalities.append(({start + c: 1.0 for c in range(len(configurations))}, 1.0))
        for j, v in enumerate(variables):
            for s in ([1] if v < num_binary else range(states[v])):
                row = {start + c: 1.0 for c, y in enumerate(configurations) if y[j] == s}
                row[first_unit[v] + (0 if v < num_binary else s)] = -1.0
                equalities.append((row, 0.0))
    for v in range(num_binary, len(states)):
        equalities.append(({first_unit[v] + s: 1.0 for s in range(states[v])}, 1.0))

    def matrix(rows):
        if not rows:
            return None, None
        a = np.zeros((len(rows), len(cost)))
        for r, (row, _) in enumerate(rows):
            for column, value in row.items():
                a[r, column] = value
        return a, np.array([rhs for _, rhs in rows])

    a_eq, b_eq = matrix(equalities)
    a_ub, b_ub = matrix(inequalities)
    result = linprog(np.array(cost), A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq, bounds=[(0, 1)] * len(cost),
                     method="highs")
    return -result.fun if result.status == 0 else None


def in_child(solve):
    """(value, status) of solve() run in a forked child: ("crash", nan) when it dies."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # (the child: no cleanup, no buffered output)
        os.close(read)
        try:
            value, _, _, status = solve()
            os.write(write, pickle.dumps((str(status), float(value))))
        finally:
            os._exit(0)
    os.close(write)
    data = b""
    while chunk := os.read(read, 65536):
        data += chunk
    os.close(read)
    os.waitpid(pid, 0)
    return pickle.loads(data) if data else ("crash", math.nan)


def close(a, b, rtol):
    return abs(a - b) <= rtol * max(1.0, abs(a), abs(b))


def judge(answer, truth, lp):
    """What is wrong with an answer (status, value), or None; "unsolved" is never wrong. truth:
    the MAP (-inf: infeasible); lp: the LP's optimum (None: infeasible)."""
    status, value = answer
    if status == "crash":
        return "crashed"
    if status == "infeasible" and truth > -math.inf:
        return "infeasible on a feasible graph"
    if status == "integral" and not (truth > -math.inf and close(value, truth, VALUE_RTOL)):
        return f"integral value {value:.6g}, MAP {truth:.6g}"
    if status == "fractional" and not (lp is not None and close(value, lp, LP_RTOL)):
        return f"fractional value {value:.6g}, LP {lp}"
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to draw graphs")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--out", default=SCRATCH_DIR)
    args = parser.parse_args()
    try:
        import ad3 as reference
        import ad3.extensions  # noqa: F401
    except ImportError:
        print("the reference package (PyPI ad3 2.2.1) is not importable: bash benchmarks/install_reference_ad3.sh, "
              "then put its folder on PYTHONPATH", file=sys.stderr)
        return 2
    statuses = collections.Counter()
    rejected = collections.Counter()   # (package, mode, crashed or wrong)
    by_kind = collections.Counter()    # (kind, package, crashed or wrong), and (kind, "graphs")
    examples = []                      # ccnn's rejected answers
    seed, end = args.first_seed, time.time() + args.seconds
    while time.time() < end:
        graph = random_graph(np.random.default_rng(seed))
        kinds = {f[0] for f in graph["factors"]}
        for kind in kinds:
            by_kind[(kind, "graphs")] += 1
        truth = map_value(graph)
        lp = lp_value(graph)
        for mode, exact in (("ad3", False), ("exact", True)):
            keep = []
            mine = build(ours, graph, keep).solve(branch_and_bound=exact)
            theirs = in_child(lambda: build(reference, graph, keep).solve(branch_and_bound=exact))
            statuses[(mode, mine[3], theirs[0])] += 1
            for name, answer in (("ccnn", (mine[3], mine[0])), ("reference", theirs)):
                problem = judge(answer, truth, lp)
                if problem is None:
                    continue
                what = "crashed" if problem == "crashed" else "wrong"
                rejected[(name, mode, what)] += 1
                for kind in kinds:
                    by_kind[(kind, name, what)] += 1
                if name == "ccnn" and len(examples) < 20:
                    examples.append(f"seed {seed} {mode}: {problem}")
        seed += 1
    graphs = seed - args.first_seed
    rows = [{"mode": m, "ccnn": a, "reference": b, "graphs": n} for (m, a, b), n in sorted(statuses.items())]
    kinds = sorted(key[0] for key in by_kind if key[1:] == ("graphs",))
    kind_rows = [{"kind": k, "graphs": by_kind[(k, "graphs")],
                  **{f"{name}_{what}": by_kind[(k, name, what)] for name in ("ccnn", "reference")
                     for what in ("crashed", "wrong")}} for k in kinds]
    meta = {"python": platform.python_version(), "numpy": np.__version__, "graphs": graphs,
            "seeds": [args.first_seed, seed - 1], "seconds": args.seconds,
            "rejected": [{"package": p, "mode": m, "what": w, "answers": n} for (p, m, w), n in sorted(rejected.items())],
            "ccnn_examples": examples}
    ccnn_wrong = sum(n for (p, _, _), n in rejected.items() if p == "ccnn")
    lines = ["# ccnn_decoder.ad3 against the reference AD3 (PyPI ad3 2.2.1) on random small graphs", "",
             f"{graphs} graphs (seeds {args.first_seed}-{seed - 1}), each solved in AD3 mode (`solve()`) and exact "
             "mode (`solve(branch_and_bound=True)`) by both packages, the reference in a forked child; judges: the "
             "MAP by enumeration and the LP relaxation by scipy's linprog (`benchmarks/compare_reference_random.py`). "
             f"Python {meta['python']}, numpy {meta['numpy']}.", "",
             "Status pairs (\"unsolved\" is the reference's answer when its depth-limited search or AD3 gives up, and "
             "ccnn's when AD3 reaches its iteration limit; \"crash\": the reference's process died):", "",
             "| mode | ccnn status | reference status | graphs |", "|---|---|---|---|"]
    lines += [f"| {r['mode']} | {r['ccnn']} | {r['reference']} | {r['graphs']} |" for r in rows]
    lines += ["", "Answers a judge rejects (wrong: an integral value that is not the MAP, a converged fractional "
              "value that is not the LP's, or an infeasibility claim on a feasible graph):", "",
              "| package | mode | what | answers |", "|---|---|---|---|"]
    lines += [f"| {r['package']} | {r['mode']} | {r['what']} | {r['answers']} |" for r in meta["rejected"]] or []
    if not meta["rejected"]:
        lines.append("| (none) | | | |")
    lines += ["", "By factor kind: graphs holding one, and the rejected answers (both modes) on those graphs:", "",
              "| kind | graphs | ccnn crashed | ccnn wrong | reference crashed | reference wrong |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {r['kind']} | {r['graphs']} | {r['ccnn_crashed']} | {r['ccnn_wrong']} | {r['reference_crashed']} "
              f"| {r['reference_wrong']} |" for r in kind_rows]
    if examples:
        lines += ["", "ccnn's rejected answers (first 20): " + "; ".join(examples)]
    write_results("reference_random", {"meta": meta, "status_pairs": rows, "by_kind": kind_rows},
                  "\n".join(lines) + "\n", args.out)
    print("\n".join(lines))
    return 1 if ccnn_wrong else 0


if __name__ == "__main__":
    sys.exit(main())
