"""Stop signals: Ctrl-C, ``kill`` and a closed terminal stop a command alike, through the same clean-up."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

_COMMAND = '''
import sys, time
from pathlib import Path
import click
from acquisition.cli_common import reports_errors

@click.command()
@reports_errors
def slow():
    marker = Path(sys.argv[1])
    try:
        marker.write_text("running")
        time.sleep(30)
    finally:
        marker.write_text("cleaned up")

slow(sys.argv[2:])
'''


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_each_stop_signal_runs_the_clean_up_and_exits_128_plus_n(tmp_path: Path, signum: int) -> None:
    marker = tmp_path / "marker"
    process = subprocess.Popen([sys.executable, "-c", _COMMAND, str(marker)], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 128 + signum
    assert marker.read_text() == "cleaned up"
    assert f"Interrupted ({signal.Signals(signum).name})" in stderr and "Traceback" not in stderr


def test_handlers_are_restored_and_a_swallowed_signal_is_raised_again() -> None:
    from acquisition.interrupts import Interrupted, handle_stop_signals, raise_if_interrupted, received_signal

    before = signal.getsignal(signal.SIGTERM)
    with handle_stop_signals():
        with pytest.raises(Interrupted) as caught:
            signal.raise_signal(signal.SIGTERM)
        assert caught.value.exit_status == 143 and isinstance(caught.value, KeyboardInterrupt)
        assert received_signal() == signal.SIGTERM
        with pytest.raises(Interrupted):  # e.g. after SimpleITK turned it into "error executing the Callable"
            raise_if_interrupted()
    assert signal.getsignal(signal.SIGTERM) is before
    assert received_signal() is None
    raise_if_interrupted()  # nothing pending outside
