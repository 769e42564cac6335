"""Benchmark of the data layer on CPU: synthetic generation and pre-processing frames/s at 96x96.

Checks correctness first (generation is identical with 1 and 2 workers; pre-processing puts the
saved eye centres on the reference positions and matches align_face frame by frame), then times
end to end (process start-up, rendering, PNG writing; reading, aligning, normalising, writing the
cache) with a warm-up run and the median of repeats, on 2 workers and, as the baseline of the
speed-up column, in one process (workers=1: the same work without worker processes). Runs on 2
cores (the process is pinned to two CPUs when the machine has more).

    python benchmarks/bench_data.py [--frames 6000] [--repeats 3] [--out DIR]

Results go to --out (default: a scratch folder); `--out benchmarks/results` updates the committed
data_cpu.{json,md}. Exits with status 1 when a bar is missed.
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np


GENERATION_BAR = 1000.0  # frames/s on 2 cores at 96x96
PREPROCESS_BAR = 300.0
SIZE = 96
CORES = 2


def pin_to_cores(count: int) -> list[int]:
    try:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) > count:
            os.sched_setaffinity(0, cpus[:count])
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(min(count, os.cpu_count() or 1)))


def check_correctness(work: Path) -> dict:
    from ccnn.data import generate_synthetic, load_dataset
    from ccnn.face_alignment import REFERENCE_EYES, align_face
    from ccnn.preprocess import preprocess

    one = generate_synthetic(work / "check1", subjects=3, frames=60, seed=11, image_size=SIZE, workers=1)
    two = generate_synthetic(work / "check2", subjects=3, frames=60, seed=11, image_size=SIZE, workers=2)
    assert (one / "labels.csv").read_bytes() == (two / "labels.csv").read_bytes(), "labels differ by workers"
    for name in sorted(os.listdir(one / "images"))[::17]:
        assert (one / "images" / name).read_bytes() == (two / "images" / name).read_bytes(), name
    ds = load_dataset(two)
    faces = preprocess(ds, size=SIZE, cache_dir=work / "check-cache", workers=2, progress=False)
    assert len(faces) == len(ds) and faces.skipped == 0 and faces.unreadable == 0
    mapped = np.einsum("nij,nkj->nki", faces.transforms[:, :, :2], ds.eyes) + faces.transforms[:, None, :, 2]
    eye_error = float(np.abs(mapped - np.array(REFERENCE_EYES) * SIZE).max())
    assert eye_error < 1e-3, f"saved eyes land {eye_error} px from the reference positions"
    for i in (0, 77, 179):
        direct = align_face(cv2.imread(ds.image_paths[i], cv2.IMREAD_GRAYSCALE), ds.eyes[i], SIZE)
        assert np.allclose(faces.images[i], direct, atol=1e-5), f"frame {i} differs from align_face"
    return {"workers_identical": True, "max_eye_error_px": eye_error, "frames_checked": len(ds)}


def cpu_seconds() -> float:
    """User + system time of this process and its finished children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(run) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of run()."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    run()
    return time.perf_counter() - wall, cpu_seconds() - cpu


def time_generation(work: Path, frames: int, repeats: int, workers: int) -> tuple[list[float], list[float]]:
    """Frames/s (wall) and frames per CPU-second of each timed run on `workers` workers."""
    from ccnn.data import generate_synthetic

    subjects = max(1, frames // 200)
    rates, per_cpu = [], []
    for r in range(repeats + 1):  # the first run warms up
        out = work / f"gen{workers}w{r}"
        wall, cpu = timed(lambda: generate_synthetic(out, subjects=subjects, frames=200, seed=r,
                                                     image_size=SIZE, workers=workers))
        if r:
            rates.append(subjects * 200 / wall)
            per_cpu.append(subjects * 200 / cpu)
        # Outputs are deleted only at the end: right after thousands of files are deleted, ext4 makes
        # creating new ones much slower for a while (it avoids reusing recently freed inodes).
    return rates, per_cpu


def best_window_frame_cost(work: Path, windows: int = 40, frames: int = 50) -> float:
    """Seconds per frame of the generator's worker (render + PNG write) in one process: the fastest
    of `windows` windows of `frames` frames, which is robust to other load on the machine."""
    import ccnn.data.synth_render as render
    from ccnn.data.synth_labels import CONTEXT_AUS, sample_subject_labels
    from ccnn.data.synthetic import noise_seeds, sample_nuisance, subject_look

    cv2.setNumThreads(1)
    total = windows * frames
    levels = sample_subject_labels("disfa", 0, total, 0)
    poses, lights = sample_nuisance("disfa", 0, total, 0)
    seeds = noise_seeds("disfa", 0, total, 0)
    look = render.look_to_dict(subject_look("disfa", 0, 0))
    (work / "best").mkdir()
    costs = []
    for w in range(windows):
        part = slice(w * frames, (w + 1) * frames)
        task = {"size": SIZE, "look": look, "aus": CONTEXT_AUS["disfa"], "levels": levels[part],
                "poses": poses[part], "lights": lights[part], "noise_seeds": seeds[part],
                "paths": [str(work / "best" / f"{w}_{k}.png") for k in range(frames)]}
        start = time.perf_counter()
        render.render_and_write(task)
        costs.append((time.perf_counter() - start) / frames)
    return min(costs)


def time_preprocessing(work: Path, repeats: int, workers: int) -> tuple[list[float], list[float], float, int]:
    """Frames/s, frames per CPU-second, the cached reload's seconds and the frame count of
    pre-processing the last generated data set on `workers` workers."""
    from ccnn.data import load_dataset
    from ccnn.preprocess import preprocess

    ds = load_dataset(work / f"gen{CORES}w{repeats}")
    rates, per_cpu = [], []
    for r in range(repeats + 1):
        cache = work / f"cache{workers}w{r}"
        wall, cpu = timed(lambda: preprocess(ds, size=SIZE, cache_dir=cache, workers=workers, progress=False))
        if r:
            rates.append(len(ds) / wall)
            per_cpu.append(len(ds) / cpu)
    start = time.perf_counter()
    preprocess(ds, size=SIZE, cache_dir=work / f"cache{workers}w{repeats}", workers=workers, progress=False)
    cached = time.perf_counter() - start
    return rates, per_cpu, cached, len(ds)


def time_detection(work: Path) -> dict:
    """Haar detect_eyes on generated frames (one process): its rate and hit rate."""
    from ccnn.data import load_dataset
    from ccnn.data.dataset import read_image
    from ccnn.face_alignment import detect_eyes

    ds = load_dataset(work / "check2")
    images = [read_image(p) for p in ds.image_paths[:120]]
    start = time.perf_counter()
    found = [detect_eyes(image) for image in images]
    seconds = time.perf_counter() - start
    hits = [i for i, e in enumerate(found) if e is not None]
    error = [np.abs(np.array(found[i]) - ds.eyes[i]).max() for i in hits]
    return {"frames_per_s": len(images) / seconds, "found_share": len(hits) / len(images),
            "median_error_px": float(np.median(error)) if error else None}


def stage(runs: list[float], per_cpu: list[float], baseline: list[float], bar: float) -> dict:
    median, one = statistics.median(runs), statistics.median(baseline)
    return {"median": median, "runs": runs, "frames_per_cpu_second": statistics.median(per_cpu),
            "one_process_median": one, "one_process_runs": baseline, "speedup": median / one,
            "bar": bar, "met": median >= bar}


def stage_row(name: str, s: dict) -> list:
    return [name, f"{s['median']:.0f}", ", ".join(f"{r:.0f}" for r in s["runs"]), f"{s['one_process_median']:.0f}",
            f"{s['speedup']:.2f}x", f"{s['frames_per_cpu_second']:.0f}", f">= {s['bar']:.0f}",
            "yes" if s["met"] else "NO"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=6000, help="frames per timed generation run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None, help="results folder (default: a scratch folder)")
    args = parser.parse_args(argv)
    out = args.out or tempfile.mkdtemp(prefix="ccnn-bench-data-results-")

    cpus = pin_to_cores(CORES)
    # imported here, not at the top: spawned workers import this script again, and common imports
    # torch, which would add seconds of start-up and CPU to every worker
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from common import environment, markdown_table, write_results
    import ccnn
    import torch

    env = environment("cpu", torch.get_num_threads())
    with tempfile.TemporaryDirectory(prefix="ccnn-bench-data-") as tmp:
        work = Path(tmp)
        correctness = check_correctness(work)
        generation = time_generation(work, args.frames, args.repeats, CORES)
        generation_one = time_generation(work, args.frames, args.repeats, 1)
        *preprocessing, cached_seconds, frames = time_preprocessing(work, args.repeats, CORES)
        preprocessing_one = time_preprocessing(work, args.repeats, 1)
        detection = time_detection(work)
        frame_cost = best_window_frame_cost(work)

    gen = stage(*generation, generation_one[0], GENERATION_BAR)
    pre = stage(*preprocessing, preprocessing_one[0], PREPROCESS_BAR)
    pre["frames"] = frames
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    result = {
        "benchmark": "data", "environment": env, "cores": len(cpus), "cpus": cpus,
        "image_size": SIZE, "frames_per_generation_run": max(1, args.frames // 200) * 200,
        "repeats": args.repeats, "correctness": correctness,
        "generation_frames_per_s": gen, "preprocessing_frames_per_s": pre,
        "load_average_1min_at_end": load,
        "preprocessing_cached_reload_s": cached_seconds,
        "generation_worker_best_window_ms_per_frame": frame_cost * 1e3,
        "generation_projected_frames_per_s_on_idle_cores": len(cpus) / frame_cost,
        "haar_detect_eyes_one_process": detection,
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "opencv": cv2.__version__,
                     "torch": torch.__version__, "ccnn": ccnn.__version__},
        "notes": "end to end: worker start-up, rendering and PNG writing (generation); reading, "
                 "alignment with saved eyes, contrast normalisation and writing the .npy cache "
                 "(pre-processing). Speed-up: 2 workers against one process (workers=1).",
    }
    det = detection
    header = ["stage", "frames/s (median)", "runs", "one process, frames/s (median)", "speed-up",
              "frames per CPU-second", "bar", "met"]
    rows = [stage_row(f"synthetic generation ({result['frames_per_generation_run']} frames, 2 workers)", gen),
            stage_row(f"pre-processing, saved eyes ({frames} frames, 2 workers)", pre),
            [f"generation worker alone, fastest of 40 windows of 50 frames ({frame_cost * 1e3:.2f} ms/frame): "
             f"projected for {len(cpus)} idle cores, before start-up", f"{len(cpus) / frame_cost:.0f}", "", "", "", "",
             "", ""],
            [f"Haar `detect_eyes`, one process (found {det['found_share']:.0%}, median error "
             f"{det['median_error_px']:.2f} px)", f"{det['frames_per_s']:.0f}", "", "", "", "", "", ""]]
    markdown = "\n".join([
        f"# Data layer benchmark ({env['device_name']}, {len(cpus)} cores)",
        "",
        f"{SIZE}x{SIZE} frames; median of {args.repeats} runs after a warm-up; python {result['versions']['python']}, "
        f"numpy {np.__version__}, OpenCV {cv2.__version__}, torch {torch.__version__}. {env['date']}.",
        "",
        markdown_table(header, rows),
        f"Speed-up: 2 workers against the same work in one process (workers=1, no worker processes). "
        f"Cached pre-processing reload: {cached_seconds:.2f} s. Correctness: generation identical with 1 and 2 "
        f"workers; saved eyes land within {correctness['max_eye_error_px']:.1e} px of the reference positions. "
        f"Frames per CPU-second counts user + system time of all processes: with {len(cpus)} idle cores, "
        f"wall-clock throughput approaches {len(cpus)}x that figure. Load average at the start "
        f"{env.get('load_average_at_start')} and 1-minute at the end {load:.1f} (above {len(cpus)}: other jobs "
        f"shared the cores, so the rates are lower bounds).",
        "",
    ])
    print(markdown)
    paths = write_results("data_cpu", result, markdown, out)
    print(f"results: {', '.join(paths)}")
    return 0 if gen["met"] and pre["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
