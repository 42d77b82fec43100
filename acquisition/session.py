"""The capture session: one subject, several poses, a flash shot and a studio shot per pose.

Real and simulated captures run this same code; only the lamp controller and the camera differ. Per pose:

1. lamps on, wait ``lamp_settle_ms``, studio shot (flash off);
2. lamps off, wait ``dark_wait_ms``, flash shot (flash on; a phone's AUTO flash fires because it is dark);
3. verify both files (they decode, have the same size, and the EXIF ``Flash`` tag says fired in the flash shot
   only), write ``meta.json`` (timestamps of every command and shot, measured delays, camera, lamps, tool
   version, plus what the camera recorded in :attr:`Shot.extra`), append a row to ``<root>/manifest.csv``
   (flushed and fsynced), then tell the camera the shots are stored (:meth:`Camera.shots_stored`: it may delete
   its copies).

With ``SessionConfig.check``, each stored pose is then checked in the background (:mod:`acquisition.posecheck`:
blink, motion, exposure, flash, sharpness, face registration) while the operator prepares the next; the verdict
is awaited before the next pose's lamps come on, so the check never runs between the two shots of a pose
(``meta.json``'s ``timeline`` records ``check_started`` and ``check_finished``). It goes into ``meta.json``
(``check``), ``check.jpg`` and the manifest's ``check`` column; a failed check retakes the pose
(``auto_retake`` times, then as the operator answers).

The timings are the true ones: each shot's trigger is when the camera accepted it (``Shot.triggered_at``),
after any wait for a busy camera (``*_camera_wait`` in ``delays_ms``), not when the session asked.

Each pose is staged in a hidden folder ``<root>/<subject>/.<pose>.partial/`` (discovery ignores dot-names) and
renamed to ``<root>/<subject>/<pose>`` only when complete, so an interruption (Ctrl-C, an unplugged port, a
camera error, a full disk) never leaves half a pair in the layout. Whatever happens, the lamps end in the
configured safe state. ``<root>/<subject>/session.json`` is written when the session starts and updated when
it ends, so the session's settings survive an abort. A library: no printing; progress, prompts and messages go
through callbacks.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import logging
import math
import os
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from dataclasses import replace as with_fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from . import tool_version
from .atomic import file_sha256, fsync_directory, write_error, write_json_atomic, write_text_atomic
from .checks import check_finite_fields
from .devices import Camera, CameraInfo, FlashMode, LampController, Shot
from .errors import AcquisitionError, PrepError
from .files import open_regular, read_text, require_regular
from .layout import MANIFEST_NAME, META_NAME, check_name, discover_pairs, pose_dir
from .runlock import claim_folder
from .words import percent

__all__ = ["MANIFEST_FIELDS", "SESSION_NAME", "Action", "CheckShot", "PoseRecord", "Prompt", "RigCheck",
           "SessionConfig", "SessionEvent", "SessionResult", "VerificationError", "append_manifest_row",
           "capture_session", "check_rig", "complete_poses", "next_pose_number", "pose_name", "simulate_sessions",
           "subject_seed"]

log = logging.getLogger(__name__)

SESSION_NAME: Final = "session.json"
MANIFEST_FIELDS: Final = ("subject", "pose", "flash", "studio", "captured_at", "width", "height",
                          "flash_fired", "studio_flash_fired", "camera", "lamps", "flash_sha256", "studio_sha256",
                          "takes", "check")
_POSE_RE: Final = re.compile(r"^p(\d{2,})$")
_STAGING_SUFFIX: Final = ".partial"
_RETAKEN_SUFFIX: Final = ".old"  # a complete pose set aside while its retake is renamed into place

#: What the operator chose between poses.
Action = Literal["next", "retake", "skip", "quit"]


class VerificationError(AcquisitionError):
    """A pose whose files do not pass the checks (retake it): a corrupt file, sizes that differ, wrong flash."""


@dataclass(frozen=True)
class SessionConfig:
    """How a session shoots and checks each pose.

    Parameters
    ----------
    lamp_level : int
        DMX level 0-255 of the lamps when on.
    lamp_settle_ms : float
        Wait after the lamps-on command before the studio shot (LED drivers ramp; metering adapts).
    dark_wait_ms : float
        Wait after the lamps-off command before the flash shot. A phone whose flash is on AUTO needs its
        metering to see the dark first: about 1000 ms.
    flash : {"on", "auto"}
        What the flash shot asks the camera for (a phone's app stays on AUTO whatever is asked).
    expected_size : (width, height), optional
        Both shots must have this size (upright); None only requires that they match each other.
    check_flash : bool
        Require EXIF ``Flash`` = fired in the flash shot and not fired in the studio shot (a missing tag only
        warns).
    lamps_after : {"off", "on"}
        The safe state the lamps are left in when the session ends or is interrupted ("on" keeps the studio lit
        for the next subject).
    extension : str
        File extension of the shots (the camera's format).
    check : bool
        Check each pose in the background once it is stored (:mod:`acquisition.posecheck`); ``prep capture``
        turns it on (``--no-check`` off).
    auto_retake : int
        Retake a pose whose check fails up to this many times without asking (then the operator decides, or,
        with no one to ask, the pose is kept with its verdict).
    """

    lamp_level: int = 255
    lamp_settle_ms: float = 400.0
    dark_wait_ms: float = 100.0
    flash: FlashMode = "on"
    expected_size: tuple[int, int] | None = None
    check_flash: bool = True
    lamps_after: Literal["off", "on"] = "off"
    extension: str = ".jpg"
    check: bool = False
    auto_retake: int = 0

    def __post_init__(self) -> None:
        check_finite_fields(self)
        if not 0 <= self.lamp_level <= 255:
            raise ValueError(f"lamp_level must be 0-255, got {self.lamp_level}")
        if self.lamp_settle_ms < 0 or self.dark_wait_ms < 0:
            raise ValueError("lamp_settle_ms and dark_wait_ms must be >= 0")
        if self.flash not in ("on", "auto"):
            raise ValueError(f"flash must be 'on' or 'auto', got {self.flash!r}")
        if self.lamps_after not in ("off", "on"):
            raise ValueError(f"lamps_after must be 'off' or 'on', got {self.lamps_after!r}")
        if self.expected_size is not None and (len(self.expected_size) != 2 or min(self.expected_size) < 1):
            raise ValueError(f"expected_size must be (width, height) > 0, got {self.expected_size}")
        if int(self.auto_retake) != self.auto_retake or self.auto_retake < 0:
            raise ValueError(f"auto_retake must be a whole number >= 0, got {self.auto_retake}")
        if not self.extension.startswith("."):
            raise ValueError(f"extension must start with a dot, got {self.extension!r}")


@dataclass(frozen=True)
class SessionEvent:
    """Something the CLI may show: ``kind`` is one of ``start``, ``pose``, ``step``, ``captured``, ``checked``
    (a pose's check verdict: ``message`` is ``"p03 ok"`` or ``"p03 RETAKE: ..."``), ``retaking`` (an
    automatic retake), ``rechecking`` (a resumed session checks a pose whose check a stop cut short),
    ``failed``, ``skipped``, ``warning``, ``end``."""

    kind: str
    subject: str
    pose: str | None = None
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Prompt:
    """The question asked between poses: shoot ``next_pose``, retake ``last_pose``, skip, or quit.

    ``error`` is set when the last attempt failed (then "next" retries the same pose); ``check`` is the last
    pose's failed check (:class:`acquisition.posecheck.PairCheck`): then "retake" retakes it and "next" keeps it.
    """

    subject: str
    next_pose: str
    last_pose: str | None
    error: AcquisitionError | None = None
    check: Any = None


@dataclass(frozen=True)
class PoseRecord:
    """One pose written to the layout."""

    subject: str
    pose: str
    directory: Path
    flash: Path
    studio: Path
    delays_ms: dict[str, float]
    meta: dict[str, Any]


@dataclass(frozen=True)
class SessionResult:
    """What a session did: the poses it wrote (retakes included), skipped, and all complete poses now."""

    root: Path
    subject: str
    captured: tuple[PoseRecord, ...]
    skipped: tuple[str, ...]
    complete: tuple[str, ...]
    quit: bool


def pose_name(number: int) -> str:
    """``1`` → ``"p01"``."""
    if number < 1:
        raise ValueError(f"pose numbers start at 1, got {number}")
    return f"p{number:02d}"


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="microseconds")


def subject_seed(seed: int, index: int) -> int:
    """The simulated camera's seed for subject ``index`` of a run seeded with ``seed`` (stable across runs)."""
    digest = hashlib.sha256(f"deepflash-subject:{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def complete_poses(root: str | Path, subject: str) -> list[str]:
    """Names of the subject's complete poses (flash + studio), sorted."""
    root = Path(root)
    if not (root / subject).is_dir():
        return []
    return sorted(p.pose for p in discover_pairs(root).pairs if p.subject == subject)


def next_pose_number(root: str | Path, subject: str) -> int:
    """The number the subject's next pose gets: one after the highest existing ``pNN`` folder."""
    numbers = _pose_numbers(Path(root) / subject)
    return numbers[-1] + 1 if numbers else 1


def _pose_numbers(subject_dir: Path) -> list[int]:
    if not subject_dir.is_dir():
        return []
    return sorted(int(m.group(1)) for e in subject_dir.iterdir() if e.is_dir() and (m := _POSE_RE.match(e.name)))


def _disk_error(path: Path, exc: OSError) -> PrepError:
    return write_error(path, exc, error=AcquisitionError, lost="the pose in progress was discarded",
                       then="run again with --resume", folder="another --out")


# -- manifest ----------------------------------------------------------------------------------------------


def _read_manifest(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open_regular(path, "r", error=AcquisitionError, newline="") as handle:
        return list(csv.DictReader(handle))


def _rows_text(rows: Sequence[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=MANIFEST_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def append_manifest_row(root: str | Path, row: dict[str, Any]) -> None:
    """Append ``row`` to ``<root>/manifest.csv`` durably (flush + fsync); header first if the file is new.

    A failed write (disk full) truncates the file back to its previous length, so no partial row remains.
    """
    path = Path(root) / MANIFEST_NAME
    new = not path.is_file() or path.stat().st_size == 0
    if not new:
        _upgrade_manifest(path)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=MANIFEST_FIELDS, extrasaction="ignore", lineterminator="\n")
    if new:
        writer.writeheader()
    writer.writerow(row)
    data = out.getvalue().encode("utf-8")
    try:
        with open(path, "ab") as handle:
            before = handle.tell()
            try:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            except OSError:
                with contextlib.suppress(OSError):
                    handle.truncate(before)
                    os.fsync(handle.fileno())
                raise
    except OSError as exc:
        raise _disk_error(path, exc) from exc
    if new:
        fsync_directory(path.parent)


def _upgrade_manifest(path: Path) -> None:
    """Rewrite a manifest written with older columns under today's header (a row appended under the old header
    would put its values in the wrong columns); the missing values are empty."""
    with open_regular(path, "r", error=AcquisitionError, newline="") as handle:
        header = next(csv.reader(handle), [])
    if tuple(header) != MANIFEST_FIELDS:
        write_text_atomic(path, _rows_text(_read_manifest(path)))


def _rewrite_manifest(root: Path, keep: Callable[[dict[str, str]], bool],
                      add: Sequence[dict[str, Any]] = ()) -> None:
    path = root / MANIFEST_NAME
    rows = [r for r in _read_manifest(path) if keep(r)] + list(add)
    write_text_atomic(path, _rows_text(rows))


def _manifest_row(root: Path, record_meta: dict[str, Any], directory: Path) -> dict[str, Any]:
    shots = record_meta["shots"]
    rel = directory.relative_to(root).as_posix()
    return {
        "subject": record_meta["subject"], "pose": record_meta["pose"],
        "flash": f"{rel}/{shots['flash']['file']}", "studio": f"{rel}/{shots['studio']['file']}",
        "captured_at": record_meta["captured_at"], "width": shots["flash"]["width"],
        "height": shots["flash"]["height"], "flash_fired": shots["flash"]["flash_fired"],
        "studio_flash_fired": shots["studio"]["flash_fired"],
        "camera": " ".join(x for x in (record_meta["camera"]["make"], record_meta["camera"]["model"]) if x)
        or record_meta["camera"]["backend"],
        "lamps": record_meta["lamps"].get("backend", ""),
        "flash_sha256": shots["flash"]["sha256"], "studio_sha256": shots["studio"]["sha256"],
        "takes": 1 + len(record_meta.get("retakes", [])),
        "check": (record_meta.get("check") or {}).get("summary", ""),
    }


def _reconcile_manifest(root: Path, subject: str) -> None:
    """Make the manifest hold exactly one row per complete pose of ``subject``, its ``check`` column the verdict
    in the pose's ``meta.json`` (after a crash or a stop between the steps that write them)."""
    path = root / MANIFEST_NAME
    rows = _read_manifest(path)
    complete = set(complete_poses(root, subject))
    mine = [r for r in rows if r.get("subject") == subject]
    metas: dict[str, dict[str, Any]] = {}
    for pose in sorted(complete):
        with contextlib.suppress(PrepError, OSError, ValueError):
            metas[pose] = json.loads(read_text(root / subject / pose / META_NAME, error=AcquisitionError))
    seen: set[str] = set()
    stale = False
    for row in mine:
        if row.get("pose") not in complete or row.get("pose") in seen:
            stale = True
        seen.add(row.get("pose", ""))
        recorded = (metas.get(row.get("pose", ""), {}).get("check") or {}).get("summary")
        if isinstance(recorded, str) and row.get("check") != recorded:
            row["check"] = recorded  # a verdict written to meta.json, the stop came before the manifest's turn
            stale = True
    missing = []
    for pose in sorted(complete - seen):
        meta_path = root / subject / pose / META_NAME
        try:
            meta = json.loads(read_text(meta_path, error=AcquisitionError))
            missing.append(_manifest_row(root, meta, meta_path.parent))
        except (OSError, ValueError, KeyError) as exc:
            log.warning("%s: no usable meta.json (%s); the pose is not in the manifest", meta_path.parent, exc)
    if not stale and not missing:
        return
    kept: list[dict[str, str]] = []
    taken: set[str] = set()
    for row in rows:
        if row.get("subject") != subject:
            kept.append(row)
        elif row.get("pose") in complete and row.get("pose") not in taken:
            kept.append(row)
            taken.add(row["pose"])
    write_text_atomic(path, _rows_text(kept + missing))


# -- one pose ----------------------------------------------------------------------------------------------


def _sleep_until(deadline: float) -> None:
    if not math.isfinite(deadline):  # a NaN deadline would never pass: the lamps would stay lit forever
        raise ValueError(f"cannot wait until {deadline}")
    while True:
        left = deadline - time.perf_counter()
        if left <= 0:
            return
        time.sleep(min(left, 0.05) if left > 0.002 else 0)


def _verify(studio: Path, flash: Path, config: SessionConfig, warn: Callable[[str], None],
            decoded: dict[str, Any] | None = None) -> tuple[int, int]:
    """Check a pose's two files; ``decoded`` (when given) receives both pictures, decoded once for the check."""
    from .exif import read_flash_fired
    from .imageio import read_image

    shapes = {}
    for role, path in (("studio", studio), ("flash", flash)):
        try:
            picture = read_image(path)
            shapes[role] = picture.shape[:2]
            if decoded is not None:
                decoded[role] = picture
        except AcquisitionError as exc:
            hint = ("the copy is incomplete: the camera or phone was still writing it, or the transfer was cut; "
                    "retake the pose, and if it repeats check the cable" if "truncated" in exc.message else
                    "retake the pose; if it repeats, check the camera's image format (JPEG) and the cable")
            raise VerificationError(f"the {role} shot does not decode ({exc.message})", path=path,
                                    hint=hint) from exc
    (h, w), (fh, fw) = shapes["studio"], shapes["flash"]
    if (h, w) != (fh, fw):
        raise VerificationError(f"the flash shot is {fw}x{fh} but the studio shot is {w}x{h}", path=flash,
                                hint="keep the camera's image size and orientation fixed, then retake the pose")
    if config.expected_size is not None and (w, h) != tuple(config.expected_size):
        ew, eh = config.expected_size
        raise VerificationError(f"the shots are {w}x{h}, expected {ew}x{eh}", path=flash,
                                hint="set the camera's image size, or the expected size, then retake the pose")
    if config.check_flash:
        fired = read_flash_fired(flash)
        if fired is False:
            raise VerificationError("the flash did not fire in the flash shot (EXIF Flash)", path=flash,
                                    hint="switch the camera's flash on (a phone's to AUTO); a phone needs time "
                                         "in the dark to decide: raise --dark-wait-ms (about 1000), then retake")
        if fired is None:
            warn(f"{flash.name}: no EXIF Flash tag; cannot confirm that the flash fired")
        studio_fired = read_flash_fired(studio)
        if studio_fired is True:
            raise VerificationError("the flash fired in the studio shot (EXIF Flash)", path=studio,
                                    hint="the lamps were too dim for the phone's AUTO flash, or the camera's "
                                         "flash is forced on: raise --lamp-settle-ms or the lamp level, then "
                                         "retake")
        if studio_fired is None:
            warn(f"{studio.name}: no EXIF Flash tag; cannot confirm that the flash stayed off")
    return w, h


def _shared_extra(*shots: Shot) -> dict[str, Any]:
    """What the camera recorded (:attr:`Shot.extra`) for the pose as a whole, for the top of ``meta.json``.

    A key that only one shot has (the simulator's ``ground_truth_transform``) or that both have with the same
    value is about the pose; a key whose values differ (a shot index) stays with its shot only.
    """
    merged: dict[str, Any] = {}
    conflicting: set[str] = set()
    for shot in shots:
        for key, value in (getattr(shot, "extra", None) or {}).items():
            if key in merged and merged[key] != value:
                conflicting.add(key)
            merged.setdefault(key, value)
    return {k: v for k, v in merged.items() if k not in conflicting}


class _Session:
    """The state of one subject's session (the public entry point is :func:`capture_session`)."""

    def __init__(self, root: Path, subject: str, lamps: LampController, camera: Camera, config: SessionConfig,
                 on_event: Callable[[SessionEvent], None] | None) -> None:
        self.root = root
        self.subject = subject
        self.subject_dir = root / subject
        self.lamps = lamps
        self.camera = camera
        self.config = config
        self._on_event = on_event
        self.unrecorded_check: tuple[Any, PoseRecord] | None = None  # a pose's check whose verdict is not written
        self.decoded: dict[str, Any] | None = None  # the last pose's shots, decoded once for its check
        self.camera_info: CameraInfo = camera.info()
        describe = getattr(lamps, "describe", None)
        self.lamps_info: dict[str, Any] = describe() if callable(describe) else {"backend": lamps.name}
        self._late: dict[Path, list[str]] = {}  # files of a shot stored beside it before its meta.json is written
        # Files that arrive later (a late RAW, even while the camera closes) go into the pose's meta.json.
        camera.on_extra_file = self.extra_file_arrived

    def extra_file_arrived(self, shot: Path, extra: Path) -> None:
        """A file of ``shot`` was stored beside it after the capture: list it in the pose's ``meta.json``."""
        meta_path = shot.parent / META_NAME
        if not meta_path.is_file():  # the pose is still being shot: meta.json will list it
            self._late.setdefault(shot, []).append(extra.name)
            return
        try:
            meta = json.loads(read_text(meta_path, error=AcquisitionError))
            for record in meta.get("shots", {}).values():
                if record.get("file") == shot.name and extra.name not in record.setdefault("extra_files", []):
                    record["extra_files"].append(extra.name)
            write_json_atomic(meta_path, meta)
        except (PrepError, OSError, ValueError) as exc:
            log.warning("%s is stored beside %s, but its meta.json could not list it (%s)", extra.name, shot, exc)

    def emit(self, kind: str, pose: str | None = None, message: str = "", **data: Any) -> None:
        if kind == "warning":
            log.warning("%s", message)
        if self._on_event is not None:
            self._on_event(SessionEvent(kind, self.subject, pose, message, data))

    def shoot(self, pose: str, *, replace: bool, history: Sequence[dict[str, Any]] = ()) -> PoseRecord:
        """Shoot ``pose`` into the layout (replacing it atomically when ``replace``); ``history`` lists the takes
        it replaces (``meta.json``'s ``retakes``)."""
        final = pose_dir(self.root, self.subject, pose)
        staging = final.parent / f".{pose}{_STAGING_SUFFIX}"
        try:  # one try from the folder's creation on: a stop right after it must not leave it behind
            try:
                if staging.exists():
                    shutil.rmtree(staging)
                staging.mkdir(parents=True)
            except OSError as exc:
                raise _disk_error(staging, exc) from exc
            record, shots = self._shoot_staged(pose, staging, final, history)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        row = _manifest_row(self.root, record.meta, final)
        if replace:
            _rewrite_manifest(self.root, lambda r: not (r.get("subject") == self.subject and r.get("pose") == pose))
        try:
            append_manifest_row(self.root, row)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        old = final.parent / f".{pose}{_RETAKEN_SUFFIX}"
        try:
            if old.exists():
                shutil.rmtree(old)
            if final.exists():
                os.rename(final, old)
            os.rename(staging, final)
            fsync_directory(final.parent)
        except BaseException as exc:  # OSError, or Ctrl-C between the two renames: the retaken pose comes back
            if old.exists() and not final.exists():
                os.rename(old, final)
            shutil.rmtree(staging, ignore_errors=True)
            _reconcile_manifest(self.root, self.subject)
            if isinstance(exc, OSError):
                raise _disk_error(final, exc) from exc
            raise
        shutil.rmtree(old, ignore_errors=True)
        try:  # the camera may now free its copies (delete them from its card, if asked to)
            self.camera.shots_stored([with_fields(shot, path=final / shot.path.name,
                                                  companions=tuple(final / Path(c).name for c in shot.companions))
                                      for shot in shots])
        except AcquisitionError as exc:
            self.emit("warning", pose, f"{self.subject}/{pose} is stored, but the camera said: {exc}")
        return PoseRecord(record.subject, pose, final, final / record.flash.name, final / record.studio.name,
                          record.delays_ms, record.meta)

    def _shoot_staged(self, pose: str, staging: Path, final: Path,
                      history: Sequence[dict[str, Any]]) -> tuple[PoseRecord, tuple[Shot, Shot]]:
        config = self.config
        self.decoded = None
        marks: list[tuple[str, float, float]] = []
        self._late.clear()
        try:  # before the lamps: a camera may reconnect, or read a setting the operator changed
            self.camera.begin_pose()
        except AcquisitionError as exc:
            exc.message = f"before the pose: {exc.message}"
            exc.args = (str(exc),)
            exc.recoverable = True  # type: ignore[attr-defined]
            raise

        def mark(name: str) -> float:
            t = time.perf_counter()
            marks.append((name, time.time(), t))
            return t

        def shoot(role: str, flash: FlashMode) -> tuple[Shot, float, float, float]:
            """Capture; return the shot, when it was asked for, really triggered (after any busy wait) and saved.

            The camera's own clock says when it triggered and when the shot was on disk: what it does after
            that (download the shot's RAW, wait for a file) counts towards the gap to the next shot, not
            hidden in the capture.
            """
            t_request = mark(f"{role}_request")
            wall_request = marks[-1][1]
            shot = self._capture(staging / f"{role}{config.extension}", flash, role)
            t_returned = time.perf_counter()

            def at(wall: float) -> float:
                return min(t_returned, t_request + max(0.0, wall - wall_request))

            t_trigger = at(shot.triggered_at)
            t_saved = max(t_trigger, at(shot.saved_at))
            marks.append((f"{role}_trigger", wall_request + (t_trigger - t_request), t_trigger))
            marks.append((f"{role}_saved", wall_request + (t_saved - t_request), t_saved))
            marks.append((f"{role}_returned", time.time(), t_returned))
            return shot, t_request, t_trigger, t_saved

        self.emit("step", pose, "lamps on")
        t_on_cmd = mark("lamps_on_command")
        self.lamps.on(config.lamp_level)
        t_on = mark("lamps_on")
        _sleep_until(t_on + config.lamp_settle_ms / 1000.0)
        self.emit("step", pose, "studio shot")
        studio, t_studio_req, t_studio, t_studio_saved = shoot("studio", "off")
        t_studio_done = marks[-1][2]
        self.emit("step", pose, "lamps off")
        t_off_cmd = mark("lamps_off_command")
        self.lamps.off()
        t_off = mark("lamps_off")
        _sleep_until(t_off + config.dark_wait_ms / 1000.0)
        self.emit("step", pose, "flash shot")
        flash, t_flash_req, t_flash, t_flash_saved = shoot("flash", config.flash)
        pose_warnings: list[str] = []

        def warn(message: str) -> None:
            pose_warnings.append(message)
            self.emit("warning", pose, f"{self.subject}/{pose}: {message}")

        decoded: dict[str, Any] | None = {} if config.check else None
        width, height = _verify(studio.path, flash.path, config, warn, decoded)
        self.camera_info = self.camera.info()  # settings learnt while shooting (e.g. a missing flash setting)
        ms = 1000.0
        delays = {
            "lamps_on_command": (t_on - t_on_cmd) * ms,
            "settle": (t_studio - t_on) * ms,
            "studio_camera_wait": (t_studio - t_studio_req) * ms,
            "studio_capture": (t_studio_saved - t_studio) * ms,
            "studio_after_saved": (t_studio_done - t_studio_saved) * ms,
            "lamps_off_command": (t_off - t_off_cmd) * ms,
            "dark_wait": (t_flash - t_off) * ms,
            "flash_camera_wait": (t_flash - t_flash_req) * ms,
            "flash_capture": (t_flash_saved - t_flash) * ms,
            "between_shots": (t_flash - t_studio_saved) * ms,
            "pair_span": (t_flash_saved - t_studio) * ms,
            "pose_total": (t_flash_saved - t_on_cmd) * ms,
        }
        delays = {k: round(v, 3) for k, v in delays.items()}
        origin_wall, origin_perf = marks[0][1], marks[0][2]
        timeline = {name: _iso(origin_wall + (perf - origin_perf)) for name, _, perf in marks}
        meta: dict[str, Any] = {
            "subject": self.subject,
            "pose": pose,
            "captured_at": timeline["flash_saved"],
            "tool": {"name": "deepflash", "version": tool_version()},
            "camera": {"backend": self.camera_info.backend, "make": self.camera_info.make,
                       "model": self.camera_info.model, "settings": dict(self.camera_info.settings)},
            "lamps": {**self.lamps_info, "level": config.lamp_level},
            "config": {"lamp_settle_ms": config.lamp_settle_ms, "dark_wait_ms": config.dark_wait_ms,
                       "flash": config.flash, "check_flash": config.check_flash},
            "timeline": timeline,
            "delays_ms": delays,
            "shots": {role: self._shot_meta(shot, width, height)
                      for role, shot in (("studio", studio), ("flash", flash))},
            "warnings": pose_warnings,
            "check": {"status": "pending", "summary": "pending"} if config.check else {"status": "off",
                                                                                       "summary": "off"},
            "retakes": list(history),
        }
        meta.update(_shared_extra(studio, flash))
        write_json_atomic(staging / META_NAME, meta)
        fsync_directory(staging)
        self.decoded = decoded
        return PoseRecord(self.subject, pose, final, flash.path, studio.path, delays, meta), (studio, flash)

    def _capture(self, path: Path, flash: FlashMode, role: str) -> Shot:
        return self._capture_named(self.camera, path, flash, role)

    @staticmethod
    def _capture_named(camera: Camera, path: Path, flash: FlashMode, role: str) -> Shot:
        try:
            return camera.capture(path, flash=flash)
        except AcquisitionError as exc:
            # Name the shot: a failure in the dark flash shot (autofocus) is not one in the lit studio shot.
            exc.message = f"{role} shot (lamps {'on' if role == 'studio' else 'off'}): {exc.message}"
            exc.args = (str(exc),)
            exc.recoverable = True  # type: ignore[attr-defined]  # the operator may retry a camera error
            raise

    def _shot_meta(self, shot: Shot, width: int, height: int) -> dict[str, Any]:
        from .exif import read_flash_fired

        late = self._late.get(shot.path, [])
        return {"file": shot.path.name, "flash_requested": shot.flash_requested,
                "flash_fired": read_flash_fired(shot.path) if shot.flash_fired is None else shot.flash_fired,
                "triggered_at": _iso(shot.triggered_at), "saved_at": _iso(shot.saved_at),
                "camera_latency_ms": round(shot.latency_s * 1000.0, 3), "width": width, "height": height,
                "bytes": shot.path.stat().st_size, "sha256": file_sha256(shot.path),
                "extra_files": list(dict.fromkeys([*(Path(c).name for c in shot.companions), *late])),
                "extra": dict(getattr(shot, "extra", None) or {})}

    def start_check(self, record: PoseRecord) -> Any:
        """Check the pose just stored, in the background, on the pictures :func:`_verify` decoded."""
        from .posecheck import BackgroundCheck

        decoded, self.decoded = self.decoded, None
        images = (decoded["flash"], decoded["studio"]) if decoded else None
        check = BackgroundCheck(record.flash, record.studio, images=images, start=False)
        self.unrecorded_check = (check, record)
        check.start()
        return check

    def finish_check(self, pending: Any, record: PoseRecord, *, timeout_s: float = 60.0,
                     keep_pending: bool = False) -> Any:
        """Wait for a pose's verdict and record it: ``check.jpg``, ``meta.json``'s ``check`` and timeline, the
        manifest's ``check`` column (each written atomically); say it in one line (a ``checked`` event).

        ``keep_pending`` (a stop): a check still running after ``timeout_s`` is not recorded as one that did not
        finish: the pose stays ``pending``, and ``--resume`` checks it again (as does a second stop that cuts
        this wait short). Returns the verdict, None when it stays pending.
        """
        from .imageio import write_image
        from .posecheck import CHECK_IMAGE_NAME

        verdict, picture = pending.result(timeout_s)
        self.unrecorded_check = None
        if keep_pending and not pending.finished:
            return None
        try:
            if picture is not None:
                write_image(record.directory / CHECK_IMAGE_NAME, picture, quality=85)
            meta_path = record.directory / META_NAME
            meta = json.loads(read_text(meta_path, error=AcquisitionError))
            meta["check"] = verdict.as_meta()
            meta["timeline"]["check_started"] = _iso(pending.started_at)
            meta["timeline"]["check_finished"] = _iso(pending.finished_at)
            write_json_atomic(meta_path, meta)
            rows = _read_manifest(self.root / MANIFEST_NAME)
            for row in rows:
                if row.get("subject") == self.subject and row.get("pose") == record.pose:
                    row["check"] = verdict.summary
            write_text_atomic(self.root / MANIFEST_NAME, _rows_text(rows))
        except (OSError, ValueError) as exc:
            self.emit("warning", record.pose, f"{self.subject}/{record.pose}: the check's verdict could not be "
                      f"written ({exc})")
        self.emit("checked", record.pose, f"{record.pose} {verdict.summary}", status=verdict.status,
                  problems=list(verdict.problems), seconds=verdict.seconds)
        return verdict

    def safe_state(self) -> str | None:
        """Leave the lamps as configured; return a message when that failed."""
        try:
            if self.config.lamps_after == "on":
                self.lamps.on(self.config.lamp_level)
            else:
                self.lamps.off()
        except (PrepError, OSError) as exc:
            return f"could not switch the lamps {self.config.lamps_after}: {exc}"
        return None


def _session_json(session: _Session, poses: int, resume: bool, started: float) -> dict[str, Any]:
    path = session.subject_dir / SESSION_NAME
    data: dict[str, Any] = {}
    if resume and path.is_file():
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(read_text(path, error=AcquisitionError))
    runs = list(data.get("runs", []))
    runs.append({"started": _iso(started), "resume": resume, "finished": None, "status": "running"})
    data.update({
        "subject": session.subject,
        "tool": {"name": "deepflash", "version": tool_version()},
        "planned_poses": poses,
        "lamps": session.lamps_info,
        "camera": {"backend": session.camera_info.backend, "make": session.camera_info.make,
                   "model": session.camera_info.model, "settings": dict(session.camera_info.settings)},
        "config": asdict(session.config),
        "runs": runs,
    })
    return data


def capture_session(root: str | Path, subject: str, lamps: LampController, camera: Camera, *, poses: int,
                    config: SessionConfig | None = None, resume: bool = False,
                    ask: Callable[[Prompt], Action] | None = None,
                    on_event: Callable[[SessionEvent], None] | None = None,
                    progress: Callable[[int], None] | None = None) -> SessionResult:
    """Photograph ``subject`` in poses ``p01``..``pNN`` (``poses`` of them) into ``root``.

    Parameters
    ----------
    root : str or Path
        The raw layout's folder (created when missing): ``root/<subject>/<pose>/{flash,studio}.jpg`` with
        ``meta.json``, ``root/<subject>/session.json``, ``root/manifest.csv``.
    subject : str
        The subject's folder name (checked with :func:`acquisition.layout.check_name`).
    lamps, camera :
        Opened devices; the caller closes them.
    poses : int
        How many poses the subject has in all (with ``resume``, the poses already complete count).
    config : SessionConfig, optional
        Timing, checks and the lamps' safe state.
    resume : bool
        Continue an existing subject after its last complete pose. Without it an existing subject is an error.
        A pose whose check a stop cut short (``pending``) is checked first, its verdict recorded and acted on
        (retaken, asked about) as an uninterrupted run would have.
    ask : callable(Prompt) -> {"next", "retake", "skip", "quit"}, optional
        Asked before every pose but the first, and after a pose fails its checks or the camera fails: shoot
        the next pose (or retry the failed one), retake the last complete one (it is replaced only once the
        new one is complete), skip the next pose, or quit. None: poses run back to back, and a failure raises.
    on_event : callable(SessionEvent), optional
        Progress and warnings, for display.
    progress : callable(int), optional
        Called with 1 for every pose captured or skipped.

    Returns
    -------
    SessionResult

    Raises
    ------
    AcquisitionError
        The subject exists (without ``resume``), a device failed, a pose failed its checks (without ``ask``),
        the disk is full. The layout stays consistent and the lamps are left in ``config.lamps_after``.
    KeyboardInterrupt
        Passed on after the same clean-up.
    """
    config = config or SessionConfig()
    if poses < 1:
        raise ValueError(f"poses must be >= 1, got {poses}")
    root = Path(root)
    check_name(subject, what="subject")
    subject_dir = root / subject
    if subject_dir.exists() and not resume and any(subject_dir.iterdir()):
        done = complete_poses(root, subject)
        raise AcquisitionError(f"subject {subject} already exists ({len(done)} complete poses)", path=subject_dir,
                               hint="add --resume to continue it, or choose another --subject")
    try:
        subject_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _disk_error(subject_dir, exc) from exc
    with claim_folder(subject_dir, error=AcquisitionError):  # one session per subject at a time
        return _claimed_session(root, subject, subject_dir, lamps, camera, poses=poses, config=config,
                                resume=resume, ask=ask, on_event=on_event, progress=progress)


def _claimed_session(root: Path, subject: str, subject_dir: Path, lamps: LampController, camera: Camera, *,
                     poses: int, config: SessionConfig, resume: bool, ask: Callable[[Prompt], Action] | None,
                     on_event: Callable[[SessionEvent], None] | None,
                     progress: Callable[[int], None] | None) -> SessionResult:
    """:func:`capture_session` with the subject folder claimed."""
    for name in (root / MANIFEST_NAME, subject_dir / SESSION_NAME):  # a FIFO there would hang the first write
        require_regular(name, error=AcquisitionError)
    for leftover in subject_dir.glob(f".*{_STAGING_SUFFIX}"):
        shutil.rmtree(leftover, ignore_errors=True)  # a pose interrupted by a crash or power cut
    for set_aside in subject_dir.glob(f".*{_RETAKEN_SUFFIX}"):
        original = subject_dir / set_aside.name[1:-len(_RETAKEN_SUFFIX)]
        if original.exists():  # the retake made it: the old version is no longer needed
            shutil.rmtree(set_aside, ignore_errors=True)
        else:  # a crash between the two renames of a retake: the complete old pose comes back
            os.rename(set_aside, original)
    if resume:
        _reconcile_manifest(root, subject)
    session = _Session(root, subject, lamps, camera, config, on_event)
    records = _recorded_poses(root, subject) if resume else {}
    rechecks, redraws = _unrecorded_checks(records)
    owed = _owed_retake(records) if config.check and config.auto_retake else None
    if rechecks and not config.check:
        for record in rechecks:
            session.emit("warning", record.pose, f"{subject}/{record.pose}: its check was cut short by a stop and "
                         "is still pending: resume without --no-check to finish it")
        rechecks, redraws = [], []
    if config.lamps_after == "on" and not getattr(lamps, "holds_state_after_exit", True):
        session.emit("warning", None, f"lamps after the session: on, but the {lamps.name} lamps stay lit only while "
                     "prep runs (the computer keeps refreshing them); they go dark (or hold, as the fixtures are "
                     "set) when it exits: keep prep running, or use an Enttec DMX USB Pro or a relay board")
    started = time.time()
    state = _session_json(session, poses, resume, started)
    write_json_atomic(subject_dir / SESSION_NAME, state)
    numbers = _pose_numbers(subject_dir)
    complete = complete_poses(root, subject)
    last: str | None = complete[-1] if complete else None
    number = (numbers[-1] + 1) if numbers else 1
    session.emit("start", None, f"{subject}: poses {pose_name(number)}..{pose_name(max(number, poses))}"
                 if number <= poses else f"{subject}: all {poses} poses are complete", first=number, poses=poses)
    captured: list[PoseRecord] = []
    skipped: list[str] = []
    quit_ = False
    error: AcquisitionError | None = None
    status = "interrupted"
    pending: tuple[Any, PoseRecord] | None = None  # the last stored pose's check, running in the background
    history: dict[str, list[dict[str, Any]]] = {}  # per pose: the takes a retake replaced
    rechecked: list[str] = []
    try:
        for record in redraws:  # a verdict without its picture: drawn again, the verdict already acted on
            session.emit("rechecking", record.pose, f"{subject}/{record.pose}: its check picture is missing; "
                         "checking the pose again")
            session.finish_check(session.start_check(record), record)
            rechecked.append(record.pose)
        while True:
            action: Action | None = None
            if pending is None and not rechecks and owed is not None:
                record, owed = owed, None  # a RETAKE verdict whose automatic retake a stop came before
                if _automatic_retake(session, record, history):
                    action, last = "retake", record.pose
            if pending is None and rechecks:  # a check a stop cut short: its verdict, as the run would have had it
                record = rechecks.pop(0)
                session.emit("rechecking", record.pose, f"{subject}/{record.pose}: its check was cut short by a "
                             "stop; checking it again")
                pending = (session.start_check(record), record)
                rechecked.append(record.pose)
            if pending is not None:  # the verdict comes before the next pose's lamps: never between two shots
                check, checked = pending
                action = _after_check(session, check, checked, ask, history, next_pose=pose_name(number))
                pending = None
                if action == "retake":
                    last = checked.pose
                elif action is None and rechecks:
                    continue
            if number > poses and action != "retake":
                quit_ = action == "quit"
                break
            pose = pose_name(number)
            target, replace = pose, False
            if action is None and ask is not None and (last is not None or error is not None):
                action = ask(Prompt(subject, pose, last, error))
                if action == "retake" and last is not None:
                    _note_retake(history, root, subject, last, "the operator")
            if action is not None:
                if action == "quit":
                    quit_ = True
                    break
                if action == "skip":
                    skipped.append(pose)
                    session.emit("skipped", pose, f"{subject}/{pose} skipped")
                    if progress is not None:
                        progress(1)
                    number += 1
                    error = None
                    continue
                if action == "retake":
                    if last is None:
                        raise ValueError("nothing to retake yet")
                    target, replace = last, True
                elif action != "next":
                    raise ValueError(f"unknown action {action!r}")
            session.emit("pose", target, f"{subject}/{target}" + (" (retake)" if replace else ""), retake=replace,
                         take=len(history.get(target, ())) if replace else 0)
            try:
                record = session.shoot(target, replace=replace, history=history.get(target, ()) if replace else ())
            except AcquisitionError as exc:
                recoverable = isinstance(exc, VerificationError) or getattr(exc, "recoverable", False)
                if ask is None and recoverable:  # no one to press Enter: say how to go on
                    exc.hint = (f"{exc.hint}; then " if exc.hint else "") + \
                        f"run the same command with --resume ({target} was discarded)"
                    exc.args = (str(exc),)
                if ask is None or not recoverable:
                    raise
                error = exc
                session.emit("failed", target, str(exc))
                continue
            error = None
            captured.append(record)
            session.emit("captured", target, f"{subject}/{target}", delays_ms=record.delays_ms)
            if session.config.check:
                pending = (session.start_check(record), record)
            if not replace:
                if progress is not None:
                    progress(1)
                number += 1
            last = target
        status = "quit" if quit_ else "complete"
    except PrepError as exc:
        status = f"failed: {exc}"
        raise
    except KeyboardInterrupt as exc:
        name = getattr(exc, "signal_name", "SIGINT")
        status = f"interrupted ({'Ctrl-C' if name == 'SIGINT' else name})"
        if session.unrecorded_check is not None:  # the stored pose keeps its verdict (about a second's work)
            with contextlib.suppress(KeyboardInterrupt):  # a second stop cuts it short: the pose stays pending
                session.finish_check(*session.unrecorded_check, timeout_s=_CHECK_ON_STOP_S, keep_pending=True)
        raise
    finally:
        try:
            problem = session.safe_state()
        except KeyboardInterrupt:  # a second Ctrl-C or signal while the lamps were being switched
            problem = f"interrupted again while switching the lamps {config.lamps_after}"
        if problem is not None:
            session.emit("warning", None, problem)
        state["runs"][-1].update({"finished": _iso(time.time()), "status": status,
                                  "captured": [r.pose for r in captured], "skipped": skipped})
        if rechecked:
            state["runs"][-1]["rechecked"] = rechecked
        if problem is not None:
            state["runs"][-1]["lamps_problem"] = problem
        with contextlib.suppress(PrepError, OSError):
            write_json_atomic(subject_dir / SESSION_NAME, state)
    result = SessionResult(root, subject, tuple(captured), tuple(skipped), tuple(complete_poses(root, subject)),
                           quit_)
    session.emit("end", None, f"{subject}: {len(result.complete)} complete poses", complete=list(result.complete))
    return result


#: How long a stop (Ctrl-C, kill) waits for the last pose's check, so that pose keeps its verdict (s).
_CHECK_ON_STOP_S: Final = 10.0


def _recorded_poses(root: Path, subject: str) -> dict[str, PoseRecord | None]:
    """The subject's complete poses in pose order, each with what its ``meta.json`` records (None where that
    cannot be read), for a resumed session to finish what a stop left unfinished."""
    records: dict[str, PoseRecord | None] = {}
    for pair in sorted((p for p in discover_pairs(root).pairs if p.subject == subject), key=lambda p: p.pose):
        try:
            meta = json.loads(read_text(pair.directory / META_NAME, error=AcquisitionError))
        except (PrepError, OSError, ValueError):
            meta = None
        records[pair.pose] = (PoseRecord(subject, pair.pose, pair.directory, pair.flash, pair.studio,
                                         dict(meta.get("delays_ms") or {}), meta)
                              if isinstance(meta, dict) else None)
    return records


def _check_status(record: PoseRecord | None) -> str | None:
    """The recorded check status of a pose (None: unreadable, or captured before the check existed)."""
    check = record.meta.get("check") if record is not None else None
    return check.get("status") if isinstance(check, dict) else None


def _unrecorded_checks(records: dict[str, PoseRecord | None]) -> tuple[list[PoseRecord], list[PoseRecord]]:
    """The poses whose check has no recorded result: ``pending`` in ``meta.json`` (a stop, a second stop, a kill
    or a power cut came while it ran or while its verdict was written), and those whose verdict is recorded but
    whose ``check.jpg`` is missing (it is written before the verdict, so only when deleted), in pose order."""
    from .posecheck import CHECK_IMAGE_NAME

    pending, undrawn = [], []
    for record in records.values():
        status = _check_status(record)
        if record is None or status is None:
            continue
        drawn = status in ("ok", "retake") or (status == "unchecked" and bool(record.meta["check"].get("figures")))
        if status == "pending":
            pending.append(record)
        elif drawn and not (record.directory / CHECK_IMAGE_NAME).is_file():
            undrawn.append(record)
    return pending, undrawn


def _note_retake(history: dict[str, list[dict[str, Any]]], root: Path, subject: str, pose: str, by: str) -> None:
    """Add to ``history[pose]`` what ``meta.json``'s ``retakes`` keeps of the take about to be replaced: when, its
    verdict, its files' hashes; after the takes that take had itself replaced (its own ``retakes``, also those
    of an earlier run of a resumed session), so that ``retakes`` lists every take and ``take`` (0 for the first)
    is always its length."""
    record: dict[str, Any] = {"retaken_by": by}
    earlier: list[dict[str, Any]] = []
    with contextlib.suppress(PrepError, OSError, ValueError, KeyError, TypeError):
        meta = json.loads(read_text(root / subject / pose / META_NAME, error=AcquisitionError))
        earlier = [dict(r) for r in meta.get("retakes", []) if isinstance(r, dict)]
        record.update({"captured_at": meta["captured_at"], "check": (meta.get("check") or {}).get("summary", ""),
                       "flash_sha256": meta["shots"]["flash"]["sha256"],
                       "studio_sha256": meta["shots"]["studio"]["sha256"]})
    history[pose] = [*history.get(pose, earlier), record]


def _automatic_retake(session: _Session, record: PoseRecord, history: dict[str, list[dict[str, Any]]]) -> bool:
    """Whether a pose that failed its check is retaken automatically (fewer than ``auto_retake`` retakes by the
    check so far, counted from the take's own ``retakes`` so that a stop does not reset them); says so."""
    pose, limit = record.pose, session.config.auto_retake
    done = sum(1 for r in record.meta.get("retakes", []) if isinstance(r, dict) and r.get("retaken_by") == "the check")
    if done >= limit:
        return False
    session.emit("retaking", pose, f"{session.subject}/{pose}: automatic retake {done + 1} of {limit}")
    _note_retake(history, session.root, session.subject, pose, "the check")
    return True


def _owed_retake(records: dict[str, PoseRecord | None]) -> PoseRecord | None:
    """The last complete pose when its recorded verdict is RETAKE: a stop may have come between the verdict and
    the automatic retake an uninterrupted run would have shot next (the caller decides with
    :func:`_automatic_retake`). Only the last pose: an uninterrupted run retakes a pose before the next one."""
    last = list(records.values())[-1] if records else None
    return last if _check_status(last) == "retake" else None


def _after_check(session: _Session, pending: Any, record: PoseRecord, ask: Callable[[Prompt], Action] | None,
                 history: dict[str, list[dict[str, Any]]], *, next_pose: str) -> Action | None:
    """Record the last pose's verdict and decide what a failed one leads to: an automatic retake (up to
    ``auto_retake`` per pose), else the operator's answer (retake, keep = "next", skip, quit), else (no one to
    ask) keep it. None: nothing to decide (ok, or the check could not run).

    The automatic retakes already made are counted from the take's own ``retakes`` (those by the check), so a
    pose whose check a stop cut short gets, when resumed, the retakes an uninterrupted run would have made.
    """
    verdict = session.finish_check(pending, record)
    if verdict.status != "retake":
        return None
    if _automatic_retake(session, record, history):
        return "retake"
    pose = record.pose
    if ask is None:
        return None
    action = ask(Prompt(session.subject, next_pose, pose, None, check=verdict))
    if action == "retake":
        _note_retake(history, session.root, session.subject, pose, "the operator")
    return None if action == "next" else action  # kept: the next pose is asked for as usual


# -- the rig self-test -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckShot:
    """One shot of ``prep capture check``'s test pose, as the session would take it."""

    role: Literal["studio", "flash"]
    path: Path
    size: tuple[int, int]  #: (width, height), upright
    latency_ms: float  #: from the camera accepting the trigger to the file on disk
    camera_wait_ms: float  #: how long the camera kept the trigger waiting (busy writing the last shot)
    flash_fired: bool | None
    files: tuple[str, ...]  #: every file the shot produced: the shot's own, then the others (a RAW)


@dataclass(frozen=True)
class RigCheck:
    """What ``prep capture check`` measured: command latencies, and a test pose shot as the session shoots one.

    ``notes`` are what staff should know (the focus mode, a RAW that came along, a camera slow to be ready
    again); anything the session would fail on raises instead.
    """

    lamps: dict[str, Any]
    camera: CameraInfo
    lamp_on_ms: tuple[float, ...]
    lamp_off_ms: tuple[float, ...]
    shots: tuple[CheckShot, CheckShot]
    notes: tuple[str, ...] = ()

    @property
    def shot(self) -> Path:
        """The lit test shot."""
        return self.shots[0].path


_AUTOFOCUS_WORDS: Final = ("af", "auto")


def check_rig(lamps: LampController, camera: Camera, workdir: str | Path, *, blinks: int = 2, level: int = 255,
              settle_ms: float = 400.0, dark_wait_ms: float = 100.0, flash: FlashMode = "on",
              blink_s: float = 0.3, on_event: Callable[[SessionEvent], None] | None = None) -> RigCheck:
    """Blink the lamps ``blinks`` times, then shoot one test pose into ``workdir`` exactly as a session does
    (lamps on, settle, lit shot with the flash off; lamps off, dark wait, dark shot with the flash), and check it
    as a session does, so that what would fail the first pose fails here: autofocus that cannot lock in the
    dark, a camera still busy from the lit shot past its budget, no room on the card for a pose, no usable JPEG.

    The lamps end off; the camera is told the test shots are stored (it may delete them, as asked).
    ``blink_s`` is how long the lamps stay on, and off, in each blink.

    Raises
    ------
    AcquisitionError
        When a device fails or the test pose fails a check, with the device's own message and the fix.
    """
    if blinks < 1:
        raise ValueError(f"blinks must be >= 1, got {blinks}")
    for name, value in (("settle_ms", settle_ms), ("dark_wait_ms", dark_wait_ms), ("blink_s", blink_s)):
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)

    def emit(message: str) -> None:
        if on_event is not None:
            on_event(SessionEvent("step", "check", None, message))

    arrived: dict[Path, list[str]] = {}  # files of a test shot stored beside it later (a late RAW, a phone's DNG)
    before, camera.on_extra_file = camera.on_extra_file, lambda shot, extra: arrived.setdefault(
        Path(shot), []).append(Path(extra).name)
    try:
        return _check_pose(lamps, camera, workdir, arrived, blinks=blinks, level=level, settle_ms=settle_ms,
                           dark_wait_ms=dark_wait_ms, flash=flash, blink_s=blink_s, emit=emit)
    finally:
        camera.on_extra_file = before


def _check_pose(lamps: LampController, camera: Camera, workdir: Path, arrived: dict[Path, list[str]], *,
                blinks: int, level: int, settle_ms: float, dark_wait_ms: float, flash: FlashMode, blink_s: float,
                emit: Callable[[str], None]) -> RigCheck:
    """:func:`check_rig` once its arguments are checked (``arrived`` collects files stored beside a shot)."""
    from .imageio import read_image

    on_ms: list[float] = []
    off_ms: list[float] = []
    notes: list[str] = []

    def shoot(role: Literal["studio", "flash"], flash_mode: FlashMode) -> tuple[Shot, float]:
        requested = time.time()
        shot = _Session._capture_named(camera, workdir / f"check-{role}.jpg", flash_mode, role)
        return shot, max(0.0, shot.triggered_at - requested) * 1000.0

    camera.begin_pose()
    camera.check_room(2)  # a pose is two shots: a card without room for them fails the first pose
    try:
        for i in range(blinks):
            emit(f"blink {i + 1}/{blinks}: lamps on")
            t = time.perf_counter()
            lamps.on(level)
            on_ms.append((time.perf_counter() - t) * 1000.0)
            time.sleep(blink_s)
            emit(f"blink {i + 1}/{blinks}: lamps off")
            t = time.perf_counter()
            lamps.off()
            off_ms.append((time.perf_counter() - t) * 1000.0)
            time.sleep(blink_s)
        lamps.on(level)
        _sleep_until(time.perf_counter() + settle_ms / 1000.0)
        emit("lit test shot")
        studio, studio_wait = shoot("studio", "off")
        lamps.off()
        _sleep_until(time.perf_counter() + dark_wait_ms / 1000.0)
        emit("dark test shot")
        dark, dark_wait = shoot("flash", flash)
    finally:
        with contextlib.suppress(PrepError, OSError):
            lamps.off()
    _verify(studio.path, dark.path, SessionConfig(lamp_settle_ms=settle_ms, dark_wait_ms=dark_wait_ms, flash=flash
                                                  if flash != "off" else "on"), notes.append)
    camera.shots_stored([studio, dark])
    info = camera.info()
    budget = getattr(camera, "busy_timeout_ms", None)
    if dark_wait > 100.0:
        share = (f", {percent(dark_wait / budget)} of the {budget:.0f} ms budget (camera_busy_timeout_ms)"
                 if budget else "")
        notes.append(f"the camera was busy for {dark_wait:.0f} ms after the lit shot{share}: it delays every flash "
                     "shot (a faster card helps)")
    focus = info.settings.get("focusmode") or info.settings.get("autofocus")
    if focus and any(word in str(focus).lower() for word in _AUTOFOCUS_WORDS) and "manual" not in str(focus).lower():
        notes.append(f"focus mode {focus}: autofocus locked in the dark this time, but may not for every subject; "
                     "focus with the lamps on, then switch the lens to MF")
    shots = []
    for role, shot, wait in (("studio", studio, studio_wait), ("flash", dark, dark_wait)):
        h, w = read_image(shot.path).shape[:2]
        files = tuple(dict.fromkeys((shot.path.name, *(Path(c).name for c in shot.companions),
                                     *arrived.get(shot.path, []))))
        shots.append(CheckShot(role, shot.path, (w, h), shot.latency_s * 1000.0, wait, shot.flash_fired, files))
    extra = sorted({name for s in shots for name in s.files[1:]})
    if extra:
        notes.append(f"each shot also brought {', '.join(extra)}: the camera writes more than a JPEG (RAW + JPEG), "
                     "which lengthens the gap between the two shots; JPEG alone is faster")
    describe = getattr(lamps, "describe", None)
    return RigCheck(describe() if callable(describe) else {"backend": lamps.name}, info, tuple(on_ms),
                    tuple(off_ms), (shots[0], shots[1]), tuple(notes))


# -- the virtual studio ----------------------------------------------------------------------------------


def simulate_sessions(root: str | Path, *, subjects: int, poses: int, size: tuple[int, int] = (3120, 4160),
                      seed: int = 0, portraits: str | Path | None = None, config: SessionConfig | None = None,
                      resume: bool = False, sim_config: Any = None, ask: Callable[[Prompt], Action] | None = None,
                      on_event: Callable[[SessionEvent], None] | None = None,
                      progress: Callable[[int], None] | None = None) -> list[SessionResult]:
    """A whole session in the virtual studio: one subject per portrait, named after it, ``poses`` each.

    The same :func:`capture_session` as a real capture, with the simulated lamps and camera. Subject ``i``'s
    camera is seeded from ``(seed, i)``, so the same seed gives the same image bytes.

    Parameters
    ----------
    subjects : int
        Take the first ``subjects`` portraits.
    size : (width, height)
        Output size in pixels.
    portraits : folder, optional
        The user's own portraits (one subject per image); default: the embedded ones.
    config : SessionConfig, optional
        Default: no lamp settle or dark wait (the simulated lamps switch instantly) and the shots' size checked.

    Raises
    ------
    AcquisitionError
        When more subjects are asked for than there are portraits (the message says how many there are).
    """
    from .sim import SimulatedCamera, SimulatedLamps, default_portraits, load_portraits

    if subjects < 1:
        raise ValueError(f"subjects must be >= 1, got {subjects}")
    available = load_portraits(portraits) if portraits is not None else default_portraits()
    if subjects > len(available):
        where = f"in {portraits}" if portraits is not None else "embedded; --portraits DIR takes your own"
        raise AcquisitionError(f"asked for {subjects} subjects but there are only {len(available)} portraits "
                               f"{where}", path=portraits, hint=f"use --subjects {len(available)} or fewer")
    if not resume:  # refuse before writing anything, not after the first subjects
        for portrait in available[:subjects]:
            folder = Path(root) / portrait.name
            if folder.is_dir() and any(folder.iterdir()):
                raise AcquisitionError(f"subject {portrait.name} already exists", path=folder,
                                       hint="add --resume to continue, or choose another --out")
    config = config or SessionConfig(lamp_settle_ms=0.0, dark_wait_ms=0.0, expected_size=tuple(size))
    results = []
    for index, portrait in enumerate(available[:subjects]):
        with SimulatedLamps() as lamps:
            camera = SimulatedCamera(portrait, lambda lamps=lamps: lamps.state, size=tuple(size),
                                     seed=subject_seed(seed, index), config=sim_config)

            def events(event: SessionEvent, camera: Any = camera) -> None:
                # Each pose renders from its own random stream, so a resumed pose, or one retried after a failed
                # shot, gets the bytes an uninterrupted session would have written; a retake of a complete pose
                # is a new take of it (the subject poses again): its index, 0 for the first, is the number of
                # takes it replaces (meta.json's take, the length of its retakes, the manifest's takes - 1).
                if event.kind == "pose" and event.pose is not None:
                    camera.shot_index = 2 * (int(event.pose[1:]) - 1)
                    camera.take = int(event.data.get("take", 0))
                if on_event is not None:
                    on_event(event)

            with camera:
                results.append(capture_session(root, portrait.name, lamps, camera, poses=poses, config=config,
                                               resume=resume, ask=ask, on_event=events, progress=progress))
    return results
