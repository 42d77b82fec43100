"""Pixel measures that registration, the pose check and the eye rule compare across two lightings (defined
once): Rec. 601 luminance, local contrast normalisation, gradient magnitude."""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["gradient_magnitude", "local_contrast", "luminance"]

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
#: Variance floor of the normalisation (luminance in [0, 1]): flat, noisy areas stay flat instead of turning
#: their sensor noise into full-contrast texture (std 0.063, about 16 levels of 255).
_EPS = 4e-3


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Rec. 601 luminance in [0, 1] as float32, for uint8, uint16 or float RGB."""
    scale = 1.0 / (65535.0 if rgb.dtype == np.uint16 else 255.0 if rgb.dtype == np.uint8 else 1.0)
    return (rgb.astype(np.float32) @ _LUMA) * np.float32(scale)


def local_contrast(lum: np.ndarray, sigma_px: float, eps: float = _EPS) -> np.ndarray:
    """``(I - G*I) / sqrt(G*(I - G*I)^2 + eps)`` with a Gaussian ``G`` of ``sigma_px``: unit local contrast."""
    mean = cv2.GaussianBlur(lum, (0, 0), sigma_px)
    detail = lum - mean
    variance = cv2.GaussianBlur(detail * detail, (0, 0), sigma_px)
    return (detail / np.sqrt(variance + np.float32(eps))).astype(np.float32)


def gradient_magnitude(image: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude of a float32 image: edges stay edges where a flash inverts the contrast (a
    highlight on skin), so registration polishes, the face check and the overlays compare them across lights."""
    return cv2.magnitude(cv2.Sobel(image, cv2.CV_32F, 1, 0), cv2.Sobel(image, cv2.CV_32F, 0, 1))
