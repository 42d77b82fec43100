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
    relay_gap_ms = 100              # at least 100: an LCUS relay board drops a command that comes sooner
    out = "raw"
    camera_busy_timeout_ms = 5000   # gphoto2: how long a busy camera (slow card) is waited for
    delete_from_camera = false      # delete each shot from the camera once its pose is stored
    adb_folder = "/storage/1234-ABCD/DCIM/Camera"   # adb: where the phone's camera app saves

Every key is checked here, once, against the same ranges as its command-line option (:data:`RIG_KEYS`; the
CLI builds its options' ranges from this table): a wrong value in the file is one line naming the file, the
key and what it allows, never a usage error blamed on an option the user did not type.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from .errors import AcquisitionError
from .files import open_regular
from .lamps.relay import RELAY_MIN_GAP_MS

__all__ = ["RIG_KEYS", "RigKey", "load_rig", "option_name", "rig_value_error"]


@dataclass(frozen=True)
class RigKey:
    """What a rig key (and its command-line option) accepts.

    ``types`` are the TOML types; ``low``/``high`` bound a number (inclusive); ``choices`` list the words a
    text may be; ``note`` says why a bound is what it is.
    """

    types: tuple[type, ...]
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    note: str = ""

    def allowed(self) -> str:
        """The allowed values in words: ``"a whole number 0-255"``, ``"a number >= 0 (milliseconds)"``."""
        if self.choices:
            return " or ".join(repr(c) for c in self.choices)
        kind = "a whole number" if self.types == (int,) else "a number"
        if self.low is not None and self.high is not None:
            bound = f" {self.low:g}-{self.high:g}"
        elif self.low is not None:
            bound = f" >= {self.low:g}"
        else:
            bound = ""
        return kind + bound + (f" ({self.note})" if self.note else "")


_MS: Final = (int, float)
#: Each key, the types it accepts and its range (the options of ``prep capture`` take the same).
RIG_KEYS: Final[dict[str, RigKey]] = {
    "lamps": RigKey((str,)),
    "camera": RigKey((str,)),
    "dmx_channels": RigKey((str, list)),
    "dmx_level": RigKey((int,), 0, 255),
    "lamp_settle_ms": RigKey(_MS, 0, note="milliseconds"),
    "dark_wait_ms": RigKey(_MS, 0, note="milliseconds"),
    "lamps_after": RigKey((str,), choices=("off", "on")),
    "relay_gap_ms": RigKey(_MS, RELAY_MIN_GAP_MS,
                           note="milliseconds; an LCUS relay board drops a command that comes sooner"),
    "out": RigKey((str,)),
    "poses": RigKey((int,), 1),
    "camera_busy_timeout_ms": RigKey(_MS, 0, note="milliseconds"),
    "delete_from_camera": RigKey((bool,)),
    "adb_folder": RigKey((str,)),
}


def option_name(key: str) -> str:
    """The command-line option of a rig key: ``dmx_level`` → ``--dmx-level``."""
    return "--" + key.replace("_", "-")


def load_rig(path: str | Path) -> dict[str, Any]:
    """Read and check a rig file; return its settings with ``_`` keys (``dmx_channels`` as a string).

    Raises
    ------
    AcquisitionError
        For a file that cannot be read or parsed, an unknown key, a value of the wrong type or out of its
        range; the message names the file, the key and what it allows.
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
    written: dict[str, Any] = {}
    for raw_key, value in data.items():
        key = raw_key.replace("-", "_")
        if key not in RIG_KEYS:
            raise AcquisitionError(f"unknown key {raw_key!r} in the rig file", path=path,
                                   hint="allowed keys: " + ", ".join(RIG_KEYS))
        settings[key] = _checked(path, raw_key, key, value)
        written[key] = value
    _check_together(path, settings, written)
    return settings


def rig_value_error(path: Path, raw_key: str, value: Any, why: str) -> AcquisitionError:
    """One line naming the rig file, the key, its value, what is wrong and how to fix it."""
    return AcquisitionError(f"{raw_key} = {_toml(value)} {why}", path=path,
                            hint=f"correct it in the rig file (or give {option_name(raw_key.replace('-', '_'))} on "
                                 "the command line, which wins)")


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def _checked(path: Path, raw_key: str, key: str, value: Any) -> Any:
    """The value of one key, checked against :data:`RIG_KEYS` (and, for specs and channels, parsed)."""
    spec = RIG_KEYS[key]
    if (isinstance(value, bool) and bool not in spec.types) or not isinstance(value, spec.types):
        wanted = " or ".join({list: "list of numbers", bool: "true or false", str: "text in quotes",
                              int: "whole number", float: "number"}.get(t, t.__name__) for t in spec.types)
        raise rig_value_error(path, raw_key, value, f"should be a {wanted.replace('whole number or number', 'number')}")
    if isinstance(value, float) and not math.isfinite(value):
        raise rig_value_error(path, raw_key, value, f"must be a finite number: {spec.allowed()}")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and (
            (spec.low is not None and value < spec.low) or (spec.high is not None and value > spec.high)):
        raise rig_value_error(path, raw_key, value, f"is out of range: {spec.allowed()}")
    if spec.choices and value not in spec.choices:
        raise rig_value_error(path, raw_key, value, f"must be {spec.allowed()}")
    original = value
    try:
        if key == "dmx_channels":
            from .lamps import parse_channels

            if isinstance(value, list):
                if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                    raise ValueError("it should list whole numbers")
                value = ",".join(str(v) for v in value)
            parse_channels(value)
        elif key in ("lamps", "camera"):
            from .cameras import CAMERA_BACKENDS
            from .lamps import LAMP_BACKENDS, split_spec

            if key == "lamps":
                split_spec(value, LAMP_BACKENDS, "lamp backend")
            else:
                split_spec(value, CAMERA_BACKENDS, "camera backend")
        elif key == "adb_folder" and not value.startswith("/"):
            raise ValueError("it should be a folder on the phone from its root, like /sdcard/DCIM/Camera")
    except ValueError as exc:
        raise rig_value_error(path, raw_key, original, f"is not valid: {exc}") from None
    return value


def _check_together(path: Path, settings: dict[str, Any], written: dict[str, Any]) -> None:
    """What depends on two keys: relay boards have relays 1-8."""
    lamps, channels = settings.get("lamps"), settings.get("dmx_channels")
    if isinstance(lamps, str) and lamps.strip().lower().startswith("relay") and channels is not None:
        from .lamps import parse_channels

        if max(parse_channels(channels)) > 8:
            raise rig_value_error(path, "dmx_channels", written["dmx_channels"],
                                  "is not valid: a relay board has relays 1-8")
