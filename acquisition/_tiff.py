"""TIFF structure, for :mod:`acquisition.imageio` (private): telling a camera RAW from a TIFF photo, and writing
a TIFF with its EXIF.

Most camera RAW formats (DNG, NEF, ARW, CR2, PEF, SRW, ERF, 3FR...) are TIFF inside, and their first directory
(IFD0) is often a small preview: a reader that trusts the TIFF header decodes a 160x120 thumbnail as "the photo",
whatever the file is called. :func:`raw_signature` walks the directories (TIFF 6.0, section 2; DNG 1.7) and
names what only RAW files carry: the DNG version tag, colour-filter-array or linear-raw samples, a RAW-only
compression, Sony's private SR2 tags, or a reduced-resolution preview first with the full image behind it.

A TIFF keeps the camera's shot details (date taken, exposure, flash) in an EXIF sub-IFD that IFD0 points to
(tag 34665, and 34853 for GPS). libtiff, which Pillow uses to compress TIFF, refuses to write that pointer
("Bad LONG8 or IFD8 value ... EXIFIFDOffset"), and tifffile has no EXIF parameter, so :func:`encode_tiff` writes
the pixels with tifffile (deflate with a horizontal predictor) and then appends the EXIF tags and sub-IFDs,
serialised by Pillow at their final offsets, with a new IFD0 that holds both.
"""

from __future__ import annotations

import io
import logging
import struct
from typing import Final

import numpy as np

from ._pillow import Image

__all__ = ["encode_tiff", "raw_signature"]

log = logging.getLogger(__name__)

_NEW_SUBFILE_TYPE: Final = 254
_WIDTH, _LENGTH, _COMPRESSION, _PHOTOMETRIC, _MAKE = 256, 257, 259, 262, 271
_SUB_IFDS: Final = 330
_DNG_VERSION: Final = 50706
#: Photometric interpretations only sensor data has: colour filter array, linear raw (DNG).
_RAW_PHOTOMETRIC: Final = frozenset({32803, 34892})
#: Compression schemes only RAW files use (Sony ARW, packed RAW, Samsung, Kodak, Nikon NEF, lossy DNG, Pentax).
_RAW_COMPRESSION: Final = frozenset({32767, 32769, 32770, 32867, 34713, 34892, 65000, 65535})
#: Private tags of RAW writers: Sony SR2Private/SR2SubIFDs, DNGPrivateData, Canon's CR2 slices.
_RAW_TAGS: Final = frozenset({0x7200, 0x7221, 50740, 50752})
_MAX_IFDS = 16  # directories visited: RAW files hold a handful; a loop or garbage must not run away

# IFD0 tags that describe storage, written by the encoder itself: an EXIF block's copies are not carried over.
_STORAGE_TAGS: Final = frozenset({254, 255, 256, 257, 258, 259, 262, 263, 266, 273, 277, 278, 279, 280, 281, 282,
                                  283, 284, 296, 317, 320, 322, 323, 324, 325, 330, 338, 339, 340, 341, 347, 513,
                                  514, 529, 530, 531, 532, 34675, 0x8769, 0x8825, 0xA005})
_TYPE_SIZES: Final = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8,
                      17: 8, 18: 8}


class _Ifd:
    """One directory of a classic or Big TIFF: tag -> (type, count, value field as stored)."""

    def __init__(self, data: bytes, offset: int, order: str, big: bool) -> None:
        self.data, self.order, self.big, self.offset = data, order, big, offset
        count_fmt, entry_size = ("Q", 20) if big else ("H", 12)
        (count,) = struct.unpack_from(order + count_fmt, data, offset)
        start = offset + (8 if big else 2)
        self.entries: dict[int, tuple[int, int, bytes]] = {}
        self.raw: dict[int, bytes] = {}
        for i in range(min(count, 4096)):
            at = start + i * entry_size
            entry = data[at:at + entry_size]
            if len(entry) < entry_size:
                break
            tag, kind = struct.unpack_from(order + "HH", entry)
            (n,) = struct.unpack_from(order + ("Q" if big else "L"), entry, 4)
            self.entries[tag] = (kind, n, entry[12:] if big else entry[8:])
            self.raw[tag] = entry
        end = start + count * entry_size
        self.next = struct.unpack_from(order + ("Q" if big else "L"), data, end)[0] if end + 8 <= len(data) else 0

    def values(self, tag: int) -> list[int]:
        """The integer values (BYTE, SHORT, LONG, IFD, LONG8) of ``tag``; [] when absent or of another type."""
        if tag not in self.entries:
            return []
        kind, count, field = self.entries[tag]
        codes = {1: "B", 3: "H", 4: "L", 13: "L", 16: "Q", 18: "Q"}
        if kind not in codes or count > 1 << 16:
            return []
        size = _TYPE_SIZES[kind] * count
        if size <= len(field):
            raw = field[:size]
        else:
            (at,) = struct.unpack_from(self.order + ("Q" if self.big else "L"), field)
            raw = self.data[at:at + size]
        if len(raw) < size:
            return []
        return list(struct.unpack(self.order + codes[kind] * count, raw))

    def text(self, tag: int) -> str:
        """An ASCII tag's value ("" when absent)."""
        if tag not in self.entries or self.entries[tag][0] != 2:
            return ""
        _kind, count, field = self.entries[tag]
        if count <= len(field):
            raw = field[:count]
        else:
            (at,) = struct.unpack_from(self.order + ("Q" if self.big else "L"), field)
            raw = self.data[at:at + min(count, 256)]
        return raw.split(b"\x00", 1)[0].decode("ascii", "replace").strip()

    def pixels(self) -> int:
        width, length = self.values(_WIDTH), self.values(_LENGTH)
        return width[0] * length[0] if width and length else 0


def _header(data: bytes) -> tuple[str, bool, int] | None:
    """(byte order, BigTIFF?, offset of IFD0), or None when ``data`` is no TIFF."""
    if data[:4] in (b"II*\x00", b"MM\x00*") and len(data) >= 8:
        order = "<" if data[:2] == b"II" else ">"
        return order, False, struct.unpack_from(order + "L", data, 4)[0]
    if data[:4] in (b"II+\x00", b"MM\x00+") and len(data) >= 16:
        order = "<" if data[:2] == b"II" else ">"
        return order, True, struct.unpack_from(order + "Q", data, 8)[0]
    return None


def _directories(data: bytes) -> list[_Ifd]:
    """IFD0, the chain after it and every SubIFD, as far as the data holds them (never raises on damage)."""
    header = _header(data)
    if header is None:
        return []
    order, big, first = header
    found: list[_Ifd] = []
    queue, seen = [first], set()
    while queue and len(found) < _MAX_IFDS:
        offset = queue.pop(0)
        if not 8 <= offset < len(data) or offset in seen:
            continue
        seen.add(offset)
        try:
            ifd = _Ifd(data, offset, order, big)
        except struct.error:
            continue
        found.append(ifd)
        queue += ifd.values(_SUB_IFDS)
        if ifd.next:
            queue.append(ifd.next)
    return found


def raw_signature(data: bytes) -> str | None:
    """What marks TIFF-structured ``data`` as a camera RAW file, in words; None for an ordinary TIFF.

    Looks at every directory (IFD0, its chain and SubIFDs) for the DNG version tag, sensor samples (CFA or
    linear raw), a RAW-only compression or a RAW writer's private tag, and at IFD0 for a reduced-resolution
    preview placed before a larger image (which a TIFF reader would otherwise take for the photo).
    """
    ifds = _directories(data)
    if not ifds:
        return None
    make = next((text for text in (ifd.text(_MAKE) for ifd in ifds) if text), "")
    by = f", made by a {make} camera" if make else ""
    for ifd in ifds:
        if _DNG_VERSION in ifd.entries:
            return "it has the DNG version tag"
        if set(ifd.values(_PHOTOMETRIC)) & _RAW_PHOTOMETRIC:
            return f"it holds colour-filter-array sensor data{by}"
        if set(ifd.values(_COMPRESSION)) & _RAW_COMPRESSION:
            return f"it uses a compression only RAW files use{by}"
        if _RAW_TAGS & ifd.entries.keys():
            return f"it has a RAW writer's private tags{by}"
    first = ifds[0]
    subfile = first.values(_NEW_SUBFILE_TYPE)
    if subfile and subfile[0] & 1 and any(ifd.pixels() > first.pixels() for ifd in ifds[1:]):
        return f"its first image is a small preview of a larger one{by}"
    return None


# ------------------------------------------------------------------------------------------------- writing

def _metadata_ifd(exif: bytes | None, xmp: bytes | None, order: str, offset: int) -> bytes:
    """The descriptive IFD0 tags of ``exif`` (storage tags left out), its Exif and GPS sub-IFDs and the XMP
    packet, serialised by Pillow as one directory that starts at file ``offset`` in byte ``order`` (the block's
    own: :func:`encode_tiff` writes the file in it); ``b""`` when there is nothing to write."""
    block = Image.Exif()
    if exif:
        block.load(exif)
    block.endian = order
    for tag in [tag for tag in block if tag in _STORAGE_TAGS and tag not in (0x8769, 0x8825)]:
        del block[tag]
    if xmp:
        block[700] = xmp
    if not len(block):
        return b""
    return block.tobytes(offset)[len(b"Exif\x00\x00") + 8:]


def _with_metadata(tiff: bytes, exif: bytes | None, xmp: bytes | None) -> bytes:
    """``tiff`` (one image, classic TIFF) with EXIF and XMP added to its IFD0: the metadata directory and a
    merged IFD0 are appended, and the header points at the merged one (the first IFD0 stays behind, unused)."""
    header = _header(tiff)
    if header is None or header[1]:
        log.warning("a BigTIFF output keeps no EXIF (the photo is larger than 4 GB uncompressed)")
        return tiff
    order, _big, first = header
    image = _Ifd(tiff, first, order, False)
    start = len(tiff) + len(tiff) % 2
    meta_bytes = _metadata_ifd(exif, xmp, order, start)
    if not meta_bytes:
        return tiff
    meta = _Ifd(b"\x00" * start + meta_bytes, start, order, False)
    entries = {**image.raw, **meta.raw}  # the metadata's own Software, DateTime... replace the writer's
    merged_at = start + len(meta_bytes) + len(meta_bytes) % 2
    merged = (struct.pack(order + "H", len(entries)) + b"".join(entries[tag] for tag in sorted(entries))
              + struct.pack(order + "L", image.next))
    out = bytearray(tiff)
    out += b"\x00" * (start - len(tiff)) + meta_bytes + b"\x00" * (merged_at - start - len(meta_bytes)) + merged
    struct.pack_into(order + "L", out, 4, merged_at)
    return bytes(out)


def encode_tiff(pixels: np.ndarray, *, icc: bytes | None = None, exif: bytes | None = None,
                xmp: bytes | None = None, dpi: tuple[float, float] | None = None) -> bytes:
    """(H, W, C) ``uint8`` or ``uint16`` pixels (C = 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA; alpha unassociated) as
    a deflate-compressed TIFF with its colour profile, resolution, XMP and every EXIF tag (IFD0's descriptive tags,
    the Exif and GPS sub-IFDs)."""
    import tifffile

    order = "<"
    if exif and exif.removeprefix(b"Exif\x00\x00")[:2] == b"MM":
        order = ">"  # keep a big-endian camera block as it is
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, pixels[:, :, 0] if pixels.shape[2] == 1 else pixels, byteorder=order,
                     photometric="minisblack" if pixels.shape[2] <= 2 else "rgb",
                     extrasamples=("unassalpha",) if pixels.shape[2] in (2, 4) else None, iccprofile=icc,
                     resolution=(dpi[0], dpi[1]) if dpi else None, resolutionunit="INCH" if dpi else None,
                     compression="zlib", predictor=True, metadata=None, software=False)
    tiff = buffer.getvalue()
    return _with_metadata(tiff, exif, xmp) if exif or xmp else tiff
