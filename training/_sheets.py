"""Pictures of the training stage: image panels side by side under column labels (samples, before-after)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from acquisition.drawing import fit_into, wrap_text

__all__ = ["labelled_grid"]

_GAP = 4
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_PAPER = (255, 255, 255)
_INK = (20, 20, 20)
_CAPTION_INK = (110, 110, 110)


def _fitting_scale(texts: Sequence[str], width: int, height: int) -> float:
    """One font scale for all ``texts``: as large as the strip's height allows, shrunk until each fits ``width``."""
    scale = height / 36
    while scale > 0.25 and any(cv2.getTextSize(t, _FONT, scale, 1)[0][0] > width - 4 for t in texts):
        scale *= 0.9
    return scale


def _text_strip(width: int, height: int, text: str, scale: float, *, centred: bool = True,
                ink: tuple[int, int, int] = _INK) -> np.ndarray:
    """``text`` on a white strip, centred (column names) or from the left (row captions); a text too long for
    one line even at the smallest scale is wrapped in full, the strip growing by a line's ``height`` each."""
    lines = wrap_text(text, width - 4, font_scale=scale)
    strip = np.full((height * len(lines), width, 3), _PAPER, np.uint8)
    for i, line in enumerate(lines):
        (tw, th), baseline = cv2.getTextSize(line, _FONT, scale, 1)
        y = i * height + (height - th - baseline) // 2 + th  # the baseline, so that descenders stay on the strip
        x = max(2, (width - tw) // 2) if centred else 4
        cv2.putText(strip, line, (x, y), _FONT, scale, ink, 1, cv2.LINE_AA)
    return strip


def labelled_grid(rows: Sequence[Sequence[np.ndarray]], columns: Sequence[str], *,
                  row_labels: Sequence[str] | None = None) -> np.ndarray:
    """Panels in a grid on white, the column names on top and an optional label above each row.

    Parameters
    ----------
    rows : sequence of sequences of ndarray, each (h, w, 3) uint8
        One sequence of panels per row, one panel per column. Each is fitted whole, centred, into its cell: as
        wide as the column's widest panel and as high as the row's highest (panels of other aspect ratios are
        never cut).
    columns : sequence of str
        The name over each column.
    row_labels : sequence of str, optional
        A caption above each row (e.g. the pose it shows).

    Returns
    -------
    ndarray, shape (H, W, 3), uint8
    """
    if not rows or any(len(row) != len(columns) for row in rows):
        raise ValueError(f"every row needs one panel per column ({len(columns)})")
    widths = [max(row[i].shape[1] for row in rows) for i in range(len(columns))]
    rows = [[fit_into(panel, width, max(p.shape[0] for p in row), background=_PAPER)
             for panel, width in zip(row, widths, strict=True)] for row in rows]
    label_height = int(np.clip(min(widths) // 8, 14, 28))

    def line(panels: Sequence[np.ndarray]) -> np.ndarray:
        gap = np.full((panels[0].shape[0], _GAP, 3), _PAPER, np.uint8)
        parts: list[np.ndarray] = []
        for panel in panels:
            parts += [panel, gap]
        return np.concatenate(parts[:-1], axis=1)

    scale = _fitting_scale(columns, min(widths), label_height)
    names = [_text_strip(w, label_height, name, scale) for w, name in zip(widths, columns, strict=True)]
    names = [np.vstack([n, np.full((max(m.shape[0] for m in names) - n.shape[0], n.shape[1], 3), _PAPER, np.uint8)])
             for n in names]  # a long name wraps: every column's strip as high as the highest
    blocks = [line(names),
              np.full((_GAP, sum(widths) + _GAP * (len(widths) - 1), 3), _PAPER, np.uint8)]
    for index, row in enumerate(rows):
        if row_labels is not None:
            width = blocks[0].shape[1]
            caption_height = max(12, label_height * 3 // 4)
            blocks.append(_text_strip(width, caption_height, row_labels[index],
                                      _fitting_scale([row_labels[index]], width, caption_height), centred=False,
                                      ink=_CAPTION_INK))
        blocks.append(line(row))
        blocks.append(np.full((2 * _GAP, blocks[0].shape[1], 3), _PAPER, np.uint8))
    return np.concatenate(blocks[:-1], axis=0)
