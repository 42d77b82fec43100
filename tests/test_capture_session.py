"""The capture session: the simulated studio end to end, real-lamp emulators with the simulated camera,
faults (port pulled, camera busy, disk full, Ctrl-C between the shots), resume, retake/skip/quit, rig files."""

from __future__ import annotations

import csv
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from fakes.serial_devices import EnttecEmulator

from acquisition.cameras import open_camera
from acquisition.errors import AcquisitionError, PrepError
from acquisition.lamps import EnttecDmxPro
from acquisition.layout import discover_pairs
from acquisition.prep import main
from acquisition.rig import load_rig
from acquisition.session import SessionConfig, capture_session, simulate_sessions

SMALL = (240, 320)
FAST = SessionConfig(lamp_settle_ms=0, dark_wait_ms=0, expected_size=SMALL)


def _manifest(root: Path) -> list[dict[str, str]]:
    path = root / "manifest.csv"
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _assert_consistent(root: Path) -> list[str]:
    """No half pair visible, one manifest row per complete pose and none for anything else."""
    found = discover_pairs(root)
    assert found.problems == []
    keys = sorted(p.key for p in found.pairs)
    assert sorted(f"{r['subject']}/{r['pose']}" for r in _manifest(root)) == keys
    for pair in found.pairs:
        assert pair.meta is not None
    return keys


def _run(args, **kwargs):
    result = CliRunner().invoke(main, args, **kwargs)
    return result


# -- the virtual studio through the CLI ------------------------------------------------------------------


def test_simulate_cli_writes_a_complete_layout_and_is_deterministic(tmp_path):
    args = ["capture", "--simulate", "--subjects", "2", "--poses", "2", "--size", "480x640", "--seed", "3"]
    first = _run([*args, "--out", str(tmp_path / "a")])
    assert first.exit_code == 0, first.output
    keys = _assert_consistent(tmp_path / "a")
    assert keys == ["astronaut/p01", "astronaut/p02", "grace_hopper/p01", "grace_hopper/p02"]
    meta = json.loads((tmp_path / "a/astronaut/p02/meta.json").read_text())
    assert set(meta["ground_truth_transform"]) == {"matrix", "translation"}
    assert meta["shots"]["flash"]["flash_fired"] is True and meta["shots"]["studio"]["flash_fired"] is False
    assert (meta["shots"]["flash"]["width"], meta["shots"]["flash"]["height"]) == (480, 640)
    assert meta["tool"]["name"] == "deepflash" and "between_shots" in meta["delays_ms"]
    assert json.loads((tmp_path / "a/astronaut/session.json").read_text())["runs"][-1]["status"] == "complete"
    again = _run([*args, "--out", str(tmp_path / "b")])
    assert again.exit_code == 0, again.output
    for key in keys:
        for role in ("flash.jpg", "studio.jpg"):
            assert (tmp_path / "a" / key / role).read_bytes() == (tmp_path / "b" / key / role).read_bytes()
    other = simulate_sessions(tmp_path / "c", subjects=1, poses=1, size=(480, 640), seed=4)
    assert other[0].complete == ("p01",)
    flash = "astronaut/p01/flash.jpg"
    assert (tmp_path / "c" / flash).read_bytes() != (tmp_path / "a" / flash).read_bytes()


def test_simulate_cli_sets_motion_backdrop_and_blinks(tmp_path):
    result = _run(["capture", "--simulate", "--subjects", "1", "--poses", "1", "--size", "240x320", "--motion",
                   "camera", "--backdrop", "room", "--blink-probability", "1", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "astronaut/p01/meta.json").read_text())
    assert (meta["motion"], meta["backdrop"]) == ("camera", "room") and meta["blink"] in ("flash", "studio")
    assert meta["subject_transform"] == {"matrix": [[1.0, 0.0], [0.0, 1.0]], "translation": [0.0, 0.0]}
    assert meta["ground_truth_transform"] == meta["camera_transform"] and meta["head_turn_px"] == 0
    settings = meta["camera"]["settings"]["config"]
    assert (settings["motion"], settings["backdrop"], settings["blink_probability"]) == ("camera", "room", 1.0)
    result = _run(["capture", "--simulate", "--backdrop", "garden", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "garden" in result.output


def test_simulate_asks_for_too_many_subjects_and_refuses_existing_ones(tmp_path):
    result = _run(["capture", "--simulate", "--subjects", "3", "--out", str(tmp_path)])
    assert result.exit_code == 1 and "only 2 portraits" in result.output
    simulate_sessions(tmp_path / "r", subjects=1, poses=1, size=SMALL)
    result = _run(["capture", "--simulate", "--subjects", "1", "--poses", "2", "--size", "240x320",
                   "--out", str(tmp_path / "r")])
    assert result.exit_code == 1 and "already exists" in result.output and "--resume" in result.output


def test_resume_continues_with_the_same_bytes_as_an_uninterrupted_session(tmp_path):
    simulate_sessions(tmp_path / "whole", subjects=1, poses=3, size=SMALL, seed=5)
    simulate_sessions(tmp_path / "parts", subjects=1, poses=1, size=SMALL, seed=5)
    (tmp_path / "parts/astronaut/.p02.partial").mkdir()  # a crash left a staged pose behind
    result = _run(["capture", "--simulate", "--subjects", "1", "--poses", "3", "--size", "240x320", "--seed", "5",
                   "--out", str(tmp_path / "parts"), "--resume"])
    assert result.exit_code == 0, result.output
    assert _assert_consistent(tmp_path / "parts") == ["astronaut/p01", "astronaut/p02", "astronaut/p03"]
    assert not (tmp_path / "parts/astronaut/.p02.partial").exists()
    for pose in ("p01", "p02", "p03"):
        assert (tmp_path / "parts/astronaut" / pose / "flash.jpg").read_bytes() == \
            (tmp_path / "whole/astronaut" / pose / "flash.jpg").read_bytes()
    runs = json.loads((tmp_path / "parts/astronaut/session.json").read_text())["runs"]
    assert [r["resume"] for r in runs] == [False, True] and runs[1]["captured"] == ["p02", "p03"]


# -- real lamps (emulated) with the simulated camera: faults -------------------------------------------


@pytest.fixture()
def rig():
    """An Enttec widget emulator on a pty, its controller, and the simulated camera rendering from it."""
    with EnttecEmulator() as widget:
        lamps = EnttecDmxPro(widget.port, channels=(1, 2, 3, 4))
        camera = open_camera("sim", lamps=lamps, size=SMALL, seed=0)
        yield widget, lamps, camera
        camera.close()
        lamps.close()


def _wait_levels(widget, expected):
    import time

    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline and widget.levels([1, 2, 3, 4]) != expected:
        time.sleep(0.005)
    return widget.levels([1, 2, 3, 4])


def test_real_lamps_with_sim_camera_and_port_pulled_mid_session(rig, tmp_path):
    widget, lamps, camera = rig
    events = []

    def on_event(event):
        events.append(event)
        if event.kind == "captured" and event.pose == "p01":
            widget.unplug()

    with pytest.raises(AcquisitionError, match="lost the Enttec DMX USB Pro") as info:
        capture_session(tmp_path, "S001", lamps, camera, poses=3, config=FAST, on_event=on_event)
    assert widget.port in str(info.value)
    assert _assert_consistent(tmp_path) == ["S001/p01"]
    assert [p.name for p in (tmp_path / "S001").iterdir() if p.name.startswith(".")] == []
    warnings = [e.message for e in events if e.kind == "warning"]
    assert any("could not switch the lamps off" in w for w in warnings)  # said, since it cannot be done
    status = json.loads((tmp_path / "S001/session.json").read_text())["runs"][-1]["status"]
    assert status.startswith("failed") and "lost the Enttec" in status


def _failing_capture(camera, exc_factory):
    real = camera.capture

    def capture(path, *, flash):
        if flash == "on":  # after the studio shot, before the flash shot: between the two shots
            raise exc_factory()
        return real(path, flash=flash)

    camera.capture = capture


def test_camera_busy_leaves_no_half_pair_and_lamps_off(rig, tmp_path):
    from acquisition.cameras import gphoto2_error

    widget, lamps, camera = rig

    class Busy(Exception):
        code = -110

    _failing_capture(camera, lambda: gphoto2_error(Busy(), "taking a picture"))
    with pytest.raises(AcquisitionError, match="camera is busy"):
        capture_session(tmp_path, "S002", lamps, camera, poses=2, config=FAST)
    assert _assert_consistent(tmp_path) == []
    assert list((tmp_path / "S002").iterdir()) == [tmp_path / "S002/session.json"]
    assert _wait_levels(widget, [0, 0, 0, 0]) == [0, 0, 0, 0]


def test_ctrl_c_between_the_shots_keeps_the_lamps_on_when_configured(rig, tmp_path):
    widget, lamps, camera = rig
    capture_session(tmp_path, "S003", lamps, camera, poses=1, config=FAST)
    _failing_capture(camera, KeyboardInterrupt)
    config = SessionConfig(lamp_settle_ms=0, dark_wait_ms=0, lamps_after="on", lamp_level=180)
    with pytest.raises(KeyboardInterrupt):
        capture_session(tmp_path, "S003", lamps, camera, poses=3, config=config, resume=True)
    assert _assert_consistent(tmp_path) == ["S003/p01"]
    assert _wait_levels(widget, [180] * 4) == [180] * 4
    run = json.loads((tmp_path / "S003/session.json").read_text())["runs"][-1]
    assert run["status"] == "interrupted (Ctrl-C)"


def test_disk_full_while_writing_the_flash_shot(rig, tmp_path, monkeypatch):
    widget, lamps, camera = rig
    real_fsync = os.fsync

    def fsync(fd):
        name = os.readlink(f"/proc/self/fd/{fd}")
        if "flash.jpg" in name:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    capture_session(tmp_path, "S004", lamps, camera, poses=1, config=FAST)
    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(PrepError, match="disk is full"):
        capture_session(tmp_path, "S004", lamps, camera, poses=2, config=FAST, resume=True)
    monkeypatch.undo()
    assert _assert_consistent(tmp_path) == ["S004/p01"]
    assert _wait_levels(widget, [0] * 4) == [0] * 4
    # and then the manifest append itself meets a full disk: the file is truncated back, no partial row
    size = (tmp_path / "manifest.csv").stat().st_size
    calls = []

    def fsync_manifest(fd):
        if os.readlink(f"/proc/self/fd/{fd}").endswith("manifest.csv"):
            calls.append(fd)
            if len(calls) == 1:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync_manifest)
    with pytest.raises(PrepError, match="disk is full"):
        capture_session(tmp_path, "S004", lamps, camera, poses=2, config=FAST, resume=True)
    monkeypatch.undo()
    assert (tmp_path / "manifest.csv").stat().st_size == size
    assert _assert_consistent(tmp_path) == ["S004/p01"]


def test_operator_retakes_skips_and_quits(rig, tmp_path):
    _widget, lamps, camera = rig
    answers = iter(["retake", "next", "skip", "quit"])
    prompts = []

    def ask(prompt):
        prompts.append((prompt.next_pose, prompt.last_pose))
        return next(answers)

    result = capture_session(tmp_path, "S005", lamps, camera, poses=5, config=FAST, ask=ask)
    # p01; retake p01; p02; skip p03; quit before p04
    assert prompts == [("p02", "p01"), ("p02", "p01"), ("p03", "p02"), ("p04", "p02")]
    assert [r.pose for r in result.captured] == ["p01", "p01", "p02"]
    assert result.skipped == ("p03",) and result.quit
    assert _assert_consistent(tmp_path) == ["S005/p01", "S005/p02"]
    # resume continues after the last complete pose (the skipped number is free again)
    result = capture_session(tmp_path, "S005", lamps, camera, poses=3, config=FAST, resume=True)
    assert result.complete == ("p01", "p02", "p03") and [r.pose for r in result.captured] == ["p03"]


def test_failed_check_can_be_retried_when_an_operator_is_there(rig, tmp_path):
    _widget, lamps, camera = rig
    real = camera.capture
    failures = iter([True, False, False, False])

    def capture(path, *, flash):
        shot = real(path, flash=flash)
        if flash == "on" and next(failures):
            path.write_bytes(path.read_bytes()[:200])  # a truncated download
        return shot

    camera.capture = capture
    errors = []

    def ask(prompt):
        errors.append(prompt.error)
        return "next"

    result = capture_session(tmp_path, "S006", lamps, camera, poses=2, config=FAST, ask=ask)
    assert "does not decode" in str(errors[0])
    assert result.complete == ("p01", "p02")
    _assert_consistent(tmp_path)


# -- CLI with emulated hardware, rig files, the self-test ------------------------------------------------


def test_cli_real_session_with_emulated_widget_and_rig_file(tmp_path):
    with EnttecEmulator() as widget:
        rig_file = tmp_path / "rig.toml"
        rig_file.write_text(f'lamps = "enttec:{widget.port}"\ncamera = "sim"\ndmx-channels = [1, 2]\n'
                            'lamp_settle_ms = 5\ndark_wait_ms = 5\ndmx_level = 99\n')
        result = _run(["capture", "--subject", "S010", "--poses", "2", "--out", str(tmp_path / "raw"),
                       "--rig", str(rig_file), "--dmx-level", "200", "--size", "240x320"])
        assert result.exit_code == 0, result.output
        assert _assert_consistent(tmp_path / "raw") == ["S010/p01", "S010/p02"]
        meta = json.loads((tmp_path / "raw/S010/p01/meta.json").read_text())
        assert meta["lamps"]["channels"] == [1, 2] and meta["lamps"]["level"] == 200  # the flag won
        assert meta["config"]["lamp_settle_ms"] == 5
        assert widget.levels([1, 2]) == [0, 0]
        check = _run(["capture", "check", "--rig", str(rig_file), "--lamp-settle-ms", "0", "--blinks", "1"])
        assert check.exit_code == 0, check.output
        assert "lamps-on command" in check.output and "lit shot (lamps on, flash off)" in check.output
        assert "dark shot (lamps off, flash on)" in check.output and "flash fired: True" in check.output
    result = _run(["capture", "--subject", "S011", "--lamps", "enttec:/dev/nonexistent", "--camera", "sim",
                   "--out", str(tmp_path / "raw")])
    assert result.exit_code == 1 and "cannot open the Enttec DMX USB Pro port" in result.output
    result = _run(["capture", "--subject", "S011", "--lamps", "dali:x", "--camera", "sim"])
    assert result.exit_code == 2 and "unknown lamp backend" in result.output
    result = _run(["capture", "--subject", "S011"])
    assert result.exit_code == 2 and "--lamps" in result.output


def test_cli_ctrl_c_exits_130_with_a_consistent_layout(tmp_path, monkeypatch):
    from acquisition import sim

    real = sim.SimulatedCamera.capture

    def capture(self, path, *, flash):
        if flash == "on" and self.shot_index >= 3:
            raise KeyboardInterrupt
        return real(self, path, flash=flash)

    monkeypatch.setattr(sim.SimulatedCamera, "capture", capture)
    result = _run(["capture", "--simulate", "--subjects", "1", "--poses", "3", "--size", "240x320",
                   "--out", str(tmp_path)])
    assert result.exit_code == 130
    assert _assert_consistent(tmp_path) == ["astronaut/p01"]


def test_rig_file_errors(tmp_path):
    bad = tmp_path / "rig.toml"
    bad.write_text('lamps = "sim"\nlamp_settle = 3\n')
    with pytest.raises(AcquisitionError, match="unknown key 'lamp_settle'") as info:
        load_rig(bad)
    assert "lamp_settle_ms" in str(info.value)
    bad.write_text("dmx_level = 'high'\n")
    with pytest.raises(AcquisitionError, match="should be a whole number"):
        load_rig(bad)
    bad.write_text("lamps = \n")
    with pytest.raises(AcquisitionError, match="not valid TOML"):
        load_rig(bad)
    assert load_rig(_write(tmp_path / "ok.toml", 'dmx-channels = "1,2"\n')) == {"dmx_channels": "1,2"}


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_cli_prompts_at_a_terminal_and_manual_lamps_wait_for_enter(tmp_path, monkeypatch):
    import acquisition.cli as cli

    monkeypatch.setattr(cli, "_interactive", lambda: True)
    # p01 shot; at the prompt: "x" (not an answer), "r" retakes p01, Enter shoots p02, "q" quits before p03
    result = _run(["capture", "--simulate", "--subjects", "1", "--poses", "3", "--size", "240x320",
                   "--out", str(tmp_path / "a")], input="x\nr\n\nq\n")
    assert result.exit_code == 0, result.output
    assert "Answer with Enter, r, s or q" in result.output and "r retake p01" in result.output
    assert _assert_consistent(tmp_path / "a") == ["astronaut/p01", "astronaut/p02"]
    monkeypatch.setattr(cli, "_interactive", lambda: False)
    # manual lamps: one Enter per switch (on, off per pose, off at the end)
    result = _run(["capture", "--subject", "M01", "--poses", "1", "--lamps", "manual", "--camera", "sim",
                   "--size", "240x320", "--lamp-settle-ms", "0", "--dark-wait-ms", "0",
                   "--out", str(tmp_path / "m")], input="\n\n\n")
    assert result.exit_code == 0, result.output
    assert "Switch the studio lamps ON" in result.output and "Switch the studio lamps OFF" in result.output
    assert _assert_consistent(tmp_path / "m") == ["M01/p01"]
    result = _run(["capture", "--subject", "M02", "--poses", "1", "--lamps", "manual", "--camera", "sim",
                   "--size", "240x320", "--out", str(tmp_path / "m")], input="")
    assert result.exit_code == 1 and "no answer from the operator" in result.output
    assert _assert_consistent(tmp_path / "m") == ["M01/p01"]


def test_ctrl_c_in_the_lamps_off_command_between_the_shots(rig, tmp_path):
    widget, lamps, camera = rig
    real = lamps._set
    interrupted = []

    def _set(on, level):
        if not on and not interrupted:
            interrupted.append(True)
            raise KeyboardInterrupt
        real(on, level)

    lamps._set = _set
    with pytest.raises(KeyboardInterrupt):
        capture_session(tmp_path, "S007", lamps, camera, poses=2, config=FAST)
    assert _assert_consistent(tmp_path) == []
    assert not [p for p in (tmp_path / "S007").iterdir() if p.name != "session.json"]
    assert _wait_levels(widget, [0] * 4) == [0] * 4  # the safe state was restored after the interrupt


def test_ctrl_c_between_the_renames_of_a_retake_keeps_the_complete_pose(rig, tmp_path, monkeypatch):
    import acquisition.session as session_module

    _widget, lamps, camera = rig
    real_rename = os.rename
    staged = []

    def rename(src, dst):
        if str(src).endswith(".partial"):
            staged.append(src)
            if len(staged) == 2:  # the retake of p01: p01 was just set aside as .p01.old
                raise KeyboardInterrupt
        real_rename(src, dst)

    monkeypatch.setattr(session_module.os, "rename", rename)
    with pytest.raises(KeyboardInterrupt):
        capture_session(tmp_path, "S007", lamps, camera, poses=2, config=FAST, ask=lambda prompt: "retake")
    monkeypatch.setattr(session_module.os, "rename", real_rename)
    assert _assert_consistent(tmp_path) == ["S007/p01"]
    original = (tmp_path / "S007" / "p01" / "flash.jpg").read_bytes()

    # A power cut between the renames leaves only the set-aside copy: the next start restores it.
    real_rename(tmp_path / "S007" / "p01", tmp_path / "S007" / ".p01.old")
    capture_session(tmp_path, "S007", lamps, camera, poses=1, config=FAST, resume=True)
    assert (tmp_path / "S007" / "p01" / "flash.jpg").read_bytes() == original
    assert _assert_consistent(tmp_path) == ["S007/p01"]


# -- kill and a closed terminal: the same safe state and record as Ctrl-C ------------------------------------


@pytest.mark.parametrize(("signum", "lamps_after", "expected"), [(signal.SIGTERM, "off", [0] * 4),
                                                                 (signal.SIGHUP, "on", [200] * 4)])
def test_a_signal_to_prep_capture_leaves_the_lamps_safe_and_records_it(tmp_path, signum, lamps_after, expected):
    """A real signal to a real ``prep capture`` process while the lamps are lit (Enttec widget on a pty)."""
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")])}
    with EnttecEmulator() as widget:
        command = [sys.executable, "-c", "from acquisition._entry import run; run()",
                   "capture", "--subject", "S001", "--poses", "40", "--out", str(tmp_path),
                   "--lamps", f"enttec:{widget.port}", "--camera", "sim", "--size", "64x64", "--dmx-level", "200",
                   "--lamp-settle-ms", "400", "--dark-wait-ms", "50", "--lamps-after", lamps_after]
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, env=env)
        try:
            deadline = time.monotonic() + 60
            while widget.levels([1, 2, 3, 4]) != [200] * 4 and time.monotonic() < deadline:  # lit: settling
                time.sleep(0.01)
            assert process.poll() is None and widget.levels([1, 2, 3, 4]) == [200] * 4
            process.send_signal(signum)
            _, stderr = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode == 128 + signum, stderr
        name = signal.Signals(signum).name
        assert f"Interrupted ({name})" in stderr and "Traceback" not in stderr
        assert widget.messages("dmx")[-1].data[1:5] == bytes(expected)  # the last frame the lamps received
        assert widget.levels([1, 2, 3, 4]) == expected
    run = json.loads((tmp_path / "S001" / "session.json").read_text())["runs"][-1]
    assert run["status"] == f"interrupted ({name})" and run["finished"] is not None
    _assert_consistent(tmp_path)
    assert [p.name for p in (tmp_path / "S001").iterdir() if p.name.startswith(".")] == []


def test_kill_while_manual_lamps_wait_for_the_operator_is_an_interruption(tmp_path, monkeypatch):
    """click turns a signal inside a prompt into Abort; it must stay the interruption it was (exit 143)."""
    import io

    class Terminal(io.RawIOBase):
        """Standard input: ``kill`` arrives while the first prompt waits; Enter answers the next ones."""

        reads = 0

        def readable(self):
            return True

        def readinto(self, buffer):
            if len(buffer) == 0:  # click probes the stream with read(0)
                return 0
            self.reads += 1
            if self.reads == 1:
                os.kill(os.getpid(), signal.SIGTERM)
            buffer[:1] = b"\n"
            return 1

    result = _run(["capture", "--subject", "M01", "--poses", "2", "--lamps", "manual", "--camera", "sim",
                   "--size", "64x64", "--out", str(tmp_path)], input=Terminal())
    assert result.exit_code == 143, result.output
    # the same command alone is refused ("subject M01 already exists"): the note says how to go on
    assert "Interrupted (SIGTERM): finished work is kept; run the same command with --resume to continue." \
        in result.output
    assert "Switch the studio lamps OFF" in result.output  # the safe state is still asked for
    run = json.loads((tmp_path / "M01" / "session.json").read_text())["runs"][-1]
    assert run["status"] == "interrupted (SIGTERM)"


# -- values no run can use: NaN, infinity, out of range, in options and in the rig file --------------------


@pytest.mark.parametrize("args", [
    ["capture", "--subject", "S1", "--lamps", "sim", "--camera", "sim", "--lamp-settle-ms", "nan"],
    ["capture", "--subject", "S1", "--lamps", "sim", "--camera", "sim", "--dark-wait-ms", "inf"],
    ["capture", "check", "--lamps", "sim", "--camera", "sim", "--camera-busy-timeout-ms", "nan"],
    ["capture", "--simulate", "--blink-probability", "nan"],
    ["register", "RAW", "OUT", "--max-rotation", "nan"],
    ["build-h5", "RAW", "OUT", "--sigma-s", "inf"],
    ["build-h5", "RAW", "OUT", "--rotations", "0,nan"],
    ["train", "RAW", "OUT", "--lr", "nan"],
])
def test_nan_and_infinity_are_refused_by_every_float_option(tmp_path, args):
    (tmp_path / "RAW").mkdir()
    args = [str(tmp_path / a) if a in ("RAW", "OUT") else a for a in args]
    result = _run([*args, "--out", str(tmp_path / "o")] if args[0] == "capture" and "check" not in args else args)
    assert result.exit_code == 2, result.output
    assert "finite" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o").exists()


def test_nan_never_reaches_a_wait():
    from acquisition.session import _sleep_until

    with pytest.raises(ValueError, match="dark_wait_ms must be a finite number"):
        SessionConfig(dark_wait_ms=float("nan"))
    with pytest.raises(ValueError, match="lamp_settle_ms must be a finite number"):
        SessionConfig(lamp_settle_ms=float("inf"))
    with pytest.raises(ValueError, match="cannot wait until nan"):
        _sleep_until(float("nan"))


@pytest.mark.parametrize(("line", "says"), [
    ("camera_busy_timeout_ms = -1", "camera_busy_timeout_ms = -1 is out of range: a number >= 0 (milliseconds)"),
    ("camera_busy_timeout_ms = nan", "camera_busy_timeout_ms = nan must be a finite number"),
    ("dark_wait_ms = inf", "dark_wait_ms = inf must be a finite number"),
    ("dmx_level = 300", "dmx_level = 300 is out of range: a whole number 0-255"),
    ("lamp_settle_ms = -5", "lamp_settle_ms = -5 is out of range: a number >= 0"),
    ("poses = 0", "poses = 0 is out of range: a whole number >= 1"),
    ('lamps_after = "dim"', "lamps_after = \"dim\" must be 'off' or 'on'"),
    ("dmx_channels = [1, 1]", "dmx_channels = [1, 1] is not valid: channel list [1, 1] repeats a channel"),
    ('lamps = "dali:x"', 'lamps = "dali:x" is not valid: unknown lamp backend'),
    ('adb_folder = "DCIM/Camera"', "adb_folder = \"DCIM/Camera\" is not valid: it should be a folder on the phone"),
    ('lamps = "relay:loop://"\ndmx_channels = [1, 9]', "dmx_channels = [1, 9] is not valid: a relay board has relays"),
])
def test_a_wrong_value_in_the_rig_file_names_the_file_and_the_key(tmp_path, line, says):
    rig = tmp_path / "rig.toml"
    rig.write_text(f'camera = "sim"\n{line}\n')
    for command in (["capture", "--subject", "S1", "--lamps", "sim", "--out", str(tmp_path / "raw")],
                    ["capture", "check", "--lamps", "sim"]):
        if "lamps" in line:
            command = [a for a in command if a not in ("--lamps", "sim")]
        result = _run([*command, "--rig", str(rig)])
        assert result.exit_code == 1, result.output  # a file's content, not a command-line usage error
        assert f"{rig}: {says}" in result.output, result.output
        assert "Traceback" not in result.output and "--camera" not in result.output.split("(")[0]
        assert len(result.output.strip().splitlines()) == 1


def test_a_value_a_device_refuses_is_blamed_where_it_was_given(tmp_path):
    rig = tmp_path / "rig.toml"
    rig.write_text('lamps = "relay:loop://"\ncamera = "sim"\n')
    result = _run(["capture", "--subject", "S1", "--rig", str(rig), "--dmx-channels", "1,9",
                   "--out", str(tmp_path / "raw")])
    assert result.exit_code == 2 and "--dmx-channels" in result.output and "outside 1-8" in result.output
    rig.write_text('lamps = "relay:loop://"\ncamera = "sim"\ndmx_channels = [1, 9]\n')
    result = _run(["capture", "--subject", "S1", "--rig", str(rig), "--lamps", "relay:loop://",
                   "--out", str(tmp_path / "raw")])
    assert result.exit_code == 1 and f"{rig}: dmx_channels" in result.output
