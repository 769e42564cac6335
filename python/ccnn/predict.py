"""Prediction on raw input: per-frame AU intensities of images, folders of images and videos, as a
stream in constant memory whatever the video's length.

    df = predict_dataframe("runs/ccnn-it/model.pt", ["clip.avi", "faces/"])   # pandas.DataFrame
    table = predict_table("runs/ccnn-it/model.pt", ["face.png"])              # numpy structured array

The pipeline: a reader thread decodes frames, finds the face (`face_alignment.find_face`, the rule of
training's pre-processing: Haar eyes, else eyes from the face box, else no face), follows it between
detections in videos (`face_tracking.FaceTracker`) and aligns it; the caller's thread batches the
aligned faces through the network, chunk by chunk, while the reader prepares the next chunk and a
decoder thread decodes the previous one (the decoder releases the GIL). Only a bounded queue of
frames and two chunks are ever held.

Rows follow OpenFace's conventions: frame (1-based per video, and per folder in sorted order; 1
for a single image), face_id, timestamp (s), confidence (0..1), success (a face was found), file,
AUxx_r (intensity 0..5) and AUxx_c (presence: intensity >= 1). Where success is 0 the AU values
are NaN (empty in the CSV). A file that cannot be read as an image or video (or a frame too small
to hold a face) gets such a row too and is reported (`unreadable`), so one bad file in a folder
does not stop the rest; a missing input or an empty folder stops everything before the first
frame. `write_csv` writes the rows (`ccnn predict --out`), `AnnotationWriter` draws them onto
copies of the input (`--annotate`).
"""
from __future__ import annotations

import csv
import itertools
import math
import os
import queue
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .annotate import AnnotationWriter, annotation_names
from .arguments import int_argument
from .checkpoint import load_model
from .face_alignment import NO_FACE, align_face, frame_problem
from .face_tracking import FaceTracker
from .inference import DecodeOptions, forward_faces
from .metrics import au_name
from .model_setup import resolve_device
from .preprocess import FaceArrays

VIDEO_SUFFIXES = {".avi", ".mp4", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".m4v", ".wmv"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm", ".ppm", ".webp"}
PRESENCE_LEVEL = 1  # AUxx_c = 1 where the intensity is at least this (FACS A or more)


@dataclass
class Frame:
    file: str          # the image, or the video the frame belongs to
    number: int        # 1-based frame number within its video or folder (1 for a single image)
    timestamp: float   # seconds from the start of the video (0 for images)
    image: np.ndarray | None  # BGR or gray uint8; None when unreadable
    is_video: bool = False
    fps: float = 0.0
    error: str | None = None  # why the file gives no image (then image is None)


def input_paths(inputs) -> list[Path]:
    """`inputs` (one path, or a list of them: str or os.PathLike) as a list of Paths."""
    if isinstance(inputs, (str, os.PathLike)):
        return [Path(inputs)]
    items = list(inputs) if hasattr(inputs, "__iter__") and not isinstance(inputs, (bytes, dict)) else None
    if items is None or not all(isinstance(item, (str, os.PathLike)) for item in items):
        raise ValueError(f"inputs must be a path or a list of paths (images, folders of images, videos), "
                         f"got {inputs!r}"[:300])
    return [Path(item) for item in items]


def input_files(inputs) -> list[Path]:
    """The files `inputs` stand for: images and videos as given, a folder's images in sorted order."""
    files = []
    for path in input_paths(inputs):
        files += _folder_images(path) if path.is_dir() else [path]
    return files


def _folder_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def iter_frames(inputs):
    """Yield a Frame for every image, every image of a folder (sorted) and every video frame, reading
    videos one frame at a time. A file that gives no usable image yields one Frame with `error` set.
    Missing inputs and folders without images raise ValueError before the first frame."""
    sources = []  # (path, its folder's images or None)
    for path in input_paths(inputs):
        if not path.exists():
            raise ValueError(f"input {str(path)!r} does not exist")
        files = _folder_images(path) if path.is_dir() else None
        if files == []:
            raise ValueError(f"input folder {str(path)!r} holds no images")
        sources.append((path, files))
    for path, files in sources:
        if files is not None:
            for k, file in enumerate(files, start=1):
                yield _image_frame(file, k)
        elif path.suffix.lower() in VIDEO_SUFFIXES:
            yield from _video_frames(path)
        else:
            yield _image_frame(path, 1)


def _image_frame(path: Path, number: int) -> Frame:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    error = "not an image OpenCV can read" if image is None else frame_problem(image)
    return Frame(str(path), number, 0.0, None if error else image, error=error)


def _video_frames(path: Path):
    cap = cv2.VideoCapture(str(path))
    fps = (cap.get(cv2.CAP_PROP_FPS) or 0.0) if cap.isOpened() else 0.0
    k = 0
    try:
        while cap.isOpened():
            ok, image = cap.read()
            if not ok:
                break
            k += 1
            problem = frame_problem(image) if k == 1 else None
            if problem:
                yield Frame(str(path), 1, 0.0, None, True, fps, error=problem)
                return
            yield Frame(str(path), k, (k - 1) / fps if fps > 0 else 0.0, image, True, fps)
    finally:
        cap.release()
    if k == 0:
        yield Frame(str(path), 1, 0.0, None, True, fps, error="no frame OpenCV can read")


@dataclass
class Found:
    frame: Frame
    face: np.ndarray | None      # aligned, normalised (size, size) float32, None without a face
    eyes: np.ndarray | None
    box: tuple | None
    status: int
    confidence: float


def iter_faces(inputs, size: int, redetect_every: int = 15, keep_images: bool = False):
    """Yield a Found per frame: the face found and aligned as in training (videos: followed between
    detections every `redetect_every` frames); frame images are dropped unless `keep_images`."""
    tracker, source = None, None
    for frame in iter_frames(inputs):
        if frame.error:
            yield Found(frame, None, None, None, NO_FACE, 0.0)
            continue
        if frame.file != source or not frame.is_video:
            tracker, source = FaceTracker(redetect_every if frame.is_video else 1), frame.file
        gray = frame.image if frame.image.ndim == 2 else cv2.cvtColor(frame.image, cv2.COLOR_BGR2GRAY)
        eyes, box, status, confidence = tracker.update(gray)
        face = align_face(gray, eyes, size=size) if eyes is not None else None
        if not keep_images:
            frame.image = None
        yield Found(frame, face, eyes, box, status if eyes is not None else NO_FACE, confidence)


def _threaded(iterable, maxsize: int):
    """Iterate `iterable` in a background thread, at most `maxsize` items ahead (errors re-raised)."""
    items, stop, done = queue.Queue(maxsize), threading.Event(), object()

    def produce():
        try:
            for item in iterable:
                while not stop.is_set():
                    try:
                        items.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            items.put(done)
        except BaseException as error:  # handed to the consumer
            items.put(error)

    thread = threading.Thread(target=produce, daemon=True, name="ccnn-predict-reader")
    thread.start()
    try:
        while True:
            item = items.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


def predict_stream(model, inputs, crop: float = 0.85, method: str = "auto", context=None, device="cpu",
                   batch_size: int = 64, redetect_every: int = 15, annotate=None, overlap: bool = True,
                   unreadable: list | None = None):
    """Yield one row per frame of `inputs` (dict, the CSV's columns) in input order. `annotate`: an
    AnnotationWriter that receives every frame as it is read out. With `overlap`, a chunk is decoded
    in a thread while the network runs on the next one (the rows are the same without it). A file
    that gives no usable image has a row with success 0 and goes, as (file, reason), into
    `unreadable` (without that list: a warning each)."""
    int_argument(batch_size, "batch_size", 1)  # (0 made one chunk of the whole input)
    int_argument(redetect_every, "redetect_every", 1)
    device = None if device is None else resolve_device(device)
    name = context or model.dataset_names[0]
    aus = list(model.aus)
    options = method if isinstance(method, DecodeOptions) else DecodeOptions(method=method)
    found = _threaded(iter_faces(inputs, model.image_size, redetect_every, annotate is not None),
                      maxsize=2 * batch_size)
    with ThreadPoolExecutor(1, thread_name_prefix="ccnn-predict-decoder") as decoder:
        pending = None  # the previous chunk and its decoding (at most one chunk waits)
        for chunk in _chunks(found, batch_size):
            solve = _network_pass(model, chunk, crop, options, context, name, aus, device)
            decoded = decoder.submit(solve) if overlap else _Done(solve())
            if pending is not None:
                yield from _rows(*pending, aus, annotate, unreadable)
            pending = chunk, decoded
        if pending is None:
            raise ValueError("no input frames")
        yield from _rows(*pending, aus, annotate, unreadable)


def _chunks(items, size: int):
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _network_pass(model, chunk, crop, options, context, name, aus, device):
    """The network over the chunk's faces now; returns the function that decodes them into (len(chunk),
    Q) values, NaN where no face was found."""
    ok = [i for i, f in enumerate(chunk) if f.face is not None]
    if not ok:
        return lambda: np.full((len(chunk), len(aus)), np.nan)
    arrays = FaceArrays(images=np.stack([chunk[i].face for i in ok]),
                        labels=np.full((len(ok), len(aus)), -1, dtype=np.int64),
                        subjects=np.array(["input"] * len(ok)), aus=aus, dataset=name, skipped=0)
    solve = forward_faces(model, [arrays], crop, options, device, context=context)

    def values():
        out = np.full((len(chunk), len(aus)), np.nan)
        out[ok] = solve()
        return out
    return values


class _Done:
    """A result already computed, with the `result()` of a Future."""

    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


def _rows(chunk, decoded, aus, annotate, unreadable):
    for item, v in zip(chunk, decoded.result()):
        row = make_row(item, aus, v)
        if item.frame.error:
            if unreadable is None:
                warnings.warn(f"{item.frame.file!r}: {item.frame.error}; its row has success 0")
            else:
                unreadable.append((item.frame.file, item.frame.error))
        elif annotate is not None:
            f = item.frame
            annotate.add(row, f.image, f.is_video, f.fps, item.eyes, item.box, item.status)
        yield row


def make_row(item: Found, aus, values) -> dict:
    f = item.frame
    row = {"frame": f.number, "face_id": 0, "timestamp": round(f.timestamp, 4),
           "confidence": round(float(item.confidence), 3), "success": int(item.face is not None), "file": f.file}
    row.update({f"{au_name(au)}_r": round(float(v), 4) for au, v in zip(aus, values)})
    row.update({f"{au_name(au)}_c": float(v >= PRESENCE_LEVEL) if not math.isnan(v) else math.nan
                for au, v in zip(aus, values)})
    return row


def load_predictor(checkpoint, device="auto"):
    """(model on `device`, its training crop) from a model file written by training."""
    model, payload = load_model(checkpoint)
    model.to(resolve_device(device))
    return model, payload.get("train_config", {}).get("crop", 0.85)


def predict_frames(model, inputs, crop=0.85, method="auto", context=None, device="cpu", batch_size=64,
                   redetect_every: int = 15) -> list:
    """Every row of predict_stream as a list (the rows are small: the frames are not kept)."""
    return list(predict_stream(model, inputs, crop, method, context, device, batch_size, redetect_every))


def predict_table(checkpoint, inputs, method="auto", context=None, device="auto") -> np.ndarray:
    """Per-frame AU intensities of `inputs` (images, folders of images, videos) as a numpy structured
    array with the columns of the CSV of `ccnn predict`."""
    model, crop = load_predictor(checkpoint, device)
    return rows_to_table(predict_frames(model, inputs, crop, method, context, next(model.parameters()).device))


def predict_dataframe(checkpoint, inputs, method="auto", context=None, device="auto"):
    """The same table as a pandas.DataFrame (one row per frame, the CSV's columns and types)."""
    import pandas as pd  # only this function needs pandas
    return pd.DataFrame(predict_table(checkpoint, inputs, method, context, device))


def rows_to_table(rows) -> np.ndarray:
    """Rows -> a structured array (frame, face_id and success int64, file str, the rest float64)."""
    columns = list(rows[0])
    width = max(len(r["file"]) for r in rows)
    types = {"frame": np.int64, "face_id": np.int64, "success": np.int64, "file": f"U{width}"}
    dtype = [(c, types.get(c, np.float64)) for c in columns]
    return np.array([tuple(r[c] for c in columns) for r in rows], dtype=dtype)


def write_csv(rows, path) -> tuple[Path, int, int]:
    """Write rows (any iterable, consumed as it comes) to a CSV; NaN is written as an empty cell. The
    file is created with the first row (an error before it leaves none). Returns (path, rows
    written, rows with success)."""
    path = Path(path)
    rows = iter(rows)
    first = next(rows, None)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = found = 0
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        for row in itertools.chain([first], rows) if first is not None else ():
            if count == 0:
                writer.writerow(list(row))
            writer.writerow(["" if isinstance(v, float) and math.isnan(v) else v for v in row.values()])
            count, found = count + 1, found + row["success"]
    return path, count, found


def predict_to_csv(checkpoint, inputs, out, method="auto", context=None, device="auto", annotate_dir=None,
                   batch_size: int = 64, redetect_every: int = 15, unreadable: list | None = None):
    """What `ccnn predict` does: stream the rows into `out` (and annotated copies into annotate_dir);
    files that give no image go into `unreadable` as (file, reason) (without it: a warning each).
    Returns (csv path, frames, frames with a face, annotated files)."""
    model, crop = load_predictor(checkpoint, device)
    writer = None
    if annotate_dir:
        names = annotation_names(input_files(inputs), lambda p: p.suffix.lower() in VIDEO_SUFFIXES)
        writer = AnnotationWriter(annotate_dir, model.aus, names)
    try:
        rows = predict_stream(model, inputs, crop, method, context, next(model.parameters()).device,
                              batch_size, redetect_every, writer, unreadable=unreadable)
        path, count, found = write_csv(rows, out)
    finally:
        written = writer.close() if writer is not None else []
    return path, count, found, written
