"""Loaders of the benchmark sets in their distributed layouts (docs/data.md shows each tree), and
`load_dataset`, which recognises a layout and calls its loader (the generic CSV one included).

Every loader returns an `AUDataset`. Problems that affect part of the data (a missing label file,
a label out of range, labels for frames the video does not have, an image without labels) are
counted, recorded in `ds.issues` and warned about; a layout with nothing usable raises ValueError.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from .dataset import (MISSING, AUDataset, level_of, load_csv, report, video_frame_count,
                      video_frame_path)

DISFA_AUS = [1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26]
FERA2015_AUS = [6, 10, 12, 14, 17]
UNBC_AUS = [4, 6, 7, 9, 10, 12, 20, 25, 26, 43]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
LEFT_EYE_POINTS = slice(36, 42)   # 66/68-point mark-up (IntraFace / multi-PIE): the two eye contours
RIGHT_EYE_POINTS = slice(42, 48)
LAST_NUMBER = re.compile(r"(\d+)(?!.*\d)")


def load_dataset(path) -> AUDataset:
    """Load a data set, recognising its layout: a synthetic data set folder (meta.json +
    labels.csv), a CSV file or a folder with labels.csv, DISFA (ActionUnit_Labels/), UNBC-McMaster
    (Images/ + Frame_Labels/) or FERA2015 (AU06/... intensity folders)."""
    path = Path(path)
    if path.is_file():
        return load_csv(path)
    if not path.is_dir():
        raise FileNotFoundError(f"data set path {path} does not exist")
    if (path / "labels.csv").is_file():
        name = None
        if (path / "meta.json").is_file():
            try:
                meta = json.loads((path / "meta.json").read_text())
            except ValueError as error:
                raise ValueError(f"{path / 'meta.json'} is not valid JSON: {error}") from None
            name = meta.get("name") if isinstance(meta, dict) else None
            if not (isinstance(meta, dict) and (name is None or isinstance(name, str) and name)):
                raise ValueError(f"{path / 'meta.json'}: expected a JSON object whose 'name' (if any) is a "
                                 f"non-empty string, got {str(meta)[:80]}")
        return load_csv(path / "labels.csv", name=name)
    if (path / "ActionUnit_Labels").is_dir():
        return load_disfa(path)
    if (path / "Frame_Labels").is_dir() and (path / "Images").is_dir():
        return load_unbc(path)
    if find_fera_label_dirs(path):
        return load_fera2015(path)
    raise ValueError(f"{path}: unknown layout; expected labels.csv (synthetic or generic CSV), "
                     "ActionUnit_Labels/ (DISFA), Images/ + Frame_Labels/ (UNBC-McMaster) or "
                     "AU06/.. intensity folders (FERA2015)")


class _Counter(dict):
    def add(self, key: str, n: int = 1):
        self[key] = self.get(key, 0) + n


def _report_counts(ds: AUDataset, counts: _Counter, messages: dict) -> None:
    for key, n in counts.items():
        if n:
            report(ds, messages[key].format(n=n))


def _dataset_with_eyes(name: str, aus, paths, subjects, labels, eyes, root) -> AUDataset:
    """An AUDataset whose eye centres are kept when any frame has both (NaN marks the others)."""
    has_eyes = any(np.isfinite(e).all() for e in eyes)
    return AUDataset(name, aus, paths, np.array(subjects), np.array(labels, np.int64),
                     eyes=np.array(eyes, np.float32) if has_eyes else None, root=str(root))


def read_frame_intensity_file(path: Path, counts: _Counter) -> dict[int, int]:
    """{frame: level} of a "frame,intensity" text file (DISFA .txt, FERA2015 .csv). A header line,
    blank lines and malformed lines are skipped (malformed ones counted); invalid levels -> -1."""
    out = {}
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        for number, line in enumerate(f):
            parts = [p for p in re.split(r"[,\s;]+", line.strip()) if p]
            if not parts:
                continue
            try:
                frame, value = int(float(parts[0])), float(parts[1])
            except (ValueError, IndexError, OverflowError):  # (OverflowError: an infinite frame number)
                if number > 0:
                    counts.add("malformed")
                continue
            level = level_of(value)
            if level is None:
                counts.add("out_of_range")
                level = MISSING
            out[frame] = level
    return out


def eyes_from_landmarks(points: np.ndarray) -> np.ndarray:
    """(2, 2) eye centres (left = image-left) as the means of the two eye contours of a 66- or
    68-point mark-up (points 37-42 and 43-48, 1-based)."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim == 2 and points.shape[0] == 2 and points.shape[1] in (66, 68):
        points = points.T
    if points.ndim != 2 or points.shape[1] != 2 or points.shape[0] not in (66, 68):
        raise ValueError(f"landmarks must be (66|68, 2) points, got shape {points.shape}")
    eyes = np.stack([points[LEFT_EYE_POINTS].mean(0), points[RIGHT_EYE_POINTS].mean(0)])
    return eyes[np.argsort(eyes[:, 0])].astype(np.float32)


def _frame_number(path: Path) -> int | None:
    match = LAST_NUMBER.search(path.stem)
    return int(match.group(1)) if match else None


# --- DISFA ------------------------------------------------------------------------------------------

def load_disfa(root, landmarks: bool = True) -> AUDataset:
    """DISFA: ActionUnit_Labels/SN0xx/SN0xx_au<N>.txt ("frame,intensity", 1-based frames, 0..5)
    and Video_LeftCamera/LeftVideoSN0xx_comp.avi; samples are the labelled frames, image paths
    "<video>#<frame - 1>". Optional eyes from Landmark_Points/SN0xx/**/*.mat (a 66x2 array per
    frame; the last number in the file name is the frame, as in the labels)."""
    root = Path(root)
    label_root = root / "ActionUnit_Labels"
    if not label_root.is_dir():
        raise ValueError(f"{root} is not a DISFA folder: ActionUnit_Labels/ is missing")
    subjects = sorted(d.name for d in label_root.iterdir() if d.is_dir() and re.match(r"SN\d+$", d.name))
    if not subjects:
        raise ValueError(f"{label_root} has no SN0xx subject folders")
    counts = _Counter()
    paths, subject_col, labels, eyes = [], [], [], []
    for subject in subjects:
        per_au = []
        for au in DISFA_AUS:
            path = label_root / subject / f"{subject}_au{au}.txt"
            if path.is_file():
                per_au.append(read_frame_intensity_file(path, counts))
            else:
                counts.add("missing_label_file")
                per_au.append({})
        frames = sorted(set().union(*per_au))
        frames = [f for f in frames if f >= 1]
        if not frames:
            counts.add("subject_without_labels")
            continue
        video = root / "Video_LeftCamera" / f"LeftVideo{subject}_comp.avi"
        if not video.is_file():
            counts.add("missing_video")
            continue
        available = video_frame_count(video)
        if available == 0:
            counts.add("unreadable_video")
            continue
        if frames[-1] > available:
            kept = [f for f in frames if f <= available]
            counts.add("frames_beyond_video", len(frames) - len(kept))
            frames = kept
        subject_eyes = _disfa_landmarks(root, subject, counts) if landmarks else {}
        for f in frames:
            paths.append(video_frame_path(video, f - 1))
            subject_col.append(subject)
            labels.append([levels.get(f, MISSING) for levels in per_au])
            eyes.append(subject_eyes.get(f, np.full((2, 2), np.nan, np.float32)))
    if not paths:
        raise ValueError(f"{root}: no DISFA subject has both labels and a readable video "
                         f"(problems: {dict(counts)})")
    ds = _dataset_with_eyes("disfa", DISFA_AUS, paths, subject_col, labels, eyes, root)
    _report_counts(ds, counts, {
        "missing_label_file": "{n} AU label files missing (those AUs read as missing)",
        "malformed": "{n} malformed label lines skipped",
        "out_of_range": "{n} labels outside 0..5 read as missing",
        "subject_without_labels": "{n} subjects without any label skipped",
        "missing_video": "{n} subjects skipped because Video_LeftCamera/LeftVideoSN0xx_comp.avi is missing",
        "unreadable_video": "{n} subjects skipped because their video cannot be opened",
        "frames_beyond_video": "{n} labelled frames beyond the end of their video skipped",
        "bad_landmarks": "{n} landmark files unreadable (those frames use detected eyes)",
    })
    return ds


def _disfa_landmarks(root: Path, subject: str, counts: _Counter) -> dict[int, np.ndarray]:
    folder = root / "Landmark_Points" / subject
    if not folder.is_dir():
        return {}
    from scipy.io import loadmat

    out = {}
    for path in sorted(folder.rglob("*.mat")):
        frame = _frame_number(path)
        try:
            arrays = [v for k, v in loadmat(str(path)).items() if not k.startswith("__")]
            points = next(a for a in arrays if isinstance(a, np.ndarray) and a.ndim == 2
                          and sorted(a.shape) in ([2, 66], [2, 68]))
            out[frame] = eyes_from_landmarks(points)
        except Exception:  # a corrupt or unexpected .mat: counted, the frame falls back to detection
            counts.add("bad_landmarks")
    return out


# --- FERA2015 (BP4D) ------------------------------------------------------------------------------------

FERA_SEQUENCE_FILE = re.compile(r"^([FM]\d{3})_(T\d+)_AU(\d+)\.csv$", re.IGNORECASE)


def find_fera_label_dirs(root: Path) -> dict[int, Path]:
    """{AU: folder} of the FERA2015 intensity folders (AU06/, AU10/, ..) at root or one level down."""
    found = {}
    for parent in [root] + sorted(d for d in root.iterdir() if d.is_dir()):
        for d in sorted(parent.iterdir()) if parent.is_dir() else []:
            match = re.fullmatch(r"AU0*(\d+)", d.name, re.IGNORECASE)
            if d.is_dir() and match and int(match.group(1)) in FERA2015_AUS and any(d.glob("*.csv")):
                found.setdefault(int(match.group(1)), d)
    return found


def _fera_image_root(root: Path) -> Path | None:
    for candidate in [root] + sorted(d for d in root.iterdir() if d.is_dir()):
        if any(d.is_dir() and re.fullmatch(r"[FM]\d{3}", d.name) and any(x.is_dir() for x in d.iterdir())
               for d in candidate.iterdir()):
            return candidate
    return None


def load_fera2015(root, split: str | None = None, images=None) -> AUDataset:
    """FERA2015 (BP4D subset), AUs 6, 10, 12, 14, 17: intensity files AU06/F001_T1_AU06.csv
    ("frame,intensity", no header, 9 = unlabelled -> -1) and frames <images>/F001/T1/<frame>.jpg
    (any zero padding; `images` defaults to the folder under root holding the F001/.. folders).
    split: None (all), "train" (F001-F023 and M001-M017 odd) or "devel" (even numbers)."""
    root = Path(root)
    if split not in (None, "train", "devel"):
        raise ValueError(f"split must be None, 'train' or 'devel', got {split!r}")
    if not root.is_dir():
        raise FileNotFoundError(f"FERA2015 folder {root} does not exist")
    label_dirs = find_fera_label_dirs(root)
    if not label_dirs:
        raise ValueError(f"{root}: no FERA2015 intensity folders (AU06/, AU10/, AU12/, AU14/, AU17/ "
                         "holding F001_T1_AU06.csv style files)")
    image_root = Path(images) if images is not None else _fera_image_root(root)
    if image_root is None or not image_root.is_dir():
        raise ValueError(f"{root}: no BP4D frame folders (<subject>/<task>/<frame>.jpg) found; pass images=")
    counts = _Counter()
    sequences: dict[tuple[str, str], dict[int, dict[int, int]]] = {}
    for au, folder in label_dirs.items():
        for path in sorted(folder.glob("*.csv")):
            match = FERA_SEQUENCE_FILE.match(path.name)
            if not match or int(match.group(3)) != au:
                counts.add("foreign_file")
                continue
            key = (match.group(1).upper(), match.group(2).upper())
            sequences.setdefault(key, {})[au] = read_frame_intensity_file(path, counts)
    missing_aus = [au for au in FERA2015_AUS if au not in label_dirs]
    paths, subject_col, labels = [], [], []
    for (subject, task), per_au in sorted(sequences.items()):
        if split is not None and (int(subject[1:]) % 2 == 1) != (split == "train"):
            continue
        folder = image_root / subject / task
        files = {}
        if folder.is_dir():
            for f in folder.iterdir():
                if f.suffix.lower() in IMAGE_SUFFIXES and _frame_number(f) is not None:
                    files[_frame_number(f)] = f
        else:
            counts.add("missing_sequence")
        for frame in sorted(set().union(*per_au.values())):
            if frame not in files:
                counts.add("frame_without_image")
                continue
            paths.append(str(files[frame]))
            subject_col.append(subject)
            labels.append([per_au.get(au, {}).get(frame, MISSING) for au in FERA2015_AUS])
    if not paths:
        raise ValueError(f"{root}: no labelled FERA2015 frame has an image (split={split!r}; "
                         f"problems: {dict(counts)})")
    ds = AUDataset("fera2015", FERA2015_AUS, paths, np.array(subject_col), np.array(labels, np.int64),
                   root=str(root))
    if missing_aus:
        report(ds, f"no intensity folder for AUs {missing_aus} (read as missing)")
    _report_counts(ds, counts, {
        "foreign_file": "{n} files in the AU folders not named like F001_T1_AU06.csv ignored",
        "malformed": "{n} malformed label lines skipped",
        "out_of_range": "{n} labels outside 0..5 and not 9 read as missing",
        "missing_sequence": "{n} labelled sequences without a frame folder skipped",
        "frame_without_image": "{n} labelled frames without an image file skipped",
    })
    return ds


# --- UNBC-McMaster shoulder pain --------------------------------------------------------------------------

def read_unbc_facs(path: Path, counts: _Counter) -> list[int]:
    """Levels of UNBC_AUS from a FACS file: rows "AU intensity [onset offset]" in any float notation;
    AUs not listed are 0 (an empty file = neutral). AU43 is coded without intensity in UNBC: a row
    with intensity 0 reads as level 1 (eyes closed)."""
    levels = dict.fromkeys(UNBC_AUS, 0)
    for line in path.read_text(errors="replace").splitlines():
        parts = line.split()
        if not parts:
            continue
        try:
            au, value = int(round(float(parts[0]))), float(parts[1])
        except (ValueError, IndexError, OverflowError):  # (OverflowError: an infinite AU number)
            counts.add("malformed")
            continue
        if au not in levels:
            continue
        if au == 43 and value == 0:
            value = 1.0
        level = level_of(value)
        if level is None or level == MISSING:
            counts.add("out_of_range")
            level = MISSING
        levels[au] = level
    return [levels[au] for au in UNBC_AUS]


def load_unbc(root, landmarks: bool = True) -> AUDataset:
    """UNBC-McMaster: Images/<subject>/<sequence>/<sequence><frame>.png with FACS labels
    Frame_Labels/FACS/<subject>/<sequence>/<sequence><frame>_facs.txt; images without a label file
    are skipped (counted). Optional eyes from AAM_landmarks/<same path>_aam.txt (66 rows "x y")."""
    root = Path(root)
    image_root, label_root = root / "Images", root / "Frame_Labels" / "FACS"
    if not image_root.is_dir() or not label_root.is_dir():
        raise ValueError(f"{root} is not a UNBC-McMaster folder: expected Images/ and Frame_Labels/FACS/")
    counts = _Counter()
    paths, subject_col, labels, eyes = [], [], [], []
    for image in sorted(p for p in image_root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        relative = image.relative_to(image_root)
        if len(relative.parts) != 3:
            counts.add("misplaced_image")
            continue
        label_file = label_root / relative.with_name(relative.stem + "_facs.txt")
        if not label_file.is_file():
            counts.add("missing_label_file")
            continue
        paths.append(str(image))
        subject_col.append(relative.parts[0])
        labels.append(read_unbc_facs(label_file, counts))
        eye = np.full((2, 2), np.nan, np.float32)
        landmark_file = root / "AAM_landmarks" / relative.with_name(relative.stem + "_aam.txt")
        if landmarks and landmark_file.is_file():
            try:
                eye = eyes_from_landmarks(np.loadtxt(landmark_file, ndmin=2)[:, :2])
            except (ValueError, IndexError):
                counts.add("bad_landmarks")
        eyes.append(eye)
    if not paths:
        raise ValueError(f"{root}: no UNBC image has a FACS label file (problems: {dict(counts)})")
    ds = _dataset_with_eyes("unbc", UNBC_AUS, paths, subject_col, labels, eyes, root)
    _report_counts(ds, counts, {
        "misplaced_image": "{n} images not at Images/<subject>/<sequence>/<file> ignored",
        "missing_label_file": "{n} images without a Frame_Labels/FACS/..._facs.txt file skipped",
        "malformed": "{n} malformed FACS rows skipped",
        "out_of_range": "{n} FACS intensities outside 0..5 read as missing",
        "bad_landmarks": "{n} landmark files unreadable (those frames use detected eyes)",
    })
    return ds
