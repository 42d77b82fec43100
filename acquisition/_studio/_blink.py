"""Closed eyes, painted from dlib's eye landmarks: a blink caught by one of the two shots of a pose.

The paper names the blink between the shots as a failure it cannot register away; the registration's quality
check (and a capture-time pair check) detect it with Soukupova and Cech's eye aspect ratio of dlib's
landmarks. So the closed eye is painted so a face-landmark model reads it as closed: the opening is covered by
eyelid skin (its colour carried in smoothly from the skin around the eye, with the slight bulge of the lid),
the lashes form a dark line where the lids meet, and a faint crease marks the lid's fold; all edges are soft.
Painted once per portrait, at work resolution, in linear light.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import cv2
import numpy as np

from ._analysis import PortraitAnalysis
from ._layers import push_pull

__all__ = ["ClosedEyes", "closed_eyes"]

#: Masks are drawn this many pixels across the eye (then averaged down), so a 15-pixel eye gets a clean lash line.
_DRAW_EYE_WIDTH: Final = 96
_LASH: Final = np.array([0.012, 0.008, 0.006], np.float32)  # dark brown-black lashes, linear light
# The closed lid's geometry, in eye widths (corner to corner) unless said otherwise.
_GROW_UP: Final = 0.16  # the lid covers the open eye's upper margin and lashes by this much
_GROW_DOWN: Final = 0.22
_MEET: Final = 0.8  # where the lids meet, from the upper (0) to the lower (1) lid landmarks
_LASH_WIDTH: Final = 0.2  # the lash line's thickest part
_LASH_EXTEND: Final = 0.1  # the lash line runs this far past each corner
_LID_TONE: Final = 1.0  # the lid's brightness relative to the skin around the eye
_RING: Final = 2.0  # the skin the lid takes its colour from: out to this multiple of the lid's size


@dataclass(frozen=True, eq=False)
class ClosedEyes:
    """A patch of the work image, ``linear[top:top + h, left:left + w]``, with both eyes closed."""

    top: int
    left: int
    patch: np.ndarray

    def apply(self, linear: np.ndarray) -> np.ndarray:
        """A copy of ``linear`` (h, w, 3) with the eyes closed."""
        out = linear.copy()
        h, w = self.patch.shape[:2]
        out[self.top:self.top + h, self.left:self.left + w] = self.patch
        return out


def _axes(eye: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Unit vector along the eye (corner to corner), unit vector "down" the face, eye width."""
    along = eye[3] - eye[0]
    width = float(np.hypot(*along))
    along = along / max(width, 1e-6)
    down = np.array([-along[1], along[0]])
    if down[1] < 0:
        down = -down
    return along, down, width


def _smooth_curve(points: np.ndarray, count: int = 24) -> np.ndarray:
    """A Catmull-Rom curve through ``points`` (N, 2), ends included."""
    padded = np.vstack([2 * points[0] - points[1], points, 2 * points[-1] - points[-2]])
    out = []
    for i in range(1, len(padded) - 2):
        p0, p1, p2, p3 = padded[i - 1:i + 3]
        for t in np.linspace(0.0, 1.0, count, endpoint=False):
            out.append(0.5 * ((2 * p1) + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t * t
                              + (-p0 + 3 * p1 - 3 * p2 + p3) * t ** 3))
    out.append(points[-1])
    return np.asarray(out)


def _close_one(linear: np.ndarray, eye: np.ndarray, brow: np.ndarray, other: np.ndarray) -> None:
    """Close one eye of ``linear`` in place (``other``: the other eye's centre, to tell the outer corner)."""
    along, down, width = _axes(eye)
    centre = eye.mean(axis=0)
    h, w = linear.shape[:2]
    reach = 0.9 * width
    x0, x1 = max(0, int(centre[0] - reach)), min(w, math.ceil(centre[0] + reach) + 1)
    y0, y1 = max(0, int(centre[1] - reach)), min(h, math.ceil(centre[1] + reach) + 1)
    if x1 - x0 < 3 or y1 - y0 < 3:
        return
    k = max(1, math.ceil(_DRAW_EYE_WIDTH / max(width, 1.0)))
    big = ((y1 - y0) * k, (x1 - x0) * k)

    def to_big(points: np.ndarray) -> np.ndarray:
        return ((np.asarray(points, np.float64) - [x0, y0] + 0.5) * k - 0.5)

    def draw(fn, *args, **kwargs) -> np.ndarray:
        canvas = np.zeros(big, np.float32)
        fn(canvas, *args, **kwargs)
        return cv2.resize(canvas, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)

    # The opening, grown over the upper lid's margin and lashes (the closed lid covers them) and a little
    # below the lower lid, then softened.
    rel = eye - centre
    grown = centre + (rel @ np.outer(along, along)) * 1.15 + (rel @ np.outer(down, down)) * 1.2
    above = (rel @ down) < 0
    grown = grown + np.where(above, -_GROW_UP, _GROW_DOWN)[:, None] * down * width
    region = draw(lambda c: cv2.fillPoly(c, [np.round(to_big(grown) * 16).astype(np.int32)], 1.0,
                                         lineType=cv2.LINE_AA, shift=4))
    region = np.clip(cv2.GaussianBlur(region, (0, 0), max(0.6, 0.1 * width)) * 1.3, 0.0, 1.0)
    # Skin around the eye (not the eye, not the brow, not dark lashes), carried inwards smoothly: each part of
    # the lid takes the colour of the skin nearest to it, so no outline shows.
    roi = linear[y0:y1, x0:x1]
    lum = roi @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    ring = draw(lambda c: cv2.fillPoly(c, [np.round(to_big(centre + _RING * (grown - centre)) * 16).astype(np.int32)],
                                       1.0, lineType=cv2.LINE_AA, shift=4)) > 0.5
    ring &= region < 0.02
    brow_mask = draw(lambda c: cv2.polylines(c, [np.round(to_big(brow) * 16).astype(np.int32)], False, 1.0,
                                             thickness=max(1, round(0.35 * width * k)), lineType=cv2.LINE_AA,
                                             shift=4)) > 0.05
    ring &= ~brow_mask
    if ring.sum() >= 8:
        ring &= lum > 0.4 * np.median(lum[ring])
    weight = ring.astype(np.float32)
    if weight.sum() < 4:
        weight = (region < 0.02).astype(np.float32)
    skin = cv2.GaussianBlur(push_pull(roi, weight), (0, 0), max(0.7, 0.08 * width))
    # Its texture is the skin's: the fine detail of the skin under the eye, mirrored up onto the lid.
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    rx, ry = xs - centre[0], ys - centre[1]
    vertical = rx * down[0] + ry * down[1]
    source = np.float32(0.55 * width) - vertical  # mirror about a line 0.28 eye widths under the centre
    map_x = xs + (source - vertical) * down[0] - x0
    map_y = ys + (source - vertical) * down[1] - y0
    under = cv2.remap(roi, map_x.astype(np.float32), map_y.astype(np.float32), cv2.INTER_LINEAR,
                      borderMode=cv2.BORDER_REFLECT_101)
    detail = np.clip(under / (cv2.GaussianBlur(under, (0, 0), max(0.8, 0.12 * width)) + 1e-4), 0.7, 1.4)
    # The lid bulges: a little brighter in its middle, unchanged at its edge.
    across = (rx * along[0] + ry * along[1]) / (0.5 * width)
    bulge = np.clip(1.0 - across ** 2 - (vertical / (0.5 * width) + 0.1) ** 2 * 3.0, 0.0, 1.0)
    lid = skin * detail * (_LID_TONE + 0.06 * bulge)[:, :, None]
    out = roi * (1.0 - region[:, :, None]) + lid * region[:, :, None]
    # Where the lids meet: low in the opening, curving like the lower lid. The lash line is a crescent, thickest
    # a little towards the outer corner and tapering to nothing at both corners, with a soft fringe of lashes
    # hanging below it.
    upper, lower = eye[[1, 2]], eye[[5, 4]]
    outer_first = float(np.hypot(*(eye[0] - other))) > float(np.hypot(*(eye[3] - other)))
    meet = np.vstack([eye[0] - _LASH_EXTEND * width * along, (1 - _MEET) * upper + _MEET * lower,
                      eye[3] + _LASH_EXTEND * width * along])
    curve = _smooth_curve(meet)
    t = np.linspace(0.0, 1.0, len(curve))
    peak = 0.4 if outer_first else 0.6  # the thickest point, from eye[0] to eye[3]
    profile = np.where(t < peak, np.sin(0.5 * np.pi * t / peak), np.sin(0.5 * np.pi * (1 - t) / (1 - peak))) ** 0.7
    line = np.vstack([curve - 0.15 * _LASH_WIDTH * width * down,
                      (curve + (profile * _LASH_WIDTH * width)[:, None] * down)[::-1]])
    fringe = np.vstack([curve, (curve + (profile * 2.2 * _LASH_WIDTH * width)[:, None] * down)[::-1]])

    def fill(points: np.ndarray) -> np.ndarray:
        return draw(lambda c: cv2.fillPoly(c, [np.round(to_big(points) * 16).astype(np.int32)], 1.0,
                                           lineType=cv2.LINE_AA, shift=4))

    soft = max(0.35, 0.02 * width)
    lash = cv2.GaussianBlur(fill(line), (0, 0), soft)
    lash = np.maximum(lash, 0.4 * cv2.GaussianBlur(fill(fringe), (0, 0), 2 * soft))
    out = out * (1.0 - lash[:, :, None]) + _LASH * lash[:, :, None]
    linear[y0:y1, x0:x1] = out


def _paint(an: PortraitAnalysis) -> ClosedEyes | None:
    marks = an.landmarks
    if marks is None:
        return None
    eyes = [(marks["left_eye"], marks["left_eyebrow"]), (marks["right_eye"], marks["right_eyebrow"])]
    points = np.vstack([e for e, _ in eyes])
    width = max(_axes(e)[2] for e, _ in eyes)
    h, w = an.shape
    left, top = max(0, int(points[:, 0].min() - width)), max(0, int(points[:, 1].min() - width))
    right, bottom = min(w, int(points[:, 0].max() + width) + 2), min(h, int(points[:, 1].max() + width) + 2)
    if right <= left or bottom <= top:
        return None
    patch = an.linear[top:bottom, left:right].copy()
    for (eye, brow), (other, _) in zip(eyes, eyes[::-1], strict=True):
        _close_one(patch, eye - [left, top], brow - [left, top], other.mean(axis=0) - [left, top])
    return ClosedEyes(top=top, left=left, patch=patch)


def closed_eyes(an: PortraitAnalysis) -> ClosedEyes | None:
    """The portrait's eyes closed (cached with the analysis); None without landmarks."""
    return an.derived("closed_eyes", _paint)
