"""Contact sheets of an aligned tree, so a person can check hundreds of registrations in minutes.

A header names the panels; one row per pair: flash | aligned studio | checkerboard of the two | edge
difference, under a label with subject/pose, status, the region that led the registration (face or frame)
and the reason (green ok, orange flagged, red failed; a flagged row's reason is also written under it in
full). A misregistration shows as broken lines at the checkerboard's tile borders and as doubled, coloured
edges in the overlay (flash edges magenta, studio edges green, white where they coincide); lighting
differences do not, since only edges are compared.
"""

from __future__ import annotations

import logging
import math
import textwrap
from pathlib import Path
from typing import Final

import cv2
import numpy as np

from acquisition.drawing import BACKGROUND, LABEL_HEIGHT, edge_strength, fit_height, label_strip
from acquisition.errors import PrepError
from acquisition.imageio import image_size, read_image, write_image
from acquisition.layout import REGISTER_AGAIN_HINT, discover_pairs
from acquisition.progress import ProgressCallback

from ._tree import CSV_NAME, read_registration_csv

log = logging.getLogger(__name__)

__all__ = ["write_contact_sheets"]

PANEL_HEIGHT: Final = 220
MESSAGE_HEIGHT: Final = 70
GAP: Final = 6
PANELS: Final = ("flash", "aligned studio", "checkerboard", "edge difference")
_STATUS_COLOURS: Final = {"ok": (40, 160, 60), "flagged": (230, 140, 0), "failed": (210, 40, 40)}


def _checkerboard(a: np.ndarray, b: np.ndarray, tiles: int = 8) -> np.ndarray:
    h, w = a.shape[:2]
    side = max(4, min(h, w) // tiles)
    yy, xx = np.mgrid[0:h, 0:w]
    pick = ((yy // side + xx // side) % 2 == 0)[..., None]
    return np.where(pick, a, b)


def _edge_overlay(flash: np.ndarray, studio: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    ef, es = edge_strength(flash), edge_strength(studio)
    if valid is not None:
        es = es * (valid > 0)
    return (np.stack([ef, es, ef], axis=2) * 255.0 + 0.5).astype(np.uint8)


def _message_panel(width: int, text: str) -> np.ndarray:
    """A short grey panel with ``text`` wrapped at words (rows without images: failed pairs)."""
    lines = textwrap.wrap(text, width=max(10, (width - 20) // 9))[:3] or [""]
    panel = np.full((MESSAGE_HEIGHT, width, 3), (60, 60, 60), dtype=np.uint8)
    for i, line in enumerate(lines):
        cv2.putText(panel, line, (10, 20 + 20 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (230, 230, 230), 1, cv2.LINE_AA)
    return panel


def _header(panel_width: int) -> np.ndarray:
    width = 4 * panel_width + 3 * GAP
    strip = np.full((LABEL_HEIGHT, width, 3), BACKGROUND, dtype=np.uint8)
    for i, name in enumerate(PANELS):
        cv2.putText(strip, name, (i * (panel_width + GAP) + 4, LABEL_HEIGHT - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (200, 200, 200), 1, cv2.LINE_AA)
    return strip


def _pair_panels(folder: Path) -> list[np.ndarray]:
    flash = fit_height(read_image(folder / "flash.png", damaged_hint=REGISTER_AGAIN_HINT), PANEL_HEIGHT)
    studio = fit_height(read_image(folder / "studio.png", damaged_hint=REGISTER_AGAIN_HINT), PANEL_HEIGHT)
    if studio.shape != flash.shape:
        studio = cv2.resize(studio, (flash.shape[1], flash.shape[0]), interpolation=cv2.INTER_AREA)
    valid = None
    valid_path = folder / "valid.png"
    if valid_path.is_file():
        mask = read_image(valid_path, damaged_hint=REGISTER_AGAIN_HINT)[:, :, 0]
        valid = cv2.resize(mask, (flash.shape[1], flash.shape[0]), interpolation=cv2.INTER_NEAREST)
    return [flash, studio, _checkerboard(flash, studio), _edge_overlay(flash, studio, valid)]


def _row(folder: Path | None, label: str, reason: str, status: str, panel_width: int) -> np.ndarray:
    width = 4 * panel_width + 3 * GAP
    if folder is None:
        body = _message_panel(width, reason or "no images")
    else:
        try:
            panels = _pair_panels(folder)
        except PrepError as exc:
            panels = [_message_panel(width, f"cannot read the aligned images: {exc}")]
        gap = np.full((panels[0].shape[0], GAP, 3), BACKGROUND, dtype=np.uint8)
        body = panels[0]
        for panel in panels[1:]:
            body = np.hstack([body, gap, panel])
        if body.shape[1] < width:
            pad = np.full((body.shape[0], width - body.shape[1], 3), BACKGROUND, np.uint8)
            body = np.hstack([body, pad])
        body = body[:, :width]
        if status == "flagged" and reason:  # the label cuts long reasons short; a flagged pair is to be read
            body = np.vstack([body, _message_panel(width, reason)])
    return np.vstack([label_strip(width, label, _STATUS_COLOURS.get(status)), body])


def write_contact_sheets(aligned_dir: str | Path, sheets_dir: str | Path, *, pairs_per_sheet: int = 8,
                         progress: ProgressCallback | None = None) -> list[Path]:
    """Write contact-sheet PNGs of every pair of an aligned tree.

    Parameters
    ----------
    aligned_dir : str or Path
        The output of ``prep register`` (``<subject>/<pose>/flash.png, studio.png, valid.png`` and
        ``registration.csv``, whose status and reason label each row; failed pairs get a row with the reason).
    sheets_dir : str or Path
        Receives ``sheet-0001.png``, ``sheet-0002.png``, ... (created when missing; written atomically).
    pairs_per_sheet : int
        Rows per sheet.
    progress : callable, optional
        Called with 1 after each pair.

    Returns
    -------
    list of Path
        The sheets written, in order (empty when the tree holds no pair and no CSV row).

    Raises
    ------
    PrepError
        When ``aligned_dir`` is not a folder, or a sheet cannot be written.
    """
    if pairs_per_sheet < 1:
        raise ValueError(f"pairs_per_sheet must be >= 1, got {pairs_per_sheet}")
    aligned_dir, sheets_dir = Path(aligned_dir), Path(sheets_dir)
    discovery = discover_pairs(aligned_dir)
    folders = {pair.key: pair.directory for pair in discovery.pairs}
    rows: list[tuple[Path | None, str, str, str]] = []
    seen: set[str] = set()
    for row in read_registration_csv(aligned_dir / CSV_NAME):
        key = f"{row['subject']}/{row['pose']}"
        status, reason = row.get("status", ""), row.get("reason", "")
        if status != "failed" and key not in folders:
            log.warning("%s line %s: there is no pose folder %s (the row is left out; run prep register again)",
                        aligned_dir / CSV_NAME, row["line"], aligned_dir / key)
            continue
        region = row.get("region", "")
        text = f"{key}  {status.upper()}" + (f"  [{region}-led]" if region else "") + (f"  {reason}" if reason else "")
        rows.append((folders.get(key) if status != "failed" else None, text, reason, status))
        seen.add(key)
    for key, folder in folders.items():
        if key not in seen:
            rows.append((folder, f"{key}  (not in {CSV_NAME})", "", ""))
    if not rows:
        return []
    panel_width = _panel_width(rows)
    written: list[Path] = []
    for index in range(math.ceil(len(rows) / pairs_per_sheet)):
        chunk = rows[index * pairs_per_sheet:(index + 1) * pairs_per_sheet]
        strips = [_header(panel_width)]
        for folder, text, reason, status in chunk:
            strips.append(_row(folder, text, reason, status, panel_width))
            strips.append(np.full((GAP, strips[-1].shape[1], 3), BACKGROUND, dtype=np.uint8))
            if progress:
                progress(1)
        path = sheets_dir / f"sheet-{index + 1:04d}.png"
        write_image(path, np.vstack(strips[:-1]), png_compression=6)
        written.append(path)
    return written


def _panel_width(rows: list[tuple[Path | None, str, str, str]]) -> int:
    """Panel width of the first readable pair (all rows of a session share it), else a 3:4 portrait's."""
    for folder, *_ in rows:
        if folder is None:
            continue
        try:
            h, w = image_size(folder / "flash.png")
        except PrepError:
            continue
        return max(1, round(w * PANEL_HEIGHT / h))
    return round(PANEL_HEIGHT * 3 / 4)

