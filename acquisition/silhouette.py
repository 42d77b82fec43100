"""The subject's silhouette (face, hair, shoulders) from a face box: GrabCut seeded with a head-and-torso prior.

Defined once: the virtual studio lights the subject and the background differently through it, and
``prep enhance`` applies the predicted relighting through it, so the background keeps its pixels. GrabCut
(Rother, Kolmogorov and Blake, "GrabCut: interactive foreground extraction using iterated graph cuts", SIGGRAPH
2004; OpenCV's ``cv2.grabCut``) separates colour models of subject and background over a graph cut; here it is
seeded, instead of by hand, with where a portrait's head and torso lie relative to its face box. It runs on a
small copy (the silhouette needs to be right to a few pixels; the matte's soft edge covers the rest) and in a
fixed random state, so the same photo always gives the same silhouette.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import cv2
import numpy as np

from .faces import FaceBox

__all__ = ["BACKGROUND_BAND", "MAX_WORK_SIDE", "MIN_FACE_WORK_PX", "SHOULDER_HALF_WIDTH", "SHOULDER_SLOPE", "WORK_SIDE",
           "subject_matte"]

log = logging.getLogger(__name__)

#: GrabCut's resolution: the longer side of the copy it runs on ...
WORK_SIDE = 256
#: ... but the face gets at least this many pixels of it (a full-length photo has a small head) ...
MIN_FACE_WORK_PX = 48
#: ... as long as the copy stays within this side.
MAX_WORK_SIDE = 384
#: Shoulders of the strict prior: their half-width grows by this many face widths per face height below the chin
#: (a portrait's shoulders are about 1.1 face widths out one third of a face height below it) ...
SHOULDER_SLOPE = 1.4
#: ... up to this half-width, in face widths.
SHOULDER_HALF_WIDTH = 2.4
#: With the strict prior, GrabCut learns the background from this band around it (face widths).
BACKGROUND_BAND = 0.3


def _face_core(mask: np.ndarray, face: FaceBox) -> None:
    """Mark the core of the face (an ellipse inside its box) as surely subject."""
    cx, cy = face.center
    axes = (round(0.3 * face.width), round(0.35 * face.height))
    cv2.ellipse(mask, (round(cx), round(cy)), axes, 0, 0, 360, int(cv2.GC_FGD), -1)


def _prior_mask(shape: tuple[int, int], face: FaceBox, *, top_is_background: bool = True,
                outside_is_background: bool = False) -> np.ndarray:
    """GrabCut seeds: the head and a torso widening below it are probably subject, the face core surely.

    With ``outside_is_background`` everything outside that head-and-shoulders shape is surely background and
    the shoulders widen as a person's do (:data:`SHOULDER_SLOPE` face widths per face height below the chin, at
    most :data:`SHOULDER_HALF_WIDTH`), not down to the image's bottom edge, which in a photo cut below the chest
    takes in the whole lower corners."""
    h, w = shape
    mask = np.full((h, w), cv2.GC_BGD if outside_is_background else cv2.GC_PR_BGD, np.uint8)
    cx, cy = face.center
    fw, fh = face.width, face.height
    cv2.ellipse(mask, (round(cx), round(cy - 0.1 * fh)), (round(0.85 * fw), round(1.0 * fh)), 0, 0, 360,
                int(cv2.GC_PR_FGD), -1)
    chin = cy + 0.5 * fh
    if outside_is_background:
        rows = np.arange(h, dtype=np.float32)
        half = np.minimum(SHOULDER_HALF_WIDTH * fw, 0.6 * fw + SHOULDER_SLOPE * fw * (rows - chin) / max(fh, 1.0))
        torso = (rows[:, None] >= chin) & (np.abs(np.arange(w, dtype=np.float32)[None, :] - cx) <= half[:, None])
        mask[torso] = cv2.GC_PR_FGD
    else:
        torso = np.array([[cx - 0.6 * fw, chin], [cx + 0.6 * fw, chin], [cx + 2.2 * fw, h], [cx - 2.2 * fw, h]],
                         np.int32)
        cv2.fillPoly(mask, [torso], int(cv2.GC_PR_FGD))
    _face_core(mask, face)
    # The top corners, well away from the head, are surely background.
    margin = max(1, round(0.04 * min(h, w)))
    top = max(margin, round(face.top - 0.6 * fh))
    mask[:top, :][np.abs(np.arange(w) - cx)[None, :].repeat(top, 0) > 1.2 * fw] = cv2.GC_BGD
    if top_is_background:
        mask[:margin, :] = np.where(mask[:margin, :] == cv2.GC_FGD, cv2.GC_FGD, cv2.GC_BGD)
    return mask


def _local_colours(small: np.ndarray, seeds: np.ndarray, face: FaceBox) -> np.ndarray:
    """``small`` with every pixel farther than :data:`BACKGROUND_BAND` face widths from the prior shape painted
    the colour of the nearest pixel within it: GrabCut's background model (five Gaussians for the whole image)
    then describes what lies right beside the person, not a far corner of the photo."""
    prior = (seeds != cv2.GC_BGD).astype(np.uint8)
    k = 2 * max(1, round(BACKGROUND_BAND * face.width)) + 1
    near = cv2.dilate(prior, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    if near.all() or not near.any():
        return small
    _, labels = cv2.distanceTransformWithLabels(1 - near, cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL)
    sources = np.flatnonzero(near.ravel())  # label n is the n-th pixel of the band, in raster order
    far = np.flatnonzero(near.ravel() == 0)
    flat = small.reshape(-1, small.shape[2]).copy()
    flat[far] = flat[sources[labels.ravel()[far] - 1]]
    return flat.reshape(small.shape)


def _whole_subject(fg: np.ndarray, face: FaceBox) -> np.ndarray:
    """One solid silhouette from GrabCut's foreground: the part that holds the face, the parts that join it
    (a black collar can cut a head from its body), thin gaps closed, enclosed holes filled (eyes, dark clothes,
    a badge): the subject moves as one piece, and a hole would show the background through it."""
    h, w = fg.shape
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * max(2, round(0.06 * face.height)) + 1,) * 2)
    closed = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, kernel)
    count, labels = cv2.connectedComponents(closed)
    if count > 2:
        cx, cy = face.center
        label = labels[min(max(round(cy), 0), h - 1), min(max(round(cx), 0), w - 1)]
        if label > 0:
            near = cv2.dilate((labels == label).astype(np.uint8), cv2.getStructuringElement(
                cv2.MORPH_ELLIPSE, (2 * max(2, round(0.3 * face.height)) + 1,) * 2))
            keep = np.unique(labels[(near > 0) & (labels > 0)])
            big = [k for k in keep if k == label or (labels == k).sum() > 0.25 * face.area]
            closed = np.isin(labels, big).astype(np.uint8)
    # Fill what the background cannot reach from the image border.
    flood = np.pad(1 - closed, 1, constant_values=1).astype(np.uint8)
    cv2.floodFill(flood, None, (0, 0), 2)
    return ((flood[1:-1, 1:-1] != 2) | (closed > 0)).astype(np.uint8)


def subject_matte(rgb: np.ndarray, face: FaceBox, *, others: Sequence[FaceBox] = (),
                  top_is_background: bool = True, outside_is_background: bool = False, work_side: int = WORK_SIDE,
                  min_face_work_px: int = MIN_FACE_WORK_PX, max_work_side: int = MAX_WORK_SIDE) -> np.ndarray:
    """A matte of the subject whose face is ``face``: 1 on face, hair and shoulders, 0 on the background.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
        The photo (or the part of it around the subject), RGB.
    face : FaceBox
        The subject's face, in ``rgb``'s pixels.
    others : sequence of FaceBox
        Other people's faces in ``rgb``: their cores are seeded as surely not this subject, so two people side
        by side get a matte each.
    top_is_background : bool
        Whether the top rows of ``rgb`` are surely background (a portrait with room above the head); False when
        the head may touch the top edge (a crop of a larger photo).
    outside_is_background : bool
        Seed everything outside the head-and-shoulders prior as surely background (shoulders by a person's
        proportions, not the image's height), so GrabCut's background colours include a busy backdrop beside
        the person (a flag, a shelf) instead of learning it as the subject's, learnt from a band of
        :data:`BACKGROUND_BAND` face widths around the prior (farther pixels take the colour of the nearest one in
        it); ``prep enhance`` uses it, where a background taken in is a visible edit. False (the virtual
        studio's): only the top corners are surely background.
    work_side, min_face_work_px, max_work_side : int
        GrabCut's copy: longer side ``work_side``, larger (up to ``max_work_side``) while the face spans fewer
        than ``min_face_work_px`` of its pixels. A larger copy follows dark hair or a hat against a dark
        background better and costs time in proportion to its pixels.

    Returns
    -------
    ndarray, shape (H, W), float32
        In [0, 1]: one solid piece holding the face (holes filled), with a soft edge about one pixel of GrabCut's
        copy wide. Where GrabCut cannot run (a flat image)
        the prior silhouette itself.
    """
    h, w = rgb.shape[:2]
    f = min(1.0, max(work_side / max(h, w), min(min_face_work_px / max(face.height, 1.0), max_work_side / max(h, w))))
    small_size = (max(8, round(w * f)), max(8, round(h * f)))
    small = cv2.resize(rgb, small_size, interpolation=cv2.INTER_AREA)
    fx, fy = small_size[0] / w, small_size[1] / h

    def to_small(box: FaceBox) -> FaceBox:
        return FaceBox(box.left * fx, box.top * fy, box.right * fx, box.bottom * fy)

    small_face = to_small(face)
    seeds = _prior_mask(small.shape[:2], small_face, top_is_background=top_is_background,
                        outside_is_background=outside_is_background)
    for other in map(to_small, others):
        ox, oy = other.center
        axes = (max(1, round(0.45 * other.width)), max(1, round(0.5 * other.height)))
        cv2.ellipse(seeds, (round(ox), round(oy)), axes, 0, 0, 360, int(cv2.GC_BGD), -1)
    if others:  # a neighbour's face that overlaps this one does not take its core
        _face_core(seeds, small_face)
    if outside_is_background:
        small = _local_colours(small, seeds, small_face)
    gc = seeds.copy()
    try:
        cv2.setRNGSeed(0)  # GrabCut's k-means initialisation: the same silhouette on every run
        cv2.grabCut(np.ascontiguousarray(small[:, :, ::-1]), gc, None, np.zeros((1, 65), np.float64),
                    np.zeros((1, 65), np.float64), 4, cv2.GC_INIT_WITH_MASK)
        fg = ((gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)).astype(np.uint8)
    except cv2.error as exc:  # degenerate images (one flat colour): the prior silhouette will do
        log.debug("GrabCut failed (%s); using the prior silhouette", exc)
        fg = ((seeds == cv2.GC_FGD) | (seeds == cv2.GC_PR_FGD)).astype(np.uint8)
    if others:  # filling enclosed holes must not hand a neighbour's face back to this subject
        fg[seeds == cv2.GC_BGD] = 0
    fg = _whole_subject(fg, small_face)
    if others:
        fg[seeds == cv2.GC_BGD] = 0
    # Smooth the staircase at GrabCut's resolution, upsample, then narrow the soft edge to about a work pixel
    # (a smoothstep): a wide edge would show as a blurred cut-out once the subject moves over its background.
    small_soft = cv2.GaussianBlur(fg.astype(np.float32), (0, 0), 0.7)
    mask = np.clip(cv2.resize(small_soft, (w, h), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)
    t = np.clip((mask - 0.5) * (1.6 / f) + 0.5, 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)
