"""Camera backends: gphoto2 against libgphoto2's own virtual camera, adb against a fake adb on PATH."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from fakes import install_fake_adb

from acquisition.cameras import AdbCamera, Gphoto2Camera, open_camera
from acquisition.devices import LampController
from acquisition.errors import AcquisitionError
from acquisition.exif import make_exif
from acquisition.imageio import read_image, write_image
from acquisition.layout import discover_pairs
from acquisition.session import SessionConfig, capture_session


def _portrait(rgb: np.ndarray, path: Path, *, fired: bool | None, make="Google", model="Nexus 6") -> Path:
    exif = make_exif(make=make, model=model, flash_fired=fired, flash_mode="auto") if fired is not None else None
    write_image(path, np.ascontiguousarray(rgb[:320, :240]), exif=exif)
    return path


# -- gphoto2 -------------------------------------------------------------------------------------------------


@pytest.fixture()
def virtual_camera(tmp_path, monkeypatch, astronaut):
    """libgphoto2's virtual USB camera ("Nikon DSC D750") serving JPEGs from a folder."""
    gp = pytest.importorskip("gphoto2")
    folder = tmp_path / "vcamera"
    folder.mkdir()
    _portrait(astronaut, folder / "one.jpg", fired=None)
    monkeypatch.setenv("VCAMERADIR", str(folder))
    # As python-gphoto2's own tests do: the virtual USB port driver instead of the real ones.
    monkeypatch.setenv("IOLIBS", os.environ["IOLIBS"].replace("iolibs", "vusb"))
    return gp


def test_gphoto2_detects_captures_downloads_and_records_missing_flash_setting(virtual_camera, tmp_path):
    with open_camera("gphoto2") as camera:
        info = camera.info()
        assert info.backend == "gphoto2" and info.settings["port"].startswith("usb:")
        shots = [camera.capture(tmp_path / "out" / f"{i}.jpg", flash=f) for i, f in enumerate(("off", "on"))]
        # the virtual camera has no flash setting: -2 is recorded, not fatal
        assert "not available (-2)" in camera.info().settings["flash_setting"]
    for shot in shots:
        assert read_image(shot.path).shape == (320, 240, 3)
        assert shot.saved_at >= shot.triggered_at
        assert shot.extra["gphoto2"]["camera_file"].upper().endswith(".JPG")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0.jpg", "1.jpg"]


def test_gphoto2_wrong_port_and_busy_camera(virtual_camera, tmp_path):
    gp = virtual_camera
    with pytest.raises(AcquisitionError, match="no camera on gphoto2 port"):
        Gphoto2Camera("usb:009,099")
    camera = Gphoto2Camera(busy_retries=2, busy_wait_s=0.01)
    real = camera._camera
    calls = []

    class Busy:  # the body keeps answering -110, as when pictures were left undownloaded
        def __getattr__(self, name):
            return getattr(real, name)

        def capture(self, kind):
            calls.append(kind)
            raise gp.GPhoto2Error(-110)

    camera._camera = Busy()
    with pytest.raises(AcquisitionError, match="camera is busy") as info:
        camera.capture(tmp_path / "x.jpg", flash="off")
    assert len(calls) == 3 and "switch the camera off and on" in str(info.value)
    camera._camera = real
    camera.close()
    assert not (tmp_path / "x.jpg").exists()


def test_gphoto2_error_messages_are_actionable():
    from acquisition.cameras import gphoto2_error

    class Fake(Exception):
        def __init__(self, code):
            self.code = code

    assert "close the desktop photo importer" in str(gphoto2_error(Fake(-53), "connecting"))
    assert "cable" in str(gphoto2_error(Fake(-7), "taking a picture"))
    assert "-999" not in str(gphoto2_error(Fake(-110), "x")) and "busy" in str(gphoto2_error(Fake(-110), "x"))


def test_session_with_gphoto2_virtual_camera(virtual_camera, tmp_path):
    class Lamps(LampController):
        def _set(self, on, level):
            pass

    with Gphoto2Camera() as camera:
        result = capture_session(tmp_path / "raw", "S001", Lamps(), camera, poses=2,
                                 config=SessionConfig(lamp_settle_ms=0, dark_wait_ms=0))
    assert result.complete == ("p01", "p02")
    meta = json.loads((tmp_path / "raw/S001/p01/meta.json").read_text())
    assert meta["camera"]["backend"] == "gphoto2"
    assert any("no EXIF Flash tag" in w for w in meta["warnings"])  # unverifiable, so said, not hidden


# -- adb -----------------------------------------------------------------------------------------------------


@pytest.fixture()
def phone(tmp_path, monkeypatch, astronaut):
    """A fake phone behind a fake adb on PATH."""
    home = tmp_path / "phone-home"
    (home / "phone/sdcard/DCIM/Camera").mkdir(parents=True)
    (home / "lens").mkdir()
    _portrait(astronaut, home / "lens/flash.jpg", fired=True)
    _portrait(astronaut[:, ::-1], home / "lens/noflash.jpg", fired=False)
    (home / "devices.json").write_text(json.dumps({"ZX1G22": "device"}))
    (home / "props.json").write_text(json.dumps({"ro.product.manufacturer": "motorola",
                                                 "ro.product.model": "Nexus 6",
                                                 "ro.build.version.release": "7.1.1"}))
    (home / "config.json").write_text(json.dumps({"latency_s": 0.15}))
    install_fake_adb(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_ADB_HOME", str(home))
    return home


class FileLamps(LampController):
    """Lamps whose light the fake phone's AUTO flash sees."""

    name = "file"

    def __init__(self, home: Path):
        super().__init__()
        self.home = home

    def _set(self, on, level):
        (self.home / "light").write_text("on" if on and level else "off")


def test_adb_camera_pulls_verifies_and_deletes(phone, tmp_path):
    lamps = FileLamps(phone)
    with open_camera("adb", poll_s=0.02) as camera:
        info = camera.info()
        assert (info.make, info.model, info.settings["serial"]) == ("motorola", "Nexus 6", "ZX1G22")
        lamps.on()
        studio = camera.capture(tmp_path / "studio.jpg", flash="off")
        lamps.off()
        flash = camera.capture(tmp_path / "flash.jpg", flash="on")
    assert (studio.flash_fired, flash.flash_fired) == (False, True)
    assert read_image(flash.path).shape == (320, 240, 3)
    assert list((phone / "phone/sdcard/DCIM/Camera").iterdir()) == []  # deleted after the verified pull
    log = (phone / "log.txt").read_text().splitlines()
    assert any("STILL_IMAGE_CAMERA" in line for line in log)
    pulls = [i for i, line in enumerate(log) if " pull " in line]
    removes = [i for i, line in enumerate(log) if " rm " in line]
    assert pulls and removes and all(r > p for p, r in zip(pulls, removes, strict=True))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    assert sum("STILL_IMAGE_CAMERA" in line for line in log) == 1  # the shots of a pose do not reopen the app


def test_adb_reopens_the_camera_app_after_the_phone_idled(phone, tmp_path):
    with AdbCamera(poll_s=0.02, reopen_after_s=0.0) as camera:
        (phone / "state.json").write_text(json.dumps({"awake": False, "camera_open": False}))  # app paused
        shot = camera.capture(tmp_path / "x.jpg", flash="off")
    assert shot.flash_fired is True  # no lamps file: dark, so the AUTO flash fired
    log = (phone / "log.txt").read_text()
    assert log.count("STILL_IMAGE_CAMERA") == 2


def test_adb_errors_name_the_fix(phone, tmp_path):
    with pytest.raises(AcquisitionError, match="does not see a phone with serial 'NOPE'"):
        AdbCamera("NOPE")
    (phone / "devices.json").write_text(json.dumps({"ZX1G22": "unauthorized"}))
    with pytest.raises(AcquisitionError, match="Allow USB debugging"):
        AdbCamera()
    (phone / "devices.json").write_text(json.dumps({}))
    with pytest.raises(AcquisitionError, match="no Android phone found"):
        AdbCamera()
    (phone / "devices.json").write_text(json.dumps({"ZX1G22": "device"}))
    camera = AdbCamera(shot_timeout_s=0.3, poll_s=0.02)
    (phone / "state.json").write_text(json.dumps({"awake": True, "camera_open": False}))  # app closed
    with pytest.raises(AcquisitionError, match="no new picture"):
        camera.capture(tmp_path / "a.jpg", flash="off")
    assert not (tmp_path / "a.jpg").exists()
    state = json.loads((phone / "state.json").read_text())
    (phone / "config.json").write_text(json.dumps({"disconnect_after": state["commands"]}))
    with pytest.raises(AcquisitionError, match="lost the phone ZX1G22") as info:
        camera.capture(tmp_path / "b.jpg", flash="off")
    assert "--resume" in str(info.value)


def test_adb_without_adb_installed(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(AcquisitionError, match="adb program was not found"):
        AdbCamera()


def test_session_with_phone_checks_the_auto_flash(phone, tmp_path):
    lamps = FileLamps(phone)
    with AdbCamera(poll_s=0.02) as camera:
        result = capture_session(tmp_path / "raw", "S012", lamps, camera, poses=2,
                                 config=SessionConfig(lamp_settle_ms=0, dark_wait_ms=0))
    assert result.complete == ("p01", "p02")
    assert len(discover_pairs(tmp_path / "raw").pairs) == 2
    meta = json.loads((tmp_path / "raw/S012/p02/meta.json").read_text())
    assert meta["camera"]["model"] == "Nexus 6" and meta["shots"]["flash"]["flash_fired"] is True
    assert meta["warnings"] == []
    # lamps that never switch off: the phone's AUTO flash stays off and the session says so
    class StuckLamps(FileLamps):
        def _set(self, on, level):
            (self.home / "light").write_text("on")

    with AdbCamera(poll_s=0.02) as camera, pytest.raises(AcquisitionError, match="flash did not fire") as info:
        capture_session(tmp_path / "raw", "S013", StuckLamps(phone), camera, poses=1,
                        config=SessionConfig(lamp_settle_ms=0, dark_wait_ms=0))
    assert "--dark-wait-ms" in str(info.value)
    assert discover_pairs(tmp_path / "raw").problems == []
    assert not (tmp_path / "raw/S013/p01").exists()
