"""One run per folder, no run outlives its owner, every failure of a stage is one clear line (issue 14).

Real processes where the issue describes processes: a second ``prep`` run while a first one holds the folder,
``kill -9`` / ``kill`` of a ``--workers 2`` parent and a look in /proc for survivors, FIFOs and folders where
files belong, output folders under a file or a read-only folder, an 80-character CJK pose name, one bad row of
``registration.csv`` and a raw image replaced by another of the same size and time.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from acquisition.atomic import write_text_atomic
from acquisition.errors import AcquisitionError, PrepError
from acquisition.files import content_fingerprint
from acquisition.imageio import encode_image, read_image
from acquisition.layout import check_name, discover_pairs
from acquisition.prep import main
from acquisition.runlock import LOCK_NAME, RunOwner, claim_folder, folder_writer
from acquisition.session import simulate_sessions
from datasetgen import BuildConfig, build_shards
from datasetgen.schema import open_shard
from registration import CSV_COLUMNS, register_tree
from registration._pair import is_complete

REPO = Path(__file__).resolve().parents[1]
SMALL = (240, 320)
CJK_POSE = "姿勢" * 40  # 80 characters (discovery allows 100), 240 bytes in UTF-8
BUILD = BuildConfig(size=64, split=(1.0, 0.0, 0.0), shard_size=30)
HAS_PROC = Path("/proc/self/stat").is_file()


def prep(*args: str | Path) -> object:
    return CliRunner().invoke(main, ["-q", *map(str, args)])


def one_line_error(result: object, *words: str) -> str:
    """The command failed with exit 1 and one ``Error:`` line holding ``words`` (no traceback)."""
    assert result.exit_code == 1, (result.exit_code, result.output, result.exception)
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def spawn_prep(*args: str | Path, stderr: Path) -> subprocess.Popen:
    """``prep ARGS`` in its own process (and session, so a signal reaches it alone)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    with open(stderr, "w") as err:
        return subprocess.Popen([sys.executable, "-c", "from acquisition._entry import run; run()", "-q",
                                 *map(str, args)], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=err,
                                start_new_session=True)


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def children(pid: int) -> list[int]:
    """PIDs whose parent is ``pid`` (the pool's workers and its resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None and int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def wait_for(condition, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.fixture
def no_hang() -> Iterator[None]:
    """Fail instead of waiting forever (a FIFO opened for reading waits for a writer)."""

    def hung(*_: object) -> None:
        raise TimeoutError("the command hung")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> dict[str, Path]:
    """raw/ (two subjects, one pose named with 80 CJK characters, a subject folder ``bad:name``), its aligned/
    and shards/ (size 64)."""
    root = tmp_path_factory.mktemp("runs")
    raw, aligned, shards = root / "raw", root / "aligned", root / "shards"
    simulate_sessions(raw, subjects=2, poses=1, size=SMALL, seed=2)
    os.rename(raw / "grace_hopper" / "p01", raw / "grace_hopper" / CJK_POSE)
    shutil.copytree(raw / "astronaut" / "p01", raw / "bad:name" / "p01")  # prep register refuses the name
    register_tree(raw, aligned)
    build_shards(aligned, shards, config=BUILD)
    return {"root": root, "raw": raw, "aligned": aligned, "shards": shards}


def copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


# -- names and rows (items 7 and 8) ------------------------------------------------------------------------


def test_long_cjk_names_and_a_subject_level_failure_row_go_through_register_and_build_h5(pipeline):
    aligned, shards = pipeline["aligned"], pipeline["shards"]
    assert (aligned / "grace_hopper" / CJK_POSE / "registration.json").is_file()  # the name kept as it is
    rows = (aligned / "registration.csv").read_text(encoding="utf-8").splitlines()
    assert any(row.startswith("bad:name,,failed,") for row in rows)  # a subject-level row: no pose
    index = (shards / "index.csv").read_text(encoding="utf-8")
    assert f"grace_hopper,{CJK_POSE}," in index and "astronaut,p01," in index
    dataset = json.loads((shards / "dataset.json").read_text(encoding="utf-8"))
    skipped = {entry["key"]: entry for entry in dataset["skipped"]}
    assert skipped["bad:name"]["reason"].startswith("registration failed:") and not skipped["bad:name"]["broken"]
    # A name over the file systems' 255 bytes is refused by name; a long name never breaks a temporary file.
    with pytest.raises(ValueError, match="255"):
        check_name("姿" * 86, what="pose")
    write_text_atomic(pipeline["root"] / f"{CJK_POSE}.txt", "a temporary name must stay under 255 bytes\n")


def test_a_damaged_row_of_registration_csv_is_skipped_and_reported(pipeline, tmp_path):
    aligned = copy(pipeline["aligned"], tmp_path / "aligned")
    csv_path = aligned / "registration.csv"
    csv_path.write_text("".join(line for line in csv_path.read_text(encoding="utf-8").splitlines(keepends=True)
                                if not line.startswith("astronaut,p01,")), encoding="utf-8")
    with open(csv_path, "a", encoding="utf-8") as handle:
        empty = "," * (len(CSV_COLUMNS) - 3)  # rows as wide as the header: only their content is damaged
        handle.write(f"astronaut,p01,maybe{empty}\n,,{empty}\n")
    summary = build_shards(aligned, tmp_path / "shards", config=BUILD)
    reasons = {s.key: s.reason for s in summary.skipped}
    assert "status 'maybe'" in reasons["astronaut/p01"] and "line" in reasons["astronaut/p01"]
    assert any("names no pair" in reason for reason in reasons.values())
    assert summary.pairs["train"] == 1  # the CJK pose still builds


# -- the run lock (item 1) -----------------------------------------------------------------------------------


@pytest.mark.skipif(not HAS_PROC, reason="needs /proc (Linux)")
def test_every_stage_refuses_a_folder_another_run_holds_and_takes_over_a_dead_runs_lock(pipeline, tmp_path,
                                                                                        caplog):
    aligned, shards = copy(pipeline["aligned"], tmp_path / "aligned"), copy(pipeline["shards"], tmp_path / "shards")
    run_dir, photos, out, raw = tmp_path / "run", tmp_path / "photos", tmp_path / "out", tmp_path / "raw"
    shutil.copytree(pipeline["raw"] / "astronaut", raw / "astronaut")
    photos.mkdir()
    shutil.copy(next(raw.rglob("flash.jpg")), photos / "selfie.jpg")  # a folder without photos says so first
    checkpoint = tmp_path / "any.pt"
    checkpoint.write_bytes(b"not read: the folder is refused first")
    held = [aligned, shards, run_dir, out, raw / "astronaut"]
    code = "import sys, time; from acquisition.runlock import claim_folder; " \
           "locks = [claim_folder(p) for p in sys.argv[1:]]; print('held', flush=True); time.sleep(300)"
    holder = subprocess.Popen([sys.executable, "-c", code, *map(str, held)], cwd=REPO, stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout.readline().strip() == "held"
        who = f"PID {holder.pid} on {socket.gethostname()}, started "
        one_line_error(prep("register", pipeline["raw"], aligned), "is being written by another run", who, "kill")
        one_line_error(prep("build-h5", aligned, tmp_path / "s2"), "aligned: is being written", who)
        one_line_error(prep("build-h5", pipeline["aligned"], shards), "shards: is being written", who)
        verify = prep("verify", shards)
        assert verify.exit_code == 1 and "is being written by another run" in verify.output
        one_line_error(prep("review", shards, tmp_path / "sheets"), "is being written", who)
        review = prep("review", aligned, tmp_path / "sheets")  # finished pairs are complete: it works, with a note
        assert review.exit_code == 0 and f"is being written by another run ({who}" in review.output
        one_line_error(prep("train", shards, tmp_path / "r2", "--workers", "0"), "shards: is being written", who)
        one_line_error(prep("train", pipeline["shards"], run_dir, "--workers", "0"), "run: is being written", who)
        one_line_error(prep("enhance", checkpoint, photos, out), "out: is being written", who)
        one_line_error(prep("enhance", checkpoint, photos / "selfie.jpg", out), "out: is being written", who)
        one_line_error(prep("enhance", checkpoint, photos, out / "sub"), "out: is being written", who)
        one_line_error(prep("build-h5", pipeline["aligned"], shards / "again"), "shards: is being written", who)
        with pytest.raises(AcquisitionError, match="is being written by another run"):
            simulate_sessions(raw, subjects=1, poses=1, size=SMALL, resume=True)
        assert folder_writer(aligned).pid == holder.pid
    finally:
        holder.kill()
        holder.wait()
    # kill -9 left the lock files: the next run takes over, with a notice naming the dead run.
    assert folder_writer(aligned) is None
    logging.getLogger().addHandler(caplog.handler)  # the commands above reconfigured logging (prep -q)
    try:
        with caplog.at_level(logging.WARNING), claim_folder(run_dir) as lock:
            assert lock.taken_over is not None and lock.taken_over.pid == holder.pid
    finally:
        logging.getLogger().removeHandler(caplog.handler)
    assert f"ended without releasing the folder (PID {holder.pid}" in caplog.text
    assert not (run_dir / LOCK_NAME).exists()


def test_a_reused_pid_another_host_and_a_file_system_without_locks(tmp_path, monkeypatch):
    folder = tmp_path / "out"
    folder.mkdir()
    me = RunOwner.current()

    def record(**changes: object) -> None:
        (folder / LOCK_NAME).write_text(json.dumps({**me.__dict__, **changes}))

    # This very PID, but another process start (or another boot): the recorded run is gone, its PID reused.
    for reused in ({"process_start": (me.process_start or 0) + 1}, {"boot_id": "another boot"}):
        record(pid=os.getpid(), **reused)
        with claim_folder(folder) as lock:
            assert lock.taken_over is not None and lock.taken_over.pid == os.getpid()
    record(host="lab-pc-2", pid=4242)
    with pytest.raises(PrepError) as refused:
        claim_folder(folder)
    assert "another computer" in str(refused.value) and str(folder / LOCK_NAME) in str(refused.value)
    # Where flock is not supported the record decides: a live process on this host holds the folder.
    parent = RunOwner.current().__dict__ | {"pid": os.getppid(), "process_start": None}
    (folder / LOCK_NAME).write_text(json.dumps(parent))
    monkeypatch.setattr("acquisition.runlock._lock", lambda fd: None)
    with pytest.raises(PrepError, match=f"PID {os.getppid()}"):
        claim_folder(folder)


@pytest.mark.skipif(os.environ.get("HDF5_USE_FILE_LOCKING", "").upper() == "FALSE", reason="HDF5 locking is off")
def test_a_shard_another_process_is_writing_is_named_as_such(pipeline, tmp_path):
    """HDF5's own lock (``BlockingIOError ... unable to lock file``) is worded as what it is."""
    shards = copy(pipeline["shards"], tmp_path / "shards")
    shard = shards / "train-00000.h5"
    code = "import sys, h5py; f = h5py.File(sys.argv[1], 'r+'); print('open', flush=True); sys.stdin.read()"
    writer = subprocess.Popen([sys.executable, "-c", code, str(shard)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert writer.stdout.readline().strip() == "open"
        with pytest.raises(PrepError, match="open for writing in another process"):
            open_shard(shard)
        verify = prep("verify", shards)
        assert verify.exit_code == 1 and "open for writing in another process (HDF5 file lock)" in verify.output
    finally:
        writer.stdin.close()
        writer.wait()


# -- workers never outlive their parent (item 2) --------------------------------------------------------------


def _stop_mid_run(args: list, out: Path, marker: str, signum: int, stderr: Path) -> subprocess.Popen:
    """Start ``prep ARGS``; once ``out`` holds one more ``marker`` file than before, check that a second run is
    refused (naming the first), send ``signum`` to the parent alone, and check that its workers end and nothing
    writes into ``out`` afterwards."""
    done = len(list(out.glob(marker)))
    process = spawn_prep(*args, stderr=stderr)
    try:
        wait_for(lambda: len(list(out.glob(marker))) > done or process.poll() is not None)
        assert process.poll() is None, stderr.read_text()  # still under way
        workers = children(process.pid)
        assert len(workers) >= 2  # two workers (and the pool's resource tracker)
        one_line_error(prep(*args), "is being written by another run", f"PID {process.pid}")
        os.kill(process.pid, signum)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    wait_for(lambda: not any(alive(pid) for pid in workers), seconds=10)
    before = files_under(out)
    time.sleep(1.5)
    assert files_under(out) == before  # nothing writes into the folder any more
    return process


@pytest.mark.skipif(not HAS_PROC, reason="needs /proc (Linux)")
def test_killing_a_parent_with_workers_stops_them_and_a_second_run_refuses_meanwhile(tmp_path):
    raw, aligned = tmp_path / "raw", tmp_path / "aligned"
    simulate_sessions(raw, subjects=2, poses=3, size=(480, 640), seed=3)
    args = ["register", raw, aligned, "--workers", "2"]
    marker = "*/*/registration.json"
    _stop_mid_run(args, aligned, marker, signal.SIGKILL, tmp_path / "stderr-1.txt")  # kill -9
    # The pool's resource tracker, last to go, unlinks the queues' semaphores without a "leaked" warning.
    assert "leaked" not in (tmp_path / "stderr-1.txt").read_text()
    assert (aligned / LOCK_NAME).exists()  # left by the killed run; the next one takes it over
    resumed = _stop_mid_run(args, aligned, marker, signal.SIGTERM, tmp_path / "stderr-2.txt")  # kill
    assert resumed.returncode == 143 and "Interrupted (SIGTERM)" in (tmp_path / "stderr-2.txt").read_text()
    assert not list(aligned.rglob(".tmp-*")) and not (aligned / LOCK_NAME).exists()


# -- leftovers and special files (item 5) ---------------------------------------------------------------------


@pytest.mark.parametrize("stop", [KeyboardInterrupt, PrepError])
def test_a_stopped_build_leaves_no_temporary_shard_and_resumes_to_the_same_bytes(pipeline, tmp_path, stop):
    shards = tmp_path / "shards"
    calls = []

    def stop_after_the_first_pair(n: int) -> None:
        calls.append(n)
        if len(calls) == 2:  # the first pair's 20 rows are in the open temporary shard
            raise stop("stopped") if stop is KeyboardInterrupt else stop("the disk is full", path=shards)

    with pytest.raises(stop):
        build_shards(pipeline["aligned"], shards, config=BUILD, progress=stop_after_the_first_pair)
    assert not list(shards.rglob(".tmp-*")) and not (shards / LOCK_NAME).exists()
    summary = build_shards(pipeline["aligned"], shards, config=BUILD)
    assert summary.resumed >= 1
    for name in ("train-00000.h5", "index.csv"):
        assert (shards / name).read_bytes() == (pipeline["shards"] / name).read_bytes()


def _fifo(path: Path) -> Path:
    path.unlink(missing_ok=True)
    os.mkfifo(path)
    return path


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifos_and_folders_where_files_belong_are_one_line_errors(pipeline, tmp_path, no_hang):
    aligned = copy(pipeline["aligned"], tmp_path / "aligned")
    shards = copy(pipeline["shards"], tmp_path / "shards")
    record = aligned / "astronaut" / "p01" / "registration.json"
    record.unlink()
    for obstacle, words in ((os.mkfifo, "is a FIFO"), (os.mkdir, "is a folder")):
        obstacle(record)
        result = prep("register", pipeline["raw"], aligned)
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert f"failed  astronaut/p01: {record}: {words}" in result.output  # this pair only; the others go on
        record.rmdir() if record.is_dir() else record.unlink()
    _fifo(aligned / "registration.csv")
    one_line_error(prep("build-h5", aligned, tmp_path / "s1", "--size", "64"), "registration.csv", "is a FIFO")
    _fifo(shards / "index.csv")
    verify = prep("verify", shards)
    assert verify.exit_code == 1 and "index.csv: is a FIFO" in verify.output
    one_line_error(prep("build-h5", pipeline["aligned"], shards, "--size", "64"), "index.csv", "is a FIFO")
    (shards / "index.csv").unlink()
    (shards / "dataset.json").unlink()
    (shards / "dataset.json").mkdir()
    one_line_error(prep("build-h5", pipeline["aligned"], shards, "--size", "64"), "dataset.json", "is a folder")
    one_line_error(prep("build-h5", pipeline["aligned"], tmp_path / "s2", "--split-file", _fifo(tmp_path / "s.csv")),
                   "s.csv", "is a FIFO")
    with pytest.raises(AcquisitionError, match="is a FIFO"):
        read_image(_fifo(tmp_path / "selfie.jpg"))
    raw = copy(pipeline["raw"] / "astronaut", tmp_path / "raw" / "astronaut").parent
    _fifo(raw / "manifest.csv")
    with pytest.raises(AcquisitionError, match=r"manifest\.csv: is a FIFO"):
        simulate_sessions(raw, subjects=1, poses=2, size=SMALL, resume=True)


# -- output folders (item 6) -----------------------------------------------------------------------------------


def _read_only_parent(tmp_path: Path) -> Path | None:
    """A folder where creating a subfolder is refused by the system, as root too where possible."""
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    try:  # root ignores permissions; sysfs still refuses new folders (EPERM, or EROFS where mounted read-only)
        os.mkdir("/sys/deepflash-probe")
    except OSError as exc:
        return Path("/sys") if exc.errno in (errno.EPERM, errno.EROFS, errno.EACCES) else None
    os.rmdir("/sys/deepflash-probe")
    return None


def test_output_folders_are_checked_before_any_work(pipeline, tmp_path):
    raw, aligned, shards = pipeline["raw"], pipeline["aligned"], pipeline["shards"]
    blocker = tmp_path / "a-file"
    blocker.write_text("a file where a folder should be\n")
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(next(raw.rglob("flash.jpg")), photos / "selfie.jpg")  # a folder without photos says so first
    checkpoint = tmp_path / "any.pt"
    checkpoint.write_bytes(b"never read")
    commands = {"register": [raw], "build-h5": [aligned], "train": [shards], "enhance": [checkpoint, photos]}
    extra = {"train": ["--workers", "0"], "build-h5": ["--size", "64"]}
    for command, inputs in commands.items():
        one_line_error(prep(command, *inputs, blocker / "out", *extra.get(command, [])), "is a file")
    read_only = _read_only_parent(tmp_path)
    if read_only is not None:
        for command, inputs in commands.items():
            one_line_error(prep(command, *inputs, read_only / "out", *extra.get(command, [])), "cannot write here")
    before = files_under(aligned)
    one_line_error(prep("build-h5", aligned, aligned, "--size", "64"), "must be outside the aligned folder")
    one_line_error(prep("build-h5", aligned, aligned / "shards", "--size", "64"), "not inside it")
    one_line_error(prep("build-h5", aligned, aligned.parent, "--size", "64"), "not around it")
    assert files_under(aligned) == before
    one_line_error(prep("train", shards, shards, "--workers", "0"), "must be outside the shards folder")
    one_line_error(prep("train", shards, shards / "run", "--workers", "0"), "not inside it")
    one_line_error(prep("enhance", checkpoint, photos, photos), "would be overwritten")
    (photos / "in").mkdir()
    one_line_error(prep("enhance", checkpoint, photos / "in", photos), "not around it")
    assert not (shards / "run").exists() and not (aligned / "shards").exists()


# -- change detection (item 9) ---------------------------------------------------------------------------------


def _replace_keeping_size_and_time(path: Path, other: np.ndarray) -> None:
    """Put another picture at ``path``: same size in bytes (padded after the image data) and same mtime."""
    stat = path.stat()
    data = encode_image(other, path.suffix, quality=60) if path.suffix == ".jpg" else encode_image(other, ".png")
    assert len(data) <= stat.st_size
    path.write_bytes(data + bytes(stat.st_size - len(data)))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # touch -r
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns


def test_an_image_replaced_with_the_same_size_and_time_is_processed_again(pipeline, tmp_path):
    raw = copy(pipeline["raw"], tmp_path / "raw")
    shutil.rmtree(raw / "bad:name")
    aligned = copy(pipeline["aligned"], tmp_path / "aligned")
    pair = next(p for p in discover_pairs(raw).pairs if p.subject == "astronaut")
    before = content_fingerprint(pair.flash)
    _replace_keeping_size_and_time(pair.flash, np.ascontiguousarray(read_image(pair.flash)[:, ::-1]))
    assert content_fingerprint(pair.flash) != before
    assert not is_complete(pair, aligned / "astronaut" / "p01")
    results = {r.key: r for r in register_tree(raw, aligned).results}
    assert not results["astronaut/p01"].skipped and results[f"grace_hopper/{CJK_POSE}"].skipped
    # build-h5: the finished dataset no longer matches its (replaced) aligned image
    shards = copy(pipeline["shards"], tmp_path / "shards")
    flash = pipeline["aligned"] / "grace_hopper" / CJK_POSE / "flash.png"
    aligned_again = copy(pipeline["aligned"], tmp_path / "aligned-again")
    _replace_keeping_size_and_time(aligned_again / flash.relative_to(pipeline["aligned"]),
                                   np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(PrepError, match="already holds a dataset built from other"):
        build_shards(aligned_again, shards, config=BUILD)


def test_damaged_rows_of_registration_csv_are_reported_one_by_one_and_the_others_used(pipeline, tmp_path, caplog):
    from registration import write_contact_sheets

    aligned = copy(pipeline["aligned"], tmp_path / "aligned")
    csv_path = aligned / "registration.csv"
    header, *rows = csv_path.read_bytes().splitlines(keepends=True)
    tail = b"," * (len(CSV_COLUMNS) - 3) + b"\n"
    damaged = [b'astronaut,"p02,ok' + tail,  # an unbalanced quote first: it must not swallow the rows after it
               b"astronaut,p03\xff,ok" + tail,  # a Latin-1 byte saved over UTF-8
               b"astronaut,p04\x00,ok" + tail,  # a NUL
               b"ghost,p09,ok" + tail]  # a row for a pose that does not exist
    twice = next(row for row in rows if row.startswith(b"astronaut,p01,"))  # a pose named twice: ok, flagged
    damaged.append(twice.replace(b",ok,", b",flagged,", 1))
    csv_path.write_bytes(header + damaged[0] + b"".join(rows) + b"".join(damaged[1:]))
    lines = {2: "has an unbalanced quote", len(rows) + 3: "is not UTF-8 text (byte 0xff)",
             len(rows) + 4: "holds a NUL byte",
             len(rows) + 5: "there is no pose folder"}
    summary = build_shards(aligned, tmp_path / "shards", config=BUILD)
    assert summary.pairs["train"] == 1  # the CJK pose: every readable row was used; astronaut/p01 is ambiguous
    reasons = [s.reason for s in summary.skipped]
    first = 2 + 1 + [row.startswith(b"astronaut,p01,") for row in rows].index(True)
    assert any(f"lines {first} and {len(rows) + 6} both name it" in reason for reason in reasons), reasons
    for number, words in lines.items():
        assert any(f"{csv_path} line {number}: {words}" in reason for reason in reasons), (number, reasons)
    assert all("\n" not in reason for reason in reasons)
    # prep review reads the same file the same way: each damaged row one warning, the sheets drawn.
    with caplog.at_level(logging.WARNING):
        sheets = write_contact_sheets(aligned, tmp_path / "sheets")
    assert sheets and all(path.is_file() for path in sheets)
    for number, words in {**lines, first: "names astronaut/p01 like line"}.items():
        assert any(f"{csv_path} line {number}: {words}" in record.getMessage() for record in caplog.records), number


# -- readers of a folder another stage is writing; no bar before a refusal (items 6 and 8 of the re-test) ----
def test_readers_name_the_run_writing_their_input_and_no_bar_is_drawn_before_a_refusal(pipeline, tmp_path, caplog):
    from registration import register_tree

    shards, aligned, raw = tmp_path / "shards", tmp_path / "aligned", tmp_path / "raw"
    shutil.copytree(pipeline["raw"] / "astronaut", raw / "astronaut")
    with claim_folder(raw / "astronaut"), caplog.at_level(logging.WARNING):  # a capture still filling it
        summary = register_tree(raw, aligned)
    assert summary.ok + summary.flagged == 1
    assert any(f"{raw / 'astronaut'} is being written by another run" in r.getMessage() and
               "run prep register again" in r.getMessage() for r in caplog.records), caplog.text
    with claim_folder(shards):  # a first build-h5 under way: nothing but its lock file there yet
        one_line_error(prep("review", shards, tmp_path / "sheets"), str(shards), "is being written by another run",
                       f"PID {os.getpid()}")
    with claim_folder(aligned):  # without -q: the refusal is the only output, no progress bar above it
        result = CliRunner().invoke(main, ["register", str(raw), str(aligned)])
        assert result.exit_code == 1 and result.output.strip().startswith("Error:"), result.output
        assert "register:" not in result.output and "%|" not in result.output, result.output


def test_an_older_or_hand_made_lock_is_taken_over_when_no_run_holds_it(tmp_path, monkeypatch):
    """A record without boot_id / process_start whose PID is now another live process (PIDs are reused), or
    is dead: the free flock says no run holds the folder. Without locks, a dead PID lets it go too."""
    folder = tmp_path / "out"
    folder.mkdir()
    here = socket.gethostname()
    for pid in (os.getppid(), 2 ** 22 + 1):  # alive (reused: it is not a prep run), and no such process
        (folder / LOCK_NAME).write_text(json.dumps({"pid": pid, "host": here, "started": "2026-01-01 10:00:00",
                                                    "command": "prep register raw aligned"}))
        with claim_folder(folder) as lock:
            assert lock.taken_over is not None and lock.taken_over.pid == pid
            assert folder_writer(folder).pid == os.getpid()
    monkeypatch.setattr("acquisition.runlock._lock", lambda fd: None)  # a file system without locks
    (folder / LOCK_NAME).write_text(json.dumps({"pid": 2 ** 22 + 1, "host": here, "started": "x", "command": "y"}))
    with claim_folder(folder) as lock:
        assert lock.taken_over is not None and lock.taken_over.pid == 2 ** 22 + 1


def test_a_full_disk_during_build_h5_gives_back_the_work_files_and_says_how_much(pipeline, tmp_path, monkeypatch):
    import datasetgen._build as build_module
    from acquisition.atomic import atomic_write, write_error

    shards, calls = tmp_path / "shards", []

    def fills_on_the_second_pair(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:  # the first pair's samples wait in .work/samples for their shard
            cause = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            raise write_error(path, cause) from cause
        return atomic_write(path, *args, **kwargs)

    monkeypatch.setattr(build_module, "atomic_write", fills_on_the_second_pair)
    with pytest.raises(PrepError) as full:
        build_shards(pipeline["aligned"], shards, config=BUILD)
    message = str(full.value)
    assert "the disk is full" in message and " of unfinished work files in " in message, message
    assert " 0.0 " not in message and not (shards / ".work" / "samples").exists()
    monkeypatch.undo()
    build_shards(pipeline["aligned"], shards, config=BUILD)  # the resume makes them again
    assert (shards / "train-00000.h5").read_bytes() == (pipeline["shards"] / "train-00000.h5").read_bytes()


def test_sizes_in_words_never_round_to_zero():
    from acquisition.files import human_size

    assert [human_size(n) for n in (0, 1, 999, 1000, 45_000, 1_234_567, 9.96e9, 12e9)] == \
        ["0 B", "1 B", "999 B", "1.0 KB", "45 KB", "1.2 MB", "10.0 GB", "12 GB"]


def test_a_fifo_where_build_h5_keeps_its_work_folder_is_one_line_with_the_fix(pipeline, tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    os.mkfifo(shards / ".work")
    one_line_error(prep("build-h5", pipeline["aligned"], shards, "--size", "64", "--split", "1,0,0"),
                   f"{shards / '.work'}: is a FIFO (named pipe), where prep build-h5 keeps its work folder",
                   "remove or rename it")


@pytest.mark.skipif(not HAS_PROC, reason="needs /proc (Linux)")
@pytest.mark.parametrize("when", ["as the workers start", "mid-run"])
def test_ctrl_c_to_the_whole_group_of_a_build_with_workers_is_one_line(pipeline, tmp_path, when):
    """What a terminal does: SIGINT to the command and its workers at once (the parent may see it last)."""
    shards, stderr = tmp_path / "shards", tmp_path / "stderr.txt"
    process = spawn_prep("build-h5", pipeline["aligned"], shards, "--size", "64", "--split", "1,0,0", "--workers",
                         "2", stderr=stderr)
    try:
        if when == "as the workers start":
            wait_for(lambda: (shards / LOCK_NAME).exists() or process.poll() is not None)
        else:
            wait_for(lambda: any((shards / ".work").rglob("*.json")) or process.poll() is not None)
        assert process.poll() is None, stderr.read_text()
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    text = stderr.read_text()
    assert process.returncode == 130, text
    assert text.strip() == "Interrupted (SIGINT): finished work is kept; run the same command again to resume.", text
    assert not list(shards.rglob(".tmp-*")) and not (shards / LOCK_NAME).exists()
