"""A shard folder's manifest: ``dataset.json`` and ``index.csv``, written once and checked cheaply.

:func:`write_manifest` describes finished shards (the builder calls it last; it also indexes shards made
elsewhere in the schema). :func:`check_shard_folder` compares every field of ``dataset.json`` and every row of
``index.csv`` with the shards themselves -- names, file sizes, attributes (split, size, filter, framing, build),
sample counts, subjects and their splits, pairs, the index -- reading only metadata and the small per-sample
columns, so training can afford it at every start. Only the hashes and the pixel values are left to
``prep verify`` (:func:`~datasetgen.verify_shards`), which runs this check too.

``dataset.json`` fields and what they are checked against: ``format_version`` (each shard's), ``parameters``
(``size``, ``sigma_s``, ``sigma_r`` against the attributes of the same names, all of them against the
``parameters`` attribute of shards that record it; ``compression`` against the datasets' filter,
``shard_size`` against the shards' counts; ``rotations_deg``, ``framings``, ``mirror`` against ``aug_table``),
``aug_table`` (each shard's), ``counts`` (samples, pairs and subjects per split, recounted), ``subjects`` (the
split of every subject found in a shard), ``shards`` (file, split, samples, bytes), ``skipped`` (those pairs have
no samples), ``fingerprint`` (the ``build`` attribute of shards that record it). ``tool`` and ``tool_version``
are informational.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from acquisition import tool_version
from acquisition.atomic import file_sha256, write_json_atomic, write_text_atomic
from acquisition.errors import PrepError
from acquisition.files import open_regular, read_text, require_regular

from ._augment import aug_table as make_aug_table
from .errors import REBUILD_HINT, DatasetGenError
from .schema import FORMAT_VERSION, SPLITS, check_shard, open_shard, parse_shard_filename, read_error_words

__all__ = ["DATASET_JSON", "INDEX_COLUMNS", "INDEX_CSV", "MANIFEST_KEYS", "Problem", "ShardFolder", "check_hashes",
           "check_manifest_checksum", "check_shard_folder", "write_manifest"]

DATASET_JSON: Final = "dataset.json"
INDEX_CSV: Final = "index.csv"
INDEX_COLUMNS: Final = ("file", "row", "subject", "pose", "aug", "split")
#: The keys of dataset.json. ``tool``, ``tool_version`` and ``skipped`` are informational (no shard holds them):
#: ``checksum`` (SHA-256 of the others, canonical JSON) is what shows that they, too, are as the build wrote them.
MANIFEST_KEYS: Final = ("format_version", "tool", "tool_version", "parameters", "aug_table", "counts", "subjects",
                        "shards", "skipped", "fingerprint", "checksum")
_INFORMATIONAL: Final = ("tool", "tool_version", "skipped")
_REQUIRED: Final = ("format_version", "parameters", "aug_table", "counts", "subjects", "shards")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a shard folder, and how to fix it."""

    path: Path
    message: str
    hint: str = REBUILD_HINT

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text


Row = tuple[str, str, int]  # subject, pose, augmentation index of one sample


@dataclass(frozen=True)
class ShardFolder:
    """What :func:`check_shard_folder` found: the listed shards, their per-sample columns, and every problem."""

    folder: Path
    meta: dict[str, Any]  #: dataset.json
    files: dict[str, tuple[Path, ...]]  #: split -> its listed shards, in name order
    contents: dict[str, tuple[Row, ...]]  #: shard name -> (subject, pose, aug) per row, for readable shards
    problems: tuple[Problem, ...] = field(default=())

    @property
    def parameters(self) -> dict[str, Any]:
        """The build parameters of dataset.json (checked against the shards unless ``problems`` says otherwise)."""
        return dict(self.meta.get("parameters", {}))

    @property
    def total_bytes(self) -> int:
        """Bytes of all listed shards (what hashing them reads)."""
        return sum(int(entry.get("bytes") or 0) for entry in self.meta.get("shards", []))


def _text(values: Any) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


def read_rows(h5: Any) -> list[Row]:
    """The (subject, pose, aug) of every sample of an open shard."""
    return list(zip(_text(h5["subject"][:]), _text(h5["pose"][:]), (int(a) for a in h5["aug"][:]), strict=True))


# ------------------------------------------------------------------------------------------------------ write
def write_manifest(shards_dir: str | Path, shards: Sequence[str | Path], *, parameters: dict[str, Any],
                   aug_table: list[dict[str, Any]], subjects: dict[str, str],
                   skipped: Sequence[dict[str, Any]] = (), fingerprint: str | None = None) -> dict[str, Any]:
    """Write ``index.csv`` and, last, ``dataset.json`` for finished shards; return what dataset.json holds.

    Parameters
    ----------
    shards_dir : path
        The folder holding the shards.
    shards : sequence of paths
        The shards of the dataset (``<split>-<NNNNN>.h5`` in ``shards_dir``), in build order.
    parameters : dict
        The build parameters (:meth:`BuildConfig.parameters`); at least ``size``, ``sigma_s``, ``sigma_r`` and
        ``wide_factor`` (training copies them into its checkpoints).
    aug_table : list of dict
        The meaning of each augmentation index (:meth:`AugSpec.as_dict`).
    subjects : dict
        Subject -> split, for every subject of the dataset.
    skipped : sequence of dict
        Pairs that gave no samples, with their reasons.
    fingerprint : str, optional
        The build's fingerprint (also the ``build`` attribute of its shards).
    """
    shards_dir = Path(shards_dir)
    lines = [",".join(INDEX_COLUMNS)]
    entries = []
    samples = dict.fromkeys(SPLITS, 0)
    pairs: dict[str, set[tuple[str, str]]] = {split: set() for split in SPLITS}
    for path in map(Path, shards):
        parsed = parse_shard_filename(path.name)
        if parsed is None or path.parent.resolve() != shards_dir.resolve():
            raise ValueError(f"{path} is not a shard (<split>-<NNNNN>.h5) of {shards_dir}")
        split = parsed[0]
        with open_shard(path, error=DatasetGenError) as h5:
            rows = read_rows(h5)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        for row, (subject, pose, aug) in enumerate(rows):
            writer.writerow([path.name, row, subject, pose, aug, split])
            pairs[split].add((subject, pose))
        lines.append(buffer.getvalue().rstrip("\n"))
        samples[split] += len(rows)
        entries.append({"file": path.name, "split": split, "samples": len(rows), "bytes": path.stat().st_size,
                        "sha256": file_sha256(path)})
    write_text_atomic(shards_dir / INDEX_CSV, "\n".join(line for line in lines if line) + "\n")
    counts = {split: {"samples": samples[split], "pairs": len(pairs[split]),
                      "subjects": sum(1 for s in subjects.values() if s == split)} for split in SPLITS}
    dataset = {
        "format_version": FORMAT_VERSION,
        "tool": "deepflash prep build-h5",
        "tool_version": tool_version(),
        "parameters": parameters,
        "aug_table": aug_table,
        "counts": counts,
        "subjects": subjects,
        "shards": entries,
        "skipped": list(skipped),
        "fingerprint": fingerprint,
    }
    dataset["checksum"] = _manifest_checksum(dataset)
    write_json_atomic(shards_dir / DATASET_JSON, dataset)
    return dataset


# ------------------------------------------------------------------------------------------------------ check
def _manifest_checksum(meta: dict[str, Any]) -> str:
    body = {key: value for key, value in meta.items() if key != "checksum"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_manifest_checksum(folder: str | Path, meta: dict[str, Any]) -> list[Problem]:
    """dataset.json against its own ``checksum``: an edit anywhere, the informational fields included.

    The fields the shards also hold are checked against them by :func:`check_shard_folder` (which names the
    field); this catches what only dataset.json holds (``tool``, ``tool_version``, ``skipped``) and keys the
    build never writes. A dataset.json written before the checksum existed is not checked here.
    """
    path = Path(folder) / DATASET_JSON
    problems = []
    extra = sorted(set(meta) - set(MANIFEST_KEYS))
    if extra:
        problems.append(Problem(path, f"holds key(s) prep build-h5 does not write: {', '.join(extra)}",
                                "remove them, or rebuild the shards with prep build-h5 --force"))
    recorded = meta.get("checksum")
    if recorded is not None and not extra and recorded != _manifest_checksum(meta):
        problems.append(Problem(path, "was edited after the build: its checksum does not match its content (the "
                                      f"informational {', '.join(_INFORMATIONAL)} cannot be checked against the "
                                      "shards; other fields that differ from them are reported on their own)",
                                "restore it from a copy, or rebuild the shards with prep build-h5 --force"))
    return problems


def _scalar(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON values (numbers compared as floats, lists and tuples alike)."""
    a, b = _scalar(a), _scalar(b)
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def _read_meta(folder: Path) -> tuple[dict[str, Any], list[Problem]]:
    path = folder / DATASET_JSON
    try:
        meta = json.loads(read_text(path, error=DatasetGenError))
    except FileNotFoundError:
        return {}, [Problem(path, "missing: the build did not finish, or these shards were not made by prep build-h5",
                            "run the same prep build-h5 command again to finish it")]
    except PrepError as exc:
        return {}, [Problem(path, exc.message, exc.hint or REBUILD_HINT)]
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return {}, [Problem(path, f"unreadable ({exc})", REBUILD_HINT)]
    if not isinstance(meta, dict):
        return {}, [Problem(path, "does not hold a JSON object", REBUILD_HINT)]
    missing = [key for key in _REQUIRED if key not in meta]
    if missing:
        return {}, [Problem(path, f"lacks {', '.join(missing)}", REBUILD_HINT)]
    shards = meta["shards"]
    if (not isinstance(shards, list) or not all(isinstance(e, dict) and isinstance(e.get("file"), str)
                                                and isinstance(e.get("samples"), int) for e in shards)
            or not isinstance(meta["parameters"], dict) or not isinstance(meta["subjects"], dict)
            or not isinstance(meta["counts"], dict) or not isinstance(meta["aug_table"], list)):
        return {}, [Problem(path, "is malformed (shards, parameters, subjects, counts or aug_table)", REBUILD_HINT)]
    return meta, []


def _check_parameters(path: Path, meta: dict[str, Any]) -> list[Problem]:
    """dataset.json against itself: the aug_table its parameters imply."""
    params = meta["parameters"]
    if not all(key in params for key in ("rotations_deg", "framings", "mirror")):
        return []
    try:
        implied = [spec.as_dict() for spec in make_aug_table(tuple(params["rotations_deg"]), tuple(params["framings"]),
                                                              bool(params["mirror"]))]
    except (TypeError, ValueError) as exc:
        return [Problem(path, f"parameters rotations_deg, framings or mirror are malformed ({exc})", REBUILD_HINT)]
    if not _same(implied, meta["aug_table"]):
        return [Problem(path, "aug_table does not match parameters rotations_deg, framings and mirror", REBUILD_HINT)]
    return []


def _check_attrs(h5: Any, entry: dict[str, Any], split: str, meta: dict[str, Any]) -> list[str]:
    """One shard's attributes and shape against its dataset.json entry and the dataset's parameters."""
    params = meta["parameters"]
    found: list[str] = []
    attr_split = str(h5.attrs["split"])
    if attr_split != split or entry.get("split", split) != split:
        found.append(f"holds split {attr_split!r}, but its name and dataset.json say {entry.get('split', split)!r}")
    if int(h5.attrs["format_version"]) != int(meta["format_version"]):
        found.append(f"has format_version {h5.attrs['format_version']}, dataset.json says {meta['format_version']}")
    for key in ("size", "sigma_s", "sigma_r"):
        if key in params and not _same(h5.attrs[key], params[key]):
            found.append(f"was built with {key} {_scalar(h5.attrs[key])}, dataset.json says {params[key]}")
    if "parameters" in h5.attrs:
        try:
            recorded = json.loads(h5.attrs["parameters"])
        except ValueError:
            recorded = {}
        different = [key for key in sorted(set(recorded) | set(params))
                     if not _same(recorded.get(key), params.get(key))]
        if different:
            key = different[0]
            found.append(f"was built with {key} {recorded.get(key)}, dataset.json says {params.get(key)}"
                         + (f" (and {len(different) - 1} more parameters differ)" if len(different) > 1 else ""))
    build = h5.attrs.get("build")
    if build is not None and meta.get("fingerprint") and str(build) != meta["fingerprint"]:
        found.append("comes from another build (its build fingerprint differs from dataset.json's)")
    try:
        table = json.loads(h5.attrs["aug_table"])
    except ValueError:
        table = None
    if not _same(table, meta["aug_table"]):
        found.append("has another aug_table than dataset.json")
    count = h5["flash"].shape[0]
    if count != entry["samples"]:
        found.append(f"holds {count} samples, dataset.json says {entry['samples']}")
    shard_size = params.get("shard_size")
    if isinstance(shard_size, int) and count > shard_size:
        found.append(f"holds {count} samples, more than shard_size {shard_size}")
    compression = params.get("compression")
    if compression is not None and (h5["flash"].compression or "none") != compression:
        found.append(f"is stored with compression {h5['flash'].compression or 'none'}, dataset.json says "
                     f"{compression}")
    return list(dict.fromkeys(found))  # sigma_s is both an attribute and in "parameters": say it once


def check_shard_folder(shards_dir: str | Path) -> ShardFolder:
    """Check a shard folder against its ``dataset.json`` and ``index.csv`` without reading pixels or hashing.

    Returns
    -------
    ShardFolder
        The listed shards per split and their per-sample columns; ``problems`` is empty when every check
        passed. Unlisted shards, listed ones that are missing, of another size or build, with other attributes
        or counts, subjects in the wrong split and index rows that do not match are each a problem.
    """
    folder = Path(shards_dir)
    meta, problems = _read_meta(folder)
    if not meta:
        return ShardFolder(folder, {}, {}, {}, tuple(problems))
    meta_path = folder / DATASET_JSON
    problems += _check_parameters(meta_path, meta)
    listed = {entry["file"]: entry for entry in meta["shards"]}
    on_disk = sorted(p.name for p in folder.iterdir() if parse_shard_filename(p.name))
    for name in on_disk:
        if name not in listed:
            problems.append(Problem(folder / name, "is not listed in dataset.json: it is not part of this dataset",
                                    "move it out of the folder, or rebuild the shards with prep build-h5 --force"))
    files: dict[str, list[Path]] = {split: [] for split in SPLITS}
    contents: dict[str, tuple[Row, ...]] = {}
    subjects_map: dict[str, str] = meta["subjects"]
    pairs: dict[str, set[tuple[str, str]]] = {split: set() for split in SPLITS}
    samples = dict.fromkeys(SPLITS, 0)
    for name in sorted(listed):
        entry, path = listed[name], folder / name
        parsed = parse_shard_filename(name)
        if parsed is None:
            problems.append(Problem(meta_path, f"lists {name!r}, not a shard name like train-00000.h5", REBUILD_HINT))
            continue
        split = parsed[0]
        files[split].append(path)
        try:
            if not require_regular(path, error=DatasetGenError):
                problems.append(Problem(path, "is listed in dataset.json but missing", REBUILD_HINT))
                continue
            with open_shard(path, error=DatasetGenError) as h5:
                found = check_shard(h5) or _check_attrs(h5, entry, split, meta)
                rows = read_rows(h5) if not found else []
        except OSError as exc:
            problems.append(Problem(path, *read_error_words(exc)))
            continue
        except PrepError as exc:  # not a regular file, or locked
            problems.append(Problem(path, exc.message, exc.hint or REBUILD_HINT))
            continue
        size = os.stat(path).st_size
        if not found and entry.get("bytes") is not None and size != entry["bytes"]:
            found.append(f"is {size} bytes, dataset.json says {entry['bytes']}: it changed since the build")
        if found:
            problems.append(Problem(path, "; ".join(found[:2]), REBUILD_HINT))
            continue
        contents[name] = tuple(rows)
        samples[split] += len(rows)
        for subject, pose, _aug in rows:
            pairs[split].add((subject, pose))
        strays = sorted({s for s, _, _ in rows if subjects_map.get(s) != split})
        if strays:
            where = subjects_map.get(strays[0])
            problems.append(Problem(path, f"holds subject {strays[0]!r}, which dataset.json puts "
                                          + (f"in split {where!r}" if where else "in no split")
                                          + f", not {split!r}", REBUILD_HINT))
    splits_of: dict[str, set[str]] = defaultdict(set)
    for name, rows in contents.items():
        for subject, _pose, _aug in rows:
            splits_of[subject].add(name.split("-")[0])
    for subject, splits in sorted(splits_of.items()):
        if len(splits) > 1:
            problems.append(Problem(folder, f"subject {subject!r} is in several splits: "
                                            f"{', '.join(sorted(splits, key=SPLITS.index))}", REBUILD_HINT))
    problems += _check_counts(meta_path, meta, samples, pairs, broken={p.path.name for p in problems})
    problems += _check_skipped(meta_path, meta, contents)
    problems += check_index(folder, contents)
    return ShardFolder(folder, meta, {split: tuple(paths) for split, paths in files.items()}, contents,
                       tuple(problems))


def check_hashes(checked: ShardFolder) -> list[Problem]:
    """The SHA-256 of every readable listed shard against dataset.json (reads every byte: ~1.4 GB/s warm)."""
    entries = {entry["file"]: entry for entry in checked.meta.get("shards", [])}
    problems = []
    for name in sorted(checked.contents):
        path = checked.folder / name
        try:
            digest = file_sha256(path)
        except OSError as exc:
            problems.append(Problem(path, f"cannot be read ({exc.strerror or exc})", REBUILD_HINT))
            continue
        if entries[name].get("sha256") != digest:
            problems.append(Problem(path, "SHA-256 differs from dataset.json: the file changed or is corrupt",
                                    REBUILD_HINT))
    return problems


def _check_counts(meta_path: Path, meta: dict[str, Any], samples: dict[str, int],
                  pairs: dict[str, set[tuple[str, str]]], *, broken: set[str]) -> list[Problem]:
    """counts of dataset.json against its shard list, its subjects and (for splits whose shards all read) the
    shards' own samples and pairs."""
    problems = []
    subjects_per_split: dict[str, int] = defaultdict(int)
    for split in meta["subjects"].values():
        subjects_per_split[split] += 1
    for split in SPLITS:
        counts = meta["counts"].get(split)
        counts = counts if isinstance(counts, dict) else {}
        listed = sum(e["samples"] for e in meta["shards"] if e["file"].startswith(split + "-"))
        expected = {"samples": listed, "subjects": subjects_per_split[split]}
        if not any(name.startswith(split + "-") for name in broken):
            expected["pairs"] = len(pairs[split])
        for key, value in expected.items():
            if counts.get(key) != value:
                source = "the shard list says" if key == "samples" else "the shards hold"
                if key == "subjects":
                    source = "its subjects list"
                problems.append(Problem(meta_path, f"counts {split} {key} {counts.get(key)}, {source} {value}",
                                        REBUILD_HINT))
    return problems


def _check_skipped(meta_path: Path, meta: dict[str, Any], contents: dict[str, tuple[Row, ...]]) -> list[Problem]:
    skipped = {entry.get("key") for entry in meta.get("skipped", []) if isinstance(entry, dict)}
    present = sorted({f"{s}/{p}" for rows in contents.values() for s, p, _ in rows} & skipped)
    if present:
        return [Problem(meta_path, f"lists pair {present[0]} as skipped, but the shards hold its samples",
                        REBUILD_HINT)]
    return []


def check_index(folder: Path, contents: dict[str, tuple[Row, ...]]) -> list[Problem]:
    """index.csv against the rows of the readable shards (``contents``)."""
    index = folder / INDEX_CSV
    try:
        with open_regular(index, "r", error=DatasetGenError, newline="") as handle:
            reader = csv.DictReader(handle)
            if tuple(reader.fieldnames or ()) != INDEX_COLUMNS:
                return [Problem(index, f"has columns {reader.fieldnames}, expected {', '.join(INDEX_COLUMNS)}",
                                REBUILD_HINT)]
            rows = list(reader)
    except FileNotFoundError:
        return [Problem(index, "missing", REBUILD_HINT)]
    except PrepError as exc:
        return [Problem(index, exc.message, exc.hint or REBUILD_HINT)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        return [Problem(index, f"unreadable ({exc})", REBUILD_HINT)]
    expected = [(name, str(row), s, p, str(a), parse_shard_filename(name)[0])  # type: ignore[index]
                for name, items in sorted(contents.items()) for row, (s, p, a) in enumerate(items)]
    got = [tuple(row.get(c) or "" for c in INDEX_COLUMNS) for row in rows]
    got = sorted((row for row in got if row[0] in contents),  # rows of unreadable shards are reported elsewhere
                 key=lambda r: (r[0], int(r[1]) if r[1].isdigit() else -1))
    if got != expected:
        mismatch = next((i for i, (a, b) in enumerate(zip(got, expected, strict=False)) if a != b),
                        min(len(got), len(expected)))
        return [Problem(index, f"does not match the shards' contents (first difference at data row {mismatch + 1}; "
                               f"{len(got)} rows, the shards hold {len(expected)} samples)", REBUILD_HINT)]
    return []
