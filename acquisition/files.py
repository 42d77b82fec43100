"""Reading the files a stage depends on: regular files only, and a cheap fingerprint of their content.

A FIFO left where ``registration.json`` or ``index.csv`` belongs makes a plain ``open`` wait forever for a
writer, and a folder there raises ``IsADirectoryError`` from deep inside a stage. :func:`open_regular` opens
without blocking, checks that the path is a regular file and turns anything else into one clear line. Resumable
stages decide "already done" by :func:`content_fingerprint`: size, modification time and a hash of the first and
last MiB, so a photo replaced by another of the same size and time (``cp`` then ``touch -r``) is seen.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path
from typing import IO, Any, Final

from .errors import PrepError

__all__ = ["FINGERPRINT_BLOCK", "content_fingerprint", "file_kind", "human_size", "is_disk_full", "open_regular",
           "read_bytes", "read_text", "require_regular"]

#: :func:`content_fingerprint` hashes this many bytes at each end of a file (the whole file when it is smaller
#: than two blocks).
FINGERPRINT_BLOCK: Final = 1 << 20

_KINDS: Final = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
                 (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def file_kind(mode: int) -> str | None:
    """None for a regular file, else what ``mode`` (an ``st_mode``) is in words: "a folder", "a FIFO ..."."""
    if stat.S_ISREG(mode):
        return None
    return next((words for test, words in _KINDS if test(mode)), "not a regular file")


def _not_a_file(path: Path, kind: str, error: type[PrepError]) -> PrepError:
    return error(f"is {kind}, not a regular file", path=path,
                 hint="remove or rename it, then run the command again")


def require_regular(path: str | Path, *, error: type[PrepError] = PrepError) -> bool:
    """Whether ``path`` exists; raise ``error`` (one line) when something other than a regular file is there.

    Symbolic links are followed. Use it before a stage writes or replaces a file it owns, so a folder or a FIFO
    in the way is reported instead of failing mid-write.
    """
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise error(f"cannot be examined ({exc.strerror or exc})", path=path) from exc
    kind = file_kind(mode)
    if kind is not None:
        raise _not_a_file(path, kind, error)
    return True


def open_regular(path: str | Path, mode: str = "rb", *, error: type[PrepError] = PrepError,
                 encoding: str | None = None, newline: str | None = None) -> IO[Any]:
    """Open a regular file for reading, never blocking: a FIFO, a device or a folder raises ``error`` instead.

    Parameters
    ----------
    path : str or Path
    mode : {"rb", "r"}
    error : type of PrepError
        Raised, naming ``path``, when it is not a regular file.
    encoding, newline :
        As for :func:`open` (text mode; ``encoding`` defaults to UTF-8).

    Raises
    ------
    FileNotFoundError, PermissionError, OSError
        As :func:`open` would (callers already treat a missing file their own way).
    PrepError
        ``error``, when ``path`` is a FIFO, socket, device or folder.
    """
    if mode not in ("rb", "r"):
        raise ValueError(f"mode must be 'rb' or 'r', not {mode!r}")
    path = Path(path)
    # O_NONBLOCK: opening a FIFO with no writer returns at once instead of waiting for one.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        kind = file_kind(os.fstat(fd).st_mode)
        if kind is not None:
            raise _not_a_file(path, kind, error)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        if mode == "r":
            return os.fdopen(fd, "r", encoding=encoding or "utf-8", newline=newline)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_text(path: str | Path, *, error: type[PrepError] = PrepError, encoding: str = "utf-8") -> str:
    """The text of a regular file (see :func:`open_regular`)."""
    with open_regular(path, "r", error=error, encoding=encoding) as handle:
        return handle.read()


def read_bytes(path: str | Path, *, error: type[PrepError] = PrepError) -> bytes:
    """The bytes of a regular file (see :func:`open_regular`)."""
    with open_regular(path, "rb", error=error) as handle:
        return handle.read()


def content_fingerprint(path: str | Path, *, error: type[PrepError] = PrepError) -> dict[str, Any]:
    """What "this input is unchanged" is judged by: name, size, modification time and a content hash.

    The hash (SHA-256) covers the first and the last :data:`FINGERPRINT_BLOCK` bytes and the size (the whole file
    when it is smaller than two blocks): a different photo differs there (headers, EXIF, the first rows of
    compressed data), while hashing a 12 MP JPEG whole would cost a multiple of this on every resume. An edit
    confined to the middle of a large uncompressed file that also keeps its size and time is not seen.

    Returns
    -------
    dict
        ``{"name", "size", "mtime_ns", "sha256"}``, JSON-serialisable; equal dicts mean an unchanged file.

    Raises
    ------
    OSError
        The file cannot be read (missing, no permission).
    PrepError
        ``error``, when ``path`` is not a regular file.
    """
    path = Path(path)
    with open_regular(path, "rb", error=error) as handle:
        info = os.fstat(handle.fileno())
        digest = hashlib.sha256(str(info.st_size).encode())
        if info.st_size <= 2 * FINGERPRINT_BLOCK:
            digest.update(handle.read())
        else:
            digest.update(handle.read(FINGERPRINT_BLOCK))
            handle.seek(-FINGERPRINT_BLOCK, os.SEEK_END)
            digest.update(handle.read(FINGERPRINT_BLOCK))
    return {"name": path.name, "size": info.st_size, "mtime_ns": info.st_mtime_ns, "sha256": digest.hexdigest()}


def human_size(size: float) -> str:
    """A byte count in words that never rounds a non-zero size to 0: ``"512 B"``, ``"3.4 MB"``, ``"12 GB"``.

    Decimal units (1 GB = 10**9 bytes, as disk tools and shops count), the largest in which the value is at
    least 1; one decimal below 10.
    """
    value, unit = float(size), "B"
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(value) < 1000 or unit == "PB":
            break
        value /= 1000
    if unit == "B":
        return f"{int(value)} B"
    return f"{value:.1f} {unit}" if abs(value) < 10 else f"{value:.0f} {unit}"


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether ``exc``, or an error it was raised from or while handling, is a full disk (or quota)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        exc = exc.__cause__ or exc.__context__
    return False
