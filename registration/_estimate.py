"""Estimate the affine transform from the flash shot to the studio shot, led by the face.

In a studio the phone stands on a tripod and the *subject* moves in the ~0.4 s between the shots, in front of
a background that does not. A transform that matches the whole frame is pulled towards the still background
(on subject-motion pairs, 14-18 px off at the face); the dataset keeps the face. So when both shots show a
face, the face decides: the search starts from a similarity fitted to dlib's 68 landmarks of both shots and
from the image centres (also turned by a few degrees about the face), sorts them on a small copy of the whole
frame, then compares the head and shoulders (the face box grown by ``head_scale``; the landmarks' start joins
again there as it was, since a still room can pull every start to its own motion on the whole frame) and the
face box itself last, and refits the result uniformly over the face's square to the face's dense motion (a
head turn moves the nose more than the outline; :mod:`._field`). A pair without a face falls back to the whole
frame, started from matched SIFT features and the image centres (also turned by a few degrees). Both searches
run on locally contrast-normalised luminance (:mod:`._views`), keep the best of several starts by mutual
information (:mod:`._search`) and end with an ECC polish; the transform is always in full-resolution pixels.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import SimpleITK as sitk

from acquisition.faces import (
    MIN_FACE_ENV,
    FaceBox,
    default_min_face_px,
    detect_faces,
    face_landmarks,
    face_square,
)
from acquisition.pixels import luminance

from ._config import DEFAULT_CONFIG, MIN_FACE_FRACTION, AffineEstimate, RegistrationConfig
from ._search import Level, search
from ._search import Result as SearchResult
from ._starts import Face, Start, feature_starts, geometry_start, landmark_start, turned
from ._transform import affine_from_matrix, matrix_of
from ._views import Box, View
from .errors import RegistrationError

__all__ = ["MIN_SIDE_PX", "estimate_affine", "find_faces", "overlap_fraction"]

log = logging.getLogger(__name__)

#: Shots smaller than this (either side) cannot be registered: the first level of the search would be a few
#: pixels across.
MIN_SIDE_PX = 32


@contextlib.contextmanager
def _global_threads(count: int) -> Iterator[None]:
    """SimpleITK's process-wide default thread count, for the duration of one estimate.

    ``ImageRegistrationMethod.SetNumberOfThreads`` does not reach everything: the metric still splits its work
    into the global number of work units and merges their histograms in completion order, so the last digits
    (and, after a few hundred iterations, the output bytes) change from run to run unless this is 1 as well.
    """
    previous = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(count)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(previous)


def _check_rgb(image: np.ndarray, role: str, name: str) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{role}_rgb must be an RGB array of shape (H, W, 3), got {image.shape}")
    if min(image.shape[:2]) < MIN_SIDE_PX:
        raise RegistrationError(f"{name} is too small to register ({image.shape[1]}x{image.shape[0]} px; at least "
                                f"{MIN_SIDE_PX} px a side)",
                                hint="use the camera's full-size photo, not a thumbnail or preview")
    return image


def _check_shapes(flash: np.ndarray, studio: np.ndarray, names: tuple[str, str]) -> None:
    """Same aspect ratio, or a sentence that says which file and how to fix it."""
    (fh, fw), (sh, sw) = flash.shape[:2], studio.shape[:2]
    if abs((fw / fh) / (sw / sh) - 1.0) <= 0.01:
        return
    if abs((fw / fh) * (sw / sh) - 1.0) <= 0.01 and (fw > fh) != (sw > sh):
        # The same frame, one of them sideways: a phone stored the pixels in sensor order and the orientation
        # tag was lost on the way (an editor, a copy tool, a converter).
        shots = [(names[0], fw, fh), (names[1], sw, sh)]
        (landscape, lw, lh), (portrait, pw, ph) = shots if fw > fh else shots[::-1]
        raise RegistrationError(f"{landscape} is landscape ({lw}x{lh}) and {portrait} portrait ({pw}x{ph}): the "
                                "camera's orientation tag is missing from one of them",
                                hint="rotate the sideways one upright, or retake the pose")
    raise RegistrationError(f"{names[0]} ({fw}x{fh}) and {names[1]} ({sw}x{sh}) have different aspect ratios",
                            hint="both shots must come from the same camera with the same size setting; retake "
                                 "the pose")


def _check_contrast(rgb: np.ndarray, name: str) -> None:
    side = max(rgb.shape[:2])
    # Every k-th pixel settles almost every real shot at once; only a flat-looking sample is averaged properly
    # (the average of a 12 MP shot costs 25 ms, 1-2 % of its registration).
    step = max(1, side // 512)
    lum = luminance(np.ascontiguousarray(rgb[::step, ::step]))
    if float(lum.max() - lum.min()) >= 1e-3:
        return
    small = rgb if side <= 256 else cv2.resize(rgb, (max(1, rgb.shape[1] * 256 // side),
                                                     max(1, rgb.shape[0] * 256 // side)),
                                               interpolation=cv2.INTER_AREA)
    lum = luminance(small)
    if float(lum.max() - lum.min()) < 1e-3:
        raise RegistrationError(f"{name} is blank (one uniform colour): there is nothing to register",
                                hint="check that the shot was exposed; retake the pose")


def _smallest_face(shape: tuple[int, ...], config: RegistrationConfig) -> float:
    """``config.min_face_px``, else ``DEEPFLASH_MIN_FACE_PX`` when set, else :data:`MIN_FACE_FRACTION`."""
    if config.min_face_px is not None:
        return config.min_face_px
    if os.environ.get(MIN_FACE_ENV, "").strip():
        return default_min_face_px(shape)
    return MIN_FACE_FRACTION * max(shape[:2])


def find_faces(rgb: np.ndarray, *, config: RegistrationConfig = DEFAULT_CONFIG,
               min_face_px: float | None = None) -> list[Face]:
    """The (up to three largest) faces of one shot with their 68 landmarks, full-resolution pixels.

    Faces down to ``min_face_px`` (default: ``config.min_face_px``, ``DEEPFLASH_MIN_FACE_PX``, else
    :data:`MIN_FACE_FRACTION` of the longer side) are searched for.
    """
    smallest = min_face_px if min_face_px is not None else _smallest_face(rgb.shape, config)
    boxes = detect_faces(rgb, max_side=config.face_max_side_px, upsample=config.face_upsample,
                         min_face_px=smallest)[:3]
    if not boxes:
        return []
    marks = face_landmarks(rgb, boxes, max_side=config.face_max_side_px)
    return [Face(box, lm) for box, lm in zip(boxes, marks, strict=True)]


def overlap_fraction(transform: sitk.Transform, flash_shape: tuple[int, ...], studio_shape: tuple[int, ...],
                     *, grid: int = 48) -> float:
    """Fraction of the flash frame that ``transform`` maps inside the studio image (on a grid of points)."""
    fh, fw = flash_shape[:2]
    sh, sw = studio_shape[:2]
    xs, ys = np.meshgrid(np.linspace(0, fw - 1, grid), np.linspace(0, fh - 1, grid))
    matrix, translation = matrix_of(transform)
    pts = np.stack([xs.ravel(), ys.ravel()], axis=1) @ matrix.T + translation
    inside = (pts[:, 0] >= -0.5) & (pts[:, 0] <= sw - 0.5) & (pts[:, 1] >= -0.5) & (pts[:, 1] <= sh - 0.5)
    return float(inside.mean())


def _box(face: FaceBox, factor: float, shape: tuple[int, ...]) -> Box:
    """``face`` grown by ``factor`` about its centre, clipped to the image."""
    grown = face.scaled(factor)
    h, w = shape[:2]
    return (max(-0.5, grown.left), max(-0.5, grown.top), min(w - 0.5, grown.right), min(h - 0.5, grown.bottom))


def _long_side(box: Box) -> float:
    return max(box[2] - box[0], box[3] - box[1])


def _face_levels(face: FaceBox, shape: tuple[int, ...], config: RegistrationConfig,
                 square: FaceBox | None = None) -> list[Level]:
    """The whole frame, small, then the head and shoulders, then the face box itself (the precision where it
    matters), whose result is refitted to the face's motion field over ``square`` (the landmarks' square).

    The small whole-frame level sorts the starts: under a harsh flash dlib's landmarks can be a fifth of the
    face off, or fit a patch of clothing; there the image centres, turned a few degrees, are the better start
    (relit portraits moved by up to 10 deg and 10 %: 3 of 10 lost without this level, none with it). But where
    the subject is small in the frame, the whole frame is mostly the still room, whose motion every start then
    reaches; the caller lets the landmarks' start join the head level as it is (:attr:`.Level.joining`).
    """
    h, w = shape[:2]
    frame = (-0.5, -0.5, w - 0.5, h - 0.5)
    levels = [Level(frame, frame, max(1.0, max(h, w) / config.coarse_side_px), config.learning_rate_px,
                    2 * config.min_step_px)]
    for factor, side, rate, step in ((config.head_scale, config.head_side_px, config.learning_rate_px,
                                      2 * config.min_step_px),
                                     (config.face_scale, config.face_side_px, config.learning_rate_px / 4,
                                      config.min_step_px)):
        region = _box(face, factor, shape)
        context = _box(face, factor * config.context_scale, shape)
        levels.append(Level(region, context, max(1.0, _long_side(region) / side), rate, step))
    if square is not None:
        levels[-1] = dataclasses.replace(levels[-1], field_box=(square.left, square.top, square.right, square.bottom))
    return levels


def _frame_levels(shape: tuple[int, ...], config: RegistrationConfig) -> list[Level]:
    """The whole frame at half the working size, then at the working size (with rescaled restarts), polished at
    twice the working size. (A face-led search is not polished finer: on subject-motion pairs with a head turn
    the finer polish followed the features more and the face box as a whole less, 0.1-0.2 px worse.)

    At the first level, starts within two of its pixels of each other count once: the feature-matched starts
    (four fits of the same matches) lie 1-3 px apart there and reach the same optimum; optimising each cost
    up to a sixth of a 12 MP estimate. (Within four pixels was too far: a real pair then landed differently
    as PNG and as JPEG.)"""
    h, w = shape[:2]
    frame = (-0.5, -0.5, w - 0.5, h - 0.5)
    scale = max(1.0, max(h, w) / config.max_side_px)
    return [Level(frame, frame, 2 * scale, config.learning_rate_px / 2, 2 * config.min_step_px, same_start_px=2.0),
            Level(frame, frame, scale, config.learning_rate_px / 4, config.min_step_px, escapes=True,
                  polish_scale=max(1.0, scale / 2))]


@dataclass(frozen=True)
class _Shrunk:
    """A shot downscaled once (INTER_AREA); pixel ``i`` sits at full-resolution ``scale * i + origin``."""

    rgb: np.ndarray
    scale: np.ndarray
    origin: np.ndarray

    @classmethod
    def of(cls, rgb: np.ndarray, factor: float) -> _Shrunk:
        h, w = rgb.shape[:2]
        size = (max(1, round(w / factor)), max(1, round(h / factor)))
        if size == (w, h):
            return cls(rgb, np.ones(2), np.zeros(2))
        scale = np.array([w / size[0], h / size[1]])
        return cls(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), scale, (scale - 1.0) / 2.0)


def _to_shrunk(start: Start, flash: _Shrunk, studio: _Shrunk) -> Start:
    """``start`` (full-resolution pixels) in the pixels of the two shrunk shots."""
    matrix = (start.matrix * flash.scale[None, :]) / studio.scale[:, None]
    translation = (start.matrix @ flash.origin + start.translation - studio.origin) / studio.scale
    return Start(start.name, matrix, translation)


def _to_full(matrix: np.ndarray, translation: np.ndarray, flash: _Shrunk, studio: _Shrunk
             ) -> tuple[np.ndarray, np.ndarray]:
    """An affine in the pixels of the two shrunk shots, back in full-resolution pixels."""
    full = (matrix * studio.scale[:, None]) / flash.scale[None, :]
    return full, studio.scale * translation + studio.origin - full @ flash.origin


def _frame_search(flash_rgb: np.ndarray, studio_rgb: np.ndarray, starts: list[Start], config: RegistrationConfig,
                  names: tuple[str, str]) -> tuple[SearchResult, Start]:
    """The whole-frame search, on copies shrunk once to the finest scale it uses (the polish's).

    Every level of a whole-frame search looks at the whole frame; downscaling a 12 MP shot for each of them
    (and for the features) cost a sixth of the estimate, so the shots are shrunk once and the result is
    brought back to full-resolution pixels.
    """
    fh, fw = flash_rgb.shape[:2]
    factor = max(1.0, max(fh, fw) / config.max_side_px / 2)
    flash = _Shrunk.of(flash_rgb, factor)
    studio = _Shrunk.of(studio_rgb, factor * studio_rgb.shape[1] / fw)
    shape, studio_shape = flash.rgb.shape, studio.rgb.shape
    centre = ((shape[1] - 1) / 2, (shape[0] - 1) / 2)
    levels = _frame_levels(shape, config)
    geometry_small = geometry_start(shape, studio_shape)
    small = [_to_shrunk(s, flash, studio) for s in starts]
    matched: list[Start] = []
    if config.features:
        scale = levels[-1].scale
        matched = feature_starts(View.of(flash.rgb, levels[-1].region, scale, config.contrast_sigma_px),
                                 View.of(studio.rgb, (-0.5, -0.5, studio_shape[1] - 0.5, studio_shape[0] - 0.5),
                                         scale * studio_shape[1] / shape[1], config.contrast_sigma_px),
                                 features=config.features, ratios=config.feature_ratios)
    if not any(s.support >= config.decisive_matches for s in matched):
        # Fallbacks: run only if neither the centres nor the features reach a clear optimum (see search()).
        small += [dataclasses.replace(turned(geometry_small, angle, np.asarray(centre)), fallback=bool(matched))
                  for angle in config.frame_rotations_deg]
    small += matched
    result = search(flash.rgb, studio.rgb, levels, small, config=config, centre=centre, keep=config.keep,
                    reference=geometry_small, names=names)
    matrix, translation = _to_full(result.matrix, result.translation, flash, studio)
    chosen = next((s for s in small if s.name == result.start.rstrip("~")), geometry_small)
    initial = Start(chosen.name, *_to_full(chosen.matrix, chosen.translation, flash, studio))
    return (dataclasses.replace(result, matrix=matrix, translation=translation,
                                scale=result.scale * float(flash.scale.max())), initial)


def estimate_affine(flash_rgb: np.ndarray, studio_rgb: np.ndarray, *,
                    config: RegistrationConfig = DEFAULT_CONFIG,
                    names: tuple[str, str] = ("the flash shot", "the studio shot")) -> AffineEstimate:
    """The affine mapping a point of the flash shot to the same point of the studio shot, led by the face.

    Parameters
    ----------
    flash_rgb : ndarray, shape (H, W, 3)
        The flash shot (fixed image, the reference), uint8, uint16 or float in [0, 1], upright.
    studio_rgb : ndarray, shape (H', W', 3)
        The studio shot (moving image), same aspect ratio; usually the same size.
    config : RegistrationConfig
        Regions, working sizes, starts, optimiser and metric settings.
    names : (str, str)
        How error messages name the two shots (``prep register`` gives the file names).

    Returns
    -------
    AffineEstimate
        ``transform`` in full-resolution pixels (x right, y down, origin at the centre of the top-left pixel):
        ``studio_xy = transform.TransformPoint(flash_xy)``; ``region`` (``"face"`` or ``"frame"``), the start
        it came from, the metric before and after, iterations, the optimiser's stop condition, the faces and
        landmarks used and the wall time.

    Raises
    ------
    RegistrationError
        When an image is too small or blank, the aspect ratios differ, or the shots do not overlap from any
        start (SimpleITK's "Too many samples map outside moving image buffer", in words).

    Notes
    -----
    About 1.0 s for a face-led 12 MP pair on one core, 1.3-1.7 s for a whole-frame one (``bench/register.py``,
    a quiet machine).
    Capture-time checks (issue 17) call it as ``prep register`` does; :func:`check_face_alignment` then
    verifies the face independently.

    Examples
    --------
    >>> estimate = estimate_affine(flash, studio)                      # doctest: +SKIP
    >>> estimate.region, estimate.transform.TransformPoint((100.0, 200.0))       # doctest: +SKIP
    """
    start = time.perf_counter()
    with _global_threads(config.threads):
        estimate = _estimate(flash_rgb, studio_rgb, config, names)
    return dataclasses.replace(estimate, seconds=time.perf_counter() - start)


def _estimate(flash_rgb: np.ndarray, studio_rgb: np.ndarray, config: RegistrationConfig,
              names: tuple[str, str]) -> AffineEstimate:
    flash_rgb = _check_rgb(flash_rgb, "flash", names[0])
    studio_rgb = _check_rgb(studio_rgb, "studio", names[1])
    _check_shapes(flash_rgb, studio_rgb, names)
    fw, sw = flash_rgb.shape[1], studio_rgb.shape[1]
    _check_contrast(flash_rgb, names[0])
    _check_contrast(studio_rgb, names[1])

    # Faces: besides leading the search, they give the quality check its face box and its blink test. The
    # studio shot is searched only when the flash shot has a face, for faces at least half its size.
    flash_faces = find_faces(flash_rgb, config=config)
    studio_faces = []
    if flash_faces:
        smallest = 0.5 * flash_faces[-1].box.width * sw / fw
        studio_faces = find_faces(studio_rgb, config=config, min_face_px=smallest)
    geometry = geometry_start(flash_rgb.shape, studio_rgb.shape)
    matched = landmark_start(flash_faces, studio_faces, sw / fw) if studio_faces else None
    flash_face = matched[1] if matched else (flash_faces[0] if flash_faces else None)
    studio_face = matched[2] if matched else (studio_faces[0] if studio_faces else None)

    starts: list[Start] = [geometry]
    if matched is not None and config.initialization == "landmarks":
        starts.insert(0, matched[0])
    if config.region == "face" and matched is not None:
        region = "face"
        box = matched[1].box
        centre = box.center
        square = None
        if config.face_field_degree > 0:  # the region of the refit to the face's motion field
            square = face_square(flash_rgb, matched[1].landmarks, max_side=config.face_max_side_px)
        levels = _face_levels(box, flash_rgb.shape, config, square)
        if config.initialization == "landmarks":
            # The whole frame sorts the starts, but where the subject is small in front of a still room, it pulls
            # the landmarks' start to the room's motion: the head and shoulders see that start again as it is.
            levels[1] = dataclasses.replace(levels[1], joining=(matched[0],))
        starts += [turned(geometry, angle, np.asarray(centre)) for angle in config.frame_rotations_deg]
        result = search(flash_rgb, studio_rgb, levels, starts, config=config, centre=centre, keep=config.keep,
                        reference=geometry, names=names)
        initial = next((s for s in starts if s.name == result.start.rstrip("~")), geometry)
    else:
        region = "frame"
        result, initial = _frame_search(flash_rgb, studio_rgb, starts, config, names)
    log.debug("%s-led registration from %s (polished: %s)", region, result.start, result.polished)
    return AffineEstimate(
        transform=affine_from_matrix(result.matrix, result.translation),
        initial=affine_from_matrix(initial.matrix, initial.translation), initialization=initial.name,
        metric_before=result.metric_start, metric_after=result.metric, iterations=result.iterations,
        stop_condition=result.stop_condition, seconds=math.nan, region=region, scale_px=result.scale,
        flash_face=None if flash_face is None else flash_face.box,
        studio_face=None if studio_face is None else studio_face.box,
        flash_landmarks=None if flash_face is None else flash_face.landmarks,
        studio_landmarks=None if studio_face is None else studio_face.landmarks)
