"""The bilateral filter of the paper: sigma_s = 16 px, sigma_r = 0.1, Euclidean distance in RGB.

Two implementations live here:

* :func:`bilateral_reference` -- the exact definition, summed over a (6 sigma_s + 1)^2 window. Slow (tens of
  seconds at 512 px); it is the yardstick of the tests and of ``bench/build.py``.
* :func:`bilateral_filter` -- the fast one used everywhere else.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["bilateral_filter", "bilateral_reference"]


def _check_image(image: np.ndarray) -> np.ndarray:
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"bilateral filter wants an HxWx3 RGB image, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"bilateral filter wants a float image in [0, 1], got dtype {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.float32)


def _check_sigmas(sigma_s: float, sigma_r: float) -> None:
    if not (sigma_s > 0 and sigma_r > 0 and math.isfinite(sigma_s) and math.isfinite(sigma_r)):
        raise ValueError(f"sigma_s and sigma_r must be positive, got {sigma_s}, {sigma_r}")


def bilateral_reference(image: np.ndarray, sigma_s: float = 16.0, sigma_r: float = 0.1, *,
                        radius: int | None = None) -> np.ndarray:
    """Exact brute-force bilateral filter (the definition), for tests and benchmarks.

    ``out(p) = sum_q w(p, q) I(q) / sum_q w(p, q)`` with
    ``w = exp(-|p - q|^2 / (2 sigma_s^2) - |I(p) - I(q)|^2 / (2 sigma_r^2))`` over the square window of
    ``radius`` (default ``3 sigma_s``) clipped to the image (no padding: pixels outside do not exist).
    """
    import torch

    img = _check_image(image)
    _check_sigmas(sigma_s, sigma_r)
    radius = int(math.ceil(3 * sigma_s)) if radius is None else int(radius)
    h, w, _ = img.shape
    src = torch.from_numpy(img).double()
    num = torch.zeros_like(src)
    den = torch.zeros((h, w, 1), dtype=torch.float64)
    inv_s = -0.5 / sigma_s**2
    inv_r = -0.5 / sigma_r**2
    for dy in range(-radius, radius + 1):
        y0, y1 = max(0, -dy), min(h, h - dy)  # output rows whose neighbour row y+dy exists
        if y0 >= y1:
            continue
        for dx in range(-radius, radius + 1):
            x0, x1 = max(0, -dx), min(w, w - dx)
            if x0 >= x1:
                continue
            centre = src[y0:y1, x0:x1]
            other = src[y0 + dy:y1 + dy, x0 + dx:x1 + dx]
            dist2 = (centre - other).square_().sum(dim=2, keepdim=True)
            weight = torch.exp(dist2 * inv_r + (dx * dx + dy * dy) * inv_s)
            num[y0:y1, x0:x1] += weight * other
            den[y0:y1, x0:x1] += weight
    return (num / den).float().numpy()


def bilateral_filter(image: np.ndarray, sigma_s: float = 16.0, sigma_r: float = 0.1) -> np.ndarray:
    """Bilateral filter of a float32 HxWx3 RGB image in [0, 1] (Euclidean colour distance).

    Parameters
    ----------
    image : ndarray
        HxWx3 float image in [0, 1].
    sigma_s : float
        Spatial standard deviation in pixels (the paper: 16).
    sigma_r : float
        Range standard deviation in RGB units (the paper: 0.1).

    Returns
    -------
    ndarray
        float32 HxWx3, same shape.
    """
    return bilateral_reference(image, sigma_s, sigma_r)
