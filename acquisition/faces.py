"""Face boxes and landmarks, defined once for every stage (face_recognition / dlib).

The virtual studio places flash highlights on landmarks, registration starts from matched landmarks and
checks blinks, the dataset builder crops on the face box and ``prep enhance`` finds the face to relight.
Detection runs on a downscaled copy (HOG on 12 MP would take seconds) and coordinates are mapped back to full
resolution with the pixel-centre convention used everywhere: x right, y down, origin at the centre of the
top-left pixel.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Literal

import cv2
import numpy as np

from .errors import PrepError

__all__ = ["FaceBox", "detect_faces", "eye_aspect_ratio", "face_landmarks", "load_face_recognition",
           "to_uint8"]

INSTALL_HINT = ("install it without its dlib source build: pip install dlib-bin face-recognition-models "
                "'setuptools<81' && pip install --no-deps face_recognition==1.3.0")


@cache
def load_face_recognition() -> ModuleType:
    """Import face_recognition, or raise a :class:`PrepError` with the one-line fix."""
    from PIL import ImageFile

    truncated = ImageFile.LOAD_TRUNCATED_IMAGES
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # pkg_resources deprecation in face_recognition_models
            import face_recognition
    except ImportError as exc:  # also catches a missing dlib or pkg_resources
        raise PrepError(f"face_recognition is not installed ({exc})", hint=INSTALL_HINT) from exc
    finally:
        # face_recognition's import sets PIL's LOAD_TRUNCATED_IMAGES = True for the whole process, after which
        # read_image would silently accept a truncated JPEG (grey bottom half) instead of raising.
        ImageFile.LOAD_TRUNCATED_IMAGES = truncated
    return face_recognition


@dataclass(frozen=True)
class FaceBox:
    """A face rectangle in full-resolution pixel coordinates (edges, not centres, of the outer pixels)."""

    left: float
    top: float
    right: float
    bottom: float

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def center(self) -> tuple[float, float]:
        """(x, y) of the box centre."""
        return ((self.left + self.right) / 2, (self.top + self.bottom) / 2)

    def corners(self) -> np.ndarray:
        """The four corners as a (4, 2) array of (x, y)."""
        return np.array([[self.left, self.top], [self.right, self.top], [self.right, self.bottom],
                         [self.left, self.bottom]], dtype=np.float64)

    def scaled(self, factor: float) -> FaceBox:
        """The box grown (or shrunk) by ``factor`` about its centre."""
        cx, cy = self.center
        hw, hh = self.width * factor / 2, self.height * factor / 2
        return FaceBox(cx - hw, cy - hh, cx + hw, cy + hh)

    def iou(self, other: FaceBox) -> float:
        """Intersection over union with ``other`` (0 when disjoint)."""
        w = max(0.0, min(self.right, other.right) - max(self.left, other.left))
        h = max(0.0, min(self.bottom, other.bottom) - max(self.top, other.top))
        inter = w * h
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0


def to_uint8(image: np.ndarray) -> np.ndarray:
    """An RGB image as ``uint8`` (16-bit shifted down, floats in [0, 1] scaled)."""
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return (image >> 8).astype(np.uint8)
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _downscaled(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    image = to_uint8(image)
    scale = max(image.shape[:2]) / max_side
    if scale <= 1.0:
        return np.ascontiguousarray(image), 1.0
    size = (max(1, round(image.shape[1] / scale)), max(1, round(image.shape[0] / scale)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return small, image.shape[1] / size[0]


def detect_faces(image: np.ndarray, *, model: Literal["hog", "cnn"] = "hog", max_side: int = 800,
                 upsample: int = 1) -> list[FaceBox]:
    """Find faces; largest first.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3)
        RGB, any dtype :func:`to_uint8` takes.
    model : {"hog", "cnn"}
        dlib's HOG detector (fast, default) or its CNN (about 100x slower on CPU, finds more profiles).
    max_side : int
        The image is downscaled so its longer side is at most this many pixels before detection.
    upsample : int
        How many times dlib upsamples the (downscaled) image to find small faces.

    Returns
    -------
    list of FaceBox
        In full-resolution coordinates, sorted by decreasing area.
    """
    if model not in ("hog", "cnn"):
        raise ValueError(f"model must be 'hog' or 'cnn', not {model!r}")
    fr = load_face_recognition()
    small, scale = _downscaled(image, max_side)
    found = fr.face_locations(small, number_of_times_to_upsample=upsample, model=model)
    boxes = [FaceBox(left * scale, top * scale, right * scale, bottom * scale)
             for top, right, bottom, left in found]
    return sorted(boxes, key=lambda b: b.area, reverse=True)


def face_landmarks(image: np.ndarray, boxes: list[FaceBox], *, max_side: int = 800) -> list[dict[str, np.ndarray]]:
    """dlib's 68 landmarks of each face, grouped as face_recognition names them.

    Returns
    -------
    list of dict
        One per box: ``{"chin": (17, 2), "left_eye": (6, 2), ...}``, each an array of (x, y) in
        full-resolution pixel coordinates (pixel-centre convention).
    """
    fr = load_face_recognition()
    small, scale = _downscaled(image, max_side)
    locations = [(round(b.top / scale), round(b.right / scale), round(b.bottom / scale), round(b.left / scale))
                 for b in boxes]
    results = fr.face_landmarks(small, face_locations=locations, model="large")
    return [{name: (np.asarray(points, dtype=np.float64) + 0.5) * scale - 0.5 for name, points in marks.items()}
            for marks in results]


def eye_aspect_ratio(eye: np.ndarray) -> float:
    """Soukupova and Cech's eye aspect ratio of six eye landmarks: ~0.3 open, < ~0.2 closed."""
    eye = np.asarray(eye, dtype=np.float64)
    vertical = np.linalg.norm(eye[1] - eye[5]) + np.linalg.norm(eye[2] - eye[4])
    horizontal = np.linalg.norm(eye[0] - eye[3])
    return float(vertical / (2.0 * horizontal)) if horizontal > 0 else 0.0
