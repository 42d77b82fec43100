"""Opening a serial port for a lamp controller, and turning port failures into clear errors.

Every serial lamp backend opens its port here (``serial.serial_for_url``, so tests may pass ``loop://`` or a
pseudo-terminal), and wraps each write in :func:`port_errors`: an unplugged adapter raises
``SerialException`` or ``OSError`` in the middle of a session, which becomes one
:class:`~acquisition.errors.AcquisitionError` naming the port and the fix.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
from typing import Any

from ..errors import AcquisitionError

__all__ = ["open_serial", "port_errors"]


def open_serial(port: str, *, device: str, baudrate: int, stopbits: float = 1, timeout_s: float = 1.0,
                write_timeout_s: float = 1.0) -> Any:
    """Open ``port`` (a device path or a pyserial URL) 8 data bits, no parity.

    Raises
    ------
    AcquisitionError
        When the port is missing, busy or not accessible; the hint says how to fix each.
    """
    import serial

    try:
        return serial.serial_for_url(port, baudrate=baudrate, bytesize=serial.EIGHTBITS,
                                     parity=serial.PARITY_NONE, stopbits=stopbits, timeout=timeout_s,
                                     write_timeout=write_timeout_s)
    except (serial.SerialException, OSError, ValueError) as exc:
        code = getattr(exc, "errno", None)
        text = str(exc)
        if code in (errno.EACCES, errno.EPERM) or "Permission denied" in text:
            hint = "add yourself to the 'dialout' group (sudo usermod -aG dialout $USER) and log in again"
        elif code == errno.EBUSY or "busy" in text.lower():
            hint = "another program holds the port: close it (lighting software, a serial terminal)"
        else:
            hint = (f"check that the {device} is plugged in and the port name is right "
                    "(ls /dev/ttyUSB* /dev/ttyACM* on Linux, COMn on Windows)")
        if "://" in port:  # a URL is no file path (Path would fold its slashes): name it in the message
            raise AcquisitionError(f"cannot open the {device} port {port} ({text})", hint=hint) from exc
        raise AcquisitionError(f"cannot open the {device} port ({text})", path=port, hint=hint) from exc


@contextlib.contextmanager
def port_errors(port: str, device: str, doing: str) -> Iterator[None]:
    """Turn a serial failure inside the block into an AcquisitionError naming the port and the fix."""
    import serial

    try:
        yield
    except (serial.SerialException, OSError) as exc:
        raise AcquisitionError(
            f"lost the {device} on {port} while {doing} ({exc})",
            hint="the USB adapter was unplugged or failed: plug it back in, check the lamps, and run the same "
                 "command with --resume to continue") from exc
