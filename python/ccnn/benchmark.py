"""The benchmark protocol (`ccnn benchmark`): the paper's comparisons over several seeds, every model
trained with the same budget and its best validation epoch kept, the paper's claims tested one by
one (ccnn.seeds) and the learned copula checked against the generator's Kendall tau
(ccnn.dependence). Its point, unlike the demo's, is the spread over seeds and the intervals.

    summary = run_benchmark("runs/benchmark")              # BENCH_DATA, BENCH_SCHEDULE, BENCH_SEEDS

Sized to finish within about 90 minutes on 2 CPU cores (docs/benchmark/ holds a
run, its time and the machine's load); the same settings run unchanged on a GPU (`--device cuda`).
The synthetic subjects are the same for every seed (one generated set); the seed sets the subject
split, the initialisation and the batches.
"""
from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

import torch

from .data.synth_labels import expected_kendall_tau
from .demo import QUICK_DATA, QUICK_SCHEDULE, generate_demo_data
from .experiment import prepare_data
from .model_setup import resolve_device
from .seeds import compare_seeds
from .train_config import TrainConfig

BENCH_VARIANTS = ["CNN", "OCNN", "CCNN", "CCNN-IT", "CCNN-IT(*)", "SCNN-IT"]
BENCH_SEEDS = [0, 1, 2, 3, 4]
# The demo's synthetic sets with a third more target subjects (36 of 120 frames: 19 train, 5 validate,
# 12 test per seed), faces rendered at 48 px and fed to the network at 32 x 32, the demo's size: the
# largest with which five seeds of six models trained to their plateau fit in about 90 minutes on 2
# CPU cores (docs/benchmark/README.md: 48 x 48 would take 2.25 times as long).
BENCH_DATA = {"render_size": 48, "image_size": 32,
              "contexts": {"disfa": (36, 120), "fera": (12, 80), "pain": (12, 80)}}
# Every model: epochs of 1,600 CNN-updating images until the validation ICC has not improved for 3
# epochs, but at least 6 (a model can sit at ICC 0, every frame "absent", for its first epochs) and
# at most 16; the learning rate decays by a cosine over the 16; the best validation epoch is kept.
BENCH_SCHEDULE = dict(epochs=16, min_epochs=6, patience=3, batch_size=32, lr=0.01, lr_schedule="cosine",
                      momentum=0.9, grad_clip=5.0, l2=1e-4, samples_per_epoch=1600, pairwise_lr_scale=30.0,
                      ibb_unary_batches=6, ibb_pairwise_batches=3, ibb_reweight=True,
                      prune_threshold=0.05, train_eval_samples=300)
QUICK_BENCH_SCHEDULE = dict(QUICK_SCHEDULE, patience=1, min_epochs=1, prune_threshold=0.05)


def run_benchmark(out_dir, seeds=None, quick: bool = False, device: str = "auto", progress: bool = False,
                  replicates: int = 2000, log=print) -> dict:
    """Run (or resume) the benchmark into out_dir; returns the summary (ccnn.seeds) with the settings
    and the wall time added to out_dir/seeds.json."""
    start, load_at_start = time.perf_counter(), os.getloadavg()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data_spec, schedule = (QUICK_DATA, QUICK_BENCH_SCHEDULE) if quick else (BENCH_DATA, BENCH_SCHEDULE)
    seeds = list(BENCH_SEEDS if seeds is None else seeds)
    folders = generate_demo_data(out / "data", data_spec, seed=0, log=log)

    def make_data(seed):
        return prepare_data(str(folders["disfa"]), [str(folders["fera"]), str(folders["pain"])],
                            split="fraction:0.6667", val_fraction=0.2, image_size=data_spec["image_size"],
                            seed=seed, cache_dir=out / "cache", progress=progress)

    config = replace(TrainConfig(device=device, progress=progress), **schedule)
    summary = compare_seeds(BENCH_VARIANTS, seeds, make_data, config, out, log=log,
                            extra_adds_updates=True, replicates=replicates,
                            true_tau=expected_kendall_tau("disfa"),
                            title="Synthetic DISFA-like data, test subjects")
    summary["settings"] = {"data": data_spec, "schedule": schedule, "variants": BENCH_VARIANTS,
                           "extra_adds_updates": True, "device": str(resolve_device(device)),
                           "threads": torch.get_num_threads(), "torch": torch.__version__,
                           "machine": platform.processor() or platform.machine(),
                           "seconds_this_call": round(time.perf_counter() - start, 1),
                           "load_average_at_start": load_at_start, "load_average_at_end": os.getloadavg()}
    (out / "seeds.json").write_text(json.dumps(summary, indent=1, allow_nan=True) + "\n")
    log((out / "seeds.md").read_text())
    log(f"benchmark call finished in {time.perf_counter() - start:.0f} s; summary in {out / 'seeds.md'}")
    return summary
