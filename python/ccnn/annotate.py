"""Annotated copies of the inputs of `ccnn predict --annotate`: each frame in colour with the face
box (green: eyes detected, cyan: tracked, orange: face-box fallback), the eye centres, and a panel
of AU bars (intensity 0..5) sized to the frame; a PNG per image, an .avi per video at the source's
frame rate. Frames are written as they come, so annotating a long video needs no more memory.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np

from .face_alignment import DETECTED, FACE_BOX, GIVEN, TRACKED

BOX_COLOURS = {DETECTED: (60, 200, 60), GIVEN: (60, 200, 60), TRACKED: (220, 200, 40), FACE_BOX: (0, 140, 255)}
DEFAULT_FPS = 25.0  # when a video does not say its frame rate


def draw_annotation(frame, row: dict, aus, eyes=None, box=None, status=None) -> np.ndarray:
    """A BGR copy of `frame` (gray or BGR) with the face box, the eyes and the AU bars of `row`."""
    canvas = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR) if frame.ndim == 2 else frame.copy()
    h, w = canvas.shape[:2]
    unit = max(1.0, min(h, w) / 480.0)  # 1 at 480 px: sizes scale with the frame
    thick = max(1, int(round(2 * unit)))
    if box is not None:
        x, y, bw, bh = (int(v) for v in box)
        cv2.rectangle(canvas, (x, y), (x + bw, y + bh), BOX_COLOURS.get(status, (200, 200, 200)), thick)
    if eyes is not None:
        for ex, ey in np.asarray(eyes):
            cv2.drawMarker(canvas, (int(round(ex)), int(round(ey))), (0, 0, 255), cv2.MARKER_CROSS,
                           int(12 * unit), thick)
    _draw_bars(canvas, row, aus, unit)
    return canvas


def _draw_bars(canvas, row, aus, unit):
    line = int(round(18 * unit))
    font = 0.45 * unit
    label_w, bar_w = int(48 * unit), int(100 * unit)
    height = line * (len(aus) + 1) + 6
    panel = canvas[:min(height, canvas.shape[0]), :min(label_w + bar_w + int(40 * unit), canvas.shape[1])]
    panel[:] = (panel * 0.35).astype(np.uint8)  # darken behind the text so it reads on any face
    ok = bool(row.get("success"))
    title = f"frame {row['frame']}" + ("" if ok else ": no face")
    cv2.putText(canvas, title, (4, line - 4), cv2.FONT_HERSHEY_SIMPLEX, font,
                (255, 255, 255) if ok else (80, 80, 255), 1, cv2.LINE_AA)
    for i, au in enumerate(aus):
        y = line * (i + 2)
        value = row.get(f"AU{int(au):02d}_r", math.nan)
        cv2.putText(canvas, f"AU{int(au):02d}", (4, y - 4), cv2.FONT_HERSHEY_SIMPLEX, font, (255, 255, 255), 1,
                    cv2.LINE_AA)
        x0, top = label_w, y - line + 5
        cv2.rectangle(canvas, (x0, top), (x0 + bar_w, y - 3), (90, 90, 90), 1)
        if not math.isnan(value):
            filled = int(round(bar_w * min(max(value, 0.0), 5.0) / 5.0))
            colour = (0, int(255 - 40 * value), int(60 + 39 * value))  # green (0) to red (5)
            if filled:
                cv2.rectangle(canvas, (x0, top), (x0 + filled, y - 3), colour, -1)
            cv2.putText(canvas, f"{value:.1f}", (x0 + bar_w + 4, y - 4), cv2.FONT_HERSHEY_SIMPLEX, font,
                        (255, 255, 255), 1, cv2.LINE_AA)


def annotation_names(sources, is_video) -> dict:
    """{source path: output file name}: `<stem>_annotated.png` (`.avi` where is_video(source)), or,
    where two inputs would share that name (a/same.png, b/same.png), their paths below a common
    folder joined with '__' (a__same_annotated.png), so no output overwrites another."""
    def plain(source):
        return f"{source.stem}_annotated{'.avi' if is_video(source) else '.png'}"

    groups = {}
    for source in dict.fromkeys(Path(s) for s in sources):
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


class AnnotationWriter:
    """Writes annotated frames into out_dir as they come: `add(...)` per frame, `close()` at the end.
    `names`: {source path: file name} (annotation_names), else `<stem>_annotated.png/.avi`."""

    def __init__(self, out_dir, aus, names=None):
        self.out_dir, self.aus, self.names = Path(out_dir), list(aus), dict(names or {})
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.written: list[Path] = []
        self._videos: dict[str, cv2.VideoWriter] = {}

    def add(self, row: dict, frame, is_video: bool, fps: float = 0.0, eyes=None, box=None, status=None):
        canvas = draw_annotation(frame, row, self.aus, eyes, box, status)
        source = Path(row["file"])
        if not is_video:
            target = self.out_dir / self.names.get(source, f"{source.stem}_annotated.png")
            cv2.imwrite(str(target), canvas)
            self.written.append(target)
            return
        writer = self._videos.get(row["file"])
        if writer is None:
            target = self.out_dir / self.names.get(source, f"{source.stem}_annotated.avi")
            h, w = canvas.shape[:2]
            writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"MJPG"), fps or DEFAULT_FPS, (w, h))
            self._videos[row["file"]] = writer
            self.written.append(target)
        writer.write(canvas)

    def close(self) -> list[Path]:
        for writer in self._videos.values():
            writer.release()
        self._videos.clear()
        return self.written
