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


def display_p3_profile() -> bytes:
    """An ICC v2 display profile with Display P3 primaries (D50-adapted colorants), gamma 2.2, built here.

    lcms parses it (``ImageCms.ImageCmsProfile``) and reports the description "Display P3".
    """
    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ \x00\x00\x00\x00" + _s15(x) + _s15(y) + _s15(z)

    description = b"Display P3"
    desc = (b"desc\x00\x00\x00\x00" + struct.pack(">I", len(description) + 1) + description + b"\x00"
            + b"\x00" * 8 + b"\x00\x00\x00" + b"\x00" * 67)
    curve = b"curv\x00\x00\x00\x00" + struct.pack(">IH", 1, 0x0233) + b"\x00\x00"
    tags = [(b"desc", desc), (b"cprt", b"text\x00\x00\x00\x00Public domain test profile\x00"),
            (b"wtpt", xyz(0.9642, 1.0, 0.8249)), (b"rXYZ", xyz(0.515121, 0.241196, -0.001053)),
            (b"gXYZ", xyz(0.291977, 0.692245, 0.041885)), (b"bXYZ", xyz(0.157104, 0.066574, 0.784073)),
            (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for signature, data in tags:
        data += b"\x00" * (-len(data) % 4)
        table += signature + struct.pack(">II", offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = (struct.pack(">I", size) + b"lcms" + struct.pack(">I", 0x02100000) + b"mntrRGB XYZ "
              + struct.pack(">6H", 2026, 1, 1, 0, 0, 0) + b"acsp" + b"\x00" * 24 + struct.pack(">I", 0)
              + _s15(0.9642) + _s15(1.0) + _s15(0.8249) + b"\x00" * 48)
    return header + struct.pack(">I", len(tags)) + table + body


def paste_small(portrait: np.ndarray, canvas: np.ndarray, *, scale: float, at: tuple[int, int]) -> np.ndarray:
    """``canvas`` with ``portrait`` pasted at (x, y), scaled by ``scale`` (a small face in a large photo)."""
    import cv2

    size = (max(1, round(portrait.shape[1] * scale)), max(1, round(portrait.shape[0] * scale)))
    small = cv2.resize(portrait, size, interpolation=cv2.INTER_AREA)
    out = canvas.copy()
    x, y = at
    out[y:y + small.shape[0], x:x + small.shape[1]] = small
    return out
