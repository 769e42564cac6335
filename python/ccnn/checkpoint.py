"""Checkpoints: written atomically (temporary file + os.replace), read without executing pickled code
(`torch.load(weights_only=True)`), and verified so a corrupt, truncated or unreadable file gives a
clear `CheckpointError` instead of silently changed weights.

A file is one header line and the bytes of `torch.save(payload)`:

    ccnn-checkpoint 2 sha256:<64 hex digits> bytes:<payload length>\\n<payload>

The SHA-256 of the payload is checked before anything is unpickled, so a byte flipped anywhere in the
payload (or a cut) is rejected. Files of version 1 (a bare `torch.save`, written before the header
existed) are still read, unverified. The payload is a dict of tensors and plain Python values:
    format, version       "ccnn-checkpoint", 2
    model_config          CCNN.config(): rebuilds the network and its edge sets
    model_state           the model's state_dict
    run_id                (written by training) the run of the folder that wrote it (run_folder.py)
    ... and, for training checkpoints, the optimiser state, RNG state, epoch, history (trainer.py).
"""
from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import tempfile
from pathlib import Path

import torch

from .model import CCNN
from .run_folder import check_artefact

FORMAT, VERSION = "ccnn-checkpoint", 2
_HEADER = re.compile(rb"ccnn-checkpoint (\d+) sha256:([0-9a-f]{64}) bytes:(\d+)\n")
_HEADER_MAX = 128


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: missing, unreadable, corrupt, truncated or of another
    format."""


def save_checkpoint(path, payload: dict) -> Path:
    """Write `payload` (plus the format tag) to `path` atomically: readers never see a partial file.
    The temporary file is `<name>.<random>.tmp` beside it; an interrupted save may leave one, which
    the next training run in the folder removes (run_folder.clean_temporaries)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, **payload}, buffer)
    data = buffer.getvalue()
    header = f"{FORMAT} {VERSION} sha256:{hashlib.sha256(data).hexdigest()} bytes:{len(data)}\n"
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(header.encode())
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename is None:  # e.g. ENOSPC: name the file
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    return path


def _read(path: Path) -> bytes:
    if path.is_dir():
        raise CheckpointError(f"checkpoint {str(path)!r} is a folder, not a file; give the path of a "
                              f".pt file written by ccnn train (e.g. {str(path / 'model.pt')!r})")
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist") from None
    except PermissionError:
        raise CheckpointError(f"checkpoint {str(path)!r}: permission denied; make it readable "
                              f"(chmod u+r) or run as its owner") from None
    except OSError as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} cannot be read: "
                              f"{exc.strerror or errno.errorcode.get(exc.errno, exc)}") from None


def _payload_bytes(path: Path, data: bytes) -> bytes:
    """The verified payload of a version-2 file, or the whole of a version-1 file (a zip archive)."""
    match = _HEADER.match(data[:_HEADER_MAX])
    if match is None:
        if data.startswith(b"PK\x03\x04"):
            return data  # version 1: written before checksums, read unverified
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupt or truncated and cannot be read "
                              f"(no ccnn-checkpoint header); write it again with ccnn train")
    size, body = int(match.group(3)), data[match.end():]
    if len(body) != size:
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupt or truncated: {len(body)} payload "
                              f"bytes, the header says {size}; write it again (or resume the run)")
    if hashlib.sha256(body).hexdigest() != match.group(2).decode():
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupt: its SHA-256 does not match the "
                              f"header (the file changed after it was written); write it again")
    return body


def load_checkpoint(path, map_location="cpu") -> dict:
    """Read and verify a checkpoint written by `save_checkpoint`; raises CheckpointError with the
    reason (missing, a folder, permission denied, checksum mismatch, truncated, another format)."""
    path = Path(path)
    body = _payload_bytes(path, _read(path))
    try:
        payload = torch.load(io.BytesIO(body), map_location=map_location, weights_only=True)
    except Exception as exc:  # zip, pickle and EOF errors of damaged files come in many types
        raise CheckpointError(
            f"checkpoint {str(path)!r} is corrupt or truncated and cannot be read "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {str(path)!r} is not a ccnn checkpoint")
    if payload.get("version") not in (1, VERSION):
        raise CheckpointError(f"checkpoint {str(path)!r} has version {payload.get('version')}, "
                              f"this ccnn reads versions 1 and {VERSION}")
    for key in ("model_config", "model_state"):
        if key not in payload:
            raise CheckpointError(f"checkpoint {str(path)!r} lacks {key!r}")
    return payload


def save_model(path, model: CCNN, **extra) -> Path:
    """A model-only checkpoint (what `ccnn eval` and `ccnn predict` read)."""
    return save_checkpoint(path, {"model_config": model.config(), "model_state": model.state_dict(),
                                  **extra})


def load_model(path, map_location="cpu") -> tuple[CCNN, dict]:
    """Rebuild the model of a checkpoint; returns (model in eval mode, the whole payload). A file of a
    run folder must come from the run in its run.json (run_folder.check_artefact)."""
    payload = load_checkpoint(path, map_location)
    check_artefact(path, payload)
    try:
        model = CCNN.from_config(payload["model_config"])
        model.load_state_dict(payload["model_state"])
    except (KeyError, TypeError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} does not describe a valid model: {exc}") from exc
    return model.eval(), payload
