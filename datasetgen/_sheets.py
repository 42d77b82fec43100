"""Contact sheets of random shard samples: flash, studio, BL(flash), target, side by side, one sample a row.

Why: a glance at a few samples catches what numbers miss (a crop that cut the face, a mirrored studio image,
a target that is all grey because the studio image is black).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from acquisition.drawing import wrap_text
from acquisition.files import open_regular, require_regular
from acquisition.imageio import write_image
from acquisition.runlock import refuse_if_being_written

from ._manifest import INDEX_CSV
from .errors import REBUILD_HINT, DatasetGenError
from .schema import open_shard, read_error_words

__all__ = ["write_shard_sheets"]

_TILE = 192
_ROWS_PER_SHEET = 8
_LABEL_H = 18
_LINE_PITCH = 15
_FONT_SCALE = 0.42


def _tile(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8:
        image = (np.clip(image.astype(np.float32), 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    return cv2.resize(image, (_TILE, _TILE), interpolation=cv2.INTER_AREA)


def _label(width: int, text: str) -> np.ndarray:
    """``text`` in full (long subject and pose names wrap onto more lines) on a white strip ``width`` wide."""
    lines = wrap_text(text, width - 8, font_scale=_FONT_SCALE)
    strip = np.full((_LABEL_H + _LINE_PITCH * (len(lines) - 1), width, 3), 255, np.uint8)
    for i, line in enumerate(lines):
        cv2.putText(strip, line, (4, _LABEL_H - 5 + _LINE_PITCH * i), cv2.FONT_HERSHEY_SIMPLEX, _FONT_SCALE,
                    (0, 0, 0), 1, cv2.LINE_AA)
    return strip


def write_shard_sheets(shards_dir: str | Path, sheets_dir: str | Path, *, count: int = 16, seed: int = 0) -> list[Path]:
    """Write PNG contact sheets of ``count`` random samples (8 per sheet); return their paths.

    Each row shows flash | studio | BL(flash) | target of one sample, labelled ``file row: subject/pose aug``.
    The same ``seed`` picks the same samples.
    """
    shards_dir, sheets_dir = Path(shards_dir), Path(sheets_dir)
    refuse_if_being_written(shards_dir, error=DatasetGenError, then="review it")
    index = shards_dir / INDEX_CSV
    if not require_regular(index, error=DatasetGenError):
        raise DatasetGenError("no index.csv: the build did not finish, or this is not a shard folder", path=shards_dir,
                              hint="run the same prep build-h5 command again to finish it (or prep build-h5 first)")
    try:
        with open_regular(index, "r", error=DatasetGenError, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetGenError(f"cannot read ({exc})", path=index, hint=REBUILD_HINT) from exc
    if not rows:
        raise DatasetGenError("index.csv lists no samples", path=index, hint=REBUILD_HINT)
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    picks = np.random.default_rng(seed).choice(len(rows), size=min(count, len(rows)), replace=False)
    picked = [rows[i] for i in sorted(picks)]
    lines = []
    handles: dict[str, Any] = {}
    try:
        for row in picked:
            name = row["file"]
            if name not in handles:
                try:
                    handles[name] = open_shard(shards_dir / name, error=DatasetGenError)
                except OSError as exc:
                    message, hint = read_error_words(exc)
                    raise DatasetGenError(message, path=shards_dir / name, hint=hint) from exc
            try:
                h5, r = handles[name], int(row["row"])
                tiles = [_tile(h5[ds][r]) for ds in ("flash", "studio", "flash_bl", "target")]
            except (KeyError, ValueError, IndexError, OSError) as exc:
                raise DatasetGenError(f"index.csv row {row.get('row')!r} of this shard cannot be read "
                                      f"({type(exc).__name__}: {exc})", path=shards_dir / name,
                                      hint="run prep verify; " + REBUILD_HINT) from exc
            strip = np.hstack(tiles)
            text = f"{name} {r}: {row['subject']}/{row['pose']} aug {row['aug']} ({row['split']})"
            lines.append(np.vstack([_label(strip.shape[1], text), strip]))
    finally:
        for h5 in handles.values():
            h5.close()
    header = _label(4 * _TILE, "flash | studio | BL(flash) | target")
    written = []
    for number, start in enumerate(range(0, len(lines), _ROWS_PER_SHEET)):
        sheet = np.vstack([header, *lines[start:start + _ROWS_PER_SHEET]])
        path = sheets_dir / f"samples-{number:03d}.png"
        write_image(path, sheet)
        written.append(path)
    return written
