"""The one error hierarchy of the toolkit.

Every stage raises a subclass of :class:`PrepError` for problems a user can fix (a corrupt image, a missing
partner, a full disk). Each carries the offending path and a hint, so the CLI can print one clear line
instead of a traceback. Bad arguments to library functions raise ``ValueError`` as usual.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["AcquisitionError", "PrepError"]


class PrepError(Exception):
    """A problem with an input or output that the user can fix.

    Parameters
    ----------
    message : str
        What went wrong, in words a lab technician understands.
    path : str or Path, optional
        The file or folder concerned; it is named first in ``str(error)``.
    hint : str, optional
        How to fix it; appended to ``str(error)``.
    """

    def __init__(self, message: str, *, path: str | Path | None = None, hint: str | None = None) -> None:
        self.message = message
        self.path = Path(path) if path is not None else None
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}" if self.path is not None else self.message
        return f"{text} ({self.hint})" if self.hint else text

    def __reduce__(self):  # keep path and hint across process pools
        return (_rebuild, (type(self), self.message, self.path, self.hint))


def _rebuild(cls: type[PrepError], message: str, path: Path | None, hint: str | None) -> PrepError:
    return cls(message, path=path, hint=hint)


class AcquisitionError(PrepError):
    """A capture-session problem: lamps, camera, the raw pair layout, image files."""
