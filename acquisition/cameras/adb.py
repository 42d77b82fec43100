"""Android phones over adb: the paper's camera was a phone (a Nexus 6).

gphoto2 cannot trigger a phone (phones offer PTP without capture), so the phone is driven like a person
would: wake the screen, open the still camera (an intent), press the camera key (``input keyevent 27``),
wait for the new picture, pull it and check that the copy is whole. The flash cannot be switched over adb: it
stays on AUTO in the phone's camera app and fires when the lamps are off; the EXIF ``Flash`` tag of every shot
says whether it did, and the session checks it.

Which picture is the shot's: the one that appeared after its own trigger. The folders are listed before the
first trigger and every file seen is "known"; a file the phone wrote before the trigger (by its time on the
phone's clock, read in the same adb call as the key press) is never taken. After a failed attempt (the phone
unplugged just after its trigger), the next pose first waits until the failed attempt's picture has landed and
marks it known, so a retry never pairs a stale picture with a new one.

A picture is pulled once its size stops changing, and the copy is checked for being whole (a JPEG's end
marker, a HEIC's boxes): a slow phone pauses while writing, so a copy taken in such a pause is pulled again
once the phone has finished, within ``shot_timeout_s``; one still cut short then is named as such.

Camera apps save to different places (``DCIM/Camera`` in internal storage, ``DCIM/100ANDRO``, an SD card's
``/storage/XXXX-XXXX/DCIM/...``, which the app creates with its first picture) and in different formats (JPEG,
HEIC when "high efficiency" is on, DNG in RAW mode, both in "RAW + JPEG"). Unless a folder is given, every
DCIM folder of every storage is watched, the DCIM trees are listed again while a shot is awaited (a folder
created by that shot is found), and the new file is taken wherever it appears. The phone's bytes are kept as
they are: a HEIC shot is stored as ``flash.heic`` (the image reader decodes it,
:data:`acquisition.imageio.IMAGE_EXTENSIONS`); the other files of the same shot (the DNG of RAW + JPEG) are
pulled beside it once the pose is stored; a picture in a format prep cannot read (a DNG alone) is named, with
the setting to change. Nothing is deleted on the phone before its pose is stored
(:meth:`AdbCamera.shots_stored`), and deleting adds nothing between the two shots of a pose.
"""

from __future__ import annotations

import logging
import math
import posixpath
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from ..atomic import atomic_path
from ..devices import Camera, CameraInfo, FlashMode, Shot
from ..errors import AcquisitionError
from ._common import flash_fired_of, is_whole, now

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
#: A file whose time on the phone is this much older than the trigger was not made by it (seconds: the
#: phone's file times have whole seconds, and zero-shutter-lag apps keep a frame from just before the press).
_CLOCK_SLACK_S: Final = 2.0


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


def _storage_root(folder: str) -> str:
    """``/storage/1234-ABCD/DCIM/Camera`` → ``/storage/1234-ABCD``; ``/sdcard/DCIM/x`` → ``/sdcard``."""
    parts = [p for p in folder.split("/") if p]
    if parts[:2] == ["storage", "emulated"]:
        return "/" + "/".join(parts[:3])
    return "/" + "/".join(parts[:2] if parts[:1] == ["storage"] else parts[:1])


def _is_picture(remote: str) -> bool:
    name = posixpath.basename(remote)
    return name.lower().endswith(_PICTURE_SUFFIXES) and not name.startswith(".")


class AdbCamera(Camera):
    """An Android phone's camera app, triggered over adb.

    Parameters
    ----------
    serial : str, optional
        The phone's adb serial (``adb devices``); None picks the only phone connected.
    adb : str
        The adb program (a name on PATH or a path).
    folder : str, optional
        Where the camera app saves pictures on the phone (the rig file's ``adb_folder``); it may not exist yet
        (the app creates it with its first picture) if its storage does. None watches every folder in DCIM, in
        internal storage and on SD cards, and takes the new picture wherever it appears.
    shot_timeout_s : float
        How long to wait for a new picture, completely written, after the trigger.
    poll_s : float
        Pause between two listings of the picture folders.
    command_timeout_s : float
        Limit for any single adb command.
    delete_after_pull : bool
        Delete each picture (and the other files of its shot) on the phone once its pose is stored (keeps the
        phone from filling).
    reopen_after_s : float
        Bring the camera app to the front again before a shot when the phone has been idle this long (its
        screen may have dimmed or the app been paused); the two shots of a pose come sooner, so the flash shot
        is never delayed by it.
    format_grace_s : float
        How long a finished picture in a format prep cannot read (a DNG) waits for a JPEG companion before
        the shot is refused.
    relist_s : float
        While no new picture has appeared, list the storages' DCIM trees again this often (a folder the
        camera app creates with its first picture, e.g. on a new SD card).
    settle_s : float
        After a failed attempt, how long the folders must stay unchanged before the next trigger (the failed
        attempt's picture may still land).
    """

    def __init__(self, serial: str | None = None, *, adb: str = "adb", folder: str | None = None,
                 shot_timeout_s: float = 10.0, poll_s: float = 0.1, command_timeout_s: float = 15.0,
                 delete_after_pull: bool = True, reopen_after_s: float = 15.0, format_grace_s: float = 1.0,
                 relist_s: float = 1.0, settle_s: float = 1.0) -> None:
        for name, value in (("shot_timeout_s", shot_timeout_s), ("poll_s", poll_s),
                            ("command_timeout_s", command_timeout_s), ("reopen_after_s", reopen_after_s),
                            ("format_grace_s", format_grace_s), ("relist_s", relist_s), ("settle_s", settle_s)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        self.adb = shutil.which(adb) or adb
        self.given_folder = (folder.rstrip("/") or "/") if folder else None
        self.format_grace_s = format_grace_s
        self.shot_timeout_s = shot_timeout_s
        self.poll_s = poll_s
        self.command_timeout_s = command_timeout_s
        self.delete_after_pull = delete_after_pull
        self.reopen_after_s = reopen_after_s
        self.relist_s = relist_s
        self.settle_s = settle_s
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
        self._roots = self._storage_roots()
        if self.given_folder:
            self._check_given_folder()
            self.folders = [self.given_folder]
        else:
            self.folders = self._camera_folders()
        self._found_in: str | None = None  # where the last picture was
        self._known = self._listing()  # never taken as a shot's picture
        self._failed_trigger: float | None = None  # time.monotonic() of a trigger whose capture failed
        self._unstored: dict[str, list[str]] = {}  # each pulled shot's phone file: the other files of its shot
        self._recent: dict[str, Path | None] = {}  # the last shots' phone files: where they are stored, once they are
        self._beside: dict[str, set[str]] = {}  # the last shots' phone files: the suffixes of their other files
        self._orphans: list[tuple[Path, str]] = []  # files of a stored shot that came after it: pulled next time
        self._open_camera_app()

    # -- adb plumbing -------------------------------------------------------------------------------------
    def _adb(self, args: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess:
        result = _run(self.adb, args, timeout_s=self.command_timeout_s, serial=self.serial)
        if check and result.returncode != 0:
            text = (result.stderr.strip() or result.stdout.strip()).splitlines()
            text = text[-1] if text else f"exit status {result.returncode}"
            if any(word in text.lower() for word in _GONE_WORDS):
                raise AcquisitionError(f"lost the phone {self.serial} ({text})",
                                       hint="check the USB cable and unlock the phone")
            raise AcquisitionError(f"adb {' '.join(args[:4])} failed: {text}", path=self.serial)
        return result

    def _shell(self, args: Sequence[str], *, check: bool = True) -> str:
        return self._adb(["shell", *args], check=check).stdout

    def _storage_roots(self) -> list[str]:
        """Internal storage and each SD card (``/storage/XXXX-XXXX``)."""
        storages = self._adb(["shell", "ls", "-1", "/storage"], check=False).stdout.split()
        return ["/sdcard", *(f"/storage/{name}" for name in storages
                             if name not in ("emulated", "self") and not name.startswith("."))]

    def _camera_folders(self) -> list[str]:
        """Every DCIM folder of internal storage and of each SD card."""
        listed = self._ls([f"{root}/DCIM" for root in self._roots], directories=True)
        folders = [posixpath.join(dcim, name) for dcim, names in listed.items() for name in names
                   if not name.startswith(".") and name.lower() not in _NOT_CAMERA_FOLDERS]
        return folders or [_DEFAULT_FOLDER]  # none yet: watched until the camera app creates one

    def _check_given_folder(self) -> None:
        """A given folder may not exist yet (the app creates it with its first picture); its storage must."""
        folder = self.given_folder
        if self._ls([folder]):
            return
        root = _storage_root(folder)
        if not self._ls([root]):
            raise AcquisitionError(f"cannot list {folder} on the phone: there is no {root} (the phone has "
                                   f"{', '.join(self._roots)})", path=folder,
                                   hint="check adb_folder in the rig file (--adb-folder): the camera app's folder, "
                                        "e.g. /storage/1234-ABCD/DCIM/Camera for an SD card")
        log.warning("%s does not exist on the phone yet; the camera app creates it with its first picture", folder)

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
        """Full phone paths of what the watched folders hold now (a folder not created yet holds nothing)."""
        listed = self._ls(self.folders)
        return {posixpath.join(folder, name) for folder, names in listed.items() for name in names}

    def _watch_new_folders(self) -> bool:
        """List the storages' DCIM trees again (an SD card inserted, a folder the app just created); True when
        a folder is watched now that was not before."""
        if self.given_folder:
            return False
        self._roots = self._storage_roots()
        found = [f for f in self._camera_folders() if f not in self.folders]
        if found:
            log.info("new picture folder on the phone: %s", ", ".join(found))
            self.folders = [*self.folders, *found]
        return bool(found)

    def _stat(self, remotes: Sequence[str]) -> dict[str, tuple[int, int]]:
        """{phone path: (size in bytes, modification time in the phone's seconds)} in one adb call."""
        if not remotes:
            return {}
        result = self._shell(["stat", "-c", "%s:%Y:%n", *remotes], check=False)
        stats = {}
        for line in result.splitlines():
            size, _, rest = line.partition(":")
            mtime, _, name = rest.partition(":")
            if size.isdigit() and mtime.isdigit() and name in remotes:
                stats[name] = (int(size), int(mtime))
        return stats

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

    def begin_pose(self) -> None:
        """Before a pose: after a failed attempt, let its picture land and mark it known (never this pose's)."""
        self._settle_after_failure()

    def _settle_after_failure(self) -> None:
        """After a trigger whose capture failed, wait until the folders have stayed unchanged ``settle_s`` (its
        picture may still be being written), and mark everything there as known."""
        if self._failed_trigger is None:
            return
        self._watch_new_folders()
        listing, sizes = self._listing(), None
        quiet_from = time.monotonic()
        limit = self._failed_trigger + self.shot_timeout_s  # its picture comes by then, or never
        while time.monotonic() - quiet_from < self.settle_s and time.monotonic() < limit:
            time.sleep(self.poll_s)
            again = self._listing()
            again_sizes = self._stat(sorted(again - self._known))
            if again != listing or again_sizes != sizes:  # still landing (or still being written)
                listing, sizes, quiet_from = again, again_sizes, time.monotonic()
        stale = sorted(p for p in listing - self._known if _is_picture(p))
        if stale:
            log.warning("left on the phone from the failed attempt (not used): %s",
                        ", ".join(posixpath.basename(p) for p in stale))
        self._known |= listing
        self._failed_trigger = None

    def _trigger(self) -> tuple[float, int | None]:
        """Press the camera key; return when (time.time()) and the phone's clock then (whole seconds, or None
        when the phone does not say), read in the same adb call so that it costs nothing more."""
        triggered = now()
        out = self._shell(["date", "+%s", ";", "input", "keyevent", str(KEYCODE_CAMERA)])
        first = out.split()[0] if out.split() else ""
        return triggered, int(first) if first.isdigit() else None

    def _wait_for_new_picture(self, phone_time: int | None) -> tuple[str, list[str], int]:
        """The phone path of the picture the trigger produced once its size has stopped changing, the other
        new files of the same shot, and its size."""
        from ..imageio import IMAGE_EXTENSIONS

        start = time.monotonic()
        deadline, relisted = start + self.shot_timeout_s, start
        looks: dict[str, tuple[int, int]] = {}
        finished: dict[str, float] = {}  # unreadable formats: when they were complete
        others: set[str] = set()  # new files that are no pictures (a video), named if nothing comes
        while True:
            new = self._listing() - self._known
            others |= {p for p in new if not _is_picture(p)}
            stats = self._stat(sorted(p for p in new if _is_picture(p)))
            fresh, ready = [], []
            for remote, (size, mtime) in sorted(stats.items()):
                if self._adopted(remote):
                    continue
                if phone_time is not None and mtime < phone_time - _CLOCK_SLACK_S:
                    self._known.add(remote)  # written before this trigger: an earlier attempt's, left alone
                    log.warning("%s on the phone is older than this shot's trigger: not taken (it stays on the "
                                "phone)", remote)
                    continue
                fresh.append(remote)
                if size > 0 and looks.get(remote) == (size, mtime):  # two looks, the same size and time
                    ready.append(remote)
                looks[remote] = (size, mtime)
            usable = [r for r in ready if posixpath.splitext(r)[1].lower() in IMAGE_EXTENSIONS]
            if usable:  # a JPEG first (a phone in RAW + JPEG mode writes both); the others are this shot's too
                chosen = sorted(usable, key=lambda r: (not r.lower().endswith(_JPEG_SUFFIXES), r))[0]
                self._known.update(fresh)
                return chosen, [r for r in fresh if r != chosen], looks[chosen][0]
            for remote in ready:
                finished.setdefault(remote, time.monotonic())
            late = time.monotonic() > deadline
            if finished and (late or time.monotonic() - min(finished.values()) >= self.format_grace_s):
                self._known.update(fresh)  # left on the phone, and never taken for a later shot
                raise self._unreadable(sorted(finished))
            if late:
                raise self._nothing_new(sorted(others))
            if not fresh and time.monotonic() - relisted >= self.relist_s:
                relisted = time.monotonic()
                if self._watch_new_folders():
                    continue
            time.sleep(self.poll_s)

    def _adopted(self, remote: str) -> bool:
        """Whether ``remote`` is a late file of an earlier shot (``IMG_1.dng`` after ``IMG_1.jpg``: a phone in RAW +
        JPEG mode writes the DNG last); if so it joins that shot's files, never this shot's."""
        name, folder = posixpath.basename(remote), posixpath.dirname(remote)
        for shot, stored in self._recent.items():
            stem = posixpath.splitext(posixpath.basename(shot))[0]
            if posixpath.dirname(shot) == folder and name != posixpath.basename(shot) and name.startswith(stem + "."):
                self._known.add(remote)
                self._beside.setdefault(shot, set()).add(posixpath.splitext(remote)[1].lower())
                if stored is None:
                    self._unstored.setdefault(shot, []).append(remote)
                else:
                    self._orphans.append((stored, remote))
                log.info("%s belongs to the earlier shot %s", remote, shot)
                return True
        return False

    def _nothing_new(self, others: Sequence[str]) -> AcquisitionError:
        where = ", ".join(self.folders)
        found = (f"; new there, but no picture: {', '.join(posixpath.basename(p) for p in others[:5])}"
                 if others else "")
        return AcquisitionError(
            f"the phone saved no new picture in {where} within {self.shot_timeout_s:g} s{found}", path=self.serial,
            hint="unlock the phone, leave its camera app open in photo mode, and check that the camera key (or "
                 "volume key) takes a picture; prep also looks in every DCIM folder of the phone and its SD cards: "
                 "if the app saves elsewhere, give that folder: adb_folder in the rig file (--adb-folder)")

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

    def _pull_whole(self, remote: str, path: Path, size: int, deadline: float) -> None:
        """Pull ``remote`` to ``path`` (atomically). A copy that is cut short (the phone paused while writing
        and is not done) is pulled again once the file has changed, until ``deadline`` (time.monotonic)."""
        pulls = 0
        with atomic_path(path) as temp:
            while True:
                self._adb(["pull", remote, str(temp)])
                pulls += 1
                got = temp.stat().st_size
                whole = is_whole(temp.read_bytes())
                if whole is None:  # a format whose structure does not say (a DNG): its size must not have moved
                    whole = self._stat([remote]).get(remote, (-1, 0))[0] == got
                if whole:
                    return
                log.info("%s was still being written on the phone when pulled (%d bytes); waiting", remote, got)
                while time.monotonic() < deadline:  # wait for the phone to write more, then pull again
                    time.sleep(self.poll_s)
                    now_size = self._stat([remote]).get(remote, (size, 0))[0]
                    if now_size != size:
                        size = now_size
                        break
                else:
                    raise AcquisitionError(
                        f"the phone was still writing {posixpath.basename(remote)} after {self.shot_timeout_s:g} s: "
                        f"the copy is incomplete ({got} bytes, {pulls} pulls)", path=self.serial,
                        hint="a slow phone or SD card: free space on the phone, use its internal storage, or "
                             "lower the camera app's picture size; the picture stays on the phone")

    def capture(self, path: Path, *, flash: FlashMode) -> Shot:
        """Trigger the phone and pull the new picture, once whole, to ``path``.

        A picture in another readable format than ``path``'s keeps its own extension (``flash.heic``):
        ``Shot.path`` is where it went. ``flash`` is recorded but cannot be set: the phone's app keeps its
        flash on AUTO. The other files of the shot (a DNG beside the JPEG) are pulled beside it, and the phone's
        copies deleted, once the pose is stored (:meth:`shots_stored`), not between the two shots.
        """
        path = Path(path)
        self._settle_after_failure()
        if time.monotonic() - self._last_used > self.reopen_after_s:
            self._open_camera_app()
        else:
            self._shell(["input", "keyevent", str(KEYCODE_WAKEUP)])
        trigger_clock = time.monotonic()
        try:
            triggered, phone_time = self._trigger()
            remote, companions, size = self._wait_for_new_picture(phone_time)
            suffix = posixpath.splitext(remote)[1].lower()
            if not (suffix in _JPEG_SUFFIXES and path.suffix.lower() in _JPEG_SUFFIXES):
                path = path.with_suffix(suffix)  # keep the phone's bytes, under their own type (flash.heic)
            self._pull_whole(remote, path, size, trigger_clock + self.shot_timeout_s)
        except BaseException:
            self._failed_trigger = trigger_clock  # its picture may still land: the next try lets it first
            raise
        saved = now()
        folder = posixpath.dirname(remote)
        if folder != self._found_in:
            log.info("the phone's camera saves to %s", folder)
            self._found_in = folder
        self._last_used = time.monotonic()
        self._unstored[remote] = companions
        self._recent[remote] = None
        self._beside[remote] = {posixpath.splitext(c)[1].lower() for c in companions}
        for old in list(self._recent)[:-8]:  # a late file comes within a few shots
            del self._recent[old]
            self._beside.pop(old, None)
        extra: dict[str, Any] = {"phone_file": remote, "format": suffix.lstrip(".").upper()}
        if companions:
            extra["phone_companions"] = [posixpath.basename(c) for c in companions]
        return Shot(path, flash, flash_fired_of(path), triggered, saved, extra={"adb": extra})

    def shots_stored(self, shots: Sequence[Shot]) -> None:
        """The pose is stored: pull the other files of its shots beside them (a DNG), then delete the shots'
        files on the phone (when ``delete_after_pull``) in one adb call."""
        self._adopt_late()
        remove = []
        beside: list[tuple[Path, str]] = self._orphans
        self._orphans = []
        for shot in shots:
            remote = (shot.extra.get("adb") or {}).get("phone_file")
            if remote is None:
                continue
            remove.append(remote)
            if remote in self._recent:
                self._recent[remote] = Path(shot.path)
            beside += [(Path(shot.path), companion) for companion in self._unstored.pop(remote, [])]
        for shot_path, companion in beside:
            target = shot_path.parent / f"{shot_path.stem}.{posixpath.basename(companion)}"
            try:
                size = self._stat([companion]).get(companion, (0, 0))[0]
                self._pull_whole(companion, target, size, time.monotonic() + self.shot_timeout_s)
            except AcquisitionError as exc:
                log.warning("%s; %s stays on the phone", exc, companion)
                continue
            remove.append(companion)
            if self.on_extra_file is not None:
                self.on_extra_file(shot_path, target)
        if self.delete_after_pull and remove:
            try:
                self._shell(["rm", "-f", *remove])
                self._known.difference_update(remove)  # a later picture may reuse the name
            except AcquisitionError as exc:
                log.warning("could not delete %s on the phone (%s); it is skipped as an old picture",
                            ", ".join(remove), exc)

    def _adopt_late(self) -> None:
        """List the folders once: files of earlier shots that came since (the DNG a phone writes last) join
        their shot."""
        for remote in sorted(self._listing() - self._known):
            if _is_picture(remote):
                self._adopted(remote)

    def close(self) -> None:
        """Wait for the files the last shot still owes (its DNG, when the shot before had one; up to
        ``shot_timeout_s``), pull them beside it and delete them as for any stored shot. adb keeps no
        connection open for us: nothing else to release."""
        shots = list(self._recent)
        if len(shots) < 2 or self._recent[shots[-1]] is None:
            return
        deadline = time.monotonic() + self.shot_timeout_s
        try:
            while not self._beside[shots[-2]] <= self._beside[shots[-1]] and time.monotonic() < deadline:
                time.sleep(self.poll_s)
                self._adopt_late()
            if self._orphans:
                self.shots_stored([])
        except AcquisitionError as exc:  # closing must not hide the error that ended the session
            log.warning("while closing the phone: %s", exc)
