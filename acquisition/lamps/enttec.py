"""Enttec DMX USB Pro: a widget with its own microcontroller, driven with framed messages.

Every message is ``0x7E, label, length LSB, length MSB, payload, 0xE7``. Label 6 sends a DMX universe (payload
= start code 0x00 followed by 24-512 channel bytes); the widget repeats the last universe on the DMX line by
itself, so the host sends only when the lamps change. Label 3 asks for the widget parameters; a DMX USB Pro
answers with firmware version, break time, mark-after-break time and refresh rate. We ask on connect: a port
that does not answer is not a DMX USB Pro (an Open DMX USB, a relay board, the wrong port), and saying so
beats sending frames into the void.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from ..devices import LampController
from ..errors import AcquisitionError
from ._port import open_serial, port_errors

__all__ = ["DMX_MIN_SLOTS", "EnttecDmxPro", "WidgetParameters", "build_frame", "parse_frame"]

START: Final = 0x7E
END: Final = 0xE7
LABEL_GET_PARAMETERS: Final = 3
LABEL_SEND_DMX: Final = 6
#: The DMX standard's shortest packet; shorter universes confuse some fixtures.
DMX_MIN_SLOTS: Final = 24
_DEVICE: Final = "Enttec DMX USB Pro"


def build_frame(label: int, payload: bytes) -> bytes:
    """One widget message: ``0x7E label lenLSB lenMSB payload 0xE7``."""
    if not 0 <= label <= 255:
        raise ValueError(f"label must be 0-255, got {label}")
    if len(payload) > 600:
        raise ValueError(f"payload of {len(payload)} bytes is longer than the widget accepts (600)")
    return bytes([START, label, len(payload) & 0xFF, len(payload) >> 8]) + bytes(payload) + bytes([END])


def parse_frame(data: bytes) -> tuple[int, bytes, int] | None:
    """Find the first complete message in ``data``: ``(label, payload, bytes consumed)`` or None."""
    start = data.find(bytes([START]))
    while start != -1 and len(data) - start >= 5:
        label = data[start + 1]
        length = data[start + 2] | (data[start + 3] << 8)
        end = start + 4 + length
        if length <= 600 and end < len(data) and data[end] == END:
            return label, bytes(data[start + 4:end]), end + 1
        if length <= 600 and end >= len(data):
            return None  # incomplete: wait for more bytes
        start = data.find(bytes([START]), start + 1)
    return None


@dataclass(frozen=True)
class WidgetParameters:
    """What a DMX USB Pro reports about itself (label 3 reply)."""

    firmware: str
    break_time_us: float
    mark_after_break_us: float
    refresh_rate_hz: int


def dmx_universe(channels: Sequence[int], level: int) -> bytes:
    """Start code 0 + channel bytes: ``level`` on each channel of ``channels`` (1-based), 0 elsewhere."""
    slots = max(DMX_MIN_SLOTS, max(channels, default=0))
    values = bytearray(slots)
    for channel in channels:
        values[channel - 1] = level
    return bytes([0x00]) + bytes(values)


def check_channels(channels: Sequence[int], *, highest: int = 512) -> tuple[int, ...]:
    """Validate 1-based channel numbers (ValueError naming the bad one)."""
    channels = tuple(int(c) for c in channels)
    if not channels:
        raise ValueError("give at least one lamp channel")
    for channel in channels:
        if not 1 <= channel <= highest:
            raise ValueError(f"channel {channel} is outside 1-{highest}")
    if len(set(channels)) != len(channels):
        raise ValueError(f"channel list {list(channels)} repeats a channel")
    return channels


class EnttecDmxPro(LampController):
    """All lamps on DMX ``channels`` of an Enttec DMX USB Pro, on or off together.

    Parameters
    ----------
    port : str
        ``/dev/ttyUSB0``, ``COM3`` or a pyserial URL.
    channels : sequence of int
        1-based DMX addresses of the lamps (the paper's four Lupoled 560 on 1, 2, 3, 4).
    reply_timeout_s : float
        How long to wait for the parameters reply on connect.

    Raises
    ------
    AcquisitionError
        When the port cannot be opened or no DMX USB Pro answers on it.
    """

    name = "enttec"

    def __init__(self, port: str, *, channels: Sequence[int] = (1, 2, 3, 4), reply_timeout_s: float = 1.0,
                 _serial: Any = None) -> None:
        super().__init__()
        self.port = port
        self.channels = check_channels(channels)
        self._serial = _serial if _serial is not None else open_serial(port, device=_DEVICE, baudrate=57600,
                                                                                        timeout_s=0.05)
        try:
            self.parameters = self._get_parameters(reply_timeout_s)
        except BaseException:
            self._serial.close()
            raise

    def _get_parameters(self, timeout_s: float) -> WidgetParameters:
        with port_errors(self.port, _DEVICE, "asking the widget for its parameters"):
            self._serial.reset_input_buffer()
            self._serial.write(build_frame(LABEL_GET_PARAMETERS, b"\x00\x00"))
            self._serial.flush()
            buffer = b""
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                chunk = self._serial.read(max(1, self._serial.in_waiting))
                buffer += chunk
                found = parse_frame(buffer)
                if found is None:
                    continue
                label, payload, used = found
                buffer = buffer[used:]
                if label == LABEL_GET_PARAMETERS and len(payload) >= 5:
                    return WidgetParameters(
                        firmware=f"{payload[1]}.{payload[0]}",
                        break_time_us=payload[2] * 10.67,
                        mark_after_break_us=payload[3] * 10.67,
                        refresh_rate_hz=payload[4],
                    )
        raise AcquisitionError(
            f"no {_DEVICE} answered on this port within {timeout_s:g} s", path=self.port,
            hint="check the port name; an Open DMX USB (no microcontroller) needs --lamps opendmx:PORT, a relay "
                 "board --lamps relay:PORT")

    def _set(self, on: bool, level: int) -> None:
        frame = build_frame(LABEL_SEND_DMX, dmx_universe(self.channels, level if on else 0))
        with port_errors(self.port, _DEVICE, "switching the lamps"):
            self._serial.write(frame)
            self._serial.flush()

    def describe(self) -> dict[str, Any]:
        """Settings for the session metadata."""
        return {"backend": self.name, "port": self.port, "channels": list(self.channels),
                "firmware": self.parameters.firmware, "refresh_rate_hz": self.parameters.refresh_rate_hz}

    def close(self) -> None:
        """Close the port (the widget keeps repeating the last universe)."""
        # Closing a vanished port must not hide the error that ended the session.
        with contextlib.suppress(Exception):
            self._serial.close()
