"""`prep register` over a tree: bad pairs fail alone, resume, kill and re-run, workers, contact sheets."""

from __future__ import annotations

import csv
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from acquisition.drawing import wrap_text
from acquisition.imageio import encode_image, read_image, write_image
from acquisition.prep import main
from registration import RegistrationConfig, read_registration_csv, register_tree, write_contact_sheets
from registration._synthetic import PerturbationRanges, perturb, random_affine, relight_flash

OUTPUTS = ("flash.png", "studio.png", "valid.png", "transform.tfm")
SMALL_MOTION = PerturbationRanges(rotation_deg=4, scale=0.04, shear=0.02, shift_fraction=0.03)


def _write_pair(folder: Path, portrait: np.ndarray, seed: int) -> None:
    truth = random_affine(np.random.default_rng(seed), portrait.shape[1], portrait.shape[0], SMALL_MOTION)
    write_image(folder / "flash.jpg", relight_flash(portrait, seed=seed))
    write_image(folder / "studio.jpg", perturb(portrait, truth))


@pytest.fixture(scope="module")
def good_raw(tmp_path_factory, astronaut, grace_hopper) -> Path:
    """Three good pairs."""
    raw = tmp_path_factory.mktemp("good") / "raw"
    _write_pair(raw / "ann" / "pose-1", astronaut, 1)
    _write_pair(raw / "ann" / "pose-2", astronaut, 2)
    _write_pair(raw / "grace" / "pose-1", grace_hopper, 3)
    return raw


@pytest.fixture(scope="module")
def mixed_raw(tmp_path_factory, astronaut, grace_hopper) -> Path:
    """Two good pairs beside a corrupt file, different aspect ratios, no overlap and a missing partner."""
    raw = tmp_path_factory.mktemp("mixed") / "raw"
    _write_pair(raw / "ann" / "pose-1", astronaut, 1)
    _write_pair(raw / "grace" / "pose-1", grace_hopper, 2)
    corrupt = raw / "corrupt" / "pose-1"
    _write_pair(corrupt, astronaut, 3)
    data = encode_image(astronaut, ".jpg")
    (corrupt / "flash.jpg").write_bytes(data[: len(data) // 3])
    aspect = raw / "aspect" / "pose-1"
    write_image(aspect / "flash.jpg", relight_flash(astronaut))
    write_image(aspect / "studio.jpg", astronaut[:400])
    # The subject sits bottom-right in one shot and top-left in the other: once registered, the studio shot
    # covers only ~44 % of the flash frame.
    flash = np.full((768, 768, 3), 90, np.uint8)
    flash[256:, 256:] = relight_flash(astronaut)
    studio = np.full((768, 768, 3), 160, np.uint8)
    studio[:512, :512] = astronaut
    write_image(raw / "overlap" / "pose-1" / "flash.jpg", flash)
    write_image(raw / "overlap" / "pose-1" / "studio.jpg", studio)
    write_image(raw / "lonely" / "pose-1" / "flash.jpg", astronaut)
    return raw


def _rows(aligned: Path) -> dict[str, dict[str, str]]:
    with open(aligned / "registration.csv", newline="") as handle:
        return {f"{r['subject']}/{r['pose']}": r for r in csv.DictReader(handle)}


def _outputs(aligned: Path) -> dict[str, bytes]:
    return {str(p.relative_to(aligned)): p.read_bytes() for p in sorted(aligned.rglob("*"))
            if p.name in OUTPUTS}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, good_raw) -> Path:
    """An uninterrupted one-worker run of the good tree."""
    aligned = tmp_path_factory.mktemp("reference") / "aligned"
    summary = register_tree(good_raw, aligned)
    assert summary.ok == 3 and not summary.any_failed, [r.reason for r in summary.results]
    return aligned


def test_bad_pairs_fail_alone_with_reasons(mixed_raw, tmp_path):
    aligned = tmp_path / "aligned"
    result = CliRunner().invoke(main, ["register", str(mixed_raw), str(aligned)])
    assert result.exit_code == 1, result.output
    assert "2 ok, 0 flagged, 4 failed" in result.output
    rows = _rows(aligned)
    assert {k: r["status"] for k, r in rows.items()} == {
        "ann/pose-1": "ok", "grace/pose-1": "ok", "corrupt/pose-1": "failed", "aspect/pose-1": "failed",
        "overlap/pose-1": "failed", "lonely/pose-1": "failed"}
    assert "flash.jpg" in rows["corrupt/pose-1"]["reason"] and "JPEG" in rows["corrupt/pose-1"]["reason"]
    assert "aspect ratio" in rows["aspect/pose-1"]["reason"]
    assert "covers only 4" in rows["overlap/pose-1"]["reason"] and "overlap" in rows["overlap/pose-1"]["reason"]
    assert "no studio partner" in rows["lonely/pose-1"]["reason"]
    ok = rows["ann/pose-1"]
    assert float(ok["metric_after"]) < float(ok["metric_before"]) and int(ok["iterations"]) > 0
    assert all(ok[k] for k in ("a", "b", "c", "d", "tx", "ty"))
    for key in ("ann/pose-1", "grace/pose-1"):
        assert all((aligned / key / name).is_file() for name in OUTPUTS)
    assert not (aligned / "corrupt" / "pose-1" / "flash.png").exists()  # a failed pair leaves no images


def test_resume_skips_finished_pairs_and_redoes_incomplete_ones(good_raw, reference, tmp_path):
    aligned = tmp_path / "aligned"
    first = register_tree(good_raw, aligned)
    assert first.skipped == 0
    stamps = {p: p.stat().st_mtime_ns for p in aligned.rglob("*.png")}
    (aligned / "ann" / "pose-2" / "studio.png").unlink()  # as if killed mid-pair
    second = register_tree(good_raw, aligned)
    assert [r.skipped for r in second.results] == [True, False, True]
    assert second.ok == 3
    assert (aligned / "ann" / "pose-1" / "flash.png").stat().st_mtime_ns == stamps[aligned / "ann/pose-1/flash.png"]
    assert _outputs(aligned) == _outputs(reference)
    assert _rows(aligned)["ann/pose-1"]["a"] == _rows(reference)["ann/pose-1"]["a"]  # skipped rows come back
    forced = register_tree(good_raw, aligned, force=True)
    assert forced.skipped == 0 and _outputs(aligned) == _outputs(reference)
    # A raw file replaced after registration makes its pair stale.
    os.utime(good_raw / "grace" / "pose-1" / "studio.jpg", ns=(1, 1))
    assert [r.skipped for r in register_tree(good_raw, aligned).results] == [True, True, False]
    # New settings (here a QC limit) make every pair stale: statuses must reflect the limits in force.
    strict = RegistrationConfig(max_rotation_deg=0.01)
    assert not any(r.skipped for r in register_tree(good_raw, aligned, config=strict).results)


def test_killed_run_then_rerun_gives_identical_outputs(good_raw, reference, tmp_path):
    aligned = tmp_path / "aligned"
    command = [sys.executable, "-c", "from acquisition._entry import run; run()", "-q", "register", str(good_raw),
               str(aligned)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not list(aligned.rglob("registration.json")) and time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"prep register ended early: {process.stderr.read().decode()}")
            time.sleep(0.02)
        time.sleep(random.Random(7).uniform(0.0, 0.4))  # somewhere in the second pair
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    assert not (aligned / "registration.csv").exists()  # it was killed before the end
    summary = register_tree(good_raw, aligned)
    assert summary.ok == 3 and 1 <= summary.skipped < 3
    assert _outputs(aligned) == _outputs(reference)
    assert not [p for p in aligned.rglob(".tmp-*")]  # temporary files of the killed run are gone


def test_ctrl_c_inside_an_optimisation_stops_the_run_and_leaves_the_pair_to_redo(good_raw, tmp_path):
    """A real SIGINT delivered while SimpleITK optimises: exit 130, the pair not marked failed, redone next run.

    (SimpleITK runs Python callbacks inside its C++ loop; a Ctrl-C raised in one came back as "error executing
    the Python Callable", and the pair was recorded as failed while the run carried on.)"""
    aligned = tmp_path / "aligned"
    # Whole-frame registration: its last level runs eight starts of ~0.1 s each inside SimpleITK.
    command = [sys.executable, "-c", "from acquisition._entry import run; run()", "-v", "register", "--region",
               "frame", str(good_raw), str(aligned)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # the first pair's first level is done: its last level is running
            line = process.stderr.readline()
            seen.append(line)
            if not line or "registration._search: level 0" in line:
                break
        assert seen and "level 0" in seen[-1], "".join(seen)
        time.sleep(0.15)  # inside an optimisation (with the old iteration callback: 4 of 4 tries swallowed)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, err
    assert "Traceback" not in err and "Python Callable" not in err and "failed" not in err
    assert not (aligned / "registration.csv").exists()
    assert not (aligned / "ann" / "pose-1" / "registration.json").exists()
    summary = register_tree(good_raw, aligned, config=RegistrationConfig(region="frame"))
    assert summary.ok == 3 and summary.skipped == 0


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_stop_signal_with_two_workers_leaves_no_traceback_and_no_false_failure(good_raw, tmp_path, signum):
    """A Ctrl-C or a closed terminal (to the whole process group, as a terminal sends them) or a kill while two
    workers optimise: exit 128+n, no worker traceback (the worker's own SIGINT and the parent's SIGTERM used to
    race: "Signal 15 ignored due to race condition"; a hang-up killed Python's resource tracker, which then
    printed KeyErrors), no pair marked failed, no registration.csv, the rest redone next run."""
    aligned = tmp_path / "aligned"
    command = [sys.executable, "-c", "from acquisition._entry import run; run()", "register", "--workers", "2",
               "--region", "frame", str(good_raw), str(aligned)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list(aligned.rglob("*.png")) and process.poll() is None:
            time.sleep(0.02)  # the first pair is being written: the other worker is optimising its own
        assert process.poll() is None, process.communicate()
        if signum in (signal.SIGINT, signal.SIGHUP):
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 128 + signum, err
    text = out + err
    assert "Traceback" not in text and "race condition" not in text and "Python Callable" not in text, text
    assert "failed" not in text and "resource_tracker" not in text, text
    assert not (aligned / "registration.csv").exists()
    summary = register_tree(good_raw, aligned, config=RegistrationConfig(region="frame"))
    assert summary.ok == 3  # what the stop abandoned is redone


def test_every_pair_error_names_the_file_and_the_fix(grace_hopper, astronaut, tmp_path):
    """A studio shot stored sideways without its orientation tag, a blank shot, a 9x12 px pair: one line each
    naming the file and what to do, no traceback, and the good pair beside them is registered."""
    raw = tmp_path / "raw"
    _write_pair(raw / "good" / "pose-1", astronaut, 1)
    sideways = raw / "sideways" / "pose-1"
    write_image(sideways / "flash.jpg", relight_flash(grace_hopper, seed=1))  # 512x600, portrait
    write_image(sideways / "studio.jpg", np.ascontiguousarray(np.rot90(grace_hopper)))  # 600x512, no EXIF
    blank = raw / "blank" / "pose-1"
    write_image(blank / "flash.jpg", relight_flash(astronaut, seed=2))
    write_image(blank / "studio.png", np.full_like(astronaut, 17))
    tiny = raw / "tiny" / "pose-1"
    write_image(tiny / "flash.png", astronaut[:12, :9])
    write_image(tiny / "studio.png", astronaut[1:13, :9])
    fifo = raw / "fifo" / "pose-1"
    _write_pair(fifo, astronaut, 4)
    os.mkfifo(fifo / "meta.json")  # the pose's record is not a file: said, not silently skipped (or hung on)
    result = CliRunner().invoke(main, ["register", str(raw), str(tmp_path / "aligned")])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "unexpected" not in result.output
    assert "1 ok, 0 flagged, 4 failed" in result.output
    rows = _rows(tmp_path / "aligned")
    reason = {key: row["reason"] for key, row in rows.items()}
    assert rows["good/pose-1"]["status"] == "ok"
    assert ("studio.jpg is landscape (600x512) and flash.jpg portrait (512x600)" in reason["sideways/pose-1"]
            and "orientation tag is missing" in reason["sideways/pose-1"] and "rotate" in reason["sideways/pose-1"])
    assert "studio.png is blank" in reason["blank/pose-1"] and "retake the pose" in reason["blank/pose-1"]
    assert "flash.png is too small to register (9x12 px" in reason["tiny/pose-1"]
    assert "full-size photo" in reason["tiny/pose-1"]
    assert f"{fifo / 'meta.json'}: is a FIFO" in reason["fifo/pose-1"] and "remove or rename" in reason["fifo/pose-1"]
    for key in ("sideways/pose-1", "blank/pose-1", "tiny/pose-1", "fifo/pose-1"):
        assert f"failed  {key}: {reason[key]}" in result.output  # the same sentence on the terminal


def test_two_workers_give_identical_outputs(good_raw, reference, tmp_path):
    summary = register_tree(good_raw, tmp_path / "aligned", workers=2)
    assert summary.ok == 3
    assert _outputs(tmp_path / "aligned") == _outputs(reference)
    params = ("a", "b", "c", "d", "tx", "ty", "metric_after", "iterations")
    ours, theirs = _rows(tmp_path / "aligned"), _rows(reference)
    assert {k: [r[p] for p in params] for k, r in ours.items()} == {
        k: [r[p] for p in params] for k, r in theirs.items()}


def test_aligned_folder_inside_raw_is_refused(good_raw):
    result = CliRunner().invoke(main, ["register", str(good_raw), str(good_raw / "aligned")])
    assert result.exit_code == 1 and "outside the raw folder" in result.output


def test_contact_sheets_show_every_pair_with_its_status(mixed_raw, tmp_path):
    aligned = tmp_path / "aligned"
    register_tree(mixed_raw, aligned, config=RegistrationConfig())
    ticks = []
    sheets = write_contact_sheets(aligned, tmp_path / "sheets", pairs_per_sheet=4, progress=ticks.append)
    assert [p.name for p in sheets] == ["sheet-0001.png", "sheet-0002.png"]
    assert sum(ticks) == 6
    first = read_image(sheets[0])
    # A header (26 px), then rows in CSV order, 6 px apart: ann (ok: label 26 + panels 220), aspect and corrupt
    # (failed: label + the reason in full, 26 px and 20 more a line), grace (ok).
    reasons = {row["subject"]: row["reason"] for row in read_registration_csv(aligned / "registration.csv")}
    messages = sum(26 + 20 * (len(wrap_text(reasons[name], 4 * 220 + 3 * 6 - 20)) - 1)
                   for name in ("aspect", "corrupt"))
    assert first.shape[0] == 26 + (26 + 220) + 2 * 26 + messages + (26 + 220) + 3 * 6
    assert tuple(first[26 + 5, 3]) == (40, 160, 60)  # ann/pose-1 ok: green
    assert tuple(first[26 + 246 + 6 + 5, 3]) == (210, 40, 40)  # aspect/pose-1 failed: red
    # The checkerboard panel alternates flash and aligned studio tiles.
    flash = cv2.resize(read_image(aligned / "ann/pose-1/flash.png"), (220, 220), interpolation=cv2.INTER_AREA)
    x0 = 2 * (220 + 6)
    panel = first[52:52 + 220, x0:x0 + 220].astype(int)
    assert np.abs(panel[:27, :27] - flash[:27, :27]).max() <= 1
    assert np.abs(panel[:27, 27:54] - flash[:27, 27:54]).mean() > 5
