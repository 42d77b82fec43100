"""Where the camera points: the crop of the portrait that fills the frame, chosen around the face.

A centre crop of a tall, full-length portrait shows a belly and no head. The frame is cover-scaled (no empty
borders) and placed so that the face is centred horizontally and the eyes sit at a natural height, within the
image wherever the image allows; the face, with the margins the drawn motion needs, always stays inside it
(zooming out when a close-up leaves no room for the motion), at any frame size and aspect ratio (a frame too
narrow or too flat for the margins is centred on the face).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np

from ._analysis import PortraitAnalysis
from ._config import StudioConfig

__all__ = ["Framing", "frame_portrait", "head_box", "motion_reach"]

#: Eyes at this fraction of the frame height from the top (portrait convention: a little above a third).
_EYE_HEIGHT: Final = 0.38


@dataclass(frozen=True)
class Framing:
    """The map between the work image (the portrait at work resolution) and the output frame.

    ``output = scale * (work - centre) + ((width - 1) / 2, (height - 1) / 2)``; pixel-centre coordinates,
    x right, y down.
    """

    scale: float
    centre: tuple[float, float]
    size: tuple[int, int]

    @property
    def frame_centre(self) -> np.ndarray:
        return np.array([(self.size[0] - 1) / 2, (self.size[1] - 1) / 2])

    def to_output(self, points: np.ndarray) -> np.ndarray:
        """Work pixels (N, 2) to output pixels."""
        return self.scale * (np.asarray(points, np.float64) - self.centre) + self.frame_centre

    def to_work(self, points: np.ndarray) -> np.ndarray:
        """Output pixels (N, 2) to work pixels."""
        return (np.asarray(points, np.float64) - self.frame_centre) / self.scale + self.centre

    def inverse_matrix(self) -> np.ndarray:
        """The 2x3 map from output to work pixels (``cv2.WARP_INVERSE_MAP``)."""
        lin = np.eye(2) / self.scale
        return np.hstack([lin, (np.asarray(self.centre) - self.frame_centre / self.scale)[:, None]])


def head_box(an: PortraitAnalysis) -> tuple[float, float, float, float]:
    """The head in work pixels (left, top, right, bottom): the face box grown to take in forehead and chin."""
    f = an.face
    return (f.left - 0.1 * f.width, f.top - 0.4 * f.height, f.right + 0.1 * f.width, f.bottom + 0.1 * f.height)


def _affine_reach(cfg: StudioConfig, fraction: float, width: int, height: int) -> float:
    """Largest displacement (output pixels) of an in-frame point under a drawn affine at ``fraction`` of the limits.

    The affine is ``(1 + s) R(a) [[1, h], [0, 1]]`` about the frame centre plus a shift; the norm of its
    departure from the identity is at most ``(1 + s)(2 sin(a / 2) + h) + s``, and no point is farther from the
    centre than half the diagonal.
    """
    if fraction <= 0:
        return 0.0
    angle = math.radians(cfg.max_rotation_deg * fraction)
    scale, shear = cfg.max_scale * fraction, cfg.max_shear * fraction
    linear = (1 + scale) * (2 * math.sin(angle / 2) + shear) + scale
    return linear * 0.5 * math.hypot(width, height) + cfg.max_shift * fraction * min(width, height) * math.sqrt(2)


def motion_reach(cfg: StudioConfig, width: int, height: int) -> float:
    """How far (output pixels) the drawn subject and camera motions can move any point of the frame, at most."""
    subject = _affine_reach(cfg, 1.0, width, height) if cfg.motion in ("subject", "both") else 0.0
    camera = {"subject": 0.0, "camera": 1.0, "both": cfg.camera_shake}[cfg.motion]
    return subject + _affine_reach(cfg, camera, width, height)


def _place(desired: float, window: float, image: float, lo_face: float, hi_face: float) -> float:
    """The window centre along one axis: ``desired``, moved inside the image, then so the face fits.

    The face with its margins spans ``[lo_face, hi_face]``: the window contains it, which wins over the rest; where
    the span is wider than the window (a frame far narrower than it is tall, or the reverse, where the motion's
    margins exceed the frame), the window is centred on it: the face itself, at most half the window
    (:func:`frame_portrait`'s scale), stays inside with equal margins.
    """
    if window <= image:
        centre = min(max(desired, window / 2 - 0.5), image - 0.5 - window / 2)
    else:
        centre = (image - 1) / 2
    if hi_face - lo_face >= window:
        return (lo_face + hi_face) / 2
    return min(max(centre, hi_face - window / 2), lo_face + window / 2)


def frame_portrait(an: PortraitAnalysis, width: int, height: int, cfg: StudioConfig) -> Framing:
    """Choose the crop: cover scale, face centred, eyes at a natural height, face and motion margins in frame.

    Parameters
    ----------
    an : PortraitAnalysis
    width, height : int
        Output frame size in pixels.
    cfg : StudioConfig
        Its motion limits and head turn set the margins kept around the face.

    Returns
    -------
    Framing
        The same for every shot of a subject at this size (the frame of the reference pose).
    """
    h, w = an.shape
    left, top, right, bottom = head_box(an)
    if an.square is not None:  # the face's square from its landmarks (the recorded face box) counts too
        left, top = min(left, an.square.left), min(top, an.square.top)
        right, bottom = max(right, an.square.right), max(bottom, an.square.bottom)
    cover = max(width / w, height / h)
    turn = cfg.max_head_turn * an.frame.face_width * cover if cfg.motion != "camera" else 0.0
    reach = motion_reach(cfg, width, height) + turn + 2.0
    # Zoom out only when the head and its margins cannot fit at cover scale (a close-up).
    room_x, room_y = max(width - 2 * reach, 0.5 * width), max(height - 2 * reach, 0.5 * height)
    scale = min(cover, room_x / max(right - left, 1.0), room_y / max(bottom - top, 1.0))
    win_w, win_h, margin = width / scale, height / scale, reach / scale
    eyes_y = float(an.frame.eye_mid[1])
    cx = _place(float(an.face.center[0]), win_w, w, left - margin, right + margin)
    cy = _place(eyes_y + (0.5 - _EYE_HEIGHT) * win_h, win_h, h, top - margin, bottom + margin)
    return Framing(scale=float(scale), centre=(float(cx), float(cy)), size=(int(width), int(height)))
