"""ccnn_ext.FactorGraph: variables of different cardinalities, checked by brute force."""
import itertools

import numpy as np
import pytest

from ccnn_ext import STATUS_NAMES, FactorGraph


def brute_force(graph, num_states):
    best = max(itertools.product(*[range(k) for k in num_states]), key=graph.score)
    return graph.score(best)


def manual_score(unary, factors, labels):
    return sum(u[y] for u, y in zip(unary, labels)) + sum(t[labels[a], labels[b]] for a, b, t in factors)


def test_docstring_example():
    g = FactorGraph()
    weather = g.add_variable([0.2, 0.5, 0.1])
    umbrella = g.add_variable(2)
    coat = g.add_variable([0.0, -0.3])
    g.add_factor(weather, umbrella, [[-1.0, 1.0], [0.5, -0.5], [0.3, 0.0]])
    g.add_factor(weather, coat, [[0.0, 1.0], [0.4, -0.2], [0.0, 0.0]])
    best = g.solve_exact()
    approx = g.solve_ad3()
    assert best.status == "optimal"
    assert best.score == pytest.approx(brute_force(g, [3, 2, 2]), abs=1e-12)
    assert best.score == pytest.approx(g.score(best.labels), abs=1e-12)
    assert [p.shape for p in approx.posteriors] == [(3,), (2,), (2,)]
    assert approx.bound >= best.score - 1e-9 and approx.score <= best.score + 1e-9


def test_random_graphs_with_mixed_cardinalities():
    rng = np.random.default_rng(5)
    for trial in range(25):
        n = 2 + trial % 5
        num_states = rng.integers(2, 5, size=n)
        g = FactorGraph()
        unary = [rng.normal(size=k) for k in num_states]
        for u in unary:
            g.add_variable(u)
        factors = []
        for a, b in itertools.combinations(range(n), 2):
            if rng.random() < 0.6:
                if rng.random() < 0.5:
                    a, b = b, a
                table = 2.0 * rng.normal(size=(num_states[a], num_states[b]))
                g.add_factor(a, b, table)
                factors.append((a, b, table))
        optimum = brute_force(g, num_states)
        tol = 1e-9 * max(1.0, abs(optimum))
        for solution in (g.solve_exact(), g.solve_exhaustive()):
            assert solution.status == "optimal"
            assert solution.score == pytest.approx(optimum, abs=tol)
            assert solution.score == pytest.approx(manual_score(unary, factors, solution.labels), abs=1e-12)
        relaxed = g.solve_ad3()
        assert relaxed.status in STATUS_NAMES
        assert relaxed.bound >= optimum - tol and relaxed.score <= optimum + tol
        if relaxed.status == "optimal":
            assert relaxed.score >= optimum - tol
        for p, k in zip(relaxed.posteriors, num_states):
            assert p.shape == (k,) and p.sum() == pytest.approx(1.0, abs=1e-9)


def test_set_unary_and_isolated_variables():
    g = FactorGraph()
    a = g.add_variable(3)
    b = g.add_variable([1.0, 0.0])
    g.set_unary(a, [0.0, 2.0, 1.0])
    assert g.num_variables == 2 and g.num_factors == 0
    solution = g.solve_ad3()
    assert list(solution.labels) == [1, 0] and solution.score == pytest.approx(3.0)
    assert solution.status == "optimal"
    with pytest.raises(ValueError, match="variable 0 has 3 states"):
        g.set_unary(a, [1.0, 2.0])
    del b


def test_errors_name_the_argument():
    g = FactorGraph()
    with pytest.raises(ValueError, match="add at least one variable"):
        g.solve_exact()
    with pytest.raises(ValueError, match=r"num_states: expected 2 to 2\^20 states"):
        g.add_variable(1)
    with pytest.raises(ValueError, match=r"num_states: expected 2 to 2\^20 states"):
        g.add_variable(10**12)  # (not a 8 TB array of zeros)
    with pytest.raises(ValueError, match="scores: expected a 1-d sequence"):
        g.add_variable([[1.0, 2.0]])
    a, b = g.add_variable(2), g.add_variable(3)
    with pytest.raises(ValueError, match=r"table: expected shape \(2, 3\)"):
        g.add_factor(a, b, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="two different variables"):
        g.add_factor(a, a, np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"b: expected a variable index in \[0, 2\)"):
        g.add_factor(a, 7, np.zeros((2, 2)))
    g.add_factor(a, b, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="already share a factor"):
        g.add_factor(b, a, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="table.*NaN|pairwise.*NaN"):
        c = g.add_variable(2)
        g.add_factor(a, c, [[0.0, np.nan], [0.0, 0.0]])
        g.solve_ad3()
    with pytest.raises(ValueError, match="labels: expected 3 labels"):
        g.score([0, 1])
    with pytest.raises(ValueError, match=r"labels: label 3 of variable 1 is outside \[0, 3\)"):
        g.score([0, 3, 0])


def test_solve_exact_limits():
    rng = np.random.default_rng(0)
    g = FactorGraph()
    variables = [g.add_variable(rng.normal(size=6)) for _ in range(40)]
    for a in variables:
        for b in variables[a + 1:]:
            g.add_factor(a, b, rng.normal(size=(6, 6)))
    stopped = g.solve_exact(time_limit=0.2)
    assert stopped.status == "time_limit" and stopped.bound > stopped.score
    assert stopped.score == pytest.approx(g.score(stopped.labels))
    assert g.solve_exact(max_nodes=2000, time_limit=None).status == "iteration_limit"
    assert "time_limit" in STATUS_NAMES
    with pytest.raises(ValueError, match="time_limit"):
        g.solve_exact(time_limit=-1)
    huge = FactorGraph()
    huge.add_variable([1.7e308, 0.0])
    huge.add_variable([1.7e308, 0.0])
    with pytest.raises(ValueError, match="too large"):
        huge.solve_exact()
