"""``prep enhance`` on a folder: every photo under it, each output recorded with what it was made from.

A re-run resumes: an output is skipped only when its record says it was made from this photo as it is now
(:func:`acquisition.files.content_fingerprint`: size, time and a hash of both ends), with this checkpoint as it is
now and the same options; a photo replaced by another (even of the same name and size), a retrained checkpoint
or another ``--paste`` redoes it. The records are small JSON files in the hidden ``.prep-enhance/`` folder of the
output folder, one per output, named by a hash of its path (photo names stay as they are, however long), each
written atomically after its output; an output without a record (an interrupted run, a run before records
existed) is redone.

Every photo's failure is one line and the others go on: unreadable or not a photo (a broken link, a FIFO, a
camera RAW), no face, a write that fails, and any unexpected error of a library on that one photo.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from acquisition.atomic import write_json_atomic
from acquisition.errors import PrepError
from acquisition.faces import MIN_FACE_ENV
from acquisition.files import content_fingerprint
from acquisition.folders import check_apart
from acquisition.imageio import IMAGE_EXTENSIONS
from acquisition.layout import is_inside
from acquisition.progress import announce_total
from acquisition.runlock import claim_folder

from ._enhance import Enhancer, EnhanceResult, FaceChoice, Paste, enhance
from .errors import TrainingError

__all__ = ["RECORDS_DIR", "EnhanceTreeResult", "enhance_tree", "list_photos"]

log = logging.getLogger(__name__)

#: Hidden folder of the output folder that holds one record per output.
RECORDS_DIR: Final = ".prep-enhance"
_RECORD_VERSION: Final = 1


@dataclass(frozen=True)
class EnhanceTreeResult:
    """A folder of photos: those enhanced, those skipped (their output is up to date) and those that failed."""

    done: tuple[EnhanceResult, ...]
    skipped: tuple[Path, ...]
    failed: tuple[tuple[Path, str], ...]  #: (input file, why) -- unreadable, no face, not written...


def list_photos(in_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """The photos :func:`enhance_tree` will process: entries under ``in_dir`` named like images, hidden ones and
    ``out_dir`` left out.

    Anything that is not a folder counts, so a broken link or a FIFO named ``photo.jpg`` is reported when it is
    read rather than dropped without a word. ``out_dir`` may lie inside ``in_dir`` (``photos/`` →
    ``photos/studio/``): its files are never taken as input, so a re-run does not enhance its own outputs; nor
    are those of any folder an earlier enhance wrote (it holds a ``.prep-enhance/`` record folder).

    Raises
    ------
    TrainingError
        When ``in_dir`` is not a folder, or the output folder is the input folder or holds it.
    """
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if not in_dir.is_dir():
        raise TrainingError("no such input folder", path=in_dir)
    check_apart(in_dir, out_dir, error=TrainingError, output_inside_ok=True, risk="the photos would be overwritten")
    out_resolved = out_dir.resolve()
    out_absolute = out_dir.absolute()
    # Earlier runs' output folders (they hold a records folder) are outputs too, whatever DEST is this time.
    earlier = {records.parent for records in in_dir.rglob(RECORDS_DIR) if records.is_dir()}
    return sorted(p for p in in_dir.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and not p.is_dir()
                  and not any(part.startswith(".") for part in p.relative_to(in_dir).parts)
                  and out_absolute not in p.absolute().parents and out_resolved not in p.resolve().parents
                  and earlier.isdisjoint(p.parents))


def _record_path(out_dir: Path, relative: Path) -> Path:
    return out_dir / RECORDS_DIR / f"{hashlib.sha256(relative.as_posix().encode()).hexdigest()[:24]}.json"


def _made_from(photo: Path, checkpoint: Path, options: dict[str, Any]) -> dict[str, Any]:
    return {"version": _RECORD_VERSION, "input": content_fingerprint(photo, error=TrainingError),
            "checkpoint": content_fingerprint(checkpoint, error=TrainingError), "options": options}


def _up_to_date(record_path: Path, target: Path, made_from: dict[str, Any]) -> bool:
    """Whether ``target`` exists as its record says and was made from what ``made_from`` describes."""
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        size = target.stat().st_size
    except (OSError, ValueError):
        return False
    return (isinstance(record, dict) and record.get("output_size") == size
            and {key: record.get(key) for key in made_from} == json.loads(json.dumps(made_from)))


def _failure(path: Path, exc: BaseException) -> str:
    """One line for a photo that could not be enhanced: a PrepError's own words, anything else named as such."""
    if isinstance(exc, PrepError):
        return str(exc)
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return (f"{path}: unexpected {type(exc).__name__}{f': {detail}' if detail else ''} (the other photos go on; "
            "prep -v enhance ... logs where it came from)")


def enhance_tree(checkpoint: str | Path, in_dir: str | Path, out_dir: str | Path, *, device: str = "cpu",
                 force: bool = False, faces: FaceChoice = "all", paste: Paste = "subject",
                 progress: Callable[[int], None] | None = None) -> EnhanceTreeResult:
    """Enhance every photo under ``in_dir`` into the same relative path under ``out_dir``.

    Parameters
    ----------
    checkpoint : path
        A ``.pt`` file or a run folder of ``prep train``.
    in_dir, out_dir : path
        The photos, and where their portraits go (it may lie inside ``in_dir``).
    device, faces, paste :
        As for :func:`training.enhance`.
    force : bool
        Redo outputs that are up to date.
    progress : callable, optional
        Called with 1 after each photo.

    Returns
    -------
    EnhanceTreeResult
        Each photo is done, skipped (its output is up to date: see the module's docstring) or failed with one
        line naming it (a broken link, a FIFO, a link out of ``in_dir``, unreadable, no face, not written, or an
        unexpected error of a library on that photo); the others go on either way.

    Raises
    ------
    TrainingError
        When ``in_dir`` holds no photo, or the output folder cannot be claimed; the checkpoint's errors.
    """
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    files = list_photos(in_dir, out_dir)
    if not files:
        named = " (a folder, although its name ends like a photo's)" if in_dir.suffix.lower() in IMAGE_EXTENSIONS \
            else ""
        raise TrainingError(f"no photos found in this folder{named}", path=in_dir,
                            hint=f"give a photo, or a folder holding photos: {', '.join(IMAGE_EXTENSIONS)}")
    with claim_folder(out_dir, error=TrainingError):
        return _enhance_claimed(checkpoint, in_dir, out_dir, files, device=device, force=force, faces=faces,
                                paste=paste, progress=progress)


def _enhance_claimed(checkpoint: str | Path, in_dir: Path, out_dir: Path, files: list[Path], *, device: str,
                     force: bool, faces: FaceChoice, paste: Paste,
                     progress: Callable[[int], None] | None) -> EnhanceTreeResult:
    """:func:`enhance_tree` with the output folder claimed (one run per folder)."""
    enhancer = Enhancer(checkpoint, device=device)
    announce_total(progress, len(files))
    options = {"faces": faces, "paste": paste, "min_face_px": os.environ.get(MIN_FACE_ENV) or None}
    done: list[EnhanceResult] = []
    skipped: list[Path] = []
    failed: list[tuple[Path, str]] = []
    for path in files:
        relative = path.relative_to(in_dir)
        target, record_path = out_dir / relative, _record_path(out_dir, relative)
        try:
            if not is_inside(path, in_dir):
                raise TrainingError(f"a symbolic link to {os.path.realpath(path)}, outside {in_dir}; refused",
                                    path=path, hint="copy the photo itself into the folder, or enhance that "
                                                    "photo on its own")
            if path.is_symlink() and not path.exists():
                raise TrainingError(f"a symbolic link to {os.readlink(path)}, which does not exist", path=path,
                                    hint="copy the photo itself here, or remove the link")
            made_from = _made_from(path, enhancer.checkpoint, options)
            if not force and _up_to_date(record_path, target, made_from):
                skipped.append(path)
            else:
                record_path.unlink(missing_ok=True)  # until the new output is complete, it has no record
                done.append(enhance(enhancer, path, target, faces=faces, paste=paste))
                write_json_atomic(record_path, {"output": relative.as_posix(), **made_from,
                                                "output_size": target.stat().st_size})
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # any failure of this photo is its own line; the others go on
            log.debug("%s: not enhanced", path, exc_info=True)
            failed.append((path, _failure(path, exc)))
        if progress is not None:
            progress(1)
    return EnhanceTreeResult(tuple(done), tuple(skipped), tuple(failed))
