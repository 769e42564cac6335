"""Prediction on raw input: per-frame AU intensities of images, folders of images and videos.

    table = predict_table("runs/ccnn-it/model.pt", ["clip.avi"])   # numpy structured array
    pandas.DataFrame(table)                                          # the same columns as the CSV

Each frame is aligned on its detected eyes (or, when they are not found, with the eyes at their
expected places in the whole frame) and read out like the test faces of training. The rows carry
OpenFace-style columns: frame (1-based per input), file, timestamp (s), success (both eyes found),
AU01_r, AU02_r, ... `write_csv` writes them (`ccnn predict --out`), `write_annotations` draws them
onto copies of the input (`--annotate`).
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

import cv2
import numpy as np
import torch

from .checkpoint import load_model
from .inference import DecodeOptions, infer_faces
from .metrics import au_name
from .model_setup import resolve_device
from .face_alignment import align_face, detect_eyes
from .preprocess import FaceArrays

VIDEO_SUFFIXES = {".avi", ".mp4", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".m4v"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm", ".ppm", ".webp"}
EXPECTED_EYES = ((0.3, 0.38), (0.7, 0.38))  # fractions of the frame: where eyes are assumed when not found
MIN_FRAME_SIDE, MAX_FRAME_ASPECT = 8, 20      # smaller or thinner frames cannot hold a face


def iter_frames(inputs):
    """Yield (source name, frame number, timestamp in s, grayscale uint8 image) for images, folders of
    images and videos."""
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise ValueError(f"input folder {str(path)!r} holds no images")
            yield from iter_frames(files)
        elif path.suffix.lower() in VIDEO_SUFFIXES:
            yield from _video_frames(path)
        elif path.is_file():
            image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if image is None:
                raise ValueError(f"cannot read image {str(path)!r}")
            check_frame(image, path)
            yield str(path), 1, 0.0, image
        else:
            raise ValueError(f"input {str(path)!r} does not exist")


def check_frame(image, source) -> None:
    """ValueError naming `source` for a frame too small or too thin to hold a face (the alignment
    needs a few pixels a side and a sane aspect ratio)."""
    h, w = image.shape[:2]
    if min(h, w) < MIN_FRAME_SIDE or max(h, w) > MAX_FRAME_ASPECT * min(h, w):
        raise ValueError(f"image {str(source)!r} is {w}x{h} pixels: a face image needs at least "
                         f"{MIN_FRAME_SIDE} pixels a side and at most {MAX_FRAME_ASPECT}:1 sides; "
                         f"give a face image or crop it")


def _video_frames(path: Path):
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


def align_frame(image, size):
    """Aligned, normalised face of one frame; (face, True) when both eyes were found, otherwise the
    whole frame aligned with eyes at their expected places (face, False)."""
    eyes = detect_eyes(image)
    if eyes is not None:
        return align_face(image, eyes, size=size), True
    h, w = image.shape[:2]
    guess = tuple((x * w, y * h) for x, y in EXPECTED_EYES)
    return align_face(image, guess, size=size), False


def predict_frames(model, inputs, crop=0.85, method="auto", context=None, device="cpu",
                   batch_size=64):
    """Per-frame AU intensities: a list of rows {frame, file, timestamp, success, AU01_r, ...} and the
    raw grayscale frames (for annotation)."""
    meta, faces, raw = [], [], []
    for source, k, t, image in iter_frames(inputs):
        face, ok = align_frame(image, model.image_size)
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
    options = method if isinstance(method, DecodeOptions) else DecodeOptions(method=method)
    preds, _, _ = infer_faces(model, [arrays], crop, options, batch_size,
                              torch.device(device), context=context)
    rows = []
    for (source, k, t, ok), values in zip(meta, preds):
        row = {"frame": k, "file": source, "timestamp": round(t, 4), "success": int(ok)}
        row.update({f"{au_name(au)}_r": round(float(v), 4) for au, v in zip(model.aus, values)})
        rows.append(row)
    return rows, raw


def load_predictor(checkpoint, device="auto"):
    """(model on `device`, its training crop) from a model file written by training."""
    model, payload = load_model(checkpoint)
    model.to(resolve_device(device))
    return model, payload.get("train_config", {}).get("crop", 0.85)


def predict_table(checkpoint, inputs, method="auto", context=None, device="auto") -> np.ndarray:
    """Per-frame AU intensities of `inputs` (images, folders of images, videos) as a numpy structured
    array with the columns of the CSV of `ccnn predict`; `pandas.DataFrame(table)` makes it a frame."""
    model, crop = load_predictor(checkpoint, device)
    rows, _ = predict_frames(model, inputs, crop, method, context, next(model.parameters()).device)
    return rows_to_table(rows)


def rows_to_table(rows) -> np.ndarray:
    """Rows of predict_frames -> a structured array (frame and success int64, file str, the rest float64)."""
    columns = list(rows[0])
    width = max(len(r["file"]) for r in rows)
    types = {"frame": np.int64, "success": np.int64, "file": f"U{width}"}
    dtype = [(c, types.get(c, np.float64)) for c in columns]
    return np.array([tuple(r[c] for c in columns) for r in rows], dtype=dtype)


def write_csv(rows, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _annotate(image, row, aus):
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


def annotation_names(sources) -> dict:
    """{source: output file name}: `<stem>_annotated.png` (`.avi` for a video), or, where two inputs
    would share that name (a/same.png, b/same.png), their paths below a common folder joined with
    '__' (a__same_annotated.png), so no output overwrites another."""
    def plain(source):
        return f"{source.stem}_annotated{'.avi' if source.suffix.lower() in VIDEO_SUFFIXES else '.png'}"

    sources = list(dict.fromkeys(Path(s) for s in sources))
    groups = {}
    for source in sources:
        groups.setdefault(plain(source), []).append(source)
    names = {}
    for name, group in groups.items():
        if len(group) == 1:
            names[group[0]] = name
            continue
        base = Path(os.path.commonpath([str(p.absolute().parent) for p in group]))
        for source in group:
            parts = source.absolute().relative_to(base).with_suffix("").parts
            names[source] = "__".join(parts) + plain(source)[len(source.stem):]
    return names


def write_annotations(rows, raw, aus, out_dir) -> list:
    """Annotated copies of the inputs in out_dir: a PNG per image, an .avi per video (named by
    annotation_names)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written, writers = [], {}
    names = annotation_names(row["file"] for row in rows)
    for row, image in zip(rows, raw):
        source = Path(row["file"])
        canvas = _annotate(image, row, aus)
        if source.suffix.lower() in VIDEO_SUFFIXES:
            if source not in writers:
                target = out_dir / names[source]
                h, w = canvas.shape[:2]
                writers[source] = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (w, h))
                written.append(target)
            writers[source].write(canvas)
        else:
            target = out_dir / names[source]
            cv2.imwrite(str(target), canvas)
            written.append(target)
    for writer in writers.values():
        writer.release()
    return written
