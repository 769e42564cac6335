"""Shared helpers of the benchmark scripts: timing with warm-up and medians, a record of the
environment and of the machine's load, and writing results as JSON plus a markdown table under
benchmarks/results/. Importing it needs no torch (the decoder benchmarks run without it)."""
import argparse
import json
import os
import platform
import statistics
import sys
import time

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
# Where the decoder benchmarks write unless told otherwise (--out): an ignored folder, so that a
# trial run never overwrites the committed results.
SCRATCH_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "build", "bench-results")


def load_average():
    """The 1, 5 and 15 minute load averages, or None where the system has none."""
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def busy(load, cores):
    """Other processes used a sizeable share of the cores (timings then are unreliable)."""
    return bool(load) and load[0] > 0.5 * (cores or 1)


def cpu_name():
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return name


def synchronizer(device):
    """A function that waits for the device's queued work (a no-op on CPU)."""
    import torch

    if torch.device(device).type == "cuda":
        return torch.cuda.synchronize
    return lambda: None


def time_call(fn, device, warmup=2, repeats=7, max_seconds=20.0):
    """Median and minimum wall time of fn() in milliseconds, after `warmup` calls; stops early
    (keeping at least 3 repeats) once `max_seconds` have been spent timing."""
    sync = synchronizer(device)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    start = time.perf_counter()
    for i in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
        if i >= 2 and time.perf_counter() - start > max_seconds:
            break
    return {"median_ms": statistics.median(times), "min_ms": min(times), "repeats": len(times)}


def time_calls_interleaved(fns, device, warmup=2, repeats=7, max_seconds=20.0):
    """time_call for several functions {name: fn} in rounds, each round calling every function once
    in turn, so that a change of the machine's load falls on all of them alike; stops early (keeping
    at least 3 rounds) once `max_seconds` have been spent timing. {name: time_call's dict}."""
    sync = synchronizer(device)
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    sync()
    times = {name: [] for name in fns}
    start = time.perf_counter()
    for i in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            sync()
            times[name].append((time.perf_counter() - t0) * 1e3)
        if i >= 2 and time.perf_counter() - start > max_seconds:
            break
    return {name: {"median_ms": statistics.median(t), "min_ms": min(t), "repeats": len(t)}
            for name, t in times.items()}


def device_name(device):
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_name()


def environment(device, threads):
    """What a reader needs to reproduce a result."""
    import ccnn_ext
    import torch

    env = {
        "device": str(device),
        "device_name": device_name(device),
        "threads": threads,
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "ccnn": ccnn_ext.__version__,
        "ccnn_built_with_cuda": ccnn_ext.built_with_cuda(),
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    if hasattr(os, "getloadavg"):
        env["load_average_at_start"] = load_average()  # > cpu_count: noisy
    if torch.device(device).type == "cuda":
        env["cuda"] = torch.version.cuda
    else:
        env["simd"] = ccnn_ext.simd_level()  # the CPU kernels' SIMD version
    return env


def write_results(name, payload, markdown, out_dir=None):
    """<out_dir>/<name>.json and .md (out_dir defaults to benchmarks/results); returns the two
    paths."""
    out_dir = out_dir or RESULTS_DIR
    os.makedirs(out_dir, exist_ok=True)
    json_path = os.path.join(out_dir, name + ".json")
    md_path = os.path.join(out_dir, name + ".md")
    with open(json_path, "w") as f:
        json.dump(payload, f, indent=2)
        f.write("\n")
    with open(md_path, "w") as f:
        f.write(markdown)
    return json_path, md_path


def parse_problem_arguments(argv, description, results_name, repeats):
    """The command line of the benchmarks that time each of N problems `repeats` times: --quick (3
    problems, 2 repeats), --problems, --repeats, --out. Returns (args, problems, repeats)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 problems per case, 2 repeats")
    parser.add_argument("--problems", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument("--out", default=SCRATCH_DIR,
                        help=f"folder for {results_name}.json/.md (default: %(default)s)")
    args = parser.parse_args(argv)
    return (args, 3, 2) if args.quick else (args, args.problems, args.repeats)


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
