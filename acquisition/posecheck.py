"""The capture-time pair check: is this pose usable, while the subject is still in the chair?

The paper's dataset keeps flaws found only after the session (§4: open and closed eyes in one pair); a blink, a
large movement, a flash that did not light the subject, a blurred or over-exposed shot is cheap to retake while
the person is there and lost afterwards. :func:`check_pair` looks at one pose's two shots with the library
functions of the later stages (``registration.estimate_affine`` and ``registration.check_face_alignment``,
``acquisition.faces``) on a shrunken copy of each shot, and says, in words, what would make the pair useless:

- a face in both shots, the same one (dlib's 68 landmarks fit by a similarity);
- eyes open in both: the blink rule of ``acquisition.eyes`` (shared with the registration's quality control):
  robust eye aspect ratios judged against the other shot, and the eyes' pictures registered and compared
  (not on a blurred, dark or washed-out shot, which is judged on that instead);
- subject motion between the shots (rotation, scale and shift of the face-led registration; of the landmark
  similarity where the registration found no face) under limits;
- exposure: the studio shot's face neither clipped nor dark; the flash fired on the subject (the face much
  brighter relative to the background than in the studio shot, as a flash at the lens lights near things more);
- sharpness: the face's gradient energy at a fine scale over a coarse one, compared across the pair;
- the face registers: the face-led estimate on the shrunken copies, then the independent phase-correlation
  check of the face (the registration's own "never silently wrong" test).

Measured in ``bench/capture.py`` (time per 12 MP pose on one core, false alarms over good virtual-studio poses,
catch rate over poses with each kind of fault).
"""

from __future__ import annotations

import atexit
import math
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import cv2
import numpy as np

from .checks import check_finite_fields
from .drawing import BACKGROUND, cell_width, edge_strength, fit_into, label_strip
from .eyes import EyeLimits, judge_eyes
from .faces import FaceBox, face_landmarks, to_uint8
from .faces import _downscaled as _shrunk  # a copy whose longer side is at most N, and its scale (one package)
from .pixels import luminance
from .words import percent

__all__ = ["CHECK_IMAGE_NAME", "BackgroundCheck", "CheckLimits", "PairCheck", "check_pair", "check_pose",
           "draw_check"]

#: The picture of a pose's check, in the pose folder.
CHECK_IMAGE_NAME: Final = "check.jpg"
_SHARP_FACE_PX: Final = 256

Status = Literal["ok", "retake", "unchecked"]


@dataclass(frozen=True)
class CheckLimits:
    """The limits of :func:`check_pair` (every number a floor a pose must pass).

    Parameters
    ----------
    work_side : int
        Longer side of the shrunken copies every check runs on, pixels.
    max_rotation_deg, max_scale_change, max_shift_fraction : float
        Subject motion between the shots (landmark similarity): rotation in degrees, relative scale change,
        shift of the face centre as a fraction of the frame width. A person holding still for 0.4 s stays
        well within them (the virtual studio draws at most 3 deg, 3 %, 2 %).
    max_landmark_residual : float
        RMS of the landmarks about the similarity, in eye distances: above it the faces differ (another face,
        a grimace, a head turned far).
    eyes : EyeLimits
        The blink rule's limits (:mod:`acquisition.eyes`, shared with the registration).
    max_clipped_fraction : float
        Share of the studio face's pixels with a channel at 250 or more.
    min_face_level : float
        Median face luminance, 0-1, below which a shot is too dark.
    min_flash_gain : float
        How much brighter, relative to the background, the face must be in the flash shot than in the studio
        shot (face/background ratio of the flash shot over that of the studio shot).
    min_sharpness_ratio : float
        A shot whose face's sharpness (fine over coarse gradient energy) is under this fraction of the other
        shot's is blurred.
    max_face_error_px : float
        The registration check's limit at its working scale (``RegistrationConfig.max_face_error_px``).
    """

    work_side: int = 1280
    max_rotation_deg: float = 6.0
    max_scale_change: float = 0.06
    max_shift_fraction: float = 0.05
    max_landmark_residual: float = 0.25
    eyes: EyeLimits = field(default_factory=EyeLimits)
    max_clipped_fraction: float = 0.25
    min_face_level: float = 0.12
    min_flash_gain: float = 1.1
    min_sharpness_ratio: float = 0.8
    max_face_error_px: float = 1.5

    def __post_init__(self) -> None:
        check_finite_fields(self)
        if self.work_side < 256:
            raise ValueError(f"work_side must be >= 256, got {self.work_side}")
        for name, value in self.as_dict().items():
            if not value > 0:
                raise ValueError(f"CheckLimits.{name} must be > 0, got {value}")

    def as_dict(self) -> dict[str, float]:
        """Every limit by name, the blink rule's included (flat: ``ear_closed``...)."""
        values = {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "eyes"}
        return values | {name: getattr(self.eyes, name) for name in self.eyes.__dataclass_fields__}


@dataclass(frozen=True)
class PairCheck:
    """One pose's verdict.

    Attributes
    ----------
    status : {"ok", "retake", "unchecked"}
        ``unchecked``: the check could not run (no face in either shot, an unreadable shot): it says so and
        never blocks the session.
    problems : tuple of str
        Why to retake, most important first, in words (``"eyes closed in the flash shot"``); for
        ``unchecked``, why the check could not run.
    figures : dict
        Every measurement (JSON-able), for ``meta.json``.
    seconds : float
        Wall time of the check (decoding excluded).
    """

    status: Status
    problems: tuple[str, ...] = ()
    figures: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def summary(self) -> str:
        """``ok``, ``RETAKE: eyes closed in the flash shot; ...`` or ``not checked: ...``."""
        if self.status == "ok":
            return "ok"
        head = "RETAKE" if self.status == "retake" else "not checked"
        return f"{head}: {'; '.join(self.problems)}"

    def as_meta(self) -> dict[str, Any]:
        """The ``check`` entry of ``meta.json``."""
        return {"status": self.status, "problems": list(self.problems), "summary": self.summary,
                "seconds": round(self.seconds, 4), "figures": self.figures}


# -- measurements on the shrunken copies -------------------------------------------------------------------


def _crop(image: np.ndarray, box: FaceBox) -> np.ndarray:
    h, w = image.shape[:2]
    x0, y0 = max(0, math.floor(box.left)), max(0, math.floor(box.top))
    x1, y1 = min(w, math.ceil(box.right)), min(h, math.ceil(box.bottom))
    return image[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)]


def _points(marks: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(marks[k], np.float64) for k in sorted(marks)])


def _similarity(src: np.ndarray, dst: np.ndarray) -> tuple[float, float, np.ndarray, float]:
    """Umeyama's least-squares similarity ``dst ≈ s R src + t``: rotation (deg), scale, t, RMS residual."""
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    a, b = src - mu_s, dst - mu_d
    u, sing, vt = np.linalg.svd(b.T @ a / len(src))
    d = np.diag([1.0, float(np.sign(np.linalg.det(u @ vt)) or 1.0)])
    rot = u @ d @ vt
    scale = float(np.trace(np.diag(sing) @ d) / max(a.var(axis=0).sum(), 1e-12))
    t = mu_d - scale * rot @ mu_s
    residual = float(np.sqrt(np.mean(np.sum((src @ (scale * rot).T + t - dst) ** 2, axis=1))))
    return math.degrees(math.atan2(rot[1, 0], rot[0, 0])), scale, t, residual


def _gradient_energy(lum: np.ndarray, sigma: float) -> float:
    smooth = cv2.GaussianBlur(lum, (0, 0), sigma)
    return float(np.mean(cv2.Sobel(smooth, cv2.CV_32F, 1, 0) ** 2 + cv2.Sobel(smooth, cv2.CV_32F, 0, 1) ** 2))


def _sharpness(lum: np.ndarray, face_width: float) -> float:
    """Gradient energy of the face at a fine scale over that at a coarse one, the face resampled to
    :data:`_SHARP_FACE_PX` across (Gaussians of 1.5 and 4 px there).

    A ratio of two scales of the same face: blind to exposure and to how the light models the face (a flash
    and soft lamps give the same face Laplacian variances 0.4-1x apart on sharp virtual-studio pairs; this
    ratio 0.84-1.04), while a blur takes the fine scale away (0.78 and below on blurred ones); at a fixed face
    scale, so that a shot's sensor noise weighs the same at every image size.
    """
    if min(lum.shape) < 16 or face_width < 16:
        return math.nan
    f = _SHARP_FACE_PX / face_width
    size = (max(1, round(lum.shape[1] * f)), max(1, round(lum.shape[0] * f)))
    lum = cv2.resize(lum, size, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC)
    return _gradient_energy(lum, 1.5) / max(_gradient_energy(lum, 4.0), 1e-12)


def _background_level(lum: np.ndarray, face: FaceBox) -> float:
    """Median luminance of the frame's top and side bands away from the head (mostly background)."""
    h, w = lum.shape
    band = max(2, round(0.1 * min(h, w)))
    mask = np.zeros((h, w), bool)
    mask[:band, :] = True
    mask[:, :band] = True
    mask[:, w - band:] = True
    head = face.scaled(1.8)
    mask[max(0, int(head.top)):max(0, int(head.bottom)), max(0, int(head.left)):max(0, int(head.right))] = False
    values = lum[mask]
    return float(np.median(values)) if values.size else math.nan


# -- the check ---------------------------------------------------------------------------------------------


@dataclass
class _Shot:
    """What is known about one shot on its shrunken copy."""

    role: str
    rgb: np.ndarray
    face: FaceBox | None = None
    marks: dict[str, np.ndarray] | None = None


def _quick_registration(limits: CheckLimits) -> Any:
    """The registration's settings cut down for a verdict in a fraction of a second: the face at half the working
    size, fewer samples and iterations, no feature starts (a pair without a face is not checked further), faces
    searched on a 640 px copy. The turned starts stay: Grace Hopper's glasses throw the landmark start into
    a wrong basin 20 px off."""
    from registration import RegistrationConfig

    return RegistrationConfig(face_side_px=160, samples=6000, iterations=40, features=0, face_max_side_px=640,
                              threads=1,
                              max_face_error_px=limits.max_face_error_px)


def _estimate(flash: _Shot, studio: _Shot, limits: CheckLimits) -> tuple[Any, str | None]:
    """The registration's face-led estimate on the copies (its faces and landmarks fill in the shots)."""
    from registration import RegistrationError, estimate_affine

    config = _quick_registration(limits)
    try:
        estimate = estimate_affine(flash.rgb, studio.rgb, config=config)
    except RegistrationError as exc:
        return None, exc.message
    flash.face, flash.marks = estimate.flash_face, estimate.flash_landmarks
    studio.face, studio.marks = estimate.studio_face, estimate.studio_landmarks
    return estimate, None


def _find_face(shot: _Shot) -> None:
    """A face of ``shot`` when the estimate found none (it searches the studio shot only after the flash's)."""
    from .faces import detect_faces

    found = detect_faces(shot.rgb, min_face_px=0.05 * max(shot.rgb.shape[:2]))
    if found:
        shot.face, shot.marks = found[0], face_landmarks(shot.rgb, found[:1])[0]


def check_pair(flash_rgb: np.ndarray, studio_rgb: np.ndarray, *, limits: CheckLimits | None = None) -> PairCheck:
    """Check one pose's flash and studio shots for what would make the pair useless; say it in words.

    Parameters
    ----------
    flash_rgb, studio_rgb : ndarray, shape (H, W, 3)
        The two shots, upright, uint8 (or uint16, float in [0, 1]); the same size.
    limits : CheckLimits, optional
        Every limit; the defaults hold for a person holding still for 0.4 s.

    Returns
    -------
    PairCheck
        ``ok``, ``retake`` with the problems in words (``"eyes closed in the flash shot"``), or ``unchecked``
        when neither shot shows a face; ``figures`` hold every measurement.

    Notes
    -----
    Everything runs on copies shrunk to ``limits.work_side`` (1280 px): about half the time of the full
    registration of the same 12 MP pair on one core (``bench/capture.py``). The blink rule is the
    registration's (mean eye aspect ratio under 0.2, Soukupova and Cech 2016), made robust as the module
    docstring says.
    """
    limits = limits or CheckLimits()
    start = time.perf_counter()
    if flash_rgb.shape[:2] != studio_rgb.shape[:2]:
        raise ValueError(f"the shots differ in size: {flash_rgb.shape[:2]} and {studio_rgb.shape[:2]}")
    full_w = flash_rgb.shape[1]
    small_flash, factor = _shrunk(flash_rgb, limits.work_side)
    small_studio, _ = _shrunk(studio_rgb, limits.work_side)
    flash, studio = _Shot("flash", small_flash), _Shot("studio", small_studio)
    figures: dict[str, Any] = {"work_side": limits.work_side, "full_px_per_work_px": round(factor, 4)}
    estimate, failure = _estimate(flash, studio, limits)
    if failure is not None:
        figures["registration_error"] = failure
    for shot in (flash, studio):
        if shot.face is None:
            _find_face(shot)
    figures["face_found"] = {"flash": flash.face is not None, "studio": studio.face is not None}
    if flash.face is None and studio.face is None:
        return PairCheck("unchecked", ("no face found in either shot",), figures, time.perf_counter() - start)
    flash_lum, studio_lum = luminance(flash.rgb), luminance(studio.rgb)
    # Where the face is in each shot: its own box, else the other shot's (a dark shot may hide it from dlib).
    flash_box = flash.face or studio.face
    studio_box = studio.face or flash.face
    assert flash_box is not None and studio_box is not None

    lighting = _lighting(flash_lum, studio_lum, studio.rgb, flash_box, studio_box, limits, figures)
    dark_flash = any("flash" in p and ("dark" in p or "fire" in p) for p in lighting)
    washed_studio = any("studio shot" in p for p in lighting)
    faceless = [f"no face found in the {shot.role} shot (turned away, covered, or out of frame)"
                for shot, excused in ((flash, dark_flash), (studio, washed_studio))
                if shot.face is None and not excused]
    blinked = False
    figures["face_box"] = [round(v * factor, 2) for v in (flash_box.left, flash_box.top, flash_box.right,
                                                           flash_box.bottom)]
    affine = None
    if estimate is not None and estimate.region == "face":
        from registration import matrix_of

        matrix, translation = matrix_of(estimate.transform)
        affine = np.hstack([matrix, np.asarray(translation)[:, None] * factor])
        figures["transform"] = [[round(float(v), 6) for v in row] for row in affine]
    # A dark or washed-out face has no detail to compare; a blurred one cannot tell open eyes from closed.
    blur = [] if lighting else _blur(flash_lum, studio_lum, flash_box, studio_box, limits, figures)
    faces: list[str] = []
    if flash.marks is not None and studio.marks is not None:
        blurred = [role for role in ("flash", "studio") if blur and f"the {role} shot" in blur[0]]
        faces, blinked = _faces(flash, studio, factor, full_w, affine, limits, figures, blurred=blurred,
                                unlit=bool(lighting))
    # Most telling first: a blink or a movement explains odd light readings (the face left its box), not the
    # other way round.
    problems = faces + lighting + faceless + blur
    if estimate is not None and estimate.region == "face" and not blinked and not problems:
        problems += _registers(flash.rgb, studio.rgb, estimate, factor, limits, figures)
    status: Status = "retake" if problems else "ok"
    return PairCheck(status, tuple(dict.fromkeys(problems)), figures, time.perf_counter() - start)


def _lighting(flash_lum: np.ndarray, studio_lum: np.ndarray, studio_rgb: np.ndarray, flash_box: FaceBox,
              studio_box: FaceBox, limits: CheckLimits, figures: dict[str, Any]) -> list[str]:
    """Exposure of the studio face and whether the flash lit the subject."""
    problems = []
    studio_face = _crop(studio_lum, studio_box)
    flash_face = _crop(flash_lum, flash_box)
    clipped = float(np.mean(_crop(studio_rgb, studio_box).max(axis=2) >= 250))
    studio_level, flash_level = float(np.median(studio_face)), float(np.median(flash_face))
    flash_bg, studio_bg = _background_level(flash_lum, flash_box), _background_level(studio_lum, studio_box)
    eps = 2.0 / 255.0
    gain = ((flash_level + eps) / (flash_bg + eps)) / ((studio_level + eps) / (studio_bg + eps))
    figures.update({"studio_face_clipped": round(clipped, 4), "studio_face_level": round(studio_level, 4),
                    "flash_face_level": round(flash_level, 4), "flash_background_level": round(flash_bg, 4),
                    "studio_background_level": round(studio_bg, 4), "flash_gain": round(float(gain), 3)})
    if clipped > limits.max_clipped_fraction:
        problems.append(f"studio shot over-exposed ({percent(clipped)} of the face clipped): lower the lamps or the "
                        "camera's exposure")
    elif studio_level < limits.min_face_level:
        problems.append(f"studio shot too dark (face at {percent(studio_level)} of white): raise the lamps or the "
                        "camera's exposure")
    if flash_level < limits.min_face_level:
        problems.append(f"flash shot too dark (face at {percent(flash_level)} of white): the flash did not fire or did "
                        "not reach the subject")
    elif gain < limits.min_flash_gain:
        problems.append(f"the flash did not light the subject in the flash shot (face/background contrast only "
                        f"{gain:.2f}x the studio shot's): check that the flash fires")
    return problems


def _faces(flash: _Shot, studio: _Shot, factor: float, full_width: int, affine: np.ndarray | None,
           limits: CheckLimits, figures: dict[str, Any], *, blurred: Sequence[str] = (),
           unlit: bool = False) -> tuple[list[str], bool]:
    """Same face, motion between the shots, and the blink rule; returns the problems and whether one blinked.

    The motion is read from the face-led registration when it ran (``affine``, full-resolution pixels: dlib's
    landmarks can be thrown a tenth of a face off by glasses or a harsh flash), else from the landmarks'
    similarity.
    """
    assert flash.marks is not None and studio.marks is not None
    problems = []
    src, dst = _points(flash.marks), _points(studio.marks)
    rotation, scale, _, residual = _similarity(src, dst)
    eye_gap = float(np.hypot(*(flash.marks["left_eye"].mean(axis=0) - flash.marks["right_eye"].mean(axis=0))))
    centre_f = src.mean(axis=0) * factor
    centre_s = dst.mean(axis=0) * factor
    if affine is not None:
        from registration import decompose

        parts = decompose(affine[:, :2])
        rotation, scale = parts.rotation_deg, math.sqrt(parts.scale_x * parts.scale_y)
        centre_s = affine[:, :2] @ centre_f + affine[:, 2]
    shift = float(np.hypot(*(centre_s - centre_f))) / full_width
    relative = residual / max(eye_gap, 1e-6)
    figures.update({"rotation_deg": round(rotation, 3), "scale_change": round(scale - 1.0, 4),
                    "shift_fraction": round(shift, 4), "landmark_residual": round(relative, 4)})
    if relative > limits.max_landmark_residual:
        problems.append(f"the faces of the two shots do not match (landmarks {relative:.2f} eye distances apart "
                        "after the best similarity): another face, or a changed expression")
    moved = []
    if abs(rotation) > limits.max_rotation_deg:
        moved.append(f"turned {rotation:+.1f} deg")
    if abs(scale - 1.0) > limits.max_scale_change:
        moved.append(f"{'closer' if scale > 1 else 'farther'} by {percent(abs(scale - 1.0))}")
    if shift > limits.max_shift_fraction:
        moved.append(f"shifted {percent(shift)} of the width")
    if moved:
        problems.append(f"the subject moved between the shots ({', '.join(moved)})")
    # A blurred shot's eyes read half-closed (the blur is the reason to give); a dark or washed-out shot gives
    # neither trustworthy landmarks nor eye pictures (a flash that did not fire read as "eyes closed in the
    # studio shot" on open eyes): its lighting is the reason to give.
    work_affine = None if affine is None or unlit else affine / np.array([[1.0, 1.0, factor]] * 2)
    eyes = judge_eyes(flash.rgb, studio.rgb, flash.marks, studio.marks, work_affine, limits=limits.eyes,
                      blurred=blurred)
    figures.update(eyes.figures())
    if eyes.blinked and not unlit:
        problems.insert(0, eyes.reason)
        return problems, True
    return problems, False


def _blur(flash_lum: np.ndarray, studio_lum: np.ndarray, flash_box: FaceBox, studio_box: FaceBox,
          limits: CheckLimits, figures: dict[str, Any]) -> list[str]:
    """Sharpness of each face relative to the other's."""
    values = {"flash": _sharpness(_crop(flash_lum, flash_box), flash_box.width),
              "studio": _sharpness(_crop(studio_lum, studio_box), studio_box.width)}
    figures["sharpness"] = {k: round(v, 5) for k, v in values.items()}
    if not all(math.isfinite(v) and v > 0 for v in values.values()):
        return []
    for role, other in (("flash", "studio"), ("studio", "flash")):
        ratio = values[role] / values[other]
        if ratio < limits.min_sharpness_ratio:
            return [f"the {role} shot is blurred (face sharpness {percent(ratio)} of the {other} shot's): camera shake "
                    "or missed focus"]
    return []


def _registers(flash_rgb: np.ndarray, studio_rgb: np.ndarray, estimate: Any, factor: float,
               limits: CheckLimits, figures: dict[str, Any]) -> list[str]:
    """The registration's independent check of the face, on the copies."""
    from registration import check_face_alignment

    reading = check_face_alignment(flash_rgb, studio_rgb, estimate.transform, estimate.flash_face,
                                   config=_quick_registration(limits))
    figures["registration"] = {"error_px": round(reading.error_px * factor, 3) if reading.checked else None,
                               "error_work_px": round(reading.error_view_px, 3) if reading.checked else None,
                               "response": round(reading.response, 4), "seconds": round(estimate.seconds, 4)}
    if reading.checked and not reading.ok:
        return [f"the face does not register ({reading.error_px * factor:.1f} px off after registration): the face "
                "moved in a way the registration cannot follow"]
    return []


# -- files -------------------------------------------------------------------------------------------------


def check_pose(flash: Path, studio: Path, *, limits: CheckLimits | None = None,
               images: Sequence[np.ndarray] | None = None) -> tuple[PairCheck, np.ndarray]:
    """Check one pose's shots (files) and draw its picture.

    ``images`` (flash, studio), when the caller has decoded them already (the session does), are used as they
    are: each shot is decoded once. Returns the verdict and the ``check.jpg`` picture (not written).

    Raises
    ------
    AcquisitionError
        When a shot cannot be read (the message names the file).
    """
    from .imageio import read_image

    if images is None:
        images = [read_image(flash), read_image(studio)]
    result = check_pair(images[0], images[1], limits=limits)
    return result, draw_check(images[0], images[1], result)


# -- the picture -------------------------------------------------------------------------------------------

_PANEL_HEIGHT: Final = 360
_GAP: Final = 4
_COLOURS: Final = {"ok": (40, 160, 60), "retake": (210, 40, 40), "unchecked": (150, 150, 150)}


def _face_overlay(flash: np.ndarray, studio: np.ndarray, result: PairCheck, cell: tuple[int, int]) -> np.ndarray:
    """The face region, flash edges magenta and studio edges green (white where they coincide), the studio shot
    brought onto the flash shot by the check's registration when it ran: a blink shows as eyes drawn in one
    colour only, motion the registration could not follow and blur as doubled or missing edges."""
    h, w = flash.shape[:2]
    box = result.figures.get("face_box")
    face = FaceBox(*box).scaled(1.6) if box else FaceBox(0, 0, w, h)
    x0, y0 = max(0, int(face.left)), max(0, int(face.top))
    x1, y1 = min(w, math.ceil(face.right)), min(h, math.ceil(face.bottom))
    factor = max(1.0, max(x1 - x0, y1 - y0) / (1.5 * max(cell)))
    size = (max(1, round((x1 - x0) / factor)), max(1, round((y1 - y0) / factor)))
    # crop pixel (u, v) of the overlay is full-resolution flash pixel (x0 + factor u, y0 + factor v)
    to_flash = np.array([[factor, 0.0, x0], [0.0, factor, y0]])
    affine = np.asarray(result.figures.get("transform", [[1, 0, 0], [0, 1, 0]]), np.float64)
    to_studio = np.hstack([affine[:, :2] @ to_flash[:, :2], (affine[:, :2] @ to_flash[:, 2] + affine[:, 2])[:, None]])
    edges = []
    for image, matrix in ((flash, to_flash), (studio, to_studio)):
        crop = cv2.warpAffine(to_uint8(image), matrix, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REPLICATE)
        edges.append(edge_strength(crop))
    overlay = (np.stack([edges[0], edges[1], edges[0]], axis=2) * 255 + 0.5).astype(np.uint8)
    return fit_into(overlay, *cell)


def draw_check(flash_rgb: np.ndarray, studio_rgb: np.ndarray, result: PairCheck, *,
               height: int = _PANEL_HEIGHT) -> np.ndarray:
    """flash | studio | face overlay, each fitted whole into a cell ``height`` pixels high (as wide as the
    shots' aspect ratio asks, within :func:`acquisition.drawing.cell_width`'s limits), under a bar with the
    verdict in full: (H, W, 3) uint8 RGB."""
    cell = (cell_width(height, [flash_rgb.shape[1] / flash_rgb.shape[0]]), height)
    panels = [fit_into(flash_rgb, *cell), fit_into(studio_rgb, *cell), _face_overlay(flash_rgb, studio_rgb, result,
                                                                                      cell)]
    gap = np.full((height, _GAP, 3), BACKGROUND, np.uint8)
    body = np.hstack([panels[0], gap, panels[1], gap, panels[2]])
    return np.vstack([label_strip(body.shape[1], result.summary, _COLOURS[result.status], font_scale=0.48), body])


# -- in the background -------------------------------------------------------------------------------------


_EXIT_WAIT_S: Final = 30.0
_RUNNING: weakref.WeakSet[Any] = weakref.WeakSet()


@atexit.register
def _wait_for_running_checks() -> None:
    """Let checks still computing finish before the interpreter finalises (see :class:`BackgroundCheck`)."""
    deadline = time.monotonic() + _EXIT_WAIT_S
    for check in list(_RUNNING):
        check._done.wait(max(0.0, deadline - time.monotonic()))


class BackgroundCheck:
    """:func:`check_pose` in a worker thread, started once a pose is stored, while the operator prepares the next.

    The worker only computes (dlib, OpenCV and SimpleITK release the GIL): every file is written by the caller,
    atomically, once :meth:`result` returns, so an interruption during the check leaves nothing half-written.
    The thread is a daemon: a Ctrl-C does not wait for it; but the interpreter does, for up to
    ``_EXIT_WAIT_S`` at exit, because native code (dlib, SimpleITK) still running in a thread while the
    interpreter finalises aborts the process ("terminate called without an active exception").

    Parameters
    ----------
    flash, studio : Path
        The pose's shots.
    images : (ndarray, ndarray), optional
        Both shots already decoded (flash, studio): they are not decoded again.
    limits : CheckLimits, optional
    start : bool
        Start at once (default), or at :meth:`start`.
    """

    def __init__(self, flash: Path, studio: Path, *, images: Sequence[np.ndarray] | None = None,
                 limits: CheckLimits | None = None, start: bool = True) -> None:
        import threading

        self.started_at = time.time()
        self.finished_at: float | None = None
        self._outcome: tuple[PairCheck, np.ndarray | None] | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(flash, studio, images, limits), daemon=True,
                                        name="pose-check")
        if start:
            self.start()

    def start(self) -> None:
        """Start the check (``start=False`` lets the caller record it first: a stop may come at any moment)."""
        _RUNNING.add(self)
        self._thread.start()

    def _run(self, flash: Path, studio: Path, images: Sequence[np.ndarray] | None,
             limits: CheckLimits | None) -> None:
        try:
            result, picture = check_pose(flash, studio, limits=limits, images=images)
            self._outcome = (result, picture)
        except Exception as exc:  # the check must never stop the session: it says why it could not run
            from .errors import PrepError

            why = exc.message if isinstance(exc, PrepError) else f"{type(exc).__name__}: {exc}"
            self._outcome = (PairCheck("unchecked", (f"the check failed ({why})",)), None)
        finally:
            self.finished_at = time.time()
            self._done.set()

    @property
    def finished(self) -> bool:
        """Whether the check has reached its verdict (or failed): False while it still computes."""
        return self._done.is_set()

    def result(self, timeout_s: float = 60.0) -> tuple[PairCheck, np.ndarray | None]:
        """Wait for the verdict (a Ctrl-C while waiting is raised at once) and its picture (None if it failed).

        A check still running after ``timeout_s`` (a machine far too slow, a library that hangs) is given up:
        the verdict says so and the session goes on.
        """
        deadline = time.monotonic() + timeout_s
        # An Event, not Thread.join: a join that a Ctrl-C interrupts can leave the thread marked as ended while
        # it still runs (CPython before 3.13), and a later wait would then not wait at all.
        while not self._done.wait(0.05):
            if time.monotonic() >= deadline:
                self.finished_at = time.time()
                return PairCheck("unchecked", (f"the check did not finish within {timeout_s:g} s",)), None
        assert self._outcome is not None
        return self._outcome
