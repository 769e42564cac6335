"""The training settings (`TrainConfig`), shared by the trainer, the experiments and the CLI."""
from __future__ import annotations

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
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        for name in ("epochs", "batch_size", "ibb_unary_batches", "ibb_pairwise_batches", "patience",
                     "eval_batch_size", "min_epochs"):
            if int(getattr(self, name)) < (0 if name.startswith("ibb") or name == "min_epochs" else 1):
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if not 0 < self.crop <= 1:
            raise ValueError(f"crop must be in (0, 1], got {self.crop}")
        if self.pipeline not in PIPELINES:
            raise ValueError(f"pipeline must be one of {PIPELINES}, got {self.pipeline!r}")
        if self.amp not in AMP_MODES:
            raise ValueError(f"amp must be one of {AMP_MODES}, got {self.amp!r}")
        if self.padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {self.padding!r}")
