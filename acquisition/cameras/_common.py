"""Pieces the camera backends share: EXIF flash lookup, timing, and whether a copied file is whole."""

from __future__ import annotations

import logging
import time
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["flash_fired_of", "is_whole", "now"]


def now() -> float:
    """Wall-clock seconds (time.time): shot timestamps go into meta.json as dates."""
    return time.time()


def flash_fired_of(path: Path) -> bool | None:
    """What the file's EXIF ``Flash`` tag says (None when it has none or cannot be read)."""
    from ..errors import AcquisitionError
    from ..exif import read_flash_fired

    try:
        return read_flash_fired(path)
    except AcquisitionError as exc:
        log.debug("no EXIF flash information in %s: %s", path, exc)
        return None


def is_whole(data: bytes) -> bool | None:
    """Whether ``data`` holds a whole picture file, from its structure alone (no decoding): a JPEG's last scan
    ends in its EOI marker, a HEIF/AVIF's top-level boxes add up to the file's length, a PNG has its IEND
    chunk. None for a format this cannot tell (a RAW).

    A camera or a phone writes a picture over a while; a copy taken too early is cut short. Its size alone does
    not say so: a slow phone's file may keep the same size for a second between two writes.
    """
    if data.startswith(b"\xff\xd8"):
        from .._jpeg import jpeg_layout

        layout = jpeg_layout(data)
        return layout.end is not None and (len(layout.scans) <= 1 or layout.complete_coverage())
    if data[4:8] == b"ftyp":
        return _boxes_add_up(data)
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return data.rstrip(b"\x00").endswith(b"IEND\xaeB`\x82")
    return None


def _boxes_add_up(data: bytes) -> bool:
    """ISO base media file format (HEIF, AVIF): every top-level box lies inside the file and they fill it."""
    pos = 0
    while pos < len(data):
        if pos + 8 > len(data):
            return False
        size = int.from_bytes(data[pos:pos + 4], "big")
        if size == 1:
            if pos + 16 > len(data):
                return False
            size = int.from_bytes(data[pos + 8:pos + 16], "big")
        elif size == 0:  # the last box runs to the end of the file
            return True
        if size < 8 or pos + size > len(data):
            return False
        pos += size
    return True
