"""benchmarks/compare_reference_random.py without the reference package: its judges (the MAP by
enumeration, the LP by scipy) accept ccnn_decoder.ad3's answers on its random graphs and reject
wrong ones, and the script says how to get the reference when it is missing."""
import math
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import compare_reference_random as check  # noqa: E402
import ccnn_decoder.ad3 as ours  # noqa: E402


def test_ccnn_passes_the_judges_on_the_random_graphs():
    statuses, kinds = set(), set()
    for seed in range(80):
        graph = check.random_graph(np.random.default_rng(seed))
        kinds |= {factor[0] for factor in graph["factors"]}
        truth, lp = check.map_value(graph), check.lp_value(graph)
        assert lp is None or truth == -math.inf or lp >= truth - 1e-7 * max(1.0, abs(truth))  # (a relaxation)
        for exact in (False, True):
            value, _, _, status = check.build(ours, graph, []).solve(branch_and_bound=exact)
            assert check.judge((status, value), truth, lp) is None, (seed, exact, status, value, truth, lp)
            statuses.add(status)
    assert {"integral", "fractional", "infeasible"} <= statuses
    assert kinds == set(check.LOGIC) | {"pair", "budget", "knapsack", "dense"} | set(check.STRUCTURED)


def test_the_judges_reject_wrong_answers():
    assert check.judge(("integral", 2.0), 1.0, 1.5) is not None
    assert check.judge(("integral", 1.0), -math.inf, None) is not None
    assert check.judge(("fractional", 1.0), 1.0, 1.5) is not None
    assert check.judge(("fractional", 1.5), -math.inf, None) is not None
    assert check.judge(("infeasible", 0.0), 1.0, 1.5) is not None
    assert check.judge(("crash", math.nan), 1.0, 1.5) == "crashed"
    assert check.judge(("unsolved", 0.5), 1.0, 1.5) is None
    assert check.judge(("fractional", 1.5 + 1e-5), 1.0, 1.5) is None


def test_the_knapsack_lp_is_the_linear_relaxation():
    """One knapsack over two literals (costs 1, budget 1.5) with both scores 1: AD3's local
    polytope allows y = (1, 0.5), value 1.5; the hull of the allowed 0/1 points gives 1."""
    graph = {"binary": [1.0, 1.0], "multi": [], "factors": [("knapsack", [0, 1], [1.0, 1.0], 1.5, [False, False])]}
    assert check.map_value(graph) == pytest.approx(1.0)
    assert check.lp_value(graph) == pytest.approx(1.5)


def test_without_the_reference_it_says_how_to_get_it(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p and "reference-ad3" not in p)}
    try:
        import ad3  # noqa: F401
        pytest.skip("the reference package is importable here")
    except ImportError:
        pass
    result = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "compare_reference_random.py"),
                             "--seconds", "1", "--out", str(tmp_path)], capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode == 2
    assert "install_reference_ad3.sh" in result.stderr
