"""Capture sessions (studio lamps, cameras, the virtual studio) and the foundation every stage shares.

The pipeline begins here, so the pieces every later stage reads through live here too, each defined once:
:mod:`acquisition.imageio` (EXIF-upright RGB reading, atomic image writing), :mod:`acquisition.layout` (the
``<subject>/<pose>/flash|studio`` pair layout), :mod:`acquisition.atomic` (temp-then-rename writes),
:mod:`acquisition.faces` (face boxes and landmarks), :mod:`acquisition.errors` (the error hierarchy),
:mod:`acquisition.files` (reading regular files only; content fingerprints), :mod:`acquisition.folders`
(output folders apart from the input, created with clear errors), :mod:`acquisition.runlock` (one run per
output folder), :mod:`acquisition.interrupts` (stop signals), :mod:`acquisition.parallel` (process pools
whose workers never outlive the command) and :mod:`acquisition.progress`.
"""

# Nothing heavy at import: the console script (acquisition._entry) imports this package before it can
# handle a stop signal, so importlib.metadata (~20 ms) waits for tool_version().
from .errors import AcquisitionError, PrepError

__all__ = ["AcquisitionError", "PrepError", "tool_version"]


def tool_version() -> str:
    """The installed deepflash version, recorded in every metadata file a stage writes ("0+unknown" when the
    source tree runs without being installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("deepflash")
    except PackageNotFoundError:
        return "0+unknown"
