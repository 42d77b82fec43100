"""`prep register` is never silently wrong about its inputs: shots from the virtual studio's own capture (JPEG with
the EXIF Flash tags a phone writes), damaged the ways a new user's files are damaged, each get the right status
and a reason that names the file and the fix."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from acquisition.imageio import read_image, write_image
from acquisition.session import simulate_sessions
from acquisition.sim import StudioConfig
from registration import read_registration_csv, register_tree, write_contact_sheets


def _rewrite(path: Path, change) -> None:
    """Replace a JPEG's pixels by ``change(pixels)``, keeping its EXIF (the camera's Flash tag stays)."""
    from PIL import Image

    with Image.open(path) as im:
        exif = im.info.get("exif")
    write_image(path, change(read_image(path)), exif=exif)


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> dict[str, dict[str, str]]:
    """One good capture per subject, and copies of it damaged one way each, registered in one run."""
    base = tmp_path_factory.mktemp("qc")
    captured = base / "captured"
    simulate_sessions(captured, subjects=2, poses=1, size=(480, 640), seed=5,
                      sim_config=StudioConfig(blink_probability=0.0))
    (ann,), (grace,) = (sorted(p for p in (captured / s).iterdir() if p.is_dir())
                        for s in ("astronaut", "grace_hopper"))
    raw = base / "raw"
    for name, source in (("good", ann), ("good-grace", grace), ("blurred-studio", ann), ("covered-flash", ann),
                         ("other-person", ann), ("dark", ann), ("bright", ann), ("swapped", ann), ("copied", ann),
                         ("png", ann)):
        shutil.copytree(source, raw / "t" / name)
    pose = lambda name: raw / "t" / name  # noqa: E731
    rng = np.random.default_rng(0)
    blur = lambda im: cv2.GaussianBlur(im, (0, 0), 6)  # noqa: E731
    _rewrite(pose("blurred-studio") / "studio.jpg", blur)
    left, top, right, bottom = (round(v) for v in json.loads((ann / "meta.json").read_text())["face_box"])

    def covered(im: np.ndarray) -> np.ndarray:  # a hand in front of the face
        im = im.copy()
        im[top - 20:bottom + 20, left - 20:right + 20] = (150, 120, 100)
        return im

    _rewrite(pose("covered-flash") / "flash.jpg", covered)
    shutil.copy(grace / "studio.jpg", pose("other-person") / "studio.jpg")
    _rewrite(pose("dark") / "studio.jpg",  # 5 % of the exposure, with the sensor's noise
             lambda im: np.clip(im * 0.05 + rng.normal(0, 2, im.shape), 0, 255).astype(np.uint8))
    _rewrite(pose("bright") / "studio.jpg", lambda im: np.clip(im.astype(np.float32) * 3, 0, 255).astype(np.uint8))
    (pose("swapped") / "flash.jpg").rename(pose("swapped") / "x.jpg")
    (pose("swapped") / "studio.jpg").rename(pose("swapped") / "flash.jpg")
    (pose("swapped") / "x.jpg").rename(pose("swapped") / "studio.jpg")
    shutil.copy(pose("copied") / "flash.jpg", pose("copied") / "studio.jpg")
    for role in ("flash", "studio"):  # no EXIF at all: nothing is said about the flash
        write_image(pose("png") / f"{role}.png", read_image(pose("png") / f"{role}.jpg"))
        (pose("png") / f"{role}.jpg").unlink()
    aligned = base / "aligned"
    register_tree(raw, aligned, workers=2)
    write_contact_sheets(aligned, base / "sheets", pairs_per_sheet=20)
    return {row["pose"]: row for row in read_registration_csv(aligned / "registration.csv")}


def test_good_captures_pass_every_check(cases):
    for name in ("good", "good-grace", "png"):
        row = cases[name]
        assert (row["status"], row["reason"], row["region"]) == ("ok", "", "face"), row
        assert float(row["face_check_px"]) < 1.0 and float(row["face_check_working_px"]) < 1.0


def test_a_face_missing_from_one_shot_still_gets_the_independent_check_and_says_why_the_frame_led(cases):
    for name, missing, found in (("blurred-studio", "studio.jpg", "flash.jpg"),
                                 ("covered-flash", "flash.jpg", "studio.jpg")):
        row = cases[name]
        assert row["status"] == "flagged" and row["region"] == "frame", row
        assert f"no face found in {missing} (one was found in {found}), so the whole frame led" in row["reason"]
        assert row["face_check_px"] != ""  # the check ran on the face that was found
    other = cases["other-person"]
    assert other["status"] == "flagged" and other["region"] == "frame" and other["face_check_px"] != ""
    assert "do not match" in other["reason"] or "no face found in studio.jpg" in other["reason"]


def test_under_and_over_exposed_shots_are_flagged_with_the_file_and_the_fix(cases):
    dark = cases["dark"]
    assert dark["status"] == "flagged"
    assert "studio.jpg is under-exposed: mean face luminance" in dark["reason"]
    assert "check the lamps and retake" in dark["reason"]
    bright = cases["bright"]
    assert bright["status"] == "flagged" and "studio.jpg is over-exposed" in bright["reason"]


def test_swapped_and_copied_shots_are_flagged_from_the_exif_flash_tags_and_the_pixels(cases):
    swapped = cases["swapped"]
    assert swapped["status"] == "flagged"
    assert "flash.jpg was taken without flash and studio.jpg with it (EXIF Flash tags): swapped? swap them back" \
        in swapped["reason"]
    copied = cases["copied"]
    assert copied["status"] == "flagged"
    assert "flash.jpg and studio.jpg hold the same picture" in copied["reason"]
    assert "studio.jpg was taken with the flash" in copied["reason"]
    assert "EXIF" not in cases["png"]["reason"] and "EXIF" not in cases["good"]["reason"]
