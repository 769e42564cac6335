"""Why SCNN's read-out was far off: one model per head trained with the demo's data and schedule
(joint SGD, seed 0, no extra data), read out every way, with the pairwise learning-rate scale varied for SCNN.

For each model: average ICC and MAE on the test subjects with per-AU argmax, exact MAP (pmi, the
default), exact MAP with the pmi terms taken against the unary margins (the read-out before the fix),
and the joint decomposition; for SCNN also the test pairwise NLL with its tables and with W = 0.

    python benchmarks/scnn_readout.py --out /tmp/scnn-readout        # about 5 min on 2 quiet cores
Writes OUT/scnn_readout.json and prints a table.
"""
from __future__ import annotations

import argparse
import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

import ccnn_ext
from ccnn.data.torch_data import FaceDataset
from ccnn.demo import DEMO_DATA, DEMO_SCHEDULE, generate_demo_data
from ccnn.experiment import prepare_data, train_variant
from ccnn.inference import DecodeOptions, infer_faces
from ccnn.losses import composite_nll
from ccnn.metrics import evaluate
from ccnn.train_config import TrainConfig

RUNS = [("copula", 30.0), ("loglinear", 30.0), ("loglinear", 3.0), ("loglinear", 1.0)]


def read_outs(model, data, crop):
    out = {}
    for label, options in (("argmax", DecodeOptions(method="argmax")), ("map pmi", DecodeOptions(method="exact")),
                           ("map joint", DecodeOptions(method="exact", decomposition="joint"))):
        preds, labels, _ = infer_faces(model, data.test, crop, options)
        metrics = evaluate(labels, preds, model.aus)
        out[label] = (metrics["icc_avg"], metrics["mae_avg"])
    if model.has_pairwise and len(model.pairwise):
        preds, labels = old_pmi_map(model, data, crop)
        metrics = evaluate(labels, preds, model.aus)
        out["map pmi against the unary margins (before the fix)"] = (metrics["icc_avg"], metrics["mae_avg"])
    return out


@torch.no_grad()
def old_pmi_map(model, data, crop):
    """Exact MAP with the pairwise term log P_e(a, b) - log P_r(a) - log P_s(b) (unary margins)."""
    loader = torch.utils.data.DataLoader(FaceDataset(data.test, aus=model.aus, train=False, crop=crop),
                                         batch_size=256)
    preds, labels = [], []
    r, s = model.edges[:, 0], model.edges[:, 1]
    for images, y, d in loader:
        out = model(images, torch.zeros_like(d))
        logp = model.unary_logprob(out).double()
        table = model.pairwise_logtable(out)[0].double() - logp[:, r, :, None] - logp[:, s, None, :]
        result = ccnn_ext.decode_exact(logp.numpy(), table.numpy(), model.edges.numpy())
        preds.append(np.asarray(result.labels, dtype=np.float64))
        labels.append(y.numpy())
    return np.concatenate(preds), np.concatenate(labels)


def pairwise_nll(model, data, crop):
    loader = torch.utils.data.DataLoader(FaceDataset(data.test, aus=model.aus, train=False, crop=crop),
                                         batch_size=256)
    totals, n = {"tables": 0.0, "W = 0": 0.0}, 0
    saved = [p.detach().clone() for p in model.pairwise]
    with torch.no_grad():
        for images, labels, d in loader:
            out = model(images, torch.zeros_like(d))
            totals["tables"] += composite_nll(model, out, labels).pairwise.item() * len(labels)
            for p in model.pairwise:
                p.zero_()
            totals["W = 0"] += composite_nll(model, out, labels).pairwise.item() * len(labels)
            for p, v in zip(model.pairwise, saved):
                p.copy_(v)
            n += len(labels)
    return {k: v / n for k, v in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/scnn-readout")
    args = parser.parse_args()
    out = Path(args.out)
    folders = generate_demo_data(out / "data", DEMO_DATA, 0)
    data = prepare_data(str(folders["disfa"]), [], image_size=DEMO_DATA["image_size"], seed=0,
                        cache_dir=out / "cache", progress=False)
    results = {"load_average_at_start": os.getloadavg()}
    for head, scale in RUNS:
        config = replace(TrainConfig(seed=0, progress=False), **DEMO_SCHEDULE, pairwise_lr_scale=scale)
        _, run = train_variant(data, config, out / f"{head}-x{scale:g}", head=head, log=lambda *a: None)
        model = run.model.eval()
        entry = {"edges kept": len(model.pairwise), **read_outs(model, data, config.crop)}
        if head == "loglinear" and len(model.pairwise):
            entry["test pairwise NLL"] = pairwise_nll(model, data, config.crop)
        results[f"{head} x{scale:g}"] = entry
        print(f"{head} pairwise lr x{scale:g}: " + json.dumps(entry))
    results["load_average_at_end"] = os.getloadavg()
    (out / "scnn_readout.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
