"""Cameras on USB through libgphoto2 (python-gphoto2): DSLRs and mirrorless bodies with remote capture.

Per shot, as libgphoto2's own tools do: ``capture(GP_CAPTURE_IMAGE)``, then the files of that shot: the one
``capture`` names and those the camera announces afterwards as ``GP_EVENT_FILE_ADDED``. A RAW+JPEG body names
the RAW and announces the JPEG later, so we wait for it (up to ~3 s, as the ``gphoto2`` command-line tool
does). Every announced file is downloaded: a body stays busy (-110) until it is. The shot is the JPEG; a RAW
file, or the small preview inside one, is never stored as a shot: RAW files go beside it under the camera's
name (``studio.DSC_0042.NEF``, which the pair layout ignores), and a shot far smaller than the camera's image
size setting is refused. Files announced after their shot returned are downloaded before the next trigger and
go beside the shot they belong to, never into another pose (:attr:`Camera.on_extra_file` tells the session).

What a shot is made of follows the camera's image format setting *now*: it is read again before each pose
(:meth:`Gphoto2Camera.begin_pose`, one setting, outside the gap between the two shots), so a body switched
from RAW + JPEG to JPEG between poses is waited for one file, not two. A shot holds one JPEG and at most one
other file (its RAW): a file announced twice is ignored, and one that no shot asked for (the operator
pressed the body's own shutter button between poses) is downloaded, named in the log, and stored nowhere.

A busy camera (-110: still writing to a slow card) is waited for up to ``busy_timeout_ms``; the shot records
when it was really taken. A camera that went to sleep or was switched off and on keeps failing on the old
connection (-52/-7), so a lost connection is closed and the next capture reconnects; so is a body that stayed
busy past the budget or never sent a shot's JPEG (it owes a file it will not send until a new connection).
A full card (-3 "Out of memory") says so; ``delete_from_camera`` deletes each shot from the camera once the
session has it stored.

The flash is set through the ``flashmode`` setting where the body has one; the setting's name and choices vary,
and a body without it answers -2, which we record and skip (the EXIF ``Flash`` tag of each shot is checked by
the session anyway). python-gphoto2 is imported when a camera is opened, never at import time.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, Literal

from ..atomic import write_bytes_atomic
from ..devices import Camera, CameraInfo, FlashMode, Shot
from ..errors import AcquisitionError
from ..interrupts import import_uninterrupted
from ._common import flash_fired_of, is_whole, now

__all__ = ["GPHOTO2_ERRORS", "Gphoto2Camera", "ImageFormat", "classify_image_format", "gphoto2_error"]

log = logging.getLogger(__name__)

_CARD_FULL: Final = ("the camera's card is full",
                     "delete pictures from the card or insert an empty one; --delete-from-camera "
                     "(rig file: delete_from_camera = true) deletes each shot from the camera once it is "
                     "downloaded and checked, or set the camera's capture target to its internal memory")
#: libgphoto2 result codes a lab meets, with what to tell the operator.
GPHOTO2_ERRORS: Final = {
    -110: ("the camera is busy",
           "it is still writing or holds undownloaded pictures: wait a moment; if it persists, switch the camera "
           "off and on"),
    -53: ("another program holds the camera's USB connection",
          "close the desktop photo importer (Shotwell, the file manager's camera mount, gvfs-gphoto2-volume-"
          "monitor), a `gphoto2` command or another prep run using this camera, then run the command again"),
    -60: ("another program holds the camera (it could not be locked)",
          "another prep run or `gphoto2` command is using this camera (or a desktop photo importer): let it "
          "finish or close it, then run the command again"),
    -7: ("USB input/output error talking to the camera",
         "check the cable, plug the camera into a port on the computer itself (not a hub), switch it off and on; "
         "prep reconnects to it on the next try"),
    -52: ("the camera's USB device was not found",
          "it was unplugged, switched off, or went to sleep (set its auto power off to the longest time): plug it "
          "in and switch it on; prep reconnects to it on the next try"),
    -105: ("no camera found by gphoto2",
           "plug it in over USB, switch it on, set its USB mode to PTP/remote; `gphoto2 --auto-detect` lists what "
           "is seen"),
    -1: ("the camera reported an unspecified error",
         "check that it is in a shooting mode with a card inserted and the lens cap off"),
    -115: _CARD_FULL,
}
#: Codes that mean the camera is no longer behind the connection (unplugged, asleep, power-cycled).
_LOST_CODES: Final = frozenset({-7, -10, -34, -35, -51, -52})
#: Capture failures, which mean something more specific than elsewhere.
_CAPTURE_ERRORS: Final = {
    -1: ("the camera could not take the picture; most often its autofocus could not lock",
         "in the flash shot the lamps are off and autofocus finds nothing to lock on: focus with the lamps on, "
         "then switch the lens to manual focus (MF), or use focus lock / back-button focus, or switch on the "
         "camera's AF-assist lamp; a longer --dark-wait-ms helps a body that is still adjusting; otherwise check "
         "the lens cap and the card"),
    -3: _CARD_FULL,
    -115: _CARD_FULL,
}
_FLASH_SETTING_NAMES: Final = ("flashmode", "flashmode2", "internalflashmode")
_FORMAT_SETTING_NAMES: Final = ("imageformat", "imagequality")
_RECORDED_SETTINGS: Final = ("serialnumber", "deviceversion", "capturetarget", *_FORMAT_SETTING_NAMES, "imagesize",
                             "autofocus", "focusmode", "iso", "shutterspeed", "f-number")
_FLASH_WORDS: Final = {
    "off": ("off", "suppress", "no flash", "flash off", "disable"),
    "on": ("fill", "forced", "on", "always", "compulsory", "fire"),
    "auto": ("auto",),
}
_JPEG_SUFFIXES: Final = (".jpg", ".jpeg")
_JPEG_MAGIC: Final = b"\xff\xd8\xff"
_RAW_WORDS: Final = ("raw", "nef", "cr2", "cr3", "arw", "dng", "raf", "orf", "rw2", "pef", "srw")
_JPEG_WORDS: Final = ("jpeg", "jpg", "fine", "normal", "basic", "standard", "large", "medium", "small")
_SET_JPEG: Final = "set the camera's image format to JPEG"
#: How long gphoto2's command-line tool waits for a shot's second file; the least we wait before letting go.
_SECOND_FILE_MS: Final = 3000

#: What a camera's image format setting makes it write per shot.
ImageFormat = Literal["jpeg", "raw+jpeg", "raw", "heif", "unknown"]


def classify_image_format(value: str) -> ImageFormat:
    """What an image format setting's value (``imageformat`` / ``imagequality``; the words vary by maker) means.

    ``"RAW + Large Fine JPEG"``, ``"NEF+Fine"``, ``"Fine + RAW"`` → ``"raw+jpeg"``; ``"RAW"``, ``"NEF (Raw)"`` →
    ``"raw"``; ``"Large Fine JPEG"``, ``"Extra Fine"`` → ``"jpeg"``; ``"HEIF"`` → ``"heif"``.
    """
    low = value.lower()
    raw = any(word in low for word in _RAW_WORDS)
    heif = "heif" in low or "heic" in low
    # quality and size words ("Large Fine") describe a JPEG, unless the value names HEIF: then only "JPEG" does
    jpeg = any(word in low for word in (_JPEG_WORDS[:2] if heif else _JPEG_WORDS))
    if heif and not jpeg:
        return "heif"
    if raw:
        return "raw+jpeg" if jpeg else "raw"
    return "jpeg" if jpeg else "unknown"


def _gp() -> Any:
    try:
        gphoto2 = import_uninterrupted("gphoto2")
    except ImportError as exc:
        raise AcquisitionError("python-gphoto2 is not installed",
                               hint="pip install gphoto2 (Linux and macOS), or use --camera adb / sim") from exc
    return gphoto2


def gphoto2_error(exc: Exception, doing: str, *, port: str | None = None,
                  known: dict[int, tuple[str, str]] = GPHOTO2_ERRORS) -> AcquisitionError:
    """An actionable AcquisitionError for a python-gphoto2 error raised while ``doing``."""
    code = getattr(exc, "code", None)
    message, hint = known.get(code, (f"gphoto2 error while {doing}", None))
    if code in known:
        message = f"{message} (gphoto2 error {code} while {doing})"
    else:
        message = f"{message}: {exc}"
    return AcquisitionError(message, path=port, hint=hint)


def _pick_choice(choices: list[str], flash: FlashMode) -> str | None:
    lowered = [c.lower() for c in choices]
    for word in _FLASH_WORDS[flash]:
        for choice, low in zip(choices, lowered, strict=True):
            if flash == "on" and "auto" in low:
                continue  # "Auto" contains no "on", but "auto fill" would match "fill": keep it for auto
            if word == low or (len(word) > 2 and word in low):
                return choice
    return None


def _size_of(value: str | None) -> tuple[int, int] | None:
    """``"6000x4000"`` → (6000, 4000); None for sizes given in words (``"Large"``)."""
    found = re.fullmatch(r"\s*(\d+)\s*[x×]\s*(\d+)\s*", value or "")
    return (int(found.group(1)), int(found.group(2))) if found else None


def _is_jpeg_name(name: str) -> bool:
    return name.lower().endswith(_JPEG_SUFFIXES)


def _kind(name: str) -> str:
    """What a camera file is to a shot: its ``"jpeg"``, or the ``"other"`` file beside it (a RAW)."""
    return "jpeg" if _is_jpeg_name(name) else "other"


def _same_stem(name: str, files: Sequence[tuple[str, str]]) -> bool:
    """Whether ``name`` is named like one of ``files`` (``DSC_0042.NEF`` beside ``DSC_0042.JPG``)."""
    stem = name.rpartition(".")[0].lower()
    return any(other.rpartition(".")[0].lower() == stem for _, other in files)


def _megabytes(kilobytes: int) -> str:
    return f"{kilobytes / 1024:.0f} MB" if kilobytes < 10 * 1024 * 1024 else f"{kilobytes / 1024 ** 2:.1f} GB"


class Gphoto2Camera(Camera):
    """A USB camera driven through libgphoto2.

    Parameters
    ----------
    port : str, optional
        libgphoto2's port name (``usb:001,005``, from ``gphoto2 --auto-detect``); None picks the only
        camera connected (an error when there are several).
    event_timeout_ms : int
        How long to wait for further events after a shot's files are in before the queue counts as drained.
    busy_timeout_ms : float
        How long to keep retrying a capture the camera refuses as busy (-110), e.g. while it writes the last
        shot to a slow card. The rig file's ``camera_busy_timeout_ms``.
    busy_poll_ms : float
        Pause between two such retries (spent draining the camera's events).
    second_file_timeout_ms : float
        How long to wait for the JPEG (or the second file of a RAW+JPEG body) after the capture returned.
    delete_from_camera : bool
        Delete each shot's files from the camera once the session has stored them (verified and renamed into
        the layout), so the card never fills. Off by default: the card keeps a copy.

    Raises
    ------
    AcquisitionError
        No camera, several cameras and no port, the USB connection held by another program, ...
    """

    def __init__(self, port: str | None = None, *, event_timeout_ms: int = 30, busy_timeout_ms: float = 5000.0,
                 busy_poll_ms: float = 100.0, second_file_timeout_ms: float = _SECOND_FILE_MS,
                 delete_from_camera: bool = False) -> None:
        for name, value, low in (("busy_timeout_ms", busy_timeout_ms, 0.0), ("busy_poll_ms", busy_poll_ms, None),
                                 ("second_file_timeout_ms", second_file_timeout_ms, 0.0),
                                 ("event_timeout_ms", event_timeout_ms, 0.0)):
            if not (math.isfinite(value) and (value >= low if low is not None else value > 0)):
                raise ValueError(f"{name} must be a finite number {'>= 0' if low is not None else '> 0'}, got "
                                 f"{value}")
        gp = _gp()
        self._gp = gp
        self.event_timeout_ms = int(event_timeout_ms)
        self.busy_timeout_ms = float(busy_timeout_ms)
        self.busy_poll_ms = float(busy_poll_ms)
        self.second_file_timeout_ms = float(second_file_timeout_ms)
        self.delete_from_camera = delete_from_camera
        self._camera: Any = None
        self._flash_setting: str | None = None
        self._flash_mode: str | None = None
        self._settings: dict[str, Any] = {}
        self._free_pictures: int | None = None  # the most pictures one of the camera's storages has room for
        self._format: tuple[str, str] | None = None  # (setting name, value)
        self._learnt: frozenset[str] = frozenset({"jpeg"})  # what the last shot was made of (format not reported)
        self._taken: set[tuple[str, str]] = set()  # every camera file handled: one announced again is ignored
        self._last: dict[str, Any] | None = None  # where the last shot went, for files announced late
        self._unstored: dict[str, list[tuple[str, str]]] = {}  # each shot's camera files, until stored
        cameras = self._detect()
        if port is None:
            if not cameras:
                raise gphoto2_error(gp.GPhoto2Error(-105), "looking for cameras")
            if len(cameras) > 1:
                listed = ", ".join(f"{name} on {addr}" for name, addr in cameras)
                raise AcquisitionError(f"several cameras are connected ({listed})",
                                       hint="choose one with --camera gphoto2:PORT, e.g. gphoto2:" + cameras[0][1])
            model, port = cameras[0]
        else:
            matches = [name for name, addr in cameras if addr == port]
            if not matches:
                seen = ", ".join(addr for _, addr in cameras) or "none"
                raise AcquisitionError(f"no camera on gphoto2 port {port!r} (cameras seen on: {seen})",
                                       hint="check `gphoto2 --auto-detect` and give one of those ports")
            model = matches[0]
        self.port = port
        self.model_name = model
        self._connect()

    # -- the connection ---------------------------------------------------------------------------------------
    def _detect(self) -> list[tuple[str, str]]:
        gp = self._gp
        try:
            found = gp.Camera.autodetect()
        except gp.GPhoto2Error as exc:
            raise gphoto2_error(exc, "looking for cameras") from exc
        return [(found.get_name(i), found.get_value(i)) for i in range(found.count())]

    def _connect(self) -> None:
        gp = self._gp
        camera = gp.Camera()
        try:
            ports = gp.PortInfoList()
            ports.load()
            camera.set_port_info(ports[ports.lookup_path(self.port)])
            abilities = gp.CameraAbilitiesList()
            abilities.load()
            camera.set_abilities(abilities[abilities.lookup_model(self.model_name)])
            camera.init()
        except gp.GPhoto2Error as exc:
            raise gphoto2_error(exc, "connecting to the camera", port=self.port) from exc
        self._camera = camera
        try:
            self._make, self._model = self._read_settings()
            self._drain(lambda folder, name: None)  # what it announces on connect is old, not ours
        except BaseException:  # release the USB claim, or the camera stays busy for every other program
            self._disconnect()
            raise

    def _disconnect(self) -> None:
        camera, self._camera = self._camera, None
        if camera is not None:
            try:
                camera.exit()
            except Exception as exc:  # a vanished camera must not hide the error that ended the session
                log.debug("closing the camera: %s", exc)

    def _reconnect(self) -> None:
        """Open a fresh connection: a body that slept or was power-cycled may come back at a new USB address."""
        ports = [addr for name, addr in self._detect() if name == self.model_name]
        if self.port not in ports:
            if len(ports) != 1:
                raise AcquisitionError(f"the camera ({self.model_name}) is not on USB"
                                       + (f" (several of that model: {', '.join(ports)})" if ports else ""),
                                       path=self.port, hint=GPHOTO2_ERRORS[-52][1])
            log.info("the camera came back on %s (was %s)", ports[0], self.port)
            self.port = ports[0]
        self._connect()
        self._flash_mode = None  # set it again: the body may have forgotten it
        log.info("reconnected to the camera on %s", self.port)

    def _call(self, doing: str, function: Callable[..., Any], *args: Any) -> Any:
        """Call the library; a failure becomes an AcquisitionError, and a lost camera drops the connection."""
        gp = self._gp
        try:
            return function(*args)
        except gp.GPhoto2Error as exc:
            if exc.code in _LOST_CODES:
                self._disconnect()
            raise gphoto2_error(exc, doing, port=self.port) from exc

    # -- settings ---------------------------------------------------------------------------------------------
    def _config_value(self, config: Any, name: str) -> str | None:
        try:
            return str(config.get_child_by_name(name).get_value())
        except self._gp.GPhoto2Error:
            return None

    def _read_settings(self) -> tuple[str, str]:
        config = self._call("reading the camera settings", self._camera.get_config)
        make = self._config_value(config, "manufacturer") or ""
        model = self._config_value(config, "cameramodel") or self.model_name
        self._format = None
        for name in _RECORDED_SETTINGS:
            value = self._config_value(config, name)
            if value is not None:
                self._settings[name] = value
                if name in _FORMAT_SETTING_NAMES and self._format is None:
                    self._format = (name, value)
        if self._format is not None:
            self._settings["image_format"] = f"{self._format[1]} ({classify_image_format(self._format[1])})"
        card = self._card_space()
        if card is not None:
            self._settings["card_free"] = card
        return make, model

    def _card_space(self) -> str | None:
        """Free space on the camera's storage, as the camera reports it (None when it does not)."""
        gp = self._gp
        self._free_pictures = None
        try:
            storages = list(self._camera.get_storageinfo())
        except gp.GPhoto2Error as exc:
            log.debug("no storage information: %s", exc)
            return None
        parts = []
        for info in storages:
            words = []
            if info.fields & gp.GP_STORAGEINFO_FREESPACEKBYTES:
                words.append(f"{_megabytes(int(info.freekbytes))} free")
            if info.fields & gp.GP_STORAGEINFO_FREESPACEIMAGES and int(info.freeimages) >= 0:
                room = int(info.freeimages)
                self._free_pictures = max(room, self._free_pictures or 0)
                words.append(f"room for about {room} picture{'' if room == 1 else 's'}")
            if words:
                name = str(info.description or info.basedir or "card")
                parts.append(f"{name}: {', '.join(words)}")
        return "; ".join(parts) or None

    def check_room(self, shots: int) -> None:
        """Refuse when the card (as the camera reports it now) cannot hold ``shots`` more shots of the current
        image format (a RAW + JPEG shot takes two pictures)."""
        if self._camera is None:
            return
        card = self._card_space()
        if card is not None:
            self._settings["card_free"] = card
        if self._free_pictures is None:
            return
        per_shot = len(self._expected())
        needed = shots * per_shot
        if self._free_pictures < needed:
            room = self._free_pictures
            each = f" ({per_shot} files each: RAW + JPEG)" if per_shot > 1 else ""
            raise AcquisitionError(f"the camera's card has room for about {room} more picture"
                                   f"{'' if room == 1 else 's'}, and {shots} shots{each} need {needed}",
                                   path=self.port, hint=_CARD_FULL[1])

    def image_format(self) -> tuple[str, ImageFormat] | None:
        """The camera's image format setting and what it means, or None when the camera has no such setting."""
        if self._format is None:
            return None
        return self._format[1], classify_image_format(self._format[1])

    def _expected(self) -> frozenset[str]:
        """What a shot is made of now: ``{"jpeg"}`` or ``{"jpeg", "other"}`` (a RAW beside it), from the image
        format setting, or from the last shot when the camera does not report its format."""
        kind = classify_image_format(self._format[1]) if self._format is not None else "unknown"
        if kind == "jpeg":
            return frozenset({"jpeg"})
        if kind == "raw+jpeg":
            return frozenset({"jpeg", "other"})
        return self._learnt

    def _read_format(self) -> None:
        """Read the image format setting afresh (one setting, not the whole configuration)."""
        if self._format is None:
            return
        name, before = self._format
        widget = self._call(f"reading the {name} setting", self._camera.get_single_config, name)
        value = str(widget.get_value())
        self._format = (name, value)
        self._settings[name] = value
        self._settings["image_format"] = f"{value} ({classify_image_format(value)})"
        if value != before:
            log.info("the camera's image format is now %r (was %r)", value, before)

    def _refuse_unusable_format(self) -> None:
        """A RAW-only (or HEIF) body gives no JPEG: refuse before shooting, after reading the setting afresh."""
        if self._format is None or classify_image_format(self._format[1]) not in ("raw", "heif"):
            return
        self._read_format()
        name, value = self._format
        if classify_image_format(value) in ("raw", "heif"):
            raise AcquisitionError(f"the camera's image format is {value!r} ({name}): it writes no JPEG",
                                   path=self.port,
                                   hint=f"{_SET_JPEG} (e.g. Large Fine JPEG) on the camera, or with `gphoto2 "
                                        f"--set-config {name}=...`; RAW + JPEG works too, but each shot then also "
                                        "downloads the RAW")

    def begin_pose(self) -> None:
        """Before a pose, outside the gap between its two shots: reconnect a camera that was lost (asleep, or
        left owing a file), fetch what it still announces for the last pose, and read its image format afresh
        (the operator may have switched RAW + JPEG to JPEG), which decides what each shot waits for."""
        if self._camera is None:
            self._reconnect()  # reads every setting again
        else:
            self._drain(self._late_file, timeout_ms=0)
            self._read_format()
        self._refuse_unusable_format()

    def _set_flash(self, flash: FlashMode) -> None:
        if self._flash_mode == flash or self._flash_setting == "":
            return
        gp = self._gp
        if self._flash_setting:  # known: read just that widget (a full get_config can take a second on PTP bodies,
            # and the flash shot's switch happens between the two shots of a pair)
            widget = self._call(f"reading the {self._flash_setting} setting", self._camera.get_single_config,
                                self._flash_setting)
            self._apply_flash_choice(self._flash_setting, widget, flash)
            return
        config = self._call("reading the camera settings", self._camera.get_config)
        for name in _FLASH_SETTING_NAMES:
            try:
                widget = config.get_child_by_name(name)
            except gp.GPhoto2Error as exc:
                if exc.code == gp.GP_ERROR_BAD_PARAMETERS:  # -2: this body has no such setting
                    continue
                raise gphoto2_error(exc, f"reading the {name} setting", port=self.port) from exc
            self._apply_flash_choice(name, widget, flash)
            return
        self._flash_setting = ""  # none of the names: remember, and stop asking
        self._settings["flash_setting"] = "not available (-2): set the flash on the camera or speedlight"
        log.warning("the camera has no flash mode setting (-2); the session checks the EXIF Flash tag instead")

    def _apply_flash_choice(self, name: str, widget: Any, flash: FlashMode) -> None:
        choices = [str(c) for c in widget.get_choices()]
        choice = _pick_choice(choices, flash)
        if choice is None:
            log.warning("camera flash setting %s has no choice for %r (choices: %s)", name, flash, choices)
            self._settings["flash_setting"] = f"{name}: no choice for {flash!r} among {choices}"
            return
        widget.set_value(choice)
        self._call(f"setting {name} to {choice!r}", self._camera.set_single_config, name, widget)
        self._flash_setting = name
        self._flash_mode = flash
        self._settings["flash_setting"] = name
        self._settings[f"flash_{flash}"] = choice

    def info(self) -> CameraInfo:
        """Make, model, port and the settings read from the camera (image format, capture target, card space)."""
        return CameraInfo("gphoto2", self._make, self._model, {"port": self.port, **self._settings})

    # -- files --------------------------------------------------------------------------------------------
    def _fetch(self, folder: str, name: str) -> bytes:
        camera_file = self._call(f"downloading {folder}/{name}", self._camera.file_get, folder, name,
                                 self._gp.GP_FILE_TYPE_NORMAL)
        return bytes(camera_file.get_data_and_size())

    def _drain(self, on_file: Callable[[str, str], None], timeout_ms: int | None = None) -> None:
        """Read the events the camera has queued (waiting ``timeout_ms`` for the first), handing on new files."""
        gp = self._gp
        timeout = self.event_timeout_ms if timeout_ms is None else timeout_ms
        for _ in range(100):  # a body that streams property events must not hold us forever
            event, data = self._call("waiting for camera events", self._camera.wait_for_event, timeout)
            if event == gp.GP_EVENT_TIMEOUT:
                return
            if event == gp.GP_EVENT_FILE_ADDED:
                on_file(str(data.folder), str(data.name))
            timeout = min(timeout, self.event_timeout_ms)

    def _late_file(self, folder: str, name: str) -> None:
        """A file announced after its shot returned: it goes beside that shot, wherever the shot now is, if the
        shot still lacks a file of its kind; otherwise it is no shot's (see :meth:`_stray`)."""
        key = (folder, name)
        if key in self._taken:
            log.debug("the camera announced %s/%s again; ignored", folder, name)
            return
        last = self._last
        kind = _kind(name)
        if last is None or kind in last["kinds"] or not (kind in last["expect"] or _same_stem(name, last["files"])):
            self._stray(folder, name)
            return
        self._taken.add(key)
        data = self._fetch(folder, name)  # the camera stays busy until it is downloaded
        if not last["path"].is_file():
            log.warning("the camera announced %s/%s after a shot that was discarded; it was downloaded but not "
                        "kept (the camera keeps its copy)", folder, name)
            return
        target = last["path"].parent / f"{last['path'].stem}.{name}"
        write_bytes_atomic(target, data)
        last["files"].append(key)
        last["kinds"].add(kind)
        self._learnt = frozenset(last["kinds"])
        log.info("%s/%s arrived after its shot; saved beside it as %s", folder, name, target)
        if self.on_extra_file is not None:
            self.on_extra_file(last["path"], target)
        if last["stored"] and self.delete_from_camera:
            self._delete([key])

    def _stray(self, folder: str, name: str) -> None:
        """A file no shot of ours is waiting for: a picture taken with the body's own shutter button between
        poses. Downloaded (a body may stay busy until it is) and stored in no pose; the log says so."""
        self._taken.add((folder, name))
        self._fetch(folder, name)
        target = str(self._settings.get("capturetarget", "")).lower()
        kept = ("it was not kept (the camera's capture target is its internal memory)" if "ram" in target
                or "internal" in target else "the camera's card keeps it")
        log.warning("the camera announced %s/%s, which no shot of prep asked for (a picture taken with the "
                    "camera's own shutter button?): it is not stored in any pose; %s", folder, name, kept)

    def _collect(self, files: list[tuple[str, str]], kinds: set[str], want: frozenset[str],
                 deadline: float) -> None:
        """Add the files the camera announces for the shot just taken to ``files`` (and their kinds to
        ``kinds``) until it holds what ``want`` says (a JPEG; and a RAW with RAW + JPEG) or ``deadline``
        (time.monotonic) passes. A shot holds one file of each kind: another is no shot's (:meth:`_stray`), one
        announced twice is ignored."""
        gp = self._gp

        def add(folder: str, name: str) -> None:
            key = (folder, name)
            if key in self._taken:
                log.debug("the camera announced %s/%s again; ignored", folder, name)
            elif _kind(name) in kinds:
                self._stray(folder, name)
            else:
                self._taken.add(key)
                files.append(key)
                kinds.add(_kind(name))

        while not want <= kinds:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            event, data = self._call("waiting for the camera's files", self._camera.wait_for_event,
                                     max(1, int(left * 1000)))
            if event == gp.GP_EVENT_FILE_ADDED:
                add(str(data.folder), str(data.name))
            elif event == gp.GP_EVENT_TIMEOUT:  # a body that does not block in wait_for_event must not spin
                time.sleep(min(0.01, max(0.0, deadline - time.monotonic())))
        self._drain(add)  # complete: take what else is queued

    def _fetch_whole(self, folder: str, name: str) -> bytes:
        """Download a JPEG; a copy cut short (a USB hiccup) is downloaded once more before it is refused."""
        data = self._fetch(folder, name)
        if is_whole(data) is False:
            log.info("the copy of %s/%s was cut short (%d bytes); downloading it again", folder, name, len(data))
            data = self._fetch(folder, name)
            if is_whole(data) is False:
                raise AcquisitionError(f"the camera's {name} came incomplete twice ({len(data)} bytes, cut before "
                                       "the end of the picture)", path=self.port,
                                       hint="check the USB cable and plug the camera into the computer itself (not "
                                            "a hub); if it repeats, the card may be failing")
        return data

    def _check_shot(self, data: bytes, name: str) -> None:
        """Refuse what is not the full-size JPEG: a RAW, a HEIF, a preview or thumbnail."""
        if not data.startswith(_JPEG_MAGIC):
            raise AcquisitionError(f"the camera's file {name} is not a JPEG", path=self.port, hint=_SET_JPEG)
        from PIL import Image

        try:
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
        except Exception as exc:
            raise AcquisitionError(f"the camera's JPEG {name} cannot be read ({exc})", path=self.port,
                                   hint="check the card and the cable") from exc
        setting = _size_of(self._settings.get("imagesize"))
        if setting is None or 4 * width * height >= setting[0] * setting[1]:
            return
        widget = self._call("reading the imagesize setting", self._camera.get_single_config, "imagesize")
        self._settings["imagesize"] = str(widget.get_value())
        setting = _size_of(self._settings["imagesize"])
        if setting is not None and 4 * width * height < setting[0] * setting[1]:
            raise AcquisitionError(f"the camera sent {name} at {width}x{height}, far smaller than its image size "
                                   f"setting {setting[0]}x{setting[1]}: a preview, not the shot", path=self.port,
                                   hint=f"{_SET_JPEG} at full size (not RAW, not a small JPEG)")

    def _delete(self, files: Sequence[tuple[str, str]]) -> None:
        for folder, name in files:
            try:
                self._call(f"deleting {folder}/{name} on the camera", self._camera.file_delete, folder, name)
            except AcquisitionError as exc:
                log.warning("%s; it stays on the camera", exc)
                if self._camera is None:
                    return

    # -- shooting ---------------------------------------------------------------------------------------------
    def _trigger(self) -> tuple[float, Any]:
        """Capture, waiting out a busy camera (draining its events meanwhile) for up to ``busy_timeout_ms``.

        A camera still busy after that is let go: it may be waiting for a file it will never send (a RAW +
        JPEG body switched to JPEG before its JPEG came), which only a new connection clears; the next capture
        reconnects.
        """
        gp = self._gp
        deadline = time.monotonic() + self.busy_timeout_ms / 1000.0
        while True:
            triggered = now()
            try:
                return triggered, self._camera.capture(gp.GP_CAPTURE_IMAGE)
            except gp.GPhoto2Error as exc:
                left = deadline - time.monotonic()
                if exc.code == gp.GP_ERROR_CAMERA_BUSY and left > 0:
                    pause = min(self.busy_poll_ms / 1000.0, left)
                    start = time.monotonic()
                    self._drain(self._late_file, timeout_ms=max(1, int(pause * 1000)))
                    time.sleep(max(0.0, pause - (time.monotonic() - start)))
                    continue
                if exc.code == gp.GP_ERROR_CAMERA_BUSY:
                    self._disconnect()
                    raise AcquisitionError(
                        f"the camera stayed busy for {self.busy_timeout_ms:.0f} ms (gphoto2 error -110 while taking "
                        "a picture)", path=self.port,
                        hint="it is still writing the last shot to its card: raise camera_busy_timeout_ms in the "
                             "rig file (or --camera-busy-timeout-ms); a faster card helps; prep reconnects to the "
                             "camera on the next try, and if it stays busy, switch it off and on") from exc
                if exc.code in _LOST_CODES:
                    self._disconnect()
                raise gphoto2_error(exc, "taking a picture", port=self.port,
                                    known={**GPHOTO2_ERRORS, **_CAPTURE_ERRORS}) from exc

    def capture(self, path: Path, *, flash: FlashMode) -> Shot:
        """Set the flash, trigger, download the shot's JPEG to ``path`` (atomically) and its other files beside it.

        ``Shot.triggered_at`` is when the camera accepted the trigger (after any busy wait); ``saved_at`` when
        the JPEG was on disk. Other files of the shot (a RAW) are saved as ``<stem>.<camera's name>`` and listed
        in ``Shot.companions``; one that comes after ``capture`` returned is handed to :attr:`on_extra_file`.
        """
        path = Path(path)
        if self._camera is None:  # lost (asleep, switched off and on, unplugged, left busy): open it afresh
            self._reconnect()
        self._refuse_unusable_format()
        self._set_flash(flash)
        self._drain(self._late_file, timeout_ms=0)
        requested = now()
        triggered, remote = self._trigger()  # a busy body is drained meanwhile: the last shot's files come in
        if self._last is not None and self._last["path"].is_file():
            self._learnt = frozenset(self._last["kinds"])  # what the last shot turned out to be made of
        expect = self._expected()
        first = (str(remote.folder), str(remote.name))
        files, kinds = [first], {_kind(first[1])}
        self._taken.add(first)
        deadline = time.monotonic() + self.second_file_timeout_ms / 1000.0
        self._last = {"path": path, "files": files, "stored": False, "key": None, "expect": expect, "kinds": kinds}
        try:
            self._collect(files, kinds, frozenset({"jpeg"}), deadline)  # a RAW + JPEG body may name the RAW first
            jpegs = [f for f in files if _is_jpeg_name(f[1])]
            if not jpegs:
                names = ", ".join(name for _, name in files)
                setting = f" (image format {self._format[1]!r})" if self._format else ""
                self._disconnect()  # it may send the JPEG later, or stay busy until a new connection
                raise AcquisitionError(
                    f"the camera saved only {names}{setting} and no JPEG within "
                    f"{self.second_file_timeout_ms / 1000:g} s", path=self.port,
                    hint=f"{_SET_JPEG}: a RAW file (or the small preview inside it) is no usable shot; prep "
                         "reconnects to the camera on the next try")
            folder, name = jpegs[0]
            key = f"{folder}/{name}"
            self._last["key"] = key
            data = self._fetch_whole(folder, name)
            self._check_shot(data, name)
            write_bytes_atomic(path, data)
            saved = now()  # the shot is on disk: what follows (its RAW) counts towards the gap to the next shot
            self._collect(files, kinds, expect | {"jpeg"}, deadline)
            companions = tuple(self._save_beside(path, *other) for other in list(files) if other != jpegs[0])
        except BaseException:
            with contextlib.suppress(AcquisitionError):  # the camera stays busy until every file is down
                if self._camera is not None:
                    for other in files:
                        if not (path.is_file() and f"{other[0]}/{other[1]}" == self._last["key"]):
                            self._fetch(*other)
            raise
        extras: dict[str, Any] = {"camera_file": key, "camera_wait_ms": round((triggered - requested) * 1000.0, 1)}
        if self._format is not None:
            extras["image_format"] = self._format[1]
        self._unstored[key] = files  # files announced late join this list
        return Shot(path, flash, flash_fired_of(path), triggered, saved, extra={"gphoto2": extras},
                    companions=companions)

    def _save_beside(self, path: Path, folder: str, name: str) -> Path:
        target = path.parent / f"{path.stem}.{name}"
        write_bytes_atomic(target, self._fetch(folder, name))
        return target

    def shots_stored(self, shots: Sequence[Shot]) -> None:
        """Follow the shots to their final folder (for late files); delete them on the camera when asked to."""
        for shot in shots:
            key = (shot.extra.get("gphoto2") or {}).get("camera_file")
            if key is None:
                continue
            if self._last is not None and self._last["key"] == key:
                self._last["path"], self._last["stored"] = Path(shot.path), True
            files = self._unstored.pop(key, [])
            if self.delete_from_camera and files and self._camera is not None:
                self._delete(files)

    def _owed(self) -> bool:
        """Whether the last shot still lacks a file its image format makes (a RAW that comes late)."""
        last = self._last
        return last is not None and not last["expect"] <= last["kinds"] and last["path"].is_file()

    def close(self) -> None:
        """Fetch what the camera still announces for the last shot (a RAW that came late), then let it go."""
        if self._camera is not None and self._last is not None:
            wait_ms = max(int(self.second_file_timeout_ms), _SECOND_FILE_MS) if self._owed() else 0
            try:
                self._drain(self._late_file, timeout_ms=wait_ms)
            except (AcquisitionError, OSError) as exc:  # closing must not hide the error that ended the session
                log.warning("while closing the camera: %s", exc)
        self._disconnect()
