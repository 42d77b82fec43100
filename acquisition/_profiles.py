"""Colour profiles that fit the pixels they travel with, for :mod:`acquisition.imageio` (private).

An ICC profile describes one colour space (its header says which: ``RGB``, ``GRAY``, ``CMYK``, ``Lab``...,
ICC.1:2022 section 7.2.6). A profile copied beside pixels of another space is wrong twice: viewers either ignore
it or misread the pixels through it. So the readers turn CMYK into RGB through the file's own CMYK profile (the
printer's inks as that profile defines them, not a naive ``255 - C - K``) and hand on sRGB; and the writers,
where a format cannot store grey, turn grey into RGB through the grey profile. Conversions run through Little
CMS (Pillow's ``ImageCms``), perceptual intent; a profile lcms cannot use is left out, with a log line.
"""

from __future__ import annotations

import io
import logging
from functools import cache
from typing import Final

import numpy as np

from ._pillow import Image

__all__ = ["cmyk_to_rgb", "fit_profile", "profile_space", "srgb_profile"]

log = logging.getLogger("acquisition.imageio")

_SPACES: Final = {1: b"GRAY", 2: b"GRAY", 3: b"RGB ", 4: b"RGB "}


def profile_space(icc: bytes | None) -> bytes | None:
    """The colour space signature of a profile's header (``b"RGB "``, ``b"GRAY"``, ``b"CMYK"``...), or None."""
    return icc[16:20] if icc and len(icc) >= 128 else None


@cache
def srgb_profile() -> bytes:
    """lcms's built-in sRGB profile, as bytes (what converted pixels are tagged with)."""
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _to_srgb(image: Image.Image, icc: bytes) -> Image.Image:
    from PIL import ImageCms

    source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    target = ImageCms.ImageCmsProfile(io.BytesIO(srgb_profile()))
    return ImageCms.profileToProfile(image, source, target, outputMode="RGB")


def cmyk_to_rgb(im: Image.Image, icc: bytes | None) -> tuple[np.ndarray, bytes | None]:
    """A CMYK image as (H, W, 3) ``uint8`` RGB, and the profile that now describes it.

    Through ``icc`` to sRGB when it is a CMYK profile lcms can use (returns the sRGB profile); otherwise
    Pillow's plain conversion, untagged (None).
    """
    if profile_space(icc) == b"CMYK":
        try:
            return np.asarray(_to_srgb(im, icc)), srgb_profile()  # type: ignore[arg-type]
        except Exception as exc:  # lcms refuses a damaged or hand-edited profile: PyCMSError, OSError, ValueError
            log.info("the CMYK profile cannot be used (%s): plain CMYK to RGB, no profile", exc)
    return np.asarray(im.convert("RGB")), None


def fit_profile(pixels: np.ndarray, icc: bytes | None) -> tuple[np.ndarray, bytes | None]:
    """``pixels`` (H, W, C) and a profile that describes them: ``icc`` when its space is theirs; for grey pixels
    written as RGB(A) with a grey profile, the pixels turned to sRGB through it (8 bits) and the sRGB profile;
    otherwise no profile (a profile of another space would be misread)."""
    space = profile_space(icc)
    if icc is None or space == _SPACES[pixels.shape[2]]:
        return pixels, icc
    if space == b"GRAY" and pixels.shape[2] >= 3 and pixels.dtype == np.uint8:
        try:
            rgb = np.asarray(_to_srgb(Image.fromarray(np.ascontiguousarray(pixels[:, :, 0]), mode="L"), icc))
        except Exception as exc:  # as above
            log.info("the grey profile cannot be used (%s): left out", exc)
            return pixels, None
        else:
            if pixels.shape[2] == 4:
                rgb = np.concatenate([rgb, pixels[:, :, 3:]], axis=2)
            return rgb, srgb_profile()
    log.info("the colour profile describes %s, not the %s pixels written: left out",
             (space or b"?").decode("ascii", "replace").strip(), "grey" if pixels.shape[2] <= 2 else "RGB")
    return pixels, None
