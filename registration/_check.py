"""An independent check of the face after registration: is the studio face where the transform says it is?

The registration maximises mutual information; a wrong optimum, a face that changed shape, or a transform
fitted to something else would pass every plausibility test and still put the face a few pixels off. This
check measures the misalignment directly and by other means: it warps the studio shot's face region into the
flash frame with the transform under test, and phase-correlates nine overlapping patches (3 x 3, each half as
wide as the face box grown by half) of the two images' edges (gradient magnitude of the normalised
luminance; OpenCV's ``phaseCorrelate``: the phase of the cross-power spectrum, blind to the lighting's gain
and tone, sub-pixel), after the sharper of the two is blurred to the other's sharpness (otherwise a blurred
shot reads as a shift, and the reason names the blur). The patch shifts, weighted by their correlation peak,
give a least-squares affine of the residual motion, evaluated at the face box corners.

Measured on virtual-studio pairs (subject motion, head turn) and on relit portraits, with the registration's
result and with that result deliberately moved by 1-3 px: the check reads 0.12 px from the true error at the
face box corners in the median (0.36 px at the 90th percentile); at the default limit of 1 working pixel it
flagged none of the pairs within 0.7 px and missed none beyond 1.2 px (``bench/register.py`` prints the
false-flag and miss rates).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import SimpleITK as sitk

from acquisition.faces import FaceBox
from acquisition.pixels import gradient_magnitude, local_contrast
from acquisition.words import beside_limit

from ._config import DEFAULT_CONFIG, RegistrationConfig
from ._transform import matrix_of
from ._views import View

__all__ = ["FaceCheck", "check_face_alignment"]

_GRID = 3  # patches per side
_PATCH = 0.5  # patch side, as a fraction of the checked region
_REGION = 1.5  # the checked region: the face box grown this much (hair, ears and chin give the patches edges)
_MIN_RESPONSE = 0.03


_SIGMAS = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
_MIN_BLUR_PX = 1.5  # a smaller sharpness difference is left alone (see _match_sharpness)


def _sharpness(image: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Mean Laplacian over mean gradient in ``box``: about 1/blur radius, independent of contrast."""
    i0, j0, i1, j1 = box
    lap = np.abs(cv2.Laplacian(image, cv2.CV_32F))[j0:j1, i0:i1].mean()
    return float(lap / (gradient_magnitude(image)[j0:j1, i0:i1].mean() + 1e-6))


def _match_sharpness(a: np.ndarray, b: np.ndarray, box: tuple[int, int, int, int]
                     ) -> tuple[np.ndarray, np.ndarray, float]:
    """Blur the sharper of ``a``/``b`` until it is no sharper than the other, and the Gaussian's sigma in pixels
    (> 0 when ``a`` was the sharper one), 0 when they already match.

    Phase correlation of a sharp and a blurred patch reads a shift where there is none: on virtual-studio pairs
    whose studio shot was blurred by 1.5-2.5 px, a third of the accurate results (true error <= 0.7 working px)
    read over 1 px; matched first, none did, and every result moved by more than 1.5 px was still caught.
    """
    sa, sb = _sharpness(a, box), _sharpness(b, box)
    if max(sa, sb) <= 1.1 * min(sa, sb):
        return a, b, 0.0
    sharper, other, sign = (a, sb, 1.0) if sa > sb else (b, sa, -1.0)
    for sigma in _SIGMAS:
        blurred = cv2.GaussianBlur(sharper, (0, 0), sigma)
        if _sharpness(blurred, box) <= other:
            break
    if sigma < _MIN_BLUR_PX:  # a flash's highlights and hard shadows also read as sharper: not a blur
        return a, b, 0.0
    return (blurred, b, sigma) if sign > 0 else (a, blurred, -sigma)


@dataclass(frozen=True)
class FaceCheck:
    """The independent check's reading.

    Attributes
    ----------
    error_px : float
        Estimated misalignment of the face: RMS over the face box corners of the residual motion, in
        full-resolution pixels.
    scale_px : float
        Full-resolution pixels per pixel of the check's working image (the face box about ``face_side_px``).
    response : float
        Mean phase-correlation peak of the patches (0-1; under ~0.03 the face has too little texture to tell).
    threshold_px : float
        The limit in working-image pixels (``max_face_error_px``).
    studio_blur_px : float
        How much blurrier the studio face is than the flash face (the sigma of the Gaussian that matched their
        sharpness before comparing them, full-resolution pixels; negative when the flash face is the blurrier).
    """

    error_px: float
    scale_px: float
    response: float
    threshold_px: float
    studio_blur_px: float = 0.0

    @property
    def error_view_px(self) -> float:
        """The misalignment in pixels of the check's working image."""
        return self.error_px / self.scale_px

    @property
    def checked(self) -> bool:
        """Whether the face had enough texture for the reading to mean something."""
        return self.response >= _MIN_RESPONSE and math.isfinite(self.error_px)

    @property
    def ok(self) -> bool:
        return self.checked and self.error_view_px <= self.threshold_px

    @property
    def reason(self) -> str:
        """Why the face fails the check, in words (empty when it passes)."""
        if not self.checked:
            return ("the face could not be checked (too little detail to compare: blurred, blank or covered); "
                    "look at it in the contact sheet")
        if self.ok:
            return ""
        shown, limit = beside_limit(self.error_view_px, self.threshold_px)
        reading = (f"the independent check finds the face {self.error_px:.1f} px off after registration "
                   f"({shown} px at the face's working scale, limit {limit})")
        if self.studio_blur_px:
            blurred, other = ("studio", "flash") if self.studio_blur_px > 0 else ("flash", "studio")
            return (f"the {blurred} shot is blurred (about {abs(self.studio_blur_px):.1f} px more than the {other} "
                    f"shot: the subject moved during the exposure or the focus missed) and {reading}: retake the "
                    "pose")
        return (f"{reading}: "
                "the face moved in a way an affine cannot follow, or the registration found a wrong match; look "
                "at it in the contact sheet and retake the pose (or raise prep register --max-face-error if it "
                "looks aligned)")


def check_face_alignment(flash_rgb: np.ndarray, studio_rgb: np.ndarray, transform: sitk.Transform,
                         face_box: FaceBox, *, config: RegistrationConfig = DEFAULT_CONFIG) -> FaceCheck:
    """Measure how far the studio face lies from where ``transform`` puts it (independently of how it was found).

    Parameters
    ----------
    flash_rgb, studio_rgb : ndarray, shape (H, W, 3)
        The two shots, upright (uint8, uint16 or float in [0, 1]).
    transform : sitk.Transform
        Flash point to studio point, full-resolution pixels (an affine: :func:`estimate_affine`'s result or
        ``sitk.ReadTransform`` of a ``transform.tfm``).
    face_box : acquisition.faces.FaceBox
        The face in the flash shot (full-resolution pixels).
    config : RegistrationConfig
        ``face_side_px`` (working scale), ``contrast_sigma_px`` and ``max_face_error_px`` (the limit).

    Returns
    -------
    FaceCheck
        ``ok`` when the face is within ``max_face_error_px`` working pixels; ``reason`` says why not.

    Notes
    -----
    About 30 ms on a 12 MP pair (one core): it reads only the face region. Capture-time checks (issue 17) and
    ``prep register`` call it alike.
    """
    h, w = flash_rgb.shape[:2]
    patched = face_box.scaled(_REGION)
    region = (max(0.0, patched.left), max(0.0, patched.top), min(float(w), patched.right),
              min(float(h), patched.bottom))
    grown = face_box.scaled(1.5 * _REGION)
    scale = max(1.0, max(face_box.width, face_box.height) / config.face_side_px)
    sigma = config.contrast_sigma_px
    flash_view = View.of(flash_rgb, (grown.left, grown.top, grown.right, grown.bottom), scale, sigma)
    matrix, translation = matrix_of(transform)
    rows, cols = flash_view.shape
    gx, gy = np.meshgrid(flash_view.scale[0] * np.arange(cols) + flash_view.origin[0],
                         flash_view.scale[1] * np.arange(rows) + flash_view.origin[1])
    sx = matrix[0, 0] * gx + matrix[0, 1] * gy + translation[0]
    sy = matrix[1, 0] * gx + matrix[1, 1] * gy + translation[1]
    margin = 8 * scale
    studio_view = View.of(studio_rgb, (sx.min() - margin, sy.min() - margin, sx.max() + margin, sy.max() + margin),
                          scale, sigma)
    map_x = ((sx - studio_view.origin[0]) / studio_view.scale[0]).astype(np.float32)
    map_y = ((sy - studio_view.origin[1]) / studio_view.scale[1]).astype(np.float32)
    warped = local_contrast(cv2.remap(studio_view.lum, map_x, map_y, cv2.INTER_LINEAR,
                                      borderMode=cv2.BORDER_REPLICATE), sigma)
    i0, j0, i1, j1 = flash_view.index_box(region)
    size = np.array([(i1 - i0) * _PATCH, (j1 - j0) * _PATCH])
    if size.min() < 8:
        return FaceCheck(math.nan, scale, 0.0, config.max_face_error_px)
    patch_w, patch_h = int(size[0]), int(size[1])
    window = cv2.createHanningWindow((patch_w, patch_h), cv2.CV_32F)
    flash_norm, warped_norm, blur = _match_sharpness(flash_view.normalised, warped, (i0, j0, i1, j1))
    flash_edges, warped_edges = gradient_magnitude(flash_norm), gradient_magnitude(warped_norm)
    points, shifts, weights = [], [], []
    for gi in range(_GRID):
        for gj in range(_GRID):
            x0 = round(i0 + (i1 - i0 - patch_w) * gi / (_GRID - 1))
            y0 = round(j0 + (j1 - j0 - patch_h) * gj / (_GRID - 1))
            a = np.ascontiguousarray(flash_edges[y0:y0 + patch_h, x0:x0 + patch_w])
            b = np.ascontiguousarray(warped_edges[y0:y0 + patch_h, x0:x0 + patch_w])
            (dx, dy), response = cv2.phaseCorrelate(a, b, window)
            points.append([x0 + (patch_w - 1) / 2, y0 + (patch_h - 1) / 2])
            shifts.append([dx, dy])
            weights.append(max(float(response), 1e-6))
    points = np.asarray(points) * flash_view.scale + flash_view.origin
    shifts = np.asarray(shifts) * flash_view.scale
    weights = np.asarray(weights)
    root = np.sqrt(weights)[:, None]
    design = np.hstack([points, np.ones((len(points), 1))])
    solution, *_ = np.linalg.lstsq(design * root, shifts * root, rcond=None)
    corners = face_box.corners()
    residual = np.hstack([corners, np.ones((4, 1))]) @ solution
    error = float(np.sqrt(np.mean(np.sum(residual**2, axis=1))))
    return FaceCheck(error, scale, float(weights.mean()), config.max_face_error_px, blur * scale)
