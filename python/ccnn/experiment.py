"""Experiments: the library API under `ccnn train | eval | compare` and the demo.

    data = prepare_data("data/synth-disfa", image_size=32)        # load, split by subject, align faces
    results, run = train_variant(data, TrainConfig(mode="ibb"), "runs/ccnn-it", head="copula")
    results, runs = compare_variants(["CNN", "OCNN", "CCNN-IT"], data, config, "runs/cmp")
    metrics, dataset = evaluate_checkpoint("runs/ccnn-it/model.pt", "data/synth-disfa")

Metrics are those of `ccnn.metrics.evaluate` over the target dataset's AUs; `results` maps a model
name to its metrics, the input of `ccnn.report.markdown_table` and `write_report`.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from . import distributed
from .checkpoint import load_model
from .console import LOG
from .data.dataset import AUDataset, report, split_subjects
from .data.loaders import load_dataset
from .duration import duration_estimate
from .inference import DecodeOptions, infer_faces
from .losses import require_labels
from .metrics import au_name, evaluate
from .model_setup import build_model, resolve_device
from .plots import plot_association_graph, plot_learning_curves
from .preprocess import preprocess
from .report import write_report
from .run_folder import run_lock
from .train_config import TrainConfig
from .trainer import Trainer, TrainResult, log_records

HEAD_NAMES = {"softmax": "CNN", "ordinal": "OCNN", "loglinear": "SCNN", "copula": "CCNN"}
# Table 1's models: (head, training mode); a "(*)" suffix adds the extra datasets to the training set.
VARIANTS = {"CNN": ("softmax", "joint"), "OCNN": ("ordinal", "joint"), "SCNN": ("loglinear", "joint"),
            "CCNN": ("copula", "joint"), "OCNN-IT": ("ordinal", "ibb"), "SCNN-IT": ("loglinear", "ibb"),
            "CCNN-IT": ("copula", "ibb")}


def parse_variant(name: str):
    """'CCNN-IT(*)' -> ('copula', 'ibb', True)."""
    base = name.strip()
    multi = base.endswith("(*)")
    base = base[:-3].strip() if multi else base
    if base.upper() not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; choose from {sorted(VARIANTS)} (add '(*)' to train "
                         f"with the extra datasets)")
    head, mode = VARIANTS[base.upper()]
    return head, mode, multi


def parse_variants(text: str) -> list[str]:
    """'CNN, CCNN-IT(*)' -> ['CNN', 'CCNN-IT(*)'], every name checked (ValueError names a bad one,
    an empty list or one model named twice: they share a run folder and a table row)."""
    variants = [v.strip() for v in text.split(",") if v.strip()]
    if not variants:
        raise ValueError(f"--variants: expected one or more model names such as CNN,CCNN-IT, got {text!r}")
    seen = set()
    for name in variants:
        key = parse_variant(name)
        if key in seen:
            raise ValueError(f"--variants: {name!r} names a model already in the list {text!r}")
        seen.add(key)
    return variants


def variant_name(head: str, mode: str, multi: bool = False) -> str:
    """('copula', 'ibb', True) -> 'CCNN-IT(*)', the inverse of parse_variant."""
    return HEAD_NAMES[head] + ("-IT" if mode == "ibb" else "") + ("(*)" if multi else "")


def parse_split(text: str, seed: int):
    """'fraction:0.67' -> ('fraction', 0.67, seed); named schemes ('disfa-18/9', 'fera-official') pass."""
    if text == "fraction" or text.startswith("fraction:"):
        _, _, value = text.partition(":")
        try:
            fraction = float(value) if value else 2 / 3
        except ValueError:
            fraction = math.nan
        if not 0 < fraction < 1:
            raise ValueError(f"--split fraction must be in (0, 1), got {value!r} in {text!r}")
        return ("fraction", fraction, seed)
    return text


# ---- data ------------------------------------------------------------------------------------------------
def load_data(path, flag: str = "--data") -> AUDataset:
    """load_dataset with the messages of the command line: a binary file (an image, an archive) given
    as a CSV is named as such, and rows that list an image already listed are counted (a warning)."""
    try:
        ds = load_dataset(path)
    except UnicodeDecodeError:
        raise ValueError(f"{flag} {str(path)!r} is a binary file (an image or an archive?), not a CSV of "
                         f"labels; give a data set folder or its labels CSV (docs/data.md)") from None
    duplicates = len(ds.image_paths) - len(set(ds.image_paths))
    if duplicates:
        report(ds, f"{duplicates} duplicate row{'s' * (duplicates > 1)} (an image listed again); each copy "
                   f"counts as a sample, remove them from {flag} {str(path)!r} if they are mistakes")
    return ds


@dataclass
class PreparedData:
    train: list           # FaceArrays: the target dataset's training part first, then extra datasets
    val: list | None      # FaceArrays: held-out training subjects of the target dataset
    test: list            # FaceArrays: the target dataset's test subjects
    target: str           # dataset name of the target
    split: dict | None = None  # how the target was split (saved in model.pt; ccnn eval reuses it)


def prepare_data(data: str, extra_data=(), split: str = "fraction:0.6667", val_fraction: float = 0.2,
                 image_size: int = 96, seed: int = 0, cache_dir=None, progress: bool = True) -> PreparedData:
    """Load, split (subject-independent) and pre-process the target dataset and the extra ones."""
    ds = load_data(data)
    train, test = split_subjects(ds, parse_split(split, seed))
    val = None
    if val_fraction > 0:
        if len(train.subject_list()) < 2:
            raise ValueError(f"--data {str(data)!r}: the training part of the split has "
                             f"{len(train.subject_list())} subject, too few to hold some out for validation; "
                             f"pass --val-fraction 0 (no validation) or use more subjects")
        train, val = split_subjects(train, ("fraction", 1.0 - val_fraction, seed + 1))
    extra = [load_data(p, "--extra-data") for p in extra_data]

    # the whole data set is aligned once (the entry `ccnn preprocess` writes, reused); each part takes
    # its subjects' rows from it without copying (a subject-independent split selects whole subjects)
    whole = preprocess(ds, size=image_size, cache_dir=cache_dir, progress=progress, part="all subjects")

    def faces(subset, part):
        if part == "extra data":
            return preprocess(subset, size=image_size, cache_dir=cache_dir, progress=progress, part=part)
        return subjects_rows(whole, subset.subject_list(), part)

    record = {"dataset": ds.name, "scheme": split, "seed": seed, "val_fraction": val_fraction,
              "test_subjects": test.subject_list()}
    return PreparedData(train=[faces(train, "train")] + [faces(e, "extra data") for e in extra],
                        val=None if val is None else [faces(val, "validation")], test=[faces(test, "test")],
                        target=ds.name,
                        split=record)


def subjects_rows(whole, subjects, part: str):
    """The faces of `subjects` in the aligned whole data set `whole` (FaceArrays), as a RowView of its
    memory-mapped rows (no copy); a subject-independent split selects whole subjects."""
    rows = whole.subset(np.isin(whole.subjects, np.asarray(list(subjects), dtype=str)), copy=False)
    LOG.info(f"{whole.dataset} ({part}, {len(rows)} faces of {len(subjects)} subjects): "
             f"rows of the aligned whole set")
    return rows


# ---- training --------------------------------------------------------------------------------------------
def train_and_evaluate(name, head, mode, data: PreparedData, config: TrainConfig, out_dir,
                       multi: bool = False, resume: bool = True, log=print, allow_changed_settings=False,
                       extra_adds_updates: bool = False, predictions: dict | None = None):
    """Train one variant and evaluate it on the test part; returns (metrics, TrainResult).
    `extra_adds_updates`: with extra datasets, the target keeps the updates it gets alone (see
    keep_target_updates). `predictions`, when given, receives the test predictions, labels and
    subjects over the target's AUs as predictions[name] = (preds, labels, subjects)."""
    train_faces = data.train if multi else data.train[:1]
    if multi and extra_adds_updates:
        config = keep_target_updates(config, mode, train_faces)
    require_labels(np.concatenate([f.labels.ravel() for f in data.test]), f"the test faces of {data.target}",
                   "ICC and MAE need them: label them or choose another --split")
    model = build_model(head, train_faces, seed=config.seed, padding=config.padding)
    start = time.perf_counter()
    trainer = Trainer(model, train_faces, data.val, replace(config, mode=mode), out_dir,
                      metadata={"split": data.split} if data.split else None)
    log(duration_estimate(trainer))
    result = trainer.fit(resume, allow_changed_settings)
    seconds = time.perf_counter() - start
    preds, labels, nll = infer_faces(result.model, data.test, config.crop,
                                     DecodeOptions(method=config.decode), config.eval_batch_size,
                                     trainer.device, context=data.target, split_ranks=True)
    metrics = evaluate(labels, preds, model.aus)
    if predictions is not None:
        columns = [model.aus.index(a) for a in data.test[0].aus]
        subjects = np.concatenate([f.subjects for f in data.test])
        predictions[name] = (preds[:, columns], labels[:, columns], subjects)
    metrics.update(nll=nll, train_seconds=seconds, epochs=len(result.history), best_epoch=result.best_epoch)
    edges = "".join(f", {d}: {k} of {n} edges kept" for d, (k, n) in result.edges.items() if n)
    log(f"{name}: ICC {metrics['icc_avg']:.3f}  MAE {metrics['mae_avg']:.3f}  "
        f"({len(result.history)} epochs, {seconds:.0f} s{edges})")
    return metrics, result


def keep_target_updates(config: TrainConfig, mode: str, train_faces) -> TrainConfig:
    """The schedule that gives the target dataset (train_faces[0]) as many CNN-updating samples per
    epoch as it gets when trained alone: IBB shares them equally among the D datasets (x D), joint
    SGD draws in proportion to size (x total / target size). The heads' batch counts stay as set."""
    target = len(train_faces[0])
    alone = config.samples_per_epoch or target
    if mode == "ibb":
        return replace(config, samples_per_epoch=alone * len(train_faces))
    total = sum(len(f) for f in train_faces)
    return replace(config, samples_per_epoch=math.ceil(alone * total / target))


def restrict_to_aus(metrics: dict, aus) -> dict:
    """Metrics over the target dataset's AUs only (models trained with extra datasets predict more)."""
    names = {au_name(a) for a in aus}
    per_au = {k: v for k, v in metrics["per_au"].items() if k in names}
    iccs = [v["icc"] for v in per_au.values() if not math.isnan(v["icc"])]
    maes = [v["mae"] for v in per_au.values() if not math.isnan(v["mae"])]
    return {**metrics, "per_au": per_au, "icc_avg": float(np.mean(iccs)) if iccs else math.nan,
            "mae_avg": float(np.mean(maes)) if maes else math.nan}


def train_variant(data: PreparedData, config: TrainConfig, out_dir, head: str = "copula",
                  multi: bool = False, resume: bool = True, log=print,
                  allow_changed_settings: bool = False) -> tuple[dict, TrainResult]:
    """What `ccnn train` does: train one model with `head` and config.mode (with the extra datasets
    when `multi`), evaluate it on the test subjects and write model.pt, log.jsonl, results.{md,csv,json}
    and the plots into out_dir. Returns ({name: metrics}, TrainResult), name as in Table 1."""
    out = Path(out_dir)
    name = variant_name(head, config.mode, multi)
    with run_lock(out):
        metrics, result = train_and_evaluate(name, head, config.mode, data, config, out, multi=multi,
                                             resume=resume, log=log,
                                             allow_changed_settings=allow_changed_settings)
        results = {name: restrict_to_aus(metrics, data.test[0].aus)}
        _write_run_outputs(results, result, out, name, data)
    return results, result


def _write_run_outputs(results, result, out: Path, name: str, data: PreparedData) -> None:
    if not distributed.is_main():  # rank 0 alone writes
        return
    write_report(results, out, title=f"{name} on {data.target} (test subjects)",
                 world_size=distributed.world_size())
    steps = _steps(out / "log.jsonl")
    plot_learning_curves({name: result.history}, out / "learning_curves.png", {name: steps})
    if result.model.has_pairwise:
        plot_association_graph(result.model.association(), out / "association_graph.png",
                               result.model.dataset_aus)


def _steps(log_path: Path):
    return [r for r in log_records(log_path) if r.get("event") == "step"]


def compare_variants(variants, data: PreparedData, config: TrainConfig, out_dir, resume=True, log=print,
                     allow_changed_settings: bool = False, extra_adds_updates: bool = False,
                     predictions: dict | None = None):
    """Train each variant on the same split with the same schedule (out_dir/<variant>/); returns
    ({name: metrics}, {name: TrainResult}). `extra_adds_updates` and `predictions`: see
    train_and_evaluate."""
    parsed = [parse_variant(name) for name in variants]  # every name checked before any training
    results, runs = {}, {}
    for name, (head, mode, multi) in zip(variants, parsed):
        if multi and len(data.train) < 2:
            raise ValueError(f"variant {name} needs extra datasets (--extra-data)")
        metrics, result = train_and_evaluate(name, head, mode, data, config, Path(out_dir) / _slug(name),
                                             multi=multi, resume=resume, log=log,
                                             allow_changed_settings=allow_changed_settings,
                                             extra_adds_updates=extra_adds_updates, predictions=predictions)
        results[name] = restrict_to_aus(metrics, data.test[0].aus)
        runs[name] = result
    return results, runs


def _slug(name: str) -> str:
    return name.replace("(*)", "-multi").replace("/", "-").lower()


def write_comparison(results: dict, runs: dict, out_dir, title: str) -> None:
    """The outputs of `ccnn compare`: results.{md,csv,json} and learning_curves.png in out_dir."""
    if not distributed.is_main():  # rank 0 alone writes
        return
    write_report(results, out_dir, title=title, world_size=distributed.world_size())
    plot_learning_curves({n: r.history for n, r in runs.items()}, Path(out_dir) / "learning_curves.png")


# ---- evaluation ------------------------------------------------------------------------------------------
def evaluate_checkpoint(checkpoint, data, part: str = "test", split: str | None = None, seed: int = 0,
                        method="auto", context: str | None = None, batch_size: int = 256,
                        device: str = "auto", cache_dir=None, progress: bool = True) -> tuple[dict, str]:
    """What `ccnn eval` does: the metrics of a saved model on a dataset, or on the train or test part
    of its split, read out with `method` (a name or DecodeOptions, whose status_counts then count the
    decoder's status per frame). Returns (metrics, dataset name). Without `split`, the split saved in
    the checkpoint by training is used (its test subjects), else "fraction:0.6667"."""
    model, payload = load_model(checkpoint)
    device = resolve_device(device)
    model.to(device)
    ds = load_data(data)
    # the whole data set is aligned (the entry `ccnn preprocess` and `ccnn train` use) and the part's
    # subjects taken from it, so evaluating after training or a second time aligns nothing
    faces = preprocess(ds, size=model.image_size, cache_dir=cache_dir, progress=progress, part="all subjects")
    saved = payload.get("split") if split is None else None
    if part != "all" and saved and saved.get("dataset") == ds.name:
        test = set(saved["test_subjects"])
        faces = subjects_rows(faces, [s for s in ds.subject_list() if (s in test) == (part == "test")], part)
    elif part != "all":
        train, test = split_subjects(ds, parse_split(split or "fraction:0.6667", seed))
        faces = subjects_rows(faces, (test if part == "test" else train).subject_list(), part)
    if len(faces) == 0:
        raise ValueError(f"--data {str(data)!r}: no aligned face of the {part} subjects of {ds.name} "
                         f"(none of them in the data set, or no face found in their frames)")
    crop = payload.get("train_config", {}).get("crop", 0.85)
    options = method if isinstance(method, DecodeOptions) else DecodeOptions(method=method)
    require_labels(faces.labels, f"the {part} faces of {ds.name}", "ICC and MAE need them; use ccnn predict "
                   "for unlabelled frames")
    preds, labels, nll = infer_faces(model, [faces], crop, options, batch_size, device,
                                     context=context, progress=progress)
    return restrict_to_aus({**evaluate(labels, preds, model.aus), "nll": nll}, faces.aus), ds.name
