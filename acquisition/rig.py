"""The rig file: a studio's fixed settings in TOML, so staff type only the subject.

The keys are the ``prep capture`` options without the dashes (``-`` or ``_`` both work); options given on
the command line win over the file::

    lamps = "enttec:/dev/ttyUSB0"
    camera = "adb"
    dmx_channels = [1, 2, 3, 4]     # or "1,2,3,4"
    dmx_level = 255
    lamp_settle_ms = 400
    dark_wait_ms = 1000
    lamps_after = "off"
    relay_gap_ms = 100
    out = "raw"
    camera_busy_timeout_ms = 5000   # gphoto2: how long a busy camera (slow card) is waited for
    delete_from_camera = false      # delete each shot from the camera once downloaded and checked
    adb_folder = "/storage/1234-ABCD/DCIM/Camera"   # adb: where the phone's camera app saves
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Final

from .errors import AcquisitionError
from .files import open_regular

__all__ = ["RIG_KEYS", "load_rig"]

#: Each key and the types it accepts.
RIG_KEYS: Final[dict[str, tuple[type, ...]]] = {
    "lamps": (str,),
    "camera": (str,),
    "dmx_channels": (str, list),
    "dmx_level": (int,),
    "lamp_settle_ms": (int, float),
    "dark_wait_ms": (int, float),
    "lamps_after": (str,),
    "relay_gap_ms": (int, float),
    "out": (str,),
    "poses": (int,),
    "camera_busy_timeout_ms": (int, float),
    "delete_from_camera": (bool,),
    "adb_folder": (str,),
}


def load_rig(path: str | Path) -> dict[str, Any]:
    """Read and check a rig file; return its settings with ``_`` keys (``dmx_channels`` as a string).

    Raises
    ------
    AcquisitionError
        For a file that cannot be read or parsed, an unknown key or a value of the wrong type; the message
        names the file, the key and the allowed keys.
    """
    path = Path(path)
    try:
        with open_regular(path, error=AcquisitionError) as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise AcquisitionError(f"cannot read the rig file ({exc.strerror})", path=path) from exc
    except tomllib.TOMLDecodeError as exc:
        raise AcquisitionError(f"not valid TOML: {exc}", path=path,
                               hint='write it as key = value lines, e.g. lamps = "enttec:/dev/ttyUSB0"') from exc
    settings: dict[str, Any] = {}
    for raw_key, value in data.items():
        key = raw_key.replace("-", "_")
        if key not in RIG_KEYS:
            raise AcquisitionError(f"unknown key {raw_key!r} in the rig file", path=path,
                                   hint="allowed keys: " + ", ".join(RIG_KEYS))
        types = RIG_KEYS[key]
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            wanted = " or ".join({list: "list of numbers", bool: "true or false"}.get(t, t.__name__) for t in types)
            raise AcquisitionError(f"{raw_key} = {value!r} should be a {wanted}", path=path)
        if key == "dmx_channels" and isinstance(value, list):
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                raise AcquisitionError(f"dmx_channels = {value!r} should list whole numbers", path=path)
            value = ",".join(str(v) for v in value)
        settings[key] = value
    return settings
