"""The HDF5 shard schema, defined once: the dataset builder writes it, ``prep verify`` checks it, training reads it.

A shard ``<split>-<NNNNN>.h5`` holds N samples of side S:

=========  ==========  ============  ==================================================
dataset    dtype       shape         meaning
=========  ==========  ============  ==================================================
flash      uint8       (N, S, S, 3)  the flash crop, RGB
studio     uint8       (N, S, S, 3)  the registered studio crop, RGB
flash_bl   float16     (N, S, S, 3)  BL(flash) in [0, 1]: the network input
target     float16     (N, S, S, 3)  t = (BL(flash) - BL(studio) + 1) / 2, in [0, 1]
valid      uint8       (N, S, S)     1 where the studio crop holds real pixels
subject    str         (N,)          subject name
pose       str         (N,)          pose name
aug        int16       (N,)          augmentation index; its meaning in attribute aug_table
=========  ==========  ============  ==================================================

File attributes: ``format_version``, ``sigma_s``, ``sigma_r``, ``size``, ``split``, ``aug_table`` (JSON list,
one entry per index: rotation in degrees, framing, mirrored); since builds record them, also ``parameters`` (JSON:
every build parameter of ``dataset.json``, the framing's ``wide_factor`` among them) and ``build`` (the build's
fingerprint), so a shard names the dataset it belongs to (older shards lack these two). One sample per chunk, so
a random read touches one chunk.

Shards are only ever read after they are renamed into place; :func:`open_shard` reads them on file systems
without locks too (NFS), and :func:`read_error_words` words what goes wrong: a lock held by a writer, a lock
forced by ``HDF5_USE_FILE_LOCKING`` where there are none, a damaged file.
"""

from __future__ import annotations

import errno
import json
import re
from pathlib import Path
from typing import Any, Final

import h5py
import numpy as np

from acquisition.errors import PrepError
from acquisition.files import require_regular

from .errors import REBUILD_HINT

__all__ = ["ATTRS", "AUG_DATASET", "BUILD_ATTRS", "COMPRESSIONS", "FILE_KWARGS", "FORMAT_VERSION", "IMAGE_DATASETS",
           "SPLITS", "STRING_DATASETS", "check_shard", "create_shard_datasets", "hdf5_lock_error", "open_shard",
           "parse_shard_filename", "read_error_words", "sample_bytes", "shard_filename", "write_shard_attrs"]

FORMAT_VERSION: Final = 1
SPLITS: Final = ("train", "val", "test")

#: name -> (dtype, per-sample shape as a function of the side S)
IMAGE_DATASETS: Final = {
    "flash": (np.uint8, lambda s: (s, s, 3)),
    "studio": (np.uint8, lambda s: (s, s, 3)),
    "flash_bl": (np.float16, lambda s: (s, s, 3)),
    "target": (np.float16, lambda s: (s, s, 3)),
    "valid": (np.uint8, lambda s: (s, s)),
}
STRING_DATASETS: Final = ("subject", "pose")
AUG_DATASET: Final = "aug"
ATTRS: Final = ("format_version", "sigma_s", "sigma_r", "size", "split", "aug_table")
#: Attributes a build records beside ATTRS (absent from shards of older builds): the parameters as JSON, and
#: the fingerprint of the build.
BUILD_ATTRS: Final = ("parameters", "build")
COMPRESSIONS: Final = ("none", "lzf", "gzip")
_SHARD_NAME: Final = re.compile(r"(train|val|test)-(\d{5})\.h5")


def shard_filename(split: str, index: int) -> str:
    """``train-00000.h5`` and so on."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    return f"{split}-{index:05d}.h5"


def parse_shard_filename(name: str) -> tuple[str, int] | None:
    """``train-00003.h5`` -> ("train", 3); None for any other name."""
    match = _SHARD_NAME.fullmatch(name)
    return (match.group(1), int(match.group(2))) if match else None


def sample_bytes(size: int) -> int:
    """Uncompressed bytes of one sample of side ``size`` (about 4.98 MB at 512)."""
    return sum(int(np.prod(shape_of(size))) * np.dtype(dtype).itemsize
               for dtype, shape_of in IMAGE_DATASETS.values()) + 64


def create_shard_datasets(h5: h5py.File, count: int, size: int, *, compression: str = "none",
                          resizable: bool = False) -> None:
    """Create the datasets of the schema in an open, empty file, for ``count`` samples of side ``size``.

    ``resizable`` lets the writer fill a shard while its samples are still being made and shrink it to the
    final count (``resize``) when the last one is in; ``count`` is then the capacity.
    """
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression must be one of {COMPRESSIONS}, not {compression!r}")
    filters = {} if compression == "none" else {"compression": compression}
    if compression == "gzip":
        filters["compression_opts"] = 4
    for name, (dtype, shape_of) in IMAGE_DATASETS.items():
        shape = shape_of(size)
        extra = {"maxshape": (count, *shape)} if resizable else {}
        h5.create_dataset(name, shape=(count, *shape), dtype=dtype, chunks=(1, *shape), track_times=False,
                          **filters, **extra)
    extra = {"maxshape": (count,), "chunks": (min(count, 1024),)} if resizable else {}
    text = h5py.string_dtype(encoding="utf-8")
    for name in STRING_DATASETS:
        h5.create_dataset(name, shape=(count,), dtype=text, track_times=False, **extra)
    h5.create_dataset(AUG_DATASET, shape=(count,), dtype=np.int16, track_times=False, **extra)


#: Keyword arguments of ``h5py.File`` for writing shards: a fixed format version, so that the same samples
#: give the same bytes (with ``track_times=False`` on every dataset, a shard holds no timestamp). No HDF5 file
#: lock: a shard is written under a temporary name by the one run that holds the folder's run lock
#: (:mod:`acquisition.runlock`) and read only once renamed, so HDF5's lock would add nothing, and it fails on
#: file systems without locks (NFS: ENOLCK), where build-h5 must work like train does.
FILE_KWARGS: Final = {"libver": ("earliest", "v110"), "track_order": False, "locking": False}


def write_shard_attrs(h5: h5py.File, *, split: str, size: int, sigma_s: float, sigma_r: float,
                      aug_table: list[dict], parameters: dict[str, Any] | None = None,
                      build: str | None = None) -> None:
    """Write the file attributes of the schema (``aug_table`` as JSON: index -> rotation, framing, mirrored).

    ``parameters`` (every build parameter, as ``dataset.json`` records them) and ``build`` (the build's
    fingerprint) let a reader check cheaply that the shard belongs to the dataset its ``dataset.json`` describes.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    h5.attrs["format_version"] = FORMAT_VERSION
    h5.attrs["sigma_s"] = float(sigma_s)
    h5.attrs["sigma_r"] = float(sigma_r)
    h5.attrs["size"] = int(size)
    h5.attrs["split"] = split
    h5.attrs["aug_table"] = json.dumps(aug_table)
    if parameters is not None:
        h5.attrs["parameters"] = json.dumps(parameters, sort_keys=True)
    if build is not None:
        h5.attrs["build"] = build


#: errno values of a lock request on a file system without locks: NFS without lockd, FUSE, Lustre -o noflock.
_NO_LOCKS: Final = (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP)
_LOCK_ERRNO: Final = re.compile(r"unable to lock file, errno = (\d+)")


def _lock_errno(exc: OSError) -> int | None:
    """The errno of HDF5 failing to lock a file; None when ``exc`` is no lock failure."""
    match = _LOCK_ERRNO.search(str(exc))
    if match:
        return int(match.group(1))
    return exc.errno if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOLCK) else None


def read_error_words(exc: OSError) -> tuple[str, str]:
    """What an ``OSError`` from opening or reading a shard means, and the fix: ``(message, hint)``.

    A lock that cannot be taken is named as such (another process writing the file, or a file system without
    locks), never as damage; a cut-short or foreign file is damage, fixed by rebuilding.
    """
    text = str(exc)
    code = _lock_errno(exc)
    if code in _NO_LOCKS:
        return ("HDF5 cannot lock it: this file system has no file locks (NFS?)",
                "set HDF5_USE_FILE_LOCKING=FALSE (shards need no lock)")
    if code is not None:
        return ("is open for writing in another process (HDF5 file lock); is prep build-h5 running?",
                "wait for that process to finish, then run the command again")
    if "truncated file" in text:
        detail = re.search(r"eof = (\d+).*stored_eof = (\d+)", text)
        size = f" ({detail.group(1)} of {detail.group(2)} bytes)" if detail else ""
        return f"is cut short{size}", REBUILD_HINT
    if "file signature not found" in text:
        return "is not an HDF5 file", REBUILD_HINT
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "cannot be read (permission denied)", "check the file's permissions"
    if exc.errno == errno.ENOENT:
        return "has disappeared", REBUILD_HINT
    return f"cannot be read ({text})", REBUILD_HINT


def hdf5_lock_error(path: str | Path, exc: OSError, *, error: type[PrepError] = PrepError) -> PrepError | None:
    """The words for HDF5's own file lock refusing ``path`` (another process has it open for writing, or the
    file system has no locks), else None.

    h5py raises it as a bare ``BlockingIOError: ... unable to lock file, errno = 11`` (or 37 on NFS).
    """
    if _lock_errno(exc) is None:
        return None
    message, hint = read_error_words(exc)
    return error(message, path=path, hint=hint)


def open_shard(path: str | Path, *, error: type[PrepError] = PrepError) -> h5py.File:
    """Open a shard for reading; what commonly stops that is said in one line (``error``), not as HDF5's trace.

    A FIFO or a folder under a shard's name is refused before HDF5 would wait on it. Shards are only read, so
    the lock is a courtesy: HDF5's shared lock names a file another process holds open for writing
    (:func:`hdf5_lock_error`), and on a file system without locks (NFS: ``ENOLCK``; ``ENOSYS``, ``EOPNOTSUPP``)
    the shard opens read-only without locking (h5py ``locking=False``). ``HDF5_USE_FILE_LOCKING`` overrides
    both (HDF5 reads it first). Other failures (a truncated or foreign file) raise ``OSError`` as h5py does;
    :func:`read_error_words` words them.
    """
    require_regular(path, error=error)
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        failure = exc
        if _lock_errno(exc) in _NO_LOCKS:
            try:
                return h5py.File(path, "r", locking=False)
            except OSError as again:
                failure = again
        worded = hdf5_lock_error(path, failure, error=error)
        if worded is not None:
            raise worded from failure
        raise failure from None


def check_shard(h5: h5py.File) -> list[str]:
    """Schema problems of an open shard (names, dtypes, shapes, chunks, attributes); empty when it conforms."""
    problems: list[str] = []
    for name in ATTRS:
        if name not in h5.attrs:
            problems.append(f"attribute {name!r} missing")
    if problems:
        return problems
    if int(h5.attrs["format_version"]) != FORMAT_VERSION:
        problems.append(f"format_version {h5.attrs['format_version']} (this tool reads {FORMAT_VERSION})")
    size = int(h5.attrs["size"])
    count = None
    for name, (dtype, shape_of) in IMAGE_DATASETS.items():
        if name not in h5:
            problems.append(f"dataset {name!r} missing")
            continue
        ds = h5[name]
        if ds.dtype != np.dtype(dtype):
            problems.append(f"dataset {name!r} has dtype {ds.dtype}, expected {np.dtype(dtype)}")
        if ds.shape[1:] != shape_of(size):
            expected = ", ".join(map(str, shape_of(size)))
            problems.append(f"dataset {name!r} has shape {ds.shape}, expected (N, {expected})")
        if ds.chunks is None or ds.chunks[0] != 1:
            problems.append(f"dataset {name!r} is not chunked one sample per chunk")
        count = ds.shape[0] if count is None else count
        if ds.shape[0] != count:
            problems.append(f"dataset {name!r} holds {ds.shape[0]} samples, others {count}")
    for name in (*STRING_DATASETS, AUG_DATASET):
        if name not in h5:
            problems.append(f"dataset {name!r} missing")
        elif count is not None and h5[name].shape != (count,):
            problems.append(f"dataset {name!r} has shape {h5[name].shape}, expected ({count},)")
    if AUG_DATASET in h5 and not np.issubdtype(h5[AUG_DATASET].dtype, np.integer):
        problems.append(f"dataset 'aug' has dtype {h5[AUG_DATASET].dtype}, expected an integer type")
    for name in STRING_DATASETS:
        if name in h5 and h5[name].dtype.kind != "O" and h5py.check_string_dtype(h5[name].dtype) is None:
            problems.append(f"dataset {name!r} does not hold strings")
    return problems
