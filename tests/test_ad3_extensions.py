"""Extension factors of the reference AD3 through ccnn_decoder.FactorGraph and the compatibility
module, against independent brute force: the compression budget (FactorCompressionBudget) and the
tree factors with counts (FactorGeneralTreeCounts, FactorBinaryTreeCounts)."""
import itertools

import numpy as np
import pytest

from ccnn_decoder import FactorGraph
from ccnn_decoder.ad3 import PFactorGraph
from ccnn_decoder.ad3.extensions import (PFactorBinaryTreeCounts, PFactorCompressionBudget,
                                         PFactorGeneralTreeCounts)


def transition_index(length, bigrams):
    """(i, previous, state) -> index into the transition scores, None for a bigram's transition."""
    index, out = 0, {}
    for i in range(length + 1):
        for j in range(2 if i > 0 else 1):
            for k in range(2 if i < length else 1):
                is_bigram = (i - 1) in bigrams and j == (1 if i > 0 else 0) and k == (1 if i < length else 0)
                out[(i, j, k)] = None if is_bigram else index
                index += not is_bigram
    return out


def brute_force(length, budget, counts, bigrams, node_scores, bigram_scores, transitions, allowed=None):
    """max over kept subsets within the budget (and `allowed`), and the best kept tuple."""
    index = transition_index(length, bigrams)
    best, best_kept = -np.inf, None
    for kept in itertools.product((0, 1), repeat=length):
        if sum(k for k, c in zip(kept, counts) if c) > budget or (allowed and not allowed(kept)):
            continue
        states = (0,) + kept + (0,)  # start and end have the one state 0
        total = float(np.dot(node_scores, kept))
        for i in range(length + 1):
            t = index[(i, states[i], states[i + 1])]
            total += transitions[t] if t is not None else bigram_scores[bigrams.index(i - 1)]
        if total > best:
            best, best_kept = total, kept
    return best, best_kept


CASES = [(1, 0, [1], []), (3, 1, [1, 0, 1], [0]), (4, 2, [1, 1, 1, 1], [-1, 1, 3]), (5, 2, [1, 0, 1, 1, 1], [2, 0]),
         (5, 5, [1] * 5, [-1, 0, 1, 2, 3, 4])]


@pytest.mark.parametrize("length, budget, counts, bigrams", CASES)
def test_compat_factor_against_brute_force(length, budget, counts, bigrams):
    rng = np.random.default_rng(length * 10 + budget)
    for _ in range(5):
        node_scores, bigram_scores = rng.normal(size=length), rng.normal(size=len(bigrams))
        transitions = rng.normal(size=4 * length - len(bigrams))
        g = PFactorGraph()
        variables = [g.create_binary_variable() for _ in range(length + len(bigrams))]
        for v, s in zip(variables, list(node_scores) + list(bigram_scores)):
            v.set_log_potential(s)
        factor = PFactorCompressionBudget()
        g.declare_factor(factor, variables)
        factor.initialize(length, budget, counts, bigrams)
        factor.set_additional_log_potentials(list(transitions))
        best, kept = brute_force(length, budget, counts, bigrams, node_scores, bigram_scores, transitions)
        value, posteriors, additional, status = g.solve(branch_and_bound=True)
        assert status == "integral" and value == pytest.approx(best, abs=1e-9)
        states = (1,) + tuple(int(round(p)) for p in posteriors[:length]) + (1,)
        assert tuple(states[1:-1]) == kept
        assert posteriors[length:] == [float(states[p + 1] and states[p + 2]) for p in bigrams]
        assert len(additional) == len(transitions) and sum(additional) == length + 1 - sum(posteriors[length:])
        ad3_value, _, _, ad3_status = g.solve()
        assert g.last_bound >= best - 1e-9  # AD3's bound is valid
        if ad3_status == "integral":
            assert ad3_value == pytest.approx(best, abs=1e-9)


def test_factor_graph_method_with_other_factors():
    """FactorGraph.add_compression_budget beside an OR factor: exact and exhaustive search agree
    with the brute force restricted by the OR."""
    rng = np.random.default_rng(3)
    length, budget, counts, bigrams = 4, 2, [1, 1, 0, 1], [0, 2]
    for _ in range(5):
        node_scores, bigram_scores = rng.normal(size=length), rng.normal(size=len(bigrams))
        transitions = rng.normal(size=4 * length - len(bigrams))
        g = FactorGraph()
        words = [g.add_binary_variable(s) for s in node_scores]
        pairs = [g.add_binary_variable(s) for s in bigram_scores]
        g.add_compression_budget(words, budget, transitions, counts, list(zip(bigrams, pairs)))
        g.add_logic("or", [words[0], words[3]])
        best, kept = brute_force(length, budget, counts, bigrams, node_scores, bigram_scores, transitions,
                                 allowed=lambda kept: kept[0] or kept[3])
        exact, exhaustive = g.solve_exact(), g.solve_exhaustive()
        assert exact.status == "optimal" and exact.score == pytest.approx(best, abs=1e-9)
        assert exhaustive.score == pytest.approx(best, abs=1e-9)
        assert tuple(exact.labels[:length]) == kept
        assert g.solve_ad3().bound >= best - 1e-9


def test_argument_errors():
    g = PFactorGraph()
    variables = [g.create_binary_variable() for _ in range(3)]
    factor = PFactorCompressionBudget()
    g.declare_factor(factor, variables)
    with pytest.raises(ValueError, match="counts_for_budget"):
        factor.initialize(3, 1, [1, 1], [])
    with pytest.raises(ValueError, match="bigram_positions"):
        factor.initialize(2, 1, [1, 1], [2])
    with pytest.raises(ValueError, match="budget"):
        factor.initialize(3, -1, [1, 1, 1], [])
    with pytest.raises(ValueError, match="variables"):
        factor.initialize(3, 1, [1, 1, 1], [0])  # 4 variables expected, 3 bound
    with pytest.raises(TypeError, match="length"):
        factor.initialize("3", 1, [1, 1, 1], [])
    fg = FactorGraph()
    words = [fg.add_binary_variable() for _ in range(2)]
    with pytest.raises(ValueError, match="transitions"):
        fg.add_compression_budget(words, 1, np.zeros(7))
    with pytest.raises(ValueError, match="positive literals"):
        fg.add_compression_budget([(words[0], 0), words[1]], 1, np.zeros(8))


TREES = [[-1], [-1, 0], [-1, 0, 0], [-1, 0, 1, 1], [-1, 2, 0, 2]]


def subtree_counts(parents, counted):
    """Per node, the number of counted nodes in its subtree (itself included)."""
    totals = list(counted)
    for i in sorted(range(1, len(parents)), key=lambda i: -depth(parents, i)):
        totals[parents[i]] += totals[i]
    return totals


def depth(parents, i):
    return 0 if i == 0 else 1 + depth(parents, parents[i])


@pytest.mark.parametrize("parents", TREES)
def test_general_tree_counts_against_brute_force(parents):
    rng = np.random.default_rng(len(parents))
    n = len(parents)
    states = [2 + (i % 2) for i in range(n)]
    for _ in range(4):
        node_scores = [rng.normal(size=k) for k in states]
        count_scores = rng.normal(size=n + 1)
        tables = [rng.normal(size=(states[parents[i]], states[i])) for i in range(1, n)]
        g = PFactorGraph()
        nodes = [g.create_multi_variable(k) for k in states]
        for v, sc in zip(nodes, node_scores):
            v.set_log_potentials(sc)
        count_vars = [g.create_binary_variable() for _ in range(n + 1)]
        for v, sc in zip(count_vars, count_scores):
            v.set_log_potential(sc)
        factor = PFactorGeneralTreeCounts()
        g.declare_factor(factor, [v.get_state(k) for v in nodes for k in range(len(v))] + count_vars)
        factor.initialize(parents, states)
        factor.set_additional_log_potentials(np.concatenate([t.ravel() for t in tables]) if tables else [])
        best = max(sum(node_scores[i][y[i]] for i in range(n)) + count_scores[sum(1 for s in y if s == 0)]
                   + sum(tables[i - 1][y[parents[i]], y[i]] for i in range(1, n))
                   for y in itertools.product(*[range(k) for k in states]))
        value, posteriors, _, status = g.solve(branch_and_bound=True)
        assert status == "integral" and value == pytest.approx(best, abs=1e-9)
        assert sum(posteriors[-(n + 1):]) == 1.0  # exactly one count on
        assert g.solve()[0] <= g.last_bound + 1e-9 and g.last_bound >= best - 1e-9


@pytest.mark.parametrize("max_num_bins", [None, 1, 2, 3])
@pytest.mark.parametrize("parents", TREES)
def test_binary_tree_counts_against_brute_force(parents, max_num_bins):
    """max_num_bins = m: a count of m - 1 or more takes the score of count m - 1."""
    rng = np.random.default_rng(10 + len(parents))
    last_bin = len(parents) if max_num_bins is None else max_num_bins - 1
    n = len(parents)
    counts = [i % 3 != 2 for i in range(n)]
    scored = [i == 0 or i % 2 == 1 for i in range(n)]
    sizes = [sum(1 for j in range(n) if j == i or is_ancestor(parents, i, j)) for i in range(n)]
    for _ in range(4):
        node_scores, tables = rng.normal(size=n), [rng.normal(size=(2, 2)) for _ in range(n - 1)]
        count_tables = {i: rng.normal(size=sizes[i] + 1) for i in range(n) if scored[i]}
        g = PFactorGraph()
        nodes = [g.create_binary_variable() for _ in range(n)]
        for v, sc in zip(nodes, node_scores):
            v.set_log_potential(sc)
        factor = PFactorBinaryTreeCounts()
        g.declare_factor(factor, nodes)
        factor.initialize(parents, counts, scored, max_num_bins)
        extra = [t.ravel() for t in tables] + [count_tables[i] for i in range(n) if scored[i]]
        factor.set_additional_log_potentials(np.concatenate(extra))

        def score(y):
            below = subtree_counts(parents, [int(y[i] == 1 and counts[i]) for i in range(n)])
            return (float(np.dot(node_scores, y)) + sum(tables[i - 1][y[parents[i]], y[i]] for i in range(1, n))
                    + sum(count_tables[i][min(below[i], last_bin)] for i in count_tables))

        best = max(score(y) for y in itertools.product((0, 1), repeat=n))
        value, _, _, status = g.solve(branch_and_bound=True)
        assert status == "integral" and value == pytest.approx(best, abs=1e-9)
        assert g.solve()[0] <= g.last_bound + 1e-9 and g.last_bound >= best - 1e-9


def is_ancestor(parents, a, j):
    while j != 0:
        j = parents[j]
        if j == a:
            return True
    return False


def test_tree_counts_argument_errors():
    g = PFactorGraph()
    nodes = [g.create_binary_variable() for _ in range(3)]
    factor = PFactorBinaryTreeCounts()
    g.declare_factor(factor, nodes)
    with pytest.raises(ValueError, match="counts_for_budget"):
        factor.initialize([-1, 0, 0], [True, True])
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="max_num_bins"):
            factor.initialize([-1, 0, 0], [True] * 3, [True] * 3, bad)
    general = PFactorGeneralTreeCounts()
    g.declare_factor(general, nodes)
    with pytest.raises(ValueError, match="variables expected"):
        general.initialize([-1, 0, 0], [1, 1, 1])  # 3 + 4 variables expected, 3 bound


def test_factor_graph_tree_counts_against_brute_force():
    """FactorGraph.add_tree_counts, binary nodes with count scores and multi-valued nodes with count
    literals, against an independent brute force."""
    rng = np.random.default_rng(7)
    parents = [-1, 0, 0, 1]
    n = len(parents)
    for _ in range(3):
        g = FactorGraph()
        node_scores = rng.normal(size=n)
        nodes = [g.add_binary_variable(s) for s in node_scores]
        tables = [rng.normal(size=(2, 2)) for _ in range(n - 1)]
        root_scores, node1_scores = rng.normal(size=n + 1), rng.normal(size=3)  # node 1's subtree: 1, 3
        g.add_tree_counts(nodes, parents, tables, count_scores={0: root_scores, 1: node1_scores})

        def score(y):
            below = subtree_counts(parents, list(y))
            return (float(np.dot(node_scores, y)) + sum(tables[i - 1][y[parents[i]], y[i]] for i in range(1, n))
                    + root_scores[below[0]] + node1_scores[below[1]])

        best = max(score(y) for y in itertools.product((0, 1), repeat=n))
        exact = g.solve_exact()
        assert exact.status == "optimal" and exact.score == pytest.approx(best, abs=1e-9)
        assert g.solve_exhaustive().score == pytest.approx(best, abs=1e-9)
        # Two bins: the root's counts 1..4 all take root_scores[1], node 1's count 2 takes node1_scores[1].
        t = FactorGraph()
        truncated = [t.add_binary_variable(s) for s in node_scores]
        t.add_tree_counts(truncated, parents, tables, count_scores={0: root_scores, 1: node1_scores}, max_num_bins=2)
        best = max(score(y) - root_scores[below[0]] - node1_scores[below[1]] + root_scores[min(below[0], 1)]
                   + node1_scores[min(below[1], 1)]
                   for y in itertools.product((0, 1), repeat=n) for below in [subtree_counts(parents, list(y))])
        assert t.solve_exact().score == pytest.approx(best, abs=1e-9)

        m = FactorGraph()
        states = [2, 3]
        multi = [m.add_variable(rng.normal(size=k)) for k in states]
        count_vars = [m.add_binary_variable(s) for s in rng.normal(size=3)]
        table = rng.normal(size=(2, 3))
        m.add_tree_counts(multi, [-1, 0], [table], count_literals=count_vars)
        best = max(m.score(list(y) + [int(c == (y[0] == 0) + (y[1] == 0)) for c in range(3)])
                   for y in itertools.product(range(2), range(3)))
        assert m.solve_exact().score == pytest.approx(best, abs=1e-9)
        assert m.solve_exhaustive().score == pytest.approx(best, abs=1e-9)
    bad = FactorGraph()
    with pytest.raises(ValueError, match="count_literals"):
        bad.add_tree_counts([bad.add_variable(2)], [-1], [])
    with pytest.raises(ValueError, match="count_scores"):
        bad.add_tree_counts([bad.add_binary_variable()], [-1], [], count_scores={0: [1.0]})
    for nodes, bins in (([bad.add_binary_variable()], 0), ([bad.add_variable(2)], 2)):
        with pytest.raises(ValueError, match="max_num_bins"):
            bad.add_tree_counts(nodes, [-1], [], count_literals=None if bins == 0 else [0, 1], max_num_bins=bins)
