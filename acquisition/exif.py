"""Camera EXIF: write it for simulated shots, read it back from any shot.

A phone on flash AUTO decides itself whether to fire, and the only trace of that decision is the EXIF ``Flash``
tag (0x9209, in the Exif sub-IFD 0x8769). A capture session must read it for every shot: a "flash" picture
whose flash did not fire (the lamps were still on) is a studio shot in disguise. The virtual studio writes the
same tags a phone writes, so the session code that checks them runs unchanged on simulated captures.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal

from PIL import ExifTags

from ._pillow import Image, pillow_warnings_logged  # HEIC opens too; no bomb refusal of a 200 MP header
from .errors import AcquisitionError
from .files import open_regular

__all__ = ["flash_tag_value", "make_exif", "read_camera_exif", "read_flash_fired"]

_IFD0_MAKE: Final = 0x010F
_IFD0_MODEL: Final = 0x0110
_IFD0_ORIENTATION: Final = 0x0112
_IFD0_DATETIME: Final = 0x0132
_EXIF_IFD: Final = 0x8769
_EXIF_FLASH: Final = 0x9209
_EXIF_DATETIME_ORIGINAL: Final = 0x9003
_EXIF_DATETIME_DIGITIZED: Final = 0x9004
#: Tags from here on (ExposureTime, FNumber, ISO, FocalLength...) live in the Exif sub-IFD, not in IFD0.
_FIRST_EXIF_IFD_TAG: Final = 0x829A
_DATETIME_FORMAT: Final = "%Y:%m:%d %H:%M:%S"

# The Flash tag's bits (EXIF 2.32, section 4.6.5): bit 0 fired; bits 3-4 mode (1 compulsory firing,
# 2 compulsory suppression, 3 auto).
_FLASH_FIRED_BIT: Final = 0x01
_FLASH_MODE_ON: Final = 0x08
_FLASH_MODE_OFF: Final = 0x10
_FLASH_MODE_AUTO: Final = 0x18


def flash_tag_value(flash_fired: bool, mode: Literal["on", "off", "auto"] | None = None) -> int:
    """The EXIF ``Flash`` value a phone writes for this outcome.

    ``on`` + fired = 0x09 ("fired, compulsory"), ``auto`` + fired = 0x19, ``auto`` + not fired = 0x18,
    ``off`` + not fired = 0x10 ("off, did not fire"). Without a mode: 0x09 when fired, 0x10 when not.
    """
    if mode not in (None, "on", "off", "auto"):
        raise ValueError(f"flash mode must be 'on', 'off' or 'auto', not {mode!r}")
    if mode is None:
        mode = "on" if flash_fired else "off"
    bits = {"on": _FLASH_MODE_ON, "off": _FLASH_MODE_OFF, "auto": _FLASH_MODE_AUTO}[mode]
    return bits | (_FLASH_FIRED_BIT if flash_fired else 0)


def _tag_number(name: str) -> int:
    try:
        return int(ExifTags.Base[name])
    except KeyError:
        raise ValueError(f"unknown EXIF tag name {name!r}; use a name of PIL.ExifTags.Base, e.g. 'Software'") \
            from None


def make_exif(*, make: str, model: str, flash_fired: bool, orientation: int = 1, when: datetime | None = None,
              flash_mode: Literal["on", "off", "auto"] | None = None, **extra: Any) -> bytes:
    """Raw EXIF bytes for :func:`acquisition.imageio.write_image` (``exif=``), like a phone writes.

    Parameters
    ----------
    make, model : str
        The camera maker and model (IFD0 ``Make`` / ``Model``).
    flash_fired : bool
        Whether the flash fired: bit 0 of the ``Flash`` tag (0x9209) in the Exif sub-IFD.
    orientation : int
        EXIF orientation 1-8 (1 = stored upright).
    when : datetime, optional
        Written as ``DateTime``, ``DateTimeOriginal`` and ``DateTimeDigitized``; left out when None (the
        virtual studio leaves it out so that the same seed gives the same bytes).
    flash_mode : {"on", "off", "auto"}, optional
        The flash setting, written in bits 3-4 of the ``Flash`` tag (see :func:`flash_tag_value`).
    **extra
        More tags by their PIL name (``Software="DeepFlash"``, ``ISOSpeedRatings=400``...); tags numbered
        0x829A and above go to the Exif sub-IFD, the others to IFD0.

    Returns
    -------
    bytes
        Starting with ``b"Exif\\0\\0"``, as PIL writes and reads them.

    Raises
    ------
    ValueError
        For an orientation outside 1-8, a bad flash mode or an unknown tag name.
    """
    if not 1 <= int(orientation) <= 8:
        raise ValueError(f"EXIF orientation must be 1-8, got {orientation}")
    exif = Image.Exif()
    exif[_IFD0_MAKE] = str(make)
    exif[_IFD0_MODEL] = str(model)
    exif[_IFD0_ORIENTATION] = int(orientation)
    sub = exif.get_ifd(_EXIF_IFD)
    sub[_EXIF_FLASH] = flash_tag_value(bool(flash_fired), flash_mode)
    if when is not None:
        stamp = when.strftime(_DATETIME_FORMAT)
        exif[_IFD0_DATETIME] = stamp
        sub[_EXIF_DATETIME_ORIGINAL] = stamp
        sub[_EXIF_DATETIME_DIGITIZED] = stamp
    for name, value in sorted(extra.items()):
        number = _tag_number(name)
        if number in (_EXIF_IFD, _EXIF_FLASH):
            raise ValueError(f"EXIF tag {name!r} is set by make_exif itself")
        (sub if number >= _FIRST_EXIF_IFD_TAG else exif)[number] = value
    return exif.tobytes()


def _open_exif(path: Path) -> Image.Exif:
    try:
        with pillow_warnings_logged(), open_regular(path, error=AcquisitionError) as handle, Image.open(handle) as im:
            exif = im.getexif()
            for tag in (_EXIF_IFD, 0x8825):  # read while the file is open and warnings are logged
                exif.get_ifd(tag)
            return exif
    except FileNotFoundError as exc:
        raise AcquisitionError("no such file", path=path) from exc
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise AcquisitionError(f"cannot read the EXIF of this image ({exc})", path=path,
                               hint="the file is truncated, corrupt or not an image") from exc


def _flash_fired(exif: Image.Exif) -> bool | None:
    value = exif.get_ifd(_EXIF_IFD).get(_EXIF_FLASH)
    if value is None:
        value = exif.get(_EXIF_FLASH)  # a few writers put it in IFD0
    if not isinstance(value, int):
        return None
    return bool(value & _FLASH_FIRED_BIT)


def read_flash_fired(path: str | Path) -> bool | None:
    """Whether the flash fired, from the EXIF ``Flash`` tag of an image file.

    Returns
    -------
    bool or None
        None when the file has no ``Flash`` tag (PNG exports, cameras that do not write it).

    Raises
    ------
    AcquisitionError
        When the file is missing or cannot be opened as an image.
    """
    return _flash_fired(_open_exif(Path(path)))


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    return str(value).strip("\x00 ") or None


def read_camera_exif(path: str | Path) -> dict[str, Any]:
    """The camera facts a capture session records, from an image file's EXIF.

    Returns
    -------
    dict
        ``make`` and ``model`` (str or None), ``flash_fired`` (bool or None), ``orientation`` (int, 1 when
        absent) and ``datetime`` (:class:`datetime` or None; ``DateTimeOriginal`` first, then ``DateTime``).

    Raises
    ------
    AcquisitionError
        When the file is missing or cannot be opened as an image.
    """
    exif = _open_exif(Path(path))
    sub = exif.get_ifd(_EXIF_IFD)
    orientation = exif.get(_IFD0_ORIENTATION, 1)
    when = None
    stamp = _text(sub.get(_EXIF_DATETIME_ORIGINAL)) or _text(exif.get(_IFD0_DATETIME))
    if stamp:
        try:
            when = datetime.strptime(stamp, _DATETIME_FORMAT)
        except ValueError:
            when = None
    return {
        "make": _text(exif.get(_IFD0_MAKE)),
        "model": _text(exif.get(_IFD0_MODEL)),
        "flash_fired": _flash_fired(exif),
        "orientation": int(orientation) if isinstance(orientation, int) and 1 <= orientation <= 8 else 1,
        "datetime": when,
    }

