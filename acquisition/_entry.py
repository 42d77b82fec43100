"""The ``prep`` console script: stop signals are handled from its first line, not once the toolkit has loaded.

Loading click, the stages' commands and their libraries takes a few hundred milliseconds; Python's own
handlers there turn Ctrl-C into a ``KeyboardInterrupt`` traceback and ``kill`` into a silent death (-15). So
this module imports only ``os``, ``signal`` and ``sys``, installs handlers that say one line and exit
``128 + N`` (nothing to clean up yet), then loads :mod:`acquisition.prep`. Each command's
:func:`~acquisition.interrupts.handle_stop_signals` takes over while it runs and puts these back when it ends; a
stop after that (the exit unwinding, the exit hooks) ends the process at once with the status of the stop that
ended the command, or says it came after the command; once the exit hooks have run, stops are ignored. Only
Python's own start-up, before this module runs (~15 ms), keeps Python's default handling.
"""

import os
import signal
import sys

__all__ = ["install_stop_handlers", "run"]

_STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


def _on_stop(signum: int, _frame: object) -> None:
    """Outside a command's own handling: one line unless the command already said it, then exit at once."""
    # The module may be half-imported when the stop comes (it is loading): then no command has begun.
    record = getattr(sys.modules.get("acquisition.interrupts"), "command_stop_record", None)
    began, stopped_by = record() if record is not None else (False, None)
    if stopped_by is not None:  # the command was stopped and said so: a further stop while it exits
        status = 128 + stopped_by
    else:
        status = 128 + signum
        when = ("while exiting, after the command had ended" if began else
                "while starting, before any work; run the same command again")
        _flush()
        if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 says it for every process
            os.write(2, f"Interrupted ({signal.Signals(signum).name}) {when}.\n".encode())
    _flush()
    os._exit(status)


def _flush() -> None:
    """What the command printed comes out before ``os._exit`` (which skips Python's own flush)."""
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105 (no contextlib: this module loads before the handlers, so it loads little)
            stream.flush()
        except Exception:  # a closed pipe, or the write this handler interrupted: nothing more to save
            pass


def _ignore_stops_from_now_on() -> None:
    """The last exit hook: from here on a stop is ignored, as the process is all but gone.

    After the exit hooks Python disables its signal handling, putting the default action back for every signal
    that had a Python handler, and then tears the modules down (torch, dlib: seconds, sometimes): a stop there
    ended the process as killed (-2, -15) after its note had been printed. ``SIG_IGN`` is left as it is.
    """
    for signum in _STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def install_stop_handlers() -> None:
    """Install this module's handlers for SIGINT, SIGTERM and SIGHUP (the first thing an entry point does)."""
    import atexit

    atexit.register(_ignore_stops_from_now_on)  # registered first, so it runs last of the exit hooks
    for signum in _STOP_SIGNALS:
        signal.signal(signum, _on_stop)


def run() -> None:
    """The ``prep`` console script (``[project.scripts]`` in pyproject.toml)."""
    install_stop_handlers()
    from acquisition.prep import main

    main(prog_name="prep")
