"""Table-1 style comparison of models: ICC(3,1) and MAE per AU and averaged, as markdown and CSV.

`results` everywhere is {model name: metrics.evaluate(...) output}, i.e.
{"CCNN-IT": {"icc_avg": .., "mae_avg": .., "per_au": {"AU01": {"icc": .., "mae": .., "n": ..}}}}.
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path


def _aus(results: dict) -> list[str]:
    names = []
    for metrics in results.values():
        for au in metrics["per_au"]:
            if au not in names:
                names.append(au)
    return sorted(names, key=lambda a: int(a[2:]))


def _rows(results: dict):
    """[(measure, model, [value per AU..., average])] and the AU names."""
    aus = _aus(results)
    rows = []
    for measure in ("icc", "mae"):
        for name, metrics in results.items():
            values = [metrics["per_au"].get(au, {}).get(measure, math.nan) for au in aus]
            rows.append((measure, name, values + [metrics[f"{measure}_avg"]]))
    return rows, aus


def _fmt(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    text = f"{value:.2f}"
    return text[1:] if text.startswith("0.") else text.replace("-0.", "-.")


def markdown_table(results: dict, title: str | None = None) -> str:
    """Rows: models, per measure (ICC higher is better, MAE lower); the best value of each column in
    bold."""
    rows, aus = _rows(results)
    header = ["", *[str(int(a[2:])) for a in aus], "avg."]
    lines = [f"**{title}**", ""] if title else []
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + [":-:"] * (len(header) - 1)) + "|"]
    for measure in ("icc", "mae"):
        block = [(name, values) for m, name, values in rows if m == measure]
        lines.append(f"| **{measure.upper()}** |" + " |" * (len(header) - 1))
        best = []
        for col in range(len(header) - 1):
            column = [v[col] for _, v in block if v[col] is not None and not math.isnan(v[col])]
            best.append((max if measure == "icc" else min)(column) if column else None)
        for name, values in block:
            cells = [f"**{_fmt(v)}**" if best[i] is not None and _fmt(v) == _fmt(best[i]) else _fmt(v)
                     for i, v in enumerate(values)]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_csv(results: dict, path) -> Path:
    rows, aus = _rows(results)
    path = Path(path)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["measure", "model", *aus, "avg"])
        for measure, name, values in rows:
            writer.writerow([measure.upper(), name, *[f"{v:.4f}" for v in values]])
    return path


def results_json(results: dict, **extra) -> dict:
    """The machine-readable form: {"models": {name: {"icc_avg", "mae_avg", "per_au"}}, ...extra}."""
    models = {name: {"icc_avg": m["icc_avg"], "mae_avg": m["mae_avg"], "per_au": m["per_au"]}
              for name, m in results.items()}
    return {"models": models, **extra}


def write_report(results: dict, out_dir, stem: str = "results", title: str | None = None,
                 **extra) -> dict:
    """Write STEM.md, STEM.csv and STEM.json into out_dir; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / f"{stem}.md"
    md.write_text(markdown_table(results, title))
    js = out_dir / f"{stem}.json"
    js.write_text(json.dumps(results_json(results, **extra), indent=2, allow_nan=True) + "\n")
    return {"markdown": md, "csv": write_csv(results, out_dir / f"{stem}.csv"), "json": js}
