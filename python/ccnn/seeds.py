"""`ccnn compare --seeds 0,1,2`: every variant trained and evaluated once per seed (the seed sets the
split, the initialisation and the batches), then summarised over seeds with bootstrap intervals.

    summary = compare_seeds(["CNN", "OCNN"], [0, 1, 2], make_data, config, "runs/seeds")

`make_data(seed)` returns the PreparedData of a seed. Each seed's runs go to out_dir/seed<N>/<variant>/;
out_dir/seed<N>/seed.json holds its metrics and learned associations and predictions.npz its test
predictions, so a finished seed is not trained again and `summarise_seeds(out_dir)` rebuilds the
summary from the files alone. The summary (seeds.{json,md,csv}, seeds.png) gives per variant the mean
and standard deviation over seeds of each AU's ICC and MAE and of their averages, and for every pair
of variants the paired difference of average ICC with a 95% interval of the two-level bootstrap over
seeds and test subjects (ccnn.bootstrap); CLAIMS names the paper's comparisons among them.
"""
from __future__ import annotations

import itertools
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from .bootstrap import bootstrap_models, percentile_interval, subject_sums
from .dependence import theta_vs_tau
from .inference import DecodeOptions, infer_faces
from .metrics import evaluate
from .experiment import _slug, compare_variants, parse_variants
from .plots import plot_seed_comparison
from .run_folder import write_text_atomically
from .seeds_report import claim_verdict, write_seed_report
from .train_config import TrainConfig

# The paper's claims: (name, better variant, worse variant).
CLAIMS = [
    ("ordinal beats softmax", "OCNN", "CNN"),
    ("the copula beats independence", "CCNN", "OCNN"),
    ("IBB helps", "CCNN-IT", "CCNN"),
    ("extra datasets help", "CCNN-IT(*)", "CCNN-IT"),
    ("the copula beats log-linear pairwise", "CCNN-IT", "SCNN-IT"),
]


def parse_seeds(text: str) -> list[int]:
    """'0,1,2' or '0-4' -> [0, 1, 2] / [0, 1, 2, 3, 4]; ValueError names a bad value."""
    seeds = []
    for part in (p.strip() for p in str(text).split(",") if p.strip()):
        low, dash, high = part.partition("-")
        try:
            values = range(int(low), int(high) + 1) if dash else [int(part)]
        except ValueError:
            raise ValueError(f"--seeds: expected integers >= 0 such as 0,1,2 or 0-4, got {part!r}") from None
        seeds.extend(values)
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds: expected distinct integers >= 0 such as 0,1,2 or 0-4, got {text!r}")
    return seeds


def compare_seeds(variants, seeds, make_data, config: TrainConfig, out_dir, log=print, resume: bool = True,
                  extra_adds_updates: bool = True, replicates: int = 2000, true_tau=None,
                  title: str = "test subjects") -> dict:
    """Train and evaluate `variants` once per seed, then summarise_seeds (returns its summary).
    `extra_adds_updates`: a '(*)' variant keeps the target's updates (experiment.keep_target_updates).
    `true_tau`: the generator's (Q, Q) Kendall tau of the target's AUs, for the theta-vs-tau check."""
    variants = parse_variants(",".join(variants))
    out = Path(out_dir)
    for seed in seeds:
        folder = out / f"seed{seed}"
        if resume and _finished(folder, variants):
            log(f"seed {seed}: already done ({folder / 'seed.json'})")
            continue
        log(f"---- seed {seed} ----")
        data = make_data(seed)
        predictions = {}
        results, runs = compare_variants(variants, data, replace(config, seed=seed), folder, resume=resume,
                                         log=log, extra_adds_updates=extra_adds_updates,
                                         predictions=predictions)
        _add_argmax_readouts(results, runs, data, config, predictions)
        _save_seed(folder, seed, data, results, runs, predictions)
    return summarise_seeds(out, None, seeds, replicates=replicates, true_tau=true_tau, title=title)


def _add_argmax_readouts(results: dict, runs: dict, data, config: TrainConfig, predictions: dict) -> None:
    """'<variant> argmax': a pairwise model read out by per-AU argmax of its unaries (no MAP
    decoding), which separates what the pairwise terms do to training from what they do to decoding."""
    for name in list(results):
        model = runs[name].model
        if not model.has_pairwise:
            continue
        preds, labels, _ = infer_faces(model, data.test, config.crop, DecodeOptions(method="argmax"),
                                       config.eval_batch_size, next(model.parameters()).device)
        columns = [model.aus.index(a) for a in data.test[0].aus]
        preds, labels = preds[:, columns], labels[:, columns]
        predictions[f"{name} argmax"] = (preds, labels, predictions[name][2])
        results[f"{name} argmax"] = {**results[name], **evaluate(labels, preds, data.test[0].aus)}
        runs[f"{name} argmax"] = runs[name]


def _finished(folder: Path, variants) -> bool:
    """Whether folder holds a seed.json with every variant's results (a damaged one: not finished,
    the seed runs again)."""
    try:
        return set(variants) <= set(json.loads((folder / "seed.json").read_text())["results"])
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _save_seed(folder: Path, seed: int, data, results: dict, runs: dict, predictions: dict) -> None:
    arrays = {}
    for name, (preds, labels, subjects) in predictions.items():
        arrays.update({f"{_slug(name)}.preds": preds, f"{_slug(name)}.labels": labels,
                       f"{_slug(name)}.subjects": subjects.astype(str)})
    np.savez_compressed(folder / "predictions.npz", **arrays)
    record = {"seed": seed, "target": data.target, "aus": list(data.test[0].aus), "results": {}}
    for name, metrics in results.items():
        model = runs[name].model
        association = model.association().get(data.target, {}) if model.head == "copula" else {}
        record["results"][name] = {
            "icc_avg": metrics["icc_avg"], "mae_avg": metrics["mae_avg"], "per_au": metrics["per_au"],
            "epochs": metrics["epochs"], "best_epoch": metrics["best_epoch"],
            "train_seconds": metrics["train_seconds"],
            "association": [[a, b, v] for (a, b), v in association.items()]}
    write_text_atomically(folder / "seed.json", json.dumps(record, indent=1, allow_nan=True) + "\n")


def load_seed(folder) -> tuple[dict, dict]:
    """(seed.json content, {variant: (preds, labels, subjects)}) of a finished seed folder."""
    folder = Path(folder)
    record = json.loads((folder / "seed.json").read_text())
    with np.load(folder / "predictions.npz") as npz:
        predictions = {name: tuple(npz[f"{_slug(name)}.{k}"] for k in ("preds", "labels", "subjects"))
                       for name in record["results"]}
    return record, predictions


def summarise_seeds(out_dir, variants=None, seeds=None, replicates: int = 2000, true_tau=None,
                    title: str = "test subjects", level: float = 0.95) -> dict:
    """The summary of the finished seed folders of out_dir (all of them unless `seeds` names some),
    written as seeds.{json,md,csv} and seeds.png; returns the seeds.json content."""
    out = Path(out_dir)
    folders = sorted(out.glob("seed*/seed.json"), key=lambda p: int(p.parent.name[4:]))
    if seeds is not None:
        folders = [out / f"seed{s}" / "seed.json" for s in seeds]
    missing = [str(p) for p in folders if not p.exists()]
    if missing or not folders:
        raise ValueError(f"no finished seed runs to summarise in {str(out)!r}" if not folders else
                         f"unfinished seeds (no seed.json): {', '.join(missing)}")
    loaded = [load_seed(p.parent) for p in folders]
    records = [r for r, _ in loaded]
    variants = list(variants or records[0]["results"])
    sums = {name: [_sums(pred[name]) for _, pred in loaded] for name in variants}
    replicas = bootstrap_models(sums, replicates=replicates)
    summary = {"title": title, "seeds": [r["seed"] for r in records], "replicates": replicates,
               "level": level, "variants": {}, "differences": [], "claims": []}
    for name in variants:
        per_seed = [r["results"][name] for r in records]
        summary["variants"][name] = _spread(per_seed) | {
            "icc_interval": percentile_interval(replicas[name]["icc"], level),
            "mae_interval": percentile_interval(replicas[name]["mae"], level)}
    trained = [n for n in variants if not n.endswith(" argmax")]
    pairs = list(itertools.combinations(trained, 2)) + [(n, n[:-len(" argmax")]) for n in variants
                                                        if n.endswith(" argmax")]
    for a, b in pairs:
        summary["differences"].append(_difference(a, b, records, replicas, level))
    for claim, better, worse in CLAIMS:
        if better in variants and worse in variants:
            diff = _difference(better, worse, records, replicas, level)
            summary["claims"].append({"claim": claim, **diff, "verdict": claim_verdict(diff["icc_interval"])})
    if true_tau is not None:
        summary["theta_vs_tau"] = theta_checks(records, true_tau)
    write_seed_report(summary, out)
    plot_seed_comparison(summary, out / "seeds.png")
    return summary


def _sums(prediction) -> np.ndarray:
    preds, labels, subjects = prediction
    return subject_sums(labels, preds, subjects)[1]


def _spread(per_seed: list[dict]) -> dict:
    """Mean and standard deviation (ddof 1) over seeds of average and per-AU ICC and MAE."""
    def stats(values):
        values = np.array([v for v in values if v is not None and not math.isnan(v)], dtype=np.float64)
        if values.size == 0:
            return [math.nan, math.nan]
        return [float(values.mean()), float(values.std(ddof=1)) if values.size > 1 else math.nan]
    aus = list(per_seed[0]["per_au"])
    return {"icc_avg": stats(r["icc_avg"] for r in per_seed), "mae_avg": stats(r["mae_avg"] for r in per_seed),
            "per_au": {au: {m: stats(r["per_au"][au][m] for r in per_seed) for m in ("icc", "mae")}
                       for au in aus},
            "icc_by_seed": [r["icc_avg"] for r in per_seed],
            "epochs": [r["epochs"] for r in per_seed], "best_epoch": [r["best_epoch"] for r in per_seed],
            "train_seconds": float(sum(r["train_seconds"] for r in per_seed))}


def _difference(a: str, b: str, records, replicas, level) -> dict:
    """Paired difference a - b of average ICC and MAE: mean over seeds and bootstrap interval."""
    icc = [r["results"][a]["icc_avg"] - r["results"][b]["icc_avg"] for r in records]
    mae = [r["results"][a]["mae_avg"] - r["results"][b]["mae_avg"] for r in records]
    return {"a": a, "b": b, "icc_diff": float(np.mean(icc)), "mae_diff": float(np.mean(mae)),
            "icc_diff_by_seed": icc,
            "icc_interval": percentile_interval(replicas[a]["icc"] - replicas[b]["icc"], level),
            "mae_interval": percentile_interval(replicas[a]["mae"] - replicas[b]["mae"], level)}


def theta_checks(records, true_tau) -> dict:
    """{variant: {"spearman": [per seed], "sign_agreement": [per seed], ...}} for the copula variants."""
    out = {}
    for name in records[0]["results"]:
        if not name.startswith("CCNN") or name.endswith(" argmax"):
            continue
        checks = [theta_vs_tau({(a, b): v for a, b, v in r["results"][name]["association"]}, r["aus"],
                               true_tau) for r in records]
        out[name] = {"spearman": [c["spearman"] for c in checks],
                     "sign_agreement": [c["sign_agreement"] for c in checks],
                     "strong_pairs": checks[0]["strong_pairs"], "strong_threshold": checks[0]["strong_threshold"],
                     "table_seed0": checks[0]["table"]}
    return out
