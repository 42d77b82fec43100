"""``verify_shards``: re-check a finished shard folder and name every problem (none found: an empty list).

It re-reads everything: the SHA-256 of each shard against ``dataset.json``, the schema of each file, the value
ranges of every sample, ``index.csv`` against the files' contents, and that no subject sits in two splits.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from acquisition.atomic import file_sha256
from acquisition.errors import PrepError
from acquisition.files import open_regular, read_text, require_regular
from acquisition.runlock import folder_writer

from ._build import DATASET_JSON, INDEX_COLUMNS, INDEX_CSV
from .errors import REBUILD_HINT, DatasetGenError
from .schema import SPLITS, check_shard, open_shard, parse_shard_filename

__all__ = ["Problem", "verify_shards"]

_BLOCK = 32  # samples read at a time for the value checks


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a shard folder."""

    path: Path
    message: str
    hint: str = REBUILD_HINT

    def __str__(self) -> str:
        return f"{self.path}: {self.message} ({self.hint})"


def _text(values: Any) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


def _check_values(h5: Any, n_aug: int | None) -> list[str]:
    problems = []
    count = h5["flash"].shape[0]
    ranges = {"flash_bl": [], "target": []}
    bad_valid = 0
    for start in range(0, count, _BLOCK):
        stop = min(count, start + _BLOCK)
        for name in ranges:
            block = h5[name][start:stop].astype(np.float32)
            if not np.isfinite(block).all():
                problems.append(f"{name} holds NaN or infinite values in samples {start}-{stop - 1}")
            elif block.size:
                ranges[name].append((float(block.min()), float(block.max())))
        bad_valid += int(np.count_nonzero(h5["valid"][start:stop] > 1))
    for name, spans in ranges.items():
        if spans and (min(s[0] for s in spans) < 0.0 or max(s[1] for s in spans) > 1.0):
            problems.append(f"{name} values outside [0, 1] (min {min(s[0] for s in spans):.3g}, "
                            f"max {max(s[1] for s in spans):.3g})")
    if bad_valid:
        problems.append(f"valid holds {bad_valid} values other than 0 and 1")
    aug = h5["aug"][:]
    if aug.size and (aug.min() < 0 or (n_aug is not None and aug.max() >= n_aug)):
        problems.append(f"aug values outside 0..{(n_aug or 1) - 1}")
    for name in ("subject", "pose"):
        if any(not s for s in _text(h5[name][:])):
            problems.append(f"{name} is empty for some samples")
    return problems


def verify_shards(shards_dir: str | Path) -> list[Problem]:
    """Check a shard folder written by ``build_shards``; return every problem found (empty: all good)."""

    shards_dir = Path(shards_dir)
    problems: list[Problem] = []
    if not shards_dir.is_dir():
        return [Problem(shards_dir, "no such folder", hint="give the output folder of prep build-h5")]
    if (writer := folder_writer(shards_dir)) is not None:
        return [Problem(shards_dir, f"is being written by another run ({writer})",
                        hint="wait for it to finish, then run prep verify again")]
    meta_path = shards_dir / DATASET_JSON
    meta: dict[str, Any] = {}
    try:
        meta = json.loads(read_text(meta_path, error=DatasetGenError))
    except FileNotFoundError:
        problems.append(Problem(meta_path, "missing: the build did not finish",
                                hint="run the same prep build-h5 command again to finish it"))
    except (OSError, ValueError) as exc:
        problems.append(Problem(meta_path, f"unreadable ({exc})"))
    except PrepError as exc:
        problems.append(Problem(meta_path, exc.message, hint=exc.hint or REBUILD_HINT))
    listed = {entry.get("file"): entry for entry in meta.get("shards", []) if isinstance(entry, dict)}
    on_disk = sorted(p.name for p in shards_dir.iterdir() if parse_shard_filename(p.name))
    for name in on_disk:
        if meta and name not in listed:
            problems.append(Problem(shards_dir / name, "not listed in dataset.json"))
    params = meta.get("parameters", {})
    n_aug = len(meta["aug_table"]) if isinstance(meta.get("aug_table"), list) else None
    contents: dict[str, list[tuple[str, str, int]]] = {}
    splits_of: dict[str, set[str]] = defaultdict(set)
    samples = dict.fromkeys(SPLITS, 0)
    for name in sorted(set(listed) | set(on_disk)):
        path = shards_dir / name
        parsed = parse_shard_filename(name)
        if parsed is None:
            problems.append(Problem(path, "listed in dataset.json but not a shard name like train-00000.h5"))
            continue
        try:
            present = require_regular(path, error=DatasetGenError)
        except PrepError as exc:
            problems.append(Problem(path, exc.message, hint=exc.hint or REBUILD_HINT))
            continue
        if not present:
            problems.append(Problem(path, "listed in dataset.json but missing"))
            continue
        entry = listed.get(name)
        if entry is not None and entry.get("sha256") != file_sha256(path):
            problems.append(Problem(path, "SHA-256 differs from dataset.json: the file changed or is corrupt"))
        try:
            with open_shard(path, error=DatasetGenError) as h5:
                found = check_shard(h5)
                problems += [Problem(path, message) for message in found]
                if found:
                    continue
                split = str(h5.attrs["split"])
                if split != parsed[0]:
                    problems.append(Problem(path, f"attribute split is {split!r}, the file name says {parsed[0]!r}"))
                for key in ("size", "sigma_s", "sigma_r"):
                    if key in params and float(h5.attrs[key]) != float(params[key]):
                        problems.append(Problem(path, f"attribute {key} = {h5.attrs[key]}, dataset.json says "
                                                      f"{params[key]}"))
                if entry is not None and int(entry.get("samples", -1)) != h5["flash"].shape[0]:
                    problems.append(Problem(path, f"holds {h5['flash'].shape[0]} samples, dataset.json says "
                                                  f"{entry.get('samples')}"))
                problems += [Problem(path, message) for message in _check_values(h5, n_aug)]
                subjects, poses = _text(h5["subject"][:]), _text(h5["pose"][:])
                augs = [int(a) for a in h5["aug"][:]]
        except OSError as exc:
            problems.append(Problem(path, f"cannot be read as HDF5 ({exc})"))
            continue
        except PrepError as exc:
            problems.append(Problem(path, exc.message, hint=exc.hint or REBUILD_HINT))
            continue
        contents[name] = list(zip(subjects, poses, augs, strict=True))
        samples[parsed[0]] += len(subjects)
        for subject in subjects:
            splits_of[subject].add(parsed[0])
    for subject, splits in sorted(splits_of.items()):
        if len(splits) > 1:
            problems.append(Problem(shards_dir, f"subject {subject!r} is in several splits: "
                                                f"{', '.join(sorted(splits, key=SPLITS.index))}"))
    counts = meta.get("counts", {})
    for split in SPLITS:
        if counts and int(counts.get(split, {}).get("samples", 0)) != samples[split] and not any(
                p.path.name.startswith(split) for p in problems):
            problems.append(Problem(meta_path, f"counts {split} samples {counts.get(split, {}).get('samples')}, "
                                               f"the shards hold {samples[split]}"))
    problems += _check_index(shards_dir, contents)
    return problems


def _check_index(shards_dir: Path, contents: dict[str, list[tuple[str, str, int]]]) -> list[Problem]:
    index = shards_dir / INDEX_CSV
    try:
        with open_regular(index, "r", error=DatasetGenError, newline="") as handle:
            reader = csv.DictReader(handle)
            if tuple(reader.fieldnames or ()) != INDEX_COLUMNS:
                return [Problem(index, f"columns {reader.fieldnames}, expected {', '.join(INDEX_COLUMNS)}")]
            rows = list(reader)
    except FileNotFoundError:
        return [Problem(index, "missing")]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        return [Problem(index, f"unreadable ({exc})")]
    except PrepError as exc:
        return [Problem(index, exc.message, hint=exc.hint or REBUILD_HINT)]
    expected = [(name, str(row), s, p, str(a), parse_shard_filename(name)[0])  # type: ignore[index]
                for name, items in sorted(contents.items()) for row, (s, p, a) in enumerate(items)]
    got = [tuple(row[c] for c in INDEX_COLUMNS) for row in rows]
    listed_files = {row["file"] for row in rows}
    got = sorted((row for row in got if row[0] in contents),  # rows of unreadable shards are reported above
                 key=lambda r: (r[0], int(r[1]) if r[1].isdigit() else -1))
    if got != expected:
        mismatch = next((i for i, (a, b) in enumerate(zip(got, expected, strict=False)) if a != b),
                        min(len(got), len(expected)))
        return [Problem(index, f"does not match the shards' contents (first difference at data row {mismatch + 1}; "
                               f"{len(got)} rows, the shards hold {len(expected)} samples)")]
    missing = sorted(set(contents) - listed_files)
    return [Problem(index, f"lists no row of {name}") for name in missing if contents[name]]
