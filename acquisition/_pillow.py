"""Pillow set up once for every reader of the toolkit: HEIF/HEIC opener registered, Pillow's own size cap off.

Imported by :mod:`acquisition.imageio` and :mod:`acquisition.exif` before they open any file.

- ``pillow-heif`` registers HEIF/HEIC (iPhones and many Android phones save it by default) as a Pillow format;
  libheif applies the container's rotation and mirroring and resets the EXIF orientation to 1, so the pixels
  come out upright exactly once.
- Pillow warns above ``Image.MAX_IMAGE_PIXELS`` (about 89 MP) and refuses twice that, which would turn a 200 MP
  phone photo into an error that names no fix. The toolkit checks its own, documented limit on the header
  instead (:func:`acquisition.imageio.max_image_pixels`, ``DEEPFLASH_MAX_IMAGE_PIXELS``), before any pixel is
  decoded, so Pillow's cap is switched off here.
"""

from __future__ import annotations

from PIL import Image

__all__ = ["HEIF_SUPPORTED", "Image"]

Image.MAX_IMAGE_PIXELS = None

try:
    import pillow_heif
except ImportError:  # pragma: no cover - a declared dependency; the reader then says how to install it
    HEIF_SUPPORTED = False
else:
    pillow_heif.register_heif_opener()
    HEIF_SUPPORTED = True
