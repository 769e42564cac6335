"""The network's part of a training step: mixed precision (`amp`) and `torch.compile`.

    amp "off"   float32 throughout
        "bf16"  the CNN (convolutions, fully connected layer) runs under autocast in bfloat16; its
                features return to float32 before the heads, so the ordinal thresholds, the copula
                ops, the loss and every parameter and gradient update stay float32
        "fp16"  the same in float16, with a GradScaler: the loss is scaled before the backward pass and
                the gradients unscaled before clipping; a step whose gradients overflow is skipped and
                the scale lowered (the scaler's state is saved in checkpoints)
    compile     the CNN through torch.compile (its forward and, through AOTAutograd, its backward);
                the heads and the loss stay eager (the copula ops are fused kernels already)

The convolutions run channels-last (FeatureNet keeps its weights and inputs in that layout).
"""
from __future__ import annotations

import torch

AMP_MODES = ("off", "bf16", "fp16")
_AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class NetworkStep:
    """Runs the CNN of `model` with `amp` and `compile` on `device`, and the backward pass and
    optimiser update of a step (through a GradScaler under fp16)."""

    def __init__(self, model, amp: str = "off", compile: bool = False, device="cpu"):
        if amp not in AMP_MODES:
            raise ValueError(f"amp must be one of {AMP_MODES}, got {amp!r}")
        self.device = torch.device(device)
        self.dtype = _AMP_DTYPES[amp]
        self.network = torch.compile(model.features) if compile else model.features
        self.scaler = torch.amp.GradScaler(self.device.type) if amp == "fp16" else None

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, F) float32 features of `images` (autocast in the AMP dtype, if any)."""
        with torch.autocast(self.device.type, dtype=self.dtype or torch.float32,
                            enabled=self.dtype is not None):
            features = self.network(images)
        return features.float()

    def backward(self, loss: torch.Tensor, params) -> None:
        """Gradients of `loss` for `params` only; with fp16 those of the scaled loss (`unscale`
        restores their true size before clipping)."""
        if self.scaler is None:
            loss.backward(inputs=params)
            return
        self.scaler.scale(loss).backward(inputs=params)

    def unscale(self, optimizer) -> None:
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def update(self, optimizer) -> None:
        """optimizer.step(), or under fp16 the scaler's step (skipped on overflow) and scale update."""
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict | None:
        return None if self.scaler is None else self.scaler.state_dict()

    def load_state_dict(self, state: dict | None) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
