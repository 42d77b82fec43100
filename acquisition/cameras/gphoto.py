"""Cameras on USB through libgphoto2 (python-gphoto2): DSLRs and mirrorless bodies with remote capture.

The sequence per shot is the one libgphoto2's own tools use: ``capture(GP_CAPTURE_IMAGE)``, download the file
it names, then drain the event queue with ``wait_for_event`` until it times out, downloading any further file
the camera announces (RAW+JPEG bodies add one). A body with undownloaded files or pending events answers the
next capture with -110 "busy". The flash is set through the ``flashmode`` setting where the body has one; the
setting's name and choices vary, and a body without it answers -2, which we record and skip (the EXIF
``Flash`` tag of each shot is checked by the session anyway).

python-gphoto2 is imported when a camera is opened, never at import time.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any, Final

from ..atomic import write_bytes_atomic
from ..devices import Camera, CameraInfo, FlashMode, Shot
from ..errors import AcquisitionError
from ._common import flash_fired_of, now

__all__ = ["GPHOTO2_ERRORS", "Gphoto2Camera", "gphoto2_error"]

log = logging.getLogger(__name__)

#: libgphoto2 result codes a lab meets, with what to tell the operator.
GPHOTO2_ERRORS: Final = {
    -110: ("the camera is busy",
           "it is still writing or holds undownloaded pictures: wait a moment; if it persists, switch the camera "
           "off and on"),
    -53: ("another program holds the camera's USB connection",
          "close the desktop photo importer (Shotwell, the file manager's camera mount, gvfs-gphoto2-volume-"
          "monitor) and run the command again"),
    -7: ("USB input/output error talking to the camera",
         "check the cable, plug the camera into a port on the computer itself (not a hub), switch it off and on"),
    -52: ("the camera's USB device was not found",
          "it was unplugged or switched off: reconnect it and run the command again"),
    -105: ("no camera found by gphoto2",
           "plug it in over USB, switch it on, set its USB mode to PTP/remote; `gphoto2 --auto-detect` lists what "
           "is seen"),
    -1: ("the camera reported an unspecified error",
         "check that it is in a shooting mode with a card inserted and the lens cap off"),
}
_FLASH_SETTING_NAMES: Final = ("flashmode", "flashmode2", "internalflashmode")
_FLASH_WORDS: Final = {
    "off": ("off", "suppress", "no flash", "flash off", "disable"),
    "on": ("fill", "forced", "on", "always", "compulsory", "fire"),
    "auto": ("auto",),
}


def _gp() -> Any:
    try:
        import gphoto2
    except ImportError as exc:
        raise AcquisitionError("python-gphoto2 is not installed",
                               hint="pip install gphoto2 (Linux and macOS), or use --camera adb / sim") from exc
    return gphoto2


def gphoto2_error(exc: Exception, doing: str, *, port: str | None = None) -> AcquisitionError:
    """An actionable AcquisitionError for a python-gphoto2 error raised while ``doing``."""
    code = getattr(exc, "code", None)
    message, hint = GPHOTO2_ERRORS.get(code, (f"gphoto2 error while {doing}", None))
    if code in GPHOTO2_ERRORS:
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


class Gphoto2Camera(Camera):
    """A USB camera driven through libgphoto2.

    Parameters
    ----------
    port : str, optional
        libgphoto2's port name (``usb:001,005``, from ``gphoto2 --auto-detect``); None picks the only
        camera connected (an error when there are several).
    event_timeout_ms : int
        How long to wait for further events after each shot before the queue counts as drained.
    busy_retries : int
        How often to retry a capture the camera refuses as busy (-110) before giving up.
    busy_wait_s : float
        Pause before each such retry (some bodies refuse a second capture within ~0.4 s).

    Raises
    ------
    AcquisitionError
        No camera, several cameras and no port, the USB connection held by another program, ...
    """

    def __init__(self, port: str | None = None, *, event_timeout_ms: int = 30, busy_retries: int = 3,
                 busy_wait_s: float = 0.4) -> None:
        gp = _gp()
        self._gp = gp
        self.event_timeout_ms = event_timeout_ms
        self.busy_retries = busy_retries
        self.busy_wait_s = busy_wait_s
        self._flash_setting: str | None = None
        self._flash_mode: str | None = None
        self._settings: dict[str, Any] = {}
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
        self._camera = gp.Camera()
        try:
            ports = gp.PortInfoList()
            ports.load()
            self._camera.set_port_info(ports[ports.lookup_path(port)])
            abilities = gp.CameraAbilitiesList()
            abilities.load()
            self._camera.set_abilities(abilities[abilities.lookup_model(model)])
            self._camera.init()
        except gp.GPhoto2Error as exc:
            raise gphoto2_error(exc, "connecting to the camera", port=port) from exc
        try:
            self._make, self._model = self._identity()
            self._drain_events(None, "")
        except BaseException:  # release the USB claim, or the camera stays busy for every other program
            with contextlib.suppress(Exception):
                self._camera.exit()
            raise

    def _detect(self) -> list[tuple[str, str]]:
        gp = self._gp
        try:
            found = gp.Camera.autodetect()
        except gp.GPhoto2Error as exc:
            raise gphoto2_error(exc, "looking for cameras") from exc
        return [(found.get_name(i), found.get_value(i)) for i in range(found.count())]

    def _config_value(self, config: Any, name: str) -> str | None:
        try:
            return str(config.get_child_by_name(name).get_value())
        except self._gp.GPhoto2Error:
            return None

    def _identity(self) -> tuple[str, str]:
        try:
            config = self._camera.get_config()
        except self._gp.GPhoto2Error as exc:
            raise gphoto2_error(exc, "reading the camera settings", port=self.port) from exc
        make = self._config_value(config, "manufacturer") or ""
        model = self._config_value(config, "cameramodel") or self.model_name
        for name in ("serialnumber", "deviceversion", "capturetarget", "imageformat", "iso", "shutterspeed",
                     "f-number"):
            value = self._config_value(config, name)
            if value is not None:
                self._settings[name] = value
        return make, model

    def _set_flash(self, flash: FlashMode) -> None:
        if self._flash_mode == flash or self._flash_setting == "":
            return
        gp = self._gp
        if self._flash_setting:  # known: read just that widget (a full get_config can take a second on PTP bodies,
            try:  # and the flash shot's switch happens between the two shots of a pair)
                widget = self._camera.get_single_config(self._flash_setting)
            except gp.GPhoto2Error as exc:
                raise gphoto2_error(exc, f"reading the {self._flash_setting} setting", port=self.port) from exc
            self._apply_flash_choice(self._flash_setting, widget, flash)
            return
        try:
            config = self._camera.get_config()
        except gp.GPhoto2Error as exc:
            raise gphoto2_error(exc, "reading the camera settings", port=self.port) from exc
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
        gp = self._gp
        choices = [str(c) for c in widget.get_choices()]
        choice = _pick_choice(choices, flash)
        if choice is None:
            log.warning("camera flash setting %s has no choice for %r (choices: %s)", name, flash, choices)
            self._settings["flash_setting"] = f"{name}: no choice for {flash!r} among {choices}"
            return
        try:
            widget.set_value(choice)
            self._camera.set_single_config(name, widget)
        except gp.GPhoto2Error as exc:
            raise gphoto2_error(exc, f"setting {name} to {choice!r}", port=self.port) from exc
        self._flash_setting = name
        self._flash_mode = flash
        self._settings["flash_setting"] = name
        self._settings[f"flash_{flash}"] = choice

    def info(self) -> CameraInfo:
        """Make, model, port and the settings read from the camera."""
        return CameraInfo("gphoto2", self._make, self._model, {"port": self.port, **self._settings})

    def _download(self, folder: str, name: str, path: Path) -> None:
        gp = self._gp
        try:
            camera_file = self._camera.file_get(folder, name, gp.GP_FILE_TYPE_NORMAL)
            data = bytes(camera_file.get_data_and_size())
        except gp.GPhoto2Error as exc:
            raise gphoto2_error(exc, f"downloading {folder}/{name}", port=self.port) from exc
        write_bytes_atomic(path, data)

    def _drain_events(self, folder: Path | None, stem: str) -> list[Path]:
        # A RAW+JPEG body announces the second file here; every file must come down or the camera stays busy.
        gp = self._gp
        extra: list[Path] = []
        for _ in range(100):
            try:
                event, data = self._camera.wait_for_event(self.event_timeout_ms)
            except gp.GPhoto2Error as exc:
                raise gphoto2_error(exc, "waiting for camera events", port=self.port) from exc
            if event == gp.GP_EVENT_TIMEOUT:
                break
            if event == gp.GP_EVENT_FILE_ADDED and folder is not None:
                target = folder / f".{stem}.{data.name}"  # hidden name: discovery never takes it for a shot
                self._download(data.folder, data.name, target)
                extra.append(target)
        return extra

    def capture(self, path: Path, *, flash: FlashMode) -> Shot:
        """Set the flash, trigger, download the picture to ``path`` (atomically) and drain events."""
        gp = self._gp
        path = Path(path)
        self._set_flash(flash)
        attempt = 0
        while True:
            triggered = now()
            try:
                remote = self._camera.capture(gp.GP_CAPTURE_IMAGE)
                break
            except gp.GPhoto2Error as exc:
                if exc.code == gp.GP_ERROR_CAMERA_BUSY and attempt < self.busy_retries:
                    attempt += 1
                    time.sleep(self.busy_wait_s)
                    continue
                raise gphoto2_error(exc, "taking a picture", port=self.port) from exc
        self._download(remote.folder, remote.name, path)
        saved = now()
        extra = self._drain_events(path.parent, path.stem)
        extras = {"camera_file": f"{remote.folder}/{remote.name}"}
        if extra:
            extras["extra_files"] = [p.name for p in extra]
        return Shot(path, flash, flash_fired_of(path), triggered, saved, extra={"gphoto2": extras})

    def close(self) -> None:
        """Release the USB connection."""
        try:
            self._camera.exit()
        except Exception as exc:  # a vanished camera must not hide the error that ended the session
            log.debug("closing the camera: %s", exc)
