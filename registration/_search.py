"""The optimisation: Mattes mutual information from several starts, coarse to fine, then an ECC polish.

Mutual information of a flash and a studio shot has more than one optimum near the truth (on a real
flash/ambient pair, two optima 10 px apart whose metric differed by a quarter), and where a single run stops
depends on trivia such as JPEG noise: the same pixels saved as PNG and as a JPEG landed 3 px apart. So every
level optimises every candidate, ranks them by the metric and hands the best few to the next level; the last
level also tries the best candidate scaled by a percent either way, to leave a neighbouring optimum. Starts are
ranked by the metric over the optimiser's own samples, which are the same for every start (a fixed seed on the
same fixed image); starts that land within a working pixel of each other count once.

The winner is then polished by OpenCV's enhanced correlation coefficient (ECC, Evangelidis and Psarakis 2008)
on the same normalised images: a Gauss-Newton fit over every pixel of the region, whose optimum does not
depend on where it starts within its basin. It makes the result independent of the input's trivia (PNG and
JPEG of the same pixels within 0.01 px on the real pairs) and is kept only when it stays within
``ecc_max_move_px`` of the mutual-information optimum (otherwise the correlation is not trusted: strong
shadows can pull it). A face-led result is last refitted, uniformly over the face's square, to the face's
dense motion field (:mod:`._field`): both metrics weight the face by its texture, which a head turn moves most.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass

import cv2
import numpy as np
import SimpleITK as sitk

from acquisition.interrupts import raise_if_interrupted

from ._config import RegistrationConfig
from ._field import FIELD_SIDE_PX, field_affine
from ._starts import Start
from ._transform import affine_from_matrix, matrix_of
from ._views import Box, View
from .errors import RegistrationError

__all__ = ["Level", "Result", "search"]

log = logging.getLogger(__name__)

_OUTSIDE = "Too many samples map outside moving image buffer"
_EDGE_MI_LOSS = 0.1  # the edge polish may cost this fraction of the mutual information, no more
_EDGE_ITERATIONS = 60  # of the edge polish's ECC: 200 gave the same results on the real pairs, 12 % slower
_WEAK_FRACTION = 0.5  # of the best start's mutual information: weaker starts are not carried to a finer level
_CLEARLY_BETTER = 2.0  # times the image centres' mutual information: a fallback start is not needed (metrics < 0)


@dataclass(frozen=True)
class Level:
    """One scale of the search.

    ``region`` is what the metric compares (the face box, or the whole frame); ``context`` the larger crop the
    normalisation sees around it. ``scale`` is in full-resolution pixels per view pixel; the optimiser's first
    and last steps are in view pixels, and so is ``same_start_px``: candidates that put the region within it
    of an earlier one, or of the optimum an earlier one reached, are in the same basin and are optimised once.
    ``field_box`` (last level of a face-led search): the face's square over which the result is refitted to the
    face's motion field (:mod:`._field`).
    ``joining``: starts that join the previous level's best here as they are. A level that compares a smaller
    region than the one before needs them: the larger region's optimum may be another object's (a still room
    behind a small moving subject pulls every start to the room's motion).
    """

    region: Box
    context: Box
    scale: float
    learning_rate_px: float
    min_step_px: float
    escapes: bool = False
    polish_scale: float | None = None
    same_start_px: float = 1.0
    field_box: Box | None = None
    joining: tuple[Start, ...] = ()


@dataclass(frozen=True)
class Result:
    """The search's answer: ``studio = matrix @ flash + translation``, and how it was reached."""

    matrix: np.ndarray
    translation: np.ndarray
    start: str
    metric: float
    metric_start: float
    iterations: int
    stop_condition: str
    polished: bool
    scale: float


@dataclass
class _Candidate:
    name: str
    matrix: np.ndarray
    translation: np.ndarray
    metric: float = math.nan
    fallback: bool = False


def _corners(box: Box) -> np.ndarray:
    left, top, right, bottom = box
    return np.array([[left, top], [right, top], [right, bottom], [left, bottom]], dtype=np.float64)


def corner_distance(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], box: Box) -> float:
    """RMS distance (full-resolution pixels) between where two affines send the corners of ``box``."""
    corners = _corners(box)
    pa = corners @ a[0].T + a[1]
    pb = corners @ b[0].T + b[1]
    return float(np.sqrt(np.mean(np.sum((pa - pb) ** 2, axis=1))))


class _LibraryFailure(Exception):
    """SimpleITK failed on this pair; :func:`search` says so naming the two files."""


def _failure(exc: RuntimeError) -> _LibraryFailure:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return _LibraryFailure(lines[-1] if lines else str(exc))


def _execute(method: sitk.ImageRegistrationMethod, fixed: sitk.Image, moving: sitk.Image) -> sitk.Transform:
    """``method.Execute``, with SimpleITK's errors in words and a swallowed Ctrl-C raised again."""
    try:
        return method.Execute(fixed, moving)
    except RuntimeError as exc:
        # A stop signal that arrived inside the C++ optimiser comes back as SimpleITK's own error
        # ("error executing the Python Callable") or not at all: it stops the command, not this pair.
        raise_if_interrupted()
        if _OUTSIDE in str(exc):
            raise _OutsideError(str(exc)) from exc
        raise _failure(exc) from exc


class _OutsideError(Exception):
    """The optimiser left the studio image (this start only)."""


def _method(config: RegistrationConfig, fraction: float) -> sitk.ImageRegistrationMethod:
    """The ImageRegistrationMethod, every setting from ``config`` (one line per choice)."""
    method = sitk.ImageRegistrationMethod()
    method.SetNumberOfThreads(config.threads)
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=config.histogram_bins)
    if fraction >= 1.0:
        method.SetMetricSamplingStrategy(method.NONE)
    else:
        method.SetMetricSamplingStrategy(method.RANDOM)
        # SimpleITK reads seed 0 as "seed from the wall clock": shift by one so every seed is reproducible.
        method.SetMetricSamplingPercentage(fraction, config.seed + 1)
    method.SetInterpolator(sitk.sitkLinear)
    return method


def _metric(config: RegistrationConfig, fixed: sitk.Image, moving: sitk.Image, candidate: _Candidate,
            centre: tuple[float, float]) -> float:
    """Mattes MI over every pixel of ``fixed`` (NaN when the transform leaves the studio image).

    The value needs no image gradients: without the gradient filters (which smooth a whole image before every
    evaluation) it is the same number, 40 % sooner.
    """
    method = _method(config, 1.0)
    method.SetMetricUseFixedImageGradientFilter(False)
    method.SetMetricUseMovingImageGradientFilter(False)
    method.SetInitialTransform(affine_from_matrix(candidate.matrix, candidate.translation, center=centre),
                               inPlace=False)
    try:
        return float(method.MetricEvaluate(fixed, moving))
    except RuntimeError as exc:
        raise_if_interrupted()
        if _OUTSIDE in str(exc):
            return math.nan
        raise _failure(exc) from exc


def _optimise(config: RegistrationConfig, level: Level, step_px: float, fraction: float, fixed: sitk.Image,
              moving: sitk.Image, candidate: _Candidate, centre: tuple[float, float]
              ) -> tuple[_Candidate, int, str]:
    method = _method(config, fraction)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=level.learning_rate_px * step_px, minStep=level.min_step_px * step_px,
        numberOfIterations=config.iterations, relaxationFactor=config.relaxation, gradientMagnitudeTolerance=1e-8)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetInitialTransform(affine_from_matrix(candidate.matrix, candidate.translation, center=centre),
                               inPlace=False)
    result = _execute(method, fixed, moving)
    matrix, translation = matrix_of(sitk.CompositeTransform(result))
    # The metric over the run's samples: the same seed on the same fixed image draws the same samples for
    # every start, so the values rank the starts (a full evaluation would cost as much as a short run).
    return (_Candidate(candidate.name, matrix, translation, float(method.GetMetricValue())),
            method.GetOptimizerIteration(), method.GetOptimizerStopConditionDescription())


def _escapes(best: _Candidate, config: RegistrationConfig, step_px: float, centre: np.ndarray) -> list[_Candidate]:
    """The best candidate scaled by ``1 +- escape_scale`` and (when ``escape_px`` > 0) nudged by ``escape_px``
    view pixels each way."""
    out = []
    shift = config.escape_px * step_px
    if shift > 0:
        for dx, dy in ((shift, 0.0), (-shift, 0.0), (0.0, shift), (0.0, -shift)):
            out.append(_Candidate(best.name + "~", best.matrix, best.translation + np.array([dx, dy])))
    for factor in (1.0 - config.escape_scale, 1.0 + config.escape_scale):
        # Scale the flash frame about ``centre``: x -> centre + f (x - centre).
        out.append(_Candidate(best.name + "~", best.matrix * factor,
                              best.matrix @ (centre * (1.0 - factor)) + best.translation))
    return out


def _moving_view(studio: np.ndarray, level: Level, candidates: list[_Candidate], config: RegistrationConfig
                 ) -> View:
    """The studio shot around where the candidates put the flash context (with a margin for the optimiser)."""
    corners = _corners(level.context)
    points = np.vstack([corners @ c.matrix.T + c.translation for c in candidates])
    margin = 0.25 * max(level.context[2] - level.context[0], level.context[3] - level.context[1])
    box = (points[:, 0].min() - margin, points[:, 1].min() - margin, points[:, 0].max() + margin,
           points[:, 1].max() + margin)
    return View.of(studio, box, level.scale, config.contrast_sigma_px)


def polish(fixed: View, moving: View, region: Box, matrix: np.ndarray, translation: np.ndarray, *,
           iterations: int = 50, smoothing: int = 1) -> tuple[np.ndarray, np.ndarray] | None:
    """ECC (affine) on the normalised views, over ``region``, after a ``smoothing``-pixel Gaussian (1: none);
    None when it does not converge."""
    template, first = fixed.sub(region)
    if min(template.shape) < 8:
        return None
    kf, km = fixed.scale, moving.scale
    # Template pixel i sits at x = kf * i + first; moving pixel j at y = km * j + moving.origin.
    a = (matrix * kf[None, :]) / km[:, None]
    b = (matrix @ first + translation - moving.origin) / km
    warp = np.hstack([a, b[:, None]]).astype(np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, iterations, 1e-5)
    try:
        _, warp = cv2.findTransformECC(template, moving.normalised, warp, cv2.MOTION_AFFINE, criteria, None,
                                          smoothing)
    except cv2.error:
        return None  # "the algorithm stopped before its convergence": uncorrelated or no overlap
    a, b = warp[:, :2].astype(np.float64), warp[:, 2].astype(np.float64)
    new_matrix = (a * km[:, None]) / kf[None, :]
    return new_matrix, km * b + moving.origin - new_matrix @ first


def _edge_polish(fine_fixed: View, fine_moving: View, region: Box, config: RegistrationConfig, fixed: sitk.Image,
                 moving: sitk.Image, centre: tuple[float, float], best: _Candidate
                 ) -> tuple[np.ndarray, np.ndarray, float]:
    """ECC on gradient magnitude at the polish scale; kept unless it costs the mutual information dearly.

    On weak texture (a toy on a carpet; mutual information 0.08-0.10 against 0.2-0.7 elsewhere) the optimum
    of mutual information on normalised luminance is flat and lands pixels from the right answer, the same
    wrong place from any start (FAID real pairs: 4.3 px worst, 89 % within 1 px). Edges keep the objects'
    outlines and drop the carpet's grain (there: 0.9 px worst, 100 %). Where the texture is strong the
    edges can be pulled by the two lightings' shading; mutual information then drops clearly (25-35 % on
    one such scene, at most 5 % on the weak ones) and the polish is refused.
    """
    pair = polish(fine_fixed.edges(), fine_moving.edges(), region, best.matrix, best.translation,
                  iterations=_EDGE_ITERATIONS, smoothing=5)
    if pair is None:
        return best.matrix, best.translation, best.metric
    metric = _metric(config, fixed, moving, _Candidate(best.name, *pair), centre)
    if math.isfinite(metric) and metric <= best.metric + _EDGE_MI_LOSS * abs(best.metric):
        return pair[0], pair[1], metric
    log.debug("edge polish refused: mutual information %.4f -> %.4f", -best.metric, -metric)
    return best.matrix, best.translation, best.metric


def _field_fit(flash: np.ndarray, studio: np.ndarray, last: Level, config: RegistrationConfig, fixed_view: View,
               moving_view: View, matrix: np.ndarray, translation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The refit to the face's motion field (:mod:`._field`), kept when it moves the face's square by at most
    ``face_field_max_px`` working pixels.

    The last level's views are used as they are, unless they show the face's square smaller than
    :data:`.FIELD_SIDE_PX` (a small face in a small photo): then it is read from views upsampled to that size.
    At the virtual studio's largest head turns the refit moved the face up to 0.7 working px, at twice those up
    to 1.75 px (and was right: 0.28 working px from the target at worst, against 1.84 px without it). Mutual
    information is no guard here: the refit leaves its optimum on purpose (that optimum follows the texture),
    losing up to a tenth of it at the studio's largest turns while right, and evaluating it cost more than the
    refit (45 ms against 32 ms at 12 MP). The flow's own scatter guards the refit (:func:`.field_affine`), and the
    independent face check still judges what is kept.
    """
    box = last.field_box
    assert box is not None
    working_px = fixed_view.step_px
    side = max(box[2] - box[0], box[3] - box[1])
    if side / working_px < FIELD_SIDE_PX:
        fine = dataclasses.replace(last, scale=side / FIELD_SIDE_PX)
        fixed_view = View.of(flash, last.context, fine.scale, config.contrast_sigma_px)
        moving_view = _moving_view(studio, fine, [_Candidate("", matrix, translation)], config)
    pair = field_affine(fixed_view, moving_view, box, matrix, translation, degree=config.face_field_degree,
                        working_px=working_px)
    if pair is None:
        return matrix, translation
    moved = corner_distance(pair, (matrix, translation), box) / working_px
    if moved > config.face_field_max_px:
        log.debug("face field refused: it moved the face %.2f working px (more than %.2f)", moved,
                  config.face_field_max_px)
        return matrix, translation
    log.debug("face field: moved the face %.3f working px", moved)
    return pair


def _near(candidate: _Candidate, others: list[_Candidate], box: Box, tolerance_px: float) -> bool:
    """Whether ``candidate`` puts ``box`` within ``tolerance_px`` of one of ``others`` (the same basin)."""
    pair = (candidate.matrix, candidate.translation)
    return any(corner_distance(pair, (o.matrix, o.translation), box) <= tolerance_px for o in others)


def _distinct(candidates: list[_Candidate], box: Box, tolerance_px: float) -> list[_Candidate]:
    """The candidates without those that put ``box`` within ``tolerance_px`` of an earlier one (same basin)."""
    kept: list[_Candidate] = []
    for candidate in candidates:
        if not _near(candidate, kept, box, tolerance_px):
            kept.append(candidate)
    return kept


def _clearly_better(optimised: list[tuple[_Candidate, str]], reference_name: str) -> bool:
    """Whether a start reached :data:`_CLEARLY_BETTER` times the mutual information the image centres reached.

    Then the motion was found by other means than the image centres (matched features), and the centres'
    turned variants, which exist for a turn nothing else saw, would only cost time: on the real pairs they
    never reached an optimum the features had not (weak texture: 13-24 matches, 0.06 against 0.02 for the
    centres; 12 MP: 0.3 s saved on such a pair).
    """
    reference = [c.metric for c, _ in optimised if c.name == reference_name]
    others = [c.metric for c, _ in optimised if c.name != reference_name]
    return bool(reference and others) and min(others) <= _CLEARLY_BETTER * reference[0]


def search(flash: np.ndarray, studio: np.ndarray, levels: list[Level], starts: list[Start], *,
           config: RegistrationConfig, centre: tuple[float, float], keep: int, reference: Start,
           names: tuple[str, str] = ("the flash shot", "the studio shot")) -> Result:
    """Optimise every start through ``levels`` (keeping the ``keep`` best after each), then polish the winner.

    ``reference`` (the image centres aligned) gives ``metric_start``: the metric before registration, at the
    last level.

    Raises
    ------
    RegistrationError
        When every start leaves the studio image, or SimpleITK fails (naming the two shots).
    """
    try:
        return _search(flash, studio, levels, starts, config=config, centre=centre, keep=keep, reference=reference,
                       names=names)
    except _LibraryFailure as exc:
        raise RegistrationError(f"{names[0]} and {names[1]} could not be registered: SimpleITK failed ({exc})",
                                hint="run again; if it persists, report it with the two files") from exc


def _search(flash: np.ndarray, studio: np.ndarray, levels: list[Level], starts: list[Start], *,
            config: RegistrationConfig, centre: tuple[float, float], keep: int, reference: Start,
            names: tuple[str, str]) -> Result:
    # Fallback starts last (a stable sort): they run only if the others found nothing clearly better.
    candidates = sorted((_Candidate(s.name, s.matrix, s.translation, fallback=s.fallback) for s in starts),
                        key=lambda c: c.fallback)
    iterations = 0
    stop = ""
    centre_array = np.asarray(centre, dtype=np.float64)
    for index, level in enumerate(levels):
        fixed_view = View.of(flash, level.context, level.scale, config.contrast_sigma_px)
        step_px = fixed_view.step_px
        fixed = fixed_view.image(level.region)
        same_px = level.same_start_px * step_px
        candidates += [_Candidate(s.name, s.matrix, s.translation) for s in level.joining]
        candidates = _distinct(candidates, level.region, same_px)
        if level.escapes and candidates:
            candidates = candidates + _escapes(candidates[0], config, step_px, centre_array)
        moving_view = _moving_view(studio, level, candidates, config)
        moving = moving_view.image()
        fraction = min(1.0, config.samples / float(np.prod(fixed.GetSize())))
        optimised = []
        for candidate in candidates:
            if _near(candidate, [c for c, _ in optimised], level.region, same_px):
                continue  # it starts where an earlier start ended: the same basin, already optimised
            if candidate.fallback and _clearly_better(optimised, reference.name):
                continue
            try:
                result, count, stop_condition = _optimise(config, level, step_px, fraction, fixed, moving, candidate,
                                                          centre)
            except _OutsideError:
                continue  # this start led off the picture; the others may not
            iterations += count
            if math.isfinite(result.metric):
                optimised.append((result, stop_condition))
        if not optimised:
            raise RegistrationError(f"{names[1]} does not overlap {names[0]} from any starting point (the optimiser "
                                    "left the picture)",
                                    hint="the two shots must show the same scene, framed about the same way; retake "
                                         "the pose")
        optimised.sort(key=lambda pair: pair[0].metric)
        distinct = {id(c) for c in _distinct([c for c, _ in optimised], level.region, step_px)}
        optimised = [(c, stop_condition) for c, stop_condition in optimised if id(c) in distinct]
        log.debug("level %d (%.2f px): %s", index, step_px,
                  ", ".join(f"{c.name} {c.metric:.4f}" for c, _ in optimised))
        stop = optimised[0][1]
        if index < len(levels) - 1 and levels[index + 1].region == level.region:
            # The next level compares the same region, finer: a candidate with less than a fraction of the
            # best's mutual information is in another basin and would only cost time there (12 MP real
            # content: a third of a second per dropped start).
            best_metric = optimised[0][0].metric
            optimised = [pair for pair in optimised if pair[0].metric <= _WEAK_FRACTION * best_metric]
        candidates = [c for c, _ in optimised[:keep]] if index < len(levels) - 1 else [optimised[0][0]]
    best = candidates[0]
    matrix, translation, polished = best.matrix, best.translation, False
    polished_pair = polish(fixed_view, moving_view, levels[-1].region, matrix, translation)
    if polished_pair is not None:
        moved = corner_distance(polished_pair, (matrix, translation), levels[-1].region) / step_px
        if moved <= config.ecc_max_move_px:
            matrix, translation = polished_pair
            polished = True
        else:
            log.debug("ECC polish moved %.2f px (more than %.2f): kept the MI optimum", moved, config.ecc_max_move_px)
    last = levels[-1]
    fine_views = None
    if last.polish_scale is not None:
        # The polish scale's views, built once for both polishes below (the moving view's margin holds both).
        fine = dataclasses.replace(last, scale=last.polish_scale)
        fine_views = (View.of(flash, last.context, fine.scale, config.contrast_sigma_px),
                      _moving_view(studio, fine, [_Candidate(best.name, matrix, translation)], config))
    if polished and fine_views is not None and last.polish_scale < last.scale:
        # Once more at a finer scale: the same basin, more pixels (on the real pairs: median error 0.09 -> 0.06 px,
        # worst 0.74 -> 0.43 px). Kept when it stays within a pixel of the last level.
        pair = polish(*fine_views, last.region, matrix, translation)
        if pair is not None and corner_distance(pair, (matrix, translation), last.region) <= step_px:
            matrix, translation = pair
    if last.field_box is not None and config.face_field_degree > 0:
        matrix, translation = _field_fit(flash, studio, last, config, fixed_view, moving_view, matrix, translation)
    metric = _metric(config, fixed, moving, _Candidate(best.name, matrix, translation), centre)
    if fine_views is not None:
        matrix, translation, metric = _edge_polish(*fine_views, last.region, config, fixed, moving, centre,
                                                   _Candidate(best.name, matrix, translation, metric))
    reference_metric = _metric(config, fixed, moving, _Candidate(reference.name, reference.matrix,
                                                                 reference.translation), centre)
    return Result(matrix, translation, best.name, metric, reference_metric, iterations, stop, polished, step_px)
