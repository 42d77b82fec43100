"""The face's affine from its dense motion field, every part of the face counted alike.

A head turn moves the face non-affinely: the nose most, the outline of the face least. The target of a face-led
registration is the least-squares affine of that motion over the face's square (every pixel alike), but mutual
information and ECC weight the face by its texture, and the texture (eyes, nostrils, lips) sits where the turn
moves most: on 12 MP virtual-studio pairs the search's result was 1.43 px (median; 0.45 working pixels) from
that target, and a finer ECC polish only followed the features more.

So, once the search has settled, the residual motion is measured at every pixel: Farneback's dense optical flow
(Farneback 2003) between the flash view and the studio view warped by the search's affine, both locally
contrast-normalised (:mod:`._views`: what the two lightings share). A smooth field, a polynomial of degree
``face_field_degree`` in the square's coordinates, is fitted to the flow with Tukey's biweight, so that a
highlight, a shadow's edge, an eye that blinked or the still background inside the square falls out instead
of pulling; the polynomial also carries the motion across the cheeks and forehead, where the flow of a smooth
skin is poorly determined. The affine is then refitted to that field on a uniform grid over the square. On the
same pairs: 1.43 -> 0.08 px median, 1.67 -> 0.24 px worst (960x1280: 0.30 -> 0.04 px median, 1.84 -> 0.28 working
px worst at twice the studio's largest turn). Degree 4 was the best of 2-5 on 12 MP turns shaped as the virtual
studio's bump and, to check that it is not fitted to that shape, as a hemisphere's depth profile and as a
Gaussian (median / worst 0.10 / 0.25, 0.09 / 0.28 and 0.08 / 0.22 px; degree 2: 0.18 / 0.24, 0.08 / 0.37 and
0.16 / 0.22; 3 and 5 worse than 4).
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from ._views import Box, View

__all__ = ["field_affine"]

log = logging.getLogger(__name__)

_GAIN = 32.0  # normalised luminance (unit local contrast) to the flow's 8-bit input: +-4 deviations span 0-255
_WINDOW = 15  # Farneback's averaging window, view px
_STRIDE = 3  # the fit reads every third flow vector each way (a ninth of them: the same answer within 0.01 px)
_TUKEY = 4.0  # biweight cut-off, in robust standard deviations of the residual flow
_ROUNDS = 5  # reweighting rounds (8 gave the same answers)
_MIN_INLIERS = 0.5  # of the square's pixels: with fewer the flow is not trusted
#: The flow's robust scatter about the smooth field (working px) beyond which it is not trusted: 0.04-0.17 on
#: virtual-studio pairs (flash against studio light, head turns), 0.6-2.4 on portraits relit with a tone curve
#: that folds back (highlights invert their contrast, which mutual information follows and a flow cannot).
_MAX_SCATTER = 0.3
_GRID = 32  # the uniform grid the affine is refitted on, per side
_MARGIN = 16  # view pixels of context around the square for the flow
#: The face's square is read at least this large (view px), upsampled if need be. On pairs whose only motion was
#: affine (the camera's), squares of 106 and 132 px read as they are were moved 0.2-0.5 px off by the flow (the
#: search's result: 0.1-0.25 px); upsampled to 160 px, 0.05-0.15 px; squares of 158 px and more were brought
#: from 0.2-0.3 px to 0.02-0.09 px.
FIELD_SIDE_PX = 160


def _monomials(u: np.ndarray, v: np.ndarray, degree: int) -> np.ndarray:
    """(N, (degree + 1)(degree + 2) / 2): every u^i v^j with i + j <= degree."""
    return np.stack([u ** (k - j) * v**j for k in range(degree + 1) for j in range(k + 1)], axis=1)


def _flow(fixed: np.ndarray, moving: np.ndarray) -> np.ndarray:
    """Farneback's dense optical flow from ``fixed`` to ``moving``: ``fixed(x) ~ moving(x + flow(x))``.

    Farneback (2003) fits quadratic polynomials to each neighbourhood and solves for the shift in closed form,
    so its answer moves smoothly with its input. DIS (Kroeger et al. 2016), a little more accurate here (0.040
    against 0.047 px median at 960x1280), searches patches and is not smooth: the same studio shot as PNG and
    as a q95 JPEG moved its refit by up to 0.07 px on 480x640 portraits (Farneback: at most 0.03 px; the issue
    allows 0.05).
    """

    def to_8bit(image: np.ndarray) -> np.ndarray:
        return np.clip(image * _GAIN + 128.0, 0, 255).astype(np.uint8)

    return cv2.calcOpticalFlowFarneback(to_8bit(fixed), to_8bit(moving), None, pyr_scale=0.5, levels=3,
                                        winsize=_WINDOW, iterations=3, poly_n=5, poly_sigma=1.1, flags=0)


def field_affine(fixed: View, moving: View, box: Box, matrix: np.ndarray, translation: np.ndarray, *,
                 degree: int, working_px: float) -> tuple[np.ndarray, np.ndarray] | None:
    """The least-squares affine, uniform over ``box``, of the motion the flow and its smooth field show.

    Parameters
    ----------
    fixed, moving : View
        The flash shot around ``box`` (with some context) and the studio shot around where ``matrix`` and
        ``translation`` put it, at about the same scale.
    box : Box
        The face's square in the flash shot, full-resolution pixels.
    matrix, translation : ndarray, shapes (2, 2) and (2,)
        The search's affine, ``studio = matrix @ flash + translation``.
    degree : int
        Degree of the polynomial field.
    working_px : float
        Full-resolution pixels per working pixel (the search's last level): the unit of the scatter limit, so
        that views upsampled for a small face are held to the same limit.

    Returns
    -------
    (matrix, translation) or None
        The refitted affine, full-resolution pixels; None when the square is too small in the view, or fewer
        than half of its flow vectors agree with a smooth field, or they scatter about it by more than
        ``_MAX_SCATTER`` working pixels (the flow could not follow the two lightings: the search's result
        stands).
    """
    i0, j0, i1, j1 = fixed.index_box(box)
    if min(i1 - i0, j1 - j0) < 16:
        return None
    # The flow is computed on the square and a margin (its windows and pyramid need one), not the whole view.
    h, w = fixed.shape
    x0, y0, x1, y1 = max(0, i0 - _MARGIN), max(0, j0 - _MARGIN), min(w, i1 + _MARGIN), min(h, j1 + _MARGIN)
    # Pixel i of that crop is the flash point kf * (i + x0) + of; the studio point matrix @ that + translation
    # is moving pixel (point - om) / km: one affine from crop pixels to moving pixels.
    kf, km = fixed.scale, moving.scale
    first = fixed.origin + kf * np.array([x0, y0])
    a = (matrix * kf[None, :]) / km[:, None]
    b = (matrix @ first + translation - moving.origin) / km
    warped = cv2.warpAffine(moving.normalised, np.hstack([a, b[:, None]]), (x1 - x0, y1 - y0),
                            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    flow = _flow(np.ascontiguousarray(fixed.normalised[y0:y1, x0:x1]), warped)
    flow = flow[j0 - y0:j1 - y0:_STRIDE, i0 - x0:i1 - x0:_STRIDE].reshape(-1, 2).astype(np.float64)
    rows, cols = np.mgrid[j0:j1:_STRIDE, i0:i1:_STRIDE]
    centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
    half = np.array([(box[2] - box[0]) / 2, (box[3] - box[1]) / 2])
    u = (cols.ravel() * kf[0] + fixed.origin[0] - centre[0]) / half[0]
    v = (rows.ravel() * kf[1] + fixed.origin[1] - centre[1]) / half[1]
    design = _monomials(u, v, degree)
    columns = np.ascontiguousarray(design.T)
    stacked = np.hstack([design, flow])
    weights = np.ones(len(flow))
    count = design.shape[1]
    for _ in range(_ROUNDS):
        # Normal equations (15 unknowns, a well-conditioned basis on [-1, 1]) by einsum, which stays off BLAS:
        # lstsq and matmul on these 20000 x 15 arrays took 10-70 ms a round where BLAS threads wait for a busy
        # core (einsum: 2-8 ms).
        normal = np.einsum("in,n,nj->ij", columns, weights, stacked)
        coefficients = np.linalg.solve(normal[:, :count], normal[:, count:])
        residual = np.linalg.norm(flow - np.einsum("nk,kj->nj", design, coefficients), axis=1)
        sigma = 1.4826 * float(np.median(residual[weights > 0])) + 1e-6
        z = residual / (_TUKEY * sigma)
        weights = np.where(z < 1.0, (1.0 - z**2) ** 2, 0.0)
    inliers = float(np.mean(weights > 0))
    scatter = sigma * float(kf.max()) / working_px
    log.debug("face field: %.0f %% of the flow agrees with a smooth field, scattered by %.3f working px",
              100 * inliers, scatter)
    if inliers < _MIN_INLIERS or scatter > _MAX_SCATTER:
        log.debug("face field refused")
        return None
    # The field (view pixels of flash coordinates, so times kf for full-resolution pixels) on a uniform grid.
    cells = (np.arange(_GRID) + 0.5) / _GRID * 2.0 - 1.0
    gu, gv = (g.ravel() for g in np.meshgrid(cells, cells))
    points = centre + np.column_stack([gu, gv]) * half
    shift = np.einsum("nk,kj->nj", _monomials(gu, gv, degree), coefficients) * kf
    solution, *_ = np.linalg.lstsq(np.hstack([points, np.ones((len(points), 1))]), shift, rcond=None)
    # studio(p) = matrix @ (p + B p + c) + translation: the search's affine after the flash-side correction.
    correction, offset = solution[:2].T, solution[2]
    return matrix @ (np.eye(2) + correction), matrix @ offset + translation
