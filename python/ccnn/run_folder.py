"""Run folders with integrity: the `--out` folder of a training run is locked, described and checked.

    with run_lock(out):                 # advisory lock: a second run on `out` fails at once
        clean_temporaries(out)          # *.tmp left by saves that a kill interrupted
        manifest = read_manifest(out)   # run.json: run id, settings, model, data fingerprint, start

The lock is `fcntl.flock` on `out/.ccnn.lock`, which holds the owner's pid, host and start time (the
kernel drops the lock when its process dies, however it dies, so a killed run never leaves the folder
locked). It is re-entrant within one process (`ccnn train` takes it before pre-processing, the
trainer again around the loop).

run.json names the run (`run_id`, a random hex string) that every artefact it writes carries
(checkpoint.pt, best.pt, model.pt), with the settings, model and data it was started with. The
trainer resumes only from a checkpoint of the run in run.json and with the same settings (or with
`allow_changed_settings`, which records the change); eval and predict refuse a model file whose run
is not the one in the run.json beside it.
"""
from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import socket
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from . import distributed

LOCK_NAME, MANIFEST_NAME = ".ccnn.lock", "run.json"
ARTEFACTS = ("checkpoint.pt", "best.pt", "model.pt")
# settings that do not change a run's numbers (pipeline, compile: float rounding only): they may differ
# when it is resumed
FREE_SETTINGS = ("progress", "device", "num_workers", "eval_batch_size", "pipeline", "compile")
_HELD: dict[str, int] = {}


class RunFolderError(ValueError):
    """An output folder that cannot be used for this run: locked, a file, or holding another run."""


@contextmanager
def run_lock(folder):
    """Hold the advisory lock of run folder `folder` (created if missing) while in the block. In a
    data-parallel run rank 0 alone holds it (and writes into the folder); the other ranks pass."""
    folder = Path(folder)
    if not distributed.is_main():
        yield folder
        return
    if folder.exists() and not folder.is_dir():
        raise RunFolderError(f"output folder {str(folder)!r} is a file; give --out a folder path "
                             f"(new or holding a run)")
    folder.mkdir(parents=True, exist_ok=True)
    key = str(folder.resolve())
    if key in _HELD:  # re-entrant in this process
        _HELD[key] += 1
        try:
            yield folder
        finally:
            _HELD[key] -= 1
        return
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = os.read(fd, 4096).decode(errors="replace").strip() or "unknown owner"
        os.close(fd)
        raise RunFolderError(f"output folder {str(folder)!r} is in use by another ccnn run ({owner}); "
                             f"wait for it to finish, stop it, or choose another --out") from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on host {socket.gethostname()}, since "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        _HELD[key] = 1
        yield folder
    finally:
        _HELD.pop(key, None)
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def clean_temporaries(folder) -> list[Path]:
    """Remove the temporaries of interrupted atomic writes (`<artefact>.<random>.tmp`, `log.tmp`);
    only safe while holding the folder's lock. Returns what was removed."""
    removed = []
    for path in Path(folder).glob("*.tmp"):
        ours = path.name == "log.tmp" or any(path.name.startswith(a + ".") for a in ARTEFACTS + (MANIFEST_NAME,))
        if ours and path.is_file():
            path.unlink()
            removed.append(path)
    return removed


def remove_artefacts(folder) -> None:
    """Delete the model files of an earlier run (a fresh run must never load or leave them)."""
    for name in ARTEFACTS:
        (Path(folder) / name).unlink(missing_ok=True)


# ---- the manifest ----------------------------------------------------------------------------------------
def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def data_fingerprint(*face_sets) -> str:
    """A hash of the training and validation faces: datasets, AUs, shapes, every label and subject, and
    the pixels of up to 64 faces spread over each set."""
    h = hashlib.sha256()
    for faces in face_sets:
        for f in (faces if isinstance(faces, (list, tuple)) else [faces] if faces is not None else []):
            h.update(json.dumps([f.dataset, [int(a) for a in f.aus], list(f.images.shape)]).encode())
            h.update(np.ascontiguousarray(f.labels, dtype=np.int64).tobytes())
            h.update("\n".join(map(str, f.subjects)).encode())
            pick = np.unique(np.linspace(0, len(f.images) - 1, num=min(64, len(f.images))).astype(int))
            h.update(np.ascontiguousarray(np.asarray(f.images[pick], dtype=np.float32)).tobytes())
        h.update(b"|")
    return h.hexdigest()[:16]


def run_settings(config) -> dict:
    """The settings of a TrainConfig that define a run's numbers."""
    return {k: v for k, v in dataclasses.asdict(config).items() if k not in FREE_SETTINGS}


def new_manifest(model_config: dict, config, data: str) -> dict:
    settings = run_settings(config)
    return {"format": "ccnn-run", "version": 1, "run_id": uuid.uuid4().hex,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": socket.gethostname(),
            "pid": os.getpid(), "head": model_config.get("head"), "model_hash": _digest(model_config),
            "config_hash": _digest(settings), "settings": settings, "data": data, "changes": []}


def read_manifest(folder) -> dict | None:
    """The run.json of `folder` (None without one); RunFolderError when it is not one ccnn wrote whole."""
    path = Path(folder) / MANIFEST_NAME
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunFolderError(_damaged(path, exc)) from None
    if not isinstance(manifest, dict) or manifest.get("format") != "ccnn-run":
        raise RunFolderError(f"{str(path)!r} is not a ccnn run manifest; choose another --out")
    expected = {"run_id": str, "model_hash": str, "settings": dict, "changes": list}
    for key, kind in expected.items():
        if not isinstance(manifest.get(key), kind) or (kind is str and not manifest[key]):
            raise RunFolderError(_damaged(path, f"its {key!r} is {manifest.get(key)!r}, expected a "
                                                f"{'non-empty string' if kind is str else kind.__name__}"))
    return manifest


def _damaged(path: Path, why) -> str:
    return (f"{str(path)!r} is damaged ({why}); to train in that folder start afresh (--no-resume), "
            f"to use its model files remove {MANIFEST_NAME} (their run is then not checked), or choose "
            f"another folder")


def write_manifest(folder, manifest: dict) -> None:
    write_text_atomically(Path(folder) / MANIFEST_NAME, json.dumps(manifest, indent=1, default=str) + "\n")


def write_text_atomically(path: Path, text: str) -> None:
    """`text` into `path` through `<name>.<pid>.tmp` beside it, replaced in one step: an interruption
    leaves the old file or the new one, never half of it."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def changed_settings(old: dict, new: dict, defaults: dict | None = None) -> dict:
    """{name: (old value, new value)} of the run-defining settings and data that differ; a setting
    that the old run.json lacks (written before the setting existed) had its value in `defaults`."""
    was = {**(defaults or {}), **old["settings"]}
    changes = {k: (was.get(k), v) for k, v in new["settings"].items()
               if json.dumps(was.get(k), default=str) != json.dumps(v, default=str)}
    if old.get("data") != new.get("data"):
        changes["data"] = (old.get("data"), new.get("data"))
    return changes


def describe_changes(changes: dict) -> str:
    return ", ".join(f"{'--' + k.replace('_', '-') if k != 'data' else 'the data (fingerprint)'} "
                     f"{a!r} -> {b!r}" for k, (a, b) in changes.items())


def check_artefact(path, payload: dict) -> None:
    """Refuse a model file whose run is not the run of the run.json beside it (a left-over)."""
    manifest = read_manifest(Path(path).parent)
    run_id = payload.get("run_id")
    if manifest is not None and run_id is not None and run_id != manifest.get("run_id"):
        raise RunFolderError(f"{str(path)!r} was written by another run than the one recorded in "
                             f"{str(Path(path).parent / MANIFEST_NAME)!r} (a left-over of an earlier "
                             f"run); use a model file written by the run in that folder")


def open_run(folder, model_config: dict, config, data: str, resume: bool = True,
             allow_changed_settings: bool = False) -> tuple[dict, dict, bool]:
    """Start or continue the run in `folder` (whose lock the caller holds). Returns (manifest, changed
    settings, whether to resume from checkpoint.pt). A fresh start removes the model files of any
    earlier run and writes a new run.json; resuming needs the run.json of the checkpoint's run, the
    same model and the same settings, unless `allow_changed_settings` (then the change is recorded)."""
    folder = Path(folder)
    new = new_manifest(model_config, config, data)
    if resume and (folder / "checkpoint.pt").exists():
        old = read_manifest(folder)  # (a fresh start replaces it, damaged or not)
        if old is None:
            raise RunFolderError(f"{str(folder)!r} holds a checkpoint.pt but no {MANIFEST_NAME} (written by "
                                 f"an older ccnn or another tool), so its settings cannot be checked; "
                                 f"pass --no-resume to start afresh there, or choose another --out")
        if old.get("model_hash") != new["model_hash"]:
            raise RunFolderError(f"the run in {str(folder)!r} trains another model (head {old.get('head')!r}, "
                                 f"or other AUs, datasets or image size) than this one (head "
                                 f"{new['head']!r}); pass --no-resume to start afresh there, or choose "
                                 f"another --out")
        changes = changed_settings(old, new, run_settings(type(config)()))
        if changes and not allow_changed_settings:
            raise RunFolderError(f"the run in {str(folder)!r} was started with other settings: "
                                 f"{describe_changes(changes)}; use the run's settings to resume it, pass "
                                 f"--allow-changed-settings to continue it with the new ones (recorded in "
                                 f"{MANIFEST_NAME} and log.jsonl), --no-resume to start afresh, or "
                                 f"choose another --out")
        if changes:
            old["changes"].append({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "pid": os.getpid(),
                                   "changes": {k: list(v) for k, v in changes.items()}})
            old.update(settings=new["settings"], config_hash=new["config_hash"], data=new["data"])
            write_manifest(folder, old)
            print(f"warning: resuming {str(folder)!r} with changed settings: {describe_changes(changes)}",
                  file=sys.stderr)
        return old, changes, True
    remove_artefacts(folder)
    write_manifest(folder, new)
    return new, {}, False
