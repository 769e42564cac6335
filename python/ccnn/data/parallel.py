"""Run independent tasks over CPU cores with a progress bar (used by synthesis and preprocessing)."""
from __future__ import annotations

import ast
import functools
import multiprocessing
import os
import sys
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


def spawned_workers_can_start() -> bool:
    """Whether worker processes can be spawned from this program.

    A spawned worker is a fresh interpreter that first imports the caller's main script again (as
    `__mp_main__`); a script whose top level calls ccnn without an `if __name__ == "__main__":`
    guard would run once more in every worker and fail there. Forking instead is not an option: a
    forked worker can hang in OpenCV when the parent already used OpenCV's thread pool. So a main
    script without that guard gets its tasks run in this process. Programs started with `-m`, an
    interactive session, `python -c` and notebooks have either a guard or nothing to import again.
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    return path is None or _has_main_guard(os.path.abspath(path))


@functools.lru_cache(maxsize=None)
def _has_main_guard(path: str) -> bool:
    try:
        tree = ast.parse(open(path, "rb").read(), filename=path)
    except (OSError, SyntaxError, ValueError):
        return False
    return any(isinstance(node, ast.If) and _is_main_test(node.test) for node in tree.body)


def _is_main_test(test: ast.expr) -> bool:
    """`__name__ == "__main__"`, either way round."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    return (any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides)
            and any(isinstance(s, ast.Constant) and s.value == "__main__" for s in sides))


def _init_worker():
    import cv2
    cv2.setNumThreads(1)  # one process per core already


def run_tasks(fn: Callable, tasks: Sequence, workers: int | None = None, progress: bool = False,
              desc: str = "", unit_counts: Iterable[int] | None = None) -> list:
    """[fn(task) for task in tasks], in order, over `workers` processes (spawned, so safe after torch
    or OpenCV threads started in the parent), or in this process where spawned workers cannot start
    (`spawned_workers_can_start`). unit_counts: progress-bar units per task (frames)."""
    workers = min(resolve_workers(workers), max(1, len(tasks)))
    if workers > 1 and not spawned_workers_can_start():
        workers = 1
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
