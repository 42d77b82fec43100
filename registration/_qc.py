"""Quality control of one registration: is the transform plausible, did the metric improve, did anyone blink,
and does the independent check find the face where the transform puts it?

A flagged pair is kept and marked so a person can look at it (``prep review``); nothing here deletes data. The
blink test is the paper's known limitation (a blink between the two shots cannot be registered away), which
it never detected: dlib's eye landmarks give Soukupova and Cech's eye aspect ratio in both shots. A blink is
its own reason; the face check's reading of that pair (the eyes differ, so it may read a shift) is not added.
"""

from __future__ import annotations

import math

import numpy as np

from acquisition.faces import eye_aspect_ratio

from ._check import FaceCheck
from ._config import AffineEstimate, RegistrationConfig
from ._transform import decompose, matrix_of

__all__ = ["eye_state", "quality_reasons"]


def eye_state(landmarks: dict[str, np.ndarray] | None) -> float | None:
    """Mean eye aspect ratio of both eyes (~0.3 open, < ~0.2 closed), or None without landmarks."""
    if not landmarks or "left_eye" not in landmarks or "right_eye" not in landmarks:
        return None
    return (eye_aspect_ratio(landmarks["left_eye"]) + eye_aspect_ratio(landmarks["right_eye"])) / 2


def quality_reasons(estimate: AffineEstimate, flash_shape: tuple[int, ...], studio_shape: tuple[int, ...],
                    config: RegistrationConfig, check: FaceCheck | None = None) -> list[str]:
    """Why a registration looks wrong, in words (empty when it looks right).

    Scale is judged relative to the size ratio of the two images (a studio shot saved at another resolution is
    not a zoom), and the shift is that of the flash image centre, as a fraction of the studio width. ``check``
    is :func:`check_face_alignment`'s reading of the face, when there is one.
    """
    reasons: list[str] = []
    fh, fw = flash_shape[:2]
    sh, sw = studio_shape[:2]
    matrix, translation = matrix_of(estimate.transform)
    parts = decompose(matrix / np.array([[sw / fw], [sh / fh]]))
    if abs(parts.rotation_deg) > config.max_rotation_deg:
        reasons.append(f"rotation {parts.rotation_deg:+.1f} deg exceeds {config.max_rotation_deg:g}")
    for name, value in (("x", parts.scale_x), ("y", parts.scale_y)):
        if not abs(value - 1.0) <= config.max_scale_change:
            reasons.append(f"scale {name} {value:.3f} is more than {config.max_scale_change:.0%} from 1")
    if not abs(parts.shear) <= config.max_shear:
        reasons.append(f"shear {parts.shear:+.3f} exceeds {config.max_shear:g}")
    centre_f = np.array([(fw - 1) / 2, (fh - 1) / 2])
    centre_s = np.array([(sw - 1) / 2, (sh - 1) / 2])
    shift = float(np.hypot(*(matrix @ centre_f + translation - centre_s))) / sw
    if shift > config.max_shift_fraction:
        reasons.append(f"shift {shift:.1%} of the width exceeds {config.max_shift_fraction:.0%}")
    before, after = estimate.metric_before, estimate.metric_after
    # The ECC polish may give back a hair of mutual information for precision: only a real loss counts.
    if math.isnan(after) or (not math.isnan(before) and after > before + 0.01 * abs(before)):
        reasons.append(f"mutual information did not improve (before {-before:.3f}, after {-after:.3f})")
    elif -after < config.min_mutual_information:
        reasons.append(f"weak match: mutual information {-after:.3f} < {config.min_mutual_information:g} (do the "
                       "two shots show the same pose?)")
    flash_ear, studio_ear = eye_state(estimate.flash_landmarks), eye_state(estimate.studio_landmarks)
    if flash_ear is not None and studio_ear is not None:
        flash_closed, studio_closed = flash_ear < config.ear_threshold, studio_ear < config.ear_threshold
        if flash_closed != studio_closed:
            closed_in = "flash" if flash_closed else "studio"
            reasons.append(f"eyes closed in the {closed_in} shot only (eye aspect ratio flash {flash_ear:.2f}, "
                           f"studio {studio_ear:.2f}): a blink cannot be registered away")
            return reasons
    if check is not None and not check.ok:
        reasons.append(check.reason)
    return reasons
