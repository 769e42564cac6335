"""Benchmark of `ccnn predict` end to end: frames/s on a 640 x 480 video, from decoding the file to
the CSV (reading, face search and tracking, alignment, the network, AD3 decoding, writing rows).

The video shows a synthetic face (rendered by ccnn.data.synthetic, enlarged to 240 px) drifting over
a plain background; the Haar cascades find its face box but not its drawn eyes, so every search runs
the whole eye search and falls back to the face box (the slowest successful path). The model is an
untrained copula CCNN over DISFA's 12 AUs with all 66 edges (thetas drawn at random, so AD3 has
work to do): speed does not depend on training. Rows compare the face search on every frame
(`--redetect-every 1`) with the default schedule (every 15 frames, template tracking in between),
at the CLI's default input (96 x 96) and the demo's (32 x 32), on CPU and, when present, CUDA.

    python benchmarks/bench_predict.py [--frames 300] [--out DIR] [--bar 30]

Results go to --out (default: a scratch folder); `--out benchmarks/results` updates the committed
predict_cpu.{json,md}. Exits with status 1 when the default configuration on CPU is below --bar.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import environment, markdown_table, write_results  # noqa: E402

AUS = [1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26]


def make_video(folder: Path, frames: int, size=(640, 480), fps=30.0) -> Path:
    from ccnn.data import generate_synthetic
    data = generate_synthetic(folder / "synth", context="disfa", subjects=1, frames=12, seed=0, image_size=128)
    faces = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in sorted((data / "images").glob("*.png"))]
    w, h = size
    path = folder / f"clip_{frames}.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    for k in range(frames):
        frame = np.full((h, w), 90, np.uint8)
        x = 160 + int(40 * np.sin(k / 30.0))
        frame[110:350, x:x + 240] = cv2.resize(faces[k % len(faces)], (240, 240))
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


def make_model(folder: Path, image_size: int) -> Path:
    from ccnn.checkpoint import save_model
    from ccnn.model import CCNN
    torch.manual_seed(0)
    model = CCNN(AUS, head="copula", dataset_aus={"synth-disfa": AUS}, image_size=image_size)
    with torch.no_grad():
        for p in model.pairwise:
            p.copy_(torch.randn(()) * 3)
    return save_model(folder / f"model_{image_size}.pt", model)


def run(model_path, video, out_csv, device, redetect_every):
    from ccnn.predict import predict_to_csv
    start = time.perf_counter()
    _, frames, found, _ = predict_to_csv(model_path, [video], out_csv, device=device,
                                         redetect_every=redetect_every)
    seconds = time.perf_counter() - start
    return frames / seconds, found / frames


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300, help="video length (default: %(default)s)")
    parser.add_argument("--out", default=None, help="results folder (default: a scratch folder)")
    parser.add_argument("--bar", type=float, default=30.0, help="frames/s the default must reach on CPU")
    args = parser.parse_args(argv)
    out = Path(args.out or tempfile.mkdtemp(prefix="ccnn-bench-predict-"))
    scratch = Path(tempfile.mkdtemp(prefix="ccnn-bench-predict-data-"))
    video = make_video(scratch, args.frames)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    env = environment("cpu", torch.get_num_threads())
    rows, records, verdict = [], [], True
    for device in devices:
        for size in (96, 32):
            model = make_model(scratch, size)
            run(model, video, scratch / "warm.csv", device, 15)  # warm-up: cascades, kernels
            base, _ = run(model, video, scratch / "every.csv", device, 1)
            fast, found = run(model, video, scratch / "tracked.csv", device, 15)
            checked = device == "cpu" and size == 96
            ok = fast >= args.bar if checked else None
            verdict = verdict and ok is not False
            records.append({"device": device, "image_size": size, "frames": args.frames,
                            "fps_detect_every_frame": round(base, 1), "fps_default": round(fast, 1),
                            "speedup": round(fast / base, 2), "face_found": round(found, 3), "bar": ok})
            rows.append([device, f"{size} x {size}", f"{base:.1f}", f"{fast:.1f}", f"{fast / base:.2f}x",
                         "-" if ok is None else ("PASS" if ok else f"FAIL (< {args.bar:g})")])
    header = ["device", "model input", "frames/s, face search every frame", "frames/s, default (search every 15, tracking)",
              "speed-up", f"bar >= {args.bar:g} frames/s"]
    table = markdown_table(header, rows)
    load = env.get("load_average_at_start")
    markdown = (f"# ccnn predict end to end, 640 x 480 video, {args.frames} frames\n\n"
                f"{env['device_name']}, {env['threads']} torch threads, {env['cpu_count']} CPUs; load average "
                f"at start {load} (above the CPU count: other jobs shared the cores, so these are lower "
                f"bounds). {env['date']}.\n\n{table}")
    print(markdown)
    paths = write_results("predict_cpu", {"environment": env, "results": records}, markdown, str(out))
    print(f"results: {', '.join(paths)}")
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
