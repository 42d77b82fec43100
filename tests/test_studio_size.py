"""The virtual studio's picture size: checked before anything is rendered, and the face in frame at any size."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

import acquisition._studio._render as render
from acquisition._studio._analysis import analyse_portrait
from acquisition._studio._framing import frame_portrait
from acquisition._studio._pose import draw_pose
from acquisition.imageio import DEFAULT_MAX_PIXELS, MAX_PIXELS_ENV
from acquisition.prep import main
from acquisition.sim import Portrait, SimulatedCamera, SimulatedLamps, StudioConfig, check_frame_size, default_portraits


@pytest.fixture
def no_rendering(monkeypatch):
    """Any rendering fails the test: a refused size must be refused before it."""
    def refuse(*args, **kwargs):
        raise AssertionError("rendered before the size was checked")

    monkeypatch.setattr(render, "analyse_portrait", refuse)


def test_a_size_above_the_readers_pixel_limit_is_refused_before_rendering(monkeypatch, tmp_path, no_rendering):
    monkeypatch.delenv(MAX_PIXELS_ENV, raising=False)
    assert DEFAULT_MAX_PIXELS < 20000 * 26000  # the readers' limit, defined once
    with pytest.raises(ValueError, match=r"20000x26000 is 520 MP, above the image-size limit of 500 MP.*"
                                         r"DEEPFLASH_MAX_IMAGE_PIXELS=600M or pass prep --max-image-pixels 600M"):
        check_frame_size((20000, 26000))
    with pytest.raises(ValueError, match="above the image-size limit"):
        SimulatedCamera(default_portraits()[0], lambda: SimulatedLamps().state, size=(20000, 26000))
    monkeypatch.setenv(MAX_PIXELS_ENV, "100M")  # the same limit the readers apply, whatever it is set to
    with pytest.raises(ValueError, match="above the image-size limit of 100 MP"):
        check_frame_size((10000, 10001))
    assert check_frame_size((480, 640)) == (480, 640)


def test_a_size_this_computer_cannot_render_is_refused_with_the_memory_it_needs(monkeypatch, no_rendering):
    monkeypatch.setenv(MAX_PIXELS_ENV, "2000M")
    monkeypatch.setattr(render, "_memory_limit", lambda: 16 * 2**30)
    with pytest.raises(ValueError, match=r"40000x40000 \(1600 MP\) needs about 48\.2 GiB of memory to render, "
                                         r"more than this process may use \(16\.0 GiB"):
        check_frame_size((40000, 40000))
    assert check_frame_size((4000, 3000)) == (4000, 3000)


@pytest.mark.parametrize(("size", "words"), [("20000x26000", "above the image-size limit of 500 MP"),
                                             ("40000x40000", "1600 MP")])
def test_prep_capture_refuses_the_size_in_one_line_before_rendering(monkeypatch, tmp_path, size, words,
                                                                    no_rendering):
    monkeypatch.delenv(MAX_PIXELS_ENV, raising=False)
    out = tmp_path / "raw"
    for args in (["capture", "--simulate", "--size", size, "--out", str(out)],
                 ["capture", "--subject", "T01", "--lamps", "sim", "--camera", "sim", "--size", size,
                  "--out", str(out)]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2, result.output
        error = [line for line in result.output.splitlines() if line.startswith("Error")]
        assert len(error) == 1 and "'--size'" in error[0] and words in error[0], result.output
        assert "Traceback" not in result.output and not out.exists()


def _tall_portrait() -> Portrait:
    """A full-length photo's proportions (970 x 2204), face near the top."""
    from skimage import data

    big = cv2.resize(data.astronaut(), (970, 970), interpolation=cv2.INTER_CUBIC)
    return Portrait("tall", cv2.copyMakeBorder(big, 150, 2204 - 970 - 150, 0, 0, cv2.BORDER_REPLICATE))


EXTREME_SIZES = [(101, 3000), (3000, 400), (3000, 101), (16, 4000), (4000, 16), (16, 16), (200, 3000),
                 (4000, 100), (1280, 960), (480, 640)]


@pytest.mark.parametrize("motion", ["subject", "camera", "both"])
def test_the_face_is_in_frame_in_both_shots_at_any_aspect_ratio(motion):
    # The tester's frames: --size 101x3000 put the face box at x 161-200 of a 101-px-wide frame; 3000x400 put it
    # across the bottom edge. The face box of the flash shot, and where the drawn motion takes it in the studio
    # shot, must lie inside the frame for every size and portrait.
    cfg = StudioConfig(motion=motion)
    for portrait in [*default_portraits(), _tall_portrait()]:
        analysis = analyse_portrait(portrait, max_work_side=cfg.max_work_side)
        for width, height in EXTREME_SIZES:
            framing = frame_portrait(analysis, width, height, cfg)
            for seed in range(12):
                pose = draw_pose(np.random.default_rng(seed), analysis, framing, cfg)
                left, top, right, bottom = pose.face_box
                corners = np.array([[left, top], [right, top], [left, bottom], [right, bottom]])
                moved = corners @ pose.ground_truth.as_array()[:, :2].T + pose.ground_truth.as_array()[:, 2]
                for where, points in (("flash", corners), ("studio", moved)):
                    inside = (points >= -0.5).all() and (points[:, 0] <= width - 0.5).all() and \
                        (points[:, 1] <= height - 0.5).all()
                    assert inside, (portrait.name, (width, height), seed, where, points.round(1).tolist())


def test_ulimit_counts_as_the_memory_a_render_may_use(tmp_path):
    """Tester: under ``ulimit -v 1500000`` a 6000x7500 pose started rendering and died in OpenCV with a traceback;
    the address-space limit is now part of the memory a render may use, so the size is refused in one line."""
    script = ("import resource; resource.setrlimit(resource.RLIMIT_AS, (1_500_000 * 1024, resource.RLIM_INFINITY));"
              "from acquisition._entry import run; run()")
    result = subprocess.run([sys.executable, "-c", script, "capture", "--simulate", "--subjects", "1", "--poses", "1",
                             "--no-check", "--out", str(tmp_path / "raw"), "--size", "6000x7500"],
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "more than this process may use" in result.stderr
    assert not (tmp_path / "raw").exists()
