"""The two small interfaces a capture session drives: studio lamps and a camera.

Real backends (Enttec DMX, Open DMX, relay boards, manual, gphoto2, adb) and the virtual studio's simulated
lamps and camera implement the same interfaces, so a session runs the same code for all of them. Every lamp
controller remembers the state it last commanded (:attr:`LampController.state`): the simulated camera renders
from it, which is how staff rehearse with real lamps and no camera.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = ["Camera", "CameraInfo", "FlashMode", "LampController", "LampState", "Shot"]

FlashMode = Literal["on", "off", "auto"]


@dataclass(frozen=True)
class LampState:
    """What the lamps were last told: on at ``level`` (0-255), or off."""

    on: bool = False
    level: int = 0

    @property
    def intensity(self) -> float:
        """Relative light output in [0, 1] (0 when off)."""
        return self.level / 255.0 if self.on else 0.0


class LampController(abc.ABC):
    """Switches all studio lamps together. Use as a context manager: leaving switches them off."""

    name: str = "lamps"
    #: Whether the lamps keep the last commanded state once the program has exited. False for a controller
    #: the computer must keep refreshing (an Open DMX USB adapter has no processor: prep sends every packet).
    holds_state_after_exit: bool = True

    def __init__(self) -> None:
        self._state = LampState()

    @property
    def state(self) -> LampState:
        """The state last commanded successfully."""
        return self._state

    def on(self, level: int = 255) -> None:
        """All lamps on at ``level`` (0-255)."""
        if not 0 <= level <= 255:
            raise ValueError(f"lamp level must be 0-255, got {level}")
        self._set(True, level)
        self._state = LampState(True, level)

    def off(self) -> None:
        """All lamps off."""
        self._set(False, 0)
        self._state = LampState(False, 0)

    @abc.abstractmethod
    def _set(self, on: bool, level: int) -> None:
        """Send the command to the hardware; raise AcquisitionError when it cannot."""

    def close(self) -> None:
        """Release the port. Subclasses that hold one extend this."""

    def __enter__(self) -> LampController:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@dataclass(frozen=True)
class CameraInfo:
    """Who took the picture: recorded in ``meta.json``."""

    backend: str
    make: str = ""
    model: str = ""
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Shot:
    """One capture: the saved file and what the camera says happened."""

    path: Path
    flash_requested: FlashMode
    flash_fired: bool | None
    triggered_at: float
    saved_at: float
    #: Metadata the camera wants recorded in ``meta.json`` (e.g. the simulator's ``ground_truth_transform``).
    extra: dict[str, Any] = field(default_factory=dict)
    #: The shot's other files, stored beside it (the RAW of a RAW + JPEG camera: ``studio.DSC_0042.NEF``);
    #: ``meta.json`` lists them. Files that arrive later go to :attr:`Camera.on_extra_file`.
    companions: tuple[Path, ...] = ()

    @property
    def latency_s(self) -> float:
        """Seconds from the trigger to the file on disk."""
        return self.saved_at - self.triggered_at


class Camera(abc.ABC):
    """Takes a picture and saves it to a path. Use as a context manager."""

    #: Called with (the shot's path, the file's path) when a file of a shot is stored beside it after
    #: :meth:`capture` returned (a RAW announced late; a phone's companion pulled once the pose is stored),
    #: wherever the shot now is: the session adds it to the pose's ``meta.json``.
    on_extra_file: Callable[[Path, Path], None] | None = None

    def begin_pose(self) -> None:
        """A pose is about to start (before the lamps switch, not between its two shots): a camera may
        reconnect, or read again settings the operator may have changed since the last pose. Default: nothing."""

    def check_room(self, shots: int) -> None:
        """Raise AcquisitionError when the camera knows it cannot store ``shots`` more shots (a full card).
        Default: the camera does not say."""

    @abc.abstractmethod
    def info(self) -> CameraInfo:
        """Make, model and settings, for the session metadata."""

    @abc.abstractmethod
    def capture(self, path: Path, *, flash: FlashMode) -> Shot:
        """Take one picture with the flash ``on``, ``off`` or ``auto`` and save it (atomically) at ``path``."""

    def shots_stored(self, shots: Sequence[Shot]) -> None:
        """The session has stored ``shots`` for good: checked, and renamed into the layout (``Shot.path`` is the
        final path). A camera that keeps its own copies may free them now; the default does nothing."""

    def close(self) -> None:
        """Release the device."""

    def __enter__(self) -> Camera:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
