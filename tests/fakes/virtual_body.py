"""Camera bodies as users meet them, built on libgphoto2's own virtual camera.

libgphoto2's virtual USB camera (``VCAMERADIR`` + the ``vusb`` port driver, see :func:`use_virtual_camera`)
is a perfect body: one JPEG per capture, never busy, never asleep. :class:`Body` wraps the real python-gphoto2
``Camera`` objects of that virtual camera so that they behave like the bodies described in gphoto2 and
photo-booth bug reports; every call still goes to the real library, and the faults are added around it:

- ``image_format="RAW + Large Fine JPEG"``: ``capture()`` names a RAW file (``.NEF``, a TIFF whose first image
  is a 160x120 preview, as in real NEFs) and the JPEG arrives ``second_file_delay_s`` later as a
  ``GP_EVENT_FILE_ADDED`` (``raw_first=False``: the JPEG first and the RAW later); ``"RAW"``: the RAW only;
  ``reports_format=False``: a body without an ``imageformat`` setting libgphoto2 knows;
- ``image_size="6000x4000"``: the body's ``imagesize`` setting (the virtual camera says 640x480), so what it
  sends is far smaller than its setting, as a RAW's embedded preview is;
- ``busy_until_downloaded``: ``capture()`` answers -110 while a file the body announced (or will announce) has
  not been downloaded;
- ``busy_after_shot_s``: -110 for that long after each capture (a slow card);
- ``light``: a callable saying whether the studio is lit; while the body's ``focusmode`` setting is an
  autofocus mode (``AF-S``, not ``Manual``), ``capture()`` in the dark fails with -1, as bodies whose autofocus
  cannot lock do (the body's own setting: the virtual camera's ``autofocus`` widget is a libgphoto2 driver
  option saved in the user's ``~/.config/gphoto/settings``, which tests must not touch);
- :meth:`Body.sleep` / :meth:`Body.wake`: the body powers off (every call -52, autodetect empty); once woken,
  connections opened before keep failing with -52 until the camera is exited and initialised again;
- ``card_free_files``: the card holds that many more files; then ``capture()`` fails with -3 "Out of memory",
  and ``file_delete`` frees room;
- ``announce_again_s``: the first capture's JPEG is announced a second time, that much later (a duplicate
  ``GP_EVENT_FILE_ADDED``, as some bodies send);
- :meth:`Body.press_shutter`: the operator takes a picture with the body's own shutter button; it is announced
  like any other file;
- the operator may change the image format on the body (:attr:`Body.image_format`) between two calls: the
  ``imageformat`` setting reads what the body is set to now;
- one connection at a time: opening a second one while another is open fails with -60 "Could not lock the
  device" (what a second prep run or ``gphoto2`` command meets), and a new connection starts a new session:
  announcements still owed to the old one are dropped (a body stuck busy on a file it never sent recovers).

:meth:`Body.install` replaces ``gphoto2.Camera`` (pytest's ``monkeypatch``) with a class whose instances are
connections to this body, so the code under test opens it exactly as it opens a real one.

The virtual camera reads ``VCAMERADIR`` once per process, when no earlier virtual camera is still alive
(libgphoto2 keeps its file tree in a static list): tests that share a process must serve the same picture, or
depend only on its kind (all ours serve one 480x640 JPEG).
"""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

FORMAT_CHOICES = ("Large Fine JPEG", "RAW + Large Fine JPEG", "RAW")
FOCUS_CHOICES = ("AF-S", "AF-C", "Manual")


def use_virtual_camera(monkeypatch: Any, folder: Path) -> Any:
    """Point libgphoto2 at its virtual USB camera serving the JPEGs in ``folder``; return the gphoto2 module."""
    import gphoto2

    monkeypatch.setenv("VCAMERADIR", str(folder))
    # As python-gphoto2's own tests do: the virtual USB port driver instead of the real ones.
    monkeypatch.setenv("IOLIBS", os.environ["IOLIBS"].replace("iolibs", "vusb"))
    return gphoto2


def empty_virtual_camera(gp: Any, keep: set[str]) -> None:
    """Start the next test with a fresh virtual camera: free the camera objects the last one left for the
    garbage collector, and delete what its captures left (all but the names in ``keep``, the pictures it
    serves). libgphoto2's virtual camera takes only a few dozen captures until no camera object is alive."""
    import gc

    gc.collect()
    camera = getattr(gp.Camera, "_real_class", gp.Camera)()
    camera.init()
    try:
        def names(listing: Any) -> list[str]:
            return [listing.get_name(i) for i in range(listing.count())]

        def walk(folder: str) -> list[tuple[str, str]]:
            files = [(folder, name) for name in names(camera.folder_list_files(folder))]
            for name in names(camera.folder_list_folders(folder)):
                files += walk(folder.rstrip("/") + "/" + name)
            return files

        for folder, name in walk("/"):
            if name not in keep:
                camera.file_delete(folder, name)
    finally:
        camera.exit()


def raw_file_bytes(size: tuple[int, int] = (160, 120)) -> bytes:
    """A TIFF-structured RAW stand-in: what OpenCV or Pillow decode from it is its small embedded preview."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, (90, 60, 40)).save(out, format="TIFF")
    return out.getvalue() + bytes(4096)  # sensor data the preview readers never look at


class _Setting:
    """A radio setting the body has and the virtual camera lacks (``imageformat``): the widget calls we use."""

    def __init__(self, name: str, value: str, choices: list[str]) -> None:
        self._name, self._value, self._choices = name, value, choices

    def get_name(self) -> str:
        return self._name

    def get_value(self) -> str:
        return self._value

    def set_value(self, value: str) -> None:
        self._value = value

    def get_choices(self) -> list[str]:
        return list(self._choices)

    def count_choices(self) -> int:
        return len(self._choices)


class _Config:
    """The real configuration tree, with the body's extra settings found by name."""

    def __init__(self, real: Any, extra: dict[str, _Setting]) -> None:
        self._real, self._extra = real, extra

    def get_child_by_name(self, name: str) -> Any:
        if name in self._extra:
            return self._extra[name]
        return self._real.get_child_by_name(name)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@dataclass
class Body:
    """One physical camera, shared by every connection opened to it (see the module docstring)."""

    gp: Any
    image_format: str | None = None
    reports_format: bool = True
    image_size: str | None = None
    raw_first: bool = True
    second_file_delay_s: float = 0.4
    busy_until_downloaded: bool = True
    busy_after_shot_s: float = 0.0
    light: Callable[[], bool] | None = None
    card_free_files: int | None = None
    announce_again_s: float | None = None
    calls: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.asleep = False
        self.generation = 0
        self.pending: list[tuple[float, str, str]] = []  # (due, folder, name) still to be announced
        self.undownloaded: set[tuple[str, str]] = set()
        self.busy_until = 0.0
        self.raw_files: dict[tuple[str, str], bytes] = {}
        self.on_card = 0
        self.lock = threading.Lock()
        self.focus_mode = "AF-S"
        self.open: list[_Connection] = []  # connections initialised and not exited
        self.captures = 0

    # -- the operator's hands -------------------------------------------------------------------------------
    def sleep(self) -> None:
        """Auto power-off (or the switch): the body leaves the USB bus."""
        self.asleep = True

    def wake(self) -> None:
        """Switched on again: a new USB device; connections opened before stay dead."""
        self.asleep = False
        self.generation += 1

    def press_shutter(self) -> None:
        """The operator presses the body's own shutter button: a new JPEG on the card, announced at once."""
        connection = self.open[-1]
        made = connection._real.capture(self.gp.GP_CAPTURE_IMAGE)
        with self.lock:
            self.pending.append((time.monotonic(), str(made.folder), str(made.name)))
            self.undownloaded.add((str(made.folder), str(made.name)))

    def install(self, monkeypatch: Any) -> type:
        """Make ``gphoto2.Camera()`` open connections to this body."""
        real_class = getattr(self.gp.Camera, "_real_class", self.gp.Camera)  # another body's: replace it
        body = self

        class Connection(_Connection):
            _body = body
            _real_class = real_class

            @staticmethod
            def autodetect() -> Any:
                if body.asleep:
                    return body.gp.CameraList()  # off: nothing on the bus
                return real_class.autodetect()

        monkeypatch.setattr(self.gp, "Camera", Connection)
        return Connection

    # -- what the body does -----------------------------------------------------------------------------------
    def format_kind(self) -> str:
        value = (self.image_format or "JPEG").upper()
        if "RAW" in value and "JPEG" in value:
            return "raw+jpeg"
        return "raw" if "RAW" in value else "jpeg"


class _Connection:
    """A connection to a :class:`Body` (what ``gphoto2.Camera()`` returns once the body is installed)."""

    _body: Body
    _real_class: type

    def __init__(self) -> None:
        self._real = self._real_class()
        self._generation: int | None = None
        self._extra: dict[str, _Setting] = {}

    def _error(self, code: int) -> Exception:
        return self._body.gp.GPhoto2Error(code)

    def _alive(self, call: str) -> None:
        body = self._body
        body.calls.append(call)
        if body.asleep or self._generation != body.generation:
            raise self._error(-52)  # "Could not find the requested device on the USB port"

    def init(self, *args: Any) -> None:
        body = self._body
        body.calls.append("init")
        if body.asleep:
            raise self._error(-52)
        if body.open:
            raise self._error(-60)  # "Could not lock the device": another program has it open
        self._real.init(*args)
        self._generation = body.generation
        body.open.append(self)
        with body.lock:  # a new session: what the body owed the old one is dropped
            body.pending.clear()
            body.undownloaded.clear()
        if body.image_format is not None and body.reports_format:
            self._extra["imageformat"] = _Setting("imageformat", body.image_format, list(FORMAT_CHOICES))
        if body.image_size is not None:
            self._extra["imagesize"] = _Setting("imagesize", body.image_size, [body.image_size])
        if body.light is not None:
            self._extra["focusmode"] = _Setting("focusmode", body.focus_mode, list(FOCUS_CHOICES))

    def exit(self, *args: Any) -> None:
        self._body.calls.append("exit")
        if self in self._body.open:
            self._body.open.remove(self)
        self._real.exit(*args)

    def set_port_info(self, info: Any) -> None:
        self._real.set_port_info(info)

    def set_abilities(self, abilities: Any) -> None:
        self._real.set_abilities(abilities)

    # -- settings -------------------------------------------------------------------------------------------
    def _current(self) -> None:
        """The image format is what the body is set to now (the operator may have turned its dial)."""
        if "imageformat" in self._extra:
            self._extra["imageformat"] = _Setting("imageformat", self._body.image_format, list(FORMAT_CHOICES))

    def get_config(self, *args: Any) -> Any:
        self._alive("get_config")
        self._current()
        return _Config(self._real.get_config(*args), self._extra)

    def get_single_config(self, name: str, *args: Any) -> Any:
        self._alive(f"get_single_config {name}")
        self._current()
        if name in self._extra:
            return self._extra[name]
        return self._real.get_single_config(name, *args)

    def set_single_config(self, name: str, widget: Any, *args: Any) -> None:
        self._alive(f"set_single_config {name}")
        if name in self._extra:
            value = str(widget.get_value())
            if name == "imageformat":
                self._body.image_format = value
            else:
                self._body.focus_mode = value
            self._extra[name] = _Setting(name, value, self._extra[name].get_choices())
            return
        self._real.set_single_config(name, widget, *args)

    def get_storageinfo(self, *args: Any) -> list[Any]:
        self._alive("get_storageinfo")
        infos = list(self._real.get_storageinfo(*args))
        body = self._body
        if body.card_free_files is None:
            return infos
        free = max(0, body.card_free_files - body.on_card)
        return [SimpleNamespace(fields=i.fields, description=i.description, basedir=i.basedir, label=i.label,
                                capacitykbytes=i.capacitykbytes, freekbytes=free * 9000, freeimages=free,
                                access=i.access, type=i.type, fstype=i.fstype) for i in infos]

    # -- shooting -------------------------------------------------------------------------------------------
    def capture(self, kind: int, *args: Any) -> Any:
        self._alive("capture")
        body, gp = self._body, self._body.gp
        now = time.monotonic()
        with body.lock:
            if now < body.busy_until or (body.busy_until_downloaded and (body.pending or body.undownloaded)):
                raise self._error(gp.GP_ERROR_CAMERA_BUSY)
        if body.light is not None and not body.light() and body.focus_mode != "Manual":
            raise self._error(gp.GP_ERROR)  # -1: autofocus found nothing to lock on
        kind_of_format = body.format_kind()
        files = 2 if kind_of_format == "raw+jpeg" else 1
        if body.card_free_files is not None and body.on_card + files > body.card_free_files:
            raise self._error(gp.GP_ERROR_NO_MEMORY)  # -3 "Out of memory": the card is full
        jpeg = self._real.capture(kind, *args)
        body.on_card += files
        folder, jpeg_name = str(jpeg.folder), str(jpeg.name)
        raw = (folder, os.path.splitext(jpeg_name)[0] + ".NEF")
        with body.lock:
            if kind_of_format == "jpeg":
                named = (folder, jpeg_name)
            elif kind_of_format == "raw":
                self._real.file_delete(folder, jpeg_name)  # a RAW-only body writes no JPEG
                body.raw_files[raw] = raw_file_bytes()
                named = raw
            else:
                body.raw_files[raw] = raw_file_bytes()
                named, later = (raw, (folder, jpeg_name)) if body.raw_first else ((folder, jpeg_name), raw)
                body.pending.append((time.monotonic() + body.second_file_delay_s, *later))
                body.undownloaded.add(later)
            body.undownloaded.add(named)
            body.busy_until = time.monotonic() + body.busy_after_shot_s
            body.captures += 1
            if body.captures == 1 and body.announce_again_s is not None:
                jpeg_file = (folder, jpeg_name)
                body.pending.append((time.monotonic() + body.announce_again_s, *jpeg_file))
        return SimpleNamespace(folder=named[0], name=named[1])

    def wait_for_event(self, timeout_ms: int, *args: Any) -> list[Any]:
        self._alive("wait_for_event")
        body, gp = self._body, self._body.gp
        end = time.monotonic() + timeout_ms / 1000.0
        with body.lock:
            due = min(body.pending) if body.pending else None
        if due is not None and due[0] <= end:
            time.sleep(max(0.0, due[0] - time.monotonic()))
            with body.lock:
                body.pending.remove(due)
            return [gp.GP_EVENT_FILE_ADDED, SimpleNamespace(folder=due[1], name=due[2])]
        time.sleep(max(0.0, end - time.monotonic()))  # a real body blocks until the timeout
        return self._real.wait_for_event(0, *args)

    def file_get(self, folder: str, name: str, kind: int, *args: Any) -> Any:
        self._alive(f"file_get {name}")
        body = self._body
        with body.lock:
            raw = body.raw_files.get((folder, name))
        if raw is not None:
            result = body.gp.CameraFile()
            result.set_data_and_size(raw)
        else:
            result = self._real.file_get(folder, name, kind, *args)
        if kind == body.gp.GP_FILE_TYPE_NORMAL:
            with body.lock:
                body.undownloaded.discard((folder, name))
        return result

    def file_delete(self, folder: str, name: str, *args: Any) -> None:
        self._alive(f"file_delete {name}")
        body = self._body
        with body.lock:
            raw = body.raw_files.pop((folder, name), None)
        if raw is None:
            self._real.file_delete(folder, name, *args)
        body.on_card -= 1

    def __getattr__(self, name: str) -> Any:
        self._alive(name)
        return getattr(self._real, name)
