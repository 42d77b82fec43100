"""Run one function over many items in a process pool, with results in input order.

Stages that work pair by pair (registration, dataset building) use :func:`map_in_order`. Results come back in
the order of the inputs whatever the number of workers, so outputs are identical for any ``--workers N``.
Workers run single-threaded (OpenCV, SimpleITK, torch), because on 2 cores two pools of threads fight.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from .progress import ProgressCallback

__all__ = ["limit_threads", "map_in_order"]

T = TypeVar("T")
R = TypeVar("R")


def limit_threads() -> None:
    """Make numerical libraries in this process use one thread (called in each worker)."""
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"
    import cv2

    cv2.setNumThreads(1)
    try:
        import SimpleITK as sitk

        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    except ImportError:  # pragma: no cover - SimpleITK is a dependency
        pass
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def map_in_order(function: Callable[[T], R], items: Iterable[T], *, workers: int = 1,
                 progress: ProgressCallback | None = None) -> Iterator[R]:
    """Yield ``function(item)`` for each item, in input order.

    Parameters
    ----------
    function : callable
        A module-level function (it is pickled to the workers). It should catch the errors of one item and
        return them as part of its result, so one bad item never stops the others.
    items : iterable
    workers : int
        1 runs in this process (easiest to debug); N > 1 uses N spawned processes.
    progress : callable, optional
        Called with 1 as each item finishes.

    Notes
    -----
    Ctrl-C cancels the items not yet started and re-raises ``KeyboardInterrupt``; items already written by
    ``function`` stay complete, because every stage writes through temporary files.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if workers == 1:
        for item in items:
            result = function(item)
            if progress:
                progress(1)
            yield result
        return
    context = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=limit_threads) as pool:
        futures = [pool.submit(function, item) for item in items]
        if progress:
            for future in futures:
                future.add_done_callback(lambda _: progress(1))
        try:
            for future in futures:
                yield future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
