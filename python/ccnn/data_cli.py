"""`ccnn synth` and `ccnn preprocess`: the data commands of the ccnn CLI."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def add_data_commands(subparsers) -> None:
    synth = subparsers.add_parser(
        "synth", help="write the built-in synthetic AU data set (images, labels.csv, meta.json)",
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
    synth.set_defaults(func=run_synth)

    pre = subparsers.add_parser(
        "preprocess", help="align, normalise and cache the faces of a data set",
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
    pre.set_defaults(func=run_preprocess)


def _fail(command: str, error: Exception) -> int:
    print(f"ccnn {command}: error: {error}", file=sys.stderr)
    return 2


def run_synth(args) -> int:
    try:
        return _synth(args)
    except (ValueError, OSError) as error:  # bad arguments, an occupied or unwritable --out
        return _fail("synth", error)


def run_preprocess(args) -> int:
    try:
        return _preprocess(args)
    except (ValueError, OSError) as error:  # unknown layout, nothing usable, missing files
        return _fail("preprocess", error)


def _synth(args) -> int:
    from .data.synthetic import contact_sheet, existing_parameters, generate_synthetic, parameters

    kept = not args.overwrite and existing_parameters(args.out) == parameters(
        args.context, args.subjects, args.frames, args.seed, args.size)
    start = time.perf_counter()
    out = generate_synthetic(args.out, context=args.context, subjects=args.subjects, frames=args.frames,
                             seed=args.seed, image_size=args.size, workers=args.workers, progress=True,
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


def _preprocess(args) -> int:
    import warnings

    from .data.loaders import load_dataset
    from .preprocess import preprocess

    ds = load_dataset(args.data)
    print(ds.summary())
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the report below says the same
        faces = preprocess(ds, size=args.size, cache_dir=args.cache, workers=args.workers,
                           progress=not args.quiet, on_missing=args.on_missing, dtype=args.dtype)
    seconds = time.perf_counter() - start
    print(faces.report)
    print(f"cache: {faces.cache_path} ({seconds:.1f} s)")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="ccnn")
    add_data_commands(parser.add_subparsers(dest="command", required=True))
    parsed = parser.parse_args()
    raise SystemExit(parsed.func(parsed))
