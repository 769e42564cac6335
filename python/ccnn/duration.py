"""The duration of a training run, estimated before it starts (the line `ccnn train` prints).

    schedule = training_schedule(trainer)     # how many steps and forward images the run will take
    step, total = estimate_duration(trainer)  # seconds per CNN step, seconds for the whole schedule

The work of a run is counted from the trainer's settings and samplers (`training_schedule`) and
priced by timing a few steps of each kind on the actual batch, on a copy of the model: a CNN step
(joint SGD, IBB step 1), an IBB head step on one AU's unary parameters (step 2) and on one edge's
pairwise parameter (step 3), the head steps on features computed once, as the trainer does. A
forward pass (validation, training curve, IBB's feature pass) is taken as a third of a CNN step.
Early stopping is not foreseen, and a busy machine takes longer.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from . import distributed
from .losses import composite_nll
from .train_step import NetworkStep


@dataclass
class Schedule:
    """The work of a whole run (every epoch, without early stopping)."""
    cnn_steps: int        # joint steps, or IBB step 1
    unary_steps: int      # IBB step 2: head steps on one AU's unary parameters
    pairwise_steps: int   # IBB step 3: head steps on one edge's pairwise parameter
    forward_images: int   # images through the network without a gradient


def training_schedule(trainer) -> Schedule:
    """The steps and forward images `trainer.fit()` runs over trainer.config.epochs epochs: per epoch
    the CNN batches, the training-curve and validation passes and, for IBB, the feature pass and the
    batches of every AU's and edge's head sampler; IBB's first epoch fits the heads once more before
    its CNN batches (`ibb_heads_first`)."""
    cfg = trainer.config
    batches = lambda samples: math.ceil(samples / cfg.batch_size)  # noqa: E731 (the loaders keep the last)
    forward = len(trainer.train_eval_set) + (len(trainer.val_set) if trainer.val_set is not None else 0)
    cnn = Schedule(batches(trainer.samples_per_epoch), 0, 0, forward)
    if cfg.mode != "ibb":
        return Schedule(*(cfg.epochs * n for n in vars(cnn).values()))
    heads = Schedule(0, sum(batches(len(s)) for s in trainer.unary_samplers if s is not None),
                     sum(batches(len(s)) for s in trainer.pairwise_samplers if s is not None),
                     len(trainer.train_set))  # the feature pass before the head steps
    epoch = _add(cnn, heads)
    total = Schedule(*(cfg.epochs * n for n in vars(epoch).values()))
    return _add(total, heads) if cfg.ibb_heads_first else total


def _add(a: Schedule, b: Schedule) -> Schedule:
    return Schedule(*(x + y for x, y in zip(vars(a).values(), vars(b).values())))


def estimate_duration(trainer, steps: int = 2) -> tuple[float, float]:
    """(seconds per CNN training step, seconds for the trainer's whole schedule), without touching
    its state: each kind of step is timed `steps` times after one untimed warm-up, on a copy of the
    model whose weights the steps leave unchanged, with the torch RNG restored afterwards."""
    cfg, device = trainer.config, trainer.device
    model = copy.deepcopy(trainer.model).train()
    # every timed step does the whole update's work, and the weights are put back after it (outside the
    # clock): each step times the same computation and none can move the copy out of its domain (a
    # learning rate of 0 alone would not: 0 times an infinite gradient is NaN)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0, momentum=cfg.momentum)
    weights = [p.detach().clone() for p in model.parameters()]
    rng = torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    trainer.train_set.set_epoch(0)  # the trainer sets each epoch's crops again before using them
    per_process = cfg.batch_size // distributed.world_size()  # each process steps on its part of the batch
    pick = torch.randperm(len(trainer.train_set), generator=torch.Generator().manual_seed(0))[:per_process]
    images, labels, d = next(iter(trainer.batches(pick.tolist())))
    network = NetworkStep(model, cfg.amp, device=device)  # --compile is not timed: compiling takes longer

    def timed(outputs, params) -> float:
        """Mean seconds of an SGD step on `params` of the loss of outputs(), scaled to a full batch."""
        times = []
        for _ in range(steps + 1):
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss = composite_nll(model, outputs(), labels, trainer.lambdas, cfg.pairwise_weight)
            loss.total.backward(inputs=params)
            optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
            with torch.no_grad():
                for p, w in zip(model.parameters(), weights):
                    p.copy_(w)
        return float(np.mean(times[1:])) * per_process / len(pick)  # a smaller training set: a full batch

    schedule = training_schedule(trainer)
    step = timed(lambda: model.head_forward(network.features(images), d), list(model.parameters()))
    head_seconds = 0.0
    if schedule.unary_steps or schedule.pairwise_steps:
        with torch.no_grad():
            features = network.features(images)
        q = next(q for q, s in enumerate(trainer.unary_samplers) if s is not None)
        head_seconds += schedule.unary_steps * timed(lambda: model.head_forward(features, d),
                                                     model.unary_parameters(q))
        if schedule.pairwise_steps:
            k = next(k for k, s in enumerate(trainer.pairwise_samplers) if s is not None)
            head_seconds += schedule.pairwise_steps * timed(lambda: model.head_forward(features, d),
                                                            model.pairwise_parameters(k))
    torch.set_rng_state(rng[0])
    if rng[1] is not None:
        torch.cuda.set_rng_state(rng[1], device)
    forward_seconds = schedule.forward_images / cfg.batch_size * step / 3
    return step, schedule.cnn_steps * step + head_seconds + forward_seconds


def duration_estimate(trainer) -> str:
    """The line `ccnn train` prints before training: estimate_duration in words."""
    step, total = estimate_duration(trainer)
    return (f"estimated duration: about {_words(total)} for {trainer.config.epochs} epochs on "
            f"{trainer.device} ({step:.3g} s per step of {trainer.config.batch_size} images, timed on "
            f"two steps; an estimate: early stopping may end sooner, a busy machine take longer)")


def _words(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"
