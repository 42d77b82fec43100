"""Contact sheets of an aligned tree, so a person can check hundreds of registrations in minutes.

A header names the panels; one row per pair: flash | aligned studio | checkerboard of the two | edge
difference, under a label with subject/pose, status and the region that led the registration (face or frame;
green ok, orange flagged, red failed) and the reason in full, wrapped over as many lines as it takes. Every
panel is fitted whole into cells of one size, wide enough for the widest pair (portrait or landscape shots in
one session), so nothing is cut. A misregistration shows as broken lines at the checkerboard's tile borders and
as doubled, coloured edges in the overlay (flash edges magenta, studio edges green, white where they
coincide); lighting differences do not, since only edges are compared.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Final

import cv2
import numpy as np

from acquisition.drawing import BACKGROUND, LABEL_HEIGHT, cell_width, edge_strength, fit_box, fit_into, label_strip
from acquisition.errors import PrepError
from acquisition.faces import to_uint8
from acquisition.imageio import image_size, read_image, write_image
from acquisition.layout import REGISTER_AGAIN_HINT, discover_pairs
from acquisition.progress import ProgressCallback

from ._pair import RECORD_NAME, read_record
from ._tree import CSV_NAME, read_registration_csv

log = logging.getLogger(__name__)

__all__ = ["write_contact_sheets"]

PANEL_HEIGHT: Final = 220
GAP: Final = 6
PANELS: Final = ("flash", "aligned studio", "checkerboard", "edge difference")
_STATUS_COLOURS: Final = {"ok": (40, 160, 60), "flagged": (230, 140, 0), "failed": (210, 40, 40)}
_MESSAGE_BACKGROUND: Final = (60, 60, 60)


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


def _message_panel(width: int, text: str, status: str) -> np.ndarray:
    """``text`` in full, wrapped at words, on a grey panel (a pair's reason; the body of a failed pair's row)."""
    return label_strip(width, text, _STATUS_COLOURS.get(status), background=_MESSAGE_BACKGROUND)


def _header(panel_width: int) -> np.ndarray:
    width = 4 * panel_width + 3 * GAP
    strip = np.full((LABEL_HEIGHT, width, 3), BACKGROUND, dtype=np.uint8)
    for i, name in enumerate(PANELS):
        cv2.putText(strip, name, (i * (panel_width + GAP) + 4, LABEL_HEIGHT - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (200, 200, 200), 1, cv2.LINE_AA)
    return strip


def _pair_panels(folder: Path, cell: tuple[int, int]) -> list[np.ndarray]:
    """The four panels of a pair, each ``cell`` (width, height) with the pictures fitted whole inside."""
    flash = read_image(folder / "flash.png", damaged_hint=REGISTER_AGAIN_HINT)
    studio = read_image(folder / "studio.png", damaged_hint=REGISTER_AGAIN_HINT)
    _, _, width, height = fit_box((flash.shape[1], flash.shape[0]), cell)
    flash = cv2.resize(to_uint8(flash), (width, height), interpolation=cv2.INTER_AREA)
    studio = cv2.resize(to_uint8(studio), (width, height), interpolation=cv2.INTER_AREA)
    valid = None
    valid_path = folder / "valid.png"
    if valid_path.is_file():
        mask = read_image(valid_path, damaged_hint=REGISTER_AGAIN_HINT)[:, :, 0]
        valid = cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)
    pictures = [flash, studio, _checkerboard(flash, studio), _edge_overlay(flash, studio, valid)]
    return [fit_into(picture, *cell) for picture in pictures]


def _row(folder: Path | None, label: str, reason: str, status: str, panel_width: int) -> np.ndarray:
    """A pair's row: its label, the four panels (or a message when there are none) and its reason in full."""
    width = 4 * panel_width + 3 * GAP
    parts = [label_strip(width, label, _STATUS_COLOURS.get(status))]
    if folder is None:
        parts.append(_message_panel(width, reason or "no images", status))
        return np.vstack(parts)
    try:
        panels = _pair_panels(folder, (panel_width, PANEL_HEIGHT))
    except PrepError as exc:
        parts.append(_message_panel(width, f"cannot read the aligned images: {exc}", status))
    else:
        gap = np.full((PANEL_HEIGHT, GAP, 3), BACKGROUND, dtype=np.uint8)
        parts.append(np.hstack([panels[0], gap, panels[1], gap, panels[2], gap, panels[3]]))
    if reason:
        parts.append(_message_panel(width, reason, status))
    return np.vstack(parts)


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
        text = f"{key}  {status.upper()}" + (f"  [{region}-led]" if region else "")
        rows.append((folders.get(key) if status != "failed" else None, text, reason, status))
        seen.add(key)
    for key, folder in folders.items():
        if key in seen:
            continue
        # A run stopped before writing registration.csv: each finished pair's own record says how it went.
        record = read_record(folder)
        result = record.get("result") if record else None
        if not isinstance(result, dict) or "status" not in result:
            rows.append((folder, f"{key}  (not in {CSV_NAME})", "", ""))
            continue
        status, region = str(result["status"]), str(result.get("region", ""))
        text = f"{key}  {status.upper()}" + (f"  [{region}-led]" if region else "") + f"  (from its {RECORD_NAME})"
        rows.append((folder, text, str(result.get("reason", "")), status))
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
    """Cell width for every row: the widest pair's aspect ratio at ``PANEL_HEIGHT`` (within the limits of
    :func:`acquisition.drawing.cell_width`), so a session mixing portrait and landscape shots fits whole."""
    aspects = []
    for folder, *_ in rows:
        if folder is None:
            continue
        try:
            h, w = image_size(folder / "flash.png")
        except PrepError:
            continue
        aspects.append(w / h)
    return cell_width(PANEL_HEIGHT, aspects)
