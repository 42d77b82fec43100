"""Simulated lamps and camera: coupled like a real studio, phone-like EXIF, reproducible files."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from acquisition.devices import Camera, LampController, LampState, Shot
from acquisition.errors import AcquisitionError
from acquisition.exif import flash_tag_value, make_exif, read_camera_exif, read_flash_fired
from acquisition.imageio import read_image, write_image
from acquisition.sim import (
    PoseMotion,
    SimulatedCamera,
    SimulatedLamps,
    StudioConfig,
    default_portraits,
    pose_seed,
    render_shot,
)

SIZE = (240, 320)
LUMA = np.array([0.2126, 0.7152, 0.0722])


@pytest.fixture(scope="module")
def astronaut_portrait():
    return default_portraits()[0]


@pytest.fixture()
def studio(astronaut_portrait):
    lamps = SimulatedLamps()
    camera = SimulatedCamera(astronaut_portrait, lambda: lamps.state, size=SIZE, seed=7)
    return lamps, camera


def _mean_luma(path) -> float:
    return float((read_image(path).astype(np.float64) @ LUMA).mean())


def _noise(path) -> float:
    grey = read_image(path).astype(np.float64) @ LUMA
    lap = grey[1:-1, 1:-1] * 4 - grey[:-2, 1:-1] - grey[2:, 1:-1] - grey[1:-1, :-2] - grey[1:-1, 2:]
    return float(np.median(np.abs(lap)))


def test_devices_implement_the_interfaces(studio):
    lamps, camera = studio
    assert isinstance(lamps, LampController) and lamps.name == "sim"
    assert isinstance(camera, Camera)
    info = camera.info()
    assert (info.backend, info.make, info.model) == ("sim", "DeepFlash", "Virtual Studio")
    assert info.settings["portrait"] == "astronaut" and info.settings["seed"] == 7
    lamps.on(200)
    assert lamps.state == LampState(True, 200)
    lamps.off()
    assert [(on, level) for _, on, level in lamps.history] == [(True, 200), (False, 0)]


def test_the_picture_follows_the_lamps_and_flash_at_capture_time(studio, tmp_path):
    lamps, camera = studio
    lamps.on()
    studio_shot = camera.capture(tmp_path / "studio.jpg", flash="auto")   # right: lamps on, auto does not fire
    both = camera.capture(tmp_path / "both.jpg", flash="on")              # wrong: flash with the lamps still on
    lamps.off()
    flash_shot = camera.capture(tmp_path / "flash.jpg", flash="auto")     # right: lamps off, auto fires
    dark = camera.capture(tmp_path / "dark.jpg", flash="off")             # wrong: studio shot after lamps off
    assert isinstance(studio_shot, Shot)
    assert [s.flash_fired for s in (studio_shot, both, flash_shot, dark)] == [False, True, True, False]
    assert [s.extra["lighting"] for s in (studio_shot, both, flash_shot, dark)] == ["studio", "both", "flash",
                                                                                  "dark"]
    # Measured on the pixels: the wrong orders give an overexposed or a dark, noisy picture.
    lum = {name: _mean_luma(tmp_path / f"{name}.jpg") for name in ("studio", "both", "flash", "dark")}
    assert lum["both"] > lum["studio"] + 15 and lum["both"] > lum["flash"] + 25
    assert lum["dark"] < 0.3 * lum["studio"] and lum["dark"] < 0.3 * lum["flash"]
    snr = {name: lum[name] / _noise(tmp_path / f"{name}.jpg") for name in ("studio", "dark")}
    assert snr["dark"] < 0.5 * snr["studio"]
    # The lamp level at the moment of capture counts, not the one asked before.
    lamps.on(64)
    dim = camera.capture(tmp_path / "dim.jpg", flash="off")
    assert dim.extra["lamp_level"] == 64
    assert lum["dark"] < _mean_luma(tmp_path / "dim.jpg") < lum["studio"] - 20


def test_shots_without_flash_carry_the_ground_truth(studio, tmp_path):
    lamps, camera = studio
    lamps.off()
    flash_shot = camera.capture(tmp_path / "flash.jpg", flash="on")
    lamps.on()
    studio_shot = camera.capture(tmp_path / "studio.jpg", flash="off")
    assert "ground_truth_transform" not in flash_shot.extra
    truth = studio_shot.extra["ground_truth_transform"]
    assert set(truth) == {"matrix", "translation"}
    assert np.asarray(truth["matrix"]).shape == (2, 2) and len(truth["translation"]) == 2
    # The same numbers as the pure renderer's for this seed and shot index (shots 0 and 1 are one pose).
    expected = render_shot(camera.portrait, lamps=1.0, flash=False, size=SIZE, seed=[7, 1], pose=pose_seed(7, 1))
    assert PoseMotion.from_meta(truth) == expected.motion
    assert studio_shot.extra["subject_transform"] == expected.pose.subject.as_meta()
    assert (flash_shot.extra["shot_index"], studio_shot.extra["shot_index"]) == (0, 1)
    assert studio_shot.extra["simulated"] is True and studio_shot.extra["portrait"] == "astronaut"


def test_same_seed_same_bytes_different_seed_different(astronaut_portrait, tmp_path):
    def session(seed: int, folder) -> list[bytes]:
        folder.mkdir()
        lamps = SimulatedLamps()
        camera = SimulatedCamera(astronaut_portrait, lambda: lamps.state, size=SIZE, seed=seed)
        lamps.on()
        camera.capture(folder / "studio.jpg", flash="off")
        lamps.off()
        camera.capture(folder / "flash.jpg", flash="on")
        return [(folder / name).read_bytes() for name in ("studio.jpg", "flash.jpg")]

    a, b, c = session(1, tmp_path / "a"), session(1, tmp_path / "b"), session(2, tmp_path / "c")
    assert a == b
    assert a[0] != c[0] and a[1] != c[1]
    assert a[0] != a[1]


def test_shot_index_lets_a_resumed_session_render_the_same_bytes(astronaut_portrait, tmp_path):
    lamps = SimulatedLamps()
    lamps.on()
    first = SimulatedCamera(astronaut_portrait, lambda: lamps.state, size=SIZE, seed=3)
    for i in range(3):
        first.capture(tmp_path / f"run-{i}.jpg", flash="off")
    resumed = SimulatedCamera(astronaut_portrait, lambda: lamps.state, size=SIZE, seed=3)
    resumed.shot_index = 2
    resumed.capture(tmp_path / "resumed.jpg", flash="off")
    assert (tmp_path / "resumed.jpg").read_bytes() == (tmp_path / "run-2.jpg").read_bytes()
    assert (tmp_path / "run-0.jpg").read_bytes() != (tmp_path / "run-1.jpg").read_bytes()  # each pose its own
    with pytest.raises(ValueError):
        resumed.shot_index = -1


def test_exif_says_who_took_it_and_whether_the_flash_fired(astronaut_portrait, tmp_path):
    lamps = SimulatedLamps()
    camera = SimulatedCamera(astronaut_portrait, lambda: lamps.state, size=SIZE, seed=0, orientation=6)
    lamps.off()
    camera.capture(tmp_path / "flash.jpg", flash="auto")
    lamps.on()
    camera.capture(tmp_path / "studio.jpg", flash="auto")
    flash_exif, studio_exif = read_camera_exif(tmp_path / "flash.jpg"), read_camera_exif(tmp_path / "studio.jpg")
    assert flash_exif["make"] == "DeepFlash" and flash_exif["model"] == "Virtual Studio"
    assert (flash_exif["flash_fired"], studio_exif["flash_fired"]) == (True, False)
    assert flash_exif["orientation"] == studio_exif["orientation"] == 6
    assert read_flash_fired(tmp_path / "flash.jpg") is True
    # The raw tag is what a phone on AUTO writes: 0x19 fired, 0x18 did not.
    with Image.open(tmp_path / "flash.jpg") as im:
        assert im.getexif().get_ifd(0x8769)[0x9209] == 0x19
        assert im.size == (SIZE[1], SIZE[0])  # stored in sensor order (landscape)
    with Image.open(tmp_path / "studio.jpg") as im:
        assert im.getexif().get_ifd(0x8769)[0x9209] == 0x18
    # Read upright, the stored picture is the rendered one.
    upright = read_image(tmp_path / "flash.jpg")
    rendered = render_shot(astronaut_portrait, lamps=0.0, flash=True, size=SIZE, seed=[0, 0]).image
    assert upright.shape == rendered.shape
    smooth = [cv2.GaussianBlur(image.astype(np.float32), (0, 0), 2) for image in (upright, rendered)]
    assert np.abs(smooth[0] - smooth[1]).mean() < 2  # JPEG and its noise only
    assert np.abs(smooth[0] - smooth[1][::-1]).mean() > 10


def test_make_exif_values_and_missing_tags(tmp_path):
    assert (flash_tag_value(False, "off"), flash_tag_value(True, "on"), flash_tag_value(True, "auto")) == \
        (0x10, 0x09, 0x19)
    assert (flash_tag_value(True), flash_tag_value(False)) == (0x09, 0x10)
    data = make_exif(make="Motorola", model="Nexus 6", flash_fired=False, orientation=3, Software="test")
    assert data.startswith(b"Exif\x00\x00")
    exif = Image.Exif()
    exif.load(data[6:])
    assert exif[0x0131] == "test" and exif.get_ifd(0x8769)[0x9209] == 0x10
    write_image(tmp_path / "plain.png", np.zeros((8, 8, 3), np.uint8))
    assert read_flash_fired(tmp_path / "plain.png") is None
    assert read_camera_exif(tmp_path / "plain.png") == {"make": None, "model": None, "flash_fired": None,
                                                         "orientation": 1, "datetime": None}
    with pytest.raises(ValueError, match="orientation"):
        make_exif(make="a", model="b", flash_fired=True, orientation=9)
    with pytest.raises(ValueError, match="unknown EXIF tag"):
        make_exif(make="a", model="b", flash_fired=True, NoSuchTag=1)
    with pytest.raises(AcquisitionError):
        read_camera_exif(tmp_path / "missing.jpg")
    (tmp_path / "junk.jpg").write_bytes(b"junk")
    with pytest.raises(AcquisitionError) as info:
        read_flash_fired(tmp_path / "junk.jpg")
    assert info.value.path == tmp_path / "junk.jpg"
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, format="JPEG")
    (tmp_path / "bare.jpg").write_bytes(buffer.getvalue())
    assert read_flash_fired(tmp_path / "bare.jpg") is None


def test_camera_rejects_bad_use(studio, tmp_path, astronaut_portrait):
    lamps, camera = studio
    with pytest.raises(ValueError, match="flash"):
        camera.capture(tmp_path / "x.jpg", flash="maybe")
    with pytest.raises(ValueError, match="orientation"):
        SimulatedCamera(astronaut_portrait, lambda: lamps.state, orientation=0)
    with pytest.raises(ValueError, match="size"):
        SimulatedCamera(astronaut_portrait, lambda: lamps.state, size=(8, 8))
    with camera:
        pass
    with pytest.raises(AcquisitionError, match="closed"):
        camera.capture(tmp_path / "x.jpg", flash="off")
    assert not (tmp_path / "x.jpg").exists()


def test_custom_config_reaches_the_pictures(astronaut_portrait, tmp_path):
    lamps = SimulatedLamps()
    lamps.on()
    noisy = StudioConfig(noise_studio=12.0)
    a = SimulatedCamera(astronaut_portrait, lambda: lamps.state, size=SIZE, seed=0)
    b = SimulatedCamera(astronaut_portrait, lambda: lamps.state, size=SIZE, seed=0, config=noisy)
    a.capture(tmp_path / "a.jpg", flash="off")
    b.capture(tmp_path / "b.jpg", flash="off")
    assert _noise(tmp_path / "b.jpg") > 2 * _noise(tmp_path / "a.jpg")
    assert b.info().settings["config"]["noise_studio"] == 12.0
