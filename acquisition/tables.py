"""Reading the CSV tables one stage writes for the next, row by row: a damaged row is reported, the rest used.

``registration.csv`` is opened in spreadsheets and edited by hand. One bad byte (Latin-1 saved over UTF-8), an
unbalanced quote or a NUL used to stop the whole reader -- ``csv`` reads a stray quote to the end of the file,
and a decoding error has no line at all. :func:`read_csv_rows` instead parses the file record by record: each
record that cannot be read is one :class:`RowProblem` naming the file and its line, and every other row is
returned with its line number, so a stage can go on with the rows it can trust.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from .errors import PrepError
from .files import read_bytes

__all__ = ["CsvRow", "RowProblem", "read_csv_rows"]

_MAX_RECORD_LINES: Final = 50  # a quoted field may span lines (a multi-line reason); no genuine one spans more


@dataclass(frozen=True)
class CsvRow:
    """One readable row: ``values`` keyed by the header's column names; ``line`` is 1-based in the file."""

    line: int
    values: dict[str, str]


@dataclass(frozen=True)
class RowProblem:
    """A row that was left out, in words: ``<file> line <N>: <what>``."""

    path: Path
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path} line {self.line}: {self.what}"


def _parse(text: str) -> tuple[list[str], int] | None:
    """The first record of ``text`` and the physical lines it spans, or None when it is not complete."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        fields = next(reader)
    except (csv.Error, StopIteration):
        return None
    return fields, reader.line_num


def _damage(fields: list[str]) -> str | None:
    for field in fields:
        if "\0" in field:
            return "holds a NUL byte"
        bad = next((c for c in field if "\udc80" <= c <= "\udcff"), None)
        if bad is not None:
            return f"is not UTF-8 text (byte 0x{ord(bad) - 0xDC00:02x})"
    return None


def read_csv_rows(path: str | Path, *, required: Collection[str] = (), key: Sequence[str] = (),
                  error: type[PrepError] = PrepError) -> tuple[list[CsvRow], list[RowProblem]]:
    """The rows of a CSV file with a header line, each damaged row reported instead of stopping the reader.

    Parameters
    ----------
    path : str or Path
        A regular file (a FIFO or a folder raises ``error``).
    required : collection of str
        Columns the header must name (what a row holds in them is the caller's to judge).
    key : sequence of str
        Columns that name a row's item (``subject``, ``pose``): a later row naming the same item as an earlier
        one is ambiguous, and both are left out and reported (nobody can tell which one is meant).
    error : type of PrepError
        Raised for a file that cannot be used at all: not readable, or a header without the ``required`` columns.

    Returns
    -------
    rows : list of CsvRow
        The readable rows, in file order.
    problems : list of RowProblem
        One per left-out record: not UTF-8, a NUL byte, an unbalanced quote, another number of fields than the
        header, the same ``key`` as another row.

    Raises
    ------
    OSError
        As :func:`open` (a missing file: callers decide what that means).
    PrepError
        ``error``, as above.
    """
    path = Path(path)
    text = read_bytes(path, error=error).decode("utf-8", errors="surrogateescape")
    if text.startswith("\ufeff"):
        text = text[1:]  # a byte-order mark from a spreadsheet
    lines = text.splitlines(keepends=True)
    header_record = _parse(lines[0]) if lines else None
    if header_record is None or _damage(header_record[0]):
        raise error("the header line cannot be read", path=path, hint="rewrite the file: run the stage again")
    header = [name.strip() for name in header_record[0]]
    missing = [name for name in required if name not in header]
    if missing:
        raise error(f"the header lacks the column(s) {', '.join(missing)}", path=path,
                    hint="rewrite the file: run the stage again")
    rows: list[CsvRow] = []
    problems: list[RowProblem] = []
    index = header_record[1]
    while index < len(lines):
        if not lines[index].strip():
            index += 1
            continue
        record = None
        for span in range(1, min(_MAX_RECORD_LINES, len(lines) - index) + 1):
            record = _parse("".join(lines[index:index + span]))
            if record is not None and record[1] == span and len(record[0]) == len(header):
                break
            record = None
        if record is None:
            single = _parse(lines[index])
            what = ("has an unbalanced quote" if single is None else
                    f"has {len(single[0])} fields, the header {len(header)}")
            problems.append(RowProblem(path, index + 1, what))
            index += 1
            continue
        fields, span = record
        damage = _damage(fields)
        if damage is not None:
            problems.append(RowProblem(path, index + 1, damage))
        else:
            rows.append(CsvRow(index + 1, dict(zip(header, fields, strict=True))))
        index += span
    if key:
        return _without_repeats(path, rows, problems, key)
    return rows, problems


def _without_repeats(path: Path, rows: list[CsvRow], problems: list[RowProblem], key: Sequence[str]
                     ) -> tuple[list[CsvRow], list[RowProblem]]:
    """Rows whose ``key`` no other row has, and a problem for each row of a repeated key."""
    lines: dict[tuple[str, ...], list[int]] = {}
    for row in rows:
        lines.setdefault(tuple(row.values.get(name, "").strip() for name in key), []).append(row.line)
    repeated = {line: others for others in lines.values() if len(others) > 1 for line in others}
    kept = [row for row in rows if row.line not in repeated]
    for row in rows:
        if row.line in repeated:
            others = ", ".join(str(n) for n in repeated[row.line] if n != row.line)
            named = "/".join(row.values.get(name, "") for name in key)
            problems.append(RowProblem(path, row.line, f"names {named} like line {others}: which one holds is "
                                                       "unclear"))
    problems.sort(key=lambda problem: problem.line)
    return kept, problems
