"""The pair layout, defined once: ``<root>/<subject>/<pose>/flash.<ext>`` beside ``studio.<ext>``.

Capture writes it, registration reads it (``raw/``) and writes it again with PNGs (``aligned/``), the dataset
builder reads that. :func:`discover_pairs` is the only code that walks such a tree: it returns the complete
pairs and reports every incomplete or suspicious entry instead of dropping it silently.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from .errors import AcquisitionError
from .imageio import IMAGE_EXTENSIONS

__all__ = ["MANIFEST_NAME", "META_NAME", "NAME_MAX_BYTES", "REGISTER_AGAIN_HINT", "Discovery", "LayoutProblem", "Pair",
           "check_name", "discover_pairs", "is_inside", "pose_dir"]

ROLES: Final = ("flash", "studio")
META_NAME: Final = "meta.json"
MANIFEST_NAME: Final = "manifest.csv"
#: The fix for a damaged file of an aligned tree: prep register wrote it and can write it again.
REGISTER_AGAIN_HINT: Final = "prep register wrote it: run prep register --force for this pair"
#: The longest name (one path component) that common file systems store: ext4, XFS, APFS, NTFS (in UTF-16).
NAME_MAX_BYTES: Final = 255
_BAD_CHARS: Final = re.compile(r"[/\\\x00-\x1f\x7f:*?\"<>|]")


def check_name(name: str, *, what: str = "name") -> str:
    """Return ``name`` if it is safe as a subject or pose folder name, else raise ``ValueError``.

    Safe means: not empty, no path separators or control characters, not ``.``/``..``, no leading dot (hidden
    and temporary files start with one), no surrounding spaces, at most 100 characters and at most 255 bytes in
    UTF-8 (the file systems' limit for one name; a CJK character takes 3 bytes). The stages keep these names as
    they are in their outputs, and never build longer file names from them (work files use a hash).
    """
    if not name or name != name.strip():
        raise ValueError(f"{what} {name!r} is empty or has surrounding spaces")
    if name.startswith("."):
        raise ValueError(f"{what} {name!r} starts with a dot (reserved for hidden and temporary files)")
    if _BAD_CHARS.search(name):
        raise ValueError(f"{what} {name!r} contains a path separator or a character not allowed in file names")
    if len(name) > 100:
        raise ValueError(f"{what} {name[:20]!r}... is longer than 100 characters")
    if len(name.encode("utf-8")) > NAME_MAX_BYTES:
        raise ValueError(f"{what} {name[:20]!r}... takes {len(name.encode('utf-8'))} bytes in UTF-8; file systems "
                         f"allow {NAME_MAX_BYTES} per name")
    return name


def pose_dir(root: str | Path, subject: str, pose: str) -> Path:
    """The folder of one pose, after checking both names (the one place that builds such a path)."""
    return Path(root) / check_name(subject, what="subject") / check_name(pose, what="pose")


@dataclass(frozen=True)
class Pair:
    """One complete pose: a flash shot and a studio shot of the same subject."""

    subject: str
    pose: str
    flash: Path
    studio: Path

    @property
    def directory(self) -> Path:
        """The pose folder, where stages find side files (``meta.json``, ``valid.png``, ...)."""
        return self.flash.parent

    @property
    def key(self) -> str:
        """``subject/pose``, as logs and CSV files name the pair."""
        return f"{self.subject}/{self.pose}"

    @property
    def meta(self) -> Path | None:
        """``meta.json`` beside the images, if any."""
        path = self.directory / META_NAME
        return path if path.is_file() else None


@dataclass(frozen=True)
class LayoutProblem:
    """An entry that is not a complete, valid pair, and why."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class Discovery:
    """What :func:`discover_pairs` found: complete pairs (sorted) and problems (sorted)."""

    root: Path
    pairs: list[Pair] = field(default_factory=list)
    problems: list[LayoutProblem] = field(default_factory=list)
    manifest: Path | None = None


def _inside(path: Path, root_resolved: Path) -> bool:
    try:
        path.resolve().relative_to(root_resolved)
    except (ValueError, OSError, RuntimeError):
        return False
    return True


def is_inside(path: str | Path, root: str | Path) -> bool:
    """Whether ``path``, with every symbolic link followed, still lies under ``root``.

    Stages that walk a user's folder refuse links that leave it: reading ``../../`` through a link planted in
    a shared folder would pull foreign files into a dataset or a delivery folder.
    """
    return _inside(Path(path), Path(root).resolve())


def _visible_entries(folder: Path) -> list[Path]:
    # Names with a leading dot are hidden or temporary files (atomic writes, staged poses): never data.
    return sorted((p for p in folder.iterdir() if not p.name.startswith(".")), key=lambda p: p.name)


def _role_of(path: Path) -> str | None:
    stem, suffix = os.path.splitext(path.name)
    if suffix.lower() in IMAGE_EXTENSIONS and stem.lower() in ROLES:
        return stem.lower()
    return None


def _scan_pose(subject: str, pose: str, folder: Path, root_resolved: Path,
               problems: list[LayoutProblem]) -> Pair | None:
    found: dict[str, list[Path]] = {role: [] for role in ROLES}
    for entry in _visible_entries(folder):
        role = _role_of(entry)
        if role is None:
            continue
        if entry.is_symlink() and not _inside(entry, root_resolved):
            problems.append(LayoutProblem(entry, "symbolic link to a file outside the tree; refused: copy the file "
                                                    "itself into the pose folder"))
            return None
        if not entry.is_file():
            problems.append(LayoutProblem(entry, "is not a regular file: replace it with the image file"))
            return None
        found[role].append(entry)
    for role in ROLES:
        if len(found[role]) > 1:
            names = ", ".join(p.name for p in found[role])
            problems.append(LayoutProblem(folder, f"two or more {role} images ({names}); keep one"))
            return None
    missing = [role for role in ROLES if not found[role]]
    if missing == list(ROLES):
        problems.append(LayoutProblem(folder, "no flash or studio image in this pose folder: put flash.<ext> and "
                                              "studio.<ext> in it, or remove it"))
        return None
    if missing:
        have = found[ROLES[1] if missing[0] == ROLES[0] else ROLES[0]][0].name
        problems.append(LayoutProblem(folder, f"{have} has no {missing[0]} partner: copy the {missing[0]} shot "
                                              "in, or remove the pose"))
        return None
    return Pair(subject, pose, found["flash"][0], found["studio"][0])


def _checked_dirs(parent: Path, what: str, root_resolved: Path,
                  problems: list[LayoutProblem]) -> Iterable[Path]:
    for entry in _visible_entries(parent):
        if not entry.is_dir():
            continue
        try:
            check_name(entry.name, what=what)
        except ValueError as exc:
            problems.append(LayoutProblem(entry, f"{exc}: rename the folder"))
            continue
        if entry.is_symlink() and not _inside(entry, root_resolved):
            problems.append(LayoutProblem(entry, "symbolic link to a folder outside the tree; refused: copy the "
                                                "folder itself into the tree"))
            continue
        yield entry


def discover_pairs(root: str | Path) -> Discovery:
    """Find every pose of every subject under ``root``.

    Parameters
    ----------
    root : str or Path
        A folder in the pair layout: ``root/<subject>/<pose>/flash.<ext>`` and ``studio.<ext>`` (ext any of
        :data:`acquisition.imageio.IMAGE_EXTENSIONS`: jpg, jpeg, png, tif, tiff, heic, heif, hif, webp, avif, in any
        case), optional ``meta.json`` per pose and ``root/manifest.csv``.

    Returns
    -------
    Discovery
        ``pairs`` sorted by subject then pose; ``problems`` naming each incomplete pose (a missing partner, two
        flash files, an empty pose folder), each bad name and each symbolic link that leaves the tree.

    Raises
    ------
    AcquisitionError
        When ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise AcquisitionError("not a folder", path=root,
                               hint="give the folder that holds <subject>/<pose>/flash.* and studio.*")
    root_resolved = root.resolve()
    pairs: list[Pair] = []
    problems: list[LayoutProblem] = []
    for subject_dir in _checked_dirs(root, "subject", root_resolved, problems):
        for pose_folder in _checked_dirs(subject_dir, "pose", root_resolved, problems):
            pair = _scan_pose(subject_dir.name, pose_folder.name, pose_folder, root_resolved, problems)
            if pair is not None:
                pairs.append(pair)
    manifest = root / MANIFEST_NAME
    return Discovery(root, pairs, sorted(problems, key=lambda p: str(p.path)),
                     manifest if manifest.is_file() else None)
