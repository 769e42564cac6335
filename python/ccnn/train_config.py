"""The training settings (`TrainConfig`), shared by the trainer, the experiments and the CLI."""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from .device_pipeline import PIPELINES
from .model import PADDINGS
from .train_step import AMP_MODES

MODES = ("joint", "ibb")
LR_SCHEDULES = ("constant", "cosine")


@dataclass
class TrainConfig:
    """Training settings; the defaults are the paper's (SGD, batch 128, lr 1e-3, momentum 0.9)."""
    mode: str = "joint"                 # "joint" or "ibb"
    epochs: int = 50                    # epochs (IBB: outer iterations)
    batch_size: int = 128
    lr: float = 1e-3
    lr_schedule: str = "constant"       # "constant" (the paper) or "cosine" (decay to 0 over `epochs`)
    momentum: float = 0.9
    grad_clip: float | None = 10.0      # max gradient norm per step and parameter group (None: off)
    pairwise_lr_scale: float = 300.0    # learning rate of the pairwise parameters = lr * this: a copula
                                        # parameter gets a gradient ~1e3 times smaller than the CNN's
                                        # weights need, so at x1 it stays near 0 (and is pruned); x300
                                        # (0.3 at lr 1e-3, the demo's rate) moves it within a few epochs
    pairwise_weight: float = 1.0        # w of the pairwise terms in the training loss (1: Eq. 11)
    l2: float | list = 1e-4             # lambda_q of the unary L2 term: one value, or one per AU
    samples_per_epoch: int | None = None  # CNN-updating samples per epoch (None: the training set size)
    ibb_unary_batches: int = 10         # IBB step 2: batches per AU per iteration
    ibb_pairwise_batches: int = 4       # IBB step 3: batches per edge per iteration
    ibb_reweight: bool = True           # IBB steps 2, 3: weight each sample by (its label's frequency)
                                        # / (its frequency in the balanced batches), so the expected
                                        # step is that of the plain composite NLL
    ibb_heads_first: bool = True        # IBB: fit the heads (steps 2, 3) to the initial CNN first, so
                                        # step 1 of the first iteration back-propagates through them
    patience: int = 10                  # early stopping: epochs without a better validation ICC
    min_epochs: int = 0                 # early stopping never ends training before this many epochs
                                        # (a model can sit at ICC 0, every frame "absent", at first)
    prune_threshold: float = 0.05       # after training, drop edges with |association| below this
                                        # (theta 0.05: Kendall's tau 0.006, an edge that learned nothing);
                                        # a warning says when it removes every edge of a dataset
    decode: str = "auto"                # validation read-out (inference.METHODS or "auto")
    crop: float = 0.85                  # random crop fraction (training), centre crop (evaluation)
    padding: str = "same"               # conv padding of the network ("same" or "valid", FeatureNet)
    seed: int = 0
    device: str = "auto"                # "auto" (CUDA when present), "cpu", "cuda", "cuda:1", ...
    eval_batch_size: int = 256
    train_eval_samples: int = 1000      # fixed training subset for the training-curve ICC
    num_workers: int = 0                # DataLoader workers of the loader pipeline
    pipeline: str = "auto"              # training batches: "device" (faces resident on the device),
                                        # "loader" (per-sample DataLoader) or "auto" (device if they fit)
    amp: str = "off"                    # mixed precision of the CNN: "off", "bf16" or "fp16"
    compile: bool = False               # torch.compile the CNN
    progress: bool = True

    def validate(self) -> None:
        """ValueError naming the first setting out of its range (the command line's ranges)."""
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        for name, minimum in (("epochs", 1), ("batch_size", 1), ("patience", 1), ("eval_batch_size", 1),
                              ("ibb_unary_batches", 0), ("ibb_pairwise_batches", 0), ("min_epochs", 0),
                              ("train_eval_samples", 0), ("num_workers", 0), ("seed", 0)):
            _check_int(name, getattr(self, name), minimum)
        if self.samples_per_epoch is not None:
            _check_int("samples_per_epoch", self.samples_per_epoch, 1)
        if not _real(self.lr) > 0 or not math.isfinite(self.lr):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        if not 0 <= _real(self.momentum) < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if self.grad_clip is not None and not (_real(self.grad_clip) > 0 and math.isfinite(self.grad_clip)):
            raise ValueError(f"grad_clip must be a finite number > 0 or None (off), got {self.grad_clip!r}")
        l2 = self.l2 if isinstance(self.l2, (list, tuple)) else [self.l2]
        for name, values in (("pairwise_lr_scale", [self.pairwise_lr_scale]), ("pairwise_weight", [self.pairwise_weight]),
                             ("prune_threshold", [self.prune_threshold]), ("l2", l2)):
            if not all(math.isfinite(_real(v)) and v >= 0 for v in values):
                raise ValueError(f"{name} must be finite and >= 0, got {getattr(self, name)!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if not 0 < _real(self.crop) <= 1:
            raise ValueError(f"crop must be in (0, 1], got {self.crop!r}")
        if self.pipeline not in PIPELINES:
            raise ValueError(f"pipeline must be one of {PIPELINES}, got {self.pipeline!r}")
        if self.amp not in AMP_MODES:
            raise ValueError(f"amp must be one of {AMP_MODES}, got {self.amp!r}")
        if self.padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {self.padding!r}")


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def _real(value) -> float:
    """float(value) for a real number; nan (which fails every range check) for anything else."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return math.nan
    return float(value)
