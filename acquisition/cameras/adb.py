"""Android phones over adb: the paper's camera was a phone (a Nexus 6).

gphoto2 cannot trigger a phone (phones offer PTP without capture), so the phone is driven like a person
would: wake the screen, open the still camera (an intent), press the camera key (``input keyevent 27``),
wait for the new picture, pull it, check that the copy decodes, and only then delete it on the phone.
The flash cannot be switched over adb: it stays on AUTO in the phone's camera app and fires when the lamps are
off; the EXIF ``Flash`` tag of every shot says whether it did, and the session checks it.

Camera apps save to different places (``DCIM/Camera`` in internal storage, ``DCIM/100ANDRO``, an SD card's
``/storage/XXXX-XXXX/DCIM/...``) and in different formats (JPEG, HEIC when "high efficiency" is on, DNG in
RAW mode). Unless a folder is given, every DCIM folder of every storage is watched, and the new file is taken
wherever it appears. The phone's bytes are kept as they are: a HEIC shot is stored as ``flash.heic`` (the
image reader decodes it, :data:`acquisition.imageio.IMAGE_EXTENSIONS`); a picture in a format it cannot read
(a DNG alone) is named, with the setting to change.
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
#: What camera apps save stills as; whether prep can use one is :data:`acquisition.imageio.IMAGE_EXTENSIONS`.
_PICTURE_SUFFIXES: Final = (".jpg", ".jpeg", ".heic", ".heif", ".hif", ".dng", ".png", ".webp", ".avif")
_JPEG_SUFFIXES: Final = (".jpg", ".jpeg")
#: DCIM folders that are not the camera's.
_NOT_CAMERA_FOLDERS: Final = ("screenshots", "screen recordings", "screenrecorder")
_DEFAULT_FOLDER: Final = "/sdcard/DCIM/Camera"
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
    folder : str, optional
        Where the camera app saves pictures on the phone (the rig file's ``adb_folder``). None watches every
        folder in DCIM, in internal storage and on SD cards, and takes the new picture wherever it appears.
    shot_timeout_s : float
        How long to wait for a new picture after the trigger.
    poll_s : float
        Pause between two listings of the picture folders.
    command_timeout_s : float
        Limit for any single adb command.
    delete_after_pull : bool
        Delete each picture on the phone once its pulled copy has been verified (keeps the phone from filling).
    reopen_after_s : float
        Bring the camera app to the front again before a shot when the phone has been idle this long (its
        screen may have dimmed or the app been paused); the two shots of a pose come sooner, so the flash shot
        is never delayed by it.
    format_grace_s : float
        How long a finished picture in a format prep cannot read (a DNG) waits for a JPEG companion before
        the shot is refused.
    """

    def __init__(self, serial: str | None = None, *, adb: str = "adb", folder: str | None = None,
                 shot_timeout_s: float = 10.0, poll_s: float = 0.1, command_timeout_s: float = 15.0,
                 delete_after_pull: bool = True, reopen_after_s: float = 15.0, format_grace_s: float = 1.0) -> None:
        self.adb = shutil.which(adb) or adb
        self.given_folder = (folder.rstrip("/") or "/") if folder else None
        self.format_grace_s = format_grace_s
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
        self.folders = [self.given_folder] if self.given_folder else self._camera_folders()
        self._found_in: str | None = None  # where the last picture was
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

    def _camera_folders(self) -> list[str]:
        """Every DCIM folder of internal storage and of each SD card (``/storage/XXXX-XXXX``)."""
        storages = self._adb(["shell", "ls", "-1", "/storage"], check=False).stdout.split()
        roots = ["/sdcard", *(f"/storage/{name}" for name in storages
                              if name not in ("emulated", "self") and not name.startswith("."))]
        listed = self._ls([f"{root}/DCIM" for root in roots], directories=True)
        folders = [posixpath.join(dcim, name) for dcim, names in listed.items() for name in names
                   if not name.startswith(".") and name.lower() not in _NOT_CAMERA_FOLDERS]
        return folders or [_DEFAULT_FOLDER]  # none yet: the default, whose listing says what to do

    def _ls(self, folders: Sequence[str], *, directories: bool = False) -> dict[str, list[str]]:
        """``ls -1`` of several folders in one adb call: {folder: names} for those that exist (``directories``:
        only subfolders)."""
        result = self._adb(["shell", "ls", "-1", *(["-p"] if directories else []), *folders], check=False)
        text = (result.stderr + result.stdout).strip()
        if result.returncode != 0 and any(word in text.lower() for word in _GONE_WORDS):
            self._adb(["shell", "true"])  # raises the "lost the phone" error
        if len(folders) == 1:  # ls names the folder only when it lists several
            if result.returncode != 0:
                return {}
            current: str | None = folders[0]
            listed: dict[str, list[str]] = {current: []}
        else:
            current, listed = None, {}
        for line in result.stdout.splitlines():
            line = line.rstrip()
            if len(folders) > 1 and line.endswith(":") and line[:-1] in folders:
                current = line[:-1]
                listed[current] = []
                continue
            if not line or current is None:
                continue
            entries = listed.setdefault(current, [])
            if directories:
                if line.endswith("/"):
                    entries.append(line[:-1])
            else:
                entries.append(line)
        return listed

    def _listing(self) -> set[str]:
        """Full phone paths of what the watched folders hold now."""
        listed = self._ls(self.folders)
        if not listed:
            where = ", ".join(self.folders)
            raise AcquisitionError(f"cannot list {where} on the phone (no such folder)", path=self.folders[0],
                                   hint="take one picture with the camera app by hand (it creates the folder), or "
                                        "give the camera app's folder: adb_folder in the rig file (--adb-folder)")
        return {posixpath.join(folder, name) for folder, names in listed.items() for name in names}

    def _open_camera_app(self) -> None:
        self._shell(["input", "keyevent", str(KEYCODE_WAKEUP)])
        self._shell(["am", "start", "-W", "-a", STILL_CAMERA_INTENT])  # -W: return once the app is up
        self._last_used = time.monotonic()

    # -- the Camera interface -------------------------------------------------------------------------------
    def info(self) -> CameraInfo:
        """Make and model from the phone's properties; the flash mode is the app's AUTO."""
        settings: dict[str, Any] = {
            "serial": self.serial, "android": self._android,
            "picture_folders": self.given_folder or f"watching {', '.join(self.folders)}",
            "flash": "auto (set in the phone's camera app; fires when the lamps are off)"}
        if self._found_in is not None:
            settings["picture_folder"] = self._found_in
        return CameraInfo("adb", self._make, self._model, settings)

    def _wait_for_new_picture(self) -> str:
        """The phone path of the picture the trigger produced, once it is completely written."""
        from ..imageio import IMAGE_EXTENSIONS

        deadline = time.monotonic() + self.shot_timeout_s
        sizes: dict[str, str] = {}
        finished: dict[str, float] = {}  # unreadable formats: when they were complete
        while True:
            fresh = sorted(remote for remote in self._listing() - self._known
                           if remote.lower().endswith(_PICTURE_SUFFIXES)
                           and not posixpath.basename(remote).startswith("."))
            ready = []
            for remote in fresh:
                # The app may still be writing: take it once two looks give the same non-zero size.
                size = self._shell(["stat", "-c", "%s", remote], check=False).strip()
                if size.isdigit() and int(size) > 0 and sizes.get(remote) == size:
                    ready.append(remote)
                sizes[remote] = size
            usable = [r for r in ready if posixpath.splitext(r)[1].lower() in IMAGE_EXTENSIONS]
            if usable:  # a JPEG first (a phone in RAW+JPEG mode writes both); the others are this shot's too
                self._known.update(ready)
                return sorted(usable, key=lambda r: (not r.lower().endswith(_JPEG_SUFFIXES), r))[0]
            for remote in ready:
                finished.setdefault(remote, time.monotonic())
            late = time.monotonic() > deadline
            if finished and (late or time.monotonic() - min(finished.values()) >= self.format_grace_s):
                self._known.update(finished)  # left on the phone, and never taken for a later shot
                raise self._unreadable(sorted(finished))
            if late:
                where = ", ".join(self.folders)
                raise AcquisitionError(
                    f"the phone saved no new picture in {where} within {self.shot_timeout_s:g} s",
                    path=self.serial,
                    hint="unlock the phone, leave its camera app open in photo mode, and check that the camera key "
                         "(or volume key) takes a picture; if the app saves elsewhere, give that folder: adb_folder "
                         "in the rig file (--adb-folder)")
            time.sleep(self.poll_s)

    def _unreadable(self, remotes: Sequence[str]) -> AcquisitionError:
        """What to say about a new picture in a format prep cannot read, naming it and the setting to change."""
        remote = remotes[0]
        name, folder, suffix = posixpath.basename(remote), posixpath.dirname(remote), posixpath.splitext(remote)[1]
        if suffix.lower() == ".dng":
            return AcquisitionError(f"the phone saved a RAW picture ({name} in {folder}) and no JPEG",
                                    path=self.serial,
                                    hint="switch the camera app's RAW mode off (or to RAW + JPEG); the picture "
                                         "stays on the phone")
        return AcquisitionError(f"the phone saved {name} in {folder}, a format prep cannot read", path=self.serial,
                                hint="switch the camera app's picture format to JPEG")

    def capture(self, path: Path, *, flash: FlashMode) -> Shot:
        """Trigger the phone, pull the new picture to ``path``, then verify it and delete it on the phone.

        A picture in another readable format than ``path``'s keeps its own extension (``flash.heic``):
        ``Shot.path`` is where it went.

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
        remote = self._wait_for_new_picture()
        suffix = posixpath.splitext(remote)[1].lower()
        if not (suffix in _JPEG_SUFFIXES and path.suffix.lower() in _JPEG_SUFFIXES):
            path = path.with_suffix(suffix)  # keep the phone's bytes, under their own type (flash.heic)
        with atomic_path(path) as temp:
            self._adb(["pull", remote, str(temp)])
        saved = now()
        self._known.add(remote)
        folder = posixpath.dirname(remote)
        if folder != self._found_in:
            log.info("the phone's camera saves to %s", folder)
            self._found_in = folder
        if self.delete_after_pull:
            self._cleanup = threading.Thread(target=self._verify_and_delete, args=(path, remote), daemon=True)
            self._cleanup.start()
        self._last_used = time.monotonic()
        extra: dict[str, Any] = {"phone_file": remote, "format": suffix.lstrip(".").upper()}
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
