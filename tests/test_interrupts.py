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


def _stop_right_after(function):
    """``function``, followed at once by a Ctrl-C to this process (where a real one may land)."""

    def then_stop(*args, **kwargs):
        result = function(*args, **kwargs)
        signal.raise_signal(signal.SIGINT)
        return result

    return then_stop


@pytest.mark.parametrize("step", ["_open_lock_file", "_lock", "_read_owner"])
def test_a_stop_while_a_folder_is_claimed_leaves_no_lock_behind(tmp_path: Path, monkeypatch, step: str) -> None:
    """CI caught ``prep build-h5`` stopped just as its lock file appeared: the file stayed, the folder looked busy."""
    from acquisition import runlock
    from acquisition.interrupts import Interrupted, handle_stop_signals

    monkeypatch.setattr(runlock, step, _stop_right_after(getattr(runlock, step)))
    with handle_stop_signals(), pytest.raises(Interrupted):
        runlock.claim_folder(tmp_path / "shards")
    assert not (tmp_path / "shards").exists()  # made by the claim, left empty: gone with it
    monkeypatch.undo()
    (tmp_path / "shards").mkdir()
    with handle_stop_signals(), pytest.raises(Interrupted), monkeypatch.context() as patched:
        patched.setattr(runlock, step, _stop_right_after(getattr(runlock, step)))
        runlock.claim_folder(tmp_path / "shards")
    assert list((tmp_path / "shards").iterdir()) == []
    with runlock.claim_folder(tmp_path / "shards") as lock:  # free, and taken without a notice
        assert lock.taken_over is None


@pytest.mark.parametrize("writer", ["atomic_write", "atomic_path"])
def test_a_stop_as_a_temporary_file_is_made_leaves_none_behind(tmp_path: Path, monkeypatch, writer: str) -> None:
    from acquisition import atomic
    from acquisition.interrupts import Interrupted, handle_stop_signals

    target = tmp_path / "pose" / "registration.json"
    target.parent.mkdir()
    target.write_text("kept")
    monkeypatch.setattr(atomic.tempfile, "mkstemp", _stop_right_after(atomic.tempfile.mkstemp))
    with handle_stop_signals(), pytest.raises(Interrupted), getattr(atomic, writer)(target) as handle_or_path:
        raise AssertionError(f"the stop was not raised before the block ({handle_or_path})")
    assert [p.name for p in target.parent.iterdir()] == ["registration.json"] and target.read_text() == "kept"


def test_clean_up_after_a_stop_still_writes_and_a_held_stop_reaches_the_handler_in_place(tmp_path: Path) -> None:
    from acquisition.atomic import write_text_atomic
    from acquisition.interrupts import Interrupted, deferred_stop_signals, handle_stop_signals

    with handle_stop_signals():
        try:
            signal.raise_signal(signal.SIGTERM)
        except Interrupted:
            write_text_atomic(tmp_path / "status.txt", "interrupted")  # the stop above is not raised again
    assert (tmp_path / "status.txt").read_text() == "interrupted"
    seen: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: seen.append(signum))  # e.g. a worker's handler
    try:
        with deferred_stop_signals():
            signal.raise_signal(signal.SIGINT)
            assert seen == []  # held
        assert seen == [signal.SIGINT]
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_stop_held_while_the_block_fails_is_still_delivered() -> None:
    """The error of the block (e.g. "folder is busy") does not swallow a Ctrl-C that came meanwhile, also when
    another thread (a pool's, a progress bar's: their masks are not blocked) took the signal."""
    import os
    import threading

    from acquisition.interrupts import Interrupted, deferred_stop_signals, handle_stop_signals

    go, sent = threading.Event(), threading.Event()

    def sender() -> None:
        go.wait(10)
        os.kill(os.getpid(), signal.SIGINT)
        sent.set()

    thread = threading.Thread(target=sender)
    thread.start()  # before the block: its mask lets the signal in
    with handle_stop_signals(), pytest.raises(Interrupted) as caught, deferred_stop_signals():
        go.set()
        assert sent.wait(10)
        time.sleep(0.05)  # the main thread's handler runs at its next check
        raise OSError("the block's own failure")
    thread.join()
    assert isinstance(caught.value.__context__, OSError)


_CUT_IMPORT = '''
import os, signal, sys
from acquisition.faces import load_face_recognition
from acquisition.interrupts import Interrupted, handle_stop_signals

class StopAsDlibStarts:  # Ctrl-C just as dlib's compiled module is loaded
    def find_spec(self, name, path=None, target=None):
        if name == "_dlib_pybind11":
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, StopAsDlibStarts())
with handle_stop_signals():
    try:
        load_face_recognition()
    except Interrupted:
        print("interrupted")
    except Exception as exc:
        print("failed:", exc)
print("imported whole:", "face_recognition" in sys.modules and "_dlib_pybind11" in sys.modules)
'''


def test_a_stop_during_the_lazy_import_of_dlib_is_the_interruption_and_the_import_completes(tmp_path: Path) -> None:
    """A tester's capture stopped as face_recognition was first imported went on without face detection, exit 0:
    pybind11 reports a stop inside its start-up as ``ImportError: initialization failed`` ("not installed"),
    and every later import in the process failed ("type ... is already registered")."""
    import os

    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", _CUT_IMPORT], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(repo)}, cwd=tmp_path)
    assert done.stdout.split("\n")[:2] == ["interrupted", "imported whole: True"], done.stdout + done.stderr
