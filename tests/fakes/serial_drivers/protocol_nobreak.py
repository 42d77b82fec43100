"""``nobreak:///dev/pts/N``: the port through a serial driver that cannot send a break.

The bytes go to the real device (a pseudo-terminal emulator), but the break ioctl fails with EOPNOTSUPP, as it
does for USB-serial chips whose Linux driver has no break support (an "Open DMX" cable built on one of them).
"""

from __future__ import annotations

import errno
import os

import serial


class Serial(serial.Serial):
    """The platform's serial port, with the break request refused by the driver."""

    def _update_break_state(self) -> None:
        raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))


def serial_class_for_url(url: str) -> tuple[str, type]:
    """pyserial's hook: the device path behind the URL, and the class that opens it."""
    return url.split("://", 1)[1], Serial
