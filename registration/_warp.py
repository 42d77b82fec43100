"""Warp the full-resolution studio shot into the flash frame, with its valid-data mask, in one Resample call."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ._config import _interpolator

__all__ = ["warp_studio"]


def warp_studio(studio_rgb: np.ndarray, transform: sitk.Transform, flash_shape: tuple[int, ...], *,
                interpolator: str = "linear") -> tuple[np.ndarray, np.ndarray]:
    """Resample the studio shot on the flash shot's pixel grid.

    Parameters
    ----------
    studio_rgb : ndarray, shape (H', W', 3), uint8 or uint16
    transform : sitk.Transform
        Flash point to studio point, full-resolution pixels (what :func:`estimate_affine` returns).
    flash_shape : tuple
        ``(H, W, ...)`` of the flash shot: the output grid.
    interpolator : {"linear", "bspline", "lanczos"}

    Returns
    -------
    warped : ndarray, shape (H, W, 3)
        Same dtype as ``studio_rgb``; 0 where the studio shot has no data.
    valid : ndarray, shape (H, W), uint8
        255 where the warped studio shot has data, 0 elsewhere.

    Notes
    -----
    A fourth channel of ones travels with RGB through the same ``sitk.Resample`` call (a vector image), so the
    mask is exactly the set of pixels the resampler filled. The output is float and rounded here: SimpleITK
    truncates when it casts interpolated values back to an integer type, which would darken by half a level.
    """
    if studio_rgb.ndim != 3 or studio_rgb.shape[2] != 3 or studio_rgb.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"studio_rgb must be (H, W, 3) uint8 or uint16, got {studio_rgb.shape} {studio_rgb.dtype}")
    h, w = int(flash_shape[0]), int(flash_shape[1])
    top = float(np.iinfo(studio_rgb.dtype).max)
    rgba = np.empty((*studio_rgb.shape[:2], 4), dtype=studio_rgb.dtype)
    rgba[..., :3] = studio_rgb
    rgba[..., 3] = int(top)
    moving = sitk.GetImageFromArray(rgba, isVector=True)  # spacing 1, origin (0, 0): full-resolution pixels
    del rgba
    out = sitk.Resample(moving, [w, h], transform, _interpolator(interpolator), (0.0, 0.0), (1.0, 1.0),
                        (1.0, 0.0, 0.0, 1.0), 0.0, sitk.sitkVectorFloat32)
    del moving
    values = sitk.GetArrayViewFromImage(out)
    valid = np.where(values[..., 3] > 0.5 * top, np.uint8(255), np.uint8(0))
    warped = np.empty((h, w, 3), dtype=studio_rgb.dtype)
    colour = values[..., :3]
    if interpolator != "linear":  # windowed-sinc and B-spline kernels overshoot at edges
        colour = np.clip(colour, 0.0, top)
    np.add(colour, 0.5, out=warped, casting="unsafe")  # round half up (values are >= 0)
    warped[valid == 0] = 0
    return warped, valid
