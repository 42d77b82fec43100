"""Pieces the camera backends share: EXIF flash lookup and timing."""

from __future__ import annotations

import logging
import time
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["flash_fired_of", "now"]


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
