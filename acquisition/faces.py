"""Face boxes and landmarks, defined once for every stage (face_recognition / dlib).

The virtual studio places flash highlights on landmarks, registration starts from matched landmarks and
checks blinks, the dataset builder crops on the face box and ``prep enhance`` finds the face to relight.
Detection runs on a downscaled copy (HOG on 12 MP would take seconds) and coordinates are mapped back to full
resolution with the pixel-centre convention used everywhere: x right, y down, origin at the centre of the
top-left pixel. When the copy shows no face, larger copies are searched down to a smallest face size
(``min_face_px``; 2 % of the longer side by default), so a small face in a large photo is still found within a
bounded time.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Final, Literal

import cv2
import numpy as np

from .errors import PrepError
from .interrupts import import_uninterrupted

__all__ = ["DEFAULT_MIN_FACE_FRACTION", "DETECTOR_WINDOW_PX", "MIN_FACE_ENV", "SQUARE_TO_BOX", "FaceBox",
           "default_min_face_px", "detect_faces", "eye_aspect_ratio", "face_landmarks", "face_scores", "face_square",
           "load_face_recognition", "search_sides", "to_uint8"]

#: dlib's HOG and CNN face detectors scan an 80x80 px window: a face smaller than that (halved per upsampling)
#: in the copy searched is not found.
DETECTOR_WINDOW_PX: Final = 80
#: The smallest face searched for by default, as a fraction of the photo's longer side.
DEFAULT_MIN_FACE_FRACTION: Final = 0.02
#: Environment variable giving the smallest face searched for, in pixels, where no ``min_face_px`` is passed.
MIN_FACE_ENV: Final = "DEEPFLASH_MIN_FACE_PX"
#: A detection box is about this fraction of the face width a person would measure (forehead to chin).
BOX_WIDTH_RATIO: Final = 0.75
#: Landmarks are located where the face box is at least this wide (px of the copy or crop searched).
LANDMARK_FACE_PX: Final = 100
#: dlib's detection box is about this much larger than the landmarks' square (:meth:`FaceBox.from_landmarks`):
#: 0.99-1.14 on the virtual studio's faces.
SQUARE_TO_BOX: Final = 1.1

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
            face_recognition = import_uninterrupted("face_recognition")  # dlib's start-up must not be cut
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

    @classmethod
    def from_landmarks(cls, landmarks: Mapping[str, np.ndarray]) -> FaceBox:
        """The face's square from its landmarks: centred halfway between the eyes' midpoint and the mouth's
        centre, twice the eye-to-mouth distance on a side (about 0.9 of dlib's detection box).

        Where a face region must be the same in two pictures of one face (the virtual studio's target and the
        registration that is judged against it), the detection box is too coarse: dlib scans a fixed window
        over a pyramid in 5/6 steps, so its box comes in quantised sizes and places. The same face, detected
        on the portrait and on its 960x1280 and 3120x4160 renderings, gave boxes 6.5-8 % apart; this square
        0.2-1.5 % (eyes and mouth are averages of 6-12 points each), once its landmarks have settled
        (:func:`face_square`).

        Parameters
        ----------
        landmarks : mapping of str to ndarray
            :func:`face_landmarks`'s groups; ``left_eye``, ``right_eye``, ``top_lip`` and ``bottom_lip`` are
            used, (N, 2) arrays of (x, y).
        """
        eyes = (np.mean(landmarks["left_eye"], axis=0) + np.mean(landmarks["right_eye"], axis=0)) / 2
        mouth = np.mean(np.vstack([landmarks["top_lip"], landmarks["bottom_lip"]]), axis=0)
        cx, cy = (eyes + mouth) / 2
        half = float(np.hypot(*(mouth - eyes)))
        return cls(float(cx) - half, float(cy) - half, float(cx) + half, float(cy) + half)

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


def default_min_face_px(shape: tuple[int, ...]) -> float:
    """The smallest face searched for by default, in pixels of an image of this shape.

    ``DEEPFLASH_MIN_FACE_PX`` when set (``prep enhance --min-face-px`` sets it), else
    :data:`DEFAULT_MIN_FACE_FRACTION` of the longer side.

    Raises
    ------
    PrepError
        When the variable holds something that is not a positive number.
    """
    raw = os.environ.get(MIN_FACE_ENV, "").strip()
    if raw:
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if not value > 0:
            raise PrepError(f"{MIN_FACE_ENV}={raw!r} is not a face width in pixels",
                            hint="set it to a positive number such as 100, or unset it")
        return value
    return DEFAULT_MIN_FACE_FRACTION * max(shape[:2])


def search_sides(shape: tuple[int, ...], *, max_side: int = 800, upsample: int = 1,
                 min_face_px: float | None = None) -> list[int]:
    """The longer sides of the copies :func:`detect_faces` searches, in order, until one holds a face.

    The first is ``max_side`` (or the image itself when smaller). dlib finds faces down to its
    :data:`DETECTOR_WINDOW_PX` window, halved per upsampling, in the copy's pixels; while that is larger than
    ``min_face_px`` in the full image, the next copy is twice as large, up to the one where it is not (never
    beyond full resolution). Each step costs about four times the one before, so the smallest face size
    bounds the time spent on a photo without a face.
    """
    long_side = max(shape[:2])
    smallest = min_face_px if min_face_px is not None else default_min_face_px(shape)
    if smallest <= 0:
        raise ValueError(f"min_face_px must be positive, got {min_face_px}")
    window = DETECTOR_WINDOW_PX / 2 ** upsample
    needed = min(long_side, math.ceil(long_side * window / smallest))
    sides = [min(max_side, long_side)]
    while sides[-1] < needed:
        sides.append(min(needed, sides[-1] * 2))
    return sides


def detect_faces(image: np.ndarray, *, model: Literal["hog", "cnn"] = "hog", max_side: int = 800,
                 upsample: int = 1, min_face_px: float | None = None) -> list[FaceBox]:
    """Find faces; largest first.

    Detection starts on a copy whose longer side is ``max_side``; when it finds nothing, larger copies are
    searched (:func:`search_sides`) until a face turns up or faces of ``min_face_px`` would have been found,
    so a small face in a large photo (a 186 px face in a 6000x4000 picture) is found without paying for
    full-resolution detection on every photo.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3)
        RGB, any dtype :func:`to_uint8` takes.
    model : {"hog", "cnn"}
        dlib's HOG detector (fast, default) or its CNN (about 100x slower on CPU, finds more profiles).
    max_side : int
        The first search runs on a copy downscaled so its longer side is at most this many pixels.
    upsample : int
        How many times dlib upsamples each copy to find small faces.
    min_face_px : float, optional
        The smallest face width to search for, in pixels of ``image``; smaller detections are dropped.
        Default: :func:`default_min_face_px` (``DEEPFLASH_MIN_FACE_PX``, else 2 % of the longer side: 120 px
        on a 6000 px photo), which bounds the search of a photo without a face at about 12 times one
        800 px pass, whatever the photo's size.

    Returns
    -------
    list of FaceBox
        In full-resolution coordinates, sorted by decreasing area.
    """
    if model not in ("hog", "cnn"):
        raise ValueError(f"model must be 'hog' or 'cnn', not {model!r}")
    fr = load_face_recognition()
    smallest = min_face_px if min_face_px is not None else default_min_face_px(image.shape)
    pixels = to_uint8(image)
    for side in search_sides(image.shape, max_side=max_side, upsample=upsample, min_face_px=min_face_px):
        small, scale = _downscaled(pixels, side)
        found = fr.face_locations(small, number_of_times_to_upsample=upsample, model=model)
        boxes = [FaceBox(left * scale, top * scale, right * scale, bottom * scale)
                 for top, right, bottom, left in found]
        # dlib's box hugs the features (about 0.8 of the face's width): keep what is close to the limit
        boxes = [box for box in boxes if box.width >= BOX_WIDTH_RATIO * smallest]
        if boxes:
            return sorted(boxes, key=lambda b: b.area, reverse=True)
    return []


def _landmarks_in_crop(fr: ModuleType, image: np.ndarray, box: FaceBox) -> dict[str, np.ndarray]:
    """Landmarks of one small face, on a crop around it at a resolution where the face is well resolved."""
    h, w = image.shape[:2]
    side = 2.0 * max(box.width, box.height)
    cx, cy = box.center
    x0, y0 = max(0, math.floor(cx - side / 2)), max(0, math.floor(cy - side / 2))
    x1, y1 = min(w, math.ceil(cx + side / 2)), min(h, math.ceil(cy + side / 2))
    crop = image[y0:y1, x0:x1]
    factor = max(1.0, box.width / LANDMARK_FACE_PX)
    small, scale = _downscaled(crop, max(1, round(max(crop.shape[:2]) / factor)))
    location = (round((box.top - y0) / scale), round((box.right - x0) / scale), round((box.bottom - y0) / scale),
                round((box.left - x0) / scale))
    marks = fr.face_landmarks(small, face_locations=[location], model="large")[0]
    return {name: (np.asarray(points, dtype=np.float64) + 0.5) * scale - 0.5 + (x0, y0)
            for name, points in marks.items()}


def face_landmarks(image: np.ndarray, boxes: list[FaceBox], *, max_side: int = 800) -> list[dict[str, np.ndarray]]:
    """dlib's 68 landmarks of each face, grouped as face_recognition names them.

    Faces are located on the ``max_side`` copy; a face smaller than :data:`LANDMARK_FACE_PX` there (a small
    face in a large photo) is located on a crop around it instead, at the resolution where it is that large.

    Returns
    -------
    list of dict
        One per box: ``{"chin": (17, 2), "left_eye": (6, 2), ...}``, each an array of (x, y) in
        full-resolution pixel coordinates (pixel-centre convention).
    """
    fr = load_face_recognition()
    pixels = to_uint8(image)
    small, scale = _downscaled(pixels, max_side)
    large = [i for i, b in enumerate(boxes) if b.width / scale >= LANDMARK_FACE_PX or scale == 1.0]
    locations = [(round(b.top / scale), round(b.right / scale), round(b.bottom / scale), round(b.left / scale))
                 for b in (boxes[i] for i in large)]
    results: dict[int, dict[str, np.ndarray]] = {}
    if locations:
        found = fr.face_landmarks(small, face_locations=locations, model="large")
        for i, marks in zip(large, found, strict=True):
            results[i] = {name: (np.asarray(points, dtype=np.float64) + 0.5) * scale - 0.5
                          for name, points in marks.items()}
    for i, box in enumerate(boxes):
        if i not in results:
            results[i] = _landmarks_in_crop(fr, pixels, box)
    return [results[i] for i in range(len(boxes))]


def face_square(image: np.ndarray, landmarks: Mapping[str, np.ndarray], *, max_side: int = 800, rounds: int = 3,
                tolerance: float = 0.02) -> FaceBox:
    """The face's square (:meth:`FaceBox.from_landmarks`), its landmarks predicted again from the square itself
    until it settles.

    dlib's shape predictor starts from the box it is given, and a detection box of the wrong size pulls the
    landmarks with it: from a box 25 % too large (one virtual-studio portrait at 960x1280, detected with
    upsampling) the square came out 10 % off, from one 23 % too large at 480x640 31 % off. Predicted again from
    a box :data:`SQUARE_TO_BOX` times the square, it settled within 2 % of the same face's square in its other
    renderings, in 1-3 rounds. Each round reads a crop around the face at the resolution of the ``max_side``
    copy (on 12 MP a third of a whole-image round's time).

    Parameters
    ----------
    image : ndarray, shape (H, W, 3)
        RGB, any dtype :func:`to_uint8` takes.
    landmarks : mapping of str to ndarray
        :func:`face_landmarks`'s groups for the face, full-resolution pixels.
    max_side : int
        As for :func:`face_landmarks`.
    rounds : int
        At most this many predictions again.
    tolerance : float
        Settled when a round moves the square's corners by at most this fraction of its side.
    """
    square = FaceBox.from_landmarks(landmarks)
    h, w = image.shape[:2]
    factor = max(1.0, max(h, w) / max_side)  # full-resolution pixels per pixel of the max_side copy
    for _ in range(rounds):
        box = square.scaled(SQUARE_TO_BOX)
        around = box.scaled(1.5)
        x0, y0 = max(0, math.floor(around.left)), max(0, math.floor(around.top))
        x1, y1 = min(w, math.ceil(around.right)), min(h, math.ceil(around.bottom))
        if x1 - x0 < 8 or y1 - y0 < 8:
            break
        part = image[y0:y1, x0:x1]
        shifted = FaceBox(box.left - x0, box.top - y0, box.right - x0, box.bottom - y0)
        marks = face_landmarks(part, [shifted], max_side=max(1, round(max(part.shape[:2]) / factor)))[0]
        again = FaceBox.from_landmarks({name: points + np.array([x0, y0]) for name, points in marks.items()})
        moved = float(np.abs(again.corners() - square.corners()).max()) / max(square.width, 1e-6)
        square = again
        if moved <= tolerance:
            break
    return square


def eye_aspect_ratio(eye: np.ndarray) -> float:
    """Soukupova and Cech's eye aspect ratio of six eye landmarks: ~0.3 open, < ~0.2 closed."""
    eye = np.asarray(eye, dtype=np.float64)
    vertical = np.linalg.norm(eye[1] - eye[5]) + np.linalg.norm(eye[2] - eye[4])
    horizontal = np.linalg.norm(eye[0] - eye[3])
    return float(vertical / (2.0 * horizontal)) if horizontal > 0 else 0.0


#: Side in pixels a face is scaled to for :func:`face_scores` (dlib's HOG window is 80 x 80).
_SCORE_FACE_SIDE = 100


def face_scores(image: np.ndarray, boxes: list[FaceBox]) -> list[float]:
    """dlib's HOG detection score of each box: how face-like it is (real faces ~1-2, look-alikes ~0 or below).

    HOG finds face-like patches on clothes, badges and patterns at a score near its threshold (0), real faces
    well above it; :func:`detect_faces` keeps both. Each box is scored on a window of twice its size, scaled so
    the face is ``_SCORE_FACE_SIDE`` px, as the best detection overlapping it (-inf when none is found even
    with the threshold lowered to -1).

    Parameters
    ----------
    image : ndarray, shape (H, W, 3)
        RGB, any dtype :func:`to_uint8` takes.
    boxes : list of FaceBox
        In the image's pixels.

    Returns
    -------
    list of float
        One score per box, dlib's SVM margin (``fhog_object_detector.run``).
    """
    detector = load_face_recognition().api.face_detector
    rgb = to_uint8(image)
    h, w = rgb.shape[:2]
    out = _SCORE_FACE_SIDE * 2
    expected = FaceBox(out / 4, out / 4, 3 * out / 4, 3 * out / 4)
    scores = []
    for box in boxes:
        side = max(box.width, box.height, 1.0)
        cx, cy = box.center
        n = max(1, round(2 * side))
        x0, y0 = round(cx + 0.5 - side), round(cy + 0.5 - side)
        window = np.zeros((n, n, 3), np.uint8)  # black beyond the photo's edge
        sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(w, x0 + n), min(h, y0 + n)
        if sx0 < sx1 and sy0 < sy1:
            window[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = rgb[sy0:sy1, sx0:sx1]
        small = cv2.resize(window, (out, out), interpolation=cv2.INTER_AREA if n > out else cv2.INTER_LINEAR)
        found, values, _ = detector.run(small, 0, -1.0)
        best = [float(v) for r, v in zip(found, values, strict=True)
                if FaceBox(r.left(), r.top(), r.right(), r.bottom()).iou(expected) > 0.3]
        scores.append(max(best, default=float("-inf")))
    return scores
