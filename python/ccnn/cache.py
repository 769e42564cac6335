"""The pre-processing cache on disk (`ccnn cache`): list its entries and clear them.

`preprocess` stores each data set it aligned as one folder `<name>-<size>-<key>` under a cache
folder (by default `<data set folder>/.ccnn_cache`, else $CCNN_CACHE_DIR or ~/.cache/ccnn), holding
images.npy, the labels, subjects and transforms, and manifest.json (what it holds: the data set, the
face size and type, the frames and faces). A folder `<entry>.tmp-<pid>` is an entry being written,
or left by an interrupted one.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class CacheEntry:
    path: Path
    bytes: int
    modified: float          # seconds since the epoch (the newest file in it)
    dataset: str | None      # None: not a complete entry (no readable manifest, or a .tmp folder)
    size: int | None = None
    dtype: str | None = None
    frames: int | None = None
    faces: int | None = None

    def describe(self) -> str:
        age = (time.time() - self.modified) / 86400
        what = (f"{self.dataset}, {self.faces} faces of {self.size}x{self.size} {self.dtype} "
                f"from {self.frames} frames" if self.dataset is not None else "incomplete (no manifest)")
        return f"{self.path}  {_megabytes(self.bytes)}  {age:.1f} days old  {what}"


def global_cache_dir() -> Path:
    """$CCNN_CACHE_DIR, else ~/.cache/ccnn (where data sets in read-only folders are cached)."""
    return Path(os.environ.get("CCNN_CACHE_DIR", Path.home() / ".cache" / "ccnn"))


def resolve_cache_dir(folder=None) -> Path:
    """The cache folder meant by `folder`: a data set folder means its .ccnn_cache; None the global one."""
    if folder is None:
        return global_cache_dir()
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no cache folder {str(folder)!r}")
    return folder / ".ccnn_cache" if (folder / ".ccnn_cache").is_dir() else folder


def cache_entries(folder) -> list[CacheEntry]:
    """The entries of the cache folder `folder` (see the module doc), sorted by path; other files and
    folders that are not cache entries are left out."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    entries = []
    for path in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = [f for f in path.rglob("*") if f.is_file()]
        stats = [f.stat() for f in files]
        entry = CacheEntry(path, sum(s.st_size for s in stats),
                           max([s.st_mtime for s in stats], default=path.stat().st_mtime), None)
        manifest = _manifest(path) if ".tmp-" not in path.name else None
        if manifest is None and ".tmp-" not in path.name and not (path / "images.npy").exists():
            continue  # not ours
        if manifest is not None:
            entry.dataset, entry.size, entry.dtype = manifest.get("dataset"), manifest.get("size"), manifest.get("dtype")
            entry.frames, entry.faces = manifest.get("frames"), manifest.get("faces")
        entries.append(entry)
    return entries


def clear_cache(folder, older_than_days: float | None = None) -> list[CacheEntry]:
    """Remove the entries of `folder` (only those last written more than `older_than_days` days ago,
    when given); returns the removed entries."""
    if older_than_days is not None and older_than_days < 0:
        raise ValueError(f"older_than_days must be >= 0, got {older_than_days}")
    cutoff = None if older_than_days is None else time.time() - older_than_days * 86400
    removed = [e for e in cache_entries(folder) if cutoff is None or e.modified < cutoff]
    for entry in removed:
        shutil.rmtree(entry.path, ignore_errors=True)
    return removed


def cache_report(folder, entries: list[CacheEntry], removed: bool = False) -> str:
    """The text `ccnn cache` prints: one line per entry and a total."""
    total = sum(e.bytes for e in entries)
    verb = "removed" if removed else "in"
    head = f"{len(entries)} cache entr{'y' if len(entries) == 1 else 'ies'} {verb} {folder} ({_megabytes(total)})"
    return "\n".join([head] + [e.describe() for e in entries])


def _manifest(path: Path) -> dict | None:
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB"
