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

__all__ = ["ProgressCallback", "announce_total", "progress_bar", "setup_logging"]

#: Called with the number of items finished since the last call.
ProgressCallback = Callable[[int], None]

_quiet = False


def setup_logging(verbosity: int) -> None:
    """Configure the root logger: 0 = info, 1+ = debug, negative = warnings only (and no progress bars)."""
    global _quiet
    _quiet = verbosity < 0
    level = logging.DEBUG if verbosity > 0 else logging.INFO if verbosity == 0 else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr,
                        force=True)


class _Bar:
    """The callback :func:`progress_bar` yields: call it with the items done; it can learn its total late."""

    def __init__(self, bar: object) -> None:
        self._bar = bar

    def __call__(self, done: int) -> None:
        self._bar.update(done)  # type: ignore[attr-defined]

    def set_total(self, total: int) -> None:
        self._bar.total = total  # type: ignore[attr-defined]
        self._bar.refresh()  # type: ignore[attr-defined]


def announce_total(progress: ProgressCallback | None, total: int) -> None:
    """Tell a progress callback how many items will come, once the library knows (steps of a training run,
    samples of a split); the CLI's bar then shows an ETA. Plain callables are left alone."""
    set_total = getattr(progress, "set_total", None)
    if set_total is not None:
        set_total(total)


@contextlib.contextmanager
def progress_bar(total: int | None, description: str, *, unit: str = "pair") -> Iterator[ProgressCallback]:
    """Yield a callback that advances a tqdm bar (with ETA) on stderr; silent under ``-q``.

    Pass ``total`` when the CLI knows it; otherwise the library announces it with :func:`announce_total`.
    """
    from tqdm import tqdm

    with tqdm(total=total, desc=description, unit=unit, disable=_quiet, dynamic_ncols=True,
              file=sys.stderr, leave=True) as bar:
        yield _Bar(bar)
