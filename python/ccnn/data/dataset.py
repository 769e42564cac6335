"""The sample record shared by every loader (`AUDataset`), the generic CSV loader, reading images and
video frames, and subject-independent splits."""
from __future__ import annotations

import csv
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

MAX_LEVEL = 5
MISSING = -1
UNLABELLED_CODE = 9  # FERA2015 / BP4D "not coded"; read as missing
VIDEO_SUFFIXES = (".avi", ".mp4", ".mov", ".mkv", ".wmv", ".mpg", ".mpeg", ".m4v")
AU_COLUMN = re.compile(r"^\s*AU\s*0*(\d+)(_r)?\s*$", re.IGNORECASE)  # AU06, AU6 or OpenFace's AU06_r
IMAGE_COLUMNS = ("image", "image_path", "path", "file", "filename")
EYE_COLUMNS = ("eye_left_x", "eye_left_y", "eye_right_x", "eye_right_y")


@dataclass
class AUDataset:
    """Face images with AU intensity labels, the record every loader returns.

    name: data set name ("disfa", "synth-disfa", ...); aus: AU numbers in the column order of
    `labels`; image_paths: one per sample, a file or "<video>#<0-based frame>"; subjects: (N,) str;
    labels: (N, Q) int64 in 0..5, -1 = not annotated; eyes: (N, 2, 2) float32
    [[x_left, y_left], [x_right, y_right]] in input pixels (left = image-left), NaN where unknown,
    or None. Extras: datasets (N,) str per-sample data set name when a CSV mixes several, root (the
    directory it was read from) and issues (problems met while loading: counted skips, repairs).
    """
    name: str
    aus: list[int]
    image_paths: list[str]
    subjects: np.ndarray
    labels: np.ndarray
    eyes: np.ndarray | None = None
    datasets: np.ndarray | None = None
    root: str | None = None
    issues: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.aus = [int(au) for au in self.aus]
        if len(set(self.aus)) != len(self.aus):
            raise ValueError(f"aus must be distinct, got {self.aus}")
        self.image_paths = [str(p) for p in self.image_paths]
        n = len(self.image_paths)
        self.subjects = np.asarray(self.subjects).astype(str)
        self.labels = np.asarray(self.labels)
        if self.subjects.shape != (n,):
            raise ValueError(f"subjects must have shape ({n},) to match image_paths, got {self.subjects.shape}")
        if self.labels.shape != (n, len(self.aus)):
            raise ValueError(f"labels must have shape ({n}, {len(self.aus)}) = (samples, aus), "
                             f"got {self.labels.shape}")
        if not np.issubdtype(self.labels.dtype, np.integer):
            raise TypeError(f"labels must be integers (-1 = missing, 0..5), got dtype {self.labels.dtype}")
        self.labels = self.labels.astype(np.int64)
        bad = (self.labels < MISSING) | (self.labels > MAX_LEVEL)
        if bad.any():
            raise ValueError(f"labels must be -1 (missing) or 0..{MAX_LEVEL}; found {np.unique(self.labels[bad])}")
        if self.eyes is not None:
            self.eyes = np.asarray(self.eyes, dtype=np.float32)
            if self.eyes.shape != (n, 2, 2):
                raise ValueError(f"eyes must have shape ({n}, 2, 2), got {self.eyes.shape}")
        if self.datasets is not None:
            self.datasets = np.asarray(self.datasets).astype(str)
            if self.datasets.shape != (n,):
                raise ValueError(f"datasets must have shape ({n},), got {self.datasets.shape}")

    def __len__(self) -> int:
        return len(self.image_paths)

    def subset(self, idx) -> "AUDataset":
        """The samples at integer indices or a boolean mask `idx`."""
        idx = np.asarray(idx)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise ValueError(f"boolean idx must have shape ({len(self)},), got {idx.shape}")
            idx = np.flatnonzero(idx)
        elif idx.size and not np.issubdtype(idx.dtype, np.integer):
            raise TypeError(f"idx must be integer indices or a boolean mask, got dtype {idx.dtype}")
        idx = idx.astype(np.int64).ravel()
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise IndexError(f"idx out of range for {len(self)} samples")
        return AUDataset(
            name=self.name, aus=list(self.aus), image_paths=[self.image_paths[i] for i in idx],
            subjects=self.subjects[idx], labels=self.labels[idx],
            eyes=None if self.eyes is None else self.eyes[idx],
            datasets=None if self.datasets is None else self.datasets[idx],
            root=self.root, issues=list(self.issues))

    def subject_list(self) -> list[str]:
        return sorted(set(self.subjects.tolist()))

    def summary(self) -> str:
        """Samples, subjects, and per AU the share of each level (and of missing labels)."""
        lines = [f"{self.name}: {len(self)} samples, {len(self.subject_list())} subjects, AUs {self.aus}"]
        for q, au in enumerate(self.aus):
            counts = np.bincount(self.labels[:, q] + 1, minlength=MAX_LEVEL + 2)
            shares = " ".join(f"{c / max(1, len(self)):.3f}" for c in counts[1:])
            lines.append(f"  AU{au:<3d} levels 0..5: {shares}   missing: {counts[0]}")
        lines += [f"  note: {issue}" for issue in self.issues]
        return "\n".join(lines)


def report(ds: AUDataset, issue: str) -> None:
    """Record a problem met while loading (and warn once), e.g. '3 frames without video skipped'."""
    ds.issues.append(issue)
    warnings.warn(f"{ds.name}: {issue}", stacklevel=3)


# --- images and video frames --------------------------------------------------------------------

def split_video_path(path: str) -> tuple[str, int] | None:
    """("clip.avi", 12) for "clip.avi#12", None for an ordinary image path."""
    stem, sep, frame = str(path).rpartition("#")
    if sep and frame.isdigit() and stem.lower().endswith(VIDEO_SUFFIXES):
        return stem, int(frame)
    return None


def video_frame_path(video: str | Path, frame: int) -> str:
    return f"{video}#{int(frame)}"


def to_gray(image: np.ndarray) -> np.ndarray:
    """uint8 grayscale of a gray, BGR or BGRA image."""
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY)
    if image.ndim != 2:
        raise ValueError(f"image must be (H, W) or (H, W, 3|4), got shape {image.shape}")
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    return image


def read_image(path) -> np.ndarray:
    """Grayscale uint8 (H, W) of an image file or a "<video>#<frame>" frame.
    Raises ValueError naming the file when it is missing, unreadable or corrupt."""
    video = split_video_path(str(path))
    if video is not None:
        frames = dict(read_video_frames(video[0], [video[1]]))
        if video[1] not in frames:
            raise ValueError(f"could not read frame {video[1]} of video {video[0]}")
        return frames[video[1]]
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        state = "is missing" if not Path(path).exists() else "is not a readable image"
        raise ValueError(f"image {path} {state}")
    return to_gray(image)


def read_video_frames(video: str, frames):
    """Yield (frame, gray uint8 image) for the wanted 0-based frame indices that can be decoded, in
    increasing order, reading the video sequentially (frames it cannot decode are left out)."""
    wanted = sorted(set(int(f) for f in frames))
    if not wanted:
        return
    capture = cv2.VideoCapture(str(video))
    try:
        if not capture.isOpened():
            return
        index = 0
        if wanted[0] > 0 and capture.set(cv2.CAP_PROP_POS_FRAMES, wanted[0]):
            index = int(capture.get(cv2.CAP_PROP_POS_FRAMES))
        pending = iter(wanted)
        target = next(pending)
        while target < index:  # seeking overshot: those frames cannot be read in order
            target = next(pending, None)
            if target is None:
                return
        while True:
            ok = capture.grab()
            if not ok:
                return
            if index == target:
                ok, image = capture.retrieve()
                if ok and image is not None:
                    yield index, to_gray(image)
                target = next(pending, None)
                if target is None:
                    return
            index += 1
    finally:
        capture.release()


def video_frame_count(video: str | Path) -> int:
    """Frames reported by the container (0 when the video cannot be opened)."""
    capture = cv2.VideoCapture(str(video))
    try:
        return int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
    finally:
        capture.release()


# --- generic CSV -----------------------------------------------------------------------------------

def parse_level(text: str) -> int | None:
    """Level 0..5, -1 for missing ("", "-1", "nan", "9"), None for anything else (invalid)."""
    text = text.strip()
    if text.lower() in ("", "nan", "na", "none", "-1", "-1.0"):
        return MISSING
    try:
        return level_of(float(text))
    except ValueError:
        return None


def level_of(value: float) -> int | None:
    """0..5 from a coded intensity, MISSING for 9 (unlabelled), None when invalid (not a whole
    number in 0..5, or not finite)."""
    if value == UNLABELLED_CODE:
        return MISSING
    if not math.isfinite(value) or abs(value - round(value)) > 1e-6 or not 0 <= round(value) <= MAX_LEVEL:
        return None
    return int(round(value))


def load_csv(path, name: str | None = None, check_files: bool = True) -> AUDataset:
    """A generic CSV: an image column (image, image_path, path, file or filename; relative paths
    are relative to the CSV's folder), a subject column, an optional dataset column, AU columns
    named like AU01 or AU1 (levels 0..5; empty, -1 or 9 = missing) and optional eye columns
    eye_left_x, eye_left_y, eye_right_x, eye_right_y. Invalid levels become missing and rows whose
    image file is missing are skipped; both are counted in `issues` (with a warning).

    The CSV of `ccnn predict` (OpenFace style) reads too: AUxx_r intensities are rounded to the
    nearest level (AUxx_c is ignored), a video's rows become its frames ("clip.avi#0", ...), and
    without a subject column each file (video or image) is its own subject."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CSV file {path} does not exist")
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise ValueError(f"{path} is empty: expected a header row and one row per image")
    header = [h.strip() for h in rows[0]]
    lower = [h.lower() for h in header]
    image_col = next((lower.index(c) for c in IMAGE_COLUMNS if c in lower), None)
    if image_col is None:
        raise ValueError(f"{path}: no image column; expected one of {IMAGE_COLUMNS}, found {header}")
    predicted = "success" in lower and "frame" in lower  # written by ccnn predict
    if "subject" not in lower and not predicted:
        raise ValueError(f"{path}: no 'subject' column (needed for subject-independent splits); found {header}")
    subject_col = lower.index("subject") if "subject" in lower else image_col
    frame_col = lower.index("frame") if predicted else None
    dataset_col = lower.index("dataset") if "dataset" in lower else None
    au_cols = [(i, int(m.group(1))) for i, h in enumerate(header) if (m := AU_COLUMN.match(h))]
    if not au_cols:
        raise ValueError(f"{path}: no AU columns; expected names like AU01 or AU1, found {header}")
    aus = [au for _, au in au_cols]
    if len(set(aus)) != len(aus):
        raise ValueError(f"{path}: AU columns repeat an AU: {[header[i] for i, _ in au_cols]}")
    eye_cols = [lower.index(c) for c in EYE_COLUMNS] if all(c in lower for c in EYE_COLUMNS) else None

    base = path.parent
    images, subjects, datasets, labels, eyes = [], [], [], [], []
    invalid, missing_files, short_rows = 0, 0, 0
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < len(header):
            short_rows += 1
            continue
        image = row[image_col].strip()
        if frame_col is not None and image.lower().endswith(VIDEO_SUFFIXES):
            image = video_frame_path(image, int(row[frame_col]) - 1)  # predict's frames are 1-based
        full = image if split_video_path(image) or Path(image).is_absolute() else str(base / image)
        target = split_video_path(full)[0] if split_video_path(full) else full
        if check_files and not Path(target).exists():
            missing_files += 1
            continue
        levels = []
        for i, _ in au_cols:
            level = parse_level(_round_intensity(row[i]) if header[i].lower().endswith("_r") else row[i])
            if level is None:
                invalid += 1
                level = MISSING
            levels.append(level)
        images.append(full)
        subjects.append(row[subject_col].strip())
        datasets.append(row[dataset_col].strip() if dataset_col is not None else "")
        labels.append(levels)
        if eye_cols is not None:
            eyes.append([_float_or_nan(row[i]) for i in eye_cols])
    if not images:
        raise ValueError(f"{path}: no usable rows ({missing_files} with a missing image file, "
                         f"{short_rows} too short)")
    names = sorted(set(datasets) - {""})
    ds = AUDataset(
        name=name or (names[0] if len(names) == 1 else path.stem), aus=aus, image_paths=images,
        subjects=np.array(subjects), labels=np.array(labels, dtype=np.int64),
        eyes=np.array(eyes, dtype=np.float32).reshape(-1, 2, 2) if eye_cols is not None else None,
        datasets=np.array(datasets) if len(names) > 1 else None, root=str(base))
    if invalid:
        report(ds, f"{invalid} labels outside 0..5 (not -1, 9 or empty) read as missing")
    if missing_files:
        report(ds, f"{missing_files} rows skipped because their image file is missing")
    if short_rows:
        report(ds, f"{short_rows} rows skipped because they have fewer cells than the header")
    return ds


def _round_intensity(text: str) -> str:
    """A predicted intensity (real, 0..5) -> the nearest level, as text for parse_level."""
    try:
        value = float(text)
    except ValueError:
        return text
    return str(int(min(max(round(value), 0), MAX_LEVEL))) if math.isfinite(value) else text


def _float_or_nan(text: str) -> float:
    """A finite float, else NaN (a missing eye coordinate)."""
    try:
        value = float(text)
    except ValueError:
        return float("nan")
    return value if math.isfinite(value) else float("nan")


# --- subject-independent splits ---------------------------------------------------------------------

FERA_SUBJECT = re.compile(r"^([FM])(\d+)$")


def split_subjects(ds: AUDataset, scheme) -> tuple[AUDataset, AUDataset]:
    """(train, test) with no subject in both.

    "disfa-18/9": the first 18 of DISFA's 27 subjects (sorted by name) train, the last 9 test;
    with another number n of subjects, the first round(2n/3).
    ("disfa-3fold", k) or "disfa-3fold-k": 3 folds of consecutive sorted subjects, fold k (0..2) tests.
    "fera-official": FERA2015 train = odd-numbered subjects (F001, F003, .., M001, ..), devel = even.
    ("fraction", f, seed): a random subject-independent split with a share f of subjects training.
    """
    subjects = ds.subject_list()
    if len(subjects) < 2:
        raise ValueError(f"a subject-independent split needs at least 2 subjects, {ds.name} has {len(subjects)}")
    if scheme == "disfa-18/9":
        train = subjects[: 18 if len(subjects) == 27 else int(round(2 * len(subjects) / 3))]
    elif (isinstance(scheme, tuple) and len(scheme) == 2 and scheme[0] == "disfa-3fold") or \
            (isinstance(scheme, str) and scheme.startswith("disfa-3fold-")):
        k = scheme[1] if isinstance(scheme, tuple) else scheme.rsplit("-", 1)[1]
        folds = subject_fold_lists(subjects, 3)
        k = int(k)
        if not 0 <= k < 3:
            raise ValueError(f"disfa-3fold fold must be 0, 1 or 2, got {k}")
        train = [s for i, fold in enumerate(folds) if i != k for s in fold]
    elif scheme == "fera-official":
        bad = [s for s in subjects if not FERA_SUBJECT.match(s)]
        if bad:
            raise ValueError(f"fera-official needs BP4D subject names like F001 or M002, got {bad[:5]}")
        train = [s for s in subjects if int(FERA_SUBJECT.match(s).group(2)) % 2 == 1]
    elif isinstance(scheme, tuple) and len(scheme) == 3 and scheme[0] == "fraction":
        share, seed = float(scheme[1]), int(scheme[2])
        if not 0 < share < 1:
            raise ValueError(f"fraction must be in (0, 1), got {share}")
        order = np.random.default_rng(seed).permutation(len(subjects))
        count = min(len(subjects) - 1, max(1, int(round(share * len(subjects)))))
        train = [subjects[i] for i in sorted(order[:count])]
    else:
        raise ValueError(f"unknown split scheme {scheme!r}; expected 'disfa-18/9', ('disfa-3fold', k), "
                         "'fera-official' or ('fraction', share, seed)")
    in_train = np.isin(ds.subjects, train)
    if in_train.all() or not in_train.any():
        raise ValueError(f"split {scheme!r} leaves the train or the test part of {ds.name} empty")
    return ds.subset(in_train), ds.subset(~in_train)


def subject_fold_lists(subjects: list[str], folds: int) -> list[list[str]]:
    """Sorted subjects cut into `folds` consecutive groups of near-equal size."""
    if not 2 <= folds <= len(subjects):
        raise ValueError(f"folds must be in 2..{len(subjects)} (the number of subjects), got {folds}")
    bounds = np.linspace(0, len(subjects), folds + 1).round().astype(int)
    ordered = sorted(subjects)
    return [ordered[bounds[i]:bounds[i + 1]] for i in range(folds)]


def subject_folds(ds: AUDataset, folds: int = 3) -> list[tuple[AUDataset, AUDataset]]:
    """[(train, test)] for k-fold cross-validation by subject (DISFA's 3-fold protocol for folds=3)."""
    groups = subject_fold_lists(ds.subject_list(), folds)
    return [(ds.subset(~np.isin(ds.subjects, g)), ds.subset(np.isin(ds.subjects, g))) for g in groups]
