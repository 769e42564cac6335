"""Face pre-processing of a data set (paper, section 4): every frame's eye centres -> similarity
transform of the two eye centres to reference positions -> crop/resize to the network input ->
per-image contrast normalisation (the per-image steps are `ccnn.face_alignment`). The random 85%
training crop is applied later, by `ccnn.data.FaceDataset`.

Eye centres come from the data set (saved eyes or landmarks) where known, else from OpenCV's Haar
face and eye cascades (`detect_eyes`). A frame whose eyes cannot be found is counted and, by
default, aligned from its detected face box (eyes at fixed fractions of the box); a frame without
a face either is dropped and counted. Results are cached on disk as memory-mapped .npy arrays plus a
manifest.json keyed by a hash of the inputs and settings, so a second call costs a few seconds.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .arguments import int_argument
from .cache import global_cache_dir
from .console import LOG
from .data.dataset import AUDataset, read_image, read_video_frames, split_video_path
from .data.parallel import run_tasks
from .face_alignment import (FACE_BOX, FACE_BOX_EYES, GIVEN, NO_FACE, REFERENCE_EYES, STATUS_NAMES,
                             UNREADABLE, align_face, alignment_matrix, find_face, frame_problem)

CACHE_VERSION = 2  # 2: labels left out of the key
CHUNK_IMAGES = 256
CHUNK_VIDEO_FRAMES = 600

# frame status codes: GIVEN, DETECTED, FACE_BOX, NO_FACE, UNREADABLE (ccnn.face_alignment)


# --- the cached, parallel pipeline -----------------------------------------------------------------------

@dataclass
class FaceArrays:
    """Aligned, normalised faces of a data set (memory-mapped from the cache when there is one).

    images (N, size, size) float32 (or float16); labels (N, Q) int64 (-1 = missing); subjects (N,);
    aus; dataset (name); skipped: frames whose eyes were not found (aligned from the face box or
    dropped). Extras: unreadable (frames dropped because they could not be read), source_index (N,)
    index of each face in the AUDataset, fallback (N,) bool (aligned from the face box),
    transforms (N, 2, 3) input-to-output matrices, report (a one-line summary), cache_path.
    """
    images: np.ndarray
    labels: np.ndarray
    subjects: np.ndarray
    aus: list[int]
    dataset: str
    skipped: int
    unreadable: int = 0
    source_index: np.ndarray | None = None
    fallback: np.ndarray | None = None
    transforms: np.ndarray | None = None
    report: str = ""
    cache_path: str | None = None
    issues: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def size(self) -> int:
        return int(self.images.shape[-1])

    def subset(self, idx, copy: bool = True) -> "FaceArrays":
        """The faces at integer indices or a boolean mask (images copied into memory, or with
        copy=False a `RowView` that reads the rows from the memory-mapped cache on access)."""
        idx = np.asarray(idx)
        idx = np.flatnonzero(idx) if idx.dtype == bool else idx.astype(np.int64)
        pick = lambda a: None if a is None else a[idx]  # noqa: E731
        images = np.asarray(self.images[idx]) if copy else RowView(self.images, idx)
        return FaceArrays(images, self.labels[idx], self.subjects[idx], list(self.aus),
                          self.dataset, self.skipped, self.unreadable, pick(self.source_index),
                          pick(self.fallback), pick(self.transforms), self.report, self.cache_path,
                          list(self.issues))


class RowView:
    """Rows `rows` of an array (a memory-mapped cache), read on access: a subset of the faces without
    copying them into memory. Indexing (an index, a slice or an index array, then any others) and
    np.asarray work as on the array of those rows."""

    def __init__(self, base, rows):
        self.base, self.rows = base, np.asarray(rows, np.int64)
        self.dtype, self.ndim = base.dtype, base.ndim
        self.shape = (len(self.rows), *base.shape[1:])

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key):
        first, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        rows = self.rows[first]
        return self.base[(int(rows), *rest)] if np.ndim(rows) == 0 else self.base[(rows, *rest)]

    def __array__(self, dtype=None, copy=None):
        out = np.asarray(self.base[self.rows])
        return out if dtype is None else out.astype(dtype)


def _preprocess_chunk(task: dict) -> dict:
    """Worker: align the frames of one chunk into the shared memory-mapped array; per frame it
    returns a status code and the transform. Frames that cannot be read are marked, never raised."""
    out = np.load(task["array"], mmap_mode="r+")
    size, rows = task["size"], task["rows"]
    status = np.full(len(rows), UNREADABLE, np.int8)
    transforms = np.full((len(rows), 2, 3), np.nan, np.float32)
    errors = []
    for k, image in _chunk_images(task, errors):
        if image is None:
            continue
        if frame_problem(image):  # (a frame too small to hold a face, as in ccnn predict)
            status[k] = NO_FACE
            continue
        try:
            eyes = task["eyes"][k]
            state = GIVEN
            if not np.isfinite(eyes).all() or np.hypot(*(eyes[1] - eyes[0])) < 1.0:  # unknown or unusable
                eyes, _, state = find_face(image, task["on_missing"])  # the rule of ccnn.predict too
                if eyes is None:
                    status[k] = NO_FACE
                    continue
            out[rows[k]] = align_face(image, eyes, size)
            transforms[k] = alignment_matrix(eyes, size)
            status[k] = state
        except (ValueError, cv2.error) as error:
            errors.append(f"{task['paths'][k]}: {error}")
    out.flush()
    return {"status": status, "transforms": transforms, "errors": errors[:5], "error_count": len(errors)}


def _chunk_images(task: dict, errors: list):
    """Yield (position in chunk, gray image or None) for every frame of a chunk."""
    paths = task["paths"]
    video = split_video_path(paths[0])
    if video is not None and all(split_video_path(p) and split_video_path(p)[0] == video[0] for p in paths):
        wanted: dict[int, list[int]] = {}
        for k, p in enumerate(paths):
            wanted.setdefault(split_video_path(p)[1], []).append(k)
        seen = set()
        for frame, image in read_video_frames(video[0], wanted):
            seen.add(frame)
            for k in wanted[frame]:
                yield k, image
        for frame, positions in wanted.items():
            if frame not in seen:
                errors.append(f"{paths[positions[0]]}: frame could not be decoded")
                for k in positions:
                    yield k, None
        return
    for k, path in enumerate(paths):
        try:
            yield k, read_image(path)
        except (ValueError, cv2.error) as error:
            errors.append(str(error))
            yield k, None


def _tasks(ds: AUDataset, array: str, size: int, on_missing: str) -> list[dict]:
    eyes = ds.eyes if ds.eyes is not None else np.full((len(ds), 2, 2), np.nan, np.float32)
    groups: dict[str, list[int]] = {}
    for i, path in enumerate(ds.image_paths):
        video = split_video_path(path)
        groups.setdefault(video[0] if video else "", []).append(i)
    tasks = []
    for key, indices in groups.items():
        if key:
            indices = sorted(indices, key=lambda i: split_video_path(ds.image_paths[i])[1])
        step = CHUNK_VIDEO_FRAMES if key else CHUNK_IMAGES
        for start in range(0, len(indices), step):
            rows = indices[start:start + step]
            tasks.append({"array": array, "size": size, "on_missing": on_missing, "rows": rows,
                          "paths": [ds.image_paths[i] for i in rows], "eyes": eyes[rows]})
    return tasks


def cache_key(ds: AUDataset, size: int, dtype: str, on_missing: str) -> str:
    """Hash of everything the aligned faces depend on: settings, sample list, subjects, eyes and the
    size and modification time of every input file. Not the labels: they are taken from `ds` at
    every load (`_load_cached`), so a label change reuses the aligned faces instead of re-aligning."""
    h = hashlib.sha256()
    settings = {"version": CACHE_VERSION, "size": size, "dtype": dtype, "on_missing": on_missing,
                "reference_eyes": REFERENCE_EYES, "face_box_eyes": FACE_BOX_EYES, "name": ds.name,
                "aus": ds.aus, "opencv": cv2.__version__}
    h.update(json.dumps(settings, sort_keys=True).encode())
    h.update("\n".join(ds.image_paths).encode())
    h.update("\n".join(ds.subjects.tolist()).encode())
    if ds.eyes is not None:
        h.update(np.ascontiguousarray(ds.eyes).tobytes())
    files = sorted({(split_video_path(p) or (p, 0))[0] for p in ds.image_paths})
    for path in files:
        try:
            stat = os.stat(path)
            h.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{path}:missing\n".encode())
    return h.hexdigest()


def default_cache_dir(ds: AUDataset) -> Path:
    """<data set folder>/.ccnn_cache when writable, else $CCNN_CACHE_DIR or ~/.cache/ccnn."""
    if ds.root and os.access(ds.root, os.W_OK):
        return Path(ds.root) / ".ccnn_cache"
    return global_cache_dir()


def preprocess(ds: AUDataset, size: int = 96, cache_dir=None, workers: int | None = None,
               progress: bool = True, on_missing: str = "face-box", dtype: str = "float32",
               part: str | None = None) -> FaceArrays:
    """Align and normalise every frame of `ds` (see the module doc), in parallel over `workers`
    processes (None: all cores), cached under cache_dir (None: `default_cache_dir(ds)`; False: no
    cache). on_missing: "face-box" (frames without found eyes are aligned from the face box when a
    face is found, else dropped) or "skip" (dropped). Counts of each case are in the result's
    `report` and are warned about when any frame was not aligned from known or detected eyes. part
    (e.g. "train") names the split in the progress bar and in the one line logged to the `ccnn`
    logger: "preprocess synth-disfa (train, 1200 frames) ..." (console.py)."""
    if not isinstance(ds, AUDataset):
        raise TypeError(f"ds must be an AUDataset, got {type(ds).__name__}")
    if len(ds) == 0:
        raise ValueError(f"{ds.name} has no samples to preprocess")
    size = int_argument(size, "size", 8, 1024)  # (the CLI's --size range)
    if on_missing not in ("face-box", "skip"):
        raise ValueError(f"on_missing must be 'face-box' or 'skip', got {on_missing!r}")
    if dtype not in ("float32", "float16"):
        raise ValueError(f"dtype must be 'float32' or 'float16', got {dtype!r}")
    key = cache_key(ds, size, dtype, on_missing)
    desc = f"preprocess {ds.name} ({part + ', ' if part else ''}{len(ds)} frames)"
    if cache_dir is False:
        with tempfile.TemporaryDirectory(prefix="ccnn-pre-") as tmp:
            faces = _build(ds, Path(tmp) / "out", size, dtype, on_missing, key, workers, progress, desc)
            faces.images = np.array(faces.images)  # into memory before the folder goes
            faces.cache_path = None
            return faces
    folder = Path(cache_dir if cache_dir is not None else default_cache_dir(ds)) / f"{_slug(ds.name)}-{size}-{key[:16]}"
    cached = _load_cached(folder, key, ds)
    if cached is not None:
        LOG.info(f"{desc}: cached in {folder}")
        return cached
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    faces = _build(ds, tmp, size, dtype, on_missing, key, workers, progress, desc)
    del faces
    shutil.rmtree(folder, ignore_errors=True)
    try:
        os.replace(tmp, folder)
    except OSError:  # another process finished the same entry first
        shutil.rmtree(tmp, ignore_errors=True)
    result = _load_cached(folder, key, ds)
    if result is None:
        raise OSError(f"the preprocessing cache {folder} could not be written or read back")
    return result


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name) or "data"


def _build(ds, folder: Path, size, dtype, on_missing, key, workers, progress, desc) -> FaceArrays:
    folder.mkdir(parents=True)
    raw_path = folder / "all_images.npy"
    np.lib.format.open_memmap(raw_path, mode="w+", dtype=np.dtype(dtype), shape=(len(ds), size, size)).flush()
    tasks = _tasks(ds, str(raw_path), size, on_missing)
    LOG.info(f"{desc} ...")
    start = time.perf_counter()
    results = run_tasks(_preprocess_chunk, tasks, workers, progress, desc=desc,
                        unit_counts=[len(t["rows"]) for t in tasks])
    LOG.info(f"{desc}: done in {time.perf_counter() - start:.1f} s")
    status = np.full(len(ds), UNREADABLE, np.int8)
    transforms = np.full((len(ds), 2, 3), np.nan, np.float32)
    errors, error_count = [], 0
    for task, result in zip(tasks, results):
        status[task["rows"]] = result["status"]
        transforms[task["rows"]] = result["transforms"]
        errors += result["errors"]
        error_count += result["error_count"]
    keep = np.flatnonzero(status <= FACE_BOX)
    if len(keep) == 0:
        raise ValueError(f"no frame of {ds.name} could be aligned: "
                         + ", ".join(f"{n} {STATUS_NAMES[s]}" for s, n in enumerate(np.bincount(status, minlength=5)) if n)
                         + (f"; first errors: {errors}" if errors else ""))
    if len(keep) == len(ds):
        os.replace(raw_path, folder / "images.npy")
    else:
        raw = np.load(raw_path, mmap_mode="r")
        final = np.lib.format.open_memmap(folder / "images.npy", mode="w+", dtype=raw.dtype,
                                          shape=(len(keep), size, size))
        for start in range(0, len(keep), 4096):
            final[start:start + 4096] = raw[keep[start:start + 4096]]
        final.flush()
        del raw, final
        raw_path.unlink()
    counts = np.bincount(status, minlength=5)
    summary = (f"preprocess {ds.name}: {len(ds)} frames -> {len(keep)} faces of {size}x{size}; "
               + ", ".join(f"{STATUS_NAMES[s]} {counts[s]}" for s in range(5)))
    np.save(folder / "labels.npy", ds.labels[keep])
    np.save(folder / "subjects.npy", ds.subjects[keep].astype(str))
    np.save(folder / "source_index.npy", keep)
    np.save(folder / "fallback.npy", status[keep] == FACE_BOX)
    np.save(folder / "transforms.npy", transforms[keep])
    manifest = {"key": key, "dataset": ds.name, "aus": ds.aus, "size": size, "dtype": dtype,
                "on_missing": on_missing, "frames": len(ds), "faces": int(len(keep)),
                "status_counts": dict(zip(STATUS_NAMES, map(int, counts))),
                "skipped": int(counts[FACE_BOX] + counts[NO_FACE]), "unreadable": int(counts[UNREADABLE]),
                "report": summary, "first_errors": errors[:10], "error_count": error_count,
                "issues": list(ds.issues), "reference_eyes": REFERENCE_EYES}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    if counts[FACE_BOX] + counts[NO_FACE] + counts[UNREADABLE]:
        warnings.warn(summary + (f"; first errors: {errors[:3]}" if errors else ""), stacklevel=3)
    return _load_cached(folder, key, ds)


def _load_cached(folder: Path, key: str, ds: AUDataset) -> FaceArrays | None:
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("key") != key:
        return None
    try:
        load = lambda name, **kw: np.load(folder / name, **kw)  # noqa: E731
        source_index = load("source_index.npy")
        return FaceArrays(  # labels and issues from ds: a label change does not make a new entry
            images=load("images.npy", mmap_mode="r"), labels=np.asarray(ds.labels)[source_index],
            subjects=load("subjects.npy"), aus=list(manifest["aus"]), dataset=manifest["dataset"],
            skipped=int(manifest["skipped"]), unreadable=int(manifest["unreadable"]),
            source_index=source_index, fallback=load("fallback.npy"),
            transforms=load("transforms.npy"), report=manifest["report"], cache_path=str(folder),
            issues=list(ds.issues))
    except (OSError, ValueError, KeyError, IndexError):
        return None  # an incomplete or damaged cache entry is rebuilt
