"""Warp the full-resolution studio shot into the flash frame, with its valid-data mask (OpenCV, one pass)."""

from __future__ import annotations

from typing import Final

import cv2
import numpy as np
import SimpleITK as sitk

from ._transform import matrix_of

__all__ = ["warp_studio"]

_INTERPOLATORS: Final = {"linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC, "lanczos": cv2.INTER_LANCZOS4}


def warp_studio(studio_rgb: np.ndarray, transform: sitk.Transform, flash_shape: tuple[int, ...], *,
                interpolator: str = "linear") -> tuple[np.ndarray, np.ndarray]:
    """Resample the studio shot on the flash shot's pixel grid.

    Parameters
    ----------
    studio_rgb : ndarray, shape (H', W', 3), uint8 or uint16
    transform : sitk.Transform
        Flash point to studio point, full-resolution pixels (what :func:`estimate_affine` returns); affine.
    flash_shape : tuple
        ``(H, W, ...)`` of the flash shot: the output grid.
    interpolator : {"linear", "cubic", "lanczos"}

    Returns
    -------
    warped : ndarray, shape (H, W, 3)
        Same dtype as ``studio_rgb``; 0 where the studio shot has no data.
    valid : ndarray, shape (H, W), uint8
        255 where the flash pixel's centre maps inside the studio shot ([-0.5, W' - 0.5) per axis, as ITK), else 0.

    Notes
    -----
    ``cv2.warpAffine`` with ``WARP_INVERSE_MAP`` samples the studio shot at ``M x + t`` for every flash pixel
    ``x``: the transform's own direction, no inversion. It is about 8x faster than SimpleITK's ``Resample`` of
    the same 12 MP image on one core; its fixed-point weights (1/32 px positions, rounded to the nearest
    level) differ from an exact bilinear interpolation by at most one level. Pixels within half a pixel outside
    the studio shot take its edge values, as in ITK's resampler.
    """
    if studio_rgb.ndim != 3 or studio_rgb.shape[2] != 3 or studio_rgb.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"studio_rgb must be (H, W, 3) uint8 or uint16, got {studio_rgb.shape} {studio_rgb.dtype}")
    if interpolator not in _INTERPOLATORS:
        raise ValueError(f"interpolator must be one of {', '.join(_INTERPOLATORS)}, not {interpolator!r}")
    h, w = int(flash_shape[0]), int(flash_shape[1])
    matrix, translation = matrix_of(transform)
    forward = np.hstack([matrix, translation[:, None]])
    warped = cv2.warpAffine(studio_rgb, forward, (w, h), flags=_INTERPOLATORS[interpolator] | cv2.WARP_INVERSE_MAP,
                            borderMode=cv2.BORDER_REPLICATE)
    sh, sw = studio_rgb.shape[:2]
    valid = np.zeros((h, w), dtype=np.uint8)
    xs = np.arange(w, dtype=np.float64)
    for row in range(0, h, 512):  # row blocks: two float64 planes of a 12 MP frame would take 200 MB
        ys = np.arange(row, min(h, row + 512), dtype=np.float64)[:, None]
        px = matrix[0, 0] * xs + matrix[0, 1] * ys + translation[0]
        py = matrix[1, 0] * xs + matrix[1, 1] * ys + translation[1]
        inside = (px >= -0.5) & (px < sw - 0.5) & (py >= -0.5) & (py < sh - 0.5)
        valid[row:row + len(ys)][inside] = 255
    warped[valid == 0] = 0
    return warped, valid
