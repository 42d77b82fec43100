"""Stop signals: Ctrl-C, ``kill`` and a closed terminal stop a command alike, through the same clean-up."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
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


# -- stops while prep loads, a second stop, the note's first line ---------------------------------------------

_REPO = Path(__file__).resolve().parents[1]

# ``prep`` as its console script runs it, with loading click made slow (a cold disk): the test stops it there.
_SLOW_LOAD = '''
import sys, time
class SlowDisk:
    def find_spec(self, name, path=None, target=None):
        if name == "click":
            print("loading", flush=True)
            time.sleep(30)
        return None
sys.meta_path.insert(0, SlowDisk())
from acquisition._entry import run
run()
'''


@contextlib.contextmanager
def _spawned(script: str, *args: str) -> Iterator[subprocess.Popen]:
    """``python -c script args`` in its own session, killed on the way out if a check failed before it ended."""
    env = {**os.environ, "PYTHONPATH": str(_REPO)}
    process = subprocess.Popen([sys.executable, "-c", script, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _wait_for_line(process: subprocess.Popen, line: str) -> None:
    assert process.stdout is not None
    assert process.stdout.readline().strip() == line, process.communicate(timeout=30)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_stop_while_prep_loads_is_one_line_and_128_plus_n(signum: int) -> None:
    with _spawned(_SLOW_LOAD, "--version") as process:
        _wait_for_line(process, "loading")
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 128 + signum, stderr
    assert stderr == f"Interrupted ({signal.Signals(signum).name}) while starting, before any work; run the same " \
                     "command again.\n"


def test_a_stop_while_the_interrupts_module_is_half_imported_is_one_line() -> None:
    """A tester's Ctrl-C ~50 ms after start (2 of 50) met acquisition.interrupts half-imported: AttributeError."""
    code = ("import signal, sys, types; from acquisition import _entry; "
            "sys.modules['acquisition.interrupts'] = types.ModuleType('acquisition.interrupts'); "
            "_entry._on_stop(signal.SIGINT, None)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=_REPO,
                          env={**os.environ, "PYTHONPATH": str(_REPO)})
    assert (done.returncode, done.stderr) == (130, "Interrupted (SIGINT) while starting, before any work; run the "
                                                    "same command again.\n")


def test_the_console_script_handles_stops_before_it_loads_anything_heavy() -> None:
    import tomllib

    scripts = tomllib.loads((_REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["prep"] == "acquisition._entry:run"
    code = "import sys; before = set(sys.modules); import acquisition._entry; print(sorted(set(sys.modules) - before))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=_REPO,
                            env={**os.environ, "PYTHONPATH": str(_REPO)}).stdout
    assert "click" not in loaded and "importlib.metadata" not in loaded and "acquisition.prep" not in loaded, loaded


# A command whose clean-up and whose exit (a library's at-exit teardown) are slow, run like the console script.
_TWO_STOPS = '''
import atexit, os, sys, time
from pathlib import Path
from acquisition._entry import install_stop_handlers
install_stop_handlers()
import click
from acquisition.cli_common import reports_errors

def slow_exit():
    print("exiting", flush=True)
    time.sleep(float(sys.argv[2]))

atexit.register(slow_exit)

class SlowTeardown:  # a module global freed after Python has disabled its signal handling (torch, dlib)
    def __init__(self, seconds):
        self.seconds, self.write, self.sleep = seconds, os.write, time.sleep  # module globals are gone by then

    def __del__(self):
        self.write(1, b"tearing down\\n")
        self.sleep(self.seconds)

kept_to_the_end = SlowTeardown(float(sys.argv[5]))

@click.command()
@click.option("--resume", is_flag=True)
@reports_errors
def slow(resume):
    try:
        print("running", flush=True)
        time.sleep(30)
    finally:
        print("cleaning up", flush=True)
        time.sleep(float(sys.argv[1]))
        Path(sys.argv[3]).write_text("cleaned up")

slow(sys.argv[6:])
'''


@pytest.mark.parametrize("second_at", ["cleaning up", "exiting", "tearing down"])
@pytest.mark.parametrize(("first", "second"), [(signal.SIGINT, signal.SIGTERM), (signal.SIGTERM, signal.SIGINT),
                                               (signal.SIGHUP, signal.SIGHUP)])
def test_a_second_stop_keeps_the_first_ones_status_and_one_line(tmp_path: Path, first: int, second: int,
                                                                 second_at: str) -> None:
    marker = tmp_path / "marker"
    slow = {"cleaning up": ("30", "0", "0"), "exiting": ("0", "30", "0"), "tearing down": ("0", "0", "2")}[second_at]
    with _spawned(_TWO_STOPS, *slow[:2], str(marker), "", slow[2]) as process:  # seconds: clean-up, exit, teardown
        _wait_for_line(process, "running")
        process.send_signal(first)
        _wait_for_line(process, "cleaning up")
        if second_at != "cleaning up":
            _wait_for_line(process, "exiting")
        if second_at == "tearing down":
            _wait_for_line(process, "tearing down")
        process.send_signal(second)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 128 + first, stderr
    # -q, no bar: the note is the first line, with no empty line above it
    assert stderr == f"Interrupted ({signal.Signals(first).name}): finished work is kept; run the same command " \
                     "with --resume to continue.\n"
    assert marker.exists() == (second_at != "cleaning up")  # a second stop still cuts a hung clean-up short


_QUESTION = '''
import sys
from acquisition._entry import install_stop_handlers
install_stop_handlers()
import click
from acquisition.cli import _answer
from acquisition.cli_common import reports_errors

@click.command()
@click.option("--resume", is_flag=True)
@reports_errors
def ask(resume):
    print("asking", flush=True)
    _answer("Retake this pose?")

ask(sys.argv[1:])
'''


def test_a_stop_at_a_question_starts_the_note_on_a_line_of_its_own() -> None:
    with _spawned(_QUESTION, "--resume") as process:
        _wait_for_line(process, "asking")
        time.sleep(0.3)  # the question is out; standard input stays open, unanswered
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 143, stderr
    assert stderr == "Retake this pose?: \nInterrupted (SIGTERM): finished work is kept; run the same command again " \
                     "to resume.\n"
