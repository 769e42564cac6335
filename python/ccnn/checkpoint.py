"""Checkpoints: written atomically (temporary file + os.replace), read without executing pickled code
(`torch.load(weights_only=True)`), and checked so a corrupt or truncated file gives a clear error.

A checkpoint is a dict of tensors and plain Python values:
    format, version       "ccnn-checkpoint", 1
    model_config          CCNN.config(): rebuilds the network and its edge sets
    model_state           the model's state_dict
    ... and, for training checkpoints, the optimiser state, RNG state, epoch, history (trainer.py).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from .model import CCNN

FORMAT, VERSION = "ccnn-checkpoint", 1


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: missing, corrupt, truncated or of another format."""


def save_checkpoint(path, payload: dict) -> Path:
    """Write `payload` (plus the format tag) to `path` atomically: readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "version": VERSION, **payload}
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_checkpoint(path, map_location="cpu") -> dict:
    """Read a checkpoint written by `save_checkpoint`; raises CheckpointError with the reason."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # zip, pickle and EOF errors of damaged files come in many types
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupt or truncated and cannot be read "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {str(path)!r} is not a ccnn checkpoint")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {str(path)!r} has version {payload.get('version')}, "
                              f"this ccnn reads version {VERSION}")
    for key in ("model_config", "model_state"):
        if key not in payload:
            raise CheckpointError(f"checkpoint {str(path)!r} lacks {key!r}")
    return payload


def save_model(path, model: CCNN, **extra) -> Path:
    """A model-only checkpoint (what `ccnn eval` and `ccnn predict` read)."""
    return save_checkpoint(path, {"model_config": model.config(), "model_state": model.state_dict(),
                                  **extra})


def load_model(path, map_location="cpu") -> tuple[CCNN, dict]:
    """Rebuild the model of a checkpoint; returns (model in eval mode, the whole payload)."""
    payload = load_checkpoint(path, map_location)
    try:
        model = CCNN.from_config(payload["model_config"])
        model.load_state_dict(payload["model_state"])
    except (KeyError, TypeError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} does not describe a valid model: {exc}") from exc
    return model.eval(), payload
