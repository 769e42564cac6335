"""Smoke test of benchmarks/bench_data.py: it writes JSON and markdown into --out with a speed-up
against one process, and exits 1 when a bar is missed (a tiny run, its bars moved to make one pass
and one fail)."""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import bench_data  # noqa: E402


def test_results_go_to_out_with_a_speedup_column_and_a_missed_bar_fails(tmp_path, monkeypatch):
    monkeypatch.setattr(bench_data, "GENERATION_BAR", 0.0)
    monkeypatch.setattr(bench_data, "PREPROCESS_BAR", 1e12)
    affinity = os.sched_getaffinity(0)
    try:
        status = bench_data.main(["--frames", "200", "--repeats", "1", "--out", str(tmp_path)])
    finally:
        os.sched_setaffinity(0, affinity)  # the benchmark pins this process to two cores
    assert status == 1
    result = json.loads((tmp_path / "data_cpu.json").read_text())
    gen, pre = result["generation_frames_per_s"], result["preprocessing_frames_per_s"]
    assert (gen["met"], pre["met"]) == (True, False)
    for stage in (gen, pre):
        assert stage["speedup"] == stage["median"] / stage["one_process_median"] > 0
    assert result["environment"]["cpu_count"] >= 1 and "load_average_at_start" in result["environment"]
    markdown = (tmp_path / "data_cpu.md").read_text()
    assert "| speed-up |" in markdown and f"{gen['speedup']:.2f}x" in markdown and "| NO |" in markdown
