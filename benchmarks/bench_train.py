"""Throughput of the full training step (images/s) per input pipeline, mixed precision and
torch.compile, and the share of the step spent outside the network's own forward and backward pass.

The step is the trainer's own joint-SGD step (Trainer._train_cnn_batches) at batch 128 on 96 x 96
faces of a memory-mapped cache (random faces, DISFA's 12 AUs, 66 copula edges, 'same' padding):
drawing the epoch's indices, building the batch, CNN, heads, composite NLL, backward, clipping, SGD
update and the loss read-back. Variants, on every device:

    loader    the per-sample DataLoader (the only pipeline before), float32
    device    the faces resident on the device, crops drawn batch-wise there, float32
    bf16      device + --amp bf16
    compile   device + --compile (compilation time reported apart, not in the step)

Each repeat times one epoch of `--steps` steps and then the same number of forward + backward passes
of the CNN alone on a batch already on the device (same amp / compile); the non-network share of the
repeat is 1 - network / step, and the medians over the repeats are reported, in wall-clock time and
in this process's CPU time (which leaves out waiting for other jobs). Both subtract two numbers of
seconds to find one of milliseconds, so on a busy machine they scatter by several percent; each part
outside the network is therefore also timed alone (`time_parts`), and the share of their sum is the
one checked: on CPU, for the device pipeline, at most 5% (exit status 1 otherwise).

    flock /tmp/ccnn-bench.lock python benchmarks/bench_train.py --out benchmarks/results
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import environment, markdown_table, synchronizer, write_results  # noqa: E402

from ccnn.model_setup import build_model  # noqa: E402
from ccnn.preprocess import FaceArrays  # noqa: E402
from ccnn.train_config import TrainConfig  # noqa: E402
from ccnn.trainer import Trainer  # noqa: E402

DISFA_AUS = [1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26]
SHARE_LIMIT = 0.05
VARIANTS = {"loader": dict(pipeline="loader"), "device": dict(pipeline="device"),
            "bf16": dict(pipeline="device", amp="bf16"), "compile": dict(pipeline="device", compile=True)}


def cached_faces(folder, n, size, seed=0) -> FaceArrays:
    """n random faces written as a .npy and memory-mapped back, as `ccnn preprocess` caches them."""
    rng = np.random.default_rng(seed)
    path = os.path.join(folder, "faces.npy")
    np.save(path, rng.standard_normal((n, size, size), dtype=np.float32))
    labels = rng.choice(6, p=[0.5, 0.2, 0.12, 0.1, 0.05, 0.03], size=(n, len(DISFA_AUS)))
    subjects = np.array([f"S{i % 12:02d}" for i in range(n)])
    return FaceArrays(np.load(path, mmap_mode="r"), labels.astype(np.int64), subjects, DISFA_AUS, "bench", 0)


def make_trainer(faces, device, batch, steps, variant) -> Trainer:
    model = build_model("copula", faces, seed=0)
    with torch.no_grad():  # a trained-looking copula: moderate associations of both signs
        for k, p in enumerate(model.pairwise):
            p.fill_(4.0 * np.sin(1.7 * k))
    config = TrainConfig(mode="joint", batch_size=batch, samples_per_epoch=batch * steps, device=device,
                         progress=False, **VARIANTS[variant])
    return Trainer(model, faces, None, config)


def train_epoch(trainer, epoch):
    """One epoch of the trainer's joint-SGD steps (the timed unit of every row)."""
    trainer._train_cnn_batches(epoch, list(trainer.model.parameters()), "joint", lambda record: None)


def _clocks():
    return np.array([time.perf_counter(), time.process_time()])


def time_variant(trainer, device, batch, steps, repeats):
    """Per repeat: [wall, CPU] seconds per full step (one epoch of `steps`) and per network forward +
    backward. The CPU time is this process's (all its threads): on a CPU it leaves out the time spent
    waiting for other jobs on the machine."""
    sync = synchronizer(device)
    params = trainer.model.cnn_parameters()
    images = torch.randn(batch, 1, trainer.train_set.out_size, trainer.train_set.out_size, device=device)

    def network_pass():
        features = trainer.network.features(images)
        features.backward(torch.ones_like(features), inputs=params)

    start = time.perf_counter()
    train_epoch(trainer, 0)  # warm-up
    network_pass()
    sync()
    warmup_s = time.perf_counter() - start
    step_s, network_s = [], []
    for epoch in range(1, repeats + 1):
        t0 = _clocks()
        train_epoch(trainer, epoch)
        sync()
        t1 = _clocks()
        for _ in range(steps):
            network_pass()
        sync()
        step_s.append((t1 - t0) / steps)
        network_s.append((_clocks() - t1) / steps)
    return warmup_s, np.array(step_s), np.array(network_s)


def time_parts(trainer, device, steps, repeats=10):
    """Median seconds per step of each part of a step outside the network, each timed alone (CPU time
    on a CPU, wall-clock time on CUDA): drawing the epoch's indices, building a batch, the heads and
    the loss forward and backward (from the features), clipping and the SGD update, the loss read-back."""
    sync = synchronizer(device)
    clock = time.process_time if device.type == "cpu" else time.perf_counter
    sampler, params = trainer.cnn_sampler, list(trainer.model.parameters())
    images, labels, d = next(trainer.batches(range(trainer.config.batch_size)))
    features = trainer.network.features(images).detach().requires_grad_(True)
    state = {}

    def heads_and_loss():
        state["loss"] = trainer._loss(trainer.model.head_forward(features, d), labels)
        state["loss"].total.backward()

    def clip_and_update():
        for group in trainer.optimizer.param_groups:
            torch.nn.utils.clip_grad_norm_([p for p in group["params"] if p.grad is not None],
                                           trainer.config.grad_clip)
        trainer.network.update(trainer.optimizer)

    trainer.optimizer.zero_grad(set_to_none=True)
    trainer.network.backward(trainer._loss(trainer.model.head_forward(trainer.network.features(images), d),
                                           labels).total, params)  # every parameter gets a gradient
    parts = {"sampling": (lambda: np.fromiter(sampler, np.int64), 1 / steps),
             "batch": (lambda: next(trainer.batches(range(trainer.config.batch_size))), 1),
             "heads + loss": (heads_and_loss, 1), "clip + update": (clip_and_update, 1),
             "loss read-back": (lambda: state["loss"].as_dict(), 1)}
    out = {}
    for name, (fn, per_step) in parts.items():
        times = []
        for _ in range(repeats + 1):
            t0 = clock()
            fn()
            sync()
            times.append(clock() - t0)
        out[name] = statistics.median(times[1:]) * per_step
    return out


def bench_device(device, args):
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        faces = cached_faces(folder, args.faces, args.size)
        for variant in args.variants:
            trainer = make_trainer(faces, device, args.batch, args.steps, variant)
            warmup_s, step_s, network_s = time_variant(trainer, device, args.batch, args.steps, args.repeats)
            shares = 1 - network_s / step_s                      # (repeats, [wall, CPU])
            parts = time_parts(trainer, device, args.steps)
            network = statistics.median(network_s[:, 1 if device.type == "cpu" else 0])
            step = statistics.median(step_s[:, 0])
            rows.append({"variant": variant, "pipeline": trainer.batches.name, "amp": trainer.config.amp,
                         "compile": trainer.config.compile, "step_s": step, "images_per_s": args.batch / step,
                         "network_s": statistics.median(network_s[:, 0]),
                         "non_network_share": statistics.median(shares[:, 0]),
                         "non_network_share_cpu_time": statistics.median(shares[:, 1]),
                         "parts_s": parts, "non_network_share_by_parts": sum(parts.values()) / (sum(parts.values())
                                                                                                + network),
                         "warmup_s": warmup_s, "step_times_s": step_s[:, 0].tolist(),
                         "network_times_s": network_s[:, 0].tolist(), "step_cpu_s": step_s[:, 1].tolist(),
                         "network_cpu_s": network_s[:, 1].tolist()})
            print(f"{device}: {variant}: {args.batch / step:.1f} images/s, non-network share "
                  f"{100 * rows[-1]['non_network_share']:.1f}%, by parts "
                  f"{100 * rows[-1]['non_network_share_by_parts']:.2f}% {parts}", flush=True)
            del trainer
    if device.type == "cpu" and not args.no_distributed:
        rows.append(distributed_row(args))
    return rows


def distributed_row(args):
    """The device pipeline in float32 as 2 gloo processes of one torch thread each on this machine
    (torchrun --standalone, this file as the worker), global batch `args.batch` split 2 x half:
    images/s of the whole job, timed by rank 0 over the same epochs as the one-process rows."""
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "rank0.json")
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                   os.path.abspath(__file__), "--worker-json", out, "--size", str(args.size), "--batch",
                   str(args.batch), "--steps", str(args.steps), "--repeats", str(args.repeats),
                   "--faces", str(args.faces)]
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        if done.returncode != 0 or not os.path.exists(out):
            return {"variant": "2-process gloo", "not_run": f"failed (exit {done.returncode}): "
                                                            f"{done.stderr.strip()[-300:]}"}
        with open(out) as f:
            timed = json.load(f)
    step = statistics.median(timed["step_s"])
    return {"variant": "2-process gloo", "pipeline": "device", "amp": "off", "compile": False, "step_s": step,
            "images_per_s": args.batch / step, "processes": 2, "threads_per_process": 1,
            "step_times_s": timed["step_s"], "warmup_s": timed["warmup_s"]}


def distributed_worker(args):
    """One rank of distributed_row: the trainer's joint-SGD epochs in the process group (each rank draws
    its part of every global batch and all-reduces the gradients); rank 0 writes the step times."""
    from ccnn import distributed
    torch.set_num_threads(1)
    with distributed.process_group("cpu") as (launch, _), tempfile.TemporaryDirectory() as folder:
        trainer = make_trainer(cached_faces(folder, args.faces, args.size), torch.device("cpu"), args.batch,
                               args.steps, "device")
        start = time.perf_counter()
        train_epoch(trainer, 0)  # warm-up
        warmup_s, step_s = time.perf_counter() - start, []
        for epoch in range(1, args.repeats + 1):
            t0 = time.perf_counter()
            train_epoch(trainer, epoch)
            step_s.append((time.perf_counter() - t0) / args.steps)
        if launch.rank == 0:
            with open(args.worker_json, "w") as f:
                json.dump({"step_s": step_s, "warmup_s": warmup_s}, f)


def markdown(device, rows, env, args):
    base = next((r["step_s"] for r in rows if r.get("variant") == "loader"), None)
    table = []
    for r in rows:
        if "not_run" in r:
            table.append([r["variant"], "-", "-", "-", "-", "-", "-", "-", r["not_run"], "-"])
            continue
        common = [r["variant"], r["pipeline"], r["amp"], "yes" if r["compile"] else "no",
                  f"{1e3 * r['step_s']:.1f}" + (f" (first epoch, compiling: {r['warmup_s']:.0f} s)"
                                                if r["compile"] else ""),
                  f"{r['images_per_s']:.1f}", f"{base / r['step_s']:.2f}x" if base else "-"]
        if "processes" in r:  # the whole job's throughput; the shares are the one-process rows'
            table.append(common + [f"- ({r['processes']} processes x {r['threads_per_process']} thread)", "-", "-"])
            continue
        table.append(common + [
                      f"{100 * r['non_network_share']:.1f}% (network {1e3 * r['network_s']:.1f} ms)",
                      f"{100 * r['non_network_share_cpu_time']:.1f}%" if device.type == "cpu" else "-",
                      f"{100 * r['non_network_share_by_parts']:.2f}% ("
                      + ", ".join(f"{k} {1e3 * v:.2f}" for k, v in r["parts_s"].items()) + " ms)"])
    load = env.get("load_average_at_start")
    return (f"# Training step throughput ({env['device_name']}, batch {args.batch}, {args.size} x {args.size})\n\n"
            f"torch {env['torch']}, python {env['python']}, {env['threads']} torch threads on {env['cpu_count']} "
            f"CPUs; load average at start {load}, at end {env.get('load_average_at_end')}. Joint-SGD steps of the "
            f"trainer (CCNN, {len(DISFA_AUS)} AUs, 'same' padding, {args.faces} memory-mapped faces); median of "
            f"{args.repeats} epochs of {args.steps} steps after one warm-up epoch. The 2-process gloo row (CPU) is the "
            f"device pipeline as `torchrun --nproc-per-node 2` with one torch thread per process, the global "
            f"batch split in halves, gradients all-reduced each step.\n\n"
            + markdown_table(["variant", "pipeline", "amp", "compile", "step (ms)", "images/s", "speed-up vs loader",
                              "outside the network (data, sampling, heads, loss, optimiser)",
                              "the same in CPU time", "by parts, timed alone"], table))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when present")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=2, help="steps per timed epoch (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs (default: %(default)s)")
    parser.add_argument("--faces", type=int, default=1024, help="faces in the cache (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "ccnn-bench-train"),
                        help="folder of train_<device>.json/.md (default: %(default)s)")
    parser.add_argument("--no-distributed", action="store_true", help="skip the 2-process gloo row on the CPU")
    parser.add_argument("--worker-json", default=None, help=argparse.SUPPRESS)  # a rank of the gloo row
    args = parser.parse_args(argv)
    if min(args.size, args.batch, args.steps, args.repeats, args.faces) < 1:
        parser.error("--size, --batch, --steps, --repeats and --faces must be positive")
    if args.worker_json:
        distributed_worker(args)
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.devices or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    ok = True
    for name in devices:
        device = torch.device(name)
        env = environment(device, torch.get_num_threads())
        rows = bench_device(device, args)
        if hasattr(os, "getloadavg"):
            env["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        text = markdown(device, rows, env, args)
        paths = write_results(f"train_{device.type}", {"environment": env, "settings": vars(args), "rows": rows},
                              text, args.out)
        print(text, "\nwritten:", *paths)
        bar = next((r for r in rows if r.get("variant") == "device"), None)
        if device.type == "cpu" and bar is not None and bar["non_network_share_by_parts"] > SHARE_LIMIT:
            print(f"FAIL: the device pipeline's parts outside the network take "
                  f"{100 * bar['non_network_share_by_parts']:.1f}% of a step (limit {100 * SHARE_LIMIT:.0f}%)")
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
