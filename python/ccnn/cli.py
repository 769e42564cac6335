"""The `ccnn` command line: each command's arguments and a thin `cmd_*` that calls the library.

    ccnn synth      --out DIR [--context disfa|fera|pain] ...     (ccnn.data.synthetic)
    ccnn preprocess DIR [--size 96] ...                           (ccnn.preprocess)
    ccnn train      --data DIR [--extra-data DIR ...] --head ccnn --mode ibb --out runs/x
    ccnn eval       --checkpoint runs/x/model.pt --data DIR [--part test]
    ccnn compare    --data DIR --variants CNN,OCNN,CCNN,CCNN-IT --out runs/cmp   (ccnn.experiment)
    ccnn predict    --checkpoint runs/x/model.pt face.png frames/ clip.avi --out au.csv (ccnn.predict)
    ccnn demo       [--out DIR]      (ccnn.demo: everything above on built-in synthetic data)

Bad input ends with `ccnn <command>: error: ...` and exit status 2; a diverged run with status 1.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

from .data.loaders import load_dataset
from .data.synthetic import contact_sheet, existing_parameters, generate_synthetic, parameters
from .demo import run_demo
from .experiment import (VARIANTS, compare_variants, evaluate_checkpoint, parse_variants, prepare_data,
                         train_variant, write_comparison)
from .inference import METHODS
from .model import PADDINGS, FeatureNet
from .predict import predict_to_csv
from .preprocess import preprocess
from .report import markdown_table, write_report
from .train_config import TrainConfig
from .trainer import TrainingDiverged

# Exceptions that mean bad input (a message and exit status 2, not a traceback): the data commands
# also count an occupied or unwritable --out as such.
INPUT_ERRORS = (ValueError, FileNotFoundError)
DATA_INPUT_ERRORS = (ValueError, OSError)
HEAD_ALIASES = {"cnn": "softmax", "softmax": "softmax", "ocnn": "ordinal", "ordinal": "ordinal",
                "scnn": "loglinear", "loglinear": "loglinear", "ccnn": "copula", "copula": "copula"}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except (*args.input_errors, TrainingDiverged) as exc:  # a message, not a traceback
        print(f"ccnn {args.command}: error: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, TrainingDiverged) else 2  # 2: bad input


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ccnn", description="Copula CNN for facial action unit intensity estimation.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_data_commands(commands)
    _add_model_commands(commands)
    return parser


def _add_command(subparsers, name, func, input_errors=INPUT_ERRORS, **kwargs) -> argparse.ArgumentParser:
    """A command's parser; `func(args)` runs it and `input_errors` are reported as bad input."""
    parser = subparsers.add_parser(name, **kwargs)
    parser.set_defaults(func=func, input_errors=input_errors)
    return parser


# ---- data commands ---------------------------------------------------------------------------------------
def _add_data_commands(subparsers) -> None:
    synth = _add_command(
        subparsers, "synth", cmd_synth, DATA_INPUT_ERRORS,
        help="write the built-in synthetic AU data set (images, labels.csv, meta.json)",
        description="Draw grayscale synthetic faces whose action units move with ordinal, imbalanced, "
                    "temporally smooth and mutually dependent intensities (docs/data.md).")
    synth.add_argument("--out", required=True, type=Path, help="output folder")
    synth.add_argument("--context", default="disfa", choices=["disfa", "fera", "pain"],
                       help="AU set and dependency structure to mimic (default: disfa)")
    synth.add_argument("--subjects", type=int, default=27, help="number of subjects (default: 27)")
    synth.add_argument("--frames", type=int, default=200, help="frames per subject (default: 200)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    synth.add_argument("--size", type=int, default=128, help="image side in pixels (default: 128)")
    synth.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    synth.add_argument("--overwrite", action="store_true",
                       help="replace a data set made with other parameters in --out")
    synth.add_argument("--contact-sheet", type=Path, default=None, metavar="PNG",
                       help="also write an overview PNG (AUs x levels, plus sample frames)")

    pre = _add_command(
        subparsers, "preprocess", cmd_preprocess, DATA_INPUT_ERRORS,
        help="align, normalise and cache the faces of a data set",
        description="Eye centres (saved, landmarks or Haar cascades) -> similarity transform to "
                    "reference eye positions -> crop/resize -> per-image contrast normalisation; "
                    "cached as memory-mapped .npy plus manifest.json.")
    pre.add_argument("data", type=Path, help="data set folder or CSV (synthetic, generic CSV, DISFA, "
                                              "FERA2015 or UNBC-McMaster layout)")
    pre.add_argument("--size", type=int, default=96, help="output side in pixels (default: 96)")
    pre.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    pre.add_argument("--cache", type=Path, default=None,
                     help="cache folder (default: <data>/.ccnn_cache if writable, else ~/.cache/ccnn)")
    pre.add_argument("--on-missing", default="face-box", choices=["face-box", "skip"],
                     help="frames whose eyes are not found: align from the face box, or drop them")
    pre.add_argument("--dtype", default="float32", choices=["float32", "float16"])
    pre.add_argument("--quiet", action="store_true", help="no progress bar")


def cmd_synth(args) -> int:
    kept = not args.overwrite and existing_parameters(args.out) == parameters(
        args.context, args.subjects, args.frames, args.seed, args.size)
    start = time.perf_counter()
    out = generate_synthetic(args.out, context=args.context, subjects=args.subjects, frames=args.frames,
                             seed=args.seed, image_size=args.size, workers=args.workers,
                             progress=_progress(args),
                             overwrite=args.overwrite)
    seconds = time.perf_counter() - start
    frames = args.subjects * args.frames
    if kept:
        print(f"{out} already holds this synthetic data set (same parameters): kept")
    else:
        print(f"synthetic {args.context} data set: {frames} frames of {args.size}x{args.size} in {out} "
              f"({seconds:.1f} s, {frames / max(seconds, 1e-9):.0f} frames/s)")
    if args.contact_sheet is not None:
        print(f"contact sheet: {contact_sheet(args.contact_sheet, seed=args.seed)}")
    return 0


def cmd_preprocess(args) -> int:
    ds = load_dataset(args.data)
    print(ds.summary())
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the report below says the same
        faces = preprocess(ds, size=args.size, cache_dir=args.cache, workers=args.workers,
                           progress=_progress(args), on_missing=args.on_missing, dtype=args.dtype)
    seconds = time.perf_counter() - start
    print(faces.report)
    print(f"cache: {faces.cache_path} ({seconds:.1f} s)")
    return 0


# ---- model commands --------------------------------------------------------------------------------------
def cmd_train(args) -> int:
    data = _prepare_data(args)
    config = _config_from_args(args)
    results, _ = train_variant(data, config, args.out, head=HEAD_ALIASES[args.head],
                               multi=bool(args.extra_data), resume=not args.no_resume)
    print(markdown_table(results))
    print(f"model: {Path(args.out) / 'model.pt'}; report: {Path(args.out) / 'results.md'}")
    return 0


def cmd_eval(args) -> int:
    metrics, dataset = evaluate_checkpoint(
        args.checkpoint, args.data, part=args.part, split=args.split, seed=args.seed, method=args.method,
        context=args.context, batch_size=args.batch_size, device=args.device, cache_dir=args.cache_dir,
        progress=_progress(args))
    name = args.name or Path(args.checkpoint).parent.name or "model"
    print(markdown_table({name: metrics}, title=f"{dataset} ({args.part}), decoding: {args.method}"))
    if args.out:
        write_report({name: metrics}, args.out, title=f"{name} on {dataset} ({args.part})")
    return 0


def cmd_predict(args) -> int:
    out, frames, found, written = predict_to_csv(
        args.checkpoint, args.inputs, args.out, args.method, args.context, args.device, args.annotate,
        args.batch_size, args.redetect_every)
    print(f"{frames} frames -> {out} ({found} with a face, {frames - found} without: success 0, no values)")
    if written:
        print(f"annotated: {', '.join(str(p) for p in written)}")
    return 0


def cmd_compare(args) -> int:
    variants = parse_variants(args.variants)
    data = _prepare_data(args)
    results, runs = compare_variants(variants, data, _config_from_args(args), args.out,
                                     resume=not args.no_resume)
    write_comparison(results, runs, args.out, title=f"{data.target}: test subjects")
    print(markdown_table(results, title=f"{data.target}: test subjects"))
    return 0


def cmd_demo(args) -> int:
    run_demo(args.out, quick=args.quick, seed=args.seed, device=args.device, progress=_progress(args))
    return 0


def _progress(args) -> bool:
    """Progress bars only on a terminal (a log file would fill with carriage-return frames)."""
    return not (getattr(args, "no_progress", False) or getattr(args, "quiet", False)) and sys.stderr.isatty()


def _prepare_data(args):
    return prepare_data(args.data, args.extra_data, args.split, args.val_fraction, args.image_size, args.seed,
                        args.cache_dir, _progress(args))


def _config_from_args(args) -> TrainConfig:
    return TrainConfig(
        mode=args.mode, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        lr_schedule=args.lr_schedule, momentum=args.momentum, grad_clip=args.grad_clip or None,
        pairwise_lr_scale=args.pairwise_lr_scale, pairwise_weight=args.pairwise_weight, l2=args.l2,
        samples_per_epoch=args.samples_per_epoch, ibb_unary_batches=args.ibb_unary_batches,
        ibb_pairwise_batches=args.ibb_pairwise_batches, ibb_reweight=args.ibb_reweight,
        patience=args.patience, prune_threshold=args.prune_threshold, decode=args.method, crop=args.crop,
        padding=args.padding, seed=args.seed, device=args.device, progress=_progress(args))


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


def _add_model_commands(subparsers) -> None:
    """train, eval, predict, compare and demo (`ccnn <command> --help` for each)."""
    p = _add_command(subparsers, "train", cmd_train, help="train one model (paper settings by default)",
                     description="Train a CNN/OCNN/SCNN/CCNN on a dataset, evaluate it on the test "
                                 "subjects, write model.pt, logs, plots and a report.")
    _add_data_args(p)
    _add_training_args(p)
    p.add_argument("--head", choices=sorted(HEAD_ALIASES), default="ccnn",
                   help="cnn (softmax), ocnn (ordinal), scnn (ordinal + log-linear pairwise), ccnn "
                        "(ordinal + Frank copula) (default: %(default)s)")
    p.add_argument("--out", required=True, help="output folder (resumed if it holds a checkpoint)")

    p = _add_command(subparsers, "eval", cmd_eval, help="evaluate a trained model (ICC, MAE per AU)",
                     description="Evaluate a model file on a dataset (or one part of its split).")
    p.add_argument("--checkpoint", required=True, help="model.pt (or best.pt) written by ccnn train")
    _add_data_args(p)
    p.set_defaults(split=None)  # the split saved in the checkpoint by ccnn train
    p.add_argument("--part", choices=["all", "train", "test"], default="test",
                   help="which part of the --split to evaluate on (default: %(default)s)")
    p.add_argument("--method", choices=["auto", *METHODS], default="auto", help="read-out (default: auto)")
    p.add_argument("--context", default=None, help="model dataset whose edges to use for an unknown dataset")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--name", default=None, help="model name in the table")
    p.add_argument("--out", default=None, help="also write results.md/.csv/.json here")

    p = _add_command(subparsers, "predict", cmd_predict,
                     help="AU intensities of images, folders or videos -> CSV",
                     description="Per-frame AU intensities with OpenFace-style columns (frame, face_id, "
                                 "timestamp, confidence, success, file, AU01_r, ..., AU01_c, ...), "
                                 "streamed: any video length in constant memory.")
    p.add_argument("--checkpoint", required=True, help="model.pt written by ccnn train")
    p.add_argument("inputs", nargs="+", help="image files, folders of images, or video files")
    p.add_argument("--out", required=True, help="CSV file to write")
    p.add_argument("--annotate", default=None, metavar="DIR",
                   help="also write annotated copies (PNG per image, AVI per video) into DIR")
    p.add_argument("--method", choices=["auto", *METHODS], default="auto", help="read-out (default: auto)")
    p.add_argument("--context", default=None, help="model dataset whose edges to use (default: the first)")
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=64, help="frames per network pass (default: %(default)s)")
    p.add_argument("--redetect-every", type=int, default=15, metavar="N",
                   help="videos: run the face search every N frames and follow the face in between "
                        "(also when it is lost); 1: search every frame (default: %(default)s)")

    p = _add_command(subparsers, "compare", cmd_compare,
                     help="train several variants on one split, print Table 1",
                     description="Train each variant with the same data, split and schedule "
                                 "and print the Table-1 style comparison.")
    _add_data_args(p)
    _add_training_args(p)
    p.add_argument("--variants", default="CNN,OCNN,SCNN,CCNN,CCNN-IT",
                   help=f"comma-separated from {sorted(VARIANTS)}; append (*) to also train on "
                        f"--extra-data (default: %(default)s)")
    p.add_argument("--out", required=True, help="output folder (one sub-folder per variant)")

    p = _add_command(
        subparsers, "demo", cmd_demo,
        help="the main job: train and compare all models on built-in synthetic data",
        description="Generate synthetic DISFA/FERA/pain-like data, train CNN, OCNN, SCNN, CCNN, CCNN-IT and "
                    "CCNN-IT(*), print the Table-1 comparison and write results.json and plots. "
                    "Sized for 10 minutes on 2 CPU cores.")
    p.add_argument("--out", default="runs/demo", help="output folder (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="a tiny version that runs in seconds (smoke test)")
    p.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    p.add_argument("--device", default="auto", help="'auto' (CUDA when present) or 'cpu'")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


if __name__ == "__main__":
    sys.exit(main())
