"""Image reading and writing, defined once for every stage.

Phone photos store pixels in sensor order plus an EXIF ``Orientation`` tag. :func:`read_image` applies that
tag exactly once, at read time, so every later stage sees the picture upright and never looks at EXIF again.
Arrays are always RGB (not OpenCV's BGR), ``uint8``, or ``uint16`` for 16-bit PNG and TIFF.

Files are decoded by content, not by name: JPEG, PNG, TIFF, HEIF/HEIC (``pillow-heif``), WebP and AVIF (a HEIC
named ``.jpg`` reads as HEIC); a file that is no photo this toolkit reads (a camera RAW, a PDF, a video) is
refused with what it is and what to do. A file cut short is refused as truncated, including a JPEG cut mid-scan
that still ends in its end marker (which libjpeg only warns about, see :mod:`acquisition._jpeg`). The size is
checked on the header, before any pixel is decoded: above :func:`max_image_pixels` (500 MP unless
``DEEPFLASH_MAX_IMAGE_PIXELS`` says otherwise) the message says the image is too large and how to raise the
limit.

:func:`read_photo` reads the same pixels together with what a faithful output must keep (ICC profile, EXIF,
XMP, alpha, greyscale, bit depth, JPEG quality and chroma subsampling); :func:`write_photo` writes a result
back with all of it.
"""

from ._decode import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    MAX_PIXELS_ENV,
    Photo,
    apply_orientation,
    exif_orientation,
    image_size,
    max_image_pixels,
    megapixels,
    memory_needed,
    memory_words,
    parse_pixel_count,
    raise_limit_hint,
    read_image,
    read_photo,
)
from ._encode import encode_image, encode_photo, upright_exif, write_image, write_photo

__all__ = ["DEFAULT_MAX_PIXELS", "IMAGE_EXTENSIONS", "MAX_PIXELS_ENV", "Photo", "apply_orientation",
           "encode_image", "encode_photo", "exif_orientation", "image_size", "max_image_pixels", "megapixels",
           "memory_needed", "memory_words", "parse_pixel_count", "raise_limit_hint", "read_image",
           "read_photo", "upright_exif", "write_image", "write_photo"]
