"""Run one function over many items in a process pool, with results in input order.

Stages that work pair by pair (registration, dataset building) use :func:`map_in_order`. Results come back in
the order of the inputs whatever the number of workers, so outputs are identical for any ``--workers N``.
Workers run single-threaded (OpenCV, SimpleITK, torch), because on 2 cores two pools of threads fight.

Workers never outlive the command. A process pool's workers are not killed with their parent: after ``kill -9``
they would go on under PID 1 through the items already queued, writing into the output folder. Each worker
therefore asks the kernel for SIGTERM when its parent dies (Linux ``PR_SET_PDEATHSIG``) and also watches its
parent's PID (other systems, and a parent that died before the request). A stop signal in a worker aborts the
item under way through its usual clean-up (temporary files are removed) and ends the worker; an idle worker
ends at once. When the parent stops (Ctrl-C, ``kill``, an error), it terminates its workers the same way
before passing the exception on. The pool's resource tracker ends once the last of them has.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures.process import BrokenProcessPool
from types import FrameType
from typing import Final, NoReturn, TypeVar

from .interrupts import (
    STOP_SIGNALS,
    Interrupted,
    deferred_stop_signals,
    import_uninterrupted,
    raise_stop_signal,
    received_signal,
    unblock_stop_signals,
)
from .progress import ProgressCallback

__all__ = ["limit_threads", "map_in_order", "signal_on_parent_death", "stop_when_parent_dies"]

_PR_SET_PDEATHSIG: Final = 1
_WATCH_SECONDS: Final = 0.2  # how often a worker checks that its parent is alive
_GRACE_SECONDS: Final = 5.0  # an orphaned worker stuck in C code this long is ended without clean-up
_JOIN_SECONDS: Final = 10.0  # the parent waits this long for terminated workers before killing them
_TRACKER_NOTICE: Final = "ignore:resource_tracker:UserWarning"  # -W syntax: its message starts so

_parent_pid: int | None = None  # set in workers only
_in_item = False

T = TypeVar("T")
R = TypeVar("R")


def limit_threads() -> None:
    """Make numerical libraries in this process use one thread (called in each worker, and by benchmarks).

    The environment variables reach thread pools not loaded yet (and child processes); threadpoolctl resizes
    those already loaded: BLAS reads its variable once, when numpy is imported, which is always before this.
    """
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)
    import cv2

    cv2.setNumThreads(1)
    try:
        sitk = import_uninterrupted("SimpleITK")
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    except ImportError:  # pragma: no cover - SimpleITK is a dependency
        pass
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def signal_on_parent_death(signum: int = signal.SIGTERM) -> None:
    """Linux: have the kernel send ``signum`` to this process when the thread that started it ends.

    ``PR_SET_PDEATHSIG`` follows the parent *thread*, so it suits children started by a process's main thread
    (pool workers, DataLoader workers); a process started by a launcher's helper thread (``torchrun``) watches
    its parent's PID instead (:func:`stop_when_parent_dies`). Elsewhere it does nothing.
    """
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)


def _end_worker(signum: int) -> NoReturn:
    """Leave now: no clean-up is pending (idle) or it did not finish in time."""
    os._exit(128 + signum)


def _ignore(_signum: int, _frame: FrameType | None) -> None:
    """A stop signal after the first: nothing to do (the first one is already stopping this worker)."""


def _worker_stop(signum: int, _frame: FrameType | None) -> None:
    # One stop is enough: a second one must not interrupt the clean-up of the first. A Python no-op, not SIG_IGN:
    # a Ctrl-C reaches the worker and the parent's SIGTERM follows while the worker is inside C code, so both
    # are pending when this runs; a pending signal whose handler became SIG_IGN meanwhile makes Python print
    # "OSError: Signal 15 ignored due to race condition" with a traceback.
    for other in STOP_SIGNALS:
        signal.signal(other, _ignore)
    if not _in_item:
        _end_worker(signum)
    raise_stop_signal(signum)  # the item's clean-up runs, then _run_item ends the worker


def _watch_parent(parent_pid: int, grace: float) -> None:
    """Stop this process when its parent is gone: SIGTERM (clean-up runs), then, after ``grace``, exit."""
    while os.getppid() == parent_pid:
        time.sleep(_WATCH_SECONDS)
    if received_signal() is None:
        os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(grace)  # the main thread may be inside C code, where Python signal handlers wait
    _end_worker(received_signal() or signal.SIGTERM)


def stop_when_parent_dies(parent_pid: int | None = None, *, grace: float = _GRACE_SECONDS) -> None:
    """Stop this process (SIGTERM: its clean-up runs as for ``kill``) once ``parent_pid`` is no longer its parent.

    A watcher thread polls ``os.getppid()``: when the parent ends, however (``kill -9`` included), the process
    is re-parented and the watcher sends SIGTERM to it, then ends it after ``grace`` seconds if the main thread
    is stuck in C code. Works whatever thread of the parent started this process, unlike ``PR_SET_PDEATHSIG``.

    Parameters
    ----------
    parent_pid : int, optional
        The parent to watch (default: the current parent). A parent already gone stops the process at once.
    grace : float
        Seconds between the SIGTERM and the forced exit.
    """
    parent = os.getppid() if parent_pid is None else parent_pid
    threading.Thread(target=_watch_parent, args=(parent, grace), name="watch-parent", daemon=True).start()


def _init_worker(parent_pid: int) -> None:
    """Worker start-up: one thread for numerical libraries, and never outlive ``parent_pid``."""
    global _parent_pid
    _parent_pid = parent_pid
    for signum in STOP_SIGNALS:
        signal.signal(signum, _worker_stop)
    unblock_stop_signals()  # the parent started this worker with them blocked (see map_in_order)
    signal_on_parent_death(signal.SIGTERM)
    stop_when_parent_dies(parent_pid)
    if os.getppid() != parent_pid:  # the parent died before the request above
        _end_worker(signal.SIGTERM)
    limit_threads()


def _run_item(function: Callable[[T], R], item: T) -> R:
    """One item in a worker; a stop signal ends the worker once the item's clean-up has run."""
    global _in_item
    if os.getppid() != _parent_pid or received_signal() is not None:
        _end_worker(received_signal() or signal.SIGTERM)
    _in_item = True
    try:
        result = function(item)
    except KeyboardInterrupt as exc:
        _end_worker(getattr(exc, "signum", signal.SIGINT))
    finally:
        _in_item = False
    if received_signal() is not None:  # the item swallowed the stop (a library turned it into its own error)
        _end_worker(received_signal())
    return result


def _workers_of(pool: cf.ProcessPoolExecutor) -> list[multiprocessing.process.BaseProcess]:
    """The pool's worker processes. Take them before ``shutdown()``, which forgets them (``_processes = None``)
    even when it does not wait for them."""
    # ProcessPoolExecutor.terminate_workers() arrives in Python 3.14; until then its process table is private.
    return list((getattr(pool, "_processes", None) or {}).values())


def _stop_workers(workers: list[multiprocessing.process.BaseProcess]) -> None:
    """SIGTERM each live worker (it aborts its item through the item's clean-up), then wait for them."""
    for process in workers:
        with contextlib.suppress(Exception):
            if process.is_alive():
                process.terminate()
    deadline = time.monotonic() + _JOIN_SECONDS
    for process in workers:
        with contextlib.suppress(Exception):
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join(1.0)


def _start_resource_tracker() -> None:
    """Start multiprocessing's resource tracker quiet about ``kill -9`` and deaf to a closed terminal.

    The pool's queues hold named semaphores, registered with the tracker; a parent killed outright cannot
    unregister them, so the tracker unlinks them once the workers are gone too (the clean-up it exists for) and
    warns "leaked semaphore objects" on the user's terminal. Nothing is left behind, so the notice is noise: the
    tracker, started with the interpreter flags of this process (``sys.warnoptions``), is told to ignore it.

    The tracker ignores SIGINT and SIGTERM but not SIGHUP, which a closed terminal sends to the whole process
    group: it died, and the pool's clean-up then printed "process died unexpectedly, relaunching" and KeyError
    tracebacks from the new one. Started here with SIGHUP blocked (the mask survives exec, and the tracker
    unblocks only the two signals it ignores), it outlives the hang-up; this process gets a hang-up that came
    meanwhile right after. A tracker already running (an earlier pool) keeps its settings.
    """
    from multiprocessing import resource_tracker

    if _TRACKER_NOTICE not in sys.warnoptions:
        sys.warnoptions.append(_TRACKER_NOTICE)
    hangup = getattr(signal, "SIGHUP", None)
    if hangup is None or not hasattr(signal, "pthread_sigmask"):  # pragma: no cover - not POSIX
        resource_tracker.ensure_running()
        return
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {hangup})
    try:
        resource_tracker.ensure_running()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


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
    Ctrl-C, SIGTERM, SIGHUP, an exception or the caller closing the generator cancel the items not yet started,
    stop the workers (each item under way is abandoned through its clean-up, so no temporary file is left) and
    re-raise; items already written by ``function`` stay complete, because every stage writes through temporary
    files. Workers also end when this process is killed (``kill -9``).
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
    _start_resource_tracker()
    context = multiprocessing.get_context("spawn")
    pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker,
                                  initargs=(os.getpid(),))
    futures: list[cf.Future[R]] = []
    try:
        # Workers start during submit: a stop then would hit a fresh interpreter before it can handle it.
        with deferred_stop_signals():
            for item in items:
                futures.append(pool.submit(_run_item, function, item))
                if progress:
                    futures[-1].add_done_callback(lambda _: progress(1))
        for future in futures:
            yield future.result()
    except BaseException as exc:
        # The pool cancels what has not started (cancelling futures here instead races its manager thread,
        # which then fails on them: InvalidStateError); the workers abandon what has.
        with deferred_stop_signals():  # a second Ctrl-C must not cut the clean-up short (orphans, tracebacks)
            workers = _workers_of(pool)
            pool.shutdown(wait=False, cancel_futures=True)
            _stop_workers(workers)
            pool.shutdown(wait=True)
        if isinstance(exc, BrokenProcessPool) and received_signal() is not None:
            raise Interrupted(received_signal()) from None  # the workers saw the stop signal first
        raise
    pool.shutdown(wait=True)
