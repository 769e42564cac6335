"""The trainer's outputs for people: the Table-1 report and the figures."""
import csv
import json
import math

import numpy as np
import pytest
from matplotlib.image import imread

from ccnn import plots, report
from ccnn.metrics import evaluate


def _results():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 6, size=(80, 3))
    good = np.clip(y + rng.integers(-1, 2, size=y.shape), 0, 5)
    bad = rng.integers(0, 6, size=y.shape)
    return {"CCNN-IT": evaluate(y, good, [1, 2, 12]), "CNN": evaluate(y, bad, [1, 2, 12])}


def test_markdown_table_marks_the_best_model_per_column():
    results = _results()
    table = report.markdown_table(results, title="toy")
    lines = table.splitlines()
    assert lines[0] == "**toy**"
    assert lines[2].startswith("|  | 1 | 2 | 12 | avg. |")
    icc_row = next(line for line in lines if line.startswith("| CCNN-IT") and "**" in line)
    avg = f"{results['CCNN-IT']['icc_avg']:.2f}".lstrip("0")
    assert f"**{avg}**" in icc_row


def test_report_files(tmp_path):
    results = _results()
    paths = report.write_report(results, tmp_path, settings={"seed": 0})
    payload = json.loads(paths["json"].read_text())
    assert set(payload["models"]) == {"CCNN-IT", "CNN"}
    assert payload["models"]["CNN"]["icc_avg"] == pytest.approx(results["CNN"]["icc_avg"])
    assert set(payload["models"]["CNN"]["per_au"]) == {"AU01", "AU02", "AU12"}
    assert payload["settings"] == {"seed": 0}
    rows = list(csv.reader(paths["csv"].open()))
    assert rows[0] == ["measure", "model", "AU01", "AU02", "AU12", "avg"]
    assert [r[:2] for r in rows[1:]] == [["ICC", "CCNN-IT"], ["ICC", "CNN"], ["MAE", "CCNN-IT"], ["MAE", "CNN"]]
    assert float(rows[3][-1]) == pytest.approx(results["CCNN-IT"]["mae_avg"], abs=1e-4)


def test_cooccurrence_percentages():
    labels = np.array([[0, 1], [2, 3], [1, 0], [0, 0], [-1, 4]])
    m = plots.cooccurrence(labels)
    assert m[0, 1] == pytest.approx(100 * 1 / 4)   # the row with a missing label is not counted
    assert m[1, 1] == pytest.approx(100 * 3 / 5)
    assert m[0, 0] == pytest.approx(100 * 2 / 4)


def _history():
    return [{"iteration": 10 * (e + 1), "train": {"nll": 9 - e, "icc_avg": 0.1 * e},
             "val": {"nll": 9.5 - e, "icc_avg": 0.08 * e}} for e in range(4)]


def test_plots_write_pngs(tmp_path):
    steps = [{"iteration": i, "unary": 5.0 / (i + 1), "pairwise": 1.0} for i in range(40)]
    paths = [
        plots.plot_learning_curves({"CCNN": _history(), "CCNN-IT": _history()}, tmp_path / "curves.png",
                                   {"CCNN": steps}),
        plots.plot_cooccurrence({"a": (np.random.default_rng(0).integers(0, 6, (50, 4)), [1, 2, 4, 6])},
                                tmp_path / "cooc.png"),
        plots.plot_association_graph({"a": {(1, 2): 4.0, (2, 4): -1.0}, "b": {}}, tmp_path / "graph.png",
                                     {"b": [6, 12]}),
    ]
    for path in paths:
        image = imread(path)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
        assert not math.isclose(float(image.std()), 0.0)
