"""``verify_shards``: re-check a finished shard folder and name every problem (none found: an empty list).

It runs the cheap manifest check of training (:func:`check_shard_folder`: every field of ``dataset.json`` and
every row of ``index.csv`` against the shards' names, sizes, attributes and columns, subjects in one split each)
and adds what that leaves out: the SHA-256 of each shard against ``dataset.json`` and the value ranges of every
sample.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from acquisition.errors import PrepError
from acquisition.runlock import folder_writer

from ._manifest import Problem, _text, check_hashes, check_manifest_checksum, check_shard_folder
from .errors import DatasetGenError
from .schema import open_shard, read_error_words

__all__ = ["Problem", "verify_shards"]

_BLOCK = 32  # samples read at a time for the value checks


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
    if not shards_dir.is_dir():
        return [Problem(shards_dir, "no such folder", hint="give the output folder of prep build-h5")]
    if (writer := folder_writer(shards_dir)) is not None:
        return [Problem(shards_dir, f"is being written by another run ({writer})",
                        hint="wait for it to finish, then run prep verify again")]
    checked = check_shard_folder(shards_dir)
    problems = list(checked.problems)
    if checked.meta:
        problems += check_manifest_checksum(shards_dir, checked.meta)
    problems += check_hashes(checked)
    n_aug = len(checked.meta["aug_table"]) if checked.meta else None
    for name in sorted(checked.contents):
        path = shards_dir / name
        try:
            with open_shard(path, error=DatasetGenError) as h5:
                problems += [Problem(path, message) for message in _check_values(h5, n_aug)]
        except OSError as exc:
            problems.append(Problem(path, *read_error_words(exc)))
        except PrepError as exc:
            problems.append(Problem(path, exc.message, exc.hint or ""))
    return problems
