"""``build_shards``: registered pairs -> face crops -> x20 samples -> bilateral encoding -> HDF5 shards.

Safety and resumption. Every pair is processed (possibly in a worker process) into a hidden work folder,
``shards/.work/``: ``samples/<subject>/<pose>.npz`` (its 20 samples) and ``records/<subject>/<pose>.json`` (what
happened: ok with a sample count, or skipped with the reason), both written atomically. Shards are assembled in
the main process from those files, in a fixed order (split, subject, pose, augmentation), written under a
temporary name and renamed when complete; a pair's sample file is deleted once every shard holding its rows is
complete. An interrupted build therefore resumes where it stopped: complete shards are kept, processed pairs
are not processed again, and the shard being written is rewritten from the sample files. Because shards are
always written by the same sequence of HDF5 operations from the same arrays (no timestamps), the result is
byte-identical to an uninterrupted build, for any number of workers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import cv2
import numpy as np

from acquisition.atomic import (
    TEMP_PREFIX,
    atomic_write,
    fsync_directory,
    write_error,
    write_json_atomic,
)
from acquisition.checks import check_finite_fields
from acquisition.errors import PrepError
from acquisition.faces import FaceBox
from acquisition.files import (
    content_fingerprint,
    file_kind,
    human_size,
    is_disk_full,
    open_regular,
    read_text,
    require_regular,
)
from acquisition.folders import check_apart
from acquisition.layout import REGISTER_AGAIN_HINT, Pair, discover_pairs
from acquisition.parallel import map_in_order
from acquisition.progress import ProgressCallback, announce_total
from acquisition.runlock import claim_folder, refuse_if_being_written
from acquisition.tables import read_csv_rows

from ._augment import FRAMINGS, AugSpec, aug_table, render_framing
from ._manifest import DATASET_JSON, INDEX_CSV, write_manifest
from ._splits import assign_splits, parse_fractions
from .errors import DatasetGenError
from .schema import (
    COMPRESSIONS,
    FILE_KWARGS,
    IMAGE_DATASETS,
    SPLITS,
    create_shard_datasets,
    hdf5_lock_error,
    parse_shard_filename,
    sample_bytes,
    shard_filename,
    write_shard_attrs,
)

__all__ = ["BuildConfig", "BuildSummary", "SkippedPair", "build_shards"]

log = logging.getLogger(__name__)

WORK_DIR: Final = ".work"
REGISTRATION_CSV: Final = "registration.csv"
VALID_NAME: Final = "valid.png"
POSE_RECORD: Final = "registration.json"  # written last by prep register: the pose is complete
_COMPRESSED_RATIO: Final = 0.75  # photos compress poorly with HDF5 filters (NOTES: 1.3-1.6x)


@dataclass(frozen=True)
class BuildConfig:
    """Parameters of a dataset build; the defaults are the paper's.

    Parameters
    ----------
    size : int
        Side of the square samples in pixels.
    sigma_s, sigma_r : float
        Bilateral filter: spatial sigma (pixels of the sample) and range sigma (RGB in [0, 1]).
    wide_factor : float
        The wide framing is the face box's larger side times this, as a square around the face-box centre.
    rotations_deg : tuple of float
        Rotations about the face-box centre (positive: counter-clockwise on screen).
    framings : tuple of str
        ``wide`` and/or ``face`` (the tight face box).
    mirror : bool
        Add the left-right mirrored twin of every sample.
    face_model : {"hog", "cnn"}
        face_recognition's detector.
    min_face_px : float, optional
        The smallest face width searched for, in pixels of the full image (default: 2 % of its longer side;
        see :func:`acquisition.faces.detect_faces`).
    split : tuple of 3 floats
        Train, val, test fractions of the subjects (ignored with ``split_file``).
    split_file : Path, optional
        CSV of ``subject,split`` rows, instead of random fractions.
    seed : int
        Seed of the random split.
    compression : {"none", "lzf", "gzip"}
        HDF5 filter of the image datasets (none reads fastest).
    shard_size : int
        At most this many samples per shard.
    include_flagged : bool
        Also use pairs that registration flagged for review.
    """

    size: int = 512
    sigma_s: float = 16.0
    sigma_r: float = 0.1
    wide_factor: float = 2.0
    rotations_deg: tuple[float, ...] = (-20.0, -10.0, 0.0, 10.0, 20.0)
    framings: tuple[str, ...] = FRAMINGS
    mirror: bool = True
    face_model: str = "hog"
    min_face_px: float | None = None
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    split_file: Path | None = None
    seed: int = 0
    compression: str = "none"
    shard_size: int = 1000
    include_flagged: bool = False

    def __post_init__(self) -> None:
        check_finite_fields(self)
        if not 16 <= self.size <= 8192:
            raise ValueError(f"size must be between 16 and 8192, got {self.size}")
        if not (self.sigma_s > 0 and self.sigma_r > 0):
            raise ValueError("sigma_s and sigma_r must be positive")
        if not self.wide_factor >= 1.0:
            raise ValueError(f"wide_factor must be >= 1, got {self.wide_factor}")
        if not self.rotations_deg or not self.framings:
            raise ValueError("at least one rotation and one framing are needed")
        if len(set(self.framings)) != len(self.framings) or any(f not in FRAMINGS for f in self.framings):
            raise ValueError(f"framings must be distinct values of {FRAMINGS}, got {self.framings}")
        if self.face_model not in ("hog", "cnn"):
            raise ValueError(f"face_model must be 'hog' or 'cnn', not {self.face_model!r}")
        if self.min_face_px is not None and not self.min_face_px > 0:
            raise ValueError(f"min_face_px must be positive, got {self.min_face_px}")
        if self.compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {COMPRESSIONS}, not {self.compression!r}")
        if self.shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {self.shard_size}")
        object.__setattr__(self, "split", parse_fractions(self.split))
        object.__setattr__(self, "rotations_deg", tuple(float(r) for r in self.rotations_deg))
        object.__setattr__(self, "framings", tuple(self.framings))
        if self.split_file is not None:
            object.__setattr__(self, "split_file", Path(self.split_file))

    @property
    def augmentations(self) -> list[AugSpec]:
        return aug_table(self.rotations_deg, self.framings, self.mirror)

    def parameters(self) -> dict[str, Any]:
        """The build parameters as written into ``dataset.json`` (``min_face_px`` only when set, so datasets
        built before it existed keep their fingerprint)."""
        extra = {} if self.min_face_px is None else {"min_face_px": self.min_face_px}
        return extra | {
            "size": self.size, "sigma_s": self.sigma_s, "sigma_r": self.sigma_r, "wide_factor": self.wide_factor,
            "rotations_deg": list(self.rotations_deg), "framings": list(self.framings), "mirror": self.mirror,
            "face_model": self.face_model,
            "split": f"file:{self.split_file.name}" if self.split_file is not None else list(self.split),
            "seed": self.seed, "compression": self.compression, "shard_size": self.shard_size,
            "include_flagged": self.include_flagged,
        }


@dataclass(frozen=True)
class SkippedPair:
    """A pair that gave no samples, and why.

    ``broken``: its input is damaged or unusable (a corrupt image, no face); False for pairs left out on purpose
    (registration failed or flagged them). ``prep build-h5`` exits 1 when any pair is broken.
    """

    key: str
    reason: str
    broken: bool = True


@dataclass(frozen=True)
class BuildSummary:
    """What :func:`build_shards` produced."""

    shards_dir: Path
    shards: tuple[Path, ...]
    samples: dict[str, int]  # per split
    pairs: dict[str, int]  # pairs that gave samples, per split
    subjects: dict[str, str]  # subject -> split
    skipped: tuple[SkippedPair, ...]
    processed: int  # pairs processed by this call
    resumed: int  # pairs whose processing an interrupted earlier call had finished
    up_to_date: bool = False  # nothing to do: the folder already held this very dataset

    @property
    def total(self) -> int:
        return sum(self.samples.values())


@dataclass(frozen=True)
class _Job:
    pair: Pair
    split: str
    valid: Path
    config: BuildConfig
    samples_path: Path
    record_path: Path


# --------------------------------------------------------------------------------------------------- pair work

@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """torch single-threaded: the same bits whatever the number of cores (and workers are the parallelism)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def choose_face(flash: np.ndarray, studio: np.ndarray, *, model: str = "hog",
                min_face_px: float | None = None) -> FaceBox | None:
    """The face to crop, or None.

    One face: that one. Several: those also found in the studio image (IoU >= 0.3; all of them if none is);
    among those, the ones that a second detection without upsampling confirms (HOG's false positives, such as
    a round badge on a jacket, rarely survive it; all of them if none does); the largest of what is left.
    """
    from acquisition.faces import detect_faces

    boxes = detect_faces(flash, model=model, min_face_px=min_face_px)  # type: ignore[arg-type]
    if len(boxes) <= 1:
        return boxes[0] if boxes else None
    others = detect_faces(studio, model=model, min_face_px=min_face_px)  # type: ignore[arg-type]
    both = [box for box in boxes if any(box.iou(other) >= 0.3 for other in others)] or boxes
    if len(both) > 1:
        strict = detect_faces(flash, model=model, upsample=0, min_face_px=min_face_px)  # type: ignore[arg-type]
        both = [box for box in both if any(box.iou(other) >= 0.3 for other in strict)] or both
    return both[0]


def _read_valid(path: Path, shape: tuple[int, int]) -> np.ndarray:
    from acquisition.imageio import image_size, read_image

    height, width = image_size(path)  # the header first: a damaged mask may announce a huge picture
    if (height, width) != shape:
        raise DatasetGenError(f"valid mask is {width}x{height}, the flash image {shape[1]}x{shape[0]}", path=path,
                              hint=REGISTER_AGAIN_HINT)
    mask = read_image(path, damaged_hint=REGISTER_AGAIN_HINT)
    mask = mask[..., 0] if mask.ndim == 3 else mask
    if mask.shape != shape:
        raise DatasetGenError(f"valid mask is {mask.shape[1]}x{mask.shape[0]}, the flash image "
                              f"{shape[1]}x{shape[0]}", path=path, hint="run prep register again for this pair")
    return (mask > 0).astype(np.float32)


def render_pair(flash: np.ndarray, studio: np.ndarray, valid: np.ndarray, box: FaceBox,
                config: BuildConfig) -> dict[str, np.ndarray]:
    """All samples of one pair, in augmentation-index order, as the arrays of the shard schema.

    ``flash`` and ``studio`` are uint8 RGB at full resolution, ``valid`` a float32 mask (1 = real pixel).
    The bilateral filter runs on the final uint8 samples (as the shard stores them), once per unmirrored sample:
    the mirrored twin's BL is the flip of its BL (the filter commutes with mirroring).
    """
    from ._bilateral import bilateral_filter

    specs = config.augmentations
    rendered: dict[AugSpec, tuple[np.ndarray, ...]] = {}
    for framing in config.framings:
        plain = [AugSpec(r, framing, False) for r in config.rotations_deg]
        for spec, (f, s, v) in zip(plain, render_framing(flash, studio, valid, box, plain, config.size,
                                                          wide_factor=config.wide_factor), strict=True):
            f_bl = bilateral_filter(f.astype(np.float32) / 255, config.sigma_s, config.sigma_r)
            s_bl = bilateral_filter(s.astype(np.float32) / 255, config.sigma_s, config.sigma_r)
            target = np.clip((f_bl - s_bl + 1.0) * 0.5, 0.0, 1.0)
            rendered[spec] = (f, s, np.clip(f_bl, 0.0, 1.0).astype(np.float16), target.astype(np.float16), v)
    out = {name: np.empty((len(specs), *shape_of(config.size)), dtype)
           for name, (dtype, shape_of) in IMAGE_DATASETS.items()}
    for i, spec in enumerate(specs):
        arrays = rendered[AugSpec(spec.rotation_deg, spec.framing, False)]
        for name, array in zip(IMAGE_DATASETS, arrays, strict=True):
            out[name][i] = array[:, ::-1] if spec.mirrored else array
    out["aug"] = np.arange(len(specs), dtype=np.int16)
    return out


def _process_pair(job: _Job) -> dict[str, Any]:
    """Process one pair into its sample file and record; user-fixable problems become a 'skipped' record."""
    from acquisition.faces import default_min_face_px, to_uint8
    from acquisition.imageio import read_image

    pair = job.pair
    record: dict[str, Any] = {"pair": pair.key, "subject": pair.subject, "pose": pair.pose, "split": job.split}
    try:
        flash = to_uint8(read_image(pair.flash, damaged_hint=REGISTER_AGAIN_HINT))
        studio = to_uint8(read_image(pair.studio, damaged_hint=REGISTER_AGAIN_HINT))
        if flash.shape != studio.shape:
            raise DatasetGenError(f"studio image is {studio.shape[1]}x{studio.shape[0]}, flash image "
                                  f"{flash.shape[1]}x{flash.shape[0]}", path=pair.studio,
                                  hint="aligned pairs must have the same size: run prep register again")
        valid = _read_valid(job.valid, flash.shape[:2])
        box = choose_face(flash, studio, model=job.config.face_model, min_face_px=job.config.min_face_px)
        if box is None:
            smallest = job.config.min_face_px or default_min_face_px(flash.shape)
            raise DatasetGenError("no face found in the flash image", path=pair.flash,
                                  hint=f"the pair is left out; retake it, try --face-model cnn, or lower "
                                       f"--min-face-px (faces narrower than {smallest:.0f} px are not searched for)")
        with _one_thread():
            arrays = render_pair(flash, studio, valid, box, job.config)
    except PrepError as exc:
        record.update(status="skipped", reason=str(exc), samples=0)
    except MemoryError:
        record.update(status="skipped", samples=0, reason=f"{pair.directory}: not enough memory for this pair "
                      "(close other programs or pass fewer --workers, then run the same command again)")
    except (ValueError, cv2.error) as exc:  # OpenCV/numpy on input they cannot handle: this pair only
        log.debug("%s: cannot process", pair.key, exc_info=True)
        record.update(status="skipped", samples=0,
                      reason=f"{pair.directory}: cannot process ({type(exc).__name__}: {exc}) (register it again "
                             "with prep register --force, or remove the pose folder)")
    else:
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        with atomic_write(job.samples_path, "wb", durable=False) as handle:
            handle.write(buffer.getbuffer())
        record.update(status="ok", reason="", samples=len(arrays["aug"]),
                      face=[box.left, box.top, box.right, box.bottom])
    write_json_atomic(job.record_path, record, durable=False)
    return record


# ------------------------------------------------------------------------------------------------ selection

@dataclass(frozen=True)
class _Verdict:
    """A pair's row of ``registration.csv``."""

    status: str
    reason: str = ""
    line: int | None = None


_RETAKE_WORDS: Final = ("cannot read", "decode", "truncated", "corrupt", "covers only", "aspect", "overlap",
                        "too small", "no such file", "not a regular file", "too large")


def _failed_advice(reason: str) -> str:
    """What to do about a pair whose registration failed, from its reason: the shots, or the registration."""
    if any(words in reason.lower() for words in _RETAKE_WORDS):
        return "fix or retake its shots, then run prep register again"
    return "run prep register again with --force; if it fails again, retake the pair"


def _registration_status(aligned_dir: Path) -> tuple[dict[str, _Verdict] | None, list[SkippedPair]]:
    """``subject/pose`` -> its row of ``registration.csv`` (None when the file is absent: all pairs ok), and
    the rows that cannot be read, name no pair or hold no valid status, each skipped and reported on its own
    (with the file and line)."""
    path = aligned_dir / REGISTRATION_CSV
    if not require_regular(path, error=DatasetGenError):
        return None, []
    try:
        rows, problems = read_csv_rows(path, error=DatasetGenError)
    except OSError as exc:
        raise DatasetGenError(f"cannot read: {exc.strerror or exc}", path=path, hint="run prep register again") from exc
    columns = rows[0].values.keys() if rows else {"subject", "pose", "status"}
    if not ({"subject", "pose", "status"} <= columns or ({"pair", "key"} & columns and "status" in columns)):
        raise DatasetGenError("expected columns subject, pose and status", path=path,
                              hint="run prep register again to rewrite it")
    statuses: dict[str, _Verdict] = {}
    bad = [SkippedPair(f"{REGISTRATION_CSV} line {p.line}", f"{p} (the row is ignored; run prep register again)")
           for p in problems]
    for number, row in ((r.line, r.values) for r in rows):
        status = (row.get("status") or "").strip()
        reason = (row.get("reason") or "").strip()
        if row.get("subject") and row.get("pose"):
            key = f"{row['subject']}/{row['pose']}"
        elif row.get("pair") or row.get("key"):
            key = row.get("pair") or row.get("key") or ""
        else:  # e.g. a subject folder that prep register refused as a whole (a bad name)
            what = (row.get("subject") or "").strip() or f"{REGISTRATION_CSV} line {number}"
            if status == "failed":
                bad.append(SkippedPair(what, f"registration failed: {reason or 'no reason given'}", broken=False))
            else:
                bad.append(SkippedPair(what, f"{path} line {number} names no pair (subject and pose are needed)"))
            continue
        if key in statuses:  # named twice (a hand edit): which row holds cannot be told, so neither does
            first = statuses[key].line
            statuses[key] = _Verdict("invalid", line=number)
            bad.append(SkippedPair(key, f"{path} lines {first} and {number} both name it: which one holds is "
                                        "unclear (delete one row, or run prep register again)"))
            continue
        if status not in ("ok", "flagged", "failed"):
            statuses[key] = _Verdict("invalid", line=number)
            bad.append(SkippedPair(key, f"{path} line {number}: status {status!r} is not ok, flagged or failed "
                                        "(run prep register again)"))
            continue
        statuses[key] = _Verdict(status, reason, number)
    return statuses, bad


def _pose_record_status(pose_dir: Path) -> str | None:
    """The status ``prep register`` recorded in a pose folder's ``registration.json`` (None: unfinished pose)."""
    try:
        status = json.loads(read_text(pose_dir / POSE_RECORD))["result"]["status"]
    except (OSError, ValueError, KeyError, TypeError, PrepError):
        return None
    return status if status in ("ok", "flagged", "failed") else None


def _select(aligned_dir: Path, config: BuildConfig) -> tuple[list[Pair], list[SkippedPair]]:
    discovery = discover_pairs(aligned_dir)
    skipped = [SkippedPair(str(p.path), p.reason) for p in discovery.problems]
    statuses, bad_rows = _registration_status(aligned_dir)
    skipped += bad_rows
    if statuses is None and any((pair.directory / POSE_RECORD).is_file() for pair in discovery.pairs):
        # prep register stopped before writing its CSV: each finished pose still holds its own verdict.
        statuses = {pair.key: _Verdict(status) for pair in discovery.pairs
                    if (status := _pose_record_status(pair.directory)) is not None}
    present = {pair.key for pair in discovery.pairs}
    for key, verdict in (statuses or {}).items():
        if key not in present and verdict.line is not None and verdict.status in ("ok", "flagged"):
            skipped.append(SkippedPair(key, f"{aligned_dir / REGISTRATION_CSV} line {verdict.line}: there is no "
                                            f"pose folder {aligned_dir / key} (the row is ignored; run prep "
                                            "register again)"))
    chosen = []
    for pair in discovery.pairs:
        verdict = _Verdict("ok") if statuses is None else statuses.get(pair.key)
        status = None if verdict is None else verdict.status
        if verdict is None:
            skipped.append(SkippedPair(pair.key, f"not in {REGISTRATION_CSV} (run prep register)", broken=False))
        elif status == "invalid":
            continue  # reported with its line of the CSV
        elif status == "failed":
            skipped.append(SkippedPair(pair.key, f"registration failed: {verdict.reason or 'no reason recorded'} "
                                                 f"({_failed_advice(verdict.reason)})", broken=False))
        elif status == "flagged" and not config.include_flagged:
            skipped.append(SkippedPair(pair.key, "flagged by registration (check it with prep review; "
                                                 "--include-flagged uses it)", broken=False))
        elif not (pair.directory / VALID_NAME).is_file():
            skipped.append(SkippedPair(pair.key, f"{pair.directory / VALID_NAME}: missing ({REGISTER_AGAIN_HINT})"))
        else:
            chosen.append(pair)
    return chosen, skipped


# ------------------------------------------------------------------------------------------------ the build

def _file_stamp(path: Path) -> dict[str, Any] | None:
    try:
        return content_fingerprint(path, error=DatasetGenError)
    except OSError:
        return None


def _fingerprint(config: BuildConfig, subjects: dict[str, str], order: list[tuple[str, Pair]]) -> str:
    """What the dataset is made of: parameters, splits, pairs, and each input file's content fingerprint.

    A pair registered again (``prep register --force``) or an image replaced by hand (even by one of the same size
    and time) changes it, so neither a finished dataset nor an interrupted build's work files are ever reused for
    images that are not there any more.
    """
    pairs = [[split, pair.key, *(_file_stamp(p) for p in (pair.flash, pair.studio, pair.directory / VALID_NAME))]
             for split, pair in order]
    blob = json.dumps({"parameters": config.parameters(), "subjects": subjects, "pairs": pairs}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _clean(shards_dir: Path) -> None:
    """Remove what a build writes (and only that): shards, index, dataset.json, temp files, the work folder."""
    if not shards_dir.is_dir():
        return
    for entry in shards_dir.iterdir():
        ours = (parse_shard_filename(entry.name) is not None or entry.name in (INDEX_CSV, DATASET_JSON)
                or entry.name.startswith(TEMP_PREFIX))
        if entry.name == WORK_DIR and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        elif entry.name == WORK_DIR:
            kind = file_kind(entry.lstat().st_mode) if not entry.is_symlink() else "a symbolic link"
            raise DatasetGenError(f"is {kind or 'a file'}, where prep build-h5 keeps its work folder", path=entry,
                                  hint="remove or rename it, then run the command again")
        elif ours and entry.is_file():
            entry.unlink()


def _check_disk(shards_dir: Path, config: BuildConfig, samples: int) -> None:
    per_sample = sample_bytes(config.size) * (1.0 if config.compression == "none" else _COMPRESSED_RATIO)
    existing = sum(p.stat().st_size for p in shards_dir.glob("*.h5") if parse_shard_filename(p.name))
    # the shards, plus the per-pair sample files of the shard being assembled
    needed = samples * per_sample - existing + min(samples, config.shard_size + 40) * sample_bytes(config.size)
    free = shutil.disk_usage(shards_dir).free
    if needed > free:
        raise DatasetGenError(
            f"not enough free disk: the build needs about {human_size(needed)} "
            f"({samples} samples of {config.size}x{config.size}, ~{human_size(per_sample)} each), "
            f"{human_size(free)} are free", path=shards_dir,
            hint="free some space, choose another folder, or use --compression lzf or a smaller --size")


class _Assembler:
    """Cuts the stream of samples (in build order) into shards, writing each pair's rows as soon as it arrives.

    Rows go into the open shard (a temporary file, resizable) while the workers still make the next pairs, so
    with ``--workers N`` the writing overlaps the processing instead of trailing it; when a shard is full, or
    the split or the stream ends, it is shrunk to its count, fsynced and renamed. The sequence of writes depends
    only on the build order, so the bytes are the same for any number of workers and after a resume.
    """

    def __init__(self, shards_dir: Path, config: BuildConfig, jobs: dict[str, _Job], fingerprint: str) -> None:
        self.shards_dir = shards_dir
        self.config = config
        self.fingerprint = fingerprint
        self.jobs = jobs
        self.table = [spec.as_dict() for spec in config.augmentations]
        self.split: str | None = None
        self.index = 0
        self.pieces: list[tuple[dict[str, Any], Path, int, int]] = []  # record, samples file, start, stop
        self.fill = 0
        self.written: list[Path] = []
        self.h5: Any = None  # the open temporary shard; None when the shard is complete from an earlier call
        self.columns: dict[str, list[Any]] = {"subject": [], "pose": [], "aug": []}

    @property
    def final(self) -> Path:
        assert self.split is not None
        return self.shards_dir / shard_filename(self.split, self.index)

    @property
    def tmp(self) -> Path:
        return self.final.with_name(TEMP_PREFIX + self.final.name)

    def add(self, record: dict[str, Any], samples_path: Path) -> None:
        try:
            if record["split"] != self.split:
                self.flush()
                self.split, self.index = record["split"], 0
            start, total = 0, int(record["samples"])
            while start < total:
                take = min(total - start, self.config.shard_size - self.fill)
                if not self.pieces:
                    self._open()
                self._write_rows(record, samples_path, start, start + take)
                self.pieces.append((record, samples_path, start, start + take))
                self.fill += take
                start += take
                if self.fill == self.config.shard_size:
                    self.flush()
        except BaseException:
            self.abort()
            raise

    def _open(self) -> None:
        import h5py

        self.columns = {"subject": [], "pose": [], "aug": []}
        if self.final.is_file():  # written by an interrupted earlier call
            self.h5 = None
            return
        self.tmp.unlink(missing_ok=True)
        try:
            self.h5 = h5py.File(self.tmp, "w", **FILE_KWARGS)
            create_shard_datasets(self.h5, self.config.shard_size, self.config.size,
                                  compression=self.config.compression, resizable=True)
            write_shard_attrs(self.h5, split=self.split or "", size=self.config.size, sigma_s=self.config.sigma_s,
                              sigma_r=self.config.sigma_r, aug_table=self.table,
                              parameters=self.config.parameters(), build=self.fingerprint)
        except OSError as exc:
            raise self._write_error(exc) from exc

    def _write_rows(self, record: dict[str, Any], samples_path: Path, start: int, stop: int) -> None:
        if self.h5 is None:
            return
        if not samples_path.is_file():
            log.info("%s: work file gone, processing the pair again", record["pair"])
            _process_pair(self.jobs[record["pair"]])
        row = self.fill
        try:
            with open_regular(samples_path) as handle, np.load(handle) as arrays:
                for name in IMAGE_DATASETS:
                    self.h5[name][row:row + stop - start] = arrays[name][start:stop]
                self.columns["aug"].extend(int(a) for a in arrays["aug"][start:stop])
        except OSError as exc:
            raise self._write_error(exc) from exc
        except (ValueError, KeyError) as exc:
            raise DatasetGenError(f"the work file of pair {record['pair']} is unreadable ({exc})",
                                  path=samples_path, hint="run the same command with --force") from exc
        self.columns["subject"] += [record["subject"]] * (stop - start)
        self.columns["pose"] += [record["pose"]] * (stop - start)

    def flush(self) -> None:
        if not self.pieces:
            return
        final = self.final
        if self.h5 is not None:
            try:
                for name in (*IMAGE_DATASETS, "subject", "pose", "aug"):
                    self.h5[name].resize(self.fill, axis=0)
                self.h5["subject"][:] = self.columns["subject"]
                self.h5["pose"][:] = self.columns["pose"]
                self.h5["aug"][:] = np.asarray(self.columns["aug"], dtype=np.int16)
                self.h5.close()
                self.h5 = None
                with open(self.tmp, "rb+") as handle:
                    os.fsync(handle.fileno())
                os.replace(self.tmp, final)
                fsync_directory(final.parent)
            except OSError as exc:
                self.abort()
                raise self._write_error(exc) from exc
            except BaseException:
                self.abort()
                raise
            log.info("wrote %s (%d samples)", final.name, self.fill)
        # a pair's sample file is no longer needed once its last row is in a complete shard
        for record, samples_path, _, stop in self.pieces:
            if stop == record["samples"]:
                samples_path.unlink(missing_ok=True)
        self.written.append(final)
        self.pieces, self.fill = [], 0
        self.index += 1

    def abort(self) -> None:
        """Close and delete the unfinished shard (its pairs' work files stay, so a re-run resumes)."""
        if self.h5 is not None:
            with contextlib.suppress(Exception):
                self.h5.close()
            self.h5 = None
            self.tmp.unlink(missing_ok=True)

    def _write_error(self, exc: OSError) -> PrepError:
        return hdf5_lock_error(self.tmp, exc, error=DatasetGenError) or write_error(
            self.final, exc, error=DatasetGenError, lost="the shard in progress was discarded",
            then="run the same command again to resume")


def _work_name(pair: Pair) -> str:
    """A pair's work-file name: a hash of ``subject/pose``, since names of up to 255 bytes each (80 CJK characters
    are 240 bytes) would exceed the file system's limit once a suffix and an atomic write's prefix are added."""
    return hashlib.sha256(pair.key.encode("utf-8")).hexdigest()[:32]


def _record_path(work: Path, pair: Pair) -> Path:
    return work / "records" / f"{_work_name(pair)}.json"


def _free_work_samples(work: Path, exc: BaseException) -> None:
    """On a full disk, give back the space of the per-pair sample files not yet in a finished shard (the bulk
    of ``.work/``): a resume makes them again; its records and the finished shards stay."""
    samples = work / "samples"
    freed = sum(p.stat().st_size for p in samples.glob("*.npz") if p.is_file()) if samples.is_dir() else 0
    shutil.rmtree(samples, ignore_errors=True)
    if freed and isinstance(exc, PrepError):
        exc.message += f"; {human_size(freed)} of unfinished work files in {work} were removed to free space"


def _samples_path(work: Path, pair: Pair) -> Path:
    return work / "samples" / f"{_work_name(pair)}.npz"


def _load_record(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(read_text(path))
    except (OSError, ValueError, PrepError):
        return None
    return record if isinstance(record, dict) and "status" in record else None


def build_shards(aligned_dir: str | Path, shards_dir: str | Path, *, config: BuildConfig = BuildConfig(),
                 workers: int = 1, force: bool = False, progress: ProgressCallback | None = None) -> BuildSummary:
    """Build HDF5 training shards from a registered (``aligned/``) tree.

    Parameters
    ----------
    aligned_dir : path
        ``<subject>/<pose>/{flash,studio,valid}.png`` as written by ``prep register``, with its
        ``registration.csv`` (status ok / flagged / failed per pair; absent: every pair counts as ok).
    shards_dir : path
        Receives ``<split>-<NNNNN>.h5``, ``index.csv`` and, last, ``dataset.json``.
    config : BuildConfig
        Sizes, augmentations, filter, splits, compression (the paper's settings by default).
    workers : int
        Processes; the shards are byte-identical for any number.
    force : bool
        Rebuild even if ``shards_dir`` already holds a dataset (any earlier build output there is removed).
    progress : callable, optional
        Called with 1 per pair done.

    Returns
    -------
    BuildSummary

    Raises
    ------
    DatasetGenError
        No usable pair, a bad split file, too little free disk, ``shards_dir`` holding a different dataset
        (without ``force``), overlapping the aligned folder or being written by another run, or the aligned
        folder being written by ``prep register``.
    """
    aligned_dir, shards_dir = Path(aligned_dir), Path(shards_dir)
    if not aligned_dir.is_dir():
        raise DatasetGenError("no such folder", path=aligned_dir, hint="give the aligned/ folder of prep register")
    check_apart(aligned_dir, shards_dir, error=DatasetGenError, input_name="aligned", output_name="shards")
    refuse_if_being_written(aligned_dir, error=DatasetGenError, then="run prep build-h5 again")
    with claim_folder(shards_dir, error=DatasetGenError):
        for name in (DATASET_JSON, INDEX_CSV):  # our outputs: a folder or a FIFO there would fail at the very end
            require_regular(shards_dir / name, error=DatasetGenError)
        return _build(aligned_dir, shards_dir, config, workers=workers, force=force, progress=progress)


def _build(aligned_dir: Path, shards_dir: Path, config: BuildConfig, *, workers: int, force: bool,
           progress: ProgressCallback | None) -> BuildSummary:
    """:func:`build_shards` in a claimed output folder."""
    pairs, skipped = _select(aligned_dir, config)
    if not pairs:
        raise DatasetGenError("no usable registered pair", path=aligned_dir,
                              hint="run prep register first" + (f"; skipped: {skipped[0].key}: {skipped[0].reason}"
                                                                if skipped else ""))
    announce_total(progress, len(pairs))
    subjects = assign_splits((p.subject for p in pairs), fractions=config.split, seed=config.seed,
                             split_file=config.split_file)
    order = sorted(((subjects[p.subject], p) for p in pairs),
                   key=lambda sp: (SPLITS.index(sp[0]), sp[1].subject, sp[1].pose))
    fingerprint = _fingerprint(config, subjects, order)
    work = shards_dir / WORK_DIR
    dataset_json = shards_dir / DATASET_JSON
    if force:
        _clean(shards_dir)
    elif dataset_json.is_file():
        try:
            old = json.loads(read_text(dataset_json, error=DatasetGenError))
        except (OSError, ValueError):
            old = {}
        if old.get("fingerprint") == fingerprint:
            shutil.rmtree(work, ignore_errors=True)  # left over if a build stopped right after dataset.json
            return _summary_from_json(shards_dir, old)
        raise DatasetGenError("already holds a dataset built from other pairs, images or parameters",
                              path=shards_dir, hint="pass --force to rebuild it, or choose another folder")
    state_path = work / "state.json"
    state = _load_record(state_path) if state_path.is_file() else None
    if state is None or state.get("fingerprint") != fingerprint:
        if work.exists() or any(parse_shard_filename(p.name) for p in shards_dir.iterdir()):
            log.warning("%s: discarding an unfinished build made with other pairs or parameters", shards_dir)
        _clean(shards_dir)
        write_json_atomic(state_path, {"status": "building", "fingerprint": fingerprint})
    for stale in shards_dir.glob(TEMP_PREFIX + "*"):
        stale.unlink(missing_ok=True)

    # A pair with a record was processed by an earlier, interrupted call. Its sample file is gone only when its
    # shards are complete (deleted after them); should one be missing anyway, the assembler re-processes it.
    all_jobs = {pair.key: _Job(pair, split, pair.directory / VALID_NAME, config, _samples_path(work, pair),
                               _record_path(work, pair)) for split, pair in order}
    jobs: list[_Job] = []
    records: dict[str, dict[str, Any]] = {}
    for _split, pair in order:
        record = _load_record(_record_path(work, pair))
        if record is not None:
            records[pair.key] = record
        else:
            jobs.append(all_jobs[pair.key])
    n_aug = len(config.augmentations)
    _check_disk(shards_dir, config, len(order) * n_aug)
    resumed = len(order) - len(jobs)
    if progress and resumed:
        progress(resumed)

    assembler = _Assembler(shards_dir, config, all_jobs, fingerprint)
    results = map_in_order(_process_pair, jobs, workers=workers, progress=progress)
    try:
        for _split, pair in order:
            record = records.get(pair.key)
            if record is None:
                record = next(results)
            if record["status"] != "ok":
                skipped.append(SkippedPair(pair.key, record["reason"]))
                log.info("%s: skipped: %s", pair.key, record["reason"])  # the summary lists it for the user
            assembler.add(record, _samples_path(work, pair))
        assembler.flush()
    except BaseException as exc:  # Ctrl-C, kill, a write error: stop the workers, delete the unfinished shard
        results.close()
        assembler.abort()
        if is_disk_full(exc):
            _free_work_samples(work, exc)
        raise
    if not assembler.written:
        raise DatasetGenError("no samples: every pair was skipped", path=aligned_dir,
                              hint="; ".join(f"{s.key}: {s.reason}" for s in skipped[:3]))
    return _finish(shards_dir, work, config, subjects, fingerprint, assembler.written, skipped,
                   processed=len(jobs), resumed=resumed)


def _finish(shards_dir: Path, work: Path, config: BuildConfig, subjects: dict[str, str], fingerprint: str,
            shards: list[Path], skipped: list[SkippedPair], *, processed: int, resumed: int) -> BuildSummary:
    dataset = write_manifest(shards_dir, shards, parameters=config.parameters(),
                             aug_table=[spec.as_dict() for spec in config.augmentations], subjects=subjects,
                             skipped=[asdict(s) for s in skipped], fingerprint=fingerprint)
    shutil.rmtree(work, ignore_errors=True)
    summary = _summary_from_json(shards_dir, dataset)
    return dataclasses.replace(summary, shards=tuple(shards), processed=processed, resumed=resumed,
                               up_to_date=False)


def _summary_from_json(shards_dir: Path, data: dict[str, Any]) -> BuildSummary:
    counts = data.get("counts", {})
    return BuildSummary(
        shards_dir=shards_dir,
        shards=tuple(shards_dir / entry["file"] for entry in data.get("shards", [])),
        samples={split: int(counts.get(split, {}).get("samples", 0)) for split in SPLITS},
        pairs={split: int(counts.get(split, {}).get("pairs", 0)) for split in SPLITS},
        subjects=dict(data.get("subjects", {})),
        skipped=tuple(SkippedPair(s["key"], s["reason"], s.get("broken", True)) for s in data.get("skipped", [])),
        processed=0, resumed=0, up_to_date=True)

