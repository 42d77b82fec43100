"""Decoding, for :mod:`acquisition.imageio` (private: import from there).

Everything between a file's bytes and an upright array: the format sniffed from the content, the size checked on
the header against the pixel limit, truncation detected, the one decoder per format chosen, the EXIF orientation
applied once, and (for :func:`read_photo`) the metadata a faithful output keeps.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import cv2
import numpy as np
from PIL import JpegImagePlugin, features

from ._formats import UNSUPPORTED_HINTS, sniff_format
from ._jpeg import estimate_quality, jpeg_layout
from ._pillow import HEIF_SUPPORTED, Image, pillow_warnings_logged
from ._profiles import cmyk_to_rgb
from ._tiff import raw_signature
from .errors import AcquisitionError
from .files import read_bytes

__all__ = ["DEFAULT_MAX_PIXELS", "IMAGE_EXTENSIONS", "MAX_PIXELS_ENV", "Photo", "apply_orientation",
           "exif_orientation", "image_size", "max_image_pixels", "megapixels", "memory_needed", "memory_words",
           "parse_pixel_count", "raise_limit_hint", "read_image", "read_photo"]

#: File name extensions (lower case) the pair layout and ``prep enhance`` pick up, in any case on disk.
IMAGE_EXTENSIONS: Final = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".heic", ".heif", ".hif", ".webp", ".avif")
#: Environment variable that raises (or lowers) the largest image read, in pixels (``1000000000``, ``1000M``).
MAX_PIXELS_ENV: Final = "DEEPFLASH_MAX_IMAGE_PIXELS"
#: Default largest image, in pixels: twice a 250 MP camera photo, 1.5 GB as 8-bit RGB.
DEFAULT_MAX_PIXELS: Final = 500_000_000
#: Peak memory of reading a photo, in multiples of its decoded size (see :func:`memory_needed`) ...
READ_MEMORY_FACTOR: Final = 2.5
#: ... and of ``prep enhance``, plus a fixed part for torch and the network, in bytes.
ENHANCE_MEMORY_FACTOR: Final = 3.5
ENHANCE_MEMORY_BASE: Final = 0.6 * 2**30

log = logging.getLogger(__name__)
_EXIF_ORIENTATION: Final = 0x0112
_EXIF_SOFTWARE: Final = 0x0131
_EXIF_IFD: Final = 0x8769
_EXIF_PIXEL_X: Final = 0xA002
_EXIF_PIXEL_Y: Final = 0xA003
_EXIF_HEADER: Final = b"Exif\x00\x00"
_PNG_MAGIC: Final = b"\x89PNG\r\n\x1a\n"
_PNG_METADATA_CHUNKS: Final = (b"eXIf", b"tEXt", b"zTXt", b"iTXt")
# OpenCV refuses images above CV_IO_MAX_IMAGE_PIXELS (2^30 by default, read once when cv2 loads); larger PNG and
# TIFF files go to Pillow instead.
_CV2_MAX_PIXELS: Final = 1 << 30
# Zero bytes in place of the EOI marker of a single-scan JPEG: enough for libjpeg's bit-buffer look-ahead to
# finish a whole scan, far too few to stand in for the rows of a cut one (see acquisition._jpeg).
_JPEG_PAD: Final = b"\x00" * 16
_JPEG_ONES_PAD: Final = b"\xff\x00" * 8  # as many one bits (0xFF is stuffed with 0x00 in entropy-coded data)
_TRUNCATED_HINT: Final = "the file is truncated: copy it again from the camera"
_CORRUPT_HINT: Final = "the file is truncated or corrupt: copy it again from the camera"
_TRUNCATION_WORDS: Final = ("truncated", "premature", "incomplete", "not enough image data", "unexpected end")
# IFD0 tags of a TIFF that describe the picture (not its storage), carried over as its EXIF.
_DESCRIPTIVE_TIFF_TAGS: Final = (0x010E, 0x010F, 0x0110, 0x0112, 0x0131, 0x0132, 0x013B, 0x8298, 0x8769, 0x8825)
_HEIF_MONOCHROME: Final = 2  # libheif's heif_colorspace_monochrome
_DECODER_FEATURES: Final = {"WEBP": "webp", "AVIF": "avif", "JPEG2000": "jpg_2000"}
_PILLOW_ERRORS: Final = (OSError, SyntaxError, ValueError, EOFError, RuntimeError, TypeError, IndexError)


# ------------------------------------------------------------------------------------------------- size limit

def parse_pixel_count(text: str) -> int:
    """A pixel count written as ``500000000``, ``500M``, ``1.5G`` or ``6e8`` (M and G are millions, billions).

    Raises
    ------
    ValueError
        For anything else, or a count below 1.
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?(?:e\d+)?)\s*(k|m|mp|g|gp)?\s*", str(text).lower())
    if match is None:
        raise ValueError(f"{text!r} is not a number of pixels (e.g. 1000000000 or 1000M)")
    scale = {"": 1, "k": 10**3, "m": 10**6, "mp": 10**6, "g": 10**9, "gp": 10**9}[match.group(2) or ""]
    value = int(float(match.group(1)) * scale)
    if value < 1:
        raise ValueError(f"{text!r}: the pixel limit must be at least 1")
    return value


def max_image_pixels() -> int:
    """The largest image (width x height) the readers accept: ``DEEPFLASH_MAX_IMAGE_PIXELS`` or 500 MP.

    Read at every call, so a command-line option that sets the variable also reaches worker processes.

    Raises
    ------
    AcquisitionError
        When the variable is set to something that is not a pixel count.
    """
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        return parse_pixel_count(raw)
    except ValueError as exc:
        raise AcquisitionError(f"{MAX_PIXELS_ENV}={raw!r} is not a number of pixels",
                               hint="set it like 1000000000 or 1000M, or unset it for the default 500M") from exc


def raise_limit_hint(pixels: int) -> str:
    """How to raise the pixel limit so that a picture of ``pixels`` passes: the variable and the option."""
    raise_to = f"{math.ceil(pixels / 1e8) * 100 if pixels > 10**8 else math.ceil(pixels / 1e6)}M"
    return f"set {MAX_PIXELS_ENV}={raise_to} or pass prep --max-image-pixels {raise_to}"


def megapixels(pixels: int) -> str:
    """A pixel count in words: ``108 MP``, ``1.5 MP``, ``0.31 MP``, ``1,000 pixels``."""
    if pixels >= 10**7:
        return f"{pixels / 1e6:.0f} MP"
    if pixels >= 10**6:
        return f"{pixels / 1e6:.1f} MP"
    return f"{pixels / 1e6:.2f} MP" if pixels >= 10**4 else f"{pixels:,} pixels"


def memory_words(size: float) -> str:
    """A number of bytes in words: ``2.7 GiB``, ``350 MiB``, ``under 1 MiB``."""
    if size >= 2**30:
        return f"{size / 2**30:.1f} GiB"
    return f"{size / 2**20:.0f} MiB" if size >= 2**20 else "under 1 MiB"


def memory_needed(pixels: int, *, bytes_per_sample: int = 1) -> tuple[float, float]:
    """Bytes of memory (reading alone, ``prep enhance``) a photo of ``pixels`` RGB pixels needs, as measured.

    Reading holds the decoder's copy (Pillow keeps 4 bytes a pixel) beside the array: about
    :data:`READ_MEMORY_FACTOR` times the decoded size. ``prep enhance`` holds the input, the output and the
    encoder's copy, with its float work in bands: about :data:`ENHANCE_MEMORY_FACTOR` times the decoded size,
    plus the network and torch (:data:`ENHANCE_MEMORY_BASE`). Measured with the peak resident size of
    ``prep enhance`` on JPEGs of 24 and 108 MP.
    """
    decoded = pixels * 3 * bytes_per_sample
    return READ_MEMORY_FACTOR * decoded, ENHANCE_MEMORY_FACTOR * decoded + ENHANCE_MEMORY_BASE


def _min_encoded_bytes(kind: str, pixels: int) -> int:
    """A lower bound on the size of a whole file of ``pixels`` pixels (0 where no useful bound exists).

    PNG: deflate packs at most ~1032:1, and a pixel holds at least 1 bit. JPEG: every 8x8 block of every
    component costs at least a bit, progressive files included (halved again for safety).
    """
    if kind == "PNG":
        return pixels // 8 // 1032
    if kind == "JPEG":
        return pixels // 64 // 8 // 2
    return 0


def _check_size(width: int, height: int, path: Path, data_size: int, kind: str) -> None:
    pixels = width * height
    if width < 1 or height < 1:
        raise AcquisitionError(f"the {kind} header gives an empty picture ({width}x{height})", path=path,
                               hint=_CORRUPT_HINT)
    limit = max_image_pixels()
    if pixels > limit:
        reading, enhancing = memory_needed(pixels)
        raise AcquisitionError(
            f"the image is too large: {width}x{height} ({megapixels(pixels)}), above the limit of "
            f"{megapixels(limit)}", path=path,
            hint=f"if it is a real photo, raise the limit: {raise_limit_hint(pixels)}; reading it needs about "
                 f"{memory_words(reading)} of memory, prep enhance about {memory_words(enhancing)}")
    minimum = _min_encoded_bytes(kind, pixels)
    if data_size < minimum:
        raise AcquisitionError(f"the file is only {data_size} bytes, too small for the {width}x{height} {kind} its "
                               f"header announces", path=path, hint=_TRUNCATED_HINT)


# ------------------------------------------------------------------------------------------------ orientation

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


def _png_chunks(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """(type, start of body, body length) of each chunk, without decoding; stops at IEND or the end of data."""
    pos = len(_PNG_MAGIC)
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        yield kind, pos + 8, length
        if kind == b"IEND":
            return
        pos += 12 + length


def _png_exif(data: bytes) -> bytes | None:
    """The body of the PNG's ``eXIf`` chunk (a TIFF header and IFDs), wherever it lies."""
    for kind, start, length in _png_chunks(data):
        if kind == b"eXIf":
            return data[start:start + length]
    return None


def _orientation_of(exif: Image.Exif) -> int:
    value = exif.get(_EXIF_ORIENTATION, 1)
    return int(value) if isinstance(value, int) and 1 <= value <= 8 else 1


def exif_orientation(data: bytes) -> int:
    """The EXIF orientation stored in an encoded image (1 when there is none)."""
    try:
        if data.startswith(_PNG_MAGIC):
            # PIL would decode the whole picture to look for an eXIf chunk after the pixels
            body = _png_exif(data)
            if body is None:
                return 1
            exif = Image.Exif()
            exif.load(body)
            return _orientation_of(exif)
        with Image.open(io.BytesIO(data)) as im:
            return _orientation_of(im.getexif())
    except Exception as exc:  # a damaged EXIF block must not hide the pixels; say so for whoever looks (-v)
        log.debug("unreadable EXIF block (%s: %s); orientation taken as 1", type(exc).__name__, exc)
        return 1


# --------------------------------------------------------------------------------------------------- decoding

def _detail(exc: BaseException) -> str:
    # PIL names its in-memory buffer ("<_io.BytesIO object at 0x...>"): keep messages reproducible.
    text = re.sub(r"\s*<_io\.BytesIO object at 0x[0-9a-f]+>", "", str(exc)).strip()
    return text or type(exc).__name__


def _decode_error(kind: str, path: Path, exc: BaseException) -> AcquisitionError:
    detail = _detail(exc)
    if isinstance(exc, MemoryError):
        return AcquisitionError(f"not enough memory to decode this {kind}", path=path,
                                hint="close other programs, or process it on a machine with more memory")
    if any(word in detail.lower() for word in _TRUNCATION_WORDS):
        log.debug("%s: %s", path, detail)
        return AcquisitionError(f"this {kind} is truncated: it ends in the middle of its image data", path=path,
                                hint=_TRUNCATED_HINT)
    return AcquisitionError(f"cannot decode this {kind} ({detail})", path=path, hint=_CORRUPT_HINT)


def _check_decodable(kind: str, path: Path, data: bytes) -> None:
    if kind in UNSUPPORTED_HINTS:
        why = raw_signature(data) if kind == "camera RAW file" else None
        raise AcquisitionError(f"this is a {kind}{f' ({why})' if why else ''}, not a photo the toolkit can read",
                               path=path, hint=UNSUPPORTED_HINTS[kind])
    if kind == "HEIF" and not HEIF_SUPPORTED:
        raise AcquisitionError("this is a HEIF/HEIC photo and pillow-heif is not installed", path=path,
                               hint="pip install pillow-heif, or export the photo as JPEG")
    feature = _DECODER_FEATURES.get(kind)
    if feature is not None and not features.check(feature):
        raise AcquisitionError(f"this is a {kind} image and this Pillow was built without a {kind} decoder",
                               path=path, hint="pip install --upgrade pillow, or convert it to JPEG or PNG")


def _jpeg_feed(data: bytes, path: Path) -> bytes:
    """The bytes to hand Pillow: a single-scan JPEG without its EOI, so a cut scan fails instead of going grey
    and a whole scan decodes whether its EOI is there or not (a copy that lost only its last 2 bytes holds every
    pixel: :func:`_scan_is_whole`); a multi-scan JPEG as it is (without its EOI it fails as truncated: whether
    its last scan is whole cannot be told)."""
    layout = jpeg_layout(data)
    if len(layout.scans) > 1:
        if layout.end is not None and not layout.complete_coverage():
            raise AcquisitionError("this progressive JPEG is truncated (its last scans are missing)", path=path,
                                   hint=_TRUNCATED_HINT)
        return data
    if len(layout.scans) == 1 and layout.end is not None:
        return data[:layout.end] + _JPEG_PAD
    if len(layout.scans) == 1 and _scan_is_whole(data):  # without its EOI: a copy that lost its last 2 bytes
        return data + _JPEG_PAD
    return data  # a cut scan: Pillow runs out of data and says "truncated"


def _scan_is_whole(body: bytes) -> bool:
    """Whether a single-scan JPEG that ends without EOI still holds its whole scan.

    The missing end cannot be seen in the bytes, so the scan is decoded twice, followed by zero bits and by
    one bits: only when neither was read as image data (every block decoded from the file's own bytes) do the
    two pictures agree. A cut scan runs out of data or decodes the two differently. Costs two decodes, paid
    only by such files.
    """
    pictures = []
    for pad in (_JPEG_PAD, _JPEG_ONES_PAD):
        try:
            with Image.open(io.BytesIO(body + pad)) as im:
                pictures.append(np.asarray(im))
        except (*_PILLOW_ERRORS, MemoryError):
            return False
    return np.array_equal(*pictures)


def _open(feed: bytes, path: Path, kind: str) -> Image.Image:
    Image.MAX_IMAGE_PIXELS = None  # again: our limit, checked on the header, replaces Pillow's (acquisition._pillow)
    try:
        return Image.open(io.BytesIO(feed))
    except _PILLOW_ERRORS as exc:
        if kind == "TIFF" and _tiff_ifd_offset(feed) >= len(feed):
            raise AcquisitionError("this TIFF is truncated: its directory of tags lies past the end of the file",
                                   path=path, hint=_TRUNCATED_HINT) from exc
        if kind == "unknown":
            raise AcquisitionError("not an image file (neither JPEG, PNG, TIFF, HEIF, WebP nor AVIF data)",
                                   path=path, hint="copy it again from the camera, or remove it") from exc
        raise _decode_error(kind, path, exc) from exc


def _tiff_ifd_offset(data: bytes) -> int:
    """Where a classic TIFF's first directory starts (0 for BigTIFF or a header too short to say)."""
    if data[:4] not in (b"II*\x00", b"MM\x00*") or len(data) < 8:
        return 0
    return int.from_bytes(data[4:8], "little" if data[:2] == b"II" else "big")


def _check_tiff_extent(im: Image.Image, data: bytes, path: Path) -> None:
    """A TIFF whose strips or tiles reach past the end of the file was cut short."""
    tags = getattr(im, "tag_v2", {})
    for offsets_tag, counts_tag in ((273, 279), (324, 325)):
        offsets, counts = tags.get(offsets_tag), tags.get(counts_tag)
        if offsets and counts:
            offsets = offsets if isinstance(offsets, tuple) else (offsets,)
            counts = counts if isinstance(counts, tuple) else (counts,)
            if max(o + c for o, c in zip(offsets, counts, strict=False)) > len(data):
                raise AcquisitionError("this TIFF is truncated: its image data runs past the end of the file",
                                       path=path, hint=_TRUNCATED_HINT)


def _check_png_chunks(data: bytes, path: Path) -> None:
    """A PNG whose chunks run past the end of the file, or that has no IEND, was cut short (silently: libpng
    would print its own message before failing)."""
    end = len(_PNG_MAGIC)
    for kind, start, length in _png_chunks(data):
        end = start + length + 4
        if end > len(data):
            break
        if kind == b"IEND":
            return
    raise AcquisitionError("this PNG is truncated (its chunks end early and it has no IEND chunk)", path=path,
                           hint=_TRUNCATED_HINT)


@contextlib.contextmanager
def _quiet_opencv() -> Iterator[None]:
    """OpenCV logs decoder errors itself; the reader raises one clear error instead."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(level)


def _opencv_pixels(data: bytes, path: Path, kind: str) -> np.ndarray:
    """PNG/TIFF through OpenCV (keeps 16 bits, which Pillow reduces to 8 for RGB): (H, W, C) in RGB(A) order."""
    with _quiet_opencv():
        try:
            image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
        except cv2.error as exc:
            raise _decode_error(kind, path, exc) from exc
    if image is None:
        raise AcquisitionError(f"cannot decode this {kind}: it is truncated or corrupt", path=path,
                               hint=_CORRUPT_HINT)
    if image.dtype not in (np.uint8, np.uint16):
        raise AcquisitionError(f"unsupported sample type {image.dtype} (expected 8 or 16 bits)", path=path,
                               hint="save it as 8- or 16-bit")
    if image.ndim == 2:
        return image[:, :, None]
    if image.shape[2] == 3:
        return np.ascontiguousarray(image[:, :, ::-1])
    if image.shape[2] == 4:
        return np.ascontiguousarray(image[:, :, [2, 1, 0, 3]])
    return image[:, :, :1]


def _tifffile_pixels(data: bytes) -> np.ndarray:
    """A 16-bit TIFF with extra samples (alpha), stored order, as (H, W, C)."""
    import tifffile

    try:
        array = tifffile.imread(io.BytesIO(data))
    except tifffile.TiffFileError as exc:
        raise ValueError(str(exc)) from exc
    return array[:, :, None] if array.ndim == 2 else array


def _pillow_pixels(im: Image.Image, path: Path) -> np.ndarray:
    """Any Pillow mode as (H, W, C): C = 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA; uint8 or uint16."""
    mode = im.mode
    if mode in ("I", "F", "I;32", "F;32"):
        raise AcquisitionError(f"unsupported sample type (Pillow mode {mode}: 32-bit samples)", path=path,
                               hint="save it as 8- or 16-bit")
    if mode.startswith("I;16"):
        array = np.asarray(im).astype(np.uint16)
    else:
        if mode == "1":
            im = im.convert("L")
        elif mode in ("P", "PA"):
            im = im.convert("RGBA" if mode == "PA" or "transparency" in im.info else "RGB")
        elif mode in ("RGBa", "La"):
            im = im.convert(mode.upper())
        elif mode not in ("L", "LA", "RGB", "RGBA"):
            im = im.convert("RGB")  # CMYK, YCbCr, LAB, HSV
        array = np.asarray(im)
    return array[:, :, None] if array.ndim == 2 else array


@dataclass
class _Decoded:
    pixels: np.ndarray  # (H, W, C) upright; C = 1, 2, 3 or 4
    kind: str
    orientation: int
    grey: bool
    info: dict[str, Any]


def _read_bytes(path: Path) -> bytes:
    try:
        data = read_bytes(path, error=AcquisitionError)  # a FIFO or a folder: one line, never a hang
    except FileNotFoundError as exc:
        if path.is_symlink():
            raise AcquisitionError(f"a symbolic link to {os.readlink(path)}, which does not exist", path=path,
                                   hint="copy the photo itself here, or remove the link") from exc
        raise AcquisitionError("no such file", path=path) from exc
    except IsADirectoryError as exc:
        raise AcquisitionError("expected an image file, found a folder", path=path) from exc
    except OSError as exc:
        raise AcquisitionError(f"cannot read ({exc.strerror})", path=path) from exc
    if not data:
        raise AcquisitionError("the file is empty", path=path, hint="copy it again from the camera")
    return data


def _decode(path: Path, *, metadata: bool) -> _Decoded:
    """The one decoder behind :func:`read_image` and :func:`read_photo`."""
    data = _read_bytes(path)
    kind = sniff_format(data, path.suffix)
    _check_decodable(kind, path, data)
    feed = _jpeg_feed(data, path) if kind == "JPEG" else data
    with pillow_warnings_logged(), _open(feed, path, kind) as im:
        kind = "JPEG" if im.format == "MPO" else (im.format or kind)
        width, height = im.size
        _check_size(width, height, path, len(data), kind)
        # libheif has already turned a HEIF upright and reset its EXIF orientation: report the one it applied
        stored_orientation = im.info.get("original_orientation") if kind == "HEIF" else None
        grey = im.mode in ("1", "L", "LA", "La", "I;16", "I;16B", "I;16L", "I;16N") or _heif_monochrome(im)
        try:
            if kind == "PNG":
                orientation = exif_orientation(data)
            else:
                orientation = _orientation_of(im.getexif())
            info = _metadata(im, data, kind) if metadata else {}
            if kind == "PNG":
                _check_png_chunks(data, path)
            elif kind == "TIFF":
                _check_tiff_extent(im, data, path)
            # OpenCV keeps 16 bits (Pillow reduces 16-bit RGB to 8) but premultiplies a TIFF's unassociated
            # alpha into its colours, and refuses more than 2^30 pixels: those go to Pillow, or tifffile for 16 bits.
            tags = getattr(im, "tag_v2", {}) if kind == "TIFF" else {}
            tiff_alpha = bool(tags.get(338))
            bits = tags.get(258, (8,))
            upright_already = False
            if im.mode == "CMYK":  # through its own profile to sRGB (acquisition._profiles)
                pixels, icc = cmyk_to_rgb(im, im.info.get("icc_profile"))
                if metadata:
                    info["icc_profile"] = icc
            elif tiff_alpha and max(bits if isinstance(bits, tuple) else (bits,)) > 8:
                pixels = _tifffile_pixels(data)
            elif kind in ("PNG", "TIFF") and width * height <= _CV2_MAX_PIXELS and not tiff_alpha:
                pixels = _opencv_pixels(data, path, kind)
                upright_already = kind == "TIFF"  # OpenCV's TIFF decoder honours the orientation tag itself
            else:
                pixels = _pillow_pixels(im, path)
        except AcquisitionError:
            raise
        except (*_PILLOW_ERRORS, MemoryError) as exc:
            raise _decode_error(kind, path, exc) from exc
    if not upright_already:
        pixels = apply_orientation(pixels, orientation)
    if isinstance(stored_orientation, int) and 1 <= stored_orientation <= 8:
        orientation = stored_orientation
    return _Decoded(pixels, kind, orientation, grey, info)


def _heif_monochrome(im: Image.Image) -> bool:
    """Whether a HEIF stores one grey channel: libheif hands grey with alpha over as RGBA (pillow-heif's file
    object, read before the pixels are)."""
    try:
        heif = getattr(im, "_heif_file", None)
        return heif is not None and heif[im.tell()]._c_image.colorspace == _HEIF_MONOCHROME
    except Exception:  # pillow-heif's internals moved: the photo is simply taken as colour
        return False


def _to_rgb(pixels: np.ndarray) -> np.ndarray:
    channels = pixels.shape[2]
    if channels >= 3:
        return pixels if channels == 3 else np.ascontiguousarray(pixels[:, :, :3])
    return np.repeat(pixels[:, :, :1], 3, axis=2)


@contextlib.contextmanager
def _rehinted(damaged_hint: str | None) -> Iterator[None]:
    """For files the toolkit wrote itself, "copy it again from the camera" is the wrong fix: say which is."""
    try:
        yield
    except AcquisitionError as exc:
        if damaged_hint is None or not exc.hint:
            raise
        if "copy it again" in exc.hint:
            raise AcquisitionError(exc.message, path=exc.path, hint=damaged_hint) from exc
        if exc.message.startswith("the image is too large"):  # a damaged header announces a huge picture too
            raise AcquisitionError(exc.message, path=exc.path,
                                   hint=f"if it should not be that large, it is damaged: {damaged_hint}; "
                                        f"{exc.hint}") from exc
        raise


def read_image(path: str | Path, *, damaged_hint: str | None = None) -> np.ndarray:
    """Read an image file upright, as RGB.

    Parameters
    ----------
    path : str or Path
        JPEG, PNG, TIFF, HEIF/HEIC, WebP or AVIF, recognised by content (the extension does not matter).
    damaged_hint : str, optional
        The fix to give when the file is empty, truncated or corrupt, instead of "copy it again from the
        camera" (for files a stage wrote, e.g. "run prep register --force for this pair").

    Returns
    -------
    ndarray, shape (H, W, 3)
        ``uint8``, or ``uint16`` for 16-bit PNG/TIFF; EXIF orientation applied once; alpha dropped; grey
        images repeated to three channels.

    Raises
    ------
    AcquisitionError
        When the file is missing, empty, truncated, corrupt, larger than :func:`max_image_pixels`, or not a
        photo this toolkit reads (the message names the file and, for a RAW file or a PDF, the format).
    """
    with _rehinted(damaged_hint):
        return _to_rgb(_decode(Path(path), metadata=False).pixels)


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image, upright, from its header alone (nothing is decoded).

    Raises
    ------
    AcquisitionError
        As :func:`read_image`, for what the header shows.
    """
    path = Path(path)
    data = _read_bytes(path)
    kind = sniff_format(data, path.suffix)
    _check_decodable(kind, path, data)
    with pillow_warnings_logged(), _open(data, path, kind) as im:
        width, height = im.size
        orientation = exif_orientation(data) if kind == "PNG" else _orientation_of(im.getexif())
    return (width, height) if orientation >= 5 else (height, width)


# ------------------------------------------------------------------------------------------ photo + metadata

@dataclass(frozen=True, eq=False)
class Photo:
    """A photo read with everything a faithful output must keep (:func:`read_photo`, :func:`write_photo`).

    Attributes
    ----------
    rgb : ndarray, shape (H, W, 3)
        Upright RGB, ``uint8`` or ``uint16`` (as :func:`read_image` returns it; grey repeated to 3 channels).
    alpha : ndarray, shape (H, W), optional
        The alpha channel, upright, untouched, same dtype as ``rgb``; None when the file has none.
    grey : bool
        The file stores one colour channel (grey JPEG, grey PNG/TIFF): write the result back as grey.
    bit_depth : int
        8 or 16 bits per sample, as decoded.
    format : str
        What the file holds: ``"JPEG"``, ``"PNG"``, ``"TIFF"``, ``"HEIF"``, ``"WEBP"``, ``"AVIF"``...
    icc_profile : bytes, optional
        The embedded colour profile (e.g. Display P3); None for untagged files (sRGB by convention).
    exif : bytes, optional
        All EXIF as stored (``b"Exif\\0\\0"`` + TIFF structure), orientation tag included; see
        :func:`upright_exif` for what is written back.
    xmp : bytes, optional
        The XMP packet, as stored.
    orientation : int
        The EXIF orientation (1-8) that was applied to turn the pixels upright.
    dpi : tuple of float, optional
        Stored resolution (x, y) in dots per inch.
    jpeg_quality : int, optional
        For a JPEG: the IJG quality (1-100) closest to its quantization tables.
    subsampling : str, optional
        For a colour JPEG: ``"4:4:4"``, ``"4:2:2"`` or ``"4:2:0"``.
    qtables : tuple of tuple of int, optional
        For a JPEG: its quantization tables (natural order), reused when writing a JPEG back.
    path : Path, optional
        Where it was read from.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    grey: bool = False
    bit_depth: int = 8
    format: str = "PNG"
    icc_profile: bytes | None = None
    exif: bytes | None = None
    xmp: bytes | None = None
    orientation: int = 1
    dpi: tuple[float, float] | None = None
    jpeg_quality: int | None = None
    subsampling: str | None = None
    qtables: tuple[tuple[int, ...], ...] | None = None
    path: Path | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width), upright."""
        return self.rgb.shape[0], self.rgb.shape[1]


_SUBSAMPLING_NAMES: Final = {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}


def _exif_bytes(im: Image.Image, data: bytes, kind: str) -> bytes | None:
    if kind == "PNG":
        body = _png_exif(data)
        return _EXIF_HEADER + body if body else None
    if kind == "TIFF":  # the EXIF of a TIFF is its first IFD: keep what describes the picture, not its strips
        source = im.getexif()
        exif = Image.Exif()
        for tag in _DESCRIPTIVE_TIFF_TAGS:
            if tag in (_EXIF_IFD, 0x8825):
                if tag in source:
                    exif[tag] = source.get_ifd(tag)
            elif tag in source:
                exif[tag] = source[tag]
        return exif.tobytes() if len(exif) else None
    raw = im.info.get("exif")
    if not raw:
        return None
    return raw if raw.startswith(_EXIF_HEADER) else _EXIF_HEADER + raw


def _metadata(im: Image.Image, data: bytes, kind: str) -> dict[str, Any]:
    xmp = im.info.get("xmp")
    if xmp is None and kind == "TIFF":
        xmp = getattr(im, "tag_v2", {}).get(700)
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    dpi = im.info.get("dpi")
    info: dict[str, Any] = {
        "icc_profile": im.info.get("icc_profile") or None,
        "exif": _exif_bytes(im, data, kind),
        "xmp": bytes(xmp) if xmp else None,
        "dpi": (float(dpi[0]), float(dpi[1])) if dpi else None,
    }
    if kind == "JPEG" and isinstance(im, JpegImagePlugin.JpegImageFile):
        qtables = getattr(im, "quantization", None) or {}
        info["qtables"] = tuple(tuple(int(v) for v in qtables[k]) for k in sorted(qtables)) or None
        info["jpeg_quality"] = estimate_quality(qtables)
        info["subsampling"] = _SUBSAMPLING_NAMES.get(JpegImagePlugin.get_sampling(im))
    return info


def read_photo(path: str | Path) -> Photo:
    """Read a photo upright, with what must survive a round trip through :func:`write_photo`.

    The pixels are exactly those of :func:`read_image` (same decoder, same checks), plus the alpha channel
    and the metadata listed in :class:`Photo`.

    Parameters
    ----------
    path : str or Path
        JPEG, PNG, TIFF, HEIF/HEIC, WebP or AVIF, recognised by content.

    Returns
    -------
    Photo

    Raises
    ------
    AcquisitionError
        As :func:`read_image`.
    """
    path = Path(path)
    decoded = _decode(path, metadata=True)
    pixels = decoded.pixels
    alpha = np.ascontiguousarray(pixels[:, :, -1]) if pixels.shape[2] in (2, 4) else None
    return Photo(rgb=_to_rgb(pixels), alpha=alpha, grey=decoded.grey or pixels.shape[2] <= 2,
                 bit_depth=16 if pixels.dtype == np.uint16 else 8, format=decoded.kind,
                 orientation=decoded.orientation, path=path, **decoded.info)


