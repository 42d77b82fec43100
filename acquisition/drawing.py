"""The pieces every contact sheet and check picture is drawn from (defined once): panels scaled to a row's
height, and a label strip with a status bar, on the sheets' dark background."""

from __future__ import annotations

from typing import Final

import cv2
import numpy as np

from .faces import to_uint8
from .pixels import gradient_magnitude, luminance

__all__ = ["BACKGROUND", "LABEL_HEIGHT", "edge_strength", "fit_height", "label_strip"]

LABEL_HEIGHT: Final = 26  #: pixels
BACKGROUND: Final = (32, 32, 32)  #: RGB of the sheets' background and label strips
_UNKNOWN: Final = (150, 150, 150)


def fit_height(image: np.ndarray, height: int) -> np.ndarray:
    """``image`` as uint8, resized (area-averaged) to ``height`` pixels with its aspect ratio kept."""
    h, w = image.shape[:2]
    return cv2.resize(to_uint8(image), (max(1, round(w * height / h)), height), interpolation=cv2.INTER_AREA)


def label_strip(width: int, text: str, colour: tuple[int, int, int] | None, *, font_scale: float = 0.5,
                char_px: int = 9) -> np.ndarray:
    """A ``LABEL_HEIGHT`` x ``width`` RGB strip: a status bar of ``colour`` (grey when None) on the left, then
    ``text``, cut with "..." where about ``char_px`` pixels per character would overflow."""
    strip = np.full((LABEL_HEIGHT, width, 3), BACKGROUND, np.uint8)
    cv2.rectangle(strip, (0, 0), (8, LABEL_HEIGHT - 1), colour or _UNKNOWN, thickness=-1)
    limit = max(10, (width - 20) // char_px)
    if len(text) > limit:
        text = text[:limit - 3] + "..."
    cv2.putText(strip, text, (16, LABEL_HEIGHT - 8), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (235, 235, 235), 1,
                cv2.LINE_AA)
    return strip


def edge_strength(rgb: np.ndarray) -> np.ndarray:
    """Edges of an RGB picture for the overlays that show two shots' alignment: gradient magnitude of the
    lightly smoothed luminance, scaled so its 98th percentile is 1, clipped to [0, 1]: (H, W) float32."""
    magnitude = gradient_magnitude(cv2.GaussianBlur(luminance(rgb), (0, 0), 1.0))
    return np.clip(magnitude / (float(np.percentile(magnitude, 98)) or 1.0), 0.0, 1.0)
