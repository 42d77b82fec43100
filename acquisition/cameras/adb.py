"""Android phones over adb: the paper's camera was a phone (a Nexus 6).

gphoto2 cannot trigger a phone (phones offer PTP without capture), so the phone is driven like a person
would: wake the screen, open the still camera (an intent), press the camera key (``input keyevent 27``),
wait for the new picture in DCIM, pull it, check that the copy decodes, and only then delete it on the phone.
The flash cannot be switched over adb: it stays on AUTO in the phone's camera app and fires when the lamps are
off; the EXIF ``Flash`` tag of every shot says whether it did, and the session checks it.
"""

from __future__ import annotations

import logging
import posixpath
import shutil
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from ..atomic import atomic_path
from ..devices import Camera, CameraInfo, FlashMode, Shot
from ..errors import AcquisitionError
from ._common import flash_fired_of, now

log = logging.getLogger(__name__)

__all__ = ["AdbCamera", "list_adb_devices"]

STILL_CAMERA_INTENT: Final = "android.media.action.STILL_IMAGE_CAMERA"
KEYCODE_CAMERA: Final = 27
KEYCODE_WAKEUP: Final = 224
_PICTURE_SUFFIXES: Final = (".jpg", ".jpeg")
_GONE_WORDS: Final = ("not found", "no devices", "offline", "unauthorized", "disconnected", "closed")


def _run(adb: str, args: Sequence[str], *, timeout_s: float, serial: str | None) -> subprocess.CompletedProcess:
    command = [adb, *(["-s", serial] if serial else []), *args]
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    except FileNotFoundError as exc:
        raise AcquisitionError("the adb program was not found", path=adb,
                               hint="install Android platform-tools (Debian/Ubuntu: apt install adb) or put adb "
                                    "on PATH") from exc
    except subprocess.TimeoutExpired as exc:
        raise AcquisitionError(f"adb did not answer within {timeout_s:g} s ({' '.join(args[:3])})", path=serial,
                               hint="unplug and replug the phone; `adb kill-server` restarts a stuck adb") from exc


def list_adb_devices(adb: str = "adb", *, timeout_s: float = 10.0) -> list[tuple[str, str]]:
    """``adb devices`` as ``[(serial, state), ...]`` (state: device, unauthorized, offline, ...)."""
    result = _run(adb, ["devices"], timeout_s=timeout_s, serial=None)
    if result.returncode != 0:
        raise AcquisitionError(f"`adb devices` failed: {result.stderr.strip() or result.stdout.strip()}",
                               hint="`adb kill-server` and try again")
    devices = []
    for line in result.stdout.splitlines():
        if not line.strip() or line.startswith(("List of devices", "*")):
            continue
        parts = line.split()
        if len(parts) >= 2:
            devices.append((parts[0], parts[1]))
    return devices


class AdbCamera(Camera):
    """An Android phone's camera app, triggered over adb.

    Parameters
    ----------
    serial : str, optional
        The phone's adb serial (``adb devices``); None picks the only phone connected.
    adb : str
        The adb program (a name on PATH or a path).
    dcim : str
        Where the camera app saves pictures on the phone.
    shot_timeout_s : float
        How long to wait for a new picture after the trigger.
    poll_s : float
        Pause between two listings of ``dcim``.
    command_timeout_s : float
        Limit for any single adb command.
    delete_after_pull : bool
        Delete each picture on the phone once its pulled copy has been verified (keeps the phone from filling).
    reopen_after_s : float
        Bring the camera app to the front again before a shot when the phone has been idle this long (its
        screen may have dimmed or the app been paused); the two shots of a pose come sooner, so the flash shot
        is never delayed by it.
    """

    def __init__(self, serial: str | None = None, *, adb: str = "adb", dcim: str = "/sdcard/DCIM/Camera",
                 shot_timeout_s: float = 10.0, poll_s: float = 0.1, command_timeout_s: float = 15.0,
                 delete_after_pull: bool = True, reopen_after_s: float = 15.0) -> None:
        self.adb = shutil.which(adb) or adb
        self.dcim = dcim.rstrip("/") or "/"
        self.shot_timeout_s = shot_timeout_s
        self.poll_s = poll_s
        self.command_timeout_s = command_timeout_s
        self.delete_after_pull = delete_after_pull
        self.reopen_after_s = reopen_after_s
        devices = list_adb_devices(self.adb, timeout_s=command_timeout_s)
        if serial is None:
            ready = [s for s, state in devices if state == "device"]
            if not devices:
                raise AcquisitionError("no Android phone found by adb",
                                       hint="connect it over USB, enable USB debugging (Developer options) and "
                                            "accept the prompt on the phone")
            if len(ready) > 1:
                raise AcquisitionError(f"several phones are connected ({', '.join(ready)})",
                                       hint=f"choose one with --camera adb:{ready[0]}")
            serial = ready[0] if ready else devices[0][0]
        states = dict(devices)
        state = states.get(serial)
        if state is None:
            raise AcquisitionError(f"adb does not see a phone with serial {serial!r} "
                                   f"(it sees: {', '.join(states) or 'none'})",
                                   hint="check the cable and `adb devices`")
        if state == "unauthorized":
            raise AcquisitionError(f"phone {serial} has not authorised this computer",
                                   hint="unlock the phone and accept the 'Allow USB debugging' prompt")
        if state != "device":
            raise AcquisitionError(f"phone {serial} is {state}", hint="unplug and replug it; `adb kill-server`")
        self.serial = serial
        props = {name: self._shell(["getprop", name]).strip() for name in
                 ("ro.product.manufacturer", "ro.product.model", "ro.build.version.release")}
        self._make = props["ro.product.manufacturer"]
        self._model = props["ro.product.model"]
        self._android = props["ro.build.version.release"]
        self._known = self._listing()
        self._cleanup: threading.Thread | None = None  # the last shot's verification and deletion on the phone
        self._open_camera_app()

    # -- adb plumbing -------------------------------------------------------------------------------------
    def _adb(self, args: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess:
        result = _run(self.adb, args, timeout_s=self.command_timeout_s, serial=self.serial)
        if check and result.returncode != 0:
            text = (result.stderr.strip() or result.stdout.strip()).splitlines()
            text = text[-1] if text else f"exit status {result.returncode}"
            if any(word in text.lower() for word in _GONE_WORDS):
                raise AcquisitionError(f"lost the phone {self.serial} ({text})",
                                       hint="check the USB cable, unlock the phone, then run the same command with "
                                            "--resume")
            raise AcquisitionError(f"adb {' '.join(args[:4])} failed: {text}", path=self.serial)
        return result

    def _shell(self, args: Sequence[str], *, check: bool = True) -> str:
        return self._adb(["shell", *args], check=check).stdout

    def _listing(self) -> set[str]:
        result = self._adb(["shell", "ls", "-1", self.dcim], check=False)
        if result.returncode != 0:
            text = (result.stderr + result.stdout).strip()
            if any(word in text.lower() for word in _GONE_WORDS):
                self._adb(["shell", "true"])  # raises the "lost the phone" error
            raise AcquisitionError(f"cannot list {self.dcim} on the phone ({text})", path=self.dcim,
                                   hint="take one picture with the camera app by hand (it creates the folder), or "
                                        "give the camera app's folder")
        return {line.strip() for line in result.stdout.splitlines() if line.strip()}

    def _open_camera_app(self) -> None:
        self._shell(["input", "keyevent", str(KEYCODE_WAKEUP)])
        self._shell(["am", "start", "-W", "-a", STILL_CAMERA_INTENT])  # -W: return once the app is up
        self._last_used = time.monotonic()

    # -- the Camera interface -------------------------------------------------------------------------------
    def info(self) -> CameraInfo:
        """Make and model from the phone's properties; the flash mode is the app's AUTO."""
        return CameraInfo("adb", self._make, self._model,
                          {"serial": self.serial, "android": self._android, "dcim": self.dcim,
                           "flash": "auto (set in the phone's camera app; fires when the lamps are off)"})

    def _wait_for_new_picture(self) -> str:
        deadline = time.monotonic() + self.shot_timeout_s
        sizes: dict[str, str] = {}
        while True:
            fresh = sorted(name for name in self._listing() - self._known
                           if name.lower().endswith(_PICTURE_SUFFIXES) and not name.startswith("."))
            if fresh:
                name = fresh[-1]
                # The app may still be writing: take it once two looks give the same non-zero size.
                size = self._shell(["stat", "-c", "%s", posixpath.join(self.dcim, name)], check=False).strip()
                if size.isdigit() and int(size) > 0 and sizes.get(name) == size:
                    return name
                sizes[name] = size
            if time.monotonic() > deadline:
                raise AcquisitionError(
                    f"the phone saved no new picture in {self.dcim} within {self.shot_timeout_s:g} s",
                    path=self.serial,
                    hint="unlock the phone, leave its camera app open in photo mode, and check that the camera key "
                         "(or volume key) takes a picture")
            time.sleep(self.poll_s)

    def capture(self, path: Path, *, flash: FlashMode) -> Shot:
        """Trigger the phone, pull the new picture to ``path``, then verify it and delete it on the phone.

        ``flash`` is recorded but cannot be set: the phone's app keeps its flash on AUTO. The verification
        (a full decode) and the deletion run in the background while the session switches the lamps, so they
        add nothing to the time between the studio and the flash shot; the next capture (or ``close``) waits
        for them.
        """
        self._finish_cleanup()
        path = Path(path)
        if time.monotonic() - self._last_used > self.reopen_after_s:
            self._open_camera_app()
        else:
            self._shell(["input", "keyevent", str(KEYCODE_WAKEUP)])
        triggered = now()
        self._shell(["input", "keyevent", str(KEYCODE_CAMERA)])
        name = self._wait_for_new_picture()
        remote = posixpath.join(self.dcim, name)
        with atomic_path(path) as temp:
            self._adb(["pull", remote, str(temp)])
        saved = now()
        self._known.add(name)
        if self.delete_after_pull:
            self._cleanup = threading.Thread(target=self._verify_and_delete, args=(path, remote), daemon=True)
            self._cleanup.start()
        self._last_used = time.monotonic()
        extra: dict[str, Any] = {"phone_file": remote}
        return Shot(path, flash, flash_fired_of(path), triggered, saved, extra={"adb": extra})

    def _verify_and_delete(self, path: Path, remote: str) -> None:
        """Delete the phone's copy only once the pulled one decodes (a bad copy keeps the original)."""
        from ..imageio import read_image

        try:
            read_image(path)
        except AcquisitionError as exc:
            log.warning("%s; the original stays on the phone as %s", exc, remote)
            return
        try:
            self._shell(["rm", "-f", remote])
            self._known = self._listing()
        except AcquisitionError as exc:
            log.warning("could not delete %s on the phone (%s); it is skipped as an old picture", remote, exc)

    def _finish_cleanup(self) -> None:
        if self._cleanup is not None:
            self._cleanup.join()
            self._cleanup = None

    def close(self) -> None:
        """Wait for the last shot's verification and deletion (adb keeps no connection open for us)."""
        self._finish_cleanup()
