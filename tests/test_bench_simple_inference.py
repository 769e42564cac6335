"""Smoke test of benchmarks/bench_simple_inference.py: every case runs, and with a stand-in for the
reference (ccnn_decoder.ad3 itself, so every answer must agree) it writes JSON and markdown with a
speed-up column and full agreement."""
import json
import os
import sys
import types

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import bench_simple_inference as bench  # noqa: E402
import ccnn_decoder.ad3 as ours  # noqa: E402


def test_without_the_reference_it_prints_our_columns_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench, "reference", None)
    assert bench.main(["--quick", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out.splitlines()
    modes = sum(2 if exact else 1 for _, _, exact in bench.CASES.values())
    assert len(printed) == modes and all(line.rstrip().endswith("us") for line in printed)
    assert not list(tmp_path.iterdir())


def test_against_a_twin_every_answer_agrees_and_the_tables_are_written(tmp_path, monkeypatch):
    twin = types.SimpleNamespace(__version__="twin", general_graph=ours.general_graph,
                                 general_constrained_graph=ours.general_constrained_graph,
                                 simple_grid=ours.simple_grid)
    monkeypatch.setattr(bench, "reference", twin)
    assert bench.main(["--quick", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "simple_inference_cpu.json").read_text())
    assert [r["case"] for r in result["rows"]][:2] == ["chain5", "chain5"]
    for row in result["rows"]:
        assert row["same_status"] == 3
        certified, total = row["same_map_value"].split("/")
        assert certified == total
        assert row["speedup"] == row["reference_us"] / row["ours_us"] > 0
    markdown = (tmp_path / "simple_inference_cpu.md").read_text()
    assert "| speed-up vs the reference |" in markdown and "| grid10 | simple_grid | ad3 |" in markdown
