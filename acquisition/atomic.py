"""Write files so that a crash never leaves a partial file under the final name.

Every output of the toolkit goes through :func:`atomic_write`: the bytes land in a hidden temporary file in the
same folder, are flushed to disk, and only then renamed over the final name (``os.replace`` is atomic on
POSIX and Windows). Resumable stages rely on this: a file that exists under its final name is complete.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .errors import PrepError
from .files import open_regular
from .interrupts import deferred_stop_signals

__all__ = ["TEMP_PREFIX", "atomic_path", "atomic_write", "file_sha256", "fsync_directory", "write_bytes_atomic",
           "write_error", "write_json_atomic", "write_text_atomic"]

#: Temporary files start with this prefix; discovery and resume skip them, and they are safe to delete.
TEMP_PREFIX = ".tmp-"
_TEMP_NAME_BYTES = 100  # of the final name kept in a temporary name (a long name + prefix + suffix: > 255 bytes)


def _temp_prefix(path: Path) -> str:
    """``.tmp-<name>.``, with ``<name>`` cut to :data:`_TEMP_NAME_BYTES` (at a character boundary)."""
    name = path.name.encode("utf-8")[:_TEMP_NAME_BYTES].decode("utf-8", "ignore")
    return f"{TEMP_PREFIX}{name}."


def fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (a no-op where directories cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_error(path: Path, exc: OSError, *, error: type[PrepError] = PrepError,
                lost: str = "nothing was written under this name", then: str = "run the command again",
                folder: str = "another output folder") -> PrepError:
    """The user's words for an ``OSError`` while writing ``path``: a full disk, no permission, or other.

    ``lost`` says what the failure cost, ``then`` how to go on, ``folder`` which option picks another place;
    a stage passes its own (the capture session: the pose was discarded, go on with --resume).
    """
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return error(f"the disk is full; {lost}", path=path, hint=f"free some space or choose {folder}, then {then}")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return error(f"cannot write here ({exc.strerror})", path=path,
                     hint=f"check the folder's permissions or choose {folder}")
    if exc.errno == errno.EISDIR:
        return error("a folder is in the way of this file", path=path,
                     hint=f"remove or rename that folder, then {then}")
    if exc.errno in (errno.EEXIST, errno.ENOTDIR):  # mkdir of a parent, or a path through a file
        blocker = next((p for p in path.parents if (p.exists() or p.is_symlink()) and not p.is_dir()), None)
        if blocker is not None:
            return error(f"cannot create its folder: {blocker} is a file", path=path,
                         hint=f"move that file away or choose {folder}, then {then}")
    if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
        return error("is locked by another process", path=path, hint=f"wait for it to finish, then {then}")
    return error(f"could not write ({exc.strerror or exc})", path=path)


def _temp_file_beside(path: Path, *, suffix: str = "") -> tuple[int, Path]:
    """Create the temporary file for ``path`` in its folder: (open descriptor, name).

    A stop signal is held back while the file is made and raised only once it is deleted again: between its
    creation and the caller's ``try`` nothing would delete it.
    """
    made: tuple[int, str] | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with deferred_stop_signals():
            made = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=suffix, dir=path.parent)
        return made[0], Path(made[1])
    except BaseException as exc:
        if made is not None:
            os.close(made[0])
            Path(made[1]).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise write_error(path, exc) from exc
        raise


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb", *, durable: bool = True) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; rename it to ``path`` when the block ends without error.

    Parameters
    ----------
    path : str or Path
        The final name. Its folder is created when missing.
    mode : {"wb", "w"}
        Binary or text (UTF-8, ``\\n`` line ends).
    durable : bool
        Flush and fsync the file and its folder, so the rename survives a power cut.

    Raises
    ------
    PrepError
        When the disk is full or the folder is not writable; the final name is left untouched.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', not {mode!r}")
    path = Path(path)
    fd, tmp = _temp_file_beside(path)
    try:
        kwargs = {"encoding": "utf-8", "newline": "\n"} if mode == "w" else {}
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise write_error(path, exc) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_directory(path.parent)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for a tool that writes files by name (``adb pull``,
    ``SimpleITK.WriteTransform``); when the block ends without error it is fsynced and renamed to ``path``.

    The temporary name keeps ``path``'s extension, since such tools pick the format by it.
    """
    path = Path(path)
    fd, tmp = _temp_file_beside(path, suffix=path.suffix[:16])
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise write_error(path, exc) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def write_bytes_atomic(path: str | Path, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` through :func:`atomic_write`."""
    with atomic_write(path, "wb", durable=durable) as handle:
        handle.write(data)


def write_text_atomic(path: str | Path, text: str, *, durable: bool = True) -> None:
    """Write UTF-8 ``text`` to ``path`` through :func:`atomic_write`."""
    with atomic_write(path, "w", durable=durable) as handle:
        handle.write(text)


def write_json_atomic(path: str | Path, obj: Any, *, durable: bool = True) -> None:
    """Write ``obj`` as indented JSON (keys in insertion order, trailing newline)."""
    write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n", durable=durable)


def file_sha256(path: str | Path) -> str:
    """SHA-256 hex digest of a file, read in 4 MiB blocks (manifests record it to prove a file is intact)."""
    digest = hashlib.sha256()
    with open_regular(path) as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()
