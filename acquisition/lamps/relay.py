"""LCUS-type USB relay boards (CH340 serial chip, 1-8 relays) switching plain lamps.

Each command is four bytes at 9600 baud: ``0xA0, relay (1-8), state (1 on, 0 off), checksum``, the checksum
being the low byte of the sum of the first three (relay 1 on = ``A0 01 01 A2``). The board's controller
handles one command at a time and drops one that arrives while it is still switching, so commands are spaced
by at least :data:`RELAY_MIN_GAP_MS` (100 ms, the gap that works in practice; slower boards may need more).
The boards do not answer, so neither a dropped command nor a wrong port can be detected: a shorter gap is
refused rather than risking a lamp left on, and ``prep capture check`` blinks the lamps to prove the port.
Relays cannot dim: any level above 0 is "on".
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Sequence
from typing import Any, Final

from ..devices import LampController
from ._port import open_serial, port_errors
from .enttec import check_channels

__all__ = ["RELAY_MIN_GAP_MS", "RelayBoard", "relay_command"]

_DEVICE: Final = "USB relay board"
#: The shortest spacing of two commands an LCUS board takes (~100 ms in practice); it drops what comes sooner.
RELAY_MIN_GAP_MS: Final = 100.0


def relay_command(relay: int, on: bool) -> bytes:
    """The 4-byte LCUS command for one relay."""
    if not 1 <= relay <= 8:
        raise ValueError(f"relay must be 1-8, got {relay}")
    head = (0xA0, relay, 1 if on else 0)
    return bytes([*head, sum(head) & 0xFF])


class RelayBoard(LampController):
    """Lamps on the relays ``channels`` of an LCUS-type board, switched one command at a time.

    Parameters
    ----------
    port : str
        ``/dev/ttyUSB0``, ``COM3`` or a pyserial URL.
    channels : sequence of int
        1-based relay numbers (1-8) that carry lamps.
    gap_ms : float
        Minimum time between two commands, at least :data:`RELAY_MIN_GAP_MS`; the board drops commands that
        come faster, and it has no read-back to tell.

    Raises
    ------
    ValueError
        For a gap below :data:`RELAY_MIN_GAP_MS` (or not a finite number), or relays outside 1-8.
    """

    name = "relay"

    def __init__(self, port: str, *, channels: Sequence[int] = (1,), gap_ms: float = 100.0) -> None:
        super().__init__()
        if not (math.isfinite(gap_ms) and gap_ms >= RELAY_MIN_GAP_MS):
            raise ValueError(f"the relay gap must be at least {RELAY_MIN_GAP_MS:g} ms, got {gap_ms:g}: an LCUS relay "
                             "board drops a command that comes sooner, and cannot tell that it did (a lamp may stay "
                             "on)")
        self.port = port
        self.channels = check_channels(channels, highest=8)
        self.gap_s = gap_ms / 1000.0
        self._serial = open_serial(port, device=_DEVICE, baudrate=9600)
        self._last_command = float("-inf")

    def _send(self, command: bytes) -> None:
        wait = self._last_command + self.gap_s - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        with port_errors(self.port, _DEVICE, "switching a relay"):
            self._serial.write(command)
            self._serial.flush()
        self._last_command = time.perf_counter()

    def _set(self, on: bool, level: int) -> None:
        for relay in self.channels:
            self._send(relay_command(relay, on and level > 0))

    def describe(self) -> dict[str, Any]:
        """Settings for the session metadata."""
        return {"backend": self.name, "port": self.port, "channels": list(self.channels),
                "gap_ms": self.gap_s * 1000.0, "dimmable": False}

    def close(self) -> None:
        """Close the port (relays keep their state)."""
        with contextlib.suppress(Exception):
            self._serial.close()
