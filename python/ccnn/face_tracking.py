"""Following a face through a video: the Haar eye search (`face_alignment.find_face`, the same rule
as training's pre-processing) runs on a schedule, and the frames in between reuse its eyes, moved
by the face's translation found by template matching (a few milliseconds instead of ~100).

    tracker = FaceTracker()
    for frame in frames:
        eyes, box, status, confidence = tracker.update(frame)

A frame is re-detected when `redetect_every` frames have passed since the last detection, when the
template no longer matches (normalised correlation below `min_match`: the face turned, left or was
covered), or when the last search found no face. Tracked frames carry status TRACKED and the match
score as confidence.
"""
from __future__ import annotations

import cv2
import numpy as np

from .face_alignment import NO_FACE, STATUS_CONFIDENCE, TRACKED, _as_gray_uint8, find_face

TEMPLATE_WIDTH = 48  # the face box is matched at this width (pixels): cheap, and enough to follow it


class FaceTracker:
    """Eyes of successive frames of one video; `redetect_every=1` detects every frame."""

    def __init__(self, redetect_every: int = 15, min_match: float = 0.85, on_missing: str = "face-box"):
        if redetect_every < 1:
            raise ValueError(f"redetect_every must be >= 1, got {redetect_every}")
        self.redetect_every, self.min_match, self.on_missing = int(redetect_every), min_match, on_missing
        self.detections = 0          # Haar searches run so far
        self._since = 0              # frames since the last search
        self._state = None           # (eyes, box, status, template, scale) of the last good face

    def update(self, image):
        """(eyes (2, 2) or None, face box (x, y, w, h) or None, status, confidence) of the next frame."""
        gray = _as_gray_uint8(image)
        self._since += 1
        if self._state is not None and self._since < self.redetect_every:
            tracked = self._track(gray)
            if tracked is not None:
                return tracked
        return self._detect(gray)

    def _detect(self, gray):
        self.detections += 1
        self._since = 0
        eyes, box, status = find_face(gray, self.on_missing)
        if eyes is None or box is None:
            self._state = None  # nothing to follow (eyes without a face box are not tracked)
            return eyes, box, status, STATUS_CONFIDENCE[status] if eyes is not None else 0.0
        scale = min(1.0, TEMPLATE_WIDTH / box[2])
        template = _patch(gray, box, scale)
        self._state = (eyes, box, status, template, scale) if template is not None else None
        return eyes, box, status, STATUS_CONFIDENCE[status]

    def _track(self, gray):
        eyes, box, status, template, scale = self._state
        x, y, w, h = box
        margin = max(8, int(0.25 * w))  # how far the face may move between two frames (input pixels)
        search = (x - margin, y - margin, w + 2 * margin, h + 2 * margin)
        window = _patch(gray, search, scale)
        if window is None or window.shape[0] < template.shape[0] or window.shape[1] < template.shape[1]:
            return None
        scores = cv2.matchTemplate(window, template, cv2.TM_CCOEFF_NORMED)
        _, best, _, (bx, by) = cv2.minMaxLoc(scores)
        if not best >= self.min_match:
            return None
        x0, y0 = max(0, search[0]), max(0, search[1])
        dx, dy = x0 + bx / scale - x, y0 + by / scale - y
        moved_box = (int(round(x + dx)), int(round(y + dy)), w, h)
        return eyes + np.array([dx, dy]), moved_box, TRACKED, float(best)


def _patch(gray, box, scale):
    """The part of `gray` inside box (clipped to the image), resized by `scale`; None when empty."""
    x, y, w, h = (int(round(v)) for v in box)
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(gray.shape[1], x + w), min(gray.shape[0], y + h)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return None
    patch = gray[y0:y1, x0:x1]
    if scale < 1.0:
        patch = cv2.resize(patch, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return patch


__all__ = ["FaceTracker", "NO_FACE", "TRACKED"]
