"""Image reading and writing, defined once for every stage.

Phone photos store pixels in sensor order plus an EXIF ``Orientation`` tag. :func:`read_image` applies that
tag exactly once, at read time, so every later stage sees the picture upright and never looks at EXIF again.
Arrays are always RGB (not OpenCV's BGR), ``uint8``, or ``uint16`` for 16-bit PNG and TIFF.
"""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path
from typing import Final

import cv2
import numpy as np
from PIL import Image

from .atomic import write_bytes_atomic
from .errors import AcquisitionError

__all__ = ["IMAGE_EXTENSIONS", "apply_orientation", "encode_image", "exif_orientation", "read_image",
           "write_image"]

#: File name extensions (lower case) the pair layout accepts, in any case on disk.
IMAGE_EXTENSIONS: Final = (".jpg", ".jpeg", ".png", ".tif", ".tiff")
_EXIF_ORIENTATION: Final = 0x0112
log = logging.getLogger(__name__)
_JPEG_MAGIC: Final = b"\xff\xd8\xff"
_TIFF_MAGICS: Final = (b"II*\x00", b"MM\x00*")


def apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """Turn an array stored in sensor order upright, as the EXIF ``Orientation`` value says.

    Parameters
    ----------
    image : ndarray, shape (H, W[, C])
    orientation : int
        EXIF value 1-8 (1 = already upright); other values are treated as 1, as viewers do.

    Returns
    -------
    ndarray
        A C-contiguous array; height and width swap for orientations 5-8.
    """
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, k=-1),
        7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
        8: lambda a: np.rot90(a, k=1),
    }
    op = ops.get(int(orientation))
    return np.ascontiguousarray(op(image)) if op else image


_PNG_MAGIC: Final = b"\x89PNG\r\n\x1a\n"
_PNG_METADATA_CHUNKS: Final = (b"eXIf", b"tEXt", b"zTXt", b"iTXt")


def _png_has_metadata(data: bytes) -> bool:
    """Whether a PNG holds any chunk where PIL may find an orientation (walks chunk headers; decodes nothing)."""
    pos = len(_PNG_MAGIC)
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        if kind in _PNG_METADATA_CHUNKS:
            return True
        if kind == b"IEND":
            return False
        pos += 12 + length
    return True  # malformed: let PIL decide


def exif_orientation(data: bytes) -> int:
    """The EXIF orientation stored in an encoded image (1 when there is none)."""
    if data.startswith(_PNG_MAGIC) and not _png_has_metadata(data):
        return 1  # PIL would decode the whole picture to look for an eXIf chunk after the pixels
    try:
        with Image.open(io.BytesIO(data)) as im:
            value = im.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception as exc:  # a damaged EXIF block must not hide the pixels; say so for whoever looks (-v)
        log.debug("unreadable EXIF block (%s: %s); orientation taken as 1", type(exc).__name__, exc)
        return 1
    return int(value) if isinstance(value, int) and 1 <= value <= 8 else 1


def _decode_jpeg(data: bytes, path: Path) -> np.ndarray:
    # PIL, not OpenCV, for JPEG: libjpeg only *warns* about a truncated file and OpenCV then returns a grey
    # half picture, whereas PIL raises.
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            rgb = im.convert("RGB") if im.mode != "RGB" else im
            return np.asarray(rgb)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        # PIL names its in-memory buffer ("<_io.BytesIO object at 0x...>"): keep messages reproducible.
        detail = re.sub(r"\s*<_io\.BytesIO object at 0x[0-9a-f]+>", "", str(exc))
        raise AcquisitionError(f"cannot decode this JPEG ({detail})", path=path,
                               hint="the file is truncated or corrupt: copy it again from the camera") from exc


def _decode_other(data: bytes, path: Path) -> np.ndarray:
    buffer = np.frombuffer(data, dtype=np.uint8)
    image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise AcquisitionError("cannot decode this image: it is truncated, corrupt or not an image", path=path,
                               hint="copy it again from the camera, or remove it")
    if image.dtype not in (np.uint8, np.uint16):
        raise AcquisitionError(f"unsupported sample type {image.dtype} (expected 8 or 16 bits)", path=path)
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[2] == 4:
        image = image[:, :, :3]
    return np.ascontiguousarray(image[:, :, ::-1]) if image.shape[2] == 3 else np.repeat(image[:, :, :1], 3, 2)


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file upright, as RGB.

    Parameters
    ----------
    path : str or Path
        JPEG, PNG or TIFF.

    Returns
    -------
    ndarray, shape (H, W, 3)
        ``uint8``, or ``uint16`` for 16-bit PNG/TIFF; EXIF orientation applied once; alpha dropped; grey
        images repeated to three channels.

    Raises
    ------
    AcquisitionError
        When the file is missing, empty, truncated, corrupt or not an image; the message names the file.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise AcquisitionError("no such file", path=path) from exc
    except IsADirectoryError as exc:
        raise AcquisitionError("expected an image file, found a folder", path=path) from exc
    except OSError as exc:
        raise AcquisitionError(f"cannot read ({exc.strerror})", path=path) from exc
    if not data:
        raise AcquisitionError("the file is empty", path=path, hint="copy it again from the camera")
    if data.startswith(_JPEG_MAGIC):
        return apply_orientation(_decode_jpeg(data, path), exif_orientation(data))
    image = _decode_other(data, path)
    if data.startswith(_TIFF_MAGICS):  # OpenCV's TIFF decoder already honours the orientation tag
        return image
    return apply_orientation(image, exif_orientation(data))


def encode_image(image: np.ndarray, suffix: str, *, quality: int = 95, exif: bytes | None = None,
                 png_compression: int = 1) -> bytes:
    """Encode an RGB array as the format ``suffix`` names (``.jpg``, ``.png``, ``.tif``).

    JPEG keeps ``exif`` (raw EXIF bytes, e.g. from ``PIL.Image.Exif.tobytes()``) and is 8-bit only; PNG and
    TIFF keep ``uint16``. ``png_compression`` trades size for speed (0-9; 1 is ~5x faster than 9 on photos).
    """
    suffix = suffix.lower()
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB array of shape (H, W, 3), got {image.shape}")
    if suffix in (".jpg", ".jpeg"):
        if image.dtype != np.uint8:
            raise ValueError(f"JPEG holds 8-bit images only, got {image.dtype}")
        out = io.BytesIO()
        Image.fromarray(image).save(out, format="JPEG", quality=quality, exif=exif or b"")
        return out.getvalue()
    if suffix not in (".png", ".tif", ".tiff"):
        raise ValueError(f"unsupported image format {suffix!r}; use one of {', '.join(IMAGE_EXTENSIONS)}")
    if image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"PNG/TIFF take uint8 or uint16, got {image.dtype}")
    params = [cv2.IMWRITE_PNG_COMPRESSION, png_compression] if suffix == ".png" else []
    ok, encoded = cv2.imencode(suffix, np.ascontiguousarray(image[:, :, ::-1]), params)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {image.shape} {image.dtype} image as {suffix}")
    return encoded.tobytes()


def write_image(path: str | Path, image: np.ndarray, *, quality: int = 95, exif: bytes | None = None,
                png_compression: int = 1) -> None:
    """Encode ``image`` by the extension of ``path`` and write it atomically (see :func:`encode_image`)."""
    path = Path(path)
    data = encode_image(image, path.suffix, quality=quality, exif=exif, png_compression=png_compression)
    write_bytes_atomic(path, data)
