"""Stop signals, handled once for every stage: Ctrl-C, ``kill`` and a closed terminal stop a command alike.

Python turns only SIGINT (Ctrl-C) into :class:`KeyboardInterrupt`; ``kill PID`` (SIGTERM) and closing the
terminal (SIGHUP) end the process at once, with lamps left lit, temporary files left behind and records left
saying "running". Inside :func:`handle_stop_signals` all three raise :class:`Interrupted`, a
``KeyboardInterrupt``, so every ``except KeyboardInterrupt`` / ``finally`` clean-up that already serves Ctrl-C
serves them too, and the command exits with the shell's convention ``128 + signal number`` (130, 143, 129).

Code that runs Python callbacks inside a C++ library (SimpleITK's iteration observers) may see the exception
swallowed and re-raised as the library's own error; :func:`raise_if_interrupted` turns that back into the
interruption it was. Python itself swallows an exception raised where it cannot propagate (a ``weakref``
callback, an at-fork hook, ``__del__``) and prints "Exception ignored in ..." with a traceback; inside
:func:`handle_stop_signals` such a swallowed stop is delivered again instead, so it surfaces where it can.
:func:`deferred_stop_signals` holds stops back over a short stretch that must not be cut in two (starting worker
processes) and raises them right after.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType, ModuleType
from typing import Final, NoReturn

__all__ = ["STOP_SIGNALS", "Interrupted", "command_stop_record", "deferred_stop_signals", "exit_at_further_stop",
           "handle_stop_signals", "import_uninterrupted", "raise_if_interrupted", "raise_stop_signal",
           "received_signal", "unblock_stop_signals"]

#: The signals that stop a command: Ctrl-C, ``kill`` and a closed terminal.
STOP_SIGNALS: Final = tuple(s for s in (signal.SIGINT, getattr(signal, "SIGTERM", None),
                                        getattr(signal, "SIGHUP", None)) if s is not None)

_received: int | None = None
# What handle_stop_signals saw in this process, kept after it ends (see command_stop_record).
_command_began = False
_command_stopped_by: int | None = None


class Interrupted(KeyboardInterrupt):
    """A stop signal, raised where the main thread was; a :class:`KeyboardInterrupt`, so Ctrl-C's clean-up runs.

    Attributes
    ----------
    signum : int
        The signal received (``signal.SIGINT``, ``SIGTERM`` or ``SIGHUP``); inside :func:`handle_stop_signals`
        the first one: a further stop during the clean-up raises the same, so the command ends as the first said.
    """

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        super().__init__(self.signal_name)

    @property
    def signal_name(self) -> str:
        """``"SIGINT"``, ``"SIGTERM"``, ``"SIGHUP"``."""
        return signal.Signals(self.signum).name

    @property
    def exit_status(self) -> int:
        """The shell's convention for a process ended by this signal: ``128 + signum`` (Ctrl-C: 130)."""
        return 128 + self.signum


def received_signal() -> int | None:
    """The stop signal received since :func:`handle_stop_signals` was entered, or None."""
    return _received


def raise_if_interrupted() -> None:
    """Raise :class:`Interrupted` again if a stop signal arrived, e.g. after a library swallowed it.

    Call it where a library converts exceptions raised in Python callbacks into its own error (SimpleITK's
    "error executing the Python Callable"), before treating that error as a failure of the item.
    """
    if _received is not None:
        raise Interrupted(_received)


def raise_stop_signal(signum: int) -> NoReturn:
    """Record ``signum`` as received and raise :class:`Interrupted`: the body of every stop-signal handler
    (this module's, and a worker process's in :mod:`acquisition.parallel`).

    A further stop (Ctrl-C pressed again during a slow clean-up) raises the first one again: it still cuts the
    clean-up short, and the command exits with the first stop's status (130 then SIGTERM: still 130).
    """
    global _received
    if _received is None:
        _received = signum
    raise Interrupted(_received)


def _handler(signum: int, _frame: FrameType | None) -> None:
    raise_stop_signal(signum)


@contextlib.contextmanager
def handle_stop_signals() -> Iterator[None]:
    """Within this block, SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted` in the main thread.

    Outside the main thread (where Python cannot install handlers) it does nothing. The previous handlers are
    restored on the way out, so it nests and suits tests that run commands in-process.

    Examples
    --------
    >>> with handle_stop_signals():          # doctest: +SKIP
    ...     run_the_command()
    """
    global _received, _command_began, _command_stopped_by
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    outer, outer_hook = _received, sys.unraisablehook
    _received, _command_began, _command_stopped_by = None, True, None
    try:
        sys.unraisablehook = _redeliver_swallowed_stop
        for signum in STOP_SIGNALS:
            signal.signal(signum, _handler)
        yield
    finally:
        _command_stopped_by = _received  # before the previous handlers are back: they may read it at once
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        sys.unraisablehook = outer_hook
        _received = outer


def command_stop_record() -> tuple[bool, int | None]:
    """Whether a command has entered :func:`handle_stop_signals` in this process, and the stop that ended it.

    Kept after the block ends, for the handlers of a process's entry point (:mod:`acquisition._entry`), which
    are back in place while the command's exit unwinds and the interpreter shuts down: a stop there ends the
    process at once with the first stop's status (no second note, no default action's -2 or -15).

    Returns
    -------
    began : bool
        True once a :func:`handle_stop_signals` block has been entered.
    stopped_by : int or None
        The first stop signal received in the last block to end, or None (it ended without one, or none ended).
    """
    return _command_began, _command_stopped_by


@contextlib.contextmanager
def exit_at_further_stop(status: int) -> Iterator[None]:
    """Over a short stretch after a stop (saying so): a further stop ends the process at once with ``status``.

    A further stop there would otherwise cut the note in two, or print it twice; ignoring it instead would leave a
    write to a stalled pipe unstoppable. Only in the main thread; the previous handlers come back afterwards.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def leave(_signum: int, _frame: FrameType | None) -> None:
        os._exit(status)

    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    try:
        for signum in STOP_SIGNALS:
            signal.signal(signum, leave)
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def _redeliver_swallowed_stop(unraisable: sys.UnraisableHookArgs) -> None:
    """A stop raised where Python cannot propagate it (it would print "Exception ignored in ..." and go on):
    send the signal again, so that it is raised at the next point where it can stop the command."""
    if isinstance(unraisable.exc_value, Interrupted):
        os.kill(os.getpid(), unraisable.exc_value.signum)
        return
    sys.__unraisablehook__(unraisable)


@contextlib.contextmanager
def deferred_stop_signals() -> Iterator[None]:
    """Hold stop signals back over a short stretch, then hand one received meanwhile to the handler in place.

    For code that must not be cut in two, above all starting worker processes: a fork copies the handlers, and
    a stop raised inside an at-fork hook or half-way through starting a pool is swallowed or leaves workers
    unaccounted for ("DataLoader worker exited unexpectedly"); or creating a file that only the code after it
    would delete. So a stop inside :func:`handle_stop_signals` raises :class:`Interrupted` at the block's end (and
    a worker's own handler, or Python's Ctrl-C handler, runs there likewise). A stop received before the block is
    not raised again, so clean-up after a stop may use it. Only in the main thread, where a Python handler is in
    place; nested, the outer block holds the stops.
    """
    handlers = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    if (threading.current_thread() is not threading.main_thread() or not callable(handlers[signal.SIGINT])
            or getattr(handlers[signal.SIGINT], "holds_stops", False)):
        yield
        return
    held: list[int] = []

    def hold(signum: int, _frame: FrameType | None) -> None:
        held.append(signum)

    hold.holds_stops = True  # type: ignore[attr-defined]
    # Blocked too: a child started here (fork, or spawn: the mask survives exec) gets no stop before it has set
    # up its own handling and called unblock_stop_signals(); a fresh interpreter hit during start-up crashes.
    masked = hasattr(signal, "pthread_sigmask")
    try:
        for signum in STOP_SIGNALS:
            signal.signal(signum, hold)
        if masked:
            signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        yield
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        if masked:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # a pending stop goes to its handler here
        if held:  # caught by another thread's unblocked mask, or before the block: delivered, even after an error
            handler = handlers[held[0]]
            if callable(handler):
                handler(held[0], None)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(held[0])


def unblock_stop_signals() -> None:
    """In a worker process started inside :func:`deferred_stop_signals`: accept stop signals again (call it once
    the worker's own handlers are in place)."""
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def import_uninterrupted(name: str) -> ModuleType:
    """``importlib.import_module(name)`` with stop signals held back until the import has finished.

    For the toolkit's lazy imports of compiled libraries (face_recognition's dlib, gphoto2, SimpleITK): a stop
    raised inside a pybind11 module's initialisation comes out as ``ImportError: initialization failed``, which
    reads as "not installed" (a capture went on without face detection, exit 0), and the half-registered module
    then fails every later import in the process ("generic_type: type ... is already registered!"). Held back,
    the stop is raised right after the import, as the interruption it is.

    Raises
    ------
    ImportError
        The module is not installed (or fails to import on its own).
    Interrupted
        A stop signal arrived during the import.
    """
    with deferred_stop_signals():
        return importlib.import_module(name)
