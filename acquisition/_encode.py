"""Encoding, for :mod:`acquisition.imageio` (private: import from there).

Arrays back to files: :func:`encode_image`/:func:`write_image` for the stages' own outputs, and
:func:`encode_photo`/:func:`write_photo` for a result that must keep what its source photo had (ICC profile,
EXIF with the orientation reset, XMP, alpha, grey, bit depth, JPEG tables and subsampling). Every file is
written atomically.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import cv2
import numpy as np

from ._decode import (
    _EXIF_HEADER,
    _EXIF_IFD,
    _EXIF_ORIENTATION,
    _EXIF_PIXEL_X,
    _EXIF_PIXEL_Y,
    _EXIF_SOFTWARE,
    _PNG_MAGIC,
    IMAGE_EXTENSIONS,
    Photo,
)
from ._pillow import Image, pillow_warnings_logged
from ._profiles import fit_profile
from ._tiff import encode_tiff
from .atomic import write_bytes_atomic
from .errors import AcquisitionError, PrepError

__all__ = ["encode_image", "encode_photo", "upright_exif", "write_image", "write_photo"]

log = logging.getLogger(__name__)



def upright_exif(exif: bytes | None, *, size: tuple[int, int] | None = None, software: str | None = None) -> bytes:
    """EXIF for pixels written upright: every tag kept, ``Orientation`` 1, ``Software`` noting deepflash.

    Parameters
    ----------
    exif : bytes, optional
        As :attr:`Photo.exif` holds it (None: a new block with only these tags).
    size : (height, width), optional
        Written into ``PixelXDimension``/``PixelYDimension`` where the block has them.
    software : str, optional
        Default ``"deepflash <version>"``, appended to the camera's own ``Software`` value.

    Returns
    -------
    bytes
        Starting with ``b"Exif\\0\\0"`` (the embedded thumbnail, which shows the original, is left out).
    """
    from . import tool_version

    block = Image.Exif()
    if exif:
        try:
            block.load(exif)
        except Exception as exc:  # damaged: write a fresh block rather than fail the photo
            log.debug("unreadable EXIF block (%s: %s); writing a new one", type(exc).__name__, exc)
            block = Image.Exif()
    block[_EXIF_ORIENTATION] = 1
    ours = software or f"deepflash {tool_version()}"
    theirs = block.get(_EXIF_SOFTWARE)
    if isinstance(theirs, bytes):
        theirs = theirs.decode("ascii", errors="replace")
    theirs = str(theirs).strip("\x00 ") if theirs else ""
    block[_EXIF_SOFTWARE] = ours if not theirs or "deepflash" in theirs else f"{theirs}; {ours}"
    if size is not None and _EXIF_IFD in block:
        sub = block.get_ifd(_EXIF_IFD)
        if _EXIF_PIXEL_X in sub:
            sub[_EXIF_PIXEL_X] = int(size[1])
        if _EXIF_PIXEL_Y in sub:
            sub[_EXIF_PIXEL_Y] = int(size[0])
    return block.tobytes()


def _upright_xmp(xmp: bytes) -> bytes:
    """The XMP packet with ``tiff:Orientation`` set to 1 (both spellings), as Pillow's exif_transpose does."""
    return re.sub(rb'(tiff:Orientation\s*=\s*["\'])\d(["\'])|(<tiff:Orientation>)\d(</tiff:Orientation>)',
                  lambda m: (m.group(1) or m.group(3)) + b"1" + (m.group(2) or m.group(4)), xmp)


def _grey_of(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma (OpenCV's, in the image's own dtype: no float copy of a large photo), as Pillow's
    ``convert("L")``: a grey input relit through RGB comes back grey."""
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


#: Output formats that store one grey channel, and those that store grey with alpha (WebP stores neither; AVIF
#: has no grey with alpha in Pillow's writer).
_GREY_FORMATS: Final = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".heic", ".heif", ".hif", ".avif"})
_GREY_ALPHA_FORMATS: Final = frozenset({".png", ".tif", ".tiff", ".heic", ".heif", ".hif"})
#: Formats whose encoder here compresses alpha with loss at a lossy colour quality (x265 has no lossless alpha).
_LOSSY_ALPHA_FORMATS: Final = frozenset({".heic", ".heif", ".hif"})
_FORMAT_NAMES: Final = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF",
                        ".heic": "HEIC", ".heif": "HEIF", ".hif": "HEIF", ".webp": "WebP", ".avif": "AVIF"}


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")


def _png_with_metadata(png: bytes, *, icc: bytes | None, exif: bytes | None, xmp: bytes | None,
                       dpi: tuple[float, float] | None) -> bytes:
    """Insert iCCP, pHYs, eXIf and XMP (iTXt) chunks right after IHDR, where every reader looks for them."""
    chunks = []
    if icc:
        chunks.append(_png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc)))
    if dpi:
        per_metre = [max(1, round(d / 0.0254)) for d in dpi]
        chunks.append(_png_chunk(b"pHYs", b"".join(v.to_bytes(4, "big") for v in per_metre) + b"\x01"))
    if exif:
        chunks.append(_png_chunk(b"eXIf", exif.removeprefix(_EXIF_HEADER)))
    if xmp:
        chunks.append(_png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + xmp))
    ihdr_end = len(_PNG_MAGIC) + 12 + 13
    return png[:ihdr_end] + b"".join(chunks) + png[ihdr_end:]


def _to_8bit(array: np.ndarray) -> np.ndarray:
    return (array >> 8).astype(np.uint8) if array.dtype == np.uint16 else array


def _pillow_image(pixels: np.ndarray) -> Image.Image:
    """An 8-bit Pillow image from (H, W, C), C = 1, 2, 3 or 4."""
    pixels = _to_8bit(pixels)
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[pixels.shape[2]]
    return Image.fromarray(np.ascontiguousarray(pixels[:, :, 0] if mode == "L" else pixels), mode=mode)


def _encode(pixels: np.ndarray, suffix: str, *, icc: bytes | None = None, exif: bytes | None = None,
            xmp: bytes | None = None, dpi: tuple[float, float] | None = None, quality: int = 95,
            qtables: tuple[tuple[int, ...], ...] | None = None, subsampling: str | None = None,
            png_compression: int = 1) -> bytes:
    """Encode (H, W, C) pixels (C = 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA) in the format ``suffix`` names."""
    suffix = suffix.lower()
    out = io.BytesIO()
    if suffix in (".png", ".tif", ".tiff") and not (icc or exif or xmp or dpi) and pixels.shape[2] != 2:
        order = {1: [0], 3: [2, 1, 0], 4: [2, 1, 0, 3]}[pixels.shape[2]]
        params = [cv2.IMWRITE_PNG_COMPRESSION, png_compression] if suffix == ".png" else []
        ok, encoded = cv2.imencode(suffix, np.ascontiguousarray(pixels[:, :, order]), params)
        if not ok:
            raise ValueError(f"OpenCV could not encode a {pixels.shape} {pixels.dtype} image as {suffix}")
        return encoded.tobytes()
    if suffix == ".png":
        if pixels.shape[2] == 2 and pixels.dtype == np.uint16:
            pixels = pixels[:, :, [0, 0, 0, 1]]  # OpenCV writes no grey + alpha; 16-bit RGBA keeps every bit
        if pixels.shape[2] == 2:
            _pillow_image(pixels).save(out, format="PNG", compress_level=png_compression)
            png = out.getvalue()
        else:
            png = _encode(pixels, ".png", png_compression=png_compression)
        return _png_with_metadata(png, icc=icc, exif=exif, xmp=xmp, dpi=dpi)
    if suffix in (".tif", ".tiff"):
        return encode_tiff(pixels, icc=icc, exif=exif, xmp=xmp, dpi=dpi)
    options: dict[str, Any] = {key: value for key, value in (("exif", exif), ("icc_profile", icc), ("xmp", xmp))
                               if value}  # pillow-heif refuses an empty EXIF block
    if suffix in (".jpg", ".jpeg"):
        image = _pillow_image(pixels[:, :, :1] if pixels.shape[2] == 2 else pixels[:, :, :3])
        if qtables:
            options["qtables"] = [list(table) for table in qtables]
        else:
            options["quality"] = quality
        if subsampling and image.mode == "RGB":
            options["subsampling"] = subsampling
        if dpi:
            options["dpi"] = dpi
        image.save(out, format="JPEG", **options)
        return out.getvalue()
    formats = {".heic": "HEIF", ".heif": "HEIF", ".hif": "HEIF", ".webp": "WEBP", ".avif": "AVIF"}
    if suffix not in formats:
        raise ValueError(f"unsupported image format {suffix!r}; use one of {', '.join(IMAGE_EXTENSIONS)}")
    if pixels.shape[2] <= 2 and suffix not in (_GREY_ALPHA_FORMATS if pixels.shape[2] == 2 else _GREY_FORMATS):
        pixels = pixels[:, :, [0, 0, 0, 1][:pixels.shape[2] + 2]]  # the format stores no such grey
    image = _pillow_image(pixels)
    if formats[suffix] == "AVIF" and image.mode == "RGBA":
        try:  # libaom codes the alpha plane losslessly beside lossy colour ("a:" is its alpha-plane prefix)
            image.save(out, format="AVIF", quality=quality, advanced={"a:lossless": "1"}, **options)
            return out.getvalue()
        except (ValueError, RuntimeError, OSError) as exc:  # another AV1 encoder: its default alpha
            log.warning("this AVIF encoder has no lossless alpha (%s): the alpha channel may change by a level "
                        "or two; write .png, .tif or .webp to keep it exactly", exc)
            out = io.BytesIO()
    image.save(out, format=formats[suffix], quality=quality, **options)
    return out.getvalue()


def _check_rgb(image: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB array of shape (H, W, 3), got {image.shape}")
    if image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"expected uint8 or uint16 pixels, got {image.dtype}")


def encode_image(image: np.ndarray, suffix: str, *, quality: int = 95, exif: bytes | None = None,
                 png_compression: int = 1) -> bytes:
    """Encode an RGB array as the format ``suffix`` names (``.jpg``, ``.png``, ``.tif``, ``.heic``, ``.webp``...).

    JPEG keeps ``exif`` (raw EXIF bytes, e.g. from ``PIL.Image.Exif.tobytes()``) and is 8-bit only, as are
    HEIF, WebP and AVIF; PNG and TIFF keep ``uint16``. ``png_compression`` trades size for speed (0-9; 1 is
    ~5x faster than 9 on photos). :func:`encode_photo` also writes alpha, grey, colour profile and XMP.
    """
    suffix = suffix.lower()
    _check_rgb(image)
    if suffix not in IMAGE_EXTENSIONS:
        raise ValueError(f"unsupported image format {suffix!r}; use one of {', '.join(IMAGE_EXTENSIONS)}")
    if suffix not in (".png", ".tif", ".tiff") and image.dtype != np.uint8:
        raise ValueError(f"{suffix} holds 8-bit images only, got {image.dtype}")
    with pillow_warnings_logged():
        return _encode(image, suffix, exif=exif, quality=quality, png_compression=png_compression)


@contextlib.contextmanager
def _encoder_errors(path: Path) -> Iterator[None]:
    """An encoder's failure (libtiff, libheif, libwebp and Pillow raise RuntimeError, OSError, KeyError...) as one
    line naming the output; a bad argument stays a ValueError, and a failed write says why (:mod:`.atomic`)."""
    try:
        yield
    except PrepError:
        raise
    except MemoryError as exc:
        raise AcquisitionError("not enough memory to encode this output", path=path,
                               hint="close other programs, or write a format that needs less (e.g. .jpg)") from exc
    except (RuntimeError, OSError, TypeError, KeyError, IndexError, AttributeError, EOFError, SyntaxError,
            struct.error, cv2.error) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AcquisitionError(f"could not encode the result as {path.suffix.lstrip('.').upper()} ({detail})",
                               path=path, hint="write another format (.png keeps every pixel, the profile and "
                                               "the EXIF)") from exc


def write_image(path: str | Path, image: np.ndarray, *, quality: int = 95, exif: bytes | None = None,
                png_compression: int = 1) -> None:
    """Encode ``image`` by the extension of ``path`` and write it atomically (see :func:`encode_image`)."""
    path = Path(path)
    with _encoder_errors(path):
        data = encode_image(image, path.suffix, quality=quality, exif=exif, png_compression=png_compression)
    write_bytes_atomic(path, data)


def encode_photo(rgb: np.ndarray, suffix: str, *, like: Photo | None = None, quality: int | None = None,
                 png_compression: int = 1) -> bytes:
    """Encode an upright RGB result with what :func:`read_photo` found in the photo it came from.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3)
        ``uint8`` or ``uint16``, upright; the same height and width as ``like``.
    suffix : str
        The output format: ``.jpg``, ``.png``, ``.tif``, ``.heic``, ``.webp``, ``.avif`` (any of
        :data:`IMAGE_EXTENSIONS`).
    like : Photo, optional
        The source photo. Kept from it: the ICC profile where it describes the pixels written (a grey profile
        beside grey written as RGB converts them to sRGB through it; any other mismatch leaves the profile out),
        all EXIF (via :func:`upright_exif`: orientation 1, ``Software`` noting deepflash, the new pixel size;
        in TIFF too, with its Exif and GPS sub-IFDs), XMP (orientation 1), the resolution, the alpha channel
        (re-attached untouched where the format has alpha: PNG, TIFF, WebP and AVIF keep every level, HEIC's
        encoder changes it by a level or two and a warning says so), grey (written as one channel, BT.601 luma,
        in JPEG, PNG, TIFF, HEIC and AVIF, with alpha in PNG, TIFF and HEIC; elsewhere as neutral RGB, with a
        warning) and, JPEG to JPEG, the quantization tables and chroma subsampling (otherwise the estimated
        quality). 16-bit stays 16-bit in PNG and TIFF; JPEG, HEIF, WebP and AVIF take the top 8 bits.
    quality : int, optional
        Override the JPEG/HEIF/WebP/AVIF quality (default: the source's estimate, else 95).
    png_compression : int
        zlib level of PNG output (0-9).

    Returns
    -------
    bytes

    Raises
    ------
    ValueError
        For a shape or dtype that is not an RGB image, an alpha of another size, or an unknown suffix.
    """
    _check_rgb(rgb)
    suffix = suffix.lower()
    if suffix not in IMAGE_EXTENSIONS:
        raise ValueError(f"unsupported image format {suffix!r}; use one of {', '.join(IMAGE_EXTENSIONS)}")
    if like is not None and like.alpha is not None and like.alpha.shape != rgb.shape[:2]:
        raise ValueError(f"the result is {rgb.shape[1]}x{rgb.shape[0]}, the source's alpha "
                         f"{like.alpha.shape[1]}x{like.alpha.shape[0]}")
    with pillow_warnings_logged():
        if like is None:
            return _encode(rgb, suffix, exif=upright_exif(None, size=rgb.shape[:2]),
                           quality=quality or 95, png_compression=png_compression)
        return _encode_like(rgb, suffix, like, quality=quality, png_compression=png_compression)


def _encode_like(rgb: np.ndarray, suffix: str, like: Photo, *, quality: int | None, png_compression: int) -> bytes:
    """:func:`encode_photo` with a source photo: what the format can keep of it, and a word for what it cannot."""
    name = like.path.name if like.path else "the photo"
    fmt = _FORMAT_NAMES[suffix]
    alpha = like.alpha if suffix not in (".jpg", ".jpeg") else None
    if like.alpha is not None and alpha is None:
        log.info("JPEG has no alpha channel: the transparency of %s is not kept", name)
    pixels = rgb
    if like.grey:
        grey = _grey_of(rgb)[:, :, None]
        if suffix in (_GREY_ALPHA_FORMATS if alpha is not None else _GREY_FORMATS):
            pixels = grey
        else:
            log.warning("%s stores no grey%s: %s is written as (neutral) RGB", fmt,
                        " with alpha" if alpha is not None else "", name)
            pixels = np.repeat(_to_8bit(grey), 3, axis=2)
    if alpha is not None:
        if alpha.dtype != pixels.dtype:
            alpha = (alpha.astype(np.uint16) * 257) if pixels.dtype == np.uint16 else _to_8bit(alpha)
        pixels = np.concatenate([pixels, alpha[:, :, None]], axis=2)
        if suffix in _LOSSY_ALPHA_FORMATS:
            log.warning("%s: the HEIF encoder compresses the alpha channel with loss (a level or two); write .png, "
                        ".tif, .webp or .avif to keep it exactly", name)
    pixels, icc = fit_profile(pixels, like.icc_profile)
    same_jpeg = like.format == "JPEG" and suffix in (".jpg", ".jpeg") and quality is None
    return _encode(pixels, suffix, icc=icc, exif=upright_exif(like.exif, size=rgb.shape[:2]),
                   xmp=_upright_xmp(like.xmp) if like.xmp else None, dpi=like.dpi,
                   quality=quality or like.jpeg_quality or 95, qtables=like.qtables if same_jpeg else None,
                   subsampling=like.subsampling, png_compression=png_compression)


def write_photo(path: str | Path, rgb: np.ndarray, *, like: Photo | None = None, quality: int | None = None,
                png_compression: int = 1) -> None:
    """Write an upright RGB result atomically, keeping what ``like`` carries (see :func:`encode_photo`).

    Example
    -------
    >>> photo = read_photo("selfie.heic")                      # doctest: +SKIP
    >>> write_photo("studio.heic", relight(photo.rgb), like=photo)   # doctest: +SKIP
    """
    path = Path(path)
    with _encoder_errors(path):
        data = encode_photo(rgb, path.suffix, like=like, quality=quality, png_compression=png_compression)
    write_bytes_atomic(path, data)
