"""Cameras behind one interface (:class:`acquisition.devices.Camera`).

Call :func:`open_camera` with a ``--camera`` spec to get one::

    gphoto2[:PORT]   a USB camera through libgphoto2 (PORT as ``gphoto2 --auto-detect`` prints it)
    adb[:SERIAL]     an Android phone's camera app over adb
    sim              the virtual studio's camera (renders from the lamps' last commanded state)
"""

from __future__ import annotations

from typing import Any

from ..devices import Camera, LampController
from ..lamps import split_spec
from .adb import AdbCamera, list_adb_devices
from .gphoto import GPHOTO2_ERRORS, Gphoto2Camera, ImageFormat, classify_image_format, gphoto2_error

__all__ = ["CAMERA_BACKENDS", "GPHOTO2_ERRORS", "AdbCamera", "Gphoto2Camera", "ImageFormat", "classify_image_format",
           "gphoto2_error", "list_adb_devices", "open_camera"]

#: The ``--camera`` backends, and whether they need an address.
CAMERA_BACKENDS = {"gphoto2": False, "adb": False, "sim": False}


def open_camera(spec: str, *, lamps: LampController | None = None, portrait: Any = None,
                size: tuple[int, int] = (3120, 4160), seed: int = 0, sim_config: Any = None,
                busy_timeout_ms: float | None = None, delete_from_camera: bool | None = None,
                folder: str | None = None, **options: Any) -> Camera:
    """Open the camera that ``spec`` names.

    Parameters
    ----------
    spec : str
        ``gphoto2``, ``gphoto2:usb:001,005``, ``adb``, ``adb:SERIAL`` or ``sim``.
    lamps : LampController, optional
        Required for ``sim``: the simulated camera renders from the state these lamps were last told (any
        backend, so staff can rehearse with the real lamps and no camera).
    portrait : acquisition.sim.Portrait, optional
        The subject the ``sim`` camera renders (default: the first embedded portrait).
    size : (width, height)
        Output size of the ``sim`` camera, in pixels.
    seed : int
        Seed of the ``sim`` camera.
    sim_config : optional
        The virtual studio's rendering settings.
    busy_timeout_ms : float, optional
        gphoto2: how long a busy camera is waited for (default 5000; the rig file's ``camera_busy_timeout_ms``).
    delete_from_camera : bool, optional
        Delete each shot from the camera or phone once it is downloaded and checked (default: gphoto2 keeps
        the card's copy, adb deletes the phone's).
    folder : str, optional
        adb: the camera app's folder on the phone (the rig file's ``adb_folder``; default: every DCIM folder).
    **options
        Passed to :class:`Gphoto2Camera` or :class:`AdbCamera` (``event_timeout_ms``, ``shot_timeout_s``, ...).

    Raises
    ------
    ValueError
        For an unknown backend, or ``sim`` without ``lamps``.
    AcquisitionError
        When the camera cannot be found or opened.
    """
    backend, address = split_spec(spec, CAMERA_BACKENDS, "camera backend")
    if backend == "gphoto2":
        if busy_timeout_ms is not None:
            options["busy_timeout_ms"] = busy_timeout_ms
        if delete_from_camera is not None:
            options["delete_from_camera"] = delete_from_camera
        return Gphoto2Camera(address, **options)
    if backend == "adb":
        if delete_from_camera is not None:
            options["delete_after_pull"] = delete_from_camera
        return AdbCamera(address, folder=folder, **options)
    if lamps is None:
        raise ValueError("the sim camera needs the lamp controller whose state it renders")
    from ..sim import SimulatedCamera, default_portraits

    if portrait is None:
        portrait = default_portraits()[0]
    return SimulatedCamera(portrait, lambda: lamps.state, size=size, seed=seed, config=sim_config)
