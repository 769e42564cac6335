"""The demo (`ccnn demo`): the paper's comparison (Table 1, Figures 3 and 4) on the built-in
synthetic data, sized to finish within 10 minutes on 2 CPU cores.

What it does, in order:
  1. generates the synthetic DISFA-like target set and the FERA- and pain-like extra sets (DEMO_DATA);
  2. splits the target subject-independently (2/3 train, 1/3 test; 1/5 of the training subjects
     validate), aligns and normalises every face at DEMO_DATA["image_size"] pixels;
  3. trains CNN, OCNN, SCNN, CCNN, CCNN-IT and CCNN-IT(*) with the same schedule (DEMO_SCHEDULE: the
     same number of CNN-updating images per model), evaluates each on the test subjects;
  4. writes results.{json,md,csv}, learning_curves.png (Fig. 4), cooccurrence.png and
     association_graph.png (Fig. 3), and prints the table.
The full-size settings (96 x 96 faces, the paper's schedule) stay the defaults of `ccnn train`.
"""
from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from .data.loaders import load_dataset
from .data.synthetic import generate_synthetic
from .experiment import compare_variants, prepare_data
from .model_setup import resolve_device
from .plots import plot_association_graph, plot_cooccurrence, plot_learning_curves
from .report import markdown_table, write_report
from .train_config import TrainConfig

DEMO_VARIANTS = ["CNN", "OCNN", "SCNN", "CCNN", "CCNN-IT", "CCNN-IT(*)"]

# Data of the demo: subjects x frames per context; faces rendered at render_size pixels, aligned
# and normalised at image_size pixels (the network's input).
DEMO_DATA = {
    "render_size": 48, "image_size": 32,
    "contexts": {"disfa": (27, 120), "fera": (12, 80), "pain": (12, 80)},
}
# Training schedule shared by every model of the demo.
DEMO_SCHEDULE = dict(epochs=5, batch_size=32, lr=0.01, lr_schedule="cosine", momentum=0.9,
                     grad_clip=5.0, l2=1e-4, samples_per_epoch=1600, pairwise_lr_scale=30.0,
                     ibb_unary_batches=10, ibb_pairwise_batches=6,
                     ibb_reweight=True, patience=5, prune_threshold=0.5, train_eval_samples=300)
# A tiny version for tests and smoke runs (`--quick`): seconds, not minutes.
QUICK_DATA = {"render_size": 32, "image_size": 16,
              "contexts": {"disfa": (6, 10), "fera": (3, 8), "pain": (3, 8)}}
QUICK_SCHEDULE = dict(DEMO_SCHEDULE, epochs=2, batch_size=16, samples_per_epoch=32, patience=2,
                      ibb_unary_batches=1, ibb_pairwise_batches=1, train_eval_samples=32)


# Printed under the table: the committed demo runs (docs/demo) moved this much between seeds and machines.
SEED_SPREAD = ("One seed of a 10-minute schedule: between seeds 0 and 1, and for seed 0 between two machines, "
               "the average ICC of a model moved by up to 0.13; differences of that size between models "
               "are not conclusions. Several seeds with intervals: ccnn benchmark (docs/benchmark).")


def generate_demo_data(root: Path, data: dict, seed: int, log=print) -> dict:
    """{context: dataset folder}, generated once (reused when the folder already holds it)."""
    folders = {}
    for context, (subjects, frames) in data["contexts"].items():
        folder = root / f"synth-{context}-{subjects}x{frames}-{data['render_size']}px-seed{seed}"
        if not (folder / "meta.json").exists():
            start = time.perf_counter()
            generate_synthetic(folder, context=context, subjects=subjects, frames=frames, seed=seed,
                               image_size=data["render_size"])
            log(f"generated {context}: {subjects} subjects x {frames} frames "
                f"({time.perf_counter() - start:.0f} s)")
        folders[context] = folder
    return folders


def run_demo(out_dir, quick: bool = False, seed: int = 0, device: str = "auto", progress: bool = True,
             log=print) -> dict:
    """Run the whole demo; returns the results.json content."""
    start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data_spec, schedule = (QUICK_DATA, QUICK_SCHEDULE) if quick else (DEMO_DATA, DEMO_SCHEDULE)
    folders = generate_demo_data(out / "data", data_spec, seed, log)
    data = prepare_data(str(folders["disfa"]), [str(folders["fera"]), str(folders["pain"])],
                        split="fraction:0.6667", val_fraction=0.2, image_size=data_spec["image_size"],
                        seed=seed, cache_dir=out / "cache", progress=progress)
    log(f"data ready ({time.perf_counter() - start:.0f} s): "
        + ", ".join(f"{f.dataset} {len(f.labels)}" for f in data.train) + f"; test {len(data.test[0].labels)}")
    config = replace(TrainConfig(seed=seed, device=device, progress=progress), **schedule)
    results, runs = compare_variants(DEMO_VARIANTS, data, config, out / "runs", resume=True, log=log)

    title = "Synthetic DISFA-like data, test subjects (ICC(3,1) and MAE)"
    table = markdown_table(results, title)
    seconds = time.perf_counter() - start
    settings = {"image_size": data_spec["image_size"], "contexts": data_spec["contexts"],
                "schedule": schedule, "seed": seed, "device": str(resolve_device(config.device)),
                "threads": torch.get_num_threads(), "seconds": round(seconds, 1), "seed_spread": SEED_SPREAD}
    payload = write_report(results, out, title=title, settings=settings)
    payload = json.loads(payload["json"].read_text())

    plot_learning_curves({n: runs[n].history for n in ("CCNN", "CCNN-IT") if n in runs},
                         out / "learning_curves.png")
    labels = {}
    for context, folder in folders.items():
        ds = load_dataset(folder)
        labels[ds.name] = (ds.labels, ds.aus)
    plot_cooccurrence(labels, out / "cooccurrence.png")
    best = runs.get("CCNN-IT(*)") or runs.get("CCNN-IT")
    if best is not None:
        plot_association_graph(best.model.association(), out / "association_graph.png",
                               best.model.dataset_aus)
    log("")
    log(table)
    log(SEED_SPREAD)
    log(f"demo finished in {seconds:.0f} s; results in {out / 'results.json'}")
    return payload
