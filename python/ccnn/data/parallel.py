"""Run independent tasks over CPU cores with a progress bar (used by synthesis and preprocessing)."""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Callable, Iterable, Sequence

from tqdm.auto import tqdm


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resolve_workers(workers: int | None) -> int:
    if workers is None:
        return available_cores()
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers must be a positive int or None (all cores), got {workers!r}")
    return workers


def _init_worker():
    import cv2
    cv2.setNumThreads(1)  # one process per core already


def run_tasks(fn: Callable, tasks: Sequence, workers: int | None = None, progress: bool = False,
              desc: str = "", unit_counts: Iterable[int] | None = None) -> list:
    """[fn(task) for task in tasks], in order, over `workers` processes (spawned, so safe after torch
    or OpenCV threads started in the parent). unit_counts: progress-bar units per task (frames)."""
    workers = min(resolve_workers(workers), max(1, len(tasks)))
    counts = list(unit_counts) if unit_counts is not None else [1] * len(tasks)
    bar = tqdm(total=sum(counts), desc=desc, unit="frame", disable=not progress, leave=False)
    results = [None] * len(tasks)
    try:
        if workers == 1:
            for i, task in enumerate(tasks):
                results[i] = fn(task)
                bar.update(counts[i])
            return results
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker) as pool:
            futures = {pool.submit(fn, task): i for i, task in enumerate(tasks)}
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    i = futures[future]
                    try:
                        results[i] = future.result()
                    except Exception as error:
                        for other in pending:
                            other.cancel()
                        raise RuntimeError(f"{desc or 'task'} {i} failed in a worker: {error}") from error
                    bar.update(counts[i])
        return results
    finally:
        bar.close()
