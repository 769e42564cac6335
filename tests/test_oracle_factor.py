"""FactorGraph.add_oracle: factors given by the caller's MAP oracle written in Python, against
brute force written here, against the built-in factors they imitate (the same relaxation), on
threads, and the errors of oracles that break their contract."""
import itertools

import numpy as np
import pytest

from ccnn_decoder import FactorGraph


def count_oracle(n, cap):
    """At most `cap` of n literals true; additional score k for a count of k."""
    def maximize(s, a):
        order = np.argsort(-s, kind="stable")  # (by decreasing score: not in index order)
        best, count, total = a[0], 0, 0.0
        for k in range(1, cap + 1):
            total += s[order[k - 1]]
            if total + a[k] > best:
                best, count = total + a[k], k
        return order[:count].tolist(), [count]

    def evaluate(y):
        count = int(y.sum())
        return None if count > cap else [count]
    return maximize, evaluate


def viterbi_oracle(states):
    """A sequence over positions with `states` states (links: the states' literals, position after
    position), transitions in FactorSequence's layout (start, between positions, end)."""
    offsets = np.cumsum([0] + states)
    tables, start = [], 0
    shapes = [(1, states[0])] + [(a, b) for a, b in zip(states, states[1:])] + [(states[-1], 1)]
    for shape in shapes:
        tables.append((start, shape))
        start += shape[0] * shape[1]

    def table(a, i):
        begin, shape = tables[i]
        return a[begin:begin + shape[0] * shape[1]].reshape(shape)

    def maximize(s, a):
        value = table(a, 0)[0] + s[offsets[0]:offsets[1]]
        back = []
        for i in range(1, len(states)):
            total = value[:, None] + table(a, i)
            back.append(total.argmax(axis=0))
            value = total.max(axis=0) + s[offsets[i]:offsets[i + 1]]
        path = [int((value + table(a, len(states))[:, 0]).argmax())]
        for pointers in reversed(back):
            path.append(int(pointers[path[-1]]))
        path.reverse()
        return [int(offsets[i] + k) for i, k in enumerate(path)], transitions(path)

    def transitions(path):
        extras, previous = [], 0
        for i, k in enumerate(path + [0]):
            begin, shape = tables[i]
            extras.append(begin + previous * shape[1] + k)
            previous = k
        return extras

    def evaluate(y):
        path = []
        for i in range(len(states)):
            on = np.flatnonzero(y[offsets[i]:offsets[i + 1]])
            if len(on) != 1:
                return None
            path.append(int(on[0]))
        return transitions(path)
    return maximize, evaluate


def test_oracle_factor_against_brute_force():
    """Graphs of binary variables with a count oracle, pair factors and an XOR: every solver's
    result against the labelling of maximum score enumerated here."""
    rng = np.random.default_rng(41)
    certified = infeasible = 0
    for trial in range(12):
        n = 3 + trial % 4
        unary = rng.normal(size=n)
        pairs = [(i, i + 1, float(rng.normal())) for i in range(n - 1)]
        g = FactorGraph()
        vs = [g.add_binary_variable(float(x)) for x in unary]
        members = [v for v in vs if rng.random() < 0.7] or vs[:1]
        cap = int(rng.integers(0, len(members) + 1))
        extra = rng.normal(size=cap + 1)
        index = g.add_oracle(members, *count_oracle(len(members), cap), scores=extra)
        for a, b, score in pairs:
            g.add_pair(a, b, score)
        g.add_logic("or", vs[:2])

        def score(y):
            count = sum(y[v] for v in members)
            if count > cap or not (y[0] or y[1]):
                return -np.inf
            return (unary @ y + extra[count] + sum(s for a, b, s in pairs if y[a] and y[b]))
        labellings = [np.array(y) for y in itertools.product((0, 1), repeat=n)]
        best = max(labellings, key=score)
        for y in labellings[:8]:
            assert g.score(y) == pytest.approx(score(y), abs=1e-12) or g.score(y) == score(y) == -np.inf
        exact, exhaustive, relaxed = g.solve_exact(), g.solve_exhaustive(), g.solve_ad3()
        if score(best) == -np.inf:
            infeasible += 1
            assert exact.status == exhaustive.status == "infeasible" and relaxed.status != "optimal"
            continue
        for solution in (exact, exhaustive):
            assert solution.status == "optimal"
            assert solution.score == pytest.approx(score(best), abs=1e-9)
            assert list(solution.labels) == list(best)
            expected = np.zeros(cap + 1)
            expected[sum(best[v] for v in members)] = 1.0
            assert np.array_equal(solution.additional_posteriors[index], expected)
        assert relaxed.bound >= score(best) - 1e-6
        if relaxed.status == "optimal":
            certified += 1
            assert list(relaxed.labels) == list(best)
    assert certified >= 4 and infeasible <= 4


def test_negated_oracle_literals():
    """An oracle over negated literals (negated flags, and a binary variable's (v, 0)) sees the
    literals: every solver against brute force over the variables, and with no additional scores
    the same relaxation as the built-in budget factor over the same literals (AD3 with exact local
    solutions: the same iterates)."""
    rng = np.random.default_rng(43)
    for trial in range(10):
        n = 3 + trial % 3
        unary = rng.normal(size=n)
        flips = rng.random(n) < 0.5
        cap = int(rng.integers(0, n))
        extra = rng.normal(size=cap + 1)
        pairs = [(i, i + 1, float(rng.normal())) for i in range(n - 1)]

        def build(oracle_scores, by_pairs, builtin=False):
            g = FactorGraph()
            vs = [g.add_binary_variable(float(x)) for x in unary]
            if by_pairs:  # (v, 0): "not v"
                literals, negated = [(v, 0) if f else v for v, f in zip(vs, flips)], None
            else:
                literals, negated = vs, [bool(f) for f in flips]
            if builtin:
                g.add_budget(literals, cap, negated=negated)
            else:
                g.add_oracle(literals, *count_oracle(n, cap), scores=oracle_scores, negated=negated)
            for a, b, score in pairs:
                g.add_pair(a, b, score)
            return g

        def score(y):
            literals = np.where(flips, 1 - y, y)
            count = int(literals.sum())
            if count > cap:
                return -np.inf
            return unary @ y + extra[count] + sum(s for a, b, s in pairs if y[a] and y[b])
        labellings = [np.array(y) for y in itertools.product((0, 1), repeat=n)]
        best = max(labellings, key=score)
        for by_pairs in (False, True):
            g = build(extra, by_pairs)
            for y in labellings:
                assert g.score(y) == pytest.approx(score(y), abs=1e-12) or g.score(y) == score(y) == -np.inf
            for solution in (g.solve_exact(), g.solve_exhaustive()):
                assert solution.status == "optimal"
                assert list(solution.labels) == list(best)
                assert solution.score == pytest.approx(score(best), abs=1e-9)
            assert g.solve_ad3().bound >= score(best) - 1e-6
        zero = np.zeros(cap + 1)
        mine = build(zero, False).solve_ad3(max_qp_steps=0, max_iter=200)
        builtin = build(zero, False, builtin=True).solve_ad3(max_qp_steps=0, max_iter=200)
        assert mine.status == builtin.status and mine.iterations == builtin.iterations
        assert np.allclose(mine.posteriors, builtin.posteriors, atol=1e-9)
        assert mine.bound == pytest.approx(builtin.bound, abs=1e-9)


def test_oracle_sequence_has_the_built_in_sequence_relaxation():
    """A Viterbi oracle in Python over the same (variable, state) literals and transitions as
    add_sequence, beside an AT-MOST-ONE that couples the ends: the same LP bound and value, and the
    same optimum with the same additional posteriors."""
    rng = np.random.default_rng(42)
    for trial in range(6):
        states = [int(k) for k in rng.integers(2, 4, size=4)]
        unaries = [rng.normal(size=k) for k in states]
        flat = rng.normal(size=states[0] + sum(a * b for a, b in zip(states, states[1:])) + states[-1])
        graphs = []
        for own in (False, True):
            g = FactorGraph()
            vs = [g.add_variable(u) for u in unaries]
            if own:
                literals = [(v, k) for v, n in zip(vs, states) for k in range(n)]
                g.add_oracle(literals, *viterbi_oracle(states), scores=flat)
            else:
                g.add_sequence(vs, flat)
            g.add_logic("atmostone", [(vs[0], 0), (vs[-1], 0)])
            graphs.append(g)
        builtin, own = (g.solve_ad3(max_iter=5000) for g in graphs)
        assert own.bound == pytest.approx(builtin.bound, abs=1e-4)
        assert own.value == pytest.approx(builtin.value, abs=1e-4)
        a, b = (g.solve_exact() for g in graphs)
        assert list(a.labels) == list(b.labels) and a.score == pytest.approx(b.score, abs=1e-12)
        assert np.array_equal(a.additional_posteriors[0], b.additional_posteriors[0])


def head_automaton_oracle(length):
    """A head automaton over positions 1..length-1 (one binary literal each), the sibling pair
    (m, s) scored by additional score siblings.index((m, s)), pairs ordered as add_head_automaton's
    default."""
    index = {(m, s): k for k, (m, s) in enumerate((m, s) for s in range(1, length + 1) for m in range(s))}

    def maximize(s, a):
        best, back = [0.0], [0]
        for p in range(1, length):
            candidates = [best[m] + a[index[(m, p)]] for m in range(p)]
            back.append(int(np.argmax(candidates)))
            best.append(max(candidates) + s[p - 1])
        end = [best[m] + a[index[(m, length)]] for m in range(length)]
        path, p = [], int(np.argmax(end))
        extras = [index[(p, length)]]
        while p > 0:
            path.append(p - 1)
            extras.append(index[(back[p], p)])
            p = back[p]
        return path, extras

    def evaluate(y):
        chosen = [0] + [p for p in range(1, length) if y[p - 1]] + [length]
        return [index[(m, s)] for m, s in zip(chosen, chosen[1:])]
    return maximize, evaluate


def test_oracle_head_automaton_follows_the_built_in_iterates():
    """A head automaton's dynamic program in Python against add_head_automaton on the same binary
    literals, pair factors and XOR: both are active-set factors with the same oracle, so AD3's
    iterates agree (up to the order of float sums), and so do the converged and exact results."""
    rng = np.random.default_rng(44)
    for trial in range(5):
        length = 4 + trial % 3
        unary = rng.normal(size=length - 1)
        siblings = rng.normal(size=length * (length + 1) // 2)
        couplings = rng.normal(size=length - 2)
        graphs = []
        for own in (False, True):
            g = FactorGraph()
            vs = [g.add_binary_variable(float(x)) for x in unary]
            if own:
                g.add_oracle(vs, *head_automaton_oracle(length), scores=siblings)
            else:
                g.add_head_automaton(vs, siblings)
            for i, c in enumerate(couplings):
                g.add_pair(vs[i], vs[i + 1], float(c))
            g.add_logic("xor", vs[:2])
            graphs.append(g)
        for max_iter in (1, 3, 10, 1000):
            builtin, own = (g.solve_ad3(max_iter=max_iter) for g in graphs)
            assert builtin.status == own.status
            for p, q in zip(builtin.posteriors, own.posteriors):
                assert np.allclose(p, q, rtol=0, atol=1e-9)
            for p, q in zip(builtin.additional_posteriors, own.additional_posteriors):
                assert np.allclose(p, q, rtol=0, atol=1e-9)
            assert own.bound == pytest.approx(builtin.bound, abs=1e-9)
        a, b = (g.solve_exact() for g in graphs)
        assert list(a.labels) == list(b.labels) and a.score == pytest.approx(b.score, abs=1e-12)


def test_oracle_factors_on_threads():
    """solve_batch's threads take turns at the GIL: the results of 1 and 3 threads agree."""
    rng = np.random.default_rng(43)
    g = FactorGraph()
    vs = [g.add_binary_variable() for _ in range(6)]
    g.add_oracle(vs, *count_oracle(6, 3), scores=np.zeros(4))
    g.add_pair(vs[0], vs[5], 1.0)
    units, factors = g.flat_scores()
    batch_units = rng.normal(size=(9, units.shape[0]))
    batch_factors = rng.normal(size=(9, factors.shape[0]))
    for method in ("ad3", "exact"):
        one = g.solve_batch(method, batch_units, batch_factors, num_threads=1)
        three = g.solve_batch(method, batch_units, batch_factors, num_threads=3)
        assert np.array_equal(one.labels, three.labels)
        assert np.array_equal(one.posteriors, three.posteriors)
        assert np.array_equal(one.bound, three.bound)


def test_oracle_contract_errors():
    g = FactorGraph()
    vs = [g.add_binary_variable(0.5), g.add_binary_variable(-0.1)]
    m, e = count_oracle(2, 1)
    with pytest.raises(TypeError, match="maximize, evaluate: expected two callables"):
        g.add_oracle(vs, None, e)
    with pytest.raises(ValueError, match=r"negated: expected one flag per literal \(2\) or None, got 1"):
        g.add_oracle(vs, m, e, negated=[True])
    assert g.num_factors == 0

    def solve_with(maximize, evaluate=e, scores=(0.0, 0.0)):
        h = FactorGraph()
        ws = [h.add_binary_variable(0.5), h.add_binary_variable(-0.1)]
        h.add_oracle(ws, maximize, evaluate, scores=scores)
        return h.solve_ad3()
    with pytest.raises(ValueError, match=r"maximize gave link 2, expected indices in \[0, 2\)"):
        solve_with(lambda s, a: ([2], [0]))
    with pytest.raises(ValueError, match="maximize gave link 0 twice"):
        solve_with(lambda s, a: ([0, 0], [0]))
    with pytest.raises(ValueError, match=r"maximize gave additional score 5"):
        solve_with(lambda s, a: ([], [5]))
    with pytest.raises(TypeError, match="maximize must return \\(on, extras\\)"):
        solve_with(lambda s, a: [0])
    with pytest.raises(TypeError, match="maximize's on: expected a sequence of ints"):
        solve_with(lambda s, a: ("x", [0]))
    with pytest.raises(ValueError, match="evaluate gave additional score 7"):
        solve_with(m, lambda y: [7])
    with pytest.raises(TypeError, match=r"evaluate's extras: expected a sequence of ints, got False \(None: not"):
        solve_with(m, lambda y: False)
    # A 0/1 mask instead of indices: bools would read as the indices 0 and 1.
    for mask in ([True, False], np.array([True, False]), [np.True_, np.False_]):
        with pytest.raises(TypeError, match="maximize's on: expected indices \\(ints\\), got booleans"):
            solve_with(lambda s, a: (mask, [0]))
    with pytest.raises(TypeError, match="evaluate's extras: expected indices \\(ints\\), got booleans"):
        solve_with(m, lambda y: np.array([True]))
    # Indices as numpy arrays and other iterables read as lists do.
    as_arrays = solve_with(lambda s, a: (np.flatnonzero(s > 0), range(1)), lambda y: np.array([0], dtype=np.int32))
    as_lists = solve_with(lambda s, a: (np.flatnonzero(s > 0).tolist(), [0]), lambda y: [0])
    assert np.array_equal(as_arrays.posteriors, as_lists.posteriors) and as_arrays.bound == as_lists.bound

    def failing(s, a):
        raise ZeroDivisionError("inside the oracle")
    with pytest.raises(ZeroDivisionError, match="inside the oracle"):
        solve_with(failing)


def test_the_compatibility_module_declares_oracle_factors():
    """ccnn_decoder.ad3's PFactorOracle (beyond the reference API) with the head automaton's
    dynamic program follows PFactorHeadAutomaton's AD3 iterates on the same graph."""
    from ccnn_decoder.ad3 import factor_graph as fg
    from ccnn_decoder.ad3.extensions import PFactorHeadAutomaton, PFactorOracle

    rng = np.random.default_rng(45)
    length = 6
    unary, siblings = rng.normal(size=length - 1), rng.normal(size=length * (length + 1) // 2)
    for max_iter in (3, 1000):
        results = []
        for own in (False, True):
            g = fg.PFactorGraph()
            variables = [g.create_binary_variable() for _ in unary]
            for variable, score in zip(variables, unary):
                variable.set_log_potential(float(score))
            factor = PFactorOracle() if own else PFactorHeadAutomaton()
            g.declare_factor(factor, variables)
            if own:
                factor.initialize(*head_automaton_oracle(length), num_additional=len(siblings))
            else:
                factor.initialize(length, [(0, m, s) for s in range(1, length + 1) for m in range(s)])
            factor.set_additional_log_potentials(siblings.tolist())
            g.create_factor_pair([variables[0], variables[1]], 0.7)
            results.append(g.solve(max_iter=max_iter))
        (value, posteriors, additional, status), theirs = results
        assert status == theirs[3] and value == pytest.approx(theirs[0], abs=1e-9)
        assert np.allclose(posteriors, theirs[1], rtol=0, atol=1e-9)
        assert np.allclose(additional, theirs[2], rtol=0, atol=1e-9)
    with pytest.raises(TypeError, match="maximize, evaluate"):
        PFactorOracle().initialize(None, len)
    with pytest.raises(ValueError, match="num_additional"):
        PFactorOracle().initialize(len, len, num_additional=-1)
