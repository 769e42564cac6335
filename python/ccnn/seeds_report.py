"""The written form of a multi-seed comparison (ccnn.seeds): seeds.md (tables in words), seeds.csv
(one row per variant and measure, mean and standard deviation per AU) and seeds.json (everything)."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path


def claim_verdict(interval) -> str:
    """'holds' when the whole interval of (better - worse) is above 0, 'does not hold' when it is
    below 0 (the other variant is better), else 'inconclusive on this data'."""
    low, high = interval
    if math.isnan(low) or math.isnan(high):
        return "inconclusive on this data"
    if low > 0:
        return "holds"
    if high < 0:
        return "does not hold"
    return "inconclusive on this data"


def _f(value, digits: int = 3) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _signed(value) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:+.3f}"


def _interval(interval) -> str:
    return f"[{_signed(interval[0])}, {_signed(interval[1])}]"


def seed_markdown(summary: dict) -> str:
    seeds = summary["seeds"]
    pct = round(summary["level"] * 100)
    lines = [f"**{summary['title']}: {len(seeds)} seeds ({', '.join(map(str, seeds))})**", "",
             f"Average over AUs; mean ± standard deviation over seeds; {pct}% intervals of the two-level "
             f"bootstrap over seeds and test subjects ({summary['replicates']} replicates).", "",
             f"| variant | ICC | ICC {pct}% interval | MAE | MAE {pct}% interval | ICC per seed |",
             "|---|:-:|:-:|:-:|:-:|:-:|"]
    for name, v in summary["variants"].items():
        lines.append(f"| {name} | {_f(v['icc_avg'][0])} ± {_f(v['icc_avg'][1])} | "
                     f"[{_f(v['icc_interval'][0])}, {_f(v['icc_interval'][1])}] | "
                     f"{_f(v['mae_avg'][0])} ± {_f(v['mae_avg'][1])} | "
                     f"[{_f(v['mae_interval'][0])}, {_f(v['mae_interval'][1])}] | "
                     f"{' '.join(_f(x, 2) for x in v['icc_by_seed'])} |")
    if summary["claims"]:
        lines += ["", "**The paper's claims** (difference of average ICC, better minus worse)", "",
                  f"| claim | comparison | ICC difference | {pct}% interval | MAE difference | verdict |",
                  "|---|---|:-:|:-:|:-:|---|"]
        for c in summary["claims"]:
            lines.append(f"| {c['claim']} | {c['a']} vs {c['b']} | {_signed(c['icc_diff'])} | "
                         f"{_interval(c['icc_interval'])} | {_signed(c['mae_diff'])} | {c['verdict']} |")
    lines += ["", "**All paired differences** (A minus B: average ICC and MAE)", "",
              f"| A | B | ICC A - B | {pct}% interval | MAE A - B | {pct}% interval |",
              "|---|---|:-:|:-:|:-:|:-:|"]
    for d in summary["differences"]:
        lines.append(f"| {d['a']} | {d['b']} | {_signed(d['icc_diff'])} | {_interval(d['icc_interval'])} | "
                     f"{_signed(d['mae_diff'])} | {_interval(d['mae_interval'])} |")
    lines += ["", "**Per AU** (ICC, mean ± standard deviation over seeds)", ""]
    names = list(summary["variants"])
    aus = list(summary["variants"][names[0]]["per_au"])
    lines += ["| AU | " + " | ".join(names) + " |", "|---|" + ":-:|" * len(names)]
    for au in aus:
        cells = [f"{_f(summary['variants'][n]['per_au'][au]['icc'][0], 2)} ± "
                 f"{_f(summary['variants'][n]['per_au'][au]['icc'][1], 2)}" for n in names]
        lines.append(f"| {au[2:].lstrip('0')} | " + " | ".join(cells) + " |")
    if summary.get("theta_vs_tau"):
        lines += ["", "**Learned copula parameters against the generator's Kendall tau** (Spearman rank "
                  "correlation over all AU pairs; sign agreement on the pairs with |tau| >= "
                  f"{next(iter(summary['theta_vs_tau'].values()))['strong_threshold']}; per seed)", "",
                  "| variant | Spearman | sign agreement on strong pairs |", "|---|---|---|"]
        for name, c in summary["theta_vs_tau"].items():
            lines.append(f"| {name} | {' '.join(_f(x, 2) for x in c['spearman'])} | "
                         f"{' '.join(_f(x, 2) for x in c['sign_agreement'])} (of {c['strong_pairs']}) |")
    return "\n".join(lines) + "\n"


def write_seed_report(summary: dict, out_dir) -> dict:
    """seeds.md, seeds.csv and seeds.json in out_dir; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md, cs, js = out / "seeds.md", out / "seeds.csv", out / "seeds.json"
    md.write_text(seed_markdown(summary))
    js.write_text(json.dumps(summary, indent=1, allow_nan=True) + "\n")
    names = list(summary["variants"])
    aus = list(summary["variants"][names[0]]["per_au"])
    with open(cs, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["measure", "statistic", "model", *aus, "avg"])
        for measure in ("icc", "mae"):
            for k, statistic in enumerate(("mean", "std")):
                for name in names:
                    v = summary["variants"][name]
                    row = [v["per_au"][au][measure][k] for au in aus] + [v[f"{measure}_avg"][k]]
                    writer.writerow([measure.upper(), statistic, name, *[f"{x:.4f}" for x in row]])
    return {"markdown": md, "csv": cs, "json": js}
