"""The adb camera against a fake adb on PATH, a phone whose storage is a folder (gphoto2: test_capture_gphoto2.py)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from fakes import install_fake_adb

from acquisition.cameras import AdbCamera, open_camera
from acquisition.devices import LampController
from acquisition.errors import AcquisitionError
from acquisition.exif import make_exif
from acquisition.imageio import read_image, write_image
from acquisition.layout import discover_pairs
from acquisition.prep import main
from acquisition.session import SessionConfig, capture_session


def _portrait(rgb: np.ndarray, path: Path, *, fired: bool | None, make="Google", model="Nexus 6") -> Path:
    exif = make_exif(make=make, model=model, flash_fired=fired, flash_mode="auto") if fired is not None else None
    write_image(path, np.ascontiguousarray(rgb[:320, :240]), exif=exif)
    return path


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
        assert len(list((phone / "phone/sdcard/DCIM/Camera").iterdir())) == 2  # kept until the pose is stored
        camera.shots_stored([studio, flash])
    assert (studio.flash_fired, flash.flash_fired) == (False, True)
    assert read_image(flash.path).shape == (320, 240, 3)
    assert list((phone / "phone/sdcard/DCIM/Camera").iterdir()) == []  # deleted once stored
    log = (phone / "log.txt").read_text().splitlines()
    assert any("STILL_IMAGE_CAMERA" in line for line in log)
    pulls = [i for i, line in enumerate(log) if " pull " in line]
    removes = [i for i, line in enumerate(log) if " rm " in line]
    assert len(pulls) == 2 and len(removes) == 1 and removes[0] > pulls[-1]  # one rm for the stored pose
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
    assert "check the USB cable" in str(info.value) and "Enter" not in str(info.value)


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
    assert len(_phone_files(phone)) == 2  # the discarded pose's pictures stay on the phone (only copy left)
    assert "--resume" in str(info.value)  # no one at a prompt: how to go on


# -- where and how phones save: an SD card, a folder set in the rig, HEIC, RAW + JPEG ---------------------


def _configure(phone: Path, **config) -> None:
    (phone / "config.json").write_text(json.dumps({"latency_s": 0.15, **config}))


def test_a_phone_saving_to_its_sd_card_is_found_and_named(phone, tmp_path):
    sd = "/storage/1234-ABCD/DCIM/Camera"
    for folder in ("storage/emulated/0", "storage/self/primary", "storage/1234-ABCD/DCIM/Camera",
                   "sdcard/DCIM/Screenshots"):
        (phone / "phone" / folder).mkdir(parents=True)
    _configure(phone, save_to=sd)
    lamps = FileLamps(phone)
    with AdbCamera(poll_s=0.02) as camera:
        assert set(camera.folders) == {"/sdcard/DCIM/Camera", sd}  # every DCIM camera folder, not Screenshots
        result = capture_session(tmp_path / "raw", "S001", lamps, camera, poses=1,
                                 config=SessionConfig(lamp_settle_ms=0, dark_wait_ms=0))
        assert camera.info().settings["picture_folder"] == sd
    assert result.complete == ("p01",)
    meta = json.loads((tmp_path / "raw/S001/p01/meta.json").read_text())
    assert meta["shots"]["flash"]["extra"]["adb"]["phone_file"].startswith(sd + "/IMG_")
    assert meta["shots"]["flash"]["flash_fired"] is True
    assert list((phone / "phone" / sd.lstrip("/")).iterdir()) == []  # verified, then deleted on the SD card


def test_the_rig_sets_the_phone_folder(phone, tmp_path, astronaut):
    folder = "/sdcard/DCIM/100ANDRO"
    (phone / "phone" / folder.lstrip("/")).mkdir(parents=True)
    _configure(phone, save_to=folder)
    with AdbCamera(folder=folder, poll_s=0.02) as camera:
        assert camera.folders == [folder]
        shot = camera.capture(tmp_path / "studio.jpg", flash="off")
    assert shot.extra["adb"]["phone_file"].startswith(folder + "/")
    with pytest.raises(AcquisitionError, match="cannot list /storage/9999-0000/DCIM/Camera on the phone: there is "
                                               "no /storage/9999-0000") as info:
        AdbCamera(folder="/storage/9999-0000/DCIM/Camera")  # no such SD card: a typo, said at once
    assert "adb_folder" in str(info.value)
    # from a rig file through the CLI (manual lamps cannot darken the fake phone: pictures without a Flash tag)
    _portrait(astronaut, phone / "lens/flash.jpg", fired=None)
    _portrait(astronaut, phone / "lens/noflash.jpg", fired=None)
    rig = tmp_path / "rig.toml"
    rig.write_text(f'lamps = "manual"\ncamera = "adb"\nadb_folder = "{folder}"\n')
    run = CliRunner().invoke(main, ["capture", "check", "--rig", str(rig), "--blinks", "1", "--lamp-settle-ms", "0"],
                             input="\n" * 6)
    assert run.exit_code == 0, run.output
    assert f"picture folder: {folder}" in run.output and "JPEG" in run.output


def test_a_phone_saving_heic_keeps_its_bytes_as_flash_heic(phone, tmp_path, astronaut):
    pillow_heif = pytest.importorskip("pillow_heif")
    from PIL import Image

    for name, fired in (("flash.heic", True), ("noflash.heic", False)):
        exif = make_exif(make="Google", model="Pixel 8", flash_fired=fired, flash_mode="auto")
        pillow_heif.from_pillow(Image.fromarray(astronaut[:320, :240])).save(phone / "lens" / name, exif=exif)
    _configure(phone, formats=["heic"])
    with AdbCamera(poll_s=0.02) as camera:
        result = capture_session(tmp_path / "raw", "S001", FileLamps(phone), camera, poses=1,
                                 config=SessionConfig(lamp_settle_ms=0, dark_wait_ms=0))
    assert result.complete == ("p01",)
    pose = tmp_path / "raw/S001/p01"
    assert sorted(p.name for p in pose.iterdir()) == ["flash.heic", "meta.json", "studio.heic"]
    assert (pose / "flash.heic").read_bytes() == (phone / "lens/flash.heic").read_bytes()  # the phone's bytes
    meta = json.loads((pose / "meta.json").read_text())
    assert meta["shots"]["flash"]["flash_fired"] is True and meta["shots"]["studio"]["flash_fired"] is False
    assert meta["shots"]["flash"]["extra"]["adb"]["format"] == "HEIC"
    assert [p.key for p in discover_pairs(tmp_path / "raw").pairs] == ["S001/p01"]
    assert read_image(pose / "flash.heic").shape == (320, 240, 3)


def test_a_phone_in_raw_plus_jpeg_mode_gives_the_jpeg(phone, tmp_path):
    from PIL import Image

    for name in ("flash.dng", "noflash.dng"):
        Image.new("RGB", (160, 120)).save(phone / "lens" / name, format="TIFF")
    _configure(phone, formats=["dng", "jpg"])
    with AdbCamera(poll_s=0.02) as camera:
        first = camera.capture(tmp_path / "studio.jpg", flash="off")
        second = camera.capture(tmp_path / "flash.jpg", flash="on")
    assert first.path.name == "studio.jpg" and read_image(first.path).shape == (320, 240, 3)
    assert second.extra["adb"]["phone_file"].endswith(".jpg") and second.extra["adb"]["format"] == "JPG"
    _configure(phone, formats=["dng"])  # RAW only: named at once, not "no new picture" after 10 s
    with AdbCamera(poll_s=0.02, format_grace_s=0.2) as camera:
        start = time.monotonic()
        with pytest.raises(AcquisitionError, match=r"saved a RAW picture \(IMG_\d+_\d+\.dng in "
                                                   r"/sdcard/DCIM/Camera\) and no JPEG") as info:
            camera.capture(tmp_path / "x.jpg", flash="off")
        assert time.monotonic() - start < 5
    assert "RAW mode off" in str(info.value) and not list(tmp_path.glob("x.*"))
    assert any(p.suffix == ".dng" for p in (phone / "phone/sdcard/DCIM/Camera").iterdir())  # left on the phone


# -- a retry never takes a picture from before its own trigger ----------------------------------------------


def _commands(phone: Path) -> int:
    return json.loads((phone / "state.json").read_text())["commands"]


def _phone_files(phone: Path, folder: str = "sdcard/DCIM/Camera") -> list[str]:
    return sorted(p.name for p in (phone / "phone" / folder).iterdir())


def test_a_retry_after_the_phone_was_unplugged_takes_its_own_pictures(phone, tmp_path):
    _configure(phone, latency_s=0.2)
    lamps = FileLamps(phone)
    errors, unplugged = [], []

    def on_event(event):
        if event.kind == "pose" and event.pose == "p02" and not unplugged:
            unplugged.append(True)
            # the phone is unplugged just after the studio shot's trigger: the wake key and the trigger are
            # answered, the listing that waits for the picture is not
            _configure(phone, latency_s=0.2, disconnect_after=_commands(phone) + 2)

    def ask(prompt):
        errors.append(prompt.error)
        _configure(phone, latency_s=0.2)  # plugged back in; Enter retries at once
        return "next" if len([e for e in errors if e is not None]) < 3 else "quit"

    with AdbCamera(poll_s=0.02, settle_s=0.3) as camera:
        result = capture_session(tmp_path / "raw", "S001", lamps, camera, poses=3, ask=ask, on_event=on_event,
                                 config=SessionConfig(lamp_settle_ms=0, dark_wait_ms=0))
    assert result.complete == ("p01", "p02", "p03")
    failures = [e for e in errors if e is not None]
    assert len(failures) == 1 and "studio shot (lamps on): lost the phone" in str(failures[0])
    meta = json.loads((tmp_path / "raw/S001/p02/meta.json").read_text())
    studio = meta["shots"]["studio"]["extra"]["adb"]["phone_file"]
    assert studio.endswith("IMG_20261125_000004.jpg"), studio  # the retry's own picture, not the failed one (3)
    assert meta["shots"]["flash"]["extra"]["adb"]["phone_file"].endswith("IMG_20261125_000005.jpg")
    # the failed attempt's picture is left on the phone (named in the log); the stored poses' are deleted
    assert _phone_files(phone) == ["IMG_20261125_000003.jpg"]


def test_a_picture_older_than_the_trigger_is_never_taken(phone, tmp_path):
    with AdbCamera(poll_s=0.02) as camera:
        # an old picture lands in the folder during the shot (restored from the phone's trash, with its time)
        state = json.loads((phone / "state.json").read_text())
        now = time.time()
        state.setdefault("pending", []).append({
            "remote": "/sdcard/DCIM/Camera/IMG_20200101_000001.jpg", "source": str(phone / "lens/flash.jpg"),
            "visible_at": now, "ready_at": now, "mtime": now - 3600})
        (phone / "state.json").write_text(json.dumps(state))
        shot = camera.capture(tmp_path / "studio.jpg", flash="off")
    assert shot.extra["adb"]["phone_file"].endswith("IMG_20261125_000001.jpg")
    assert "IMG_20200101_000001.jpg" in _phone_files(phone)


# -- a slow phone: a copy pulled while the phone pauses is pulled again; one that stays cut short is named ---


def test_a_slow_phone_is_pulled_again_until_the_copy_is_whole(phone, tmp_path, caplog):
    _configure(phone, latency_s=1.0)  # half the file for 0.5 s: the same size at two looks
    with caplog.at_level("INFO"), AdbCamera(poll_s=0.05) as camera:
        shot = camera.capture(tmp_path / "studio.jpg", flash="off")
    assert shot.path.read_bytes() == (phone / "lens/flash.jpg").read_bytes()  # the whole file, no lamps: fired
    assert read_image(shot.path).shape == (320, 240, 3)
    assert any("still being written" in r.getMessage() for r in caplog.records)
    _configure(phone, latency_s=60.0, visible_after_s=0.1)  # it never finishes writing within the shot's time
    with AdbCamera(poll_s=0.05, shot_timeout_s=0.8) as camera, \
            pytest.raises(AcquisitionError, match=r"the phone was still writing IMG_\d+_\d+\.jpg after 0.8 s: the "
                                                  r"copy is incomplete") as info:
        camera.capture(tmp_path / "flash.jpg", flash="on")
    assert "stays on the phone" in str(info.value) and "image format" not in str(info.value)
    assert not list(tmp_path.glob("flash*"))


# -- a fresh SD card: the camera app creates its folder with the first picture ------------------------------


def test_a_folder_the_camera_app_creates_with_its_first_picture_is_found(phone, tmp_path):
    sd = "/storage/1234-ABCD/DCIM/Camera"
    (phone / "phone/storage/1234-ABCD").mkdir(parents=True)  # a new card: no DCIM yet
    _configure(phone, save_to=sd)
    with AdbCamera(poll_s=0.02, relist_s=0.1) as camera:
        shot = camera.capture(tmp_path / "studio.jpg", flash="off")
        assert camera.info().settings["picture_folder"] == sd
    assert shot.extra["adb"]["phone_file"].startswith(sd + "/")
    (phone / "phone/storage/5678-EF01").mkdir(parents=True)  # given as adb_folder before the app made it
    _configure(phone, save_to="/storage/5678-EF01/DCIM/Camera")
    with AdbCamera(folder="/storage/5678-EF01/DCIM/Camera", poll_s=0.02) as camera:
        assert camera.capture(tmp_path / "flash.jpg", flash="on").path.is_file()


# -- the other files of a shot (RAW + JPEG, HEIC + JPEG) go beside it; the phone keeps all until stored -----


def test_companions_are_pulled_beside_their_shot_and_deleted_once_the_pose_is_stored(phone, tmp_path):
    from PIL import Image

    for name in ("flash.dng", "noflash.dng"):
        Image.new("RGB", (160, 120)).save(phone / "lens" / name, format="TIFF")
    _configure(phone, formats=["jpg", "dng"], companion_delay_s=0.4)  # the DNG comes last, as phones write it
    with AdbCamera(poll_s=0.02) as camera:
        result = capture_session(tmp_path / "raw", "S001", FileLamps(phone), camera, poses=1,
                                 config=SessionConfig(lamp_settle_ms=0, dark_wait_ms=0))
    assert result.complete == ("p01",)
    pose = tmp_path / "raw/S001/p01"
    meta = json.loads((pose / "meta.json").read_text())
    for role in ("studio", "flash"):
        phone_file = meta["shots"][role]["extra"]["adb"]["phone_file"]
        assert phone_file.endswith(".jpg")  # the JPEG is the shot, never the other shot's late DNG
        dng = f"{role}.{Path(phone_file).stem}.dng"
        assert meta["shots"][role]["extra_files"] == [dng]
        assert (pose / dng).read_bytes() == (phone / "lens" / ("noflash.dng" if role == "studio" else
                                                               "flash.dng")).read_bytes()
    assert _phone_files(phone) == []  # the pose is stored: everything of it deleted
    assert discover_pairs(tmp_path / "raw").problems == []
