"""Studio lamp controllers behind one interface (:class:`acquisition.devices.LampController`).

Call :func:`open_lamps` with a ``--lamps`` spec to get a controller::

    enttec:/dev/ttyUSB0    Enttec DMX USB Pro (framed messages; proven by a parameters request on connect)
    opendmx:/dev/ttyUSB0   Open DMX USB / FTDI (break + packet, refreshed from a background thread)
    relay:/dev/ttyUSB0     LCUS-type relay board (1-8 relays, commands spaced)
    manual                 the operator switches the lamps and presses Enter
    sim                    the virtual studio's lamps
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..devices import LampController
from .enttec import EnttecDmxPro, build_frame, check_channels, dmx_universe, parse_frame
from .manual import ManualLamps
from .opendmx import OpenDmx
from .relay import RelayBoard, relay_command

__all__ = ["LAMP_BACKENDS", "EnttecDmxPro", "ManualLamps", "OpenDmx", "RelayBoard", "build_frame",
           "check_channels", "dmx_universe", "open_lamps", "parse_channels", "parse_frame", "relay_command"]

#: The ``--lamps`` backends, and whether they take a port.
LAMP_BACKENDS = {"enttec": True, "opendmx": True, "relay": True, "manual": False, "sim": False}


def parse_channels(text: str | Sequence[int]) -> tuple[int, ...]:
    """``"1,2,3,4"`` (or a list) → ``(1, 2, 3, 4)``; ValueError naming the bad entry."""
    if isinstance(text, str):
        items = [part.strip() for part in text.split(",") if part.strip()]
        try:
            values = [int(part) for part in items]
        except ValueError:
            raise ValueError(f"channels must be comma-separated numbers like 1,2,3,4, got {text!r}") from None
    else:
        values = [int(v) for v in text]
    return check_channels(values)


def split_spec(spec: str, backends: dict[str, bool], what: str) -> tuple[str, str | None]:
    """``"enttec:/dev/ttyUSB0"`` → ``("enttec", "/dev/ttyUSB0")``, checked against ``backends``."""
    backend, _, port = spec.strip().partition(":")
    backend = backend.lower()
    choices = " | ".join(f"{name}:PORT" if needs else name for name, needs in backends.items())
    if backend not in backends:
        raise ValueError(f"unknown {what} {spec!r}; choose one of {choices}")
    if backends[backend] and not port:
        raise ValueError(f"{what} {backend!r} needs a port, e.g. {backend}:/dev/ttyUSB0")
    return backend, port or None


def open_lamps(spec: str, *, channels: Sequence[int] = (1, 2, 3, 4), prompt: Callable[[str], None] | None = None,
               relay_gap_ms: float = 100.0, reply_timeout_s: float = 1.0) -> LampController:
    """Open the lamp controller that ``spec`` names.

    Parameters
    ----------
    spec : str
        ``enttec:PORT``, ``opendmx:PORT``, ``relay:PORT``, ``manual`` or ``sim``; PORT is a device path
        (``/dev/ttyUSB0``, ``COM3``) or a pyserial URL.
    channels : sequence of int
        1-based DMX addresses (enttec, opendmx) or relay numbers 1-8 (relay).
    prompt : callable(str) -> None, optional
        Required for ``manual``: shows an instruction and returns when the operator has done it.
    relay_gap_ms : float
        Minimum spacing of relay-board commands.
    reply_timeout_s : float
        How long the Enttec widget has to answer the parameters request.

    Returns
    -------
    LampController
        Use it as a context manager (it closes the port).

    Raises
    ------
    ValueError
        For an unknown backend, a missing port or bad channels.
    AcquisitionError
        When the port cannot be opened or the device does not answer as it should.
    """
    backend, port = split_spec(spec, LAMP_BACKENDS, "lamp backend")
    if backend == "enttec":
        return EnttecDmxPro(port, channels=channels, reply_timeout_s=reply_timeout_s)  # type: ignore[arg-type]
    if backend == "opendmx":
        return OpenDmx(port, channels=channels)  # type: ignore[arg-type]
    if backend == "relay":
        return RelayBoard(port, channels=channels, gap_ms=relay_gap_ms)  # type: ignore[arg-type]
    if backend == "manual":
        if prompt is None:
            raise ValueError("manual lamps need a prompt callback that waits for the operator")
        return ManualLamps(prompt)
    from ..sim import SimulatedLamps

    return SimulatedLamps()
