"""The `ccnn` commands of the model side: train, eval, predict, compare and demo.

    ccnn train   --data DIR [--extra-data DIR ...] --head ccnn --mode ibb --out runs/x
    ccnn eval    --checkpoint runs/x/model.pt --data DIR [--part test]
    ccnn predict --checkpoint runs/x/model.pt face.png frames/ clip.avi --out au.csv
    ccnn compare --data DIR --variants CNN,OCNN,CCNN,CCNN-IT --out runs/cmp
    ccnn demo    [--out DIR]      (the main job: everything above on built-in synthetic data)
"""
from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from .checkpoint import load_model
from .metrics import au_name, evaluate
from .model import PADDINGS, FeatureNet
from .predict import METHODS, DecodeOptions
from .report import markdown_table, write_report
from .trainer import (TrainConfig, Trainer, build_model, dataset_remap, resolve_device,
                      run_inference)

HEAD_ALIASES = {"cnn": "softmax", "softmax": "softmax", "ocnn": "ordinal", "ordinal": "ordinal",
                "scnn": "loglinear", "loglinear": "loglinear", "ccnn": "copula", "copula": "copula"}
# Table 1's models: (head, training mode); a "(*)" suffix adds the extra datasets to the training set.
VARIANTS = {"CNN": ("softmax", "joint"), "OCNN": ("ordinal", "joint"), "SCNN": ("loglinear", "joint"),
            "CCNN": ("copula", "joint"), "OCNN-IT": ("ordinal", "ibb"), "SCNN-IT": ("loglinear", "ibb"),
            "CCNN-IT": ("copula", "ibb")}
DEMO_VARIANTS = ["CNN", "OCNN", "SCNN", "CCNN", "CCNN-IT", "CCNN-IT(*)"]
VIDEO_SUFFIXES = {".avi", ".mp4", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".m4v"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm", ".ppm", ".webp"}


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


def parse_split(text: str, seed: int):
    """'fraction:0.67' -> ('fraction', 0.67, seed); named schemes ('disfa-18/9', 'fera-official') pass."""
    if text.startswith("fraction"):
        _, _, value = text.partition(":")
        fraction = float(value) if value else 2 / 3
        if not 0 < fraction < 1:
            raise ValueError(f"--split fraction must be in (0, 1), got {fraction}")
        return ("fraction", fraction, seed)
    return text


# ---- data preparation ------------------------------------------------------------------------------------
@dataclass
class PreparedData:
    train: list           # FaceArrays: the target dataset's training part first, then extra datasets
    val: list | None      # FaceArrays: held-out training subjects of the target dataset
    test: list            # FaceArrays: the target dataset's test subjects
    target: str           # dataset name of the target


def _faces(ds, size, cache_dir, progress):
    from .preprocess import preprocess
    return preprocess(ds, size=size, cache_dir=cache_dir, progress=progress)


def prepare_data(data: str, extra_data=(), split: str = "fraction:0.6667", val_fraction: float = 0.2,
                 image_size: int = 96, seed: int = 0, cache_dir=None, progress: bool = True) -> PreparedData:
    """Load, split (subject-independent) and pre-process the target dataset and the extra ones."""
    from .data import load_dataset, split_subjects
    ds = load_dataset(data)
    train, test = split_subjects(ds, parse_split(split, seed))
    val = None
    if val_fraction > 0:
        train, val = split_subjects(train, ("fraction", 1.0 - val_fraction, seed + 1))
    extra = [load_dataset(p) for p in extra_data]
    faces = lambda d: _faces(d, image_size, cache_dir, progress)  # noqa: E731
    return PreparedData(train=[faces(train)] + [faces(e) for e in extra],
                        val=None if val is None else [faces(val)], test=[faces(test)], target=ds.name)


def _config_from_args(args, **overrides) -> TrainConfig:
    config = TrainConfig(
        mode=args.mode, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        lr_schedule=args.lr_schedule, momentum=args.momentum, grad_clip=args.grad_clip or None,
        pairwise_lr_scale=args.pairwise_lr_scale, pairwise_weight=args.pairwise_weight, l2=args.l2,
        samples_per_epoch=args.samples_per_epoch, ibb_unary_batches=args.ibb_unary_batches,
        ibb_pairwise_batches=args.ibb_pairwise_batches, ibb_reweight=args.ibb_reweight,
        patience=args.patience,
        prune_threshold=args.prune_threshold, decode=args.method, crop=args.crop, padding=args.padding,
        seed=args.seed,
        device=args.device, progress=not args.no_progress)
    return replace(config, **overrides)


def train_and_evaluate(name, head, mode, data: PreparedData, config: TrainConfig, out_dir,
                       multi: bool = False, resume: bool = True, log=print):
    """Train one variant and evaluate it on the test part; returns (metrics, TrainResult)."""
    train_faces = data.train if multi else data.train[:1]
    model = build_model(head, train_faces, seed=config.seed, padding=config.padding)
    start = time.perf_counter()
    trainer = Trainer(model, train_faces, data.val, replace(config, mode=mode), out_dir)
    result = trainer.fit(resume=resume)
    seconds = time.perf_counter() - start
    test_set = _test_set(data.test, model, config)
    remap = dataset_remap(test_set.dataset_names, model, context=data.target)
    preds, labels, nll = run_inference(result.model, test_set, remap, DecodeOptions(method=config.decode),
                                       config.eval_batch_size, trainer.device)
    metrics = evaluate(labels, preds, model.aus)
    metrics.update(nll=nll, train_seconds=seconds, epochs=len(result.history), best_epoch=result.best_epoch)
    log(f"{name}: ICC {metrics['icc_avg']:.3f}  MAE {metrics['mae_avg']:.3f}  "
        f"({len(result.history)} epochs, {seconds:.0f} s)")
    return metrics, result


def _test_set(test_faces, model, config):
    from .data.torch_data import FaceDataset
    return FaceDataset(test_faces, aus=model.aus, train=False, crop=config.crop)


def _restrict(metrics: dict, aus) -> dict:
    """Metrics over the target dataset's AUs only (models trained with extra datasets predict more)."""
    names = {au_name(a) for a in aus}
    per_au = {k: v for k, v in metrics["per_au"].items() if k in names}
    iccs = [v["icc"] for v in per_au.values() if not math.isnan(v["icc"])]
    maes = [v["mae"] for v in per_au.values() if not math.isnan(v["mae"])]
    return {**metrics, "per_au": per_au, "icc_avg": float(np.mean(iccs)) if iccs else math.nan,
            "mae_avg": float(np.mean(maes)) if maes else math.nan}


# ---- commands ------------------------------------------------------------------------------------------
def cmd_train(args) -> int:
    head = HEAD_ALIASES[args.head]
    out = Path(args.out)
    data = prepare_data(args.data, args.extra_data, args.split, args.val_fraction, args.image_size, args.seed,
                        args.cache_dir, not args.no_progress)
    config = _config_from_args(args)
    name = {"softmax": "CNN", "ordinal": "OCNN", "loglinear": "SCNN", "copula": "CCNN"}[head]
    name += "-IT" if args.mode == "ibb" else ""
    name += "(*)" if args.extra_data else ""
    metrics, result = train_and_evaluate(name, head, args.mode, data, config, out,
                                         multi=bool(args.extra_data), resume=not args.no_resume)
    results = {name: _restrict(metrics, data.test[0].aus)}
    write_report(results, out, title=f"{name} on {data.target} (test subjects)")
    _write_model_plots(result, out, name)
    print(markdown_table(results))
    print(f"model: {out / 'model.pt'}; report: {out / 'results.md'}")
    return 0


def _write_model_plots(result, out: Path, name: str):
    from .plots import plot_association_graph, plot_learning_curves
    steps = _steps(out / "log.jsonl")
    plot_learning_curves({name: result.history}, out / "learning_curves.png", {name: steps})
    if result.model.has_pairwise:
        plot_association_graph(result.model.association(), out / "association_graph.png",
                               result.model.dataset_aus)


def _steps(log_path: Path):
    if not log_path.exists():
        return []
    records = (json.loads(line) for line in log_path.read_text().splitlines() if line.strip())
    return [r for r in records if r.get("event") == "step"]


def cmd_eval(args) -> int:
    from .data import load_dataset, split_subjects
    model, payload = load_model(args.checkpoint)
    device = resolve_device(args.device)
    model.to(device)
    ds = load_dataset(args.data)
    if args.part != "all":
        train, test = split_subjects(ds, parse_split(args.split, args.seed))
        ds = test if args.part == "test" else train
    crop = payload.get("train_config", {}).get("crop", 0.85)
    faces = _faces(ds, model.image_size, args.cache_dir, not args.no_progress)
    test_set = _test_set([faces], model, TrainConfig(crop=crop))
    remap = dataset_remap(test_set.dataset_names, model, context=args.context)
    preds, labels, nll = run_inference(model, test_set, remap, DecodeOptions(method=args.method),
                                       args.batch_size, device, progress=not args.no_progress)
    metrics = _restrict({**evaluate(labels, preds, model.aus), "nll": nll}, faces.aus)
    name = args.name or Path(args.checkpoint).parent.name or "model"
    print(markdown_table({name: metrics}, title=f"{ds.name} ({args.part}), decoding: {args.method}"))
    if args.out:
        write_report({name: metrics}, args.out, title=f"{name} on {ds.name} ({args.part})")
    return 0


def _frames(inputs):
    """Yield (source name, frame number, timestamp in s, grayscale uint8 image) for images, folders of
    images and videos."""
    import cv2
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise ValueError(f"input folder {str(path)!r} holds no images")
            yield from _frames(files)
        elif path.suffix.lower() in VIDEO_SUFFIXES:
            cap = cv2.VideoCapture(str(path))
            if not cap.isOpened():
                raise ValueError(f"cannot open video {str(path)!r}")
            fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
            k = 0
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                k += 1
                gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
                yield str(path), k, (k - 1) / fps if fps > 0 else 0.0, gray
            cap.release()
            if k == 0:
                raise ValueError(f"video {str(path)!r} has no readable frames")
        elif path.is_file():
            image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if image is None:
                raise ValueError(f"cannot read image {str(path)!r}")
            yield str(path), 1, 0.0, image
        else:
            raise ValueError(f"input {str(path)!r} does not exist")


def _align(image, size):
    """Aligned, normalised face of one frame; (face, True) when both eyes were found, otherwise the
    whole frame aligned with eyes at their expected places (face, False)."""
    from .preprocess import align_face, detect_eyes
    eyes = detect_eyes(image)
    if eyes is not None:
        return align_face(image, eyes, size=size), True
    h, w = image.shape[:2]
    guess = ((0.3 * w, 0.38 * h), (0.7 * w, 0.38 * h))
    return align_face(image, guess, size=size), False


def predict_frames(model, inputs, crop=0.85, method="auto", context=None, device="cpu",
                   batch_size=64):
    """Per-frame AU intensities: a list of rows {frame, file, timestamp, success, AU01_r, ...} and the
    raw grayscale frames (for annotation)."""
    from .preprocess import FaceArrays
    meta, faces, raw = [], [], []
    for source, k, t, image in _frames(inputs):
        face, ok = _align(image, model.image_size)
        meta.append((source, k, t, ok))
        faces.append(face)
        raw.append(image)
    if not faces:
        raise ValueError("no input frames")
    name = context or model.dataset_names[0]
    arrays = FaceArrays(images=np.stack(faces).astype(np.float32),
                        labels=np.full((len(faces), len(model.aus)), -1, dtype=np.int64),
                        subjects=np.array(["input"] * len(faces)), aus=list(model.aus), dataset=name,
                        skipped=sum(not m[3] for m in meta))
    dataset = _test_set([arrays], model, TrainConfig(crop=crop))
    remap = dataset_remap(dataset.dataset_names, model, context=context)
    preds, _, _ = run_inference(model, dataset, remap, DecodeOptions(method=method), batch_size,
                                torch.device(device))
    rows = []
    for (source, k, t, ok), values in zip(meta, preds):
        row = {"frame": k, "file": source, "timestamp": round(t, 4), "success": int(ok)}
        row.update({f"{au_name(au)}_r": round(float(v), 4) for au, v in zip(model.aus, values)})
        rows.append(row)
    return rows, raw


def _annotate(image, row, aus):
    import cv2
    canvas = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    scale = max(0.35, image.shape[0] / 600)
    for i, au in enumerate(aus):
        value = row[f"{au_name(au)}_r"]
        text = f"AU{au}: {value:.1f}"
        y = int((i + 1) * 22 * scale) + 4
        cv2.rectangle(canvas, (4, y - int(16 * scale)), (4 + int(20 * scale * value) + 2, y + 2),
                      (0, 140, 255), -1)
        cv2.putText(canvas, text, (6, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return canvas


def write_annotations(rows, raw, aus, out_dir) -> list:
    """Annotated copies of the inputs in out_dir: a PNG per image, an .avi per video."""
    import cv2
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written, writers = [], {}
    for row, image in zip(rows, raw):
        source = Path(row["file"])
        canvas = _annotate(image, row, aus)
        if source.suffix.lower() in VIDEO_SUFFIXES:
            if source not in writers:
                target = out_dir / f"{source.stem}_annotated.avi"
                h, w = canvas.shape[:2]
                writers[source] = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (w, h))
                written.append(target)
            writers[source].write(canvas)
        else:
            target = out_dir / f"{source.stem}_annotated.png"
            cv2.imwrite(str(target), canvas)
            written.append(target)
    for writer in writers.values():
        writer.release()
    return written


def cmd_predict(args) -> int:
    import csv
    model, payload = load_model(args.checkpoint)
    device = resolve_device(args.device)
    model.to(device)
    crop = payload.get("train_config", {}).get("crop", 0.85)
    rows, raw = predict_frames(model, args.inputs, crop, args.method, args.context, device)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} frames -> {out} ({sum(r['success'] for r in rows)} with both eyes found)")
    if args.annotate:
        written = write_annotations(rows, raw, model.aus, args.annotate)
        print(f"annotated: {', '.join(str(p) for p in written)}")
    return 0


def compare_variants(variants, data: PreparedData, config: TrainConfig, out_dir, resume=True, log=print):
    """Train each variant on the same split with the same schedule; returns ({name: metrics}, {name:
    TrainResult})."""
    results, runs = {}, {}
    for name in variants:
        head, mode, multi = parse_variant(name)
        if multi and len(data.train) < 2:
            raise ValueError(f"variant {name} needs extra datasets (--extra-data)")
        metrics, result = train_and_evaluate(name, head, mode, data, config, Path(out_dir) / _slug(name),
                                             multi=multi, resume=resume, log=log)
        results[name] = _restrict(metrics, data.test[0].aus)
        runs[name] = result
    return results, runs


def _slug(name: str) -> str:
    return name.replace("(*)", "-multi").replace("/", "-").lower()


def cmd_compare(args) -> int:
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    for v in variants:
        parse_variant(v)
    data = prepare_data(args.data, args.extra_data, args.split, args.val_fraction, args.image_size, args.seed,
                        args.cache_dir, not args.no_progress)
    results, runs = compare_variants(variants, data, _config_from_args(args), args.out,
                                     resume=not args.no_resume)
    write_report(results, args.out, title=f"{data.target}: test subjects")
    from .plots import plot_learning_curves
    plot_learning_curves({n: r.history for n, r in runs.items()}, Path(args.out) / "learning_curves.png")
    print(markdown_table(results, title=f"{data.target}: test subjects"))
    return 0


# ---- argument parsing ----------------------------------------------------------------------------------
def _add_data_args(p, data_required=True):
    p.add_argument("--data", required=data_required,
                   help="dataset: a synthetic dataset folder or a generic CSV (see docs/data.md)")
    p.add_argument("--split", default="fraction:0.6667",
                   help="subject-independent train/test split: 'fraction:F' (a random fraction F of the "
                        "subjects for training), 'disfa-18/9' or 'fera-official' (default: %(default)s)")
    p.add_argument("--cache-dir", default=None, help="where pre-processed faces are cached")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, the initialisation and the "
                                                       "batches (default: %(default)s)")
    p.add_argument("--device", default="auto", help="'auto' (CUDA when present), 'cpu' or 'cuda'")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _add_training_args(p):
    d = TrainConfig()
    p.add_argument("--extra-data", action="append", default=[], metavar="DIR",
                   help="an extra dataset trained on as well (shared unaries, its own edges); repeatable")
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="fraction of the training subjects held out for validation and early stopping "
                        "(0: none) (default: %(default)s)")
    p.add_argument("--image-size", type=int, default=96, help="aligned face size (default: %(default)s)")
    p.add_argument("--padding", choices=PADDINGS, default=d.padding,
                   help=f"conv padding of the network; 'valid' needs --image-size >= "
                        f"{FeatureNet.min_image_size('valid')} and trains about 2x faster at 96 "
                        f"(default: %(default)s)")
    p.add_argument("--mode", choices=["joint", "ibb"], default=d.mode,
                   help="joint SGD, or iterative balanced batches (Algorithm 1) (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=d.epochs, help="default: %(default)s")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="default: %(default)s")
    p.add_argument("--lr", type=float, default=d.lr, help="SGD learning rate (default: %(default)s)")
    p.add_argument("--lr-schedule", choices=["constant", "cosine"], default=d.lr_schedule,
                   help="constant (the paper) or cosine decay over the epochs (default: %(default)s)")
    p.add_argument("--momentum", type=float, default=d.momentum, help="default: %(default)s")
    p.add_argument("--pairwise-lr-scale", type=float, default=d.pairwise_lr_scale,
                   help="learning rate of the pairwise parameters = lr * this (default: %(default)s)")
    p.add_argument("--pairwise-weight", type=float, default=d.pairwise_weight,
                   help="weight of the pairwise terms in the training loss; 1 = the paper's Eq. 11 "
                        "(default: %(default)s)")
    p.add_argument("--grad-clip", type=float, default=d.grad_clip,
                   help="clip the gradient norm of each step to this (0: off) (default: %(default)s)")
    p.add_argument("--l2", type=float, default=d.l2, help="L2 weight of the unary parameters, per AU "
                                                          "(default: %(default)s)")
    p.add_argument("--samples-per-epoch", type=int, default=None,
                   help="CNN-updating samples per epoch (default: the training set size)")
    p.add_argument("--ibb-unary-batches", type=int, default=d.ibb_unary_batches,
                   help="IBB step 2 batches per AU per iteration (default: %(default)s)")
    p.add_argument("--ibb-pairwise-batches", type=int, default=d.ibb_pairwise_batches,
                   help="IBB step 3 batches per edge per iteration (default: %(default)s)")
    p.add_argument("--ibb-reweight", action=argparse.BooleanOptionalAction, default=d.ibb_reweight,
                   help="IBB steps 2 and 3: importance-weight the balanced batches back to the label "
                        "frequencies (default: %(default)s)")
    p.add_argument("--patience", type=int, default=d.patience, help="early stopping patience in epochs "
                                                                    "(default: %(default)s)")
    p.add_argument("--prune-threshold", type=float, default=d.prune_threshold,
                   help="after training, drop edges with |theta| below this (default: %(default)s)")
    p.add_argument("--crop", type=float, default=d.crop, help="crop fraction (default: %(default)s)")
    p.add_argument("--method", choices=["auto", *METHODS], default="auto",
                   help="read-out for validation and test: AD3 MAP for structured models and argmax "
                        "otherwise ('auto'), or one of the others (default: %(default)s)")
    p.add_argument("--no-resume", action="store_true",
                   help="start afresh even if OUT holds a checkpoint of an interrupted run")


def add_train_commands(subparsers) -> None:
    """Register train, eval, predict, compare and demo (`ccnn <command> --help` for each)."""
    p = subparsers.add_parser("train", help="train one model (paper settings by default)",
                              description="Train a CNN/OCNN/SCNN/CCNN on a dataset, evaluate it on the "
                                          "test subjects, write model.pt, logs, plots and a report.")
    _add_data_args(p)
    _add_training_args(p)
    p.add_argument("--head", choices=sorted(HEAD_ALIASES), default="ccnn",
                   help="cnn (softmax), ocnn (ordinal), scnn (ordinal + log-linear pairwise), ccnn "
                        "(ordinal + Frank copula) (default: %(default)s)")
    p.add_argument("--out", required=True, help="output folder (resumed if it holds a checkpoint)")
    p.set_defaults(func=cmd_train)

    p = subparsers.add_parser("eval", help="evaluate a trained model (ICC, MAE per AU)",
                              description="Evaluate a model file on a dataset (or one part of its split).")
    p.add_argument("--checkpoint", required=True, help="model.pt (or best.pt) written by ccnn train")
    _add_data_args(p)
    p.add_argument("--part", choices=["all", "train", "test"], default="test",
                   help="which part of the --split to evaluate on (default: %(default)s)")
    p.add_argument("--method", choices=["auto", *METHODS], default="auto", help="read-out (default: auto)")
    p.add_argument("--context", default=None, help="model dataset whose edges to use for an unknown dataset")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--name", default=None, help="model name in the table")
    p.add_argument("--out", default=None, help="also write results.md/.csv/.json here")
    p.set_defaults(func=cmd_eval)

    p = subparsers.add_parser("predict", help="AU intensities of images, folders or videos -> CSV",
                              description="Per-frame AU intensities with OpenFace-style columns "
                                          "(frame, file, timestamp, success, AU01_r, ...).")
    p.add_argument("--checkpoint", required=True, help="model.pt written by ccnn train")
    p.add_argument("inputs", nargs="+", help="image files, folders of images, or video files")
    p.add_argument("--out", required=True, help="CSV file to write")
    p.add_argument("--annotate", default=None, metavar="DIR",
                   help="also write annotated copies (PNG per image, AVI per video) into DIR")
    p.add_argument("--method", choices=["auto", *METHODS], default="auto", help="read-out (default: auto)")
    p.add_argument("--context", default=None, help="model dataset whose edges to use (default: the first)")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_predict)

    p = subparsers.add_parser("compare", help="train several variants on one split, print Table 1",
                              description="Train each variant with the same data, split and schedule "
                                          "and print the Table-1 style comparison.")
    _add_data_args(p)
    _add_training_args(p)
    p.add_argument("--variants", default="CNN,OCNN,SCNN,CCNN,CCNN-IT",
                   help=f"comma-separated from {sorted(VARIANTS)}; append (*) to also train on "
                        f"--extra-data (default: %(default)s)")
    p.add_argument("--out", required=True, help="output folder (one sub-folder per variant)")
    p.set_defaults(func=cmd_compare)

    from .demo import add_demo_command
    add_demo_command(subparsers)
