"""Image files as people really have them, built from bundled sample pictures: cut copies, HEIC, huge headers.

Each builder makes the bytes a real failing file has (a JPEG cut mid-scan and closed by its end marker, a PNG
whose header announces 40000x40000 pixels in 69 bytes, a Display P3 profile), so tests exercise the readers on
the real byte structure, not on a mock.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

import acquisition._pillow  # noqa: F401  (registers the HEIF writer)


def jpeg_bytes(pixels: np.ndarray, **options) -> bytes:
    """``pixels`` (H, W[, 3]) as a JPEG written by Pillow with ``options`` (quality, progressive, ...)."""
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", **options)
    return out.getvalue()


def cut_with_eoi(jpeg: bytes, fraction: float = 0.5) -> bytes:
    """What an interrupted card write often leaves: the first ``fraction`` of the file, then the EOI marker."""
    end = jpeg.rfind(b"\xff\xd9")
    return jpeg[:int(end * fraction)] + b"\xff\xd9"


def heic_bytes(pixels: np.ndarray, *, exif: bytes | None = None, quality: int = 90) -> bytes:
    """``pixels`` as HEIC (pillow-heif's encoder), as iPhones write it."""
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="HEIF", quality=quality, **({"exif": exif} if exif else {}))
    return out.getvalue()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def header_only_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header announces ``width`` x ``height`` RGB pixels (a decompression bomb's header).

    With 40000 x 40000 it is 69 bytes: signature, IHDR, a few bytes of IDAT, IEND.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(bytes(range(12)))  # its first 12 bytes (a cut deflate stream): 69 in all
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat[:12])
            + _png_chunk(b"IEND", b""))


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ \x00\x00\x00\x00" + _s15(x) + _s15(y) + _s15(z)


def _desc(text: bytes) -> bytes:
    return (b"desc\x00\x00\x00\x00" + struct.pack(">I", len(text) + 1) + text + b"\x00" + b"\x00" * 8
            + b"\x00\x00\x00" + b"\x00" * 67)


def _icc(device_class: bytes, space: bytes, pcs: bytes, tags: list[tuple[bytes, bytes]]) -> bytes:
    """An ICC v2 profile (ICC.1:2001-04): 128-byte header, tag table, tag data (each padded to 4 bytes)."""
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for signature, data in tags:
        data += b"\x00" * (-len(data) % 4)
        table += signature + struct.pack(">II", offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = (struct.pack(">I", size) + b"lcms" + struct.pack(">I", 0x02100000) + device_class + space + pcs
              + struct.pack(">6H", 2026, 1, 1, 0, 0, 0) + b"acsp" + b"\x00" * 24 + struct.pack(">I", 0)
              + _s15(0.9642) + _s15(1.0) + _s15(0.8249) + b"\x00" * 48)
    return header + struct.pack(">I", len(tags)) + table + body


_CPRT = (b"cprt", b"text\x00\x00\x00\x00Public domain test profile\x00")
_D50 = (b"wtpt", _xyz(0.9642, 1.0, 0.8249))


def display_p3_profile() -> bytes:
    """An ICC v2 display profile with Display P3 primaries (D50-adapted colorants), gamma 2.2, built here.

    lcms parses it (``ImageCms.ImageCmsProfile``) and reports the description "Display P3".
    """
    curve = b"curv\x00\x00\x00\x00" + struct.pack(">IH", 1, 0x0233) + b"\x00\x00"
    return _icc(b"mntr", b"RGB ", b"XYZ ", [
        (b"desc", _desc(b"Display P3")), _CPRT, _D50, (b"rXYZ", _xyz(0.515121, 0.241196, -0.001053)),
        (b"gXYZ", _xyz(0.291977, 0.692245, 0.041885)), (b"bXYZ", _xyz(0.157104, 0.066574, 0.784073)),
        (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)])


def linear_grey_profile() -> bytes:
    """An ICC v2 grey display profile with a linear tone curve (gamma 1.0): grey 128 is sRGB ~188."""
    curve = b"curv\x00\x00\x00\x00" + struct.pack(">IH", 1, 0x0100) + b"\x00\x00"
    return _icc(b"mntr", b"GRAY", b"XYZ ", [(b"desc", _desc(b"Linear grey")), _CPRT, _D50, (b"kTRC", curve)])


#: What the inks of :func:`press_cmyk_profile` print, as sRGB: a press cyan, not Pillow's plain (0, 255, 255).
PRESS_CYAN = (0, 160, 230)


def press_cmyk_profile() -> bytes:
    """An ICC v2 output profile for CMYK: a 2x2x2x2 ``A2B0`` table (lut16, Lab PCS) whose cyan ink prints
    :data:`PRESS_CYAN` and whose other corners mix the inks subtractively, built here."""
    from skimage.color import rgb2lab

    corners = []
    for c in (0, 1):  # the first input channel varies slowest (ICC.1, lut16Type)
        for m in (0, 1):
            for y in (0, 1):
                for k in (0, 1):
                    cyan = np.array(PRESS_CYAN) / 255.0 if c else np.ones(3)
                    rgb = cyan * np.array([1.0, 1 - m, 1 - y]) * (1 - k)
                    lab = rgb2lab(rgb.reshape(1, 1, 3), illuminant="D50").ravel()
                    corners.append((round(lab[0] / 100 * 0xFF00), round((lab[1] + 128) * 256),
                                    round((lab[2] + 128) * 256)))
    identity = b"".join(_s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
    lut = (b"mft2\x00\x00\x00\x00" + bytes([4, 3, 2, 0]) + identity + struct.pack(">HH", 2, 2)
           + struct.pack(">8H", *([0, 0xFFFF] * 4))
           + b"".join(struct.pack(">3H", *(min(max(v, 0), 0xFFFF) for v in corner)) for corner in corners)
           + struct.pack(">6H", *([0, 0xFFFF] * 3)))
    return _icc(b"prtr", b"CMYK", b"Lab ", [(b"desc", _desc(b"Press CMYK")), _CPRT, _D50, (b"A2B0", lut)])


def raw_like_tiff(pixels: np.ndarray, kind: str) -> bytes:
    """A camera RAW's TIFF structure around ``pixels`` (H, W, 3), as tifffile writes it.

    ``kind``: ``"dng"`` (a small preview first, the DNG version tag), ``"nef"`` (a Nikon-style small preview
    first, then the 16-bit image), ``"cfa"`` (one sensor image of colour-filter-array samples); ``"camera-tiff"``
    (a camera's own full-size TIFF, Make set, a thumbnail second) is an ordinary TIFF.
    """
    import cv2
    import tifffile

    preview = cv2.resize(pixels, (pixels.shape[1] // 4, pixels.shape[0] // 4), interpolation=cv2.INTER_AREA)
    full16 = pixels.astype(np.uint16) * 257
    out = io.BytesIO()
    with tifffile.TiffWriter(out) as tiff:
        if kind == "dng":
            tiff.write(preview, photometric="rgb", subfiletype=1,
                       extratags=[(50706, "B", 4, (1, 4, 0, 0), True), (271, "s", 0, "Canon", True)])
            tiff.write(full16, photometric="rgb")
        elif kind == "nef":
            tiff.write(preview, photometric="rgb", subfiletype=1, extratags=[(271, "s", 0, "NIKON CORPORATION", True)])
            tiff.write(full16, photometric="rgb")
        elif kind == "cfa":
            tiff.write(full16[:, :, 1], photometric=32803, extratags=[(271, "s", 0, "SONY", True)])
        elif kind == "camera-tiff":
            tiff.write(pixels, photometric="rgb", extratags=[(271, "s", 0, "NIKON CORPORATION", True)])
            tiff.write(preview, photometric="rgb", subfiletype=1)
        else:
            raise ValueError(kind)
    return out.getvalue()


def paste_small(portrait: np.ndarray, canvas: np.ndarray, *, scale: float, at: tuple[int, int]) -> np.ndarray:
    """``canvas`` with ``portrait`` pasted at (x, y), scaled by ``scale`` (a small face in a large photo)."""
    import cv2

    size = (max(1, round(portrait.shape[1] * scale)), max(1, round(portrait.shape[0] * scale)))
    small = cv2.resize(portrait, size, interpolation=cv2.INTER_AREA)
    out = canvas.copy()
    x, y = at
    out[y:y + small.shape[0], x:x + small.shape[1]] = small
    return out
