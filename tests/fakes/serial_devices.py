"""Serial lamp hardware emulated on a real pseudo-terminal (``pty.openpty``).

The code under test opens the slave side by its path (``/dev/pts/N``) exactly like ``/dev/ttyUSB0``; a thread
on the master side parses the exact bytes and answers as the device does. :meth:`unplug` closes the master, so
the host's next write fails with EIO, as when a USB adapter is pulled out.
"""

from __future__ import annotations

import abc
import os
import pty
import select
import threading
import time
import tty
from dataclasses import dataclass, field


@dataclass
class Received:
    """One message the device understood, with its arrival time (time.perf_counter)."""

    at: float
    kind: str
    data: bytes = b""
    extra: dict = field(default_factory=dict)


class PtyDevice(abc.ABC):
    """Base: a pseudo-terminal pair and a reader thread feeding :meth:`feed`."""

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        tty.setraw(self.slave)
        self.port = os.ttyname(self.slave)
        self.received: list[Received] = []
        self.errors: list[str] = []
        self._buffer = bytearray()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._unplugged = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self.master], [], [], 0.02)
                if not ready:
                    continue
                chunk = os.read(self.master, 4096)
            except OSError:
                return
            if not chunk:
                return
            with self._lock:
                self._buffer += chunk
                self.feed(time.perf_counter())

    @abc.abstractmethod
    def feed(self, now: float) -> None:
        """Parse what the host sent so far (``self._buffer``) as the device does; ``now`` is its arrival time."""

    def answer(self, data: bytes) -> None:
        os.write(self.master, data)

    def unplug(self) -> None:
        """Close the master: every later write on the port fails (EIO), as when the adapter is pulled out."""
        self._unplugged = True
        self._stop.set()
        self._thread.join(timeout=1)
        os.close(self.master)

    def close(self) -> None:
        if not self._unplugged:
            self._stop.set()
            self._thread.join(timeout=1)
            os.close(self.master)
        os.close(self.slave)

    def messages(self, kind: str) -> list[Received]:
        with self._lock:
            return [m for m in self.received if m.kind == kind]

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EnttecEmulator(PtyDevice):
    """An Enttec DMX USB Pro: parses ``7E label lenLSB lenMSB payload E7`` and answers label 3.

    ``answer_parameters=False`` plays a port where something else is attached (it never answers).
    ``universe`` holds the last DMX values received (index 0 = channel 1).
    """

    FIRMWARE = (0x44, 0x01)  # firmware 1.68 as LSB, MSB

    def __init__(self, *, answer_parameters: bool = True) -> None:
        self.answer_parameters = answer_parameters
        self.universe = bytes(512)
        super().__init__()

    def feed(self, now: float) -> None:
        buf = self._buffer
        while buf:
            if buf[0] != 0x7E:
                self.errors.append(f"garbage byte {buf[0]:#04x} outside a frame")
                del buf[0]
                continue
            if len(buf) < 4:
                return
            label, length = buf[1], buf[2] | (buf[3] << 8)
            if len(buf) < 5 + length:
                return
            payload, end = bytes(buf[4:4 + length]), buf[4 + length]
            del buf[:5 + length]
            if end != 0xE7:
                self.errors.append(f"frame with label {label} ends in {end:#04x}, not 0xE7")
                continue
            if label == 3:
                if len(payload) != 2:
                    self.errors.append(f"parameters request with a {len(payload)}-byte payload (expected 2)")
                self.received.append(Received(now, "get_parameters", payload))
                if self.answer_parameters:
                    reply = bytes([*self.FIRMWARE, 9, 1, 40])  # break 9*10.67 us, MAB 1*10.67 us, 40 Hz
                    self.answer(bytes([0x7E, 3, len(reply), 0]) + reply + bytes([0xE7]))
            elif label == 6:
                if not payload or payload[0] != 0x00:
                    self.errors.append("DMX frame without start code 0x00")
                elif not 25 <= len(payload) <= 513:
                    self.errors.append(f"DMX frame of {len(payload) - 1} channels (expected 24-512)")
                else:
                    values = payload[1:]
                    self.universe = values + bytes(512 - len(values))
                self.received.append(Received(now, "dmx", payload))
            else:
                self.received.append(Received(now, f"label{label}", payload))

    def levels(self, channels) -> list[int]:
        with self._lock:
            return [self.universe[c - 1] for c in channels]


class RelayEmulator(PtyDevice):
    """An LCUS-type relay board: ``A0 relay state checksum``; drops commands that come within ``busy_s``."""

    def __init__(self, *, relays: int = 8, busy_s: float = 0.08) -> None:
        self.relays = [False] * relays
        self.busy_s = busy_s
        self._last_accepted = float("-inf")
        self.dropped: list[Received] = []
        super().__init__()

    def feed(self, now: float) -> None:
        buf = self._buffer
        while len(buf) >= 4:
            if buf[0] != 0xA0:
                self.errors.append(f"byte {buf[0]:#04x} where a command should start (0xA0)")
                del buf[0]
                continue
            command = bytes(buf[:4])
            del buf[:4]
            relay, state, checksum = command[1], command[2], command[3]
            if checksum != (0xA0 + relay + state) & 0xFF:
                self.errors.append(f"bad checksum in {command.hex(' ')}")
                continue
            if not 1 <= relay <= len(self.relays) or state not in (0, 1):
                self.errors.append(f"bad relay or state in {command.hex(' ')}")
                continue
            message = Received(now, "relay", command, {"relay": relay, "on": bool(state)})
            if now - self._last_accepted < self.busy_s:
                self.dropped.append(message)  # the board is still switching: the command is lost
                continue
            self._last_accepted = now
            self.relays[relay - 1] = bool(state)
            self.received.append(message)


def register_drivers() -> None:
    """Make the faulty host drivers of :mod:`fakes.serial_drivers` available as pyserial URLs."""
    import serial

    if "fakes.serial_drivers" not in serial.protocol_handler_packages:
        serial.protocol_handler_packages.append("fakes.serial_drivers")


class OpenDmxEmulator(PtyDevice):
    """The receiving end of an Open DMX USB line: counts 513-byte packets (start code + 512 channels).

    A pseudo-terminal carries no break condition, so packets are delimited by their length; each must start
    with the 0x00 start code. ``driver_sends_break=False`` plays an adapter whose driver cannot send a break
    (EOPNOTSUPP from the break call): open :attr:`url`, not :attr:`port`.
    """

    PACKET = 513

    def __init__(self, *, driver_sends_break: bool = True) -> None:
        self.universe = bytes(512)
        self.packets = 0
        super().__init__()
        if driver_sends_break:
            self.url = self.port
        else:
            register_drivers()
            self.url = f"nobreak://{self.port}"

    def feed(self, now: float) -> None:
        buf = self._buffer
        while len(buf) >= self.PACKET:
            packet = bytes(buf[:self.PACKET])
            del buf[:self.PACKET]
            if packet[0] != 0x00:
                self.errors.append(f"packet starts with {packet[0]:#04x}, not the start code 0x00")
                continue
            self.universe = packet[1:]
            self.packets += 1
            self.received.append(Received(now, "dmx", packet[1:9]))

    def levels(self, channels) -> list[int]:
        with self._lock:
            return [self.universe[c - 1] for c in channels]
