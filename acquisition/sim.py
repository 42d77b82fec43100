"""The virtual studio: simulated lamps and a simulated camera that render real portraits.

Lab staff rehearse a session without hardware, ``make demo`` needs pairs without a studio, and every later stage
needs realistic flash/studio pairs whose misalignment is known exactly. The simulated devices implement the
same :mod:`acquisition.devices` interfaces as the real backends and are coupled like a real studio: the camera
renders what the lamps (the state they were last commanded, :attr:`LampController.state`) and its flash light
*at the moment of capture*:

============  ==========  ===========================================================
lamps         flash       picture
============  ==========  ===========================================================
on            no          studio shot: soft, even light
off           fires       flash shot: point light at the lens (fall-off, shine, shadow)
off           no          dark, noisy shot
on            fires       both lights: overexposed
============  ==========  ===========================================================

So a wrong sequence shows in the pictures instead of passing silently. Flash ``"auto"`` fires only when the
lamps are off, as a phone's does. Shots with flash show the subject in its reference pose; shots without flash
show a small random pose (a person holding still for 0.4 s): by default the phone stands on a tripod and the
subject moves in front of a background that stays put, with a slight head turn, and now and then a blink
(:class:`StudioConfig` ``motion``, ``backdrop``, ``blink_probability``). The studio shot's ``Shot.extra``
records it all, with the registration's ground truth.

Examples
--------
>>> from acquisition.sim import SimulatedCamera, SimulatedLamps, default_portraits
>>> lamps = SimulatedLamps()
>>> camera = SimulatedCamera(default_portraits()[0], lambda: lamps.state, size=(480, 640), seed=1)
>>> lamps.on(); studio = camera.capture(tmp / "studio.jpg", flash="off")          # doctest: +SKIP
>>> lamps.off(); flash = camera.capture(tmp / "flash.jpg", flash="auto")          # doctest: +SKIP
>>> studio.extra["ground_truth_transform"]  # studio_point = matrix @ flash_point + translation  # doctest: +SKIP
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from ._studio._config import StudioConfig
from ._studio._portraits import Portrait, default_portraits, load_portraits
from ._studio._render import (
    DEFAULT_SIZE,
    Lighting,
    PoseMotion,
    RenderedPair,
    RenderedShot,
    StudioPose,
    check_frame_size,
    lighting_of,
    pose_seed,
    render_pair,
    render_shot,
)
from .devices import Camera, CameraInfo, FlashMode, LampController, LampState, Shot
from .errors import AcquisitionError
from .exif import make_exif
from .imageio import apply_orientation, write_image

__all__ = ["DEFAULT_SIZE", "Lighting", "Portrait", "PoseMotion", "RenderedPair", "RenderedShot", "SimulatedCamera",
           "SimulatedLamps", "StudioConfig", "StudioPose", "check_frame_size", "default_portraits", "lighting_of",
           "load_portraits", "pose_seed", "render_pair", "render_shot"]

SIM_MAKE: Final = "DeepFlash"
SIM_MODEL: Final = "Virtual Studio"
# Stored-array transform that ``apply_orientation(stored, o)`` turns back upright (the inverse of each op).
_INVERSE_ORIENTATION: Final = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 8, 7: 7, 8: 6}


class SimulatedLamps(LampController):
    """Studio lamps that only remember what they were told (for rehearsals and the virtual studio).

    Parameters
    ----------
    switch_delay_s : float
        Seconds each command takes, like real lamps that need ~0.4 s to go dark (0 = instant).
    """

    name = "sim"

    def __init__(self, *, switch_delay_s: float = 0.0) -> None:
        super().__init__()
        if switch_delay_s < 0:
            raise ValueError(f"switch_delay_s must be >= 0, got {switch_delay_s}")
        self.switch_delay_s = switch_delay_s
        #: Every command as ``(time.time(), on, level)``, for rehearsal logs and tests.
        self.history: list[tuple[float, bool, int]] = []

    def _set(self, on: bool, level: int) -> None:
        if self.switch_delay_s:
            time.sleep(self.switch_delay_s)
        self.history.append((time.time(), on, level))


def _whole_number(name: str, value: float) -> int:
    """``value`` as an int, or ValueError naming ``name`` when it is not a whole number >= 0."""
    if int(value) != value or value < 0:
        raise ValueError(f"{name} must be a whole number >= 0, got {value}")
    return int(value)


class SimulatedCamera(Camera):
    """A phone on a tripod, photographing one portrait under whatever light there is when it fires.

    Parameters
    ----------
    portrait : Portrait
        The subject (see :func:`default_portraits`, :func:`load_portraits`).
    lamp_state : callable returning LampState
        Asked at each capture, e.g. ``lambda: lamps.state`` for simulated *or real* lamps.
    size : (int, int)
        Output (width, height); default 3120 x 4160, the paper's Nexus 6 in portrait. Checked at once
        (:func:`check_frame_size`: the readers' pixel limit, the memory rendering needs).
    seed : int
        Shot ``i`` draws its lighting jitter and noise from ``numpy.random.default_rng([seed, i])`` and its pose
        (motion, head turn, blink) from :func:`pose_seed` ``(seed, i)``, shared by shots ``2k`` and ``2k + 1``
        (a pose's two shots, in either order): the same seed and shot index give the same file bytes.
    config : StudioConfig, optional
        Every strength of the rendering.
    orientation : int
        EXIF orientation to store the pictures with, 1-8 (6 = sensor landscape, as phones do); the pixels are
        stored so that :func:`acquisition.imageio.read_image` turns them upright.

    Notes
    -----
    :attr:`shot_index` counts captures from 0; a session that resumes may set it (e.g. to ``2 * pose_number``)
    so that a resumed session renders the same bytes as an uninterrupted one.
    """

    def __init__(self, portrait: Portrait, lamp_state: Callable[[], LampState], *,
                 size: tuple[int, int] = DEFAULT_SIZE, seed: int = 0, config: StudioConfig | None = None,
                 orientation: int = 1) -> None:
        if not isinstance(portrait, Portrait):
            raise TypeError(f"portrait must be a Portrait, got {type(portrait).__name__}")
        if orientation not in _INVERSE_ORIENTATION:
            raise ValueError(f"orientation must be an EXIF value 1-8, got {orientation}")
        self.portrait = portrait
        self.size = check_frame_size(size)
        self.seed = int(seed)
        self.config = config or StudioConfig()
        self.orientation = int(orientation)
        self._lamp_state = lamp_state
        self._shot_index = 0
        self._take = 0
        self._closed = False
        self._lock = threading.Lock()

    @property
    def shot_index(self) -> int:
        """The index of the next capture (its random stream is ``[seed, shot_index]``)."""
        return self._shot_index

    @shot_index.setter
    def shot_index(self, value: int) -> None:
        self._shot_index = _whole_number("shot_index", value)

    @property
    def take(self) -> int:
        """Which take of its pose the next capture belongs to: 0 first, 1 the first retake, ... (a retake draws
        the pose afresh, and a :class:`StudioConfig` fault only in its first ``fault_takes`` takes)."""
        return self._take

    @take.setter
    def take(self, value: int) -> None:
        self._take = _whole_number("take", value)

    def info(self) -> CameraInfo:
        """Make ``DeepFlash``, model ``Virtual Studio``; the settings hold the portrait, size, seed and config."""
        return CameraInfo(backend="sim", make=SIM_MAKE, model=SIM_MODEL,
                          settings={"portrait": self.portrait.name, "size": list(self.size), "seed": self.seed,
                                    "orientation": self.orientation, "config": self.config.as_dict()})

    def capture(self, path: Path, *, flash: FlashMode) -> Shot:
        """Render the picture the lamps and flash give right now and save it as a JPEG with EXIF (atomically).

        Parameters
        ----------
        path : Path
            Where to save; the folder must exist. JPEG (``.jpg``) keeps the EXIF; PNG/TIFF are written without.
        flash : {"on", "off", "auto"}
            ``auto`` fires only when the lamps are off.

        Returns
        -------
        Shot
            ``flash_fired`` says whether the flash fired; ``extra`` holds ``simulated``, ``portrait``,
            ``shot_index``, ``seed`` and ``lighting`` ("studio", "flash", "dark" or "both"), plus, for shots
            without flash, the pose (:meth:`StudioPose.as_meta`), relative to the reference pose of flash shots
            (full-resolution pixels, x right, y down, origin at the centre of the top-left pixel):
            ``ground_truth_transform`` ``{"matrix": [[a, b], [c, d]], "translation": [tx, ty]}``, the
            registration's target (studio_point = matrix @ flash_point + translation, the least-squares affine of
            the subject's true motion over the face); ``subject_transform`` and ``camera_transform`` (the drawn
            affines, same form); ``motion``; ``backdrop``; ``blink`` (null, "flash" or "studio": the shot with
            closed eyes); ``head_turn_px`` (the head turn's peak displacement); ``face_box`` ([left, top, right,
            bottom] of the face in the flash shot: where the target was fitted); ``take``; ``fault`` (null, or
            ``{"kind", "shot"}`` and the blur drawn: what :class:`StudioConfig` ``faults`` put in this take).

        Raises
        ------
        AcquisitionError
            When the camera was closed or the file cannot be written.
        """
        if flash not in ("on", "off", "auto"):
            raise ValueError(f"flash must be 'on', 'off' or 'auto', not {flash!r}")
        path = Path(path)
        with self._lock:
            if self._closed:
                raise AcquisitionError("the simulated camera is closed", path=path)
            triggered_at = time.time()
            state = self._lamp_state()
            lamps = state.intensity
            fired = flash == "on" or (flash == "auto" and lamps == 0.0)
            index = self._shot_index
            shot = render_shot(self.portrait, lamps=lamps, flash=fired, size=self.size, seed=[self.seed, index],
                               pose=pose_seed(self.seed, index, self._take), config=self.config, take=self._take)
            stored = apply_orientation(shot.image, _INVERSE_ORIENTATION[self.orientation])
            exif = make_exif(make=SIM_MAKE, model=SIM_MODEL, flash_fired=fired, flash_mode=flash,
                             orientation=self.orientation, Software="DeepFlash virtual studio")
            is_jpeg = path.suffix.lower() in (".jpg", ".jpeg")
            write_image(path, stored if is_jpeg else shot.image, quality=self.config.jpeg_quality,
                        exif=exif if is_jpeg else None)
            saved_at = time.time()
            self._shot_index = index + 1
        extra: dict[str, Any] = {"simulated": True, "portrait": self.portrait.name, "shot_index": index,
                                 "seed": self.seed, "lighting": shot.lighting, "lamp_level": state.level}
        if shot.motion is not None:
            extra.update(shot.pose.as_meta())
        return Shot(path=path, flash_requested=flash, flash_fired=fired, triggered_at=triggered_at,
                    saved_at=saved_at, extra=extra)

    def close(self) -> None:
        """Further captures raise :class:`AcquisitionError`."""
        self._closed = True

