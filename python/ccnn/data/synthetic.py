"""The built-in synthetic AU data set: `generate_synthetic` writes images, labels.csv and meta.json.

One subject = one video of `frames` frames. Per subject: a face look (geometry and appearance),
AU labels from the factor copula of `synth_labels`, and smooth nuisance processes (head rotation,
scale, translation, illumination gain and gradient); per frame: fresh sensor noise. Everything is
drawn from generators seeded by (seed, context, subject, stream), and the noise of each frame from
its own seed, so the output does not depend on the number of workers.
"""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import cv2
import numpy as np

from .. import __version__
from ..arguments import int_argument
from .parallel import resolve_workers, run_tasks
from .synth_labels import (AU_NAMES, CONTEXT_AUS, context_aus, context_id, dependency_structure,
                           sample_subject_labels, smooth_gaussian_noise)
from .synth_render import (AU_MOTION, IOD_FRACTION, WEAK_AUS, FaceLook, eye_centres, look_to_dict,
                           random_look, render, render_and_write)

FORMAT = "ccnn-synthetic"
FORMAT_VERSION = 1
CHUNK_FRAMES = 100

# Nuisance ranges (per subject: uniform; within a video: smooth drift of the given amplitude).
NUISANCE = {
    "angle_deg": {"subject": [-10.0, 10.0], "drift": 3.0},
    "scale": {"subject": [0.9, 1.1], "drift": 0.03},
    "eye_midpoint_x": {"subject": [0.45, 0.55], "drift": 0.015},
    "eye_midpoint_y": {"subject": [0.38, 0.46], "drift": 0.015},
    "gain": {"subject": [0.7, 1.2], "drift": 0.05},
    "gradient_x": {"subject": [-0.3, 0.3], "drift": 0.05},
    "gradient_y": {"subject": [-0.2, 0.2], "drift": 0.0},
    "noise_sigma": {"subject": [3.0, 9.0], "drift": 0.0},
}
NUISANCE_SIGMA_FRAMES = 8.0


def subject_names(context: str, count: int) -> list[str]:
    """DISFA-like SN001.., FERA-like F001, M001, F002, .. (official split by parity), pain S001.."""
    if context == "fera":
        return [f"{'FM'[i % 2]}{i // 2 + 1:03d}" for i in range(count)]
    prefix = {"disfa": "SN", "pain": "S"}[context]
    return [f"{prefix}{i + 1:03d}" for i in range(count)]


def sample_nuisance(context: str, subject: int, frames: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """poses (frames, 4) = (angle, scale, cx, cy) and lights (frames, 4) = (gain, gx, gy, sigma)."""
    rng = np.random.default_rng([seed, context_id(context), subject, 1])
    drift = smooth_gaussian_noise(rng, (len(NUISANCE),), frames, NUISANCE_SIGMA_FRAMES)
    values = {}
    for k, (name, spec) in enumerate(NUISANCE.items()):
        base = rng.uniform(*spec["subject"])
        values[name] = base + spec["drift"] * drift[k] * (base if name in ("scale", "gain") else 1.0)
    poses = np.stack([values[n] for n in ("angle_deg", "scale", "eye_midpoint_x", "eye_midpoint_y")], 1)
    lights = np.stack([values[n] for n in ("gain", "gradient_x", "gradient_y", "noise_sigma")], 1)
    return poses, lights


def subject_look(context: str, subject: int, seed: int) -> FaceLook:
    return random_look(np.random.default_rng([seed, context_id(context), subject, 2]))


def noise_seeds(context: str, subject: int, frames: int, seed: int) -> list[int]:
    """Per-frame seeds of the sensor noise of one subject's video."""
    rng = np.random.default_rng([seed, context_id(context), subject, 3])
    return rng.integers(0, 2 ** 31 - 1, size=frames).tolist()


def existing_parameters(out_dir) -> dict | None:
    """The parameters of the synthetic data set in out_dir, or None when there is none."""
    try:
        return json.loads((Path(out_dir) / "meta.json").read_text()).get("parameters")
    except (OSError, ValueError, AttributeError):
        return None


def parameters(context, subjects, frames, seed, image_size) -> dict:
    return {"context": context, "subjects": subjects, "frames": frames, "seed": seed,
            "image_size": image_size, "format_version": FORMAT_VERSION}


def generate_synthetic(out_dir, context: str = "disfa", subjects: int = 27, frames: int = 200,
                       seed: int = 0, image_size: int = 128, workers: int | None = None,
                       progress: bool = False, overwrite: bool = False) -> Path:
    """Write the synthetic data set to out_dir: images/*.png, labels.csv, meta.json.

    If out_dir already holds a data set made with the same parameters it is kept as is (returns at
    once); one made with other parameters raises FileExistsError unless overwrite=True.
    """
    if context not in CONTEXT_AUS:
        raise ValueError(f"context must be one of {sorted(CONTEXT_AUS)}, got {context!r}")
    subjects = int_argument(subjects, "subjects", 1)
    frames = int_argument(frames, "frames", 1)
    seed = int_argument(seed, "seed", 0)
    image_size = int_argument(image_size, "image_size", 32, 1024)  # (the CLI's --size range)
    workers = resolve_workers(workers)
    out = Path(out_dir)
    params = parameters(context, subjects, frames, seed, image_size)
    meta_path = out / "meta.json"
    if meta_path.exists():
        old = existing_parameters(out)
        if old == params and (out / "labels.csv").exists() and not overwrite:
            return out
        if not overwrite:
            raise FileExistsError(f"{out} already holds a synthetic data set with parameters {old}; "
                                  "pass overwrite=True (CLI: --overwrite) or another directory")
    if overwrite:
        shutil.rmtree(out / "images", ignore_errors=True)
        for name in ("labels.csv", "meta.json"):
            (out / name).unlink(missing_ok=True)
    (out / "images").mkdir(parents=True, exist_ok=True)

    aus = context_aus(context)
    names = subject_names(context, subjects)
    tasks, rows, looks = [], [], {}
    for s, name in enumerate(names):
        levels = sample_subject_labels(context, s, frames, seed)
        poses, lights = sample_nuisance(context, s, frames, seed)
        eyes = eye_centres(poses, image_size)
        look = look_to_dict(subject_look(context, s, seed))
        looks[name] = look
        files = [f"images/{name}_{f:04d}.png" for f in range(frames)]
        frame_seeds = noise_seeds(context, s, frames, seed)
        for f in range(frames):
            rows.append([files[f], name, f"synth-{context}", f, *levels[f].tolist(),
                         *np.round(eyes[f].ravel(), 4).tolist()])
        for start in range(0, frames, CHUNK_FRAMES):
            part = slice(start, start + CHUNK_FRAMES)
            tasks.append({"size": image_size, "look": look, "aus": aus, "levels": levels[part],
                          "poses": poses[part], "lights": lights[part], "noise_seeds": frame_seeds[part],
                          "paths": [str(out / p) for p in files[part]]})
    run_tasks(render_and_write, tasks, workers, progress, desc=f"synth {context}",
              unit_counts=[len(t["paths"]) for t in tasks])

    with open(out / "labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "subject", "dataset", "frame", *[f"AU{au:02d}" for au in aus],
                         "eye_left_x", "eye_left_y", "eye_right_x", "eye_right_y"])
        writer.writerows(rows)
    meta = {
        "format": FORMAT, "parameters": params, "name": f"synth-{context}", "ccnn_version": __version__,
        "aus": aus, "au_names": {str(au): AU_NAMES[au] for au in aus}, "levels": 6,
        "subjects": names, "frames_per_subject": frames,
        "files": {"images": "images/<subject>_<frame>.png (grayscale uint8)",
                  "labels": "labels.csv: image,subject,dataset,frame,AU..,eye_left_x,eye_left_y,"
                            "eye_right_x,eye_right_y"},
        "eye_convention": "eye centres in pixels of the image, pixel centres at integer coordinates; "
                          "left = image-left",
        "dependency": dependency_structure(context),
        "appearance": {
            "au_motion_per_level": {str(au): AU_MOTION[au] for au in aus},
            "weak_aus": [au for au in WEAK_AUS if au in aus],
            "iod_fraction_at_scale_1": IOD_FRACTION,
            "nuisance": NUISANCE, "nuisance_sigma_frames": NUISANCE_SIGMA_FRAMES,
            "subject_looks": looks,
        },
    }
    tmp = out / "meta.json.tmp"
    tmp.write_text(json.dumps(meta, indent=1))
    tmp.replace(meta_path)
    return out


def contact_sheet(path, seed: int = 0, tile: int = 96, subjects: int = 6) -> Path:
    """PNG overview: one row per AU at levels 0..5 on a frontal face without nuisances, then rows of
    frames from several subjects with their nuisances (as written by generate_synthetic)."""
    aus = sorted(AU_NAMES)
    label_w = 4 * tile // 3
    candidates = [subject_look("disfa", s, seed) for s in range(30)]
    look = max((c for c in candidates if c.hair_style != 2 and abs(c.hair - c.background) > 60),
               key=lambda c: abs(c.skin - c.background))
    frontal, flat = np.array([0.0, 1.1, 0.5, 0.4]), np.array([1.0, 0.0, 0.0, 0.0])
    half = (len(aus) + 1) // 2
    blocks = []
    for block in (aus[:half], aus[half:]):
        rows = []
        for au in block:
            label = np.full((tile, label_w), 255, np.uint8)
            cv2.putText(label, f"AU{au}", (4, tile // 2 - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 0, 1,
                        cv2.LINE_AA)
            words = AU_NAMES[au].split()
            for k, text in enumerate((" ".join(words[:2]), " ".join(words[2:]))):
                cv2.putText(label, text, (4, tile // 2 + 12 + 12 * k), cv2.FONT_HERSHEY_SIMPLEX,
                            0.33, 60, 1, cv2.LINE_AA)
            rows.append(np.hstack([label] + [render(look, {au: lv}, frontal, flat, tile, None)
                                             for lv in range(6)]))
        blocks.append(np.vstack(rows))
    header = np.full((20, blocks[0].shape[1]), 255, np.uint8)
    for lv in range(6):
        cv2.putText(header, f"level {lv}", (label_w + lv * tile + tile // 4, 14),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4, 0, 1, cv2.LINE_AA)
    top = np.hstack([np.vstack([header, blocks[0]]), np.vstack([header, blocks[1]])])
    # random frames of several subjects, with nuisances and noise
    width = top.shape[1]
    per_row = width // tile
    strip = []
    for s in range(subjects):
        ctx = ("disfa", "fera", "pain")[s % 3]
        look_s = subject_look(ctx, s, seed)
        levels = sample_subject_labels(ctx, s, 200, seed)
        poses, lights = sample_nuisance(ctx, s, 200, seed)
        seeds = noise_seeds(ctx, s, 200, seed)
        for f in np.linspace(0, 199, max(1, per_row * 2 // subjects)).astype(int):
            strip.append(render(look_s, dict(zip(context_aus(ctx), levels[f].tolist())), poses[f],
                                lights[f], tile, seeds[f]))
    strip = strip[: (len(strip) // per_row) * per_row]
    rows = [np.hstack(strip[i:i + per_row]) for i in range(0, len(strip), per_row)]
    bottom = np.vstack(rows)
    bottom = np.pad(bottom, ((0, 0), (0, width - bottom.shape[1])), constant_values=255)
    title = np.full((22, width), 255, np.uint8)
    cv2.putText(title, "frames of several subjects (disfa / fera / pain contexts) with nuisances",
                (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, 0, 1, cv2.LINE_AA)
    sheet = np.vstack([top, title, bottom])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), sheet, [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise OSError(f"could not write {path}")
    return path
