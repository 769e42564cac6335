"""The `ccnn` command line: each command's arguments and a thin `cmd_*` that calls the library.

    ccnn synth      --out DIR [--context disfa|fera|pain] ...     (ccnn.data.synthetic)
    ccnn preprocess DIR [--size 96] ...                           (ccnn.preprocess)
    ccnn cache      [DIR] [--clear [--older-than DAYS]]           (ccnn.cache)
    ccnn train      --data DIR [--extra-data DIR ...] --head ccnn --mode ibb --out runs/x
    ccnn eval       --checkpoint runs/x/model.pt --data DIR [--part test]
    ccnn compare    --data DIR --variants CNN,OCNN,CCNN,CCNN-IT --out runs/cmp   (ccnn.experiment)
    ccnn predict    --checkpoint runs/x/model.pt face.png frames/ clip.avi --out au.csv (ccnn.predict)
    ccnn demo       [--out DIR]      (ccnn.demo: everything above on built-in synthetic data)
    ccnn benchmark  [--out DIR]      (ccnn.benchmark: the paper's claims over 5 seeds, ccnn.seeds)

Bad input (options out of range, missing or unreadable files, a folder where a file is expected, no
disk space, ...) ends with `ccnn <command>: error: <what>, <which argument or file>, <what to do>` and
exit status 2, without a traceback unless --debug; a diverged run with status 1 (docs/reliability.md).
Without progress bars (stderr not a terminal, or --no-progress) each epoch and each data preparation
step is one line on stderr, and every warning is one `warning: ...` line (console.py).

Over 400 lines: the argument declarations and help texts of ten commands; the logic is elsewhere.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import traceback
import warnings
from pathlib import Path

from . import distributed
from .cache import cache_entries, cache_report, clear_cache, resolve_cache_dir
from .console import LOG, plain_warnings, show_lines
from .data.synthetic import contact_sheet, existing_parameters, generate_synthetic, parameters
from .benchmark import run_benchmark
from .demo import run_demo
from .device_pipeline import PIPELINES
from .experiment import (VARIANTS, compare_variants, evaluate_checkpoint, load_data, parse_variants,
                         prepare_data, train_variant, write_comparison)
from .inference import FRAME_TIME_LIMIT, METHODS, DecodeOptions, uncertified_report
from .model import PADDINGS, FeatureNet
from .options import USER_ERRORS, device, error_message, number
from .predict import predict_to_csv
from .preprocess import preprocess
from .report import markdown_table, write_report
from .run_folder import run_lock
from .seeds import compare_seeds, parse_seeds
from .seeds_report import seed_markdown
from .train_config import TrainConfig
from .train_step import AMP_MODES
from .trainer import TrainingDiverged

# Exceptions that mean bad input (a message and exit status 2, not a traceback): the data commands
# also count an occupied or unwritable --out as such.
INPUT_ERRORS = (ValueError, FileNotFoundError)
DATA_INPUT_ERRORS = (ValueError, OSError)
HEAD_ALIASES = {"cnn": "softmax", "softmax": "softmax", "ocnn": "ordinal", "ordinal": "ordinal",
                "scnn": "loglinear", "loglinear": "loglinear", "ccnn": "copula", "copula": "copula"}


# numeric option types: the range is checked at parse time and shown in --help
SEED, COUNT, SIZE = number(0, integer=True), number(1, integer=True), number(8, 1024, integer=True)
FRACTION, POSITIVE, NONNEG = number(0, 1, high_open=True), number(0, low_open=True), number(0)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    lines = None
    try:
        with _processes(args), plain_warnings():  # 'warning: ...', one line each
            # no bars: one line per epoch and data step (rank 0's)
            lines = None if _progress(args) or not distributed.is_main() else show_lines()
            return args.func(args) or 0
    except (*args.input_errors, *USER_ERRORS, TrainingDiverged, distributed.DistributedError) as exc:
        if args.debug:
            traceback.print_exc()
        who = f" (process {args.rank})" if getattr(args, "rank", 0) else ""
        print(f"ccnn {args.command}{who}: error: {error_message(exc)}", file=sys.stderr)
        return 2 if isinstance(exc, (*args.input_errors, *USER_ERRORS)) else 1  # 2: bad input
    except KeyboardInterrupt:
        print(f"ccnn {args.command}: interrupted (a training run resumes from its last checkpoint)",
              file=sys.stderr)
        return 130
    finally:
        if lines is not None:
            LOG.removeHandler(lines)


@contextlib.contextmanager
def _processes(args):
    """Under torchrun: train and compare run data-parallel in one process group, rank 0 alone printing;
    every other command refuses (it would run once per process)."""
    launch = distributed.launch_from_env()
    if launch is not None and args.command not in ("train", "compare"):
        raise ValueError(f"ccnn {args.command} runs in one process: launch it without torchrun (only "
                         f"train and compare run on several processes)")
    if launch is not None and args.batch_size % launch.world_size:  # before any data is prepared
        raise ValueError(f"--batch-size {args.batch_size} (the global batch) must be a multiple of the number "
                         f"of processes, {launch.world_size}")
    with distributed.process_group(args.device, args.dist_timeout) if launch else contextlib.nullcontext(
            (None, None)) as (launch, device), contextlib.ExitStack() as quiet:
        if launch is not None:
            args.device, args.rank = str(device), launch.rank
            if launch.rank:  # the others: no output but their errors
                quiet.enter_context(contextlib.redirect_stdout(quiet.enter_context(open(os.devnull, "w"))))
                quiet.enter_context(warnings.catch_warnings())
                warnings.simplefilter("ignore")
        yield


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
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    return parser


def _note(text: str) -> None:
    if text:
        print(text)


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
    synth.add_argument("--subjects", type=COUNT, default=27, help="number of subjects, >= 1 (default: 27)")
    synth.add_argument("--frames", type=COUNT, default=200, help="frames per subject, >= 1 (default: 200)")
    synth.add_argument("--seed", type=SEED, default=0, help="random seed, >= 0 (default: 0)")
    synth.add_argument("--size", type=number(32, 1024, integer=True), default=128,
                       help="image side in pixels, in [32, 1024] (default: 128)")
    synth.add_argument("--workers", type=COUNT, default=None, help="processes, >= 1 (default: all cores)")
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
    pre.add_argument("--size", type=SIZE, default=96, help="output side in pixels, in [8, 1024] (default: 96)")
    pre.add_argument("--workers", type=COUNT, default=None, help="processes, >= 1 (default: all cores)")
    pre.add_argument("--cache", type=Path, default=None,
                     help="cache folder (default: <data>/.ccnn_cache if writable, else ~/.cache/ccnn)")
    pre.add_argument("--on-missing", default="face-box", choices=["face-box", "skip"],
                     help="frames whose eyes are not found: align from the face box, or drop them")
    pre.add_argument("--dtype", default="float32", choices=["float32", "float16"])
    pre.add_argument("--quiet", action="store_true", help="no progress bar")

    cache = _add_command(subparsers, "cache", cmd_cache, help="list or clear pre-processed faces",
                         description="List the entries of a pre-processing cache (path, size, age, what "
                                     "they hold), or remove them with --clear.")
    cache.add_argument("folder", nargs="?", default=None,
                       help="a cache folder, or a data set folder (its .ccnn_cache) (default: "
                            "$CCNN_CACHE_DIR or ~/.cache/ccnn)")
    cache.add_argument("--clear", action="store_true", help="remove the entries")
    cache.add_argument("--older-than", type=NONNEG, default=None, metavar="DAYS",
                       help="with --clear: only entries last written more than DAYS days ago")


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
    ds = load_data(args.data, "DATA")
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


def cmd_cache(args) -> int:
    folder = resolve_cache_dir(args.folder)
    if args.clear:
        print(cache_report(folder, clear_cache(folder, args.older_than), removed=True))
    else:
        print(cache_report(folder, cache_entries(folder)))
    return 0


# ---- model commands --------------------------------------------------------------------------------------
def cmd_train(args) -> int:
    with run_lock(args.out):  # a second run on --out fails now, not after pre-processing
        data = _prepare_data(args)
        results, _ = train_variant(data, _config_from_args(args), args.out, head=HEAD_ALIASES[args.head],
                                   multi=bool(args.extra_data), resume=not args.no_resume,
                                   allow_changed_settings=args.allow_changed_settings)
    print(markdown_table(results))
    print(f"model: {Path(args.out) / 'model.pt'}; report: {Path(args.out) / 'results.md'}")
    return 0


def cmd_eval(args) -> int:
    options = DecodeOptions(method=args.method, time_limit=args.time_limit)
    metrics, dataset = evaluate_checkpoint(
        args.checkpoint, args.data, part=args.part, split=args.split, seed=args.seed, method=options,
        context=args.context, batch_size=args.batch_size, device=args.device, cache_dir=args.cache_dir,
        progress=_progress(args))
    _note(uncertified_report(options))
    name = args.name or Path(args.checkpoint).parent.name or "model"
    print(markdown_table({name: metrics}, title=f"{dataset} ({args.part}), decoding: {args.method}"))
    if args.out:
        write_report({name: metrics}, args.out, title=f"{name} on {dataset} ({args.part})")
    return 0


def cmd_predict(args) -> int:
    options = DecodeOptions(method=args.method, time_limit=args.time_limit)
    unreadable = []
    out, frames, found, written = predict_to_csv(
        args.checkpoint, args.inputs, args.out, options, args.context, args.device, args.annotate,
        args.batch_size, args.redetect_every, unreadable)
    _note(uncertified_report(options))
    print(f"{frames} frames -> {out} ({found} with a face, {frames - found} without: success 0, no values)")
    if written:
        print(f"annotated: {', '.join(str(p) for p in written)}")
    if unreadable:  # (the CSV holds every other frame: exit 2 after writing it)
        listed = "; ".join(f"{file!r}: {reason}" for file, reason in unreadable[:3])
        more = f" and {len(unreadable) - 3} more" if len(unreadable) > 3 else ""
        raise ValueError(f"{len(unreadable)} input file(s) could not be read ({listed}{more}); their rows in "
                         f"{out} have success 0")
    return 0


def cmd_compare(args) -> int:
    variants = parse_variants(args.variants)
    if args.seeds:
        with run_lock(args.out):
            summary = compare_seeds(variants, args.seeds, _data_of_seed(args), _config_from_args(args), args.out,
                                    resume=not args.no_resume, extra_adds_updates=args.extra_adds_updates)
        print(seed_markdown(summary))
        return 0
    with run_lock(args.out):
        data = _prepare_data(args)
        results, runs = compare_variants(variants, data, _config_from_args(args), args.out,
                                         resume=not args.no_resume,
                                         allow_changed_settings=args.allow_changed_settings,
                                         extra_adds_updates=args.extra_adds_updates)
        write_comparison(results, runs, args.out, title=f"{data.target}: test subjects")
    print(markdown_table(results, title=f"{data.target}: test subjects"))
    return 0


def cmd_benchmark(args) -> int:
    run_benchmark(args.out, seeds=args.seeds, quick=args.quick, device=args.device, progress=_progress(args),
                  replicates=args.replicates)
    return 0


def cmd_demo(args) -> int:
    run_demo(args.out, quick=args.quick, seed=args.seed, device=args.device, progress=_progress(args))
    return 0


def _progress(args) -> bool:
    """Progress bars only on a terminal (a log file would fill with carriage-return frames)."""
    return (not (getattr(args, "no_progress", False) or getattr(args, "quiet", False)) and sys.stderr.isatty()
            and distributed.is_main())


def _prepare_data(args):  # several processes: the first of each node fills the cache first
    return distributed.main_first(lambda: prepare_data(args.data, args.extra_data, args.split, args.val_fraction,
                                                       args.image_size, args.seed, args.cache_dir, _progress(args)))


def _data_of_seed(args):
    """prepare_data of the command's data for a given seed (ccnn compare --seeds)."""
    return lambda seed: prepare_data(args.data, args.extra_data, args.split, args.val_fraction, args.image_size,
                                     seed, args.cache_dir, _progress(args))


def _seed_list(text: str) -> list[int]:
    try:
        return parse_seeds(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error).removeprefix("--seeds: ")) from None


def _config_from_args(args) -> TrainConfig:
    return TrainConfig(
        mode=args.mode, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        lr_schedule=args.lr_schedule, momentum=args.momentum, grad_clip=args.grad_clip or None,
        pairwise_lr_scale=args.pairwise_lr_scale, pairwise_weight=args.pairwise_weight, l2=args.l2,
        samples_per_epoch=args.samples_per_epoch, ibb_unary_batches=args.ibb_unary_batches,
        ibb_pairwise_batches=args.ibb_pairwise_batches, ibb_reweight=args.ibb_reweight,
        patience=args.patience, min_epochs=args.min_epochs, prune_threshold=args.prune_threshold,
        decode=args.method, crop=args.crop,
        padding=args.padding, seed=args.seed, device=args.device, progress=_progress(args),
        pipeline=args.pipeline, amp=args.amp, compile=args.compile)


def _add_data_args(p, data_required=True):
    p.add_argument("--data", required=data_required,
                   help="dataset: a synthetic dataset folder or a generic CSV (see docs/data.md)")
    p.add_argument("--split", default="fraction:0.6667",
                   help="subject-independent train/test split: 'fraction:F' (a random fraction F of the "
                        "subjects for training), 'disfa-18/9' or 'fera-official' (default: %(default)s)")
    p.add_argument("--cache-dir", default=None, help="where pre-processed faces are cached")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the split, the initialisation and the "
                                                        "batches, >= 0 (default: %(default)s)")
    p.add_argument("--device", type=device, default="auto",
                   help="'auto' (CUDA when present), 'cpu', 'cuda' or 'cuda:N'")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _add_training_args(p):
    d = TrainConfig()
    p.add_argument("--extra-data", action="append", default=[], metavar="DIR",
                   help="an extra dataset trained on as well (shared unaries, its own edges); repeatable")
    p.add_argument("--val-fraction", type=FRACTION, default=0.2,
                   help="fraction of the training subjects held out for validation and early stopping, "
                        "in [0, 1) (0: none) (default: %(default)s)")
    p.add_argument("--image-size", type=SIZE, default=96,
                   help="aligned face size, in [8, 1024] (default: %(default)s)")
    p.add_argument("--padding", choices=PADDINGS, default=d.padding,
                   help=f"conv padding of the network; 'valid' needs --image-size >= "
                        f"{FeatureNet.min_image_size('valid')} and trains about 2x faster at 96 "
                        f"(default: %(default)s)")
    p.add_argument("--mode", choices=["joint", "ibb"], default=d.mode,
                   help="joint SGD, or iterative balanced batches (Algorithm 1) (default: %(default)s)")
    p.add_argument("--epochs", type=COUNT, default=d.epochs, help=">= 1 (default: %(default)s)")
    p.add_argument("--batch-size", type=COUNT, default=d.batch_size, help=">= 1 (default: %(default)s)")
    p.add_argument("--lr", type=POSITIVE, default=d.lr, help="SGD learning rate, > 0 (default: %(default)s)")
    p.add_argument("--lr-schedule", choices=["constant", "cosine"], default=d.lr_schedule,
                   help="constant (the paper) or cosine decay over the epochs (default: %(default)s)")
    p.add_argument("--momentum", type=FRACTION, default=d.momentum, help="in [0, 1) (default: %(default)s)")
    p.add_argument("--pairwise-lr-scale", type=NONNEG, default=d.pairwise_lr_scale,
                   help="learning rate of the pairwise parameters = lr * this, >= 0 (default: %(default)s)")
    p.add_argument("--pairwise-weight", type=NONNEG, default=d.pairwise_weight,
                   help="weight of the pairwise terms in the training loss, >= 0; 1 = the paper's Eq. 11 "
                        "(default: %(default)s)")
    p.add_argument("--grad-clip", type=number(0, none=True), default=d.grad_clip,
                   help="clip the gradient norm of each step to this, > 0, or 'none' (0 too: off) "
                        "(default: %(default)s)")
    p.add_argument("--l2", type=NONNEG, default=d.l2, help="L2 weight of the unary parameters, per AU, >= 0 "
                                                           "(default: %(default)s)")
    p.add_argument("--samples-per-epoch", type=COUNT, default=None,
                   help="CNN-updating samples per epoch, >= 1 (default: the training set size)")
    p.add_argument("--ibb-unary-batches", type=number(0, integer=True), default=d.ibb_unary_batches,
                   help="IBB step 2 batches per AU per iteration, >= 0 (default: %(default)s)")
    p.add_argument("--ibb-pairwise-batches", type=number(0, integer=True), default=d.ibb_pairwise_batches,
                   help="IBB step 3 batches per edge per iteration, >= 0 (default: %(default)s)")
    p.add_argument("--ibb-reweight", action=argparse.BooleanOptionalAction, default=d.ibb_reweight,
                   help="IBB steps 2 and 3: importance-weight the balanced batches back to the label "
                        "frequencies (default: %(default)s)")
    p.add_argument("--patience", type=COUNT, default=d.patience, help="early stopping patience in epochs, "
                                                                      ">= 1 (default: %(default)s)")
    p.add_argument("--min-epochs", type=number(0, integer=True), default=d.min_epochs,
                   help="never stop early before this many epochs, >= 0 (default: %(default)s)")
    p.add_argument("--prune-threshold", type=NONNEG, default=d.prune_threshold,
                   help="after training, drop edges with |theta| below this, finite >= 0 (default: %(default)s)")
    p.add_argument("--crop", type=number(0, 1, low_open=True), default=d.crop,
                   help="crop fraction, in (0, 1] (default: %(default)s)")
    p.add_argument("--method", choices=["auto", *METHODS], default="auto",
                   help="read-out for validation and test: AD3 MAP for structured models and argmax "
                        "otherwise ('auto'), or one of the others (default: %(default)s)")
    p.add_argument("--pipeline", choices=PIPELINES, default=d.pipeline,
                   help="training batches: 'device' (all faces on the training device, crops drawn there), "
                        "'loader' (per-sample loader, for data that does not fit) or 'auto' (device when the "
                        "faces take at most half of the free memory) (default: %(default)s)")
    p.add_argument("--amp", choices=AMP_MODES, default=d.amp,
                   help="mixed precision of the CNN: off, bf16 or fp16 (with loss scaling); heads, loss "
                        "and updates stay float32 (default: %(default)s)")
    p.add_argument("--compile", action="store_true", help="torch.compile the CNN (its first steps are slow)")
    p.add_argument("--no-resume", action="store_true",
                   help="start afresh even if OUT holds a checkpoint of an interrupted run")
    p.add_argument("--dist-timeout", type=POSITIVE, default=distributed.DEFAULT_TIMEOUT, metavar="SECONDS",
                   help="under torchrun: how long a process waits for the others in one exchange before the "
                        "run stops with an error, > 0 (default: %(default)s)")
    p.add_argument("--allow-changed-settings", action="store_true",
                   help="resume the run in OUT even if its settings or data differ from these (the change "
                        "is recorded in run.json and log.jsonl); without it such a resume is refused")


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
    p.add_argument("--batch-size", type=COUNT, default=256, help=">= 1 (default: %(default)s)")
    _add_time_limit(p)
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
    p.add_argument("--device", type=device, default="auto", help="'auto', 'cpu', 'cuda' or 'cuda:N'")
    p.add_argument("--batch-size", type=COUNT, default=64,
                   help="frames per network pass, >= 1 (default: %(default)s)")
    p.add_argument("--redetect-every", type=COUNT, default=15, metavar="N",
                   help="videos: run the face search every N frames and follow the face in between "
                        "(also when it is lost); 1: search every frame (default: %(default)s)")
    _add_time_limit(p)

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
    p.add_argument("--seeds", type=_seed_list, default=None,
                   help="train and evaluate every variant once per seed, e.g. 0,1,2 or 0-4 (replaces "
                        "--seed; out/seed<N>/ per seed), and report mean, standard deviation and paired "
                        "differences with 95%% bootstrap intervals (seeds.md, .csv, .json, .png)")
    p.add_argument("--extra-adds-updates", action="store_true",
                   help="a (*) variant keeps the target's CNN updates per epoch (the extra datasets add "
                        "updates instead of sharing the target's)")

    p = _add_command(
        subparsers, "benchmark", cmd_benchmark,
        help="the benchmark protocol: every model to its validation plateau over 5 seeds, with the "
             "paper's claims tested (docs/benchmark)",
        description="Train CNN, OCNN, CCNN, CCNN-IT, CCNN-IT(*) and SCNN-IT on built-in synthetic data "
                    "until validation stops improving, once per seed; report mean and spread, the "
                    "paper's claims with 95%% bootstrap intervals and verdicts, and the learned copula "
                    "against the generator's Kendall tau. About 90 minutes on 2 CPU cores; resumable.")
    p.add_argument("--out", default="runs/benchmark", help="output folder (default: %(default)s)")
    p.add_argument("--seeds", type=_seed_list, default=None, help="seeds, e.g. 0-4 (default: 0-4)")
    p.add_argument("--quick", action="store_true", help="a tiny version that runs in minutes (smoke test)")
    p.add_argument("--replicates", type=COUNT, default=2000, help="bootstrap replicates (default: %(default)s)")
    p.add_argument("--device", type=device, default="auto", help="'auto' (CUDA when present) or 'cpu'")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")

    p = _add_command(
        subparsers, "demo", cmd_demo,
        help="the main job: train and compare all models on built-in synthetic data",
        description="Generate synthetic DISFA/FERA/pain-like data, train CNN, OCNN, SCNN, CCNN, CCNN-IT and "
                    "CCNN-IT(*), print the Table-1 comparison and write results.json and plots. "
                    "Sized for 10 minutes on 2 CPU cores.")
    p.add_argument("--out", default="runs/demo", help="output folder (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="a tiny version that runs in seconds (smoke test)")
    p.add_argument("--seed", type=SEED, default=0, help=">= 0 (default: %(default)s)")
    p.add_argument("--device", type=device, default="auto", help="'auto' (CUDA when present) or 'cpu'")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _add_time_limit(p) -> None:
    p.add_argument("--time-limit", type=number(0, low_open=True, none=True), default=FRAME_TIME_LIMIT,
                   help="--method exact: seconds of search per frame, > 0 or 'none' (no limit); a frame "
                        "that runs out keeps the best labelling found and is counted as not certified "
                        "(default: %(default)s)")


if __name__ == "__main__":
    sys.exit(main())
