"""Output folders, checked before any work: apart from the input, and creatable.

A stage that writes into its own input (``build-h5 aligned/ aligned/``) mixes its outputs with what later
stages read as input; one whose output sits under a read-only folder or under a file fails only after the
first expensive item. :func:`check_apart` and :func:`make_output_folder` refuse both at the start, in one line.
"""

from __future__ import annotations

import errno
from pathlib import Path

from .atomic import write_error
from .errors import PrepError

__all__ = ["check_apart", "make_output_folder"]


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symbolic-link loop: compare the absolute path instead
        return path.absolute()


def check_apart(input_dir: str | Path, output_dir: str | Path, *, error: type[PrepError] = PrepError,
                input_name: str = "input", output_name: str = "output", output_inside_ok: bool = False,
                risk: str = "the outputs would mix with the inputs") -> None:
    """Raise ``error`` when the output folder is the input folder, lies inside it, or contains it.

    Parameters
    ----------
    input_dir, output_dir : str or Path
        Compared with every symbolic link followed (neither needs to exist yet).
    input_name, output_name : str
        How the command calls them ("raw", "aligned"), for the message.
    output_inside_ok : bool
        Allow the output inside the input (``prep enhance photos/ photos/studio/`` leaves its outputs out of
        the inputs it lists); the same folder, or the input inside the output, is still refused.
    risk : str
        What would go wrong, for the message.
    """
    source, target = _resolved(Path(input_dir)), _resolved(Path(output_dir))
    inside = source in target.parents
    if source == target or target in source.parents or (inside and not output_inside_ok):
        where = "the same folder" if source == target else ("inside it" if inside else "around it")
        raise error(f"the {output_name} folder must be outside the {input_name} folder {input_dir}, not {where}: "
                    f"{risk}", path=output_dir,
                    hint=f"choose a folder outside it, e.g. {Path(input_dir).parent / output_name}")


def _blocking_file(path: Path) -> Path | None:
    """The nearest existing ancestor-or-self of ``path`` that is not a folder, if any."""
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            return None if candidate.is_dir() else candidate
    return None


def make_output_folder(folder: str | Path, *, error: type[PrepError] = PrepError) -> Path:
    """Create ``folder`` (and its parents) or raise ``error`` with the reason in one line.

    A read-only parent, a full disk, a file where a folder of the path should be and a name too long for the file
    system each get their own words. Returns ``folder`` as a Path.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        blocker = _blocking_file(folder) or folder
        raise error("cannot create the folder: " + (f"{blocker} is a file" if blocker != folder else "a file has "
                    "this name"), path=folder, hint="choose another folder, or move that file away") from exc
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise error("cannot create the folder: a name in the path is too long for the file system",
                        path=folder, hint="choose a shorter name") from exc
        raise write_error(folder, exc, error=error, lost="nothing was written") from exc
    return folder
