"""One run per output folder: a lock that names its owner, and notices when that owner is gone.

Two runs writing one folder mix their outputs silently (a ``registration.csv`` from one run over pose folders of
the other; 64 px shards under a ``dataset.json`` that says 32). Every stage that writes a folder therefore claims
it first with :func:`claim_folder`: a second run refuses at once, naming the first (PID, host, start time,
command), and commands that read such a folder can ask :func:`folder_writer` whether a run is writing it.

How it works. The lock is the operating system's (``flock`` on ``<folder>/.prep-lock``), so it disappears with
its process however that process ends, ``kill -9`` included; the file also records the owner, for the message.
A file left by a run that ended without releasing it (killed, power cut) is taken over with a notice. Where
``flock`` is not supported (some network file systems) the record alone decides: its process is looked up on
this host, by PID *and* start time (a PID is reused after its process ends). A record written on another host
cannot be checked from here: that folder is refused with the fix (delete the lock file if that run is really
gone). ``filelock`` (a well-kept library) takes the same ``flock`` but records no owner and, on Unix, never
tells a stale lock from a live one, which is the whole message here; so this module uses ``fcntl`` directly.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shlex
import socket
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Final

from .atomic import write_error
from .errors import PrepError
from .files import file_kind
from .folders import make_output_folder
from .interrupts import deferred_stop_signals

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: the record alone decides
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_NAME", "RunLock", "RunOwner", "claim_folder", "folder_writer", "note_folders_being_written",
           "refuse_if_being_written"]

log = logging.getLogger(__name__)

#: The lock file in a claimed folder (hidden: discovery and the stages' listings skip it).
LOCK_NAME: Final = ".prep-lock"
_ATTEMPTS: Final = 5  # a reader's brief shared lock, or an owner between flock and its record, clears quickly
_NO_LOCKS: Final = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


@dataclass(frozen=True)
class RunOwner:
    """The process that claimed a folder, as recorded in its lock file."""

    pid: int
    host: str
    started: str  #: local time, ``2026-11-30 14:02:11``
    command: str
    boot_id: str | None = None  #: Linux: the boot this PID belongs to
    process_start: int | None = None  #: Linux: the process's start, in clock ticks since boot (PID reuse)

    def __str__(self) -> str:
        return f"PID {self.pid} on {self.host}, started {self.started}: {self.command}"

    @property
    def on_this_host(self) -> bool:
        return self.host == socket.gethostname()

    def is_alive(self) -> bool:
        """Whether this very process still runs (this host only; a reused PID does not count)."""
        if self.pid <= 0 or not self.on_this_host or (self.boot_id and self.boot_id != _boot_id()):
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # another user's process: it exists
            pass
        start, state = _process_start(self.pid)
        if state == "Z":  # a zombie has ended; it only waits for its parent
            return False
        return self.process_start is None or start is None or start == self.process_start

    @classmethod
    def current(cls) -> RunOwner:
        argv = [os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python", *sys.argv[1:]]
        return cls(pid=os.getpid(), host=socket.gethostname(), started=time.strftime("%Y-%m-%d %H:%M:%S"),
                   command=shlex.join(argv), boot_id=_boot_id(), process_start=_process_start(os.getpid())[0])


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _process_start(pid: int) -> tuple[int | None, str | None]:
    """Linux: a process's start time (clock ticks since boot; field 22 of /proc/PID/stat) and state letter."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None, None
    fields = text[text.rindex(")") + 2:].split()  # the command name, in parentheses, may hold spaces
    return int(fields[19]), fields[0]


def _parse_owner(data: bytes) -> RunOwner | None:
    try:
        record = json.loads(data.decode("utf-8"))
        owner = RunOwner(**{key: record.get(key) for key in RunOwner.__dataclass_fields__})
    except (ValueError, TypeError, AttributeError):
        return None
    valid = isinstance(owner.pid, int) and isinstance(owner.host, str) and isinstance(owner.started, str)
    return owner if valid and isinstance(owner.process_start, int | None) else None


def _read_owner(fd: int) -> RunOwner | None:
    try:
        return _parse_owner(os.pread(fd, 1 << 16, 0))
    except OSError:
        return None


def _busy(folder: Path, owner: RunOwner | None, error: type[PrepError], *, then: str | None = None) -> PrepError:
    """The refusal: for a run that would write (``then`` None) or read (``then``: what to do afterwards)."""
    if owner is None or owner.pid <= 0:
        return error("is being written by another run (it has not recorded itself yet)", path=folder,
                     hint="wait for it to finish" + (f", then {then}" if then else ""))
    if not owner.on_this_host:
        return error(f"is claimed by a run on another computer ({owner})", path=folder,
                     hint=f"wait for it to finish; if that run is really gone, delete {folder / LOCK_NAME} and run "
                          "again")
    if then is None and not owner.is_alive():  # the lock outlives its owner only while its children stop
        return error(f"is still held by processes of a run that has ended ({owner})", path=folder,
                     hint="they stop within seconds: run the command again shortly")
    if then is not None:
        return error(f"is being written by another run ({owner}); it is incomplete until that run ends",
                     path=folder, hint="wait for it to finish" + (f", then {then}" if then else ""))
    return error(f"is being written by another run ({owner})", path=folder,
                 hint=f"wait for it to finish or stop it (kill {owner.pid}); two runs writing one folder would mix "
                      "their outputs")


class RunLock:
    """A claimed folder; :meth:`release` (or leaving the ``with`` block) gives it back.

    Attributes
    ----------
    folder : Path
    owner : RunOwner
        This process, as recorded.
    taken_over : RunOwner or None
        The run that had ended without releasing the folder, when its lock was taken over.
    """

    def __init__(self, folder: Path, fd: int, owner: RunOwner, taken_over: RunOwner | None, *,
                 created: bool = False) -> None:
        self.folder = folder
        self.path = folder / LOCK_NAME
        self.owner = owner
        self.taken_over = taken_over
        self._fd: int | None = fd
        self._created = created

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Delete the lock file and give the lock back (idempotent); a folder the claim created and the run left
        empty (it failed before writing anything) goes too."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            # Delete first, then unlock: a run that opened the old file meanwhile sees it is gone and retries.
            with contextlib.suppress(OSError):
                here, mine = os.stat(self.path, follow_symlinks=False), os.fstat(fd)
                if (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino):
                    os.unlink(self.path)
        finally:
            os.close(fd)
        if self._created:
            with contextlib.suppress(OSError):
                self.folder.rmdir()  # only when empty

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.release()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.release()


def _open_lock_file(path: Path, error: type[PrepError]) -> int:
    flags = (os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
             | getattr(os, "O_CLOEXEC", 0))
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EISDIR):
            raise error("is a symbolic link or a folder, where the run lock file goes", path=path,
                        hint="remove it, then run the command again") from exc
        raise write_error(path, exc, error=error, lost="nothing was written") from exc
    kind = file_kind(os.fstat(fd).st_mode)
    if kind is not None:
        os.close(fd)
        raise error(f"is {kind}, where the run lock file goes", path=path, hint="remove it, then run the command again")
    return fd


def _same_file(fd: int, path: Path) -> bool:
    try:
        here = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    mine = os.fstat(fd)
    return (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino)


def _lock(fd: int) -> bool | None:
    """Take the exclusive flock: True, False when another holds it, None when the file system has no locks."""
    if fcntl is None:  # pragma: no cover
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as exc:
        if exc.errno in _NO_LOCKS:
            return None
        raise
    return True


def _still_claims(previous: RunOwner, locked: bool | None) -> bool:
    """Whether the run recorded in a lock file whose flock this process just got (or that has no flock) counts."""
    if not previous.on_this_host:
        return True  # another computer's lock may be invisible from here: the record is all there is
    if locked:
        # Locks work here and this one was free: no run holds the folder (a run holds its flock until it ends).
        # The record's PID may be alive all the same: reused by another process (an older or hand-made record
        # has no process start to tell), or this very process, having lost its lock object.
        return False
    return previous.is_alive()  # no locks on this file system: the record decides


def _refuse_inside_a_busy_folder(folder: Path, error: type[PrepError]) -> None:
    """Raise ``error`` when a folder around ``folder`` is being written by another run (``enhance photos
    out/sub`` while another run fills ``out/``: its files would mix with that run's)."""
    me = os.getpid()
    for around in Path(os.path.abspath(folder)).parents:
        owner = folder_writer(around)
        if owner is not None and owner.pid != me:
            raise _busy(around, owner, error)


def claim_folder(folder: str | Path, *, error: type[PrepError] = PrepError) -> RunLock:
    """Create ``folder`` if needed and claim it for this run; a second run refuses until this one releases it.

    Parameters
    ----------
    folder : str or Path
        The stage's output folder (``aligned/``, ``shards/``, a run folder, a subject folder).
    error : type of PrepError
        The stage's error class, for the one-line messages.

    Returns
    -------
    RunLock
        Use it as a context manager, or call :meth:`RunLock.release`. The lock also ends with the process.

    Raises
    ------
    PrepError
        ``error``: another run is writing the folder or a folder around it (named: PID, host, start time,
        command), the folder was claimed on another computer, or it cannot be created (read-only parent, a file
        in the way).

    Examples
    --------
    >>> with claim_folder("aligned", error=RegistrationError):   # doctest: +SKIP
    ...     register_every_pair()
    """
    _refuse_inside_a_busy_folder(Path(folder), error)
    created = not os.path.lexists(folder)
    folder = make_output_folder(folder, error=error)
    me = RunOwner.current()
    for attempt in range(_ATTEMPTS * 2):
        claimed: RunLock | None = None
        try:
            # Held back: a stop between creating the lock file and owning it would leave a lock nobody releases.
            with deferred_stop_signals():
                claimed, wait = _attempt_claim(folder, me, last_try=attempt + 1 >= _ATTEMPTS, created=created,
                                               error=error)
        except BaseException:
            if claimed is not None:
                claimed.release()  # a stop held back above: the lock is given back before it is raised
            elif created:
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only when empty
            raise
        if claimed is not None:
            return claimed
        if wait:
            time.sleep(0.1)
    raise _busy(folder, None, error)  # pragma: no cover - the lock file kept vanishing


def _attempt_claim(folder: Path, me: RunOwner, *, last_try: bool, created: bool,
                   error: type[PrepError]) -> tuple[RunLock | None, bool]:
    """One try at ``folder``'s lock file: ``(lock, False)`` when claimed; ``(None, True)`` when another process holds
    its flock for a moment (wait, then try again); ``(None, False)`` when the owner deleted it meanwhile (open
    the new one at once)."""
    path = folder / LOCK_NAME
    fd = _open_lock_file(path, error)
    try:
        locked = _lock(fd)
        if locked is False:
            if last_try:
                raise _busy(folder, _read_owner(fd), error)
            os.close(fd)
            return None, True
        if not _same_file(fd, path):  # the owner deleted it while releasing: open the new one
            os.close(fd)
            return None, False
        previous = _read_owner(fd)
        if previous is not None and _still_claims(previous, locked):
            raise _busy(folder, previous, error)
        if previous is not None:
            log.warning("%s: taking over from a run that ended without releasing the folder (%s)", folder,
                        previous)
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(asdict(me)) + "\n").encode("utf-8"), 0)
        return RunLock(folder, fd, me, previous, created=created), False
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(fd)
        raise


def folder_writer(folder: str | Path) -> RunOwner | None:
    """The run writing ``folder`` now, or None (nobody, or a run that ended without releasing it).

    For commands that read a stage's output: a folder being written is incomplete. A run that holds the lock
    but has not recorded itself yet is returned with ``pid`` 0.
    """
    path = Path(folder) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
                     | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        if file_kind(os.fstat(fd).st_mode) is not None:
            return None
        owner = _read_owner(fd)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return owner or RunOwner(0, socket.gethostname(), "?", "?")
            except OSError:
                pass  # no locks on this file system: the record decides
            else:
                # Free here; a record from another computer still counts (its lock may be invisible from here).
                return owner if owner is not None and not owner.on_this_host else None
        return owner if owner is not None and (not owner.on_this_host or owner.is_alive()) else None
    finally:
        os.close(fd)


def refuse_if_being_written(folder: str | Path, *, error: type[PrepError] = PrepError, then: str = "") -> None:
    """Raise ``error`` when a run is writing ``folder`` (its contents are incomplete until it ends).

    ``then`` completes the hint: "wait for it to finish, then <then>".
    """
    owner = folder_writer(folder)
    if owner is not None:
        raise _busy(Path(folder), owner, error, then=then)


def note_folders_being_written(folders: Iterable[str | Path], *, then: str) -> list[Path]:
    """Log a one-line note for each of ``folders`` that a run is writing now; return those folders.

    For stages that may go on with what is finished (``prep register`` over ``raw/<subject>`` folders a capture
    is still filling: its finished poses are complete, the one under way is not yet there). ``then`` says how to
    catch up, e.g. "run prep register again once it has finished".
    """
    busy = []
    for folder in folders:
        owner = folder_writer(folder)
        if owner is not None:
            log.warning("%s is being written by another run (%s); what it has finished is used: %s", folder,
                        owner if owner.pid > 0 else "it has not recorded itself yet", then)
            busy.append(Path(folder))
    return busy
