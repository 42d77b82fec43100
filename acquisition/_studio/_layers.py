"""A portrait's two layers: the subject, and what stands behind it (its own scenery, a studio backdrop, a room).

In a studio the background stays put while the subject moves, so subject and background are layers of their
own, at work resolution, in linear light. The subject layer is the portrait with its colours carried outwards
across the silhouette's soft edge (matting's foreground estimate): otherwise the edge would carry the portrait's
own background along with the subject, and the flash, lighting the subject 6x brighter than the background,
would show it as a bright halo. Where the moving subject uncovers it, it must look like background: the scenery is
filled in behind the subject (a mirror of the scenery across the silhouette near its edge, where uncovered pixels
can appear, blended into a smooth pyramid fill deeper in). The plain backdrop and the room are generated per
subject (seeded by the portrait's pixels, so each subject keeps its own), from numbers and from pictures that
ship inside scikit-image: nothing is downloaded.

Each is computed once per portrait and cached with its analysis (:meth:`PortraitAnalysis.derived`).
"""

from __future__ import annotations

import itertools
from functools import cache
from typing import Final

import cv2
import numpy as np

from ._analysis import PortraitAnalysis
from ._config import Backdrop

__all__ = ["backdrop", "push_pull", "subject_hole", "subject_layer"]

#: Near the silhouette (in fractions of the image's shorter side) the fill mirrors the scenery; deeper, it is smooth.
_MIRROR_BAND: Final = 0.08
#: The hole behind the subject is the silhouette grown by this (shorter-side fraction): it swallows the halo of
#: subject colour (a blurred edge) that a silhouette computed at a few hundred pixels leaves outside itself...
_HOLE_GROWTH: Final = 0.015
#: ... and around the head by this (face heights): stray hair is where GrabCut fails, and a tuft left in the
#: background would stay behind as a ghost when the subject moves.
_HEAD_HOLE_GROWTH: Final = 0.15


def _linear_from_srgb(srgb: np.ndarray) -> np.ndarray:
    """sRGB floats in [0, 1] to linear light (exact curve; floats, so smooth gradients do not band)."""
    srgb = np.clip(srgb, 0.0, 1.0)
    return np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4).astype(np.float32)


def _disc(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def subject_hole(an: PortraitAnalysis) -> np.ndarray:
    """(h, w) uint8, 1 where the scenery is hidden by the subject (the silhouette, grown over its halo)."""
    solid = (an.mask > 0.02).astype(np.uint8)
    hole = cv2.dilate(solid, _disc(max(2, round(_HOLE_GROWTH * min(an.shape)))))
    face = an.face
    head = np.zeros_like(solid)
    cv2.ellipse(head, (round(face.center[0]), round(face.center[1] - 0.1 * face.height)),
                (round(1.1 * face.width), round(1.3 * face.height)), 0, 0, 360, 1, -1)
    around_head = cv2.dilate(solid, _disc(max(2, round(_HEAD_HOLE_GROWTH * face.height)))) & head
    return hole | around_head


def push_pull(image: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Fill the unknown pixels (``known`` 0) of an (h, w, 3) image smoothly from the known ones (``known`` 1): a
    mask-weighted Gaussian pyramid, down then up (known pixels keep their values)."""
    levels = [(image * known[:, :, None], known.astype(np.float32))]
    while min(levels[-1][1].shape) > 4 and levels[-1][1].min() <= 0:
        num, den = levels[-1]
        levels.append((cv2.pyrDown(num), cv2.pyrDown(den)))
    num, den = levels[-1]
    total = max(float(den.sum()), 1e-6)
    mean = num.reshape(-1, 3).sum(axis=0) / total
    fill = np.where(den[:, :, None] > 1e-6, num / np.maximum(den, 1e-6)[:, :, None], mean).astype(np.float32)
    for num, den in reversed(levels[:-1]):
        up = cv2.pyrUp(fill, dstsize=(num.shape[1], num.shape[0]))
        weight = np.clip(4.0 * den, 0.0, 1.0)[:, :, None]
        fill = weight * (num / np.maximum(den, 1e-6)[:, :, None]) + (1.0 - weight) * up
    return fill.astype(np.float32)


def _subject_colours(an: PortraitAnalysis) -> np.ndarray:
    solid = (an.mask > 0.98).astype(np.float32)
    if not solid.any():
        return an.linear
    carried = push_pull(an.linear, solid)
    return np.where(solid[:, :, None] > 0, an.linear, carried).astype(np.float32)


def subject_layer(an: PortraitAnalysis) -> np.ndarray:
    """The subject's colours, (h, w, 3) float32 linear light: the portrait where the subject is solid, carried
    outwards beyond it (composite with :attr:`PortraitAnalysis.mask` as alpha); cached."""
    return an.derived("subject", _subject_colours)


def _scene(an: PortraitAnalysis) -> np.ndarray:
    """The portrait's scenery with the subject removed and filled in."""
    image = an.linear
    h, w = an.shape
    hole = subject_hole(an)
    if not hole.any():
        return image.copy()
    smooth = push_pull(image, 1.0 - hole.astype(np.float32))
    if hole.all():
        return smooth
    # Mirror the scenery across the silhouette: each hidden pixel takes the colour of its reflection in its
    # nearest visible pixel, so edges and texture run on into the hole where the moving subject uncovers it.
    dist, labels = cv2.distanceTransformWithLabels(hole, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    visible = np.argwhere(hole == 0)
    nearest = visible[labels - 1]
    ys, xs = np.mgrid[0:h, 0:w]
    my, mx = 2 * nearest[..., 0] - ys, 2 * nearest[..., 1] - xs
    inside = (my >= 0) & (my < h) & (mx >= 0) & (mx < w)
    my, mx = np.clip(my, 0, h - 1), np.clip(mx, 0, w - 1)
    usable = inside & (hole[my, mx] == 0)
    band = _MIRROR_BAND * min(h, w)
    weight = np.where(usable, np.clip(1.0 - dist / band, 0.0, 1.0), 0.0).astype(np.float32)
    weight = cv2.GaussianBlur(weight, (0, 0), max(1.0, 0.004 * min(h, w)))[:, :, None]
    fill = weight * image[my, mx] + (1.0 - weight) * smooth
    return np.where(hole[:, :, None] > 0, fill, image).astype(np.float32)


def _rng(an: PortraitAnalysis, kind: str) -> np.random.Generator:
    entropy = int(an.digest[:16], 16) if an.digest else 0
    return np.random.default_rng([entropy, sum(kind.encode())])


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Zero-mean noise of unit-ish amplitude varying over ``cells`` cells across the shorter side."""
    h, w = shape
    gh, gw = max(2, round(cells * h / min(h, w))), max(2, round(cells * w / min(h, w)))
    coarse = rng.standard_normal((gh, gw)).astype(np.float32)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)


#: Seamless backdrop paper and muslin colours, sRGB.
_BACKDROP_COLOURS: Final = ((118, 112, 106), (84, 98, 112), (58, 60, 66), (196, 186, 168), (72, 104, 108),
                            (140, 132, 150))


def _plain(an: PortraitAnalysis) -> np.ndarray:
    """A studio backdrop: one colour, brighter behind the head, a vignette, a faint mottle and grain."""
    rng = _rng(an, "plain")
    h, w = an.shape
    base = np.asarray(_BACKDROP_COLOURS[rng.integers(len(_BACKDROP_COLOURS))], np.float32) / 255.0
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    side = float(min(h, w))
    cx, cy = an.face.center
    spot = np.exp(-(((xs - cx) ** 2 + (ys - cy + 0.1 * h) ** 2) / (2 * (0.55 * side) ** 2)))
    r2 = ((xs - (w - 1) / 2) ** 2 + (ys - (h - 1) / 2) ** 2) / (0.25 * (h * h + w * w))
    gain = (0.85 + 0.25 * spot) * (1.0 - 0.22 * r2) * (1.0 - 0.06 * ys / h)
    gain *= 1.0 + 0.025 * _smooth_noise(rng, (h, w), 5) + 0.01 * _smooth_noise(rng, (h, w), 23)
    grain = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), 0.7)
    srgb = base * gain[:, :, None] + 0.006 * grain[:, :, None]
    return _linear_from_srgb(srgb)


@cache
def _pictures() -> tuple[np.ndarray, ...]:
    """Colour photographs that ship inside scikit-image, to hang in the room (sRGB floats)."""
    from skimage import data

    return tuple(np.asarray(f(), np.float32) / 255.0 for f in (data.coffee, data.rocket, data.chelsea,
                                                                 data.hubble_deep_field))


@cache
def _brick() -> np.ndarray:
    from skimage import data

    return np.asarray(data.brick(), np.float32) / 255.0


def _quad_texture(canvas: np.ndarray, texture: np.ndarray, quad: np.ndarray, region: np.ndarray) -> None:
    """Paint ``texture`` (h, w, 3) onto ``canvas`` in perspective: its corners to ``quad`` (TL, TR, BR, BL),
    only where ``region`` (a polygon) is."""
    th, tw = texture.shape[:2]
    src = np.float32([[0, 0], [tw - 1, 0], [tw - 1, th - 1], [0, th - 1]])
    homography = cv2.getPerspectiveTransform(src, np.float32(quad))
    h, w = canvas.shape[:2]
    warped = cv2.warpPerspective(texture, homography, (w, h), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [np.round(region).astype(np.int32)], 1, lineType=cv2.LINE_8)
    canvas[mask > 0] = warped[mask > 0]


def _planks(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A wooden floor seen from above: planks along the rows, each its own tone, grain, dark gaps."""
    h, w = size
    tone = np.array([0.55, 0.38, 0.22], np.float32) * rng.uniform(0.8, 1.15)
    out = np.empty((h, w, 3), np.float32)
    count = 14
    edges = np.linspace(0, w, count + 1).round().astype(int)
    # Grain runs along the planks: it varies quickly across them and slowly along them.
    streaks = cv2.resize(rng.standard_normal((6, w // 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    grain = 0.6 * streaks + 0.4 * _smooth_noise(rng, (h, w), 12)
    for i in range(count):
        out[:, edges[i]:edges[i + 1]] = tone * rng.uniform(0.8, 1.2, size=3).clip(0.9, 1.1) * rng.uniform(0.8, 1.15)
        out[:, edges[i]:edges[i] + max(1, w // 300)] *= 0.35
        for y in rng.integers(0, h, size=2):
            out[max(0, y - 1):y + 1, edges[i]:edges[i + 1]] *= 0.45  # plank ends
    return out * (1.0 + 0.08 * grain[:, :, None])


def _paint(rng: np.random.Generator, size: tuple[int, int], colour: np.ndarray) -> np.ndarray:
    h, w = size
    return colour * (1.0 + 0.03 * _smooth_noise(rng, (h, w), 6)[:, :, None]
                     + 0.012 * rng.standard_normal((h, w, 1)).astype(np.float32))


def _bookshelf(canvas: np.ndarray, rng: np.random.Generator, left: float, right: float, top: float,
               bottom: float, unit: float) -> None:
    wood = np.array([0.32, 0.2, 0.12], np.float32) * rng.uniform(0.7, 1.3)
    board = max(2, round(0.012 * unit))
    x0, x1, y0, y1 = round(left), round(right), round(top), round(bottom)
    cv2.rectangle(canvas, (x0, y0), (x1, y1), (wood * 0.5).tolist(), -1)
    shelves = np.linspace(y0, y1, rng.integers(4, 6) + 1).round().astype(int)
    colours = [(0.6, 0.1, 0.1), (0.1, 0.25, 0.5), (0.85, 0.75, 0.3), (0.15, 0.4, 0.2), (0.9, 0.9, 0.85),
               (0.3, 0.15, 0.35), (0.9, 0.45, 0.1), (0.1, 0.1, 0.12)]
    for top_y, bottom_y in itertools.pairwise(shelves):
        x = x0 + board
        while x < x1 - board - 2:
            width = max(2, round(unit * rng.uniform(0.012, 0.03)))
            height = round((bottom_y - top_y - board) * rng.uniform(0.6, 0.95))
            if rng.uniform() < 0.15:  # a gap
                x += width
                continue
            colour = np.asarray(colours[rng.integers(len(colours))], np.float32) * rng.uniform(0.7, 1.1)
            x_end = min(x + width, x1 - board)
            cv2.rectangle(canvas, (x, bottom_y - height), (x_end, bottom_y), colour.tolist(), -1)
            cv2.line(canvas, (x, bottom_y - height), (x, bottom_y), (colour * 0.5).tolist(), 1)
            x = x_end + 1
        cv2.rectangle(canvas, (x0, bottom_y - board // 2), (x1, bottom_y + board // 2), wood.tolist(), -1)
    cv2.rectangle(canvas, (x0, y0), (x0 + board, y1), wood.tolist(), -1)
    cv2.rectangle(canvas, (x1 - board, y0), (x1, y1), wood.tolist(), -1)
    cv2.rectangle(canvas, (x0, y0), (x1, y0 + board), wood.tolist(), -1)


def _framed(canvas: np.ndarray, picture: np.ndarray, centre: tuple[float, float], width: float,
            frame_colour: np.ndarray) -> None:
    ph, pw = picture.shape[:2]
    height = width * ph / pw
    x0, y0 = round(centre[0] - width / 2), round(centre[1] - height / 2)
    x1, y1 = x0 + max(2, round(width)), y0 + max(2, round(height))
    border = max(2, round(0.08 * width))
    cv2.rectangle(canvas, (x0 - 2 * border, y0 - 2 * border), (x1 + 2 * border, y1 + 2 * border),
                  frame_colour.tolist(), -1)
    cv2.rectangle(canvas, (x0 - border, y0 - border), (x1 + border, y1 + border), (0.92, 0.9, 0.86), -1)
    h, w = canvas.shape[:2]
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if cx1 > cx0 and cy1 > cy0:
        scaled = cv2.resize(picture, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
        canvas[cy0:cy1, cx0:cx1] = scaled[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]


def _blinds(canvas: np.ndarray, left: float, right: float, top: float, bottom: float, unit: float) -> None:
    """A window with its venetian blinds down: slats lit from above, dark gaps between, a white frame (not a
    light source: it must darken with the rest of the room when the lamps go off)."""
    x0, x1, y0, y1 = round(left), round(right), round(top), round(bottom)
    if x1 <= x0 or y1 <= y0:
        return
    slat = max(3, round(0.012 * unit))
    rows = np.arange(y1 - y0, dtype=np.float32)
    phase = (rows % slat) / slat
    shade = np.where(phase < 0.85, 1.0 - 0.25 * phase, 0.35).astype(np.float32)
    colour = np.array([0.86, 0.84, 0.78], np.float32)
    yy0 = max(y0, 0)
    canvas[yy0:y1, max(x0, 0):x1] = (colour * shade[:, None, None])[yy0 - y0:]
    frame = max(2, round(0.012 * unit))
    cv2.rectangle(canvas, (x0, y0), (x1, y1), (0.95, 0.95, 0.93), 2 * frame)
    cv2.line(canvas, (x0 + frame, y0 + frame), (x0 + frame, y1 - frame), (0.5, 0.5, 0.48), max(1, frame // 3))


def _room(an: PortraitAnalysis) -> np.ndarray:
    """A room in one-point perspective: back wall with shelves, pictures and a blind; brick and painted side
    walls with a door; a plank floor; a ceiling. Hard edges everywhere, as a real room behind a subject."""
    rng = _rng(an, "room")
    h, w = an.shape
    unit = float(max(h, w))
    canvas = np.zeros((h, w, 3), np.float32)
    vp = np.array([w * rng.uniform(0.42, 0.58), h * rng.uniform(0.3, 0.4)])
    left, right = w * rng.uniform(0.08, 0.2), w * rng.uniform(0.8, 0.92)
    top, bottom = h * rng.uniform(0.0, 0.08), h * rng.uniform(0.64, 0.76)
    corners = {"tl": np.array([left, top]), "tr": np.array([right, top]), "br": np.array([right, bottom]),
               "bl": np.array([left, bottom])}
    depth = 8.0  # how far towards the camera the side planes are drawn (beyond the frame)
    far = {k: vp + (v - vp) * depth for k, v in corners.items()}
    walls = {"left": ("tl", "bl"), "right": ("tr", "br"), "floor": ("bl", "br"), "ceiling": ("tl", "tr")}
    paints = [np.array(c, np.float32) for c in ((0.82, 0.78, 0.7), (0.62, 0.7, 0.72), (0.75, 0.62, 0.5),
                                                   (0.88, 0.88, 0.85), (0.55, 0.6, 0.5))]
    back_paint, side_paint = (paints[i] for i in rng.choice(len(paints), size=2, replace=False))
    brick_side = "left" if rng.uniform() < 0.5 else "right"
    for name, (a, b) in walls.items():
        near_a, near_b = far[a], far[b]
        region = np.array([corners[a], corners[b], near_b, near_a])
        if name == "floor":
            texture = _planks(rng, (512, 512))
            quad = np.array([corners["bl"], corners["br"], far["br"], far["bl"]])
        elif name == "ceiling":
            texture = _paint(rng, (64, 64), np.array([0.9, 0.9, 0.88], np.float32))
            quad = np.array([far["tl"], far["tr"], corners["tr"], corners["tl"]])
        else:
            if name == brick_side:
                brick = _brick()
                tiled = np.tile(brick, (2, 6))
                tint = np.array([0.75, 0.42, 0.32], np.float32) * rng.uniform(0.85, 1.1)
                texture = (0.35 + 0.9 * tiled[:, :, None]) * tint
            else:
                texture = _paint(rng, (256, 1024), side_paint)
                # a door frame and a door, seen from the side
                cv2.rectangle(texture, (380, 40), (560, 255), (0.35, 0.22, 0.14), -1)
                cv2.rectangle(texture, (392, 52), (548, 255), (0.55, 0.38, 0.24), -1)
                cv2.circle(texture, (535, 160), 5, (0.85, 0.8, 0.5), -1)
            # texture columns run from the back wall (0) towards the camera (right edge)
            quad = np.array([corners[a], far[a], far[b], corners[b]])
        _quad_texture(canvas, texture.astype(np.float32), quad, region)
    # The back wall, fronto-parallel: paint, a skirting board, shelves, pictures, a window.
    x0, x1, y0, y1 = (round(v) for v in (left, right, top, bottom))
    canvas[max(y0, 0):y1, x0:x1] = _paint(rng, (y1 - max(y0, 0), x1 - x0), back_paint)
    skirting = max(2, round(0.015 * unit))
    cv2.rectangle(canvas, (x0, y1 - skirting), (x1, y1), (0.93, 0.92, 0.9), -1)
    span = right - left
    shelf_left = rng.uniform() < 0.5
    shelf_x0 = left + (0.04 if shelf_left else 0.62) * span
    _bookshelf(canvas, rng, shelf_x0, shelf_x0 + 0.34 * span, top + 0.18 * (bottom - top), bottom - skirting, unit)
    window_x0 = left + (0.6 if shelf_left else 0.06) * span
    _blinds(canvas, window_x0, window_x0 + 0.3 * span, top + 0.12 * (bottom - top), top + 0.55 * (bottom - top),
            unit)
    pictures = _pictures()
    order = rng.permutation(len(pictures))
    frame_colour = np.array([0.12, 0.1, 0.08], np.float32) if rng.uniform() < 0.5 else np.array([0.7, 0.55, 0.2])
    _framed(canvas, pictures[order[0]], (left + 0.5 * span, top + 0.3 * (bottom - top)), 0.16 * span, frame_colour)
    _framed(canvas, pictures[order[1]], (window_x0 + 0.15 * span, top + 0.75 * (bottom - top)), 0.1 * span,
            frame_colour)
    # Room edges: a slightly darker line where the planes meet; the corners a little darker (ambient occlusion).
    for a, b in (("tl", "bl"), ("tr", "br"), ("bl", "br"), ("tl", "tr")):
        cv2.line(canvas, tuple(np.round(corners[a]).astype(int).tolist()),
                 tuple(np.round(corners[b]).astype(int).tolist()), (0.25, 0.22, 0.2), max(1, round(0.002 * unit)))
    for k in corners:
        cv2.line(canvas, tuple(np.round(corners[k]).astype(int).tolist()),
                 tuple(np.round(far[k]).astype(int).tolist()), (0.3, 0.27, 0.25), max(1, round(0.002 * unit)))
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xs - vp[0]) ** 2 + (ys - vp[1]) ** 2) / (0.25 * (h * h + w * w))
    canvas *= (1.0 - 0.18 * r2)[:, :, None]
    canvas = cv2.GaussianBlur(canvas, (0, 0), max(0.5, 0.0008 * unit))  # a lens, not a rasteriser
    return _linear_from_srgb(canvas)


_MAKERS: Final = {"scene": _scene, "plain": _plain, "room": _room}


def backdrop(an: PortraitAnalysis, kind: Backdrop) -> np.ndarray:
    """The background layer behind the subject, (h, w, 3) float32 linear light at work resolution (cached).

    Parameters
    ----------
    an : PortraitAnalysis
    kind : {"scene", "plain", "room"}
    """
    if kind not in _MAKERS:
        raise ValueError(f"backdrop must be one of {', '.join(_MAKERS)}, not {kind!r}")
    return an.derived(("backdrop", kind), _MAKERS[kind])
