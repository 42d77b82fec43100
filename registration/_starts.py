"""First estimates the optimiser starts from: matched face landmarks, matched SIFT features, the image centres.

Mutual information only converges from within a few pixels (at its scale) of an optimum, and has several; the
registration therefore tries several starts and keeps the one the metric prefers (:mod:`._search`). Each start
here is an affine ``x -> M x + t`` in full-resolution pixels (flash point to studio point).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from acquisition.faces import FaceBox
from acquisition.pixels import local_contrast

from ._transform import decompose
from ._views import View

__all__ = ["Face", "Start", "feature_starts", "geometry_start", "landmark_start", "turned"]

_FEATURE_SIGMA_PX = 8.0


@dataclass(frozen=True)
class Face:
    """A face found in one shot: its box and dlib's 68 landmarks (full-resolution pixels)."""

    box: FaceBox
    landmarks: dict[str, np.ndarray]

    @property
    def points(self) -> np.ndarray:
        return np.concatenate([self.landmarks[name] for name in sorted(self.landmarks)], axis=0)


@dataclass(frozen=True)
class Start:
    """A candidate transform ``studio = matrix @ flash + translation``, where it came from, (feature-matched
    starts) how many matched features agree with it, and whether it is a ``fallback``: optimised only when the
    other starts found nothing clearly better than the image centres (:func:`._search.search`)."""

    name: str
    matrix: np.ndarray
    translation: np.ndarray
    support: int = 0
    fallback: bool = False


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


def landmark_start(flash_faces: list[Face], studio_faces: list[Face], size_ratio: float
                   ) -> tuple[Start, Face, Face] | None:
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
                best = (relative, Start("landmarks", matrix, translation), ff, sf)
    return None if best is None else best[1:]


def geometry_start(flash_shape: tuple[int, ...], studio_shape: tuple[int, ...]) -> Start:
    """The image centres aligned, the studio shot's size ratio as the scale (a tripod: no motion)."""
    fh, fw = flash_shape[:2]
    sh, sw = studio_shape[:2]
    matrix = np.diag([sw / fw, sh / fh])
    centre_f = np.array([(fw - 1) / 2, (fh - 1) / 2])
    centre_s = np.array([(sw - 1) / 2, (sh - 1) / 2])
    return Start("geometry", matrix, centre_s - matrix @ centre_f)


def turned(start: Start, angle_deg: float, centre: np.ndarray) -> Start:
    """``start`` composed with a turn of the flash frame by ``angle_deg`` about ``centre``."""
    a = math.radians(angle_deg)
    turn = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    centre = np.asarray(centre, dtype=np.float64)
    return Start(f"{start.name}{angle_deg:+g}deg", start.matrix @ turn,
                 start.matrix @ (centre - turn @ centre) + start.translation)


def _keypoints(view: View, detector: cv2.SIFT) -> tuple[list, np.ndarray | None]:
    # A wider normalisation than the metric's, with a low floor: SIFT wants contrast everywhere.
    normalised = local_contrast(view.lum, _FEATURE_SIGMA_PX, eps=1e-4)
    image = np.clip(normalised * 40.0 + 128.0, 0, 255).astype(np.uint8)
    return detector.detectAndCompute(image, None)


def feature_starts(flash: View, studio: View, *, features: int, ratios: tuple[float, ...],
                   max_turn_deg: float = 20.0, max_size_ratio: float = 1.4, min_inliers: int = 6) -> list[Start]:
    """Affine and similarity fits (RANSAC) to SIFT matches between two views of the same scale.

    Where no face gives landmarks, matched features find the scene's motion from anywhere in the frame (the
    image centres only converge within a few degrees). SIFT runs on the normalised luminance, so a flash's
    fall-off does not decide which features are found; matches must pass Lowe's ratio test and agree with a
    plausible motion of the pair (keypoint orientations within ``max_turn_deg``, sizes within
    ``max_size_ratio``), which keeps most of the wrong ones out before RANSAC. One start per ratio and model,
    most permissive first; none when too few features match.
    """
    detector = cv2.SIFT_create(nfeatures=features)
    kf, df = _keypoints(flash, detector)
    ks, ds = _keypoints(studio, detector)
    if df is None or ds is None or len(kf) < 2 or len(ks) < 2:
        return []
    pairs = [m for m in cv2.BFMatcher(cv2.NORM_L2).knnMatch(df, ds, k=2) if len(m) == 2]
    plausible = []
    for best, second in pairs:
        a, b = kf[best.queryIdx], ks[best.trainIdx]
        turn = (b.angle - a.angle + 180.0) % 360.0 - 180.0
        if abs(turn) <= max_turn_deg and 1 / max_size_ratio < b.size / a.size < max_size_ratio:
            plausible.append((best, second.distance))
    starts = []
    for ratio in ratios:
        good = [m for m, second in plausible if m.distance < ratio * second]
        if len(good) < min_inliers:
            continue
        src = np.float32([kf[m.queryIdx].pt for m in good]) * flash.scale + flash.origin
        dst = np.float32([ks[m.trainIdx].pt for m in good]) * studio.scale + studio.origin
        threshold = 2.0 * flash.step_px
        for name, fit in (("affine", cv2.estimateAffine2D), ("similarity", cv2.estimateAffinePartial2D)):
            forward, inliers = fit(src, dst, method=cv2.RANSAC, ransacReprojThreshold=threshold, maxIters=4000,
                                   confidence=0.999)
            if forward is None or inliers is None or int(inliers.sum()) < min_inliers:
                continue
            starts.append(Start(f"features-{name}-{ratio:g}", forward[:, :2].astype(np.float64),
                                forward[:, 2].astype(np.float64), int(inliers.sum())))
    return starts
