"""Open DMX USB (an FTDI chip, no microcontroller): the host itself produces the DMX signal.

DMX512 is 250000 baud, 8 data bits, no parity, 2 stop bits; each packet starts with a break (line low for at
least 88 us), a mark after break (at least 8 us), then the start code 0x00 and the channel bytes. Fixtures
switch off or hold when packets stop, so a background thread sends the current universe continuously (about
40 packets a second for 512 channels). A command returns once a packet carrying it has gone out completely,
so the session's settle time counts from light, not from a queued buffer.

The break is a request to the serial driver, and not every USB-serial chip's driver can make one (an "Open
DMX" cable built on such a chip answers EOPNOTSUPP): the first packet is sent when the adapter is opened, so
that shows at once with what to use instead, not as a lost adapter mid-session. The lamps stay lit only while
prep runs (:attr:`OpenDmx.holds_state_after_exit` is False).
"""

from __future__ import annotations

import contextlib
import errno
import threading
import time
from collections.abc import Sequence
from typing import Any, Final

import serial

from ..devices import LampController
from ..errors import AcquisitionError
from ._port import open_serial, port_errors
from .enttec import check_channels

__all__ = ["OpenDmx"]

_DEVICE: Final = "Open DMX USB adapter"
BREAK_S: Final = 0.000176  # twice the DMX minimum of 88 us; the OS rounds it up anyway
MARK_S: Final = 0.000012
#: What a serial driver answers when it cannot set a break condition.
_NO_BREAK_ERRNOS: Final = frozenset({errno.EOPNOTSUPP, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP), errno.ENOTTY,
                                     errno.EINVAL, errno.ENOSYS})


def _cannot_break(exc: BaseException) -> bool:
    return getattr(exc, "errno", None) in _NO_BREAK_ERRNOS or "not supported" in str(exc).lower()


def _no_break_error(port: str, exc: BaseException) -> AcquisitionError:
    why = getattr(exc, "strerror", None) or str(exc)
    message = f"the {_DEVICE} cannot send a DMX break: its serial driver answers {why!r}"
    hint = ("DMX needs a break before every packet; an FTDI-based Open DMX USB (Linux driver ftdi_sio) sends one, "
            "most CH340, PL2303 and CP210x USB-serial cables cannot: use an FTDI adapter, or an Enttec DMX USB Pro "
            "(--lamps enttec:PORT), which makes the DMX signal itself")
    if "://" in port:  # a URL is no file path: name it in the message
        return AcquisitionError(f"{message} (port {port})", hint=hint)
    return AcquisitionError(message, path=port, hint=hint)


class OpenDmx(LampController):
    """All lamps on DMX ``channels`` of an Open DMX USB (FTDI) adapter, refreshed from a background thread.

    Parameters
    ----------
    port : str
        ``/dev/ttyUSB0``, ``COM3`` or a pyserial URL.
    channels : sequence of int
        1-based DMX addresses of the lamps.
    slots : int
        Channel bytes per packet (24-512); 512 is what every fixture expects.
    command_timeout_s : float
        How long a command may wait for the packet that carries it.
    """

    name = "opendmx"
    holds_state_after_exit = False  # the line goes quiet when prep stops sending

    def __init__(self, port: str, *, channels: Sequence[int] = (1, 2, 3, 4), slots: int = 512,
                 command_timeout_s: float = 1.0) -> None:
        super().__init__()
        if not 24 <= slots <= 512:
            raise ValueError(f"slots must be 24-512, got {slots}")
        self.port = port
        self.channels = check_channels(channels, highest=slots)
        self.slots = slots
        self.command_timeout_s = command_timeout_s
        self._serial = open_serial(port, device=_DEVICE, baudrate=250000, stopbits=serial.STOPBITS_TWO)
        self._universe = bytearray(slots)
        self._lock = threading.Condition()
        self._failure: BaseException | None = None
        self._stop = threading.Event()
        # The first packet (all off) goes out now: a driver that cannot make a break is named at once, not
        # later as a lost adapter.
        try:
            self._send_packet(bytes(self._universe))
        except (serial.SerialException, OSError) as exc:
            with contextlib.suppress(Exception):
                self._serial.close()
            if _cannot_break(exc):
                raise _no_break_error(port, exc) from exc
            with port_errors(port, _DEVICE, "sending the first DMX packet"):
                raise
        self._packets = 1
        self._thread = threading.Thread(target=self._refresh, name=f"opendmx-{port}", daemon=True)
        self._thread.start()

    def _send_packet(self, universe: bytes) -> None:
        self._serial.break_condition = True
        time.sleep(BREAK_S)
        self._serial.break_condition = False
        time.sleep(MARK_S)
        self._serial.write(b"\x00" + universe)
        self._serial.flush()  # returns when the bytes have left: the next break must not cut the packet

    def _refresh(self) -> None:
        # 11 bits per slot at 250 kbaud: the packet's time on the wire. A driver that returns from flush()
        # early (buffering, a pseudo-terminal) must not make the thread spin faster than the line runs.
        period = BREAK_S + MARK_S + (1 + self.slots) * 11 / 250000
        while not self._stop.is_set():
            with self._lock:
                universe = bytes(self._universe)
            start = time.perf_counter()
            try:
                self._send_packet(universe)
                left = period - (time.perf_counter() - start)
                if left > 0:
                    time.sleep(left)
            except (serial.SerialException, OSError) as exc:
                with self._lock:
                    self._failure = exc
                    self._lock.notify_all()
                return
            with self._lock:
                self._packets += 1
                self._lock.notify_all()

    def _raise_failure(self) -> None:
        if _cannot_break(self._failure):  # type: ignore[arg-type]
            raise _no_break_error(self.port, self._failure) from self._failure  # type: ignore[arg-type]
        with port_errors(self.port, _DEVICE, "refreshing the DMX line"):
            raise self._failure  # type: ignore[misc]

    def _set(self, on: bool, level: int) -> None:
        with self._lock:
            if self._failure is not None:
                self._raise_failure()
            for channel in self.channels:
                self._universe[channel - 1] = level if on else 0
            # The packet in flight may predate the change: wait for the one after it to finish.
            target = self._packets + 2
            deadline = time.monotonic() + self.command_timeout_s
            while self._packets < target and self._failure is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AcquisitionError(
                        f"the {_DEVICE} sent no DMX packet within {self.command_timeout_s:g} s", path=self.port,
                        hint="check the adapter (an Enttec DMX USB Pro needs --lamps enttec:PORT)")
                self._lock.wait(left)
            if self._failure is not None:
                self._raise_failure()

    def describe(self) -> dict[str, Any]:
        """Settings for the session metadata."""
        return {"backend": self.name, "port": self.port, "channels": list(self.channels), "slots": self.slots,
                "packets_sent": self._packets}

    def close(self) -> None:
        """Stop refreshing and close the port (fixtures then hold or blank, as configured on them)."""
        self._stop.set()
        self._thread.join(timeout=2.0)
        with contextlib.suppress(Exception):
            self._serial.close()
