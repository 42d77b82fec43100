"""Affine transforms in the toolkit's convention, and their errors against a known ground truth.

A registration transform maps a point of the flash image (fixed, the reference) to the studio image (moving),
in full-resolution pixel units: x right, y down, origin at the centre of the top-left pixel. On disk it is an
ITK transform file (``transform.tfm``) holding a ``sitk.AffineTransform`` with centre (0, 0), so its six
parameters read directly as ``studio = M @ flash + t`` (the ``matrix``/``translation`` of the virtual
studio's ``meta.json``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from acquisition.files import read_text
from acquisition.imageio import read_image

from .errors import RegistrationError

__all__ = ["AffineParts", "affine_from_matrix", "decompose", "face_box_error", "ground_truth_error",
           "matrix_of", "transform_points"]


def affine_from_matrix(matrix: np.ndarray, translation: np.ndarray, *,
                       center: tuple[float, float] = (0.0, 0.0)) -> sitk.AffineTransform:
    """A 2-D ``sitk.AffineTransform`` with ``T(x) = matrix @ x + translation``, stored about ``center``.

    ITK stores ``T(x) = A (x - c) + c + t0``; a centre inside the image keeps the optimiser's parameters
    well conditioned, and the mapping is the same for any centre.
    """
    matrix = np.asarray(matrix, dtype=np.float64).reshape(2, 2)
    translation = np.asarray(translation, dtype=np.float64).reshape(2)
    c = np.asarray(center, dtype=np.float64)
    transform = sitk.AffineTransform(2)
    transform.SetMatrix(matrix.ravel().tolist())
    transform.SetCenter(c.tolist())
    transform.SetTranslation((translation + matrix @ c - c).tolist())
    return transform


def matrix_of(transform: sitk.Transform) -> tuple[np.ndarray, np.ndarray]:
    """``(M, t)`` with ``T(x) = M @ x + t`` for any 2-D transform that is affine (read off three points)."""
    base = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    mapped = transform_points(transform, base)
    t = mapped[0]
    matrix = np.stack([mapped[1] - t, mapped[2] - t], axis=1)
    return matrix, t


def transform_points(transform: sitk.Transform, points: np.ndarray) -> np.ndarray:
    """Map an (N, 2) array of (x, y) points through ``transform``."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return np.array([transform.TransformPoint((float(x), float(y))) for x, y in points], dtype=np.float64)


@dataclass(frozen=True)
class AffineParts:
    """An affine matrix split as ``M = R(rotation) @ [[scale_x, shear * scale_y], [0, scale_y]]``."""

    rotation_deg: float
    scale_x: float
    scale_y: float
    shear: float


def decompose(matrix: np.ndarray) -> AffineParts:
    """Rotation, scales and shear of a 2x2 matrix (QR decomposition, positive scales when det > 0)."""
    m = np.asarray(matrix, dtype=np.float64).reshape(2, 2)
    scale_x = math.hypot(m[0, 0], m[1, 0])
    if scale_x == 0.0:
        return AffineParts(0.0, 0.0, 0.0, 0.0)
    rotation = math.atan2(m[1, 0], m[0, 0])
    cos, sin = math.cos(rotation), math.sin(rotation)
    upper = np.array([[cos, sin], [-sin, cos]]) @ m  # R^T M = [[sx, k], [0, sy]]
    scale_y = float(upper[1, 1])
    shear = float(upper[0, 1] / scale_y) if scale_y != 0.0 else float("inf")
    return AffineParts(math.degrees(rotation), scale_x, scale_y, shear)


def _ground_truth_arrays(ground_truth: dict) -> tuple[np.ndarray, np.ndarray]:
    try:
        matrix = np.asarray(ground_truth["matrix"], dtype=np.float64).reshape(2, 2)
        translation = np.asarray(ground_truth["translation"], dtype=np.float64).reshape(2)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError("ground_truth must be {'matrix': [[a, b], [c, d]], 'translation': [tx, ty]}, "
                         f"got {ground_truth!r}") from exc
    return matrix, translation


def ground_truth_error(transform: sitk.Transform, ground_truth: dict, points: np.ndarray) -> float:
    """RMS distance (pixels) between where ``transform`` and the true mapping send ``points``.

    Parameters
    ----------
    transform : sitk.Transform
        Flash-to-studio mapping in full-resolution pixel units (as :func:`estimate_affine` returns and
        ``transform.tfm`` holds).
    ground_truth : dict
        ``{"matrix": [[a, b], [c, d]], "translation": [tx, ty]}`` with ``studio = matrix @ flash + translation``
        (the virtual studio's ``meta.json`` convention).
    points : ndarray, shape (N, 2)
        Flash-image points (x, y) where the error matters, e.g. the face box corners.

    Returns
    -------
    float
        Root mean square of the distances, in studio-image pixels.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(points) == 0:
        raise ValueError("points is empty; give at least one (x, y) point")
    matrix, translation = _ground_truth_arrays(ground_truth)
    truth = points @ matrix.T + translation
    estimate = transform_points(transform, points)
    return float(np.sqrt(np.mean(np.sum((estimate - truth) ** 2, axis=1))))


def _find(meta: dict, pick: Callable[[dict], object | None]) -> object | None:
    """What ``pick`` finds in a meta.json dict, at the top level or in a nested dict (depth first)."""
    found = pick(meta)
    if found is not None:
        return found
    for value in meta.values():
        if isinstance(value, dict) and (found := _find(value, pick)) is not None:
            return found
    return None


def _ground_truth_here(meta: dict) -> dict | None:
    for key in ("ground_truth_transform", "ground_truth"):
        value = meta.get(key)
        if isinstance(value, dict) and "matrix" in value and "translation" in value:
            return value
    return meta if "matrix" in meta and "translation" in meta else None


def _face_box_here(meta: dict) -> np.ndarray | None:
    value = meta.get("face_box")
    if isinstance(value, list) and len(value) == 4 and all(isinstance(v, (int, float)) for v in value):
        left, top, right, bottom = (float(v) for v in value)
        return np.array([[left, top], [right, top], [right, bottom], [left, bottom]], dtype=np.float64)
    return None


def _find_ground_truth(meta: dict) -> dict | None:
    """The ``{"matrix", "translation"}`` record in a meta.json, at the top level or nested."""
    return _find(meta, _ground_truth_here)  # type: ignore[return-value]


def _find_face_box(meta: dict) -> np.ndarray | None:
    """The corners of the ``face_box`` [left, top, right, bottom] a meta.json records (top level or nested)."""
    return _find(meta, _face_box_here)  # type: ignore[return-value]


def face_box_error(aligned_pose_dir: str | Path, meta_json_path: str | Path) -> float:
    """RMS error (pixels) of a registered pose at the corners of the face box of its flash image.

    Parameters
    ----------
    aligned_pose_dir : str or Path
        ``aligned/<subject>/<pose>``, holding ``flash.png`` and ``transform.tfm``.
    meta_json_path : str or Path
        The pose's ``meta.json`` from the virtual studio, with a ``ground_truth_transform`` record
        ``{"matrix": [[a, b], [c, d]], "translation": [tx, ty]}`` (at the top level or inside ``extra``).

    Returns
    -------
    float
        The error at the four corners of the face box the meta.json records (the region the virtual studio
        fitted its target over), else of the largest face found in the flash image, else of the whole frame.

    Raises
    ------
    RegistrationError
        When a file is missing or the meta.json holds no ground truth.
    """
    folder = Path(aligned_pose_dir)
    tfm = folder / "transform.tfm"
    if not tfm.is_file():
        raise RegistrationError("no transform.tfm here", path=folder, hint="run prep register first")
    meta_path = Path(meta_json_path)
    try:
        meta = json.loads(read_text(meta_path, error=RegistrationError))
    except (OSError, ValueError) as exc:
        raise RegistrationError(f"cannot read this meta.json ({exc})", path=meta_path) from exc
    truth = _find_ground_truth(meta) if isinstance(meta, dict) else None
    if truth is None:
        raise RegistrationError("no ground_truth_transform {matrix, translation} in this meta.json",
                                path=meta_path, hint="only the virtual studio (prep capture --simulate) records one")
    corners = _find_face_box(meta)
    if corners is None:
        from acquisition.faces import detect_faces

        flash = read_image(folder / "flash.png")
        boxes = detect_faces(flash)
        if boxes:
            corners = boxes[0].corners()
        else:
            h, w = flash.shape[:2]
            corners = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.float64)
    return ground_truth_error(sitk.ReadTransform(str(tfm)), truth, corners)
