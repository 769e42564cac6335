"""Face alignment of one image (paper, section 4): eye centres from OpenCV's Haar face and eye
cascades (`detect_eyes`), the similarity transform of the two eye centres to reference positions
(`alignment_matrix`), resampling to the network input and per-image contrast normalisation
(`align_face`). `ccnn.preprocess` runs these over a data set, `ccnn.predict` over raw frames.
"""
from __future__ import annotations

import os

import cv2
import numpy as np

from .arguments import int_argument
from .data.dataset import to_gray

REFERENCE_EYES = ((0.33, 0.35), (0.67, 0.35))  # eye centres in the output, fractions of its side
FACE_BOX_EYES = ((0.30, 0.38), (0.70, 0.38))  # typical eye centres inside a Haar frontal face box
STD_FLOOR = 1.0  # gray levels: a blank image normalises to zeros instead of dividing by ~0
MAX_DETECTION_SIDE = 640  # larger images are downscaled for the cascades (results in input pixels)
EYE_SEARCH_FACE_WIDTH = 160  # smaller faces are enlarged before looking for eyes


# --- eye detection ------------------------------------------------------------------------------------

_CASCADES: dict[str, "cv2.CascadeClassifier"] = {}


def _cascade(name: str):
    if name not in _CASCADES:
        if not hasattr(cv2, "CascadeClassifier") or not hasattr(cv2, "data"):
            raise RuntimeError("this OpenCV build has no CascadeClassifier (OpenCV 5 removed it from the "
                               "main wheels); install opencv-python-headless<5")
        classifier = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, name))
        if classifier.empty():
            raise RuntimeError(f"could not load the Haar cascade {name} from {cv2.data.haarcascades}")
        _CASCADES[name] = classifier
    return _CASCADES[name]


def _as_gray_uint8(image, name: str = "image") -> np.ndarray:
    image = np.asarray(image)
    if image.ndim not in (2, 3) or image.size == 0:
        raise ValueError(f"{name} must be a non-empty (H, W) or (H, W, C) array, got shape {image.shape}")
    if image.dtype != np.uint8:
        if not np.issubdtype(image.dtype, np.number):
            raise TypeError(f"{name} must be numeric, got dtype {image.dtype}")
        finite = image[np.isfinite(image)] if np.issubdtype(image.dtype, np.floating) else image
        scale = 255.0 if finite.size and np.issubdtype(image.dtype, np.floating) and finite.max() <= 1.0 else 1.0
        image = np.clip(np.nan_to_num(image.astype(np.float64) * scale), 0, 255).astype(np.uint8)
    return to_gray(image)


def _downscale(gray: np.ndarray) -> tuple[np.ndarray, float]:
    factor = min(1.0, MAX_DETECTION_SIDE / max(gray.shape))
    if factor < 1.0:
        gray = cv2.resize(gray, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    return gray, factor


def detect_eyes(image):
    """((x_left, y_left), (x_right, y_right)) eye centres in input pixel coordinates (left =
    image-left), or None when no face with two plausible eyes is found.

    Haar cascades: the largest frontal face (or, when none is found, the whole image as a face
    crop), then eyes in the upper part of the face; the pair chosen is one eye per half of the face,
    level, of similar size and at a plausible distance."""
    return detect_eyes_and_face(image)[0]


def detect_eyes_and_face(image):
    """(eyes or None, the largest face box (x, y, w, h) or None), in input pixels, from one
    face-cascade pass: the eye search of detect_eyes, and the box (the fallback when no eyes are
    found)."""
    gray = _as_gray_uint8(image)
    small, factor = _downscale(gray)
    equalised = cv2.equalizeHist(small)
    faces = _cascade("haarcascade_frontalface_default.xml").detectMultiScale(
        equalised, scaleFactor=1.1, minNeighbors=5, minSize=(max(24, min(small.shape) // 16),) * 2)
    boxes = sorted((tuple(f) for f in faces), key=lambda f: -f[2] * f[3])
    largest = tuple(int(round(v / factor)) for v in boxes[0]) if boxes else None
    for x, y, w, h in (boxes or [(0, 0, small.shape[1], small.shape[0])])[:2]:
        pair = _eye_pair(equalised, x, y, w, h)
        if pair is not None:
            return tuple((float(px / factor), float(py / factor)) for px, py in pair), largest
    return None, largest


def _eye_pair(gray: np.ndarray, x: int, y: int, w: int, h: int):
    top, bottom = y + int(0.12 * h), y + int(0.62 * h)
    roi = gray[top:bottom, x:x + w]
    if roi.size == 0:
        return None
    # the eye cascade's smallest window is 20 px: bring the face to >= EYE_SEARCH_FACE_WIDTH px
    zoom = max(1.0, EYE_SEARCH_FACE_WIDTH / w)
    if zoom > 1.0:
        roi = cv2.resize(roi, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_LINEAR)
    zw = int(w * zoom)
    eyes = _cascade("haarcascade_eye.xml").detectMultiScale(
        roi, scaleFactor=1.05, minNeighbors=4, minSize=(max(20, zw // 10),) * 2, maxSize=(zw // 2,) * 2)
    # box centre in the zoomed roi -> input pixels (pixel centres at integers)
    centres = [(x + (ex + ew / 2.0 + 0.5) / zoom - 0.5, top + (ey + eh / 2.0 + 0.5) / zoom - 0.5, ew / zoom)
               for ex, ey, ew, eh in eyes]
    mid = x + w / 2.0
    left = [c for c in centres if c[0] < mid]
    right = [c for c in centres if c[0] >= mid]
    best, best_cost = None, np.inf
    for lx, ly, lw in left:
        for rx, ry, rw in right:
            distance = rx - lx
            if not 0.25 * w <= distance <= 0.7 * w or abs(ry - ly) > 0.25 * distance:
                continue
            cost = abs(ry - ly) / w + abs(lw - rw) / w + abs(distance / w - 0.42)
            if cost < best_cost:
                best, best_cost = ((lx, ly), (rx, ry)), cost
    return best


# how the eyes of a frame were found (preprocess and predict share these codes)
GIVEN, DETECTED, FACE_BOX, NO_FACE, UNREADABLE, TRACKED = range(6)
STATUS_NAMES = ("eyes given", "eyes detected", "face-box fallback", "dropped: no face", "dropped: unreadable",
                "eyes tracked")
# the `confidence` column of ccnn predict per status (OpenFace: 0..1, how much to trust the face)
STATUS_CONFIDENCE = {GIVEN: 1.0, DETECTED: 0.95, FACE_BOX: 0.5, NO_FACE: 0.0, UNREADABLE: 0.0}


MIN_FRAME_SIDE, MAX_FRAME_ASPECT = 8, 20  # smaller or thinner frames cannot hold a face


def frame_problem(image) -> str | None:
    """Why a frame cannot hold a face (too small or too thin for the alignment), or None."""
    h, w = image.shape[:2]
    if min(h, w) < MIN_FRAME_SIDE or max(h, w) > MAX_FRAME_ASPECT * min(h, w):
        return (f"{w}x{h} pixels: a face image needs at least {MIN_FRAME_SIDE} pixels a side and at most "
                f"{MAX_FRAME_ASPECT}:1 sides")
    return None


def find_face(image, on_missing: str = "face-box"):
    """(eyes (2, 2) or None, face box or None, status): the face-finding rule of training and
    prediction alike. Eyes from the Haar cascades (DETECTED); when they are not found but a face is,
    eyes at fixed fractions of the face box (FACE_BOX, only with on_missing="face-box"); else NO_FACE."""
    found, box = detect_eyes_and_face(image)
    if found is not None:
        return np.asarray(found, np.float64), box, DETECTED
    if on_missing == "face-box" and box is not None:
        return eyes_from_face_box(box), box, FACE_BOX
    return None, box, NO_FACE


def eyes_from_face_box(box) -> np.ndarray:
    """(2, 2) fallback eye centres at fixed fractions (FACE_BOX_EYES) of a face box (x, y, w, h)."""
    x, y, w, h = box
    return np.array([[x + fx * w, y + fy * h] for fx, fy in FACE_BOX_EYES], dtype=np.float64)


# --- alignment -----------------------------------------------------------------------------------------

def _check_eyes(eyes) -> np.ndarray:
    eyes = np.asarray(eyes, dtype=np.float64)
    if eyes.shape != (2, 2):
        raise ValueError(f"eyes must be ((x_left, y_left), (x_right, y_right)), got shape {eyes.shape}")
    if not np.isfinite(eyes).all():
        raise ValueError(f"eyes must be finite, got {eyes.tolist()}")
    if np.hypot(*(eyes[1] - eyes[0])) < 1e-3:
        raise ValueError(f"the two eye centres coincide: {eyes.tolist()}")
    return eyes


def alignment_matrix(eyes, size: int = 96) -> np.ndarray:
    """2x3 similarity transform taking the eye centres (input pixels) to REFERENCE_EYES * size."""
    eyes = _check_eyes(eyes)
    src = eyes[:, 0] + 1j * eyes[:, 1]
    ref = np.asarray(REFERENCE_EYES, dtype=np.float64) * size
    dst = ref[:, 0] + 1j * ref[:, 1]
    a = (dst[1] - dst[0]) / (src[1] - src[0])
    b = dst[0] - a * src[0]
    return np.array([[a.real, -a.imag, b.real], [a.imag, a.real, b.imag]])


def normalise_contrast(image: np.ndarray) -> np.ndarray:
    """Per-image contrast normalisation: zero mean, unit standard deviation (float32)."""
    image = image.astype(np.float32)
    mean, std = cv2.meanStdDev(image)
    return (image - np.float32(mean[0, 0])) / np.float32(max(float(std[0, 0]), STD_FLOOR))


def align_face(image, eyes, size: int = 96) -> np.ndarray:
    """(size, size) float32 face: the similarity transform of `eyes` to the reference eye positions,
    bilinear resampling (area-averaged first when shrinking by more than 2x), borders replicated,
    then per-image contrast normalisation."""
    size = int_argument(size, "size", 8, 1024)
    gray = _as_gray_uint8(image)
    M = alignment_matrix(eyes, size)
    scale = float(np.hypot(M[0, 0], M[1, 0]))
    if scale < 0.5:  # shrink with area averaging first, so the warp does not alias
        height, width = gray.shape
        gray = cv2.resize(gray, None, fx=2.0 * scale, fy=2.0 * scale, interpolation=cv2.INTER_AREA)
        fx, fy = gray.shape[1] / width, gray.shape[0] / height
        # the resize maps pixel centres as x_small = (x + 0.5) * fx - 0.5
        small_from_input = np.array([[fx, 0.0, 0.5 * fx - 0.5], [0.0, fy, 0.5 * fy - 0.5], [0.0, 0.0, 1.0]])
        M = (np.vstack([M, [0.0, 0.0, 1.0]]) @ np.linalg.inv(small_from_input))[:2]
    warped = cv2.warpAffine(gray, M, (size, size), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
    return normalise_contrast(warped)
