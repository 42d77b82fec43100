"""Synthetic pairs with a known transform: a portrait relit like a flash shot, and a moved copy of it.

Tests and ``bench/register.py`` use these to measure accuracy against ground truth. The relighting is meant to
defeat intensity-based metrics the way a real flash does: a non-monotonic tone change (highlights fold back),
a strong falloff away from the lens axis, a colour cast and sensor noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["PerturbationRanges", "perturb", "random_affine", "relight_flash"]


@dataclass(frozen=True)
class PerturbationRanges:
    """Uniform ranges of the random affine: rotation (degrees), scale change, shear, shift (fraction of width)."""

    rotation_deg: float = 10.0
    scale: float = 0.10
    shear: float = 0.05
    shift_fraction: float = 0.05


def random_affine(rng: np.random.Generator, width: int, height: int,
                  ranges: PerturbationRanges = PerturbationRanges()) -> dict:
    """A flash-to-studio affine about the image centre, as ``{"matrix", "translation"}`` (meta.json style)."""
    angle = math.radians(rng.uniform(-ranges.rotation_deg, ranges.rotation_deg))
    scale = 1.0 + rng.uniform(-ranges.scale, ranges.scale)
    aspect = 1.0 + rng.uniform(-ranges.scale, ranges.scale) / 4
    shear = rng.uniform(-ranges.shear, ranges.shear)
    shift = rng.uniform(-ranges.shift_fraction, ranges.shift_fraction, size=2) * width
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    matrix = rotation @ np.array([[scale * aspect, shear * scale], [0.0, scale]])
    centre = np.array([(width - 1) / 2, (height - 1) / 2])
    translation = centre + shift - matrix @ centre
    return {"matrix": matrix.tolist(), "translation": translation.tolist()}


def perturb(rgb: np.ndarray, ground_truth: dict) -> np.ndarray:
    """The studio shot that ``ground_truth`` maps the flash shot ``rgb`` onto: ``studio(M x + t) = rgb(x)``.

    Borders are mirrored, as a real wider scene would continue, so no black edge helps the metric.
    """
    matrix = np.asarray(ground_truth["matrix"], dtype=np.float64)
    translation = np.asarray(ground_truth["translation"], dtype=np.float64)
    forward = np.hstack([matrix, translation[:, None]])
    h, w = rgb.shape[:2]
    return cv2.warpAffine(rgb, forward, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)


def relight_flash(rgb: np.ndarray, *, seed: int = 0, centre: tuple[float, float] | None = None,
                  noise: float = 0.02) -> np.ndarray:
    """A flash-like relighting of ``rgb`` (uint8 in, uint8 out).

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
    seed : int
        Noise and colour-cast seed.
    centre : (x, y), optional
        Where the flash is brightest (default: the image centre).
    noise : float
        Gaussian noise sigma, in [0, 1] intensity units.
    """
    rng = np.random.default_rng(seed)
    h, w = rgb.shape[:2]
    value = rgb.astype(np.float32) / 255.0
    # Non-monotonic tone curve: mid-tones brighten, highlights fold back down (specular flash on skin).
    folded = 0.5 - 0.45 * np.cos(np.pi * 1.6 * value)
    cx, cy = centre if centre is not None else ((w - 1) / 2, (h - 1) / 2)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    radius = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) / (0.75 * max(h, w))
    falloff = (1.35 - 0.9 * np.clip(radius, 0, 1.2) ** 2)[..., None]
    cast = np.array([1.08, 0.97, 0.82], dtype=np.float32) * rng.uniform(0.95, 1.05, 3).astype(np.float32)
    out = folded * falloff * cast + rng.normal(0.0, noise, size=value.shape).astype(np.float32)
    return (np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
