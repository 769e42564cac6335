"""Smoke test of benchmarks/bench_oracle.py: every case runs, the Python oracles agree with the
built-in factors they imitate, and the JSON and markdown are written."""
import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import bench_oracle as bench  # noqa: E402


def test_the_oracles_agree_with_the_built_in_factors_and_the_tables_are_written(tmp_path):
    assert bench.main(["--quick", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "oracle_cpu.json").read_text())
    assert [r["case"] for r in result["rows"]] == list(bench.CASES)
    for row in result["rows"]:
        assert row["agree"] == result["meta"]["problems"] == 3
        assert row["calls"] > 0 and row["slowdown"] == row["oracle_ms"] / row["builtin_ms"] > 0
    markdown = (tmp_path / "oracle_cpu.md").read_text()
    assert "| built-in ms (baseline) |" in markdown and "| head12 |" in markdown


def test_the_python_oracles_match_brute_force():
    """The benchmark's oracles are MAP oracles: against enumeration of their evaluate()."""
    rng = np.random.default_rng(5)
    for maximize, evaluate, n, m in [(*bench.head_automaton_oracle(5), 4, 15),
                                     (*bench.sequence_oracle(3, 2), 6, 2 + 2 * 4 + 2)]:
        for _ in range(10):
            s, a = rng.normal(size=n), rng.normal(size=m)
            on, extras = maximize(s, a)
            y = np.zeros(n, dtype=np.int64)
            y[on] = 1
            assert sorted(evaluate(y)) == sorted(extras)
            best = max(s @ np.array(c) + a[evaluate(np.array(c))].sum()
                       for c in np.ndindex(*(2,) * n) if evaluate(np.array(c)) is not None)
            assert abs(s[on].sum() + a[extras].sum() - best) < 1e-12
