"""Estimate the affine transform from the flash shot to the studio shot: landmarks first, then Mattes MI.

The flash and studio shots of a pose are lit completely differently (a hard on-axis flash against soft lamps),
so intensities cannot be compared directly: the metric is Mattes mutual information on luminance. The
optimiser only converges from a good first estimate, so dlib's 68 face landmarks of both shots give a
similarity (least squares) to start from; aligning the image centres is the fall-back. SimpleITK then refines
the full affine on a pyramid over a downscaled copy whose spacing and origin keep the transform in
full-resolution pixels (spacing = factor, origin = (factor - 1) / 2: the centre of the first big pixel).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import SimpleITK as sitk

from acquisition.faces import FaceBox, detect_faces, face_landmarks

from ._config import DEFAULT_CONFIG, AffineEstimate, RegistrationConfig
from ._transform import affine_from_matrix, decompose, matrix_of
from .errors import RegistrationError

__all__ = ["estimate_affine", "overlap_fraction"]

log = logging.getLogger(__name__)

_OUTSIDE = "Too many samples map outside moving image buffer"
_METRIC_SIDE_PX = 512
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True)
class _Face:
    box: FaceBox
    landmarks: dict[str, np.ndarray]

    @property
    def points(self) -> np.ndarray:
        return np.concatenate([self.landmarks[name] for name in sorted(self.landmarks)], axis=0)


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


def _check_rgb(image: np.ndarray, name: str) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name} must be an RGB array of shape (H, W, 3), got {image.shape}")
    if image.shape[0] < 16 or image.shape[1] < 16:
        raise ValueError(f"{name} is too small to register ({image.shape[1]}x{image.shape[0]})")
    return image


def _registration_copy(rgb: np.ndarray, max_side: int) -> tuple[sitk.Image, int]:
    """Luminance in [0, 1], downscaled by an integer factor, as a float32 image in full-resolution units."""
    factor = max(1, math.ceil(max(rgb.shape[:2]) / max_side))
    return _copy_at(rgb, factor), factor


def _copy_at(rgb: np.ndarray, factor: int) -> sitk.Image:
    """The luminance of ``rgb`` downscaled by ``factor`` (INTER_AREA), spacing and origin in full-res pixels."""
    h, w = rgb.shape[:2]
    small = rgb
    if factor > 1:
        small = cv2.resize(rgb, (max(1, round(w / factor)), max(1, round(h / factor))),
                           interpolation=cv2.INTER_AREA)
    scale = 1.0 / (65535.0 if rgb.dtype == np.uint16 else 255.0 if rgb.dtype == np.uint8 else 1.0)
    lum = (small.astype(np.float32) @ _LUMA) * np.float32(scale)
    image = sitk.GetImageFromArray(np.ascontiguousarray(lum))
    spacing = (w / small.shape[1], h / small.shape[0])
    image.SetSpacing(spacing)
    image.SetOrigin(((spacing[0] - 1) / 2, (spacing[1] - 1) / 2))
    return image


def _faces(rgb: np.ndarray, max_side: int, upsample: int, min_face_px: float | None = None) -> list[_Face]:
    boxes = detect_faces(rgb, max_side=max_side, upsample=upsample, min_face_px=min_face_px)[:3]
    if not boxes:
        return []
    marks = face_landmarks(rgb, boxes, max_side=max_side)
    return [_Face(box, lm) for box, lm in zip(boxes, marks, strict=True)]


def _similarity(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares similarity ``dst ~ s R src + t`` (Umeyama 1991)."""
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    a, b = src - mu_s, dst - mu_d
    cov = b.T @ a / len(src)
    u, d, vt = np.linalg.svd(cov)
    sign = np.diag([1.0, 1.0 if np.linalg.det(u @ vt) >= 0 else -1.0])
    rotation = u @ sign @ vt
    var = (a**2).sum() / len(src)
    scale = float(np.trace(np.diag(d) @ sign) / var) if var > 0 else 1.0
    matrix = scale * rotation
    return matrix, mu_d - matrix @ mu_s


def _landmark_start(flash_faces: list[_Face], studio_faces: list[_Face], size_ratio: float
                    ) -> tuple[np.ndarray, np.ndarray, _Face, _Face] | None:
    """The most consistent face pairing's similarity; None when no pairing is plausible.

    Every flash face is tried against every studio face (a detector may also fire on a patch of clothing):
    the pairing whose landmarks a similarity explains best wins, if its residual is small for the face size
    and its scale and rotation are plausible for two shots ~0.4 s apart.
    """
    best = None
    for ff in flash_faces:
        for sf in studio_faces:
            src, dst = ff.points, sf.points
            matrix, translation = _similarity(src, dst)
            residual = float(np.sqrt(np.mean(np.sum((src @ matrix.T + translation - dst) ** 2, axis=1))))
            parts = decompose(matrix)
            relative = residual / max(ff.box.width, 1.0)
            if abs(parts.rotation_deg) > 30 or not 0.6 < parts.scale_x / size_ratio < 1.6 or relative > 0.08:
                continue
            if best is None or relative < best[0]:
                best = (relative, matrix, translation, ff, sf)
    return None if best is None else best[1:]


def _geometry_start(flash_shape: tuple[int, int], studio_shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    fh, fw = flash_shape
    sh, sw = studio_shape
    matrix = np.diag([sw / fw, sh / fh])
    centre_f = np.array([(fw - 1) / 2, (fh - 1) / 2])
    centre_s = np.array([(sw - 1) / 2, (sh - 1) / 2])
    return matrix, centre_s - matrix @ centre_f


def overlap_fraction(transform: sitk.Transform, flash_shape: tuple[int, int], studio_shape: tuple[int, int],
                     *, grid: int = 48) -> float:
    """Fraction of the flash frame that ``transform`` maps inside the studio image (on a grid of points)."""
    fh, fw = flash_shape[:2]
    sh, sw = studio_shape[:2]
    xs, ys = np.meshgrid(np.linspace(0, fw - 1, grid), np.linspace(0, fh - 1, grid))
    matrix, translation = matrix_of(transform)
    pts = np.stack([xs.ravel(), ys.ravel()], axis=1) @ matrix.T + translation
    inside = (pts[:, 0] >= -0.5) & (pts[:, 0] <= sw - 0.5) & (pts[:, 1] >= -0.5) & (pts[:, 1] <= sh - 0.5)
    return float(inside.mean())


def _mask_image(fixed: sitk.Image, box: FaceBox, scale: float) -> sitk.Image:
    grown = box.scaled(scale)
    w, h = fixed.GetSize()
    sx, sy = fixed.GetSpacing()
    ox, oy = fixed.GetOrigin()
    # Index range of the registration copy whose pixel centres fall inside the grown box.
    x0, x1 = max(0, math.ceil((grown.left - ox) / sx)), min(w, math.floor((grown.right - ox) / sx) + 1)
    y0, y1 = max(0, math.ceil((grown.top - oy) / sy)), min(h, math.floor((grown.bottom - oy) / sy) + 1)
    mask = np.zeros((h, w), dtype=np.uint8)
    mask[y0:y1, x0:x1] = 1
    image = sitk.GetImageFromArray(mask)
    image.CopyInformation(fixed)
    return image


def _method(config: RegistrationConfig, factor: float, mask: sitk.Image | None, *, sampling: bool = True
            ) -> sitk.ImageRegistrationMethod:
    """The ImageRegistrationMethod, every setting from ``config`` (one line per choice)."""
    method = sitk.ImageRegistrationMethod()
    method.SetNumberOfThreads(config.threads)
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=config.histogram_bins)
    kind = config.sampling if sampling else "none"
    method.SetMetricSamplingStrategy({"random": method.RANDOM, "regular": method.REGULAR, "none": method.NONE}[kind])
    if kind != "none":
        # SimpleITK reads seed 0 as "seed from the wall clock": shift by one so every seed is reproducible.
        method.SetMetricSamplingPercentage(config.sampling_fraction, config.seed + 1)
    if mask is not None:
        method.SetMetricFixedMask(mask)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=config.learning_rate_px * factor, minStep=config.min_step_px * factor,
        numberOfIterations=config.iterations, relaxationFactor=config.relaxation,
        gradientMagnitudeTolerance=1e-8)
    method.SetOptimizerScalesFromPhysicalShift()
    return method


def _shrunk(image: sitk.Image, factor: int) -> sitk.Image:
    """``image`` shrunk by an integer factor (block mean; spacing and origin follow)."""
    return image if factor == 1 else sitk.BinShrink(image, [factor, factor])


def _coarse_search(config: RegistrationConfig, fixed: sitk.Image, moving: sitk.Image, mask: sitk.Image | None,
                   candidates: list[sitk.AffineTransform]) -> tuple[sitk.AffineTransform, int]:
    """The candidate start that a short registration at a coarse scale brings to the best metric.

    Mutual information has local optima a few degrees or a few percent of the width away from the truth; a
    landmark fit on a flash-lit face can be that far off. Trying each start for a few dozen iterations on a
    ~``coarse_side_px`` copy (milliseconds each) and keeping the best is much more robust than trusting one.
    """
    shrink = max(1, math.ceil(max(fixed.GetSize()) / config.coarse_side_px))
    small_fixed = _shrunk(fixed, shrink)
    small_moving = _shrunk(moving, shrink)
    small_mask = None if mask is None else _shrunk(mask, shrink) > 0
    factor = small_fixed.GetSpacing()[0]
    best: tuple[float, sitk.AffineTransform] | None = None
    iterations = 0
    for candidate in candidates:
        method = _method(config, factor, small_mask, sampling=False)
        method.SetOptimizerAsRegularStepGradientDescent(
            learningRate=2.0 * factor, minStep=0.05 * factor, numberOfIterations=config.coarse_iterations,
            relaxationFactor=config.relaxation, gradientMagnitudeTolerance=1e-8)
        method.SetOptimizerScalesFromPhysicalShift()
        method.SetInitialTransform(sitk.AffineTransform(candidate), inPlace=False)
        try:
            result = _execute(method, small_fixed, small_moving)
        except RegistrationError:
            continue  # this start led off the picture; the others may not
        iterations += method.GetOptimizerIteration()
        value = method.GetMetricValue()
        if best is None or value < best[0]:
            matrix, translation = matrix_of(sitk.CompositeTransform(result))
            best = (value, affine_from_matrix(matrix, translation, center=candidate.GetCenter()))
    if best is None:
        raise _no_overlap("from any starting point (the registration left the picture or SimpleITK failed)")
    return best[1], iterations


def _refine(config: RegistrationConfig, flash_rgb: np.ndarray, studio_rgb: np.ndarray, factor: int,
            face: FaceBox | None, transform: sitk.AffineTransform) -> tuple[sitk.AffineTransform, int]:
    """A last, single-level pass at twice the resolution, on the flash image cropped around the face.

    The dataset keeps the face, and the pyramid's last level on a copy ~4x smaller than a phone photo leaves
    ~0.1 px of sampling jitter there (0.3-0.4 px at full resolution); a few dozen iterations at the finer
    scale, where most of the samples fall on the face, bring it under 0.2 px for a fraction of the cost of
    registering the whole frame at that scale.
    """
    fine = max(1, factor // 2)
    fixed = _copy_at(flash_rgb, fine)
    moving = _copy_at(studio_rgb, fine)
    if face is not None:
        box = face.scaled(config.refine_scale)
        w, h = fixed.GetSize()
        (sx, sy), (ox, oy) = fixed.GetSpacing(), fixed.GetOrigin()
        x0, x1 = max(0, math.ceil((box.left - ox) / sx)), min(w, math.floor((box.right - ox) / sx) + 1)
        y0, y1 = max(0, math.ceil((box.top - oy) / sy)), min(h, math.floor((box.bottom - oy) / sy) + 1)
        if x1 - x0 >= 32 and y1 - y0 >= 32:
            fixed = fixed[x0:x1, y0:y1]  # slicing keeps the physical coordinates
    matrix, translation = matrix_of(transform)
    centre = face.center if face is not None else ((flash_rgb.shape[1] - 1) / 2, (flash_rgb.shape[0] - 1) / 2)
    method = _method(config, fine, None)
    method.SetMetricSamplingPercentage(config.refine_sampling_fraction, config.seed + 1)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=config.refine_step_px * fine, minStep=config.refine_min_step_px * fine,
        numberOfIterations=config.refine_iterations, relaxationFactor=config.relaxation,
        gradientMagnitudeTolerance=1e-8)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetInitialTransform(affine_from_matrix(matrix, translation, center=centre), inPlace=False)
    result = _execute(method, fixed, moving)
    refined_matrix, refined_translation = matrix_of(sitk.CompositeTransform(result))
    return affine_from_matrix(refined_matrix, refined_translation), method.GetOptimizerIteration()


def _pyramid(config: RegistrationConfig, fixed: sitk.Image, moving: sitk.Image, mask: sitk.Image | None,
             factor: int, start: sitk.AffineTransform, levels: list[tuple[int, float]], iterations: list[int]
             ) -> tuple[sitk.AffineTransform, str]:
    """The multi-resolution Mattes MI registration from ``start``; adds its iterations to ``iterations[0]``."""
    method = _method(config, factor, mask)
    if config.sampling != "none":
        # The same number of samples at every level (a fraction of 1/shrink^2 as many pixels): a coarse level
        # sampled as thinly as the finest one gives a noisy metric that lets the optimiser drift off.
        method.SetMetricSamplingPercentagePerLevel(
            [min(1.0, config.sampling_fraction * f * f) for f, _ in levels], config.seed + 1)
    method.SetShrinkFactorsPerLevel([f for f, _ in levels])
    method.SetSmoothingSigmasPerLevel([sigma for _, sigma in levels])
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    method.SetInitialTransform(sitk.AffineTransform(start), inPlace=False)
    method.AddCommand(sitk.sitkIterationEvent, lambda: iterations.__setitem__(0, iterations[0] + 1))
    result = _execute(method, fixed, moving)
    matrix, translation = matrix_of(sitk.CompositeTransform(result))
    return affine_from_matrix(matrix, translation), method.GetOptimizerStopConditionDescription()


def _metric_at(config: RegistrationConfig, fixed: sitk.Image, moving: sitk.Image, mask: sitk.Image | None,
               transform: sitk.Transform) -> float:
    method = _method(config, 1, mask)
    method.SetInitialTransform(transform, inPlace=False)
    try:
        return float(method.MetricEvaluate(fixed, moving))
    except RuntimeError as exc:
        if _OUTSIDE in str(exc):
            return float("nan")
        raise


def _execute(method: sitk.ImageRegistrationMethod, fixed: sitk.Image, moving: sitk.Image) -> sitk.Transform:
    """``method.Execute``, with SimpleITK's errors in words."""
    try:
        return method.Execute(fixed, moving)
    except RuntimeError as exc:
        if _OUTSIDE in str(exc):
            raise _no_overlap("(the optimiser left the picture: too many samples map outside the studio image)"
                              ) from exc
        lines = [line for line in str(exc).strip().splitlines() if line.strip()]
        raise RegistrationError(f"SimpleITK failed: {lines[-1] if lines else exc}") from exc


def _check_contrast(image: sitk.Image, role: str) -> None:
    values = sitk.GetArrayViewFromImage(image)
    if float(values.max() - values.min()) < 1e-3:
        raise RegistrationError(f"the {role} image is blank (one uniform colour): there is nothing to register",
                                hint="check that the shot was exposed; retake the pose")


def _no_overlap(detail: str) -> RegistrationError:
    return RegistrationError(f"the studio image does not overlap the flash image {detail}",
                             hint="the two shots must show the same scene, framed about the same way")


def estimate_affine(flash_rgb: np.ndarray, studio_rgb: np.ndarray, *,
                    config: RegistrationConfig = DEFAULT_CONFIG) -> AffineEstimate:
    """The affine mapping a point of the flash shot to the same point of the studio shot.

    Parameters
    ----------
    flash_rgb : ndarray, shape (H, W, 3)
        The flash shot (fixed image, the reference), uint8, uint16 or float in [0, 1], upright.
    studio_rgb : ndarray, shape (H', W', 3)
        The studio shot (moving image), same aspect ratio; usually the same size.
    config : RegistrationConfig
        Pyramid, sampling, optimiser, initialisation and mask settings.

    Returns
    -------
    AffineEstimate
        ``transform`` in full-resolution pixels (x right, y down, origin at the centre of the top-left pixel):
        ``studio_xy = transform.TransformPoint(flash_xy)``; the metric before and after, iterations, the
        optimiser's stop condition and the wall time.

    Raises
    ------
    RegistrationError
        When the aspect ratios differ, or the shots do not overlap (SimpleITK's "Too many samples map
        outside moving image buffer", in words).

    Examples
    --------
    >>> estimate = estimate_affine(flash, studio)                      # doctest: +SKIP
    >>> estimate.transform.TransformPoint((100.0, 200.0))              # doctest: +SKIP
    """
    start = time.perf_counter()
    with _global_threads(config.threads):
        estimate = _estimate(flash_rgb, studio_rgb, config)
    return dataclasses.replace(estimate, seconds=time.perf_counter() - start)


def _estimate(flash_rgb: np.ndarray, studio_rgb: np.ndarray, config: RegistrationConfig) -> AffineEstimate:
    start = time.perf_counter()
    flash_rgb = _check_rgb(flash_rgb, "flash_rgb")
    studio_rgb = _check_rgb(studio_rgb, "studio_rgb")
    fh, fw = flash_rgb.shape[:2]
    sh, sw = studio_rgb.shape[:2]
    if abs((fw / fh) / (sw / sh) - 1.0) > 0.01:
        raise RegistrationError(f"the flash ({fw}x{fh}) and studio ({sw}x{sh}) images have different aspect "
                                "ratios", hint="both shots must come from the same camera and orientation")

    fixed, factor = _registration_copy(flash_rgb, config.max_side_px)
    moving, _ = _registration_copy(studio_rgb, config.max_side_px)
    _check_contrast(fixed, "flash")
    _check_contrast(moving, "studio")

    # Faces always: besides the landmark start they give the refine pass its region and the QC its blink test.
    flash_faces = _faces(flash_rgb, config.face_max_side_px, config.face_upsample, config.min_face_px)
    studio_faces = _faces(studio_rgb, config.face_max_side_px, config.face_upsample, config.min_face_px)
    geometry_matrix, geometry_translation = _geometry_start((fh, fw), (sh, sw))
    start_matrix, start_translation = geometry_matrix, geometry_translation
    geometry = affine_from_matrix(geometry_matrix, geometry_translation)
    initialization = "geometry"
    flash_face = studio_face = None
    matched = _landmark_start(flash_faces, studio_faces, sw / fw) if flash_faces and studio_faces else None
    if matched is not None:
        flash_face, studio_face = matched[2], matched[3]
        if config.initialization == "landmarks":
            start_matrix, start_translation = matched[0], matched[1]
            initialization = "landmarks"
    else:
        flash_face = flash_faces[0] if flash_faces else None
        studio_face = studio_faces[0] if studio_faces else None

    centre = ((fw - 1) / 2, (fh - 1) / 2)
    if flash_face is not None and config.mask == "face":
        centre = flash_face.box.center
        mask = _mask_image(fixed, flash_face.box, config.mask_scale)
    else:
        mask = None
    bases = [(start_matrix, start_translation)]
    if initialization == "landmarks":
        bases.append((geometry_matrix, geometry_translation))
    starts = []
    for base_matrix, base_translation in bases:
        for angle in (0.0, *config.coarse_rotations_deg):
            # The base composed with a turn of the flash frame about ``centre``.
            turn = np.array([[math.cos(math.radians(angle)), -math.sin(math.radians(angle))],
                             [math.sin(math.radians(angle)), math.cos(math.radians(angle))]])
            matrix = base_matrix @ turn
            translation = base_matrix @ (np.asarray(centre) - turn @ centre) + base_translation
            starts.append(affine_from_matrix(matrix, translation, center=centre))
    starts = [t for t in starts if overlap_fraction(t, (fh, fw), (sh, sw)) >= 0.05]
    if not starts:
        raise _no_overlap("at the first estimate")
    initial, coarse_iterations = _coarse_search(config, fixed, moving, mask, starts)

    refine = config.refine and factor >= 2
    levels = list(zip(config.shrink_factors, config.smoothing_sigmas_px, strict=True))
    if refine and len(levels) > 1 and levels[-1][0] == 1:
        levels = levels[:-1]  # the refine pass, at twice the resolution, replaces the full-resolution level
    iterations = [coarse_iterations]
    transform, stop = _pyramid(config, fixed, moving, mask, factor, initial, levels, iterations)

    # MetricEvaluate ignores sampling and reads every pixel: measure on a copy of at most ~512 px.
    shrink = max(1, math.ceil(max(fixed.GetSize()) / _METRIC_SIDE_PX))
    metric_mask = None if mask is None else _shrunk(mask, shrink) > 0
    metric_images = (_shrunk(fixed, shrink), _shrunk(moving, shrink), metric_mask)
    if len(levels) > 1:
        # On rare pairs the pyramid's coarsest level drifts away from the coarse search's (good) answer and the
        # finer levels cannot bring it back; the metric at both says so, and the finer levels alone recover.
        reached = _metric_at(config, *metric_images, transform)
        if not reached <= _metric_at(config, *metric_images, initial):
            log.debug("the pyramid drifted away from the coarse search's estimate; retrying without its first level")
            retry, retry_stop = _pyramid(config, fixed, moving, mask, factor, initial, levels[1:], iterations)
            if _metric_at(config, *metric_images, retry) < reached:
                transform, stop = retry, retry_stop
    if refine:
        transform, refine_iterations = _refine(config, flash_rgb, studio_rgb, factor,
                                               None if flash_face is None else flash_face.box, transform)
        iterations[0] += refine_iterations

    before = _metric_at(config, *metric_images, geometry)
    after = _metric_at(config, *metric_images, transform)
    return AffineEstimate(
        transform=transform, initial=affine_from_matrix(start_matrix, start_translation),
        initialization=initialization, metric_before=before, metric_after=after, iterations=iterations[0],
        stop_condition=stop, seconds=time.perf_counter() - start,
        downscale=factor, flash_landmarks=None if flash_face is None else flash_face.landmarks,
        studio_landmarks=None if studio_face is None else studio_face.landmarks)
