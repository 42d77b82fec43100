"""Logging and progress bars for the command line.

Library functions never print: they take an optional ``progress`` callback (called with the number of items
just finished) and log through :mod:`logging`. The CLI turns ``-v``/``-q`` into a log level with
:func:`setup_logging` and draws a bar with ETA with :func:`progress_bar`.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator

__all__ = ["ProgressCallback", "announce_total", "asking", "progress_bar", "say", "setup_logging", "take_open_line"]

#: Called with the number of items finished since the last call.
ProgressCallback = Callable[[int], None]

_quiet = False
# Whether standard error's last line is unfinished: a progress bar drawn and not closed, a question unanswered.
_line_open = False


def setup_logging(verbosity: int) -> None:
    """Configure the root logger: 0 = info, 1+ = debug, negative = warnings only (and no progress bars)."""
    global _quiet, _line_open
    _quiet, _line_open = verbosity < 0, False
    level = logging.DEBUG if verbosity > 0 else logging.INFO if verbosity == 0 else logging.WARNING
    handler = _AboveBars()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)


def take_open_line() -> bool:
    """Whether standard error's last line was left unfinished (a bar, a question cut short by a stop); a caller
    about to print a line of its own ends it first, and from then on it counts as ended."""
    global _line_open
    was_open, _line_open = _line_open, False
    return was_open


@contextlib.contextmanager
def asking() -> Iterator[None]:
    """Around a question asked on standard error: its line stays open until it is answered (the Enter ends
    it), so that a stop meanwhile starts its note on a line of its own."""
    global _line_open
    _line_open = True
    yield  # not in a finally: a question cut short leaves its line open
    _line_open = False


def say(line: str) -> None:
    """Print one line for people on standard error, above any progress bar (never glued onto its line)."""
    from tqdm import tqdm

    tqdm.write(line, file=sys.stderr)


class _AboveBars(logging.StreamHandler):
    """Log lines written above the progress bars: tqdm clears the bar, writes the line, draws the bar again
    (a plain stream glued "INFO ... captured" onto the bar's line in a log file)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            say(self.format(record))
        except Exception:  # logging's own convention: report, never raise
            self.handleError(record)


class _Bar:
    """The callback :func:`progress_bar` yields: call it with the items done; it can learn its total late.

    The bar is drawn at the first call or :meth:`set_total`, not before: a command that refuses to start (a
    folder another run holds, a bad argument) prints its one line without a bar drawn above it. Libraries
    announce the total (:func:`announce_total`) once their checks have passed.
    """

    def __init__(self, make: Callable[[int | None], object], total: int | None) -> None:
        self._make = make
        self._total = total
        self._bar: object | None = None

    def _drawn(self) -> object:
        global _line_open
        if self._bar is None:
            self._bar = self._make(self._total)
            _line_open = _line_open or not self._bar.disable  # type: ignore[attr-defined]
        return self._bar

    def __call__(self, done: int) -> None:
        self._drawn().update(done)  # type: ignore[attr-defined]

    def set_total(self, total: int) -> None:
        self._total = total
        bar = self._drawn()
        bar.total = total  # type: ignore[attr-defined]
        bar.refresh()  # type: ignore[attr-defined]

    def close(self) -> None:
        global _line_open
        if self._bar is not None:
            drawn = not self._bar.disable  # type: ignore[attr-defined]
            self._bar.close()  # type: ignore[attr-defined]
            _line_open = _line_open and not drawn  # closing ends the bar's line (tqdm's leave=True)


def announce_total(progress: ProgressCallback | None, total: int) -> None:
    """Tell a progress callback how many items will come, once the library knows (steps of a training run,
    samples of a split); the CLI's bar then shows an ETA. Plain callables are left alone."""
    set_total = getattr(progress, "set_total", None)
    if set_total is not None:
        set_total(total)


@contextlib.contextmanager
def progress_bar(total: int | None, description: str, *, unit: str = "pair") -> Iterator[ProgressCallback]:
    """Yield a callback that advances a tqdm bar (with ETA) on stderr; silent under ``-q``.

    Pass ``total`` when the CLI knows it; otherwise the library announces it with :func:`announce_total`. The
    bar is drawn at the first progress or announcement (after the library's checks), never before.
    """
    from tqdm import tqdm

    def make(known: int | None) -> object:
        return tqdm(total=known, desc=description, unit=unit, disable=_quiet, dynamic_ncols=True, file=sys.stderr,
                    leave=True)

    bar = _Bar(make, total)
    try:
        yield bar
    finally:
        bar.close()
