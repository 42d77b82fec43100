"""The pieces every contact sheet and check picture is drawn from (defined once): panels fitted whole into
cells of one size, whatever their aspect ratio, and text wrapped in full (never cut), in label strips with a
status bar, on the sheets' dark background."""

from __future__ import annotations

from typing import Final

import cv2
import numpy as np

from .faces import to_uint8
from .pixels import gradient_magnitude, luminance

__all__ = ["BACKGROUND", "LABEL_HEIGHT", "MAX_CELL_ASPECT", "MIN_CELL_ASPECT", "cell_width", "edge_strength", "fit_box",
           "fit_into", "label_strip", "wrap_text"]

LABEL_HEIGHT: Final = 26  #: pixels: the height of a one-line label strip
BACKGROUND: Final = (32, 32, 32)  #: RGB of the sheets' background and label strips
FONT: Final = cv2.FONT_HERSHEY_SIMPLEX
_INK: Final = (235, 235, 235)
_UNKNOWN: Final = (150, 150, 150)
_TEXT_LEFT: Final = 16  # pixels left of the text: the status bar and a gap
#: Cell aspect ratios (width / height) a sheet adapts to; panels beyond them are fitted whole inside the cell.
MIN_CELL_ASPECT: Final = 0.5
MAX_CELL_ASPECT: Final = 2.0


def cell_width(height: int, aspects: list[float] | tuple[float, ...]) -> int:
    """The width of a sheet's cells of ``height`` pixels: wide enough for the widest picture (width / height in
    ``aspects``; a 3:4 portrait's when empty), within :data:`MIN_CELL_ASPECT`-:data:`MAX_CELL_ASPECT`."""
    aspect = max(aspects) if len(aspects) else 0.75
    return max(1, round(height * min(max(aspect, MIN_CELL_ASPECT), MAX_CELL_ASPECT)))


def fit_box(size: tuple[int, int], cell: tuple[int, int]) -> tuple[int, int, int, int]:
    """Where a picture of ``size`` (width, height) is drawn in a ``cell`` (width, height): scaled to fit whole,
    aspect ratio kept, centred.

    Returns
    -------
    (x, y, width, height) : tuple of int
        In cell pixels; always inside the cell, at least 1 x 1.
    """
    (w, h), (cw, ch) = size, cell
    if min(w, h, cw, ch) < 1:
        raise ValueError(f"sizes must be at least 1 x 1, got picture {size} and cell {cell}")
    scale = min(cw / w, ch / h)
    fw, fh = min(cw, max(1, round(w * scale))), min(ch, max(1, round(h * scale)))
    return (cw - fw) // 2, (ch - fh) // 2, fw, fh


def fit_into(image: np.ndarray, width: int, height: int, *,
             background: tuple[int, int, int] = BACKGROUND) -> np.ndarray:
    """``image`` as uint8 RGB, fitted whole (:func:`fit_box`) into a ``height`` x ``width`` cell of
    ``background`` (the sheets' by default): nothing is cut, whatever the aspect ratios."""
    x, y, w, h = fit_box((image.shape[1], image.shape[0]), (width, height))
    cell = np.full((height, width, 3), background, np.uint8)
    interpolation = cv2.INTER_AREA if w <= image.shape[1] else cv2.INTER_LINEAR
    cell[y:y + h, x:x + w] = cv2.resize(to_uint8(image), (w, h), interpolation=interpolation)
    return cell


def _text_width(text: str, font_scale: float) -> int:
    return cv2.getTextSize(text, FONT, font_scale, 1)[0][0]


def wrap_text(text: str, width: int, *, font_scale: float = 0.5) -> list[str]:
    """``text`` broken into lines that each fit ``width`` pixels in the sheets' font: at spaces, and inside a
    word (a path, a long name) only where the word alone is wider than a line. No character is dropped:
    ``"".join`` of the lines equals ``text`` with the spaces at the breaks left out."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}" if line else word
        if _text_width(candidate, font_scale) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        while len(word) > 1 and _text_width(word, font_scale) > width:  # a word wider than a line: cut it
            cut = 1
            while cut < len(word) - 1 and _text_width(word[:cut + 1], font_scale) <= width:
                cut += 1
            lines.append(word[:cut])
            word = word[cut:]
        line = word
    if line or not lines:
        lines.append(line)
    return lines


def label_strip(width: int, text: str, colour: tuple[int, int, int] | None, *, font_scale: float = 0.5,
                background: tuple[int, int, int] = BACKGROUND) -> np.ndarray:
    """An RGB strip ``width`` pixels wide: a status bar of ``colour`` (grey when None) on the left, then ``text``
    in full, wrapped over as many lines as it needs (:data:`LABEL_HEIGHT` high for one line, taller for more).
    """
    lines = wrap_text(text, max(1, width - _TEXT_LEFT - 4), font_scale=font_scale)
    pitch = max(12, round(40 * font_scale))
    height = LABEL_HEIGHT + pitch * (len(lines) - 1)
    strip = np.full((height, width, 3), background, np.uint8)
    cv2.rectangle(strip, (0, 0), (8, height - 1), colour or _UNKNOWN, thickness=-1)
    for i, line in enumerate(lines):
        cv2.putText(strip, line, (_TEXT_LEFT, LABEL_HEIGHT - 8 + i * pitch), FONT, font_scale, _INK, 1,
                    cv2.LINE_AA)
    return strip


def edge_strength(rgb: np.ndarray) -> np.ndarray:
    """Edges of an RGB picture for the overlays that show two shots' alignment: gradient magnitude of the
    lightly smoothed luminance, scaled so its 98th percentile is 1, clipped to [0, 1]: (H, W) float32."""
    magnitude = gradient_magnitude(cv2.GaussianBlur(luminance(rgb), (0, 0), 1.0))
    return np.clip(magnitude / (float(np.percentile(magnitude, 98)) or 1.0), 0.0, 1.0)
