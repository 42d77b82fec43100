"""Pillow set up once for every reader of the toolkit: HEIF/HEIC opener registered, Pillow's own size cap off.

Imported by :mod:`acquisition.imageio` and :mod:`acquisition.exif` before they open any file.

- Pillow *warns* about damaged metadata ("Corrupt EXIF data", "Image appears to be a malformed MPO file"), on
  reading and again on writing the same block back: :func:`pillow_warnings_logged` turns those into log records
  (``-v`` shows them), so ``-q`` stays quiet and a warning never reaches the terminal as a Python traceback line.
- ``pillow-heif`` registers HEIF/HEIC (iPhones and many Android phones save it by default) as a Pillow format;
  libheif applies the container's rotation and mirroring and resets the EXIF orientation to 1, so the pixels
  come out upright exactly once.
- Pillow warns above ``Image.MAX_IMAGE_PIXELS`` (about 89 MP) and refuses twice that, which would turn a 200 MP
  phone photo into an error that names no fix. The toolkit checks its own, documented limit on the header
  instead (:func:`acquisition.imageio.max_image_pixels`, ``DEEPFLASH_MAX_IMAGE_PIXELS``), before any pixel is
  decoded, so Pillow's cap is switched off here.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator

from PIL import Image

__all__ = ["HEIF_SUPPORTED", "Image", "pillow_warnings_logged"]

log = logging.getLogger("acquisition.imageio")

Image.MAX_IMAGE_PIXELS = None

try:
    import pillow_heif
except ImportError:  # pragma: no cover - a declared dependency; the reader then says how to install it
    HEIF_SUPPORTED = False
else:
    pillow_heif.register_heif_opener()
    HEIF_SUPPORTED = True


@contextlib.contextmanager
def pillow_warnings_logged() -> Iterator[None]:
    """Log the warnings raised inside the block (Pillow's, about damaged metadata) at debug level instead of
    printing them; every read and write of an image in the toolkit runs inside one."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for warning in caught:
        log.debug("Pillow: %s: %s", warning.category.__name__, warning.message)
