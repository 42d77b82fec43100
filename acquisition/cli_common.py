"""Options and error handling shared by every ``prep`` command (the CLI layer only).

A command parses options, calls a library function and formats the result. :func:`reports_errors` turns a
:class:`~acquisition.errors.PrepError` into one clear line and exit status 1, and Ctrl-C, ``kill`` (SIGTERM) or
a closed terminal (SIGHUP) into exit 128 + the signal number (130 for Ctrl-C) with a note that finished work
is kept and how to go on.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from .errors import PrepError
from .interrupts import exit_at_further_stop, handle_stop_signals, raise_if_interrupted
from .progress import take_open_line
from .words import percent

__all__ = ["FiniteFloatRange", "environment", "force_option", "input_dir", "min_face_option", "output_dir",
           "reports_errors", "seed_option", "workers_option"]

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("prep")


def reports_errors(command: F | None = None, *,
                   resume_needed: Callable[[dict[str, Any]], bool] | None = None) -> Any:
    """Wrap a command body: PrepError → ``Error: <file>: <what> (<fix>)``, exit 1; a stop signal → exit 128 + N.

    Used bare (``@reports_errors``) or with ``resume_needed``: for a command with ``--resume``, whether a run
    called with these parameters has left what a plain re-run refuses (``prep train`` stopped before its first
    checkpoint has not: the same command starts it again), so the note says ``--resume`` only then.

    SIGTERM and SIGHUP are raised like Ctrl-C (:mod:`acquisition.interrupts`), so the same clean-up runs for
    all three: Ctrl-C exits 130, ``kill`` 143, a closed terminal 129.

    The toolkit's library functions raise ``ValueError`` for bad arguments and for nothing else (a subject name
    with ``..``, a size that is not a multiple of 32); coming from a command line, those are usage errors: exit 2
    with the message, no traceback. A ``ValueError`` raised inside another library (torch, numpy, h5py ...)
    is a failure of the run, not of the command line: one line, exit 1 (``-v`` logs the traceback). So is
    running out of memory, wherever it happens (``MemoryError``; OpenCV's "Insufficient memory").

    The note of a stop is printed once, while the command's own handlers are still in place: a further stop
    during the clean-up ends the command with the first stop's status, one during the note ends the process
    at once with it, and one after it meets the entry point's handlers (:mod:`acquisition._entry`), which do the
    same.
    """

    if command is None:
        return functools.partial(reports_errors, resume_needed=resume_needed)

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        noted: list[bool] = []
        try:
            with handle_stop_signals():
                try:
                    return command(*args, **kwargs)
                except Exception:
                    # After a stop signal, what failed is a consequence of it (a worker process that saw the
                    # signal first, a library that swallowed it): report the interruption.
                    raise_if_interrupted()
                    raise
                except KeyboardInterrupt as exc:
                    _note_stop(exc, _way_on(kwargs, resume_needed), noted)
                    raise
        except PrepError as exc:
            raise click.ClickException(str(exc)) from exc
        except ValueError as exc:
            log.debug("the value error behind this message", exc_info=True)  # -v shows where it came from
            origin = _raising_package(exc)
            if origin in _toolkit_packages():
                raise click.UsageError(str(exc)) from exc
            raise click.ClickException(f"{exc} (a failure inside {origin}; run with -v for where)") from exc
        except Exception as exc:
            if not _out_of_memory(exc):
                raise
            log.debug("the allocation that failed", exc_info=True)
            detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise click.ClickException(f"this computer ran out of memory ({detail.strip()[:200]}): close other "
                                       f"programs, or use smaller pictures or fewer --workers; "
                                       f"{_way_on(kwargs, resume_needed)} "
                                       "(-v shows where)") from exc
        except KeyboardInterrupt as exc:  # a stop raised before its note was out (a second one, at once)
            if not noted:
                _note_stop(exc, _way_on(kwargs, resume_needed), noted)
            raise SystemExit(getattr(exc, "exit_status", 130)) from None

    return wrapper  # type: ignore[return-value]


def _way_on(params: dict[str, Any], resume_needed: Callable[[dict[str, Any]], bool] | None = None) -> str:
    """How to carry on after a stop or a failure, for a command called with ``params``: the same command line,
    with ``--resume`` where the command has that option, it was left out and the run needs it (``prep capture``
    and ``prep train`` refuse a folder they have started without it)."""
    if params.get("resume") is False and (resume_needed is None or resume_needed(params)):
        return "run the same command with --resume to continue"
    return "run the same command again to resume"


def _note_stop(exc: KeyboardInterrupt, way_on: str, noted: list[bool]) -> None:
    """Say once that the command was stopped, and how to go on; a further stop meanwhile exits at once."""
    status = getattr(exc, "exit_status", 130)
    with exit_at_further_stop(status):
        if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 says it for every process
            start = "\n" if take_open_line() else ""  # a bar or a question left its line open: end it first
            click.echo(f"{start}Interrupted ({getattr(exc, 'signal_name', 'SIGINT')}): finished work is kept; "
                       f"{way_on}.", err=True)
        noted.append(True)


def _out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says an allocation failed: Python's ``MemoryError``, or OpenCV's "Insufficient memory"
    (``cv2.error``, raised where a library cannot allocate an image)."""
    return isinstance(exc, MemoryError) or "Insufficient memory" in str(exc)


def _raising_package(exc: BaseException) -> str:
    """The top-level package of the code that raised ``exc`` (its innermost traceback frame)."""
    tb, name = exc.__traceback__, ""
    while tb is not None:
        name = tb.tb_frame.f_globals.get("__name__", "") or ""
        tb = tb.tb_next
    return name.split(".")[0]


def _toolkit_packages() -> set[str]:
    from .prep import STAGE_CLIS  # late: prep imports the stages' CLIs, which import this module

    return {module.split(".")[0] for module in STAGE_CLIS}


class FiniteFloatRange(click.FloatRange):
    """click's FloatRange that also refuses ``nan`` and ``inf``: every float option of every command uses it.

    ``float("nan")`` passes click's range check (each comparison with NaN is false), and a NaN wait never ends.
    Without bounds it is a plain finite float (``FiniteFloatRange()``).
    """

    name = "float"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        converted = super().convert(value, param, ctx)
        if not math.isfinite(converted):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return converted


def workers_option(command: F) -> F:
    """``--workers N``: processes in the pool; outputs are identical for any N."""
    return click.option("--workers", "-j", type=click.IntRange(min=1), default=1, show_default=True,
                        help="Parallel worker processes (outputs are identical for any number).")(command)


def force_option(command: F) -> F:
    """``--force``: redo items whose outputs are already complete."""
    return click.option("--force", is_flag=True, help="Redo finished items instead of skipping them.")(command)


def min_face_option(command: F | None = None, *, default_fraction: float = 0.02) -> F | Callable[[F], F]:
    """``--min-face-px PX``: the smallest face searched for (:func:`acquisition.faces.detect_faces`).

    Used bare (``@min_face_option``) it documents the toolkit's default (``DEFAULT_MIN_FACE_FRACTION`` of
    :mod:`acquisition.faces`, not imported here: it loads OpenCV); a stage with its own default says so with
    ``@min_face_option(default_fraction=0.05)``.
    """
    def decorate(inner: F) -> F:
        return click.option("--min-face-px", type=FiniteFloatRange(min=1), default=None, metavar="PX",
                            help=f"Smallest face width to search for, in pixels of the full photo (default: "
                                 f"{percent(default_fraction)} of its longer side). Lower finds smaller faces; a photo "
                                 "without a face then takes longer.")(inner)

    return decorate(command) if command is not None else decorate


@contextlib.contextmanager
def environment(name: str, value: object | None) -> Iterator[None]:
    """Set an environment variable for the duration of a command (None: leave it as it is), then restore it.

    For settings that library code and worker processes read from the environment
    (``DEEPFLASH_MAX_IMAGE_PIXELS``, ``DEEPFLASH_MIN_FACE_PX``): workers inherit it, and a command run
    in-process (tests, notebooks) leaves no trace.
    """
    if value is None:
        yield
        return
    before = os.environ.get(name)
    os.environ[name] = str(value)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def seed_option(command: F) -> F:
    """``--seed S``: every random choice derives from it."""
    return click.option("--seed", type=int, default=0, show_default=True,
                        help="Random seed; the same seed gives the same output.")(command)


def input_dir(name: str) -> Callable[[F], F]:
    """A positional argument naming an existing folder."""
    return click.argument(name, type=click.Path(exists=True, file_okay=False, path_type=Path))


def output_dir(name: str) -> Callable[[F], F]:
    """A positional argument naming an output folder (created when missing)."""
    return click.argument(name, type=click.Path(file_okay=False, path_type=Path))
