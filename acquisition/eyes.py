"""The blink rule, defined once: are the eyes open in both shots of a pose, or closed in one?

A blink between the flash and the studio shot cannot be registered away (the paper's dataset kept such pairs,
§4). The capture-time pair check (``acquisition.posecheck``) and the registration's quality control
(``registration.quality_reasons``) both ask :func:`judge_eyes`. Two readings, each failing where the other holds:

- Soukupova and Cech's eye aspect ratio (EAR, 2016) of dlib's eye landmarks, made robust: each eye is measured
  on the first fit and on refits on three tight boxes placed from its eyes (the median; dlib's face boxes come
  in ~20 % steps and a loose one can misplace both eyes). A shot counts as closed when both eyes are under the
  absolute limit *and* clearly more closed than the same eye in the other shot, or far more closed whatever the
  absolute reading (thick glasses keep a closed lid's ratio above it). One shot is judged against the other, so
  a face whose open eyes read low (glasses, a flash's glare: Grace Hopper's open eyes read 0.18) is not a blink.
- The eyes' own pictures, registered (flash → studio), on locally normalised luminance (blind to the two
  lights): open eyes correlate 0.92-0.99 on virtual-studio pairs, an open and a closed one 0.40-0.83. A match
  overrules the ratios' blink (dlib misreads an open eye under glasses now and then); a mismatch is a blink
  whatever the ratios say.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import cv2
import numpy as np

from .faces import FaceBox, eye_aspect_ratio, face_landmarks, to_uint8
from .pixels import local_contrast

__all__ = ["EyeLimits", "EyeVerdict", "eye_match", "eye_ratios", "judge_eyes"]

_EYES: Final = ("left_eye", "right_eye")
_TIGHT_BOXES: Final = (2.1, 2.3, 2.5)  # refit boxes, in eye distances across

ClosedIn = Literal["flash", "studio", "one"]


@dataclass(frozen=True)
class EyeLimits:
    """The limits of :func:`judge_eyes`.

    Parameters
    ----------
    ear_closed : float
        Mean eye aspect ratio under which a shot's eyes count as closed (~0.3 open; the registration's
        ``ear_threshold``).
    ear_relative : float
        ... and only when each eye is under this fraction of the same eye's ratio in the other shot.
    ear_relative_alone : float
        Both eyes under this fraction of their ratio in the other shot count as closed whatever their ratio
        (thick glasses keep a closed lid's ratio above ``ear_closed``: Grace Hopper's read 0.20-0.26 closed).
    min_eye_match : float
        The registered eyes' pictures correlating less than this (mean of both eyes) is a blink too (in the shot
        whose eyes read more closed).
    eyes_same_match : float
        ... and correlating more than this overrules the aspect ratios' blink.
    """

    ear_closed: float = 0.2
    ear_relative: float = 0.75
    ear_relative_alone: float = 0.65
    min_eye_match: float = 0.86
    eyes_same_match: float = 0.9


@dataclass(frozen=True)
class EyeVerdict:
    """What :func:`judge_eyes` found.

    Attributes
    ----------
    closed_in : {"flash", "studio", "one"} or None
        The shot whose eyes are closed; ``"one"`` when the pictures differ but the ratios cannot tell which;
        None when the eyes are open in both (as far as can be told).
    ears : dict
        ``{"flash": (left, right), "studio": (left, right)}``: the robust eye aspect ratios.
    match : float or None
        Mean correlation of the registered eyes' pictures (None when not compared).
    """

    closed_in: ClosedIn | None
    ears: dict[str, tuple[float, float]]
    match: float | None = None

    @property
    def blinked(self) -> bool:
        return self.closed_in is not None

    def mean_ear(self, role: str) -> float:
        return float(np.mean(self.ears[role]))

    @property
    def reason(self) -> str:
        """``"eyes closed in the flash shot"`` (empty when open)."""
        if self.closed_in is None:
            return ""
        if self.closed_in == "one":
            return "eyes closed in one of the shots (the eyes' pictures differ; their aspect ratios cannot tell which)"
        return f"eyes closed in the {self.closed_in} shot"

    def figures(self) -> dict[str, Any]:
        """The readings, JSON-able."""
        out: dict[str, Any] = {"eye_aspect_ratio": {role: [round(v, 4) for v in pair]
                                                    for role, pair in self.ears.items()}}
        if self.match is not None:
            out["eye_match"] = round(self.match, 4)
        return out


def _eye_box(marks: dict[str, np.ndarray], k: float) -> FaceBox:
    left, right = marks["left_eye"].mean(axis=0), marks["right_eye"].mean(axis=0)
    eyes, spread = (left + right) / 2, float(np.hypot(*(left - right)))
    return FaceBox(eyes[0] - k * spread / 2, eyes[1] - 0.26 * k * spread, eyes[0] + k * spread / 2,
                   eyes[1] + 0.74 * k * spread)


def eye_ratios(image: np.ndarray | None, marks: dict[str, np.ndarray]
               ) -> tuple[tuple[float, float], dict[str, np.ndarray]]:
    """Eye aspect ratio of each eye (left, right) and where the eyes are.

    The median over the first fit (``marks``, pixels of ``image``) and three refits on tight boxes placed from
    its eyes; the eyes returned are the refits' median. Without ``image`` the fit's own ratios and eyes.
    """
    if image is None:
        return (eye_aspect_ratio(marks["left_eye"]), eye_aspect_ratio(marks["right_eye"])), marks
    refits = face_landmarks(image, [_eye_box(marks, k) for k in _TIGHT_BOXES])
    fits = [marks, *refits]
    eyes = {name: np.median([m[name] for m in refits], axis=0) for name in _EYES}
    left, right = (float(np.median([eye_aspect_ratio(m[name]) for m in fits])) for name in _EYES)
    return (left, right), eyes


def _patch(image: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Luminance (0-1) of the patch whose pixel (u, v) is ``image`` pixel ``matrix @ (u, v, 1)``; only the part of
    the image under it is converted (a 12 MP shot is not)."""
    corners = np.array([[0, 0, 1], [size[0], 0, 1], [0, size[1], 1], [size[0], size[1], 1]], np.float64)
    mapped = corners @ matrix.T
    h, w = image.shape[:2]
    x0 = int(np.clip(math.floor(mapped[:, 0].min()) - 2, 0, w - 1))
    y0 = int(np.clip(math.floor(mapped[:, 1].min()) - 2, 0, h - 1))
    x1 = int(np.clip(math.ceil(mapped[:, 0].max()) + 3, x0 + 1, w))
    y1 = int(np.clip(math.ceil(mapped[:, 1].max()) + 3, y0 + 1, h))
    crop = cv2.cvtColor(to_uint8(image[y0:y1, x0:x1]).astype(np.float32), cv2.COLOR_RGB2GRAY) / 255.0
    shifted = matrix - np.array([[0.0, 0.0, x0], [0.0, 0.0, y0]])
    return cv2.warpAffine(crop, shifted, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def eye_match(eyes: dict[str, np.ndarray], flash_rgb: np.ndarray, studio_rgb: np.ndarray,
              affine: np.ndarray) -> list[float]:
    """Normalised cross-correlation of each eye's picture (left, right) in the flash shot with the studio shot's.

    Parameters
    ----------
    eyes : dict
        The flash shot's ``left_eye`` and ``right_eye`` landmarks, (6, 2) pixels of ``flash_rgb``.
    flash_rgb, studio_rgb : ndarray, shape (H, W, 3)
        The two shots (any size each: ``affine`` relates them).
    affine : ndarray, shape (2, 3)
        ``[M | t]`` with ``studio = M @ flash + t``, pixels of each shot (pixel-centre convention).
    """
    out = []
    for name in _EYES:
        eye = eyes[name]
        centre, width = eye.mean(axis=0), float(np.hypot(*(eye[3] - eye[0])))
        half = max(4, round(0.9 * width))
        size = (2 * half, max(4, round(1.2 * half)))
        to_flash = np.array([[1.0, 0.0, centre[0] - half], [0.0, 1.0, centre[1] - size[1] / 2]])
        to_studio = np.hstack([affine[:, :2] @ to_flash[:, :2],
                               (affine[:, :2] @ to_flash[:, 2] + affine[:, 2])[:, None]])
        patches = []
        for image, matrix in ((flash_rgb, to_flash), (studio_rgb, to_studio)):
            patch = local_contrast(_patch(image, matrix, size), max(width / 6, 1.0), eps=1e-4)
            patches.append(patch - patch.mean())
        a, b = patches
        out.append(float((a * b).sum() / max(math.sqrt(float((a * a).sum() * (b * b).sum())), 1e-12)))
    return out


def judge_eyes(flash_rgb: np.ndarray | None, studio_rgb: np.ndarray | None, flash_marks: dict[str, np.ndarray],
               studio_marks: dict[str, np.ndarray], affine: np.ndarray | None = None, *,
               limits: EyeLimits | None = None, blurred: Sequence[str] = (),
               mismatch_is_blink: bool = True) -> EyeVerdict:
    """Are the eyes closed in one shot of the pair? The blink rule of the module docstring.

    Parameters
    ----------
    flash_rgb, studio_rgb : ndarray, shape (H, W, 3), or None
        The two shots (uint8, uint16 or float in [0, 1]). None: the ratios of the landmarks given, no refits
        and no pictures compared (a weaker reading).
    flash_marks, studio_marks : dict
        dlib's landmarks of the face in each shot (``acquisition.faces.face_landmarks``), pixels of that shot.
    affine : ndarray, shape (2, 3), optional
        The registration flash → studio, ``studio = M @ flash + t`` (pixels of each shot). Without it the eyes'
        pictures are not compared (leave it out where they cannot be: a dark or washed-out shot).
    limits : EyeLimits, optional
    blurred : sequence of {"flash", "studio"}
        Shots known to be blurred: their eyes read half-closed, so the ratios are not judged there, and the
        pictures are not compared.
    mismatch_is_blink : bool
        Whether pictures that do not match are a blink by themselves (the capture check: one camera, whose tone
        is monotonic). False: a match only overrules the ratios' blink; for pairs whose flash tone may fold
        (the registration's mutual information allows any tone mapping; the correlation of a folded eye's
        picture falls to -0.9 with the eye open).

    Returns
    -------
    EyeVerdict
    """
    limits = limits or EyeLimits()
    (flash_ears, flash_eyes), (studio_ears, _) = eye_ratios(flash_rgb, flash_marks), eye_ratios(studio_rgb,
                                                                                                studio_marks)
    ears = {"flash": flash_ears, "studio": studio_ears}
    closed_by_ratio = []
    for role, other in (("flash", "studio"), ("studio", "flash")):
        if role in blurred:
            continue
        mine, theirs = ears[role], ears[other]
        relative = [m / max(t, 1e-6) for m, t in zip(mine, theirs, strict=True)]
        if (float(np.mean(mine)) < limits.ear_closed and max(relative) < limits.ear_relative) or \
                max(relative) < limits.ear_relative_alone:
            closed_by_ratio.append(role)
    match = None
    if affine is not None and flash_rgb is not None and studio_rgb is not None and not blurred:
        match = float(np.mean(eye_match(flash_eyes, flash_rgb, studio_rgb, np.asarray(affine, np.float64))))
    if closed_by_ratio and (match is None or match < limits.eyes_same_match):
        return EyeVerdict(closed_by_ratio[0], ears, match)
    if mismatch_is_blink and match is not None and match < limits.min_eye_match:
        means = {role: float(np.mean(v)) for role, v in ears.items()}
        lower, higher = sorted(means.values())
        closed_in: ClosedIn = min(means, key=means.__getitem__) if lower < 0.95 * higher else "one"  # type: ignore[assignment]
        return EyeVerdict(closed_in, ears, match)
    return EyeVerdict(None, ears, match)
