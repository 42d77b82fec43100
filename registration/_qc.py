"""Quality control of one registration: is the transform plausible, did the metric improve, did anyone blink,
and does the independent check find the face where the transform puts it?

A flagged pair is kept and marked so a person can look at it (``prep review``); nothing here deletes data. The
blink test is the paper's known limitation (a blink between the two shots cannot be registered away), which
it never detected: the capture-time pair check's rule (``acquisition.eyes.judge_eyes``: eye aspect ratios of
both shots judged against each other, and the registered eyes' pictures compared). A blink is its own reason;
the face check's reading of that pair (the eyes differ, so it may read a shift) is not added.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Final

import numpy as np

from acquisition.errors import PrepError
from acquisition.exif import read_flash_fired
from acquisition.eyes import EyeLimits, EyeVerdict, judge_eyes
from acquisition.faces import FaceBox, eye_aspect_ratio
from acquisition.pixels import luminance
from acquisition.words import beside_limit

from ._check import FaceCheck
from ._config import AffineEstimate, RegistrationConfig
from ._transform import decompose, matrix_of

__all__ = ["exposure_reasons", "eye_state", "eye_verdict", "fallback_reason", "flash_tag_reasons", "overlap_reason",
           "quality_reasons", "same_picture_reason"]

#: Exposure limits in 8-bit luminance (Rec. 601). Measured on the virtual studio's good pairs (both portraits;
#: scene, plain and room backdrops; six poses each): the face's mean luminance lies between 142 and 180 in both
#: shots, the whole frame's mean above 58, and at most 4 % of a face is clipped. A shot at 5 % of its exposure
#: reads ~8: the limits leave a factor of four or more on both sides.
MIN_FACE_LUMINANCE: Final = 32.0
MIN_FRAME_LUMINANCE: Final = 16.0
MAX_CLIPPED_FRACTION: Final = 0.3
_CLIPPED: Final = 250.0


def eye_state(landmarks: dict[str, np.ndarray] | None) -> float | None:
    """Mean eye aspect ratio of both eyes (~0.3 open, < ~0.2 closed), or None without landmarks."""
    if not landmarks or "left_eye" not in landmarks or "right_eye" not in landmarks:
        return None
    return (eye_aspect_ratio(landmarks["left_eye"]) + eye_aspect_ratio(landmarks["right_eye"])) / 2


def eye_verdict(flash_rgb: np.ndarray | None, studio_rgb: np.ndarray | None, estimate: AffineEstimate,
                config: RegistrationConfig) -> EyeVerdict | None:
    """The blink rule (:func:`acquisition.eyes.judge_eyes`) on a registered pair, or None without both shots' eyes.

    ``estimate.transform`` maps full-resolution flash pixels to studio pixels, as the rule wants; the pictures
    (full resolution, as registered) let it refit the eyes and compare them (None: the landmarks alone). The
    pictures' match only overrules the ratios here: mutual information registers pairs whose tones relate in
    any way, where a correlation of open eyes can read as a mismatch.
    """
    marks = estimate.flash_landmarks, estimate.studio_landmarks
    if not all(m and "left_eye" in m and "right_eye" in m for m in marks):
        return None
    matrix, translation = matrix_of(estimate.transform)
    affine = np.hstack([matrix, np.asarray(translation)[:, None]])
    return judge_eyes(flash_rgb, studio_rgb, marks[0], marks[1], affine,  # type: ignore[arg-type]
                      limits=EyeLimits(ear_closed=config.ear_threshold), mismatch_is_blink=False)


def _raise_or_retake(option: str) -> str:
    return f"if the subject really moved that much, raise the limit with prep register {option}; or retake the pose"


def _scales_text(scales: dict[str, float], max_change: float) -> str:
    """"scale x 1.0205 is more than 2.03%", or "scale x 1.0205 and y 1.0210 are ..." (one sentence, one advice)."""
    def read(decimals: int) -> dict[str, tuple[str, str]]:
        return {name: beside_limit(value, max_change, decimals=decimals, limit_unit="%", centre=1.0)
                for name, value in scales.items()}

    texts = read(max(len(shown.partition(".")[2]) for shown, _ in read(3).values()))  # x and y alike
    limit = max((limit for _, limit in texts.values()), key=len)
    both = " and ".join(f"{name} {shown}" for name, (shown, _) in texts.items())
    return f"scale {both} {'are' if len(texts) > 1 else 'is'} more than {limit}"


def overlap_reason(covered: float, names: tuple[str, str], config: RegistrationConfig) -> str | None:
    """Why too little of the flash frame is covered by the registered studio shot (None when enough is).

    ``covered`` is the fraction of the flash frame the warped studio shot covers (``overlap_fraction``), judged
    against ``config.min_overlap``: a pair under it fails, as a dataset pair needs the studio picture everywhere.
    """
    if covered >= config.min_overlap:
        return None
    shown, limit = beside_limit(covered, config.min_overlap, unit="%")
    return (f"{names[1]} covers only {shown} of the frame of {names[0]} after registration (minimum {limit}): too "
            "little overlap for that limit (the two shots must show the same scene, framed about the same way): "
            "retake the pose, or lower the limit with prep register --min-overlap")


def quality_reasons(estimate: AffineEstimate, flash_shape: tuple[int, ...], studio_shape: tuple[int, ...],
                    config: RegistrationConfig, check: FaceCheck | None = None,
                    eyes: EyeVerdict | None = None) -> list[str]:
    """Why a registration looks wrong, in words (empty when it looks right).

    Scale is judged relative to the size ratio of the two images (a studio shot saved at another resolution is
    not a zoom), and the shift is that of the flash image centre, as a fraction of the studio width. ``check``
    is :func:`check_face_alignment`'s reading of the face, when there is one; ``eyes`` the blink rule's verdict
    (:func:`eye_verdict` with the pictures), else it is read from the estimate's landmarks alone.
    """
    reasons: list[str] = []
    fh, fw = flash_shape[:2]
    sh, sw = studio_shape[:2]
    matrix, translation = matrix_of(estimate.transform)
    parts = decompose(matrix / np.array([[sw / fw], [sh / fh]]))
    if abs(parts.rotation_deg) > config.max_rotation_deg:
        shown, limit = beside_limit(parts.rotation_deg, config.max_rotation_deg, sign=True)
        reasons.append(f"rotation {shown} deg is beyond ±{limit} deg: {_raise_or_retake('--max-rotation')}")
    scales = {name: value for name, value in (("x", parts.scale_x), ("y", parts.scale_y))
              if not abs(value - 1.0) <= config.max_scale_change}
    if scales:
        reasons.append(f"{_scales_text(scales, config.max_scale_change)} from 1: "
                       f"{_raise_or_retake('--max-scale-change')}")
    if not abs(parts.shear) <= config.max_shear:
        shown, limit = beside_limit(parts.shear, config.max_shear, decimals=3, sign=True)
        reasons.append(f"shear {shown} is beyond ±{limit}: {_raise_or_retake('--max-shear')}")
    centre_f = np.array([(fw - 1) / 2, (fh - 1) / 2])
    centre_s = np.array([(sw - 1) / 2, (sh - 1) / 2])
    shift = float(np.hypot(*(matrix @ centre_f + translation - centre_s))) / sw
    if shift > config.max_shift_fraction:
        shown, limit = beside_limit(shift, config.max_shift_fraction, unit="%")
        reasons.append(f"shift {shown} of the width exceeds {limit}: {_raise_or_retake('--max-shift')}")
    before, after = estimate.metric_before, estimate.metric_after
    # The ECC polish may give back a hair of mutual information for precision: only a real loss counts.
    if math.isnan(after) or (not math.isnan(before) and after > before + 0.01 * abs(before)):
        reasons.append(f"mutual information did not improve (before {-before:.3f}, after {-after:.3f}): the "
                       "registration found no better match than the start; look at the pair in the contact sheet "
                       "or retake the pose")
    elif -after < config.min_mutual_information:
        shown, limit = beside_limit(-after, config.min_mutual_information, decimals=3)
        reasons.append(f"weak match: mutual information {shown} < {limit} (do the "
                       "two shots show the same pose?): retake the pose, or lower --min-mi if the pair looks "
                       "aligned in the contact sheet")
    eyes = eyes or eye_verdict(None, None, estimate, config)
    if eyes is not None and eyes.blinked:
        match = "" if eyes.match is None else f", eye pictures match {eyes.match:.2f}"
        where = "in one of the shots" if eyes.closed_in == "one" else f"in the {eyes.closed_in} shot only"
        reasons.append(f"eyes closed {where} (eye aspect ratio flash {eyes.mean_ear('flash'):.2f}, studio "
                       f"{eyes.mean_ear('studio'):.2f}{match}): a blink cannot be registered away")
        return reasons
    if check is not None and not check.ok:
        reasons.append(check.reason)
    return reasons


def _mean_and_clipped(rgb: np.ndarray, box: tuple[float, float, float, float] | None) -> tuple[float, float]:
    """Mean 8-bit luminance and clipped fraction of ``box`` (left, top, right, bottom) or of the whole shot."""
    h, w = rgb.shape[:2]
    if box is not None:
        left, top = max(0, math.floor(box[0])), max(0, math.floor(box[1]))
        right, bottom = min(w, math.ceil(box[2])), min(h, math.ceil(box[3]))
        if right - left >= 4 and bottom - top >= 4:
            rgb = rgb[top:bottom, left:right]
    step = max(1, max(rgb.shape[:2]) // 512)  # a few hundred thousand pixels say as much as 12 million
    lum = luminance(np.ascontiguousarray(rgb[::step, ::step])) * np.float32(255.0)
    return float(lum.mean()), float((lum >= _CLIPPED).mean())


def exposure_reasons(flash_rgb: np.ndarray, studio_rgb: np.ndarray, names: tuple[str, str],
                     flash_face: FaceBox | None, estimate: AffineEstimate | None) -> list[str]:
    """An under- or over-exposed shot, named with its fix (a nearly black studio shot must not become a target).

    The face is judged when there is one (``flash_face``, in the flash frame; the studio's through the
    estimate's transform), else the whole frame. Limits: :data:`MIN_FACE_LUMINANCE`,
    :data:`MIN_FRAME_LUMINANCE`, :data:`MAX_CLIPPED_FRACTION`.
    """
    boxes: list[tuple[float, float, float, float] | None] = [None, None]
    if flash_face is not None:
        boxes[0] = (flash_face.left, flash_face.top, flash_face.right, flash_face.bottom)
        if estimate is not None:
            matrix, translation = matrix_of(estimate.transform)
            corners = flash_face.corners() @ matrix.T + translation
            boxes[1] = (*corners.min(axis=0), *corners.max(axis=0))
    reasons = []
    for rgb, name, box, fix in ((flash_rgb, names[0], boxes[0], "check that the flash fired and retake"),
                                (studio_rgb, names[1], boxes[1], "check the lamps and retake")):
        where = "face" if box is not None else "frame"
        mean, clipped = _mean_and_clipped(rgb, box)
        lowest = MIN_FACE_LUMINANCE if box is not None else MIN_FRAME_LUMINANCE
        if mean < lowest:
            shown, limit = beside_limit(mean, lowest, decimals=0)
            reasons.append(f"{name} is under-exposed: mean {where} luminance {shown} of 255 (at least {limit} "
                           f"expected): {fix}")
        elif clipped > MAX_CLIPPED_FRACTION:
            shown, limit = beside_limit(clipped, MAX_CLIPPED_FRACTION, unit="%")
            reasons.append(f"{name} is over-exposed: {shown} of the {where} is clipped white (at most {limit} "
                           "expected): lower the exposure or the light and retake")
    return reasons


def _fired(path: Path) -> bool | None:
    try:
        return read_flash_fired(path)
    except (PrepError, OSError):
        return None  # no readable EXIF: nothing to say (the image itself was read)


def flash_tag_reasons(flash_path: Path, studio_path: Path) -> list[str]:
    """What the EXIF ``Flash`` tags say against the file names: swapped shots, a flash that did not fire, a
    studio shot taken with the flash. Silent where a file has no such tag (PNG exports, some cameras)."""
    flash_fired, studio_fired = _fired(flash_path), _fired(studio_path)
    flash_name, studio_name = flash_path.name, studio_path.name
    if flash_fired is False and studio_fired is True:
        return [f"{flash_name} was taken without flash and {studio_name} with it (EXIF Flash tags): swapped? "
                "swap them back or retake the pose"]
    reasons = []
    if flash_fired is False:
        reasons.append(f"{flash_name} was taken without flash (EXIF Flash: did not fire): retake it with the "
                       "flash forced on")
    if studio_fired is True:
        reasons.append(f"{studio_name} was taken with the flash (EXIF Flash: fired): a flash shot copied over "
                       "it? retake it with the flash off")
    return reasons


def same_picture_reason(flash_rgb: np.ndarray, studio_rgb: np.ndarray, names: tuple[str, str]) -> list[str]:
    """Both files hold the same pixels: one was copied over the other (nothing to learn from)."""
    if flash_rgb.shape == studio_rgb.shape and np.array_equal(flash_rgb, studio_rgb):
        return [f"{names[0]} and {names[1]} hold the same picture (one copied over the other?): copy both shots "
                "from the camera again or retake the pose"]
    return []


def fallback_reason(estimate: AffineEstimate, studio_face_only: bool, names: tuple[str, str],
                    config: RegistrationConfig) -> list[str]:
    """Why the whole frame led although a face was asked to (``region="face"``) and one shot shows a face.

    Empty when the face led, when ``config.region`` is ``frame``, or when neither shot shows a face (a scene
    without a subject: the whole frame is the right region).
    """
    if estimate.region == "face" or config.region != "face":
        return []
    why = None
    if studio_face_only:
        why = f"no face found in {names[0]} (one was found in {names[1]})"
    elif estimate.flash_face is not None and estimate.studio_face is None:
        why = f"no face found in {names[1]} (one was found in {names[0]})"
    elif estimate.flash_face is not None:
        why = (f"the faces of {names[0]} and {names[1]} do not match (another person, or a face that changed "
               "too much)")
    if why is None:
        return []
    return [f"{why}, so the whole frame led the registration: is that shot blurred, dark, covered or of "
            "someone else? look at the face in the contact sheet, or retake the pose"]
