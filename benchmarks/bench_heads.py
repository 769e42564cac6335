"""Training throughput (images/s) of the CCNN per output head, and the share of a training step spent in
the copula head and its loss.

For each head (softmax = CNN, ordinal = OCNN, loglinear = SCNN, copula = CCNN) one SGD step is timed on
a batch of random faces with DISFA's 12 AUs and its 66 fully connected edges: forward, composite NLL,
backward, gradient clipping, update. Then the copula part alone is timed: from the features
(requires_grad) through the ordinal thresholds, `ccnn_ext.pairwise_loglik` of all edges, the pairwise
loss and its backward.
Its share of the copula model's step must be at most 10% on CPU at batch 128 (checked; exit code 1
otherwise).

Correctness comes first: the copula loss of the benchmark batch is compared with a float64 evaluation
of the Frank copula formula before anything is timed.

The network is timed with 'same' padding (the default of `ccnn train`) and with 'valid' padding
where the size allows it (>= 64 px).

    python benchmarks/bench_heads.py                       # CPU (and CUDA when present), 96, 48 and 32 px
    python benchmarks/bench_heads.py --sizes 96 --padding valid --repeats 5 --threads 2
Writes benchmarks/results/heads_cpu.json + .md (and heads_cuda.* on a GPU).
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from ccnn.losses import composite_nll
from ccnn.model import CCNN, FeatureNet

DISFA_AUS = [1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26]
HEADS = {"softmax": "CNN", "ordinal": "OCNN", "loglinear": "SCNN", "copula": "CCNN"}
SHARE_LIMIT = 0.10
GRAD_CLIP = 10.0  # the trainer's default norm (it clips per parameter group; here all at once):
                  # unclipped, the untrained pairwise heads can diverge
MIN_VALID_SIZE = FeatureNet.min_image_size("valid")


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _median_time(fn, device, warmup, repeats):
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def _batch(batch, size, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, 1, size, size, generator=g)
    labels = torch.multinomial(torch.tensor([0.5, 0.2, 0.12, 0.1, 0.05, 0.03]), batch * len(DISFA_AUS),
                               replacement=True, generator=g).reshape(batch, -1)
    return images.to(device), labels.to(device)


def _model(head, size, device, seed=0, padding="same"):
    torch.manual_seed(seed)
    model = CCNN(DISFA_AUS, head=head, image_size=size, padding=padding).to(device)
    with torch.no_grad():  # a trained-looking copula: moderate associations of both signs
        for k, p in enumerate(model.pairwise):
            if head == "copula":
                p.fill_(4.0 * math.sin(1.7 * k))
    return model


def _frank(u, v, t):
    """Frank copula in mpmath (the paper's Eq. 9 at 60 significant digits)."""
    import mpmath
    if t == 0:
        return u * v
    return -mpmath.log(1 + mpmath.expm1(-t * u) * mpmath.expm1(-t * v) / mpmath.expm1(-t)) / t


def check_copula_loss(device) -> float:
    """Largest relative error of the model's pairwise log-likelihoods (float64) against the copula
    formula evaluated in 60-digit arithmetic, on 8 samples x 66 edges."""
    import mpmath
    mpmath.mp.dps = 60
    model = _model("copula", 16, device).double()
    images, labels = _batch(8, 16, device, seed=1)
    with torch.no_grad():
        for unit in model.unary:
            unit.beta.normal_(0, 0.2)
        out = model(images.double())
        loglik, _ = model.pairwise_loglik(out, labels)
    z = out.z.cpu().numpy()
    thetas = [p.item() for p in model.pairwise]
    worst = 0.0
    for b in range(labels.shape[0]):
        for e, (r, s) in enumerate(model.edges.tolist()):
            u = [mpmath.mpf(0)] + [mpmath.ncdf(x) for x in z[b, r]] + [mpmath.mpf(1)]
            v = [mpmath.mpf(0)] + [mpmath.ncdf(x) for x in z[b, s]] + [mpmath.mpf(1)]
            a, c = int(labels[b, r]), int(labels[b, s])
            t = mpmath.mpf(thetas[e])
            p = (_frank(u[a + 1], v[c + 1], t) - _frank(u[a], v[c + 1], t) - _frank(u[a + 1], v[c], t)
                 + _frank(u[a], v[c], t))
            reference = float(mpmath.log(p))
            worst = max(worst, abs(loglik[b, e].item() - reference) / max(1.0, abs(reference)))
    return worst


def _networks(sizes, paddings):
    """(size, padding) pairs to time; 'valid' only where the size allows it."""
    return [(size, padding) for size in sizes for padding in paddings
            if padding == "same" or size >= MIN_VALID_SIZE]


def bench_device(device, sizes, paddings, batch, warmup, repeats):
    rows = []
    for size, padding in _networks(sizes, paddings):
        images, labels = _batch(batch, size, device)
        step_times = {}
        for head, name in HEADS.items():
            model = _model(head, size, device, padding=padding)
            opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

            def step():
                opt.zero_grad(set_to_none=True)
                loss = composite_nll(model, model(images), labels)
                loss.total.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
                opt.step()

            median, times = _median_time(step, device, warmup, repeats)
            step_times[head] = median
            rows.append({"device": device.type, "image_size": size, "padding": padding, "batch": batch,
                         "head": head, "model": name, "step_s": median, "images_per_s": batch / median,
                         "step_times_s": times})
        # the copula head and its loss alone: thresholds -> pairwise log-likelihoods -> loss -> backward
        model = _model("copula", size, device, padding=padding)
        with torch.no_grad():
            features = model.features(images)
        feats = features.detach().requires_grad_(True)

        def copula_part():
            model.zero_grad(set_to_none=True)
            out = model.head_forward(feats)
            loglik, _ = model.pairwise_loglik(out, labels)
            (-loglik.sum() / batch).backward()

        part, _ = _median_time(copula_part, device, warmup, repeats)
        share = part / step_times["copula"]
        rows.append({"device": device.type, "image_size": size, "padding": padding, "batch": batch,
                     "head": "copula part",
                     "model": "copula head + loss", "step_s": part, "share_of_ccnn_step": share,
                     "step_minus_ocnn_share": (step_times["copula"] - step_times["ordinal"])
                     / step_times["copula"]})
    return rows


def write_results(rows, device, args, check_error):
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"device": _device_name(device), "threads": torch.get_num_threads(), "batch": args.batch,
            "sizes": args.sizes, "paddings": args.padding, "aus": len(DISFA_AUS), "edges": len(DISFA_AUS) * (len(DISFA_AUS) - 1) // 2,
            "warmup": args.warmup, "repeats": args.repeats, "torch": torch.__version__,
            "python": platform.python_version(), "platform": platform.platform(),
            "copula_loss_max_rel_error_vs_float64": check_error, "share_limit": SHARE_LIMIT}
    stem = out / f"heads_{device.type}"
    stem.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    lines = [f"# Training throughput ({meta['device']}, {meta['threads']} threads, batch {args.batch})", "",
             f"torch {torch.__version__}; DISFA: {meta['aus']} AUs, {meta['edges']} edges; median of "
             f"{args.repeats} steps after {args.warmup} warm-up steps.", "",
             "| image size | padding | model | head | step (ms) | images/s |", "|---|---|---|---|--:|--:|"]
    for r in rows:
        if r["head"] == "copula part":
            continue
        lines.append(f"| {r['image_size']} | {r['padding']} | {r['model']} | {r['head']} | {1e3 * r['step_s']:.1f} | "
                     f"{r['images_per_s']:.1f} |")
    lines += ["", "Copula head + its loss (forward and backward from the features) as a share of a CCNN "
              "training step:", "", "| image size | padding | copula part (ms) | share of step | "
              "(CCNN - OCNN) / CCNN step |", "|---|---|--:|--:|--:|"]
    for r in rows:
        if r["head"] == "copula part":
            lines.append(f"| {r['image_size']} | {r['padding']} | {1e3 * r['step_s']:.2f} | {100 * r['share_of_ccnn_step']:.1f}% "
                         f"| {100 * r['step_minus_ocnn_share']:.1f}% |")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return stem


def _device_name(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()})"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[96, 48, 32])
    parser.add_argument("--padding", nargs="+", choices=["same", "valid"], default=["same", "valid"],
                        help="conv paddings to time ('valid' only for sizes >= %d)" % MIN_VALID_SIZE)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when present")
    parser.add_argument("--out-dir", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.devices or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    ok = True
    for name in devices:
        device = torch.device(name)
        error = check_copula_loss(device)
        if not error < 1e-9:
            print(f"{name}: copula loss differs from the float64 formula (relative error {error:.2e})")
            return 1
        rows = bench_device(device, args.sizes, args.padding, args.batch, args.warmup, args.repeats)
        stem = write_results(rows, device, args, error)
        print(stem.with_suffix(".md").read_text())
        for r in rows:
            if device.type == "cpu" and r["head"] == "copula part" and args.batch == 128 \
                    and r["share_of_ccnn_step"] > SHARE_LIMIT:
                print(f"FAIL: copula head + loss take {100 * r['share_of_ccnn_step']:.1f}% of a step at "
                      f"{r['image_size']} px, {r['padding']} padding (limit {100 * SHARE_LIMIT:.0f}%)")
                ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
