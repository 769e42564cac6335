"""What a factor written in Python costs: FactorGraph.add_oracle with a Python MAP oracle against
the built-in factor it imitates, on identical graphs.

A factor of your own needs only its MAP oracle (docs/decoder.md, "Your own factors"); written in
Python, every oracle call crosses into the interpreter. The baseline is what a user of ccnn would
otherwise run, the built-in factor (the reference AD3 takes no factor written in Python). Cases
(random scores, fixed seeds), each a factor plus pair factors between neighbouring literals and an
XOR over the first two:

  head6    a head automaton over 5 binary literals (add_head_automaton; the Python oracle: its
           dynamic program over the positions)
  head12   the same over 11 literals
  seq8x4   a sequence of 8 positions with 4 states (add_sequence; the Python oracle: Viterbi in
           numpy over the (variable, state) literals)
  xor2x4   two XORs over 4 of 8 binary literals each (add_logic("xor"), a closed-form projection;
           the Python oracle: an argmax), which shows the cost of crossing into Python itself

Per case: solve_ad3's milliseconds per problem (the median over the problems of the fastest of
`repeats` solves, built-in and oracle alternating), the Python oracle's calls per solve and
microseconds per call (its wall time less the built-in's, over its calls), and the problems where
the two agree (the same status and bound within 1e-6, and the same solve_exact labels).

    python benchmarks/bench_oracle.py --out benchmarks/results
    python benchmarks/bench_oracle.py --quick      # 3 problems, into the scratch folder
"""
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import busy, cpu_name, load_average, markdown_table, parse_problem_arguments, write_results  # noqa: E402

import ccnn_decoder  # noqa: E402
from ccnn_decoder import FactorGraph  # noqa: E402

BOUND_TOL = 1e-6


class Counted:
    """A callable that counts its calls."""

    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *args):
        self.calls += 1
        return self.fn(*args)


def head_automaton_oracle(length):
    """maximize, evaluate of a head automaton over positions 1..length-1, sibling pairs in
    add_head_automaton's default order (s = 1..length, m = 0..s-1)."""
    def pair(m, s):
        return s * (s - 1) // 2 + m

    def maximize(s, a):
        best, back = np.zeros(length), np.zeros(length + 1, dtype=np.int64)
        for p in range(1, length):
            candidates = best[:p] + a[pair(0, p):pair(0, p) + p]
            back[p] = int(np.argmax(candidates))
            best[p] = candidates[back[p]] + s[p - 1]
        ends = best + a[pair(0, length):pair(0, length) + length]
        p = int(np.argmax(ends))
        on, extras = [], [pair(p, length)]
        while p > 0:
            on.append(p - 1)
            extras.append(pair(int(back[p]), p))
            p = int(back[p])
        return on, extras

    def evaluate(y):
        chosen = [0] + [p for p in range(1, length) if y[p - 1]] + [length]
        return [pair(m, s) for m, s in zip(chosen, chosen[1:])]
    return maximize, evaluate


def sequence_oracle(length, states):
    """maximize, evaluate of a sequence over `length` positions of `states` states, transitions in
    add_sequence's layout (start (K,), length - 1 tables (K, K), end (K,))."""
    start, between, end = 0, states, states + (length - 1) * states * states

    def maximize(s, a):
        unary = s.reshape(length, states)
        tables = a[between:end].reshape(length - 1, states, states)
        value, back = a[start:between] + unary[0], []
        for i in range(1, length):
            total = value[:, None] + tables[i - 1]
            back.append(total.argmax(axis=0))
            value = total.max(axis=0) + unary[i]
        path = [int((value + a[end:]).argmax())]
        for pointers in reversed(back):
            path.append(int(pointers[path[-1]]))
        path.reverse()
        return [i * states + k for i, k in enumerate(path)], transitions(path)

    def transitions(path):
        extras = [start + path[0]]
        extras += [between + (i - 1) * states * states + path[i - 1] * states + path[i] for i in range(1, length)]
        return extras + [end + path[-1]]

    def evaluate(y):
        rows = y.reshape(length, states)
        if not np.all(rows.sum(axis=1) == 1):
            return None
        return transitions([int(k) for k in rows.argmax(axis=1)])
    return maximize, evaluate


def head_case(length):
    def make(rng, own):
        g = FactorGraph()
        vs = [g.add_binary_variable(float(x)) for x in rng.normal(size=length - 1)]
        siblings = rng.normal(size=length * (length + 1) // 2)
        oracle = None
        if own:
            oracle = [Counted(f) for f in head_automaton_oracle(length)]
            g.add_oracle(vs, *oracle, scores=siblings)
        else:
            g.add_head_automaton(vs, siblings)
        for i, c in enumerate(rng.normal(size=length - 2)):
            g.add_pair(vs[i], vs[i + 1], float(c))
        g.add_logic("xor", vs[:2])
        return g, oracle
    return make


def sequence_case(length, states):
    def make(rng, own):
        g = FactorGraph()
        vs = [g.add_variable(rng.normal(size=states)) for _ in range(length)]
        transitions = rng.normal(size=2 * states + (length - 1) * states * states)
        oracle = None
        if own:
            oracle = [Counted(f) for f in sequence_oracle(length, states)]
            g.add_oracle([(v, k) for v in vs for k in range(states)], *oracle, scores=transitions)
        else:
            g.add_sequence(vs, transitions)
        for i in range(length - 1):
            g.add_pair((vs[i], 0), (vs[i + 1], 0), float(rng.normal()))
        g.add_logic("xor", [(vs[0], 0), (vs[1], 0)])
        return g, oracle
    return make


def xor_oracle():
    def maximize(s, a):
        return [int(s.argmax())], ()

    def evaluate(y):
        return () if y.sum() == 1 else None
    return maximize, evaluate


def xor_case(rng, own):
    g = FactorGraph()
    vs = [g.add_binary_variable(float(x)) for x in rng.normal(size=8)]
    oracle = [Counted(f) for f in xor_oracle()] if own else None
    for group in (vs[:4], vs[4:]):
        if own:
            g.add_oracle(group, *oracle)
        else:
            g.add_logic("xor", group)
    for i in range(7):
        g.add_pair(vs[i], vs[i + 1], float(rng.normal()))
    return g, oracle


CASES = {"head6": head_case(6), "head12": head_case(12), "seq8x4": sequence_case(8, 4), "xor2x4": xor_case}


def run_case(make, count, repeats):
    """Per problem: the fastest built-in and oracle solve (s), the oracle's calls per solve, and
    whether the two agree."""
    rows = []
    for seed in range(count):
        builtin, _ = make(np.random.default_rng(seed), False)
        own, oracle = make(np.random.default_rng(seed), True)
        a, b = builtin.solve_ad3(), own.solve_ad3()  # (warm-up, and the answers compared)
        calls_before = sum(f.calls for f in oracle)
        own.solve_ad3()
        calls = sum(f.calls for f in oracle) - calls_before
        agree = (a.status == b.status and abs(a.bound - b.bound) <= BOUND_TOL * max(1.0, abs(a.bound))
                 and list(builtin.solve_exact().labels) == list(own.solve_exact().labels))
        best = [float("inf"), float("inf")]
        for _ in range(repeats):
            for k, g in enumerate((builtin, own)):
                start = time.perf_counter()
                g.solve_ad3()
                best[k] = min(best[k], time.perf_counter() - start)
        rows.append((best[0], best[1], calls, agree))
    return rows


def markdown(meta, rows):
    out = ["# A factor written in Python: add_oracle with a Python MAP oracle vs the built-in factor\n",
           f"{meta['cpu']}, {meta['cores']} logical cores, one thread; Python {meta['python']}, numpy "
           f"{meta['numpy']}. Load average (1/5/15 min) at start {meta['load_average_at_start']}, at end "
           f"{meta['load_average_at_end']}.",
           f"{meta['problems']} problems per case, each solved {meta['repeats']} times per variant, the two "
           "alternating (fastest kept), median over the problems; `solve_ad3` alone (the graph built "
           "before). Baseline: the built-in factor of ccnn on the identical graph (the reference AD3 has "
           "no factor written in Python). `us per oracle call`: (oracle - built-in) time over the "
           "oracle's calls per solve; `agree`: same status, bound within "
           f"{BOUND_TOL:g}, and the same `solve_exact` labels.\n"]
    header = ["case", "built-in ms (baseline)", "Python oracle ms", "slow-down vs the built-in",
              "oracle calls per solve", "us per oracle call", "agree"]
    out.append(markdown_table(header, [[r["case"], f"{r['builtin_ms']:.3f}", f"{r['oracle_ms']:.3f}",
                                        f"{r['slowdown']:.1f}x", f"{r['calls']:.0f}", f"{r['us_per_call']:.1f}",
                                        f"{r['agree']}/{meta['problems']}"] for r in rows]))
    return "\n".join(out)


def main(argv=None):
    args, count, repeats = parse_problem_arguments(argv, __doc__, "oracle_cpu", repeats=5)
    start_load = load_average()
    rows = []
    for case, make in CASES.items():
        results = run_case(make, count, repeats)
        builtin_ms = 1e3 * statistics.median(r[0] for r in results)
        oracle_ms = 1e3 * statistics.median(r[1] for r in results)
        calls = statistics.median(r[2] for r in results)
        row = {"case": case, "builtin_ms": builtin_ms, "oracle_ms": oracle_ms, "slowdown": oracle_ms / builtin_ms,
               "calls": calls, "us_per_call": 1e3 * (oracle_ms - builtin_ms) / max(calls, 1),
               "agree": sum(r[3] for r in results)}
        rows.append(row)
        print(f"{case:<8} built-in {builtin_ms:8.3f} ms  oracle {oracle_ms:8.3f} ms  {row['slowdown']:5.1f}x  "
              f"{calls:5.0f} calls  {row['us_per_call']:5.1f} us/call  agree {row['agree']}/{count}", flush=True)
    meta = {"cpu": cpu_name(), "cores": os.cpu_count(), "python": sys.version.split()[0], "numpy": np.__version__,
            "ccnn_decoder": ccnn_decoder.__file__, "load_average_at_start": start_load,
            "load_average_at_end": load_average(), "busy": busy(start_load, os.cpu_count()), "problems": count,
            "repeats": repeats, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    print("wrote", *write_results("oracle_cpu", {"meta": meta, "rows": rows}, markdown(meta, rows), args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
