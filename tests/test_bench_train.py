"""benchmarks/bench_train.py on a tiny configuration: it trains with each asked variant, writes its
JSON and markdown, with the 2-process gloo row run under torchrun."""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_train  # noqa: E402


def test_tiny_run_writes_every_variant(tmp_path):
    status = bench_train.main(["--devices", "cpu", "--variants", "loader", "device", "bf16", "--size", "16",
                               "--batch", "8", "--steps", "2", "--repeats", "2", "--faces", "24",
                               "--out", str(tmp_path)])
    assert status in (0, 1)  # 1: the 5% bar failed, as it may at this tiny size
    result = json.loads((tmp_path / "train_cpu.json").read_text())
    rows = {r["variant"]: r for r in result["rows"]}
    assert [rows[v]["pipeline"] for v in ("loader", "device", "bf16")] == ["loader", "device", "device"]
    assert rows["bf16"]["amp"] == "bf16" and rows["device"]["amp"] == "off"
    for v in ("loader", "device", "bf16"):
        r = rows[v]
        assert len(r["step_times_s"]) == 2 and r["images_per_s"] == 8 / r["step_s"] > 0
        assert r["non_network_share"] < 1 and r["non_network_share_cpu_time"] < 1 and r["network_s"] > 0
        assert len(r["step_cpu_s"]) == 2 and min(r["step_cpu_s"]) > 0
    gloo = rows["2-process gloo"]
    assert "not_run" not in gloo, gloo.get("not_run")
    assert gloo["processes"] == 2 and len(gloo["step_times_s"]) == 2 and gloo["images_per_s"] == 8 / gloo["step_s"] > 0
    assert "load_average_at_start" in result["environment"]
    table = (tmp_path / "train_cpu.md").read_text()
    assert "| loader | loader | off | no |" in table and "1.00x" in table and "(2 processes x 1 thread)" in table
    assert set(rows["device"]["parts_s"]) == {"sampling", "batch", "heads + loss", "clip + update", "loss read-back"}
    assert all(v >= 0 for v in rows["device"]["parts_s"].values()) and rows["device"]["parts_s"]["batch"] > 0
    assert 0 < rows["device"]["non_network_share_by_parts"] < 1
    shares_ok = rows["device"]["non_network_share_by_parts"] <= bench_train.SHARE_LIMIT
    assert status == (0 if shares_ok else 1)
