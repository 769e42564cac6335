"""First contact of the CUDA kernels with a GPU: every copula op, forward and backward, once per
dtype and per kernel variant (L = 6: specialised; L = 9: generic; L = 17: the table backward's
multi-pass path; bad indices with the data checks off), each followed by a synchronisation so that
a failing launch or an illegal address is reported against the op that caused it. Prints one line
per case with the largest difference from the CPU kernels; exit code 1 if any case raised.

    python benchmarks/gpu_smoke.py            # used by benchmarks/gpu_session.sh
    python benchmarks/gpu_smoke.py --small    # tiny sizes, for compute-sanitizer runs
"""
import argparse
import sys
import traceback

import torch

import ccnn_ext

ops = torch.ops.ccnn


def problem(B, Q, L, dtype, per_sample, seed=0):
    g = torch.Generator().manual_seed(seed)
    steps = 0.1 + torch.rand(B, Q, L - 1, generator=g, dtype=torch.float64)
    z = torch.cumsum(steps, -1) - steps.sum(-1, keepdim=True) / 2 + torch.randn(B, Q, 1, generator=g, dtype=torch.float64)
    edges = torch.tensor([(r, s) for r in range(Q) for s in range(r + 1, Q)], dtype=torch.int64)
    shape = (B, len(edges)) if per_sample else (len(edges),)
    theta = (torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1) * 8
    labels = torch.randint(-1, L, (B, Q), generator=g)
    return z.to(dtype), theta.to(dtype), edges, labels


def fwd_bwd(fn, z, theta, device):
    zz = z.detach().to(device).clone().requires_grad_()
    tt = theta.detach().to(device).clone().requires_grad_()
    out = fn(zz, tt)
    up = torch.linspace(-1, 1, out.numel(), dtype=out.dtype, device=device).view_as(out)
    (torch.nan_to_num(out) * up).sum().backward()
    if device == "cuda":
        torch.cuda.synchronize()
    return [x.detach().cpu() for x in (out, zz.grad, tt.grad)]


def max_rel_diff(a, b):
    a, b = a.double(), b.double()
    both = torch.isfinite(a) & torch.isfinite(b)
    if not bool(both.any()):
        return 0.0
    return ((a - b).abs()[both] / (1 + b.abs()[both])).max().item()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true")
    args = parser.parse_args(argv)
    B = 4 if args.small else 256
    print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), device "
          f"{torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'}, "
          f"ccnn built with CUDA: {ccnn_ext.built_with_cuda()}", flush=True)
    failures = 0

    def case(name, fn):
        nonlocal failures
        try:
            print(f"{name:58s} {fn()}", flush=True)
        except Exception:  # report and carry on
            failures += 1
            print(f"{name:58s} RAISED", flush=True)
            traceback.print_exc()
            try:
                torch.cuda.synchronize()
            except Exception:
                print("  (the CUDA context is broken after this; later cases will fail too)")

    for dtype in (torch.float32, torch.float64):
        dname = str(dtype).replace("torch.", "")
        u = torch.rand(1000, dtype=dtype)
        v = torch.rand(1000, dtype=dtype)
        t = torch.full((1000,), 3.0, dtype=dtype)
        case(f"frank_copula {dname}", lambda: "max rel diff vs CPU [value, du, dtheta]: " + ", ".join(
            f"{max_rel_diff(g, c):.2e}" for g, c in zip(
                fwd_bwd(lambda a, b: ccnn_ext.frank_copula(a, v.to(a.device), b), u, t, "cuda"),
                fwd_bwd(lambda a, b: ccnn_ext.frank_copula(a, v.to(a.device), b), u, t, "cpu"))))
        for L in (2, 6, 9, 17):
            for per_sample in (False, True):
                Bc = min(B, 16) if L == 17 else B
                z, theta, edges, labels = problem(Bc, 5, L, dtype, per_sample, seed=L)
                tag = f"{dname} L={L} {'per-sample' if per_sample else 'shared'} theta"
                for op_name, fn in (
                    ("ordinal_logprob", lambda z, t: ccnn_ext.ordinal_logprob(z) + 0 * t.sum()),
                    ("pairwise_loglik", lambda z, t: ccnn_ext.pairwise_loglik(z, t, edges.to(z.device), labels.to(z.device))),
                    ("pairwise_logtable", lambda z, t: ccnn_ext.pairwise_logtable(z, t, edges.to(z.device), "logit")),
                ):
                    if op_name == "ordinal_logprob" and per_sample:
                        continue
                    case(f"{op_name} {tag}", lambda fn=fn: "max rel diff vs CPU [value, dz, dtheta]: " + ", ".join(
                        f"{max_rel_diff(g, c):.2e}" for g, c in zip(fwd_bwd(fn, z, theta, "cuda"), fwd_bwd(fn, z, theta, "cpu"))))

    # bad indices with the checks off: NaN, never an illegal address
    z, theta, edges, labels = problem(B, 5, 6, torch.float32, False, seed=99)
    bad_edges = edges.clone()
    bad_edges[1, 1] = 10**9
    bad_labels = labels.clone()
    bad_labels[0, 0] = 10**12
    ccnn_ext.set_data_checks(False)
    try:
        case("bad indices, checks off: loglik", lambda: "NaN edges: " + str(torch.isnan(fwd_bwd(
            lambda z, t: ccnn_ext.pairwise_loglik(z, t, bad_edges.cuda(), bad_labels.cuda()), z, theta, "cuda")[0]).any(0).nonzero().flatten().tolist()))
        case("bad indices, checks off: logtable", lambda: "NaN edges: " + str(torch.isnan(fwd_bwd(
            lambda z, t: ccnn_ext.pairwise_logtable(z, t, bad_edges.cuda()), z, theta, "cuda")[0]).flatten(2).any(2).any(0).nonzero().flatten().tolist()))
    finally:
        ccnn_ext.set_data_checks(True)
    print(f"smoke: {failures} case(s) raised")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
