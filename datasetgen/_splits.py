"""Subject-disjoint splits: every pose and augmentation of a subject lands in one split.

Why by subject: samples of one person in both train and test would let a network memorise faces and report a
test score it cannot reach on strangers.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from acquisition.files import read_text
from acquisition.layout import check_name

from .errors import DatasetGenError
from .schema import SPLITS

__all__ = ["assign_splits", "parse_fractions", "read_split_file"]


def parse_fractions(text: str | Sequence[float]) -> tuple[float, float, float]:
    """``"0.8,0.1,0.1"`` (or a sequence) -> train, val, test fractions summing to 1."""
    if isinstance(text, str):
        try:
            values = tuple(float(v) for v in text.split(","))
        except ValueError:
            raise ValueError(f"split must be three numbers like 0.8,0.1,0.1, not {text!r}") from None
    else:
        values = tuple(float(v) for v in text)
    if len(values) != 3 or any(not (v >= 0) for v in values) or abs(sum(values) - 1.0) > 1e-6:
        raise ValueError(f"split must be three fractions >= 0 summing to 1 (train,val,test), not {text!r}")
    return values  # type: ignore[return-value]


def read_split_file(path: str | Path) -> dict[str, str]:
    """Read a CSV of ``subject,split`` rows (a header row ``subject,split`` is optional)."""
    path = Path(path)
    try:
        text = read_text(path, error=DatasetGenError, encoding="utf-8-sig")
    except OSError as exc:
        raise DatasetGenError(f"cannot read the split file: {exc.strerror}", path=path) from exc
    mapping: dict[str, str] = {}
    for number, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or all(not cell.strip() for cell in row) or row[0].lstrip().startswith("#"):
            continue
        cells = [cell.strip() for cell in row]
        if number == 1 and [c.lower() for c in cells[:2]] == ["subject", "split"]:
            continue
        if len(cells) != 2 or cells[1] not in SPLITS:
            raise DatasetGenError(f"line {number}: expected 'subject,split' with split one of {', '.join(SPLITS)}, "
                                  f"got {','.join(row)!r}", path=path, hint="fix the line")
        try:
            check_name(cells[0], what="subject")
        except ValueError as exc:
            raise DatasetGenError(f"line {number}: {exc}", path=path,
                                  hint="subjects are folder names of the aligned tree") from exc
        if cells[0] in mapping and mapping[cells[0]] != cells[1]:
            raise DatasetGenError(f"line {number}: subject {cells[0]!r} is put in two splits", path=path,
                                  hint="keep one line per subject")
        mapping[cells[0]] = cells[1]
    return mapping


def assign_splits(subjects: Iterable[str], *, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0,
                  split_file: str | Path | None = None) -> dict[str, str]:
    """Subject -> split.

    With a split file, every subject must be listed in it. Otherwise the sorted subjects are shuffled with
    ``seed`` and cut by cumulative rounded fractions (the same subjects and seed give the same answer on any
    machine); a split with a non-zero fraction gets at least one subject when there are enough subjects.
    """
    names = sorted(set(subjects))
    if split_file is not None:
        mapping = read_split_file(split_file)
        missing = [s for s in names if s not in mapping]
        if missing:
            raise DatasetGenError(f"subject(s) {', '.join(missing)} not listed", path=Path(split_file),
                                  hint="add a 'subject,split' line for each")
        return {s: mapping[s] for s in names}
    fr = parse_fractions(fractions)
    order = np.random.default_rng(seed).permutation(len(names))
    shuffled = [names[i] for i in order]
    n = len(shuffled)
    counts = [round(f * n) for f in fr]
    counts[0] = n - counts[1] - counts[2]
    # a non-zero fraction deserves a subject when possible: take it from the largest split
    for i in (1, 2, 0):
        if fr[i] > 0 and counts[i] == 0:
            donor = max(range(3), key=lambda j: counts[j])
            if counts[donor] > 1:
                counts[donor] -= 1
                counts[i] += 1
    result: dict[str, str] = {}
    start = 0
    for split, count in zip(SPLITS, counts, strict=True):
        for name in shuffled[start:start + count]:
            result[name] = split
        start += count
    return dict(sorted(result.items()))
