"""Contact sheets of a raw capture folder with each pose's check verdict, to look a subject over before they leave.

One row per pose: a label (subject/pose, the verdict in full, which retake it is) over the pose's check picture
(flash | studio | face overlay, :func:`acquisition.posecheck.draw_check`), the same rows as ``check.jpg``. A pose
captured without the check (``--no-check``, an older session) or whose check a stop cut short (``pending``:
``prep capture --resume`` records its verdict) is checked here, in memory: the raw folder is only read.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Final

import cv2
import numpy as np

from .drawing import BACKGROUND, MAX_CELL_ASPECT, fit_box, label_strip
from .errors import AcquisitionError, PrepError
from .files import read_text
from .imageio import read_image, write_image
from .layout import discover_pairs
from .progress import ProgressCallback

__all__ = ["write_check_sheets"]

ROW_HEIGHT: Final = 240
GAP: Final = 6
_MAX_ROW_WIDTH: Final = round(3 * MAX_CELL_ASPECT * ROW_HEIGHT) + 8  # three panels of the widest cells, two gaps
_COLOURS: Final = {"ok": (40, 160, 60), "retake": (210, 40, 40), "unchecked": (150, 150, 150)}


def _meta(folder: Path) -> dict[str, Any]:
    try:
        return json.loads(read_text(folder / "meta.json", error=AcquisitionError))
    except (PrepError, OSError, ValueError):
        return {}


def _row(pair: Any) -> tuple[np.ndarray, str, str]:
    """The pose's check picture (recorded, else drawn now), its verdict line and status."""
    from .posecheck import CHECK_IMAGE_NAME, check_pose

    meta = _meta(pair.directory)
    recorded = meta.get("check") or {}
    picture_path = pair.directory / CHECK_IMAGE_NAME
    if recorded.get("status") in ("ok", "retake", "unchecked") and picture_path.is_file():
        try:
            return read_image(picture_path), recorded.get("summary", recorded["status"]), recorded["status"]
        except PrepError:
            pass  # a damaged picture: check the pose again
    try:
        result, picture = check_pose(pair.flash, pair.studio)
    except PrepError as exc:
        message = np.full((ROW_HEIGHT, ROW_HEIGHT * 2, 3), (60, 60, 60), np.uint8)
        return message, f"not checked: {exc.message}", "unchecked"
    if recorded.get("status") == "pending":  # a stop cut the capture's check short; raw/ is only read here
        return picture, result.summary + " (checked now; pending in raw/: prep capture --resume records it)", \
            result.status
    return picture, result.summary + " (checked now)", result.status


def write_check_sheets(raw_dir: str | Path, sheets_dir: str | Path, *, poses_per_sheet: int = 8,
                       progress: ProgressCallback | None = None) -> list[Path]:
    """Write contact-sheet PNGs of every pose of a raw capture folder, each with its check verdict.

    Parameters
    ----------
    raw_dir : str or Path
        ``prep capture``'s output (``<subject>/<pose>/flash.jpg, studio.jpg, meta.json``).
    sheets_dir : str or Path
        Receives ``sheet-0001.png``, ... (created when missing; written atomically).
    poses_per_sheet : int
        Rows per sheet.
    progress : callable, optional
        Called with 1 after each pose.

    Returns
    -------
    list of Path
        The sheets written (empty when the folder holds no pose).
    """
    if poses_per_sheet < 1:
        raise ValueError(f"poses_per_sheet must be >= 1, got {poses_per_sheet}")
    pairs = discover_pairs(raw_dir).pairs
    rows: list[np.ndarray] = []
    for pair in pairs:
        picture, summary, status = _row(pair)
        retakes = len(_meta(pair.directory).get("retakes", []))  # = meta.json's take, 0 for the first
        _, _, width, height = fit_box((picture.shape[1], picture.shape[0]), (_MAX_ROW_WIDTH, ROW_HEIGHT))
        picture = cv2.resize(picture, (width, height), interpolation=cv2.INTER_AREA)  # whole, however wide
        text = f"{pair.key}  {summary}" + (f"  (retake {retakes})" if retakes else "")
        label = label_strip(picture.shape[1], text, _COLOURS.get(status), font_scale=0.48)  # in full, wrapped
        rows.append(np.vstack([label, picture]))
        if progress is not None:
            progress(1)
    written = []
    sheets_dir = Path(sheets_dir)
    for index in range(math.ceil(len(rows) / poses_per_sheet)):
        chunk = rows[index * poses_per_sheet:(index + 1) * poses_per_sheet]
        width = max(r.shape[1] for r in chunk)
        strips = []
        for row in chunk:
            pad = np.full((row.shape[0], width - row.shape[1], 3), BACKGROUND, np.uint8)
            strips += [np.hstack([row, pad]), np.full((GAP, width, 3), BACKGROUND, np.uint8)]
        path = sheets_dir / f"sheet-{index + 1:04d}.png"
        write_image(path, np.vstack(strips[:-1]), png_compression=6)
        written.append(path)
    return written
