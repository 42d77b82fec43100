"""What the lighting needs to know about a portrait: where the face is, its landmarks, the subject's silhouette.

Analysed once per portrait, at the portrait's own (small) resolution, and cached: a session renders each
subject many times, and face detection plus GrabCut cost a few hundred milliseconds.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from ..errors import PrepError
from ..faces import FaceBox, detect_faces, face_landmarks, face_square, to_uint8
from ..silhouette import subject_matte
from ._portraits import Portrait

__all__ = ["FaceFrame", "PortraitAnalysis", "analyse_portrait", "srgb_to_linear"]

log = logging.getLogger(__name__)

_MAP_SIDE = 384  # smooth maps (the portrait's own shading) are computed at most this large
_CACHE_SIZE = 8  # each holds a few work-size layers (~80 MB for a 1536 px portrait); a session needs one
_cache: OrderedDict[tuple[str, int], PortraitAnalysis] = OrderedDict()
_cache_lock = threading.Lock()
_digests: weakref.WeakKeyDictionary[Portrait, str] = weakref.WeakKeyDictionary()


def srgb_to_linear(image_u8: np.ndarray) -> np.ndarray:
    """sRGB ``uint8`` to linear light, ``float32`` in [0, 1] (exact sRGB curve, through a lookup table)."""
    v = np.arange(256, dtype=np.float64) / 255.0
    lut = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4).astype(np.float32)
    return lut[image_u8]


@dataclass(frozen=True)
class FaceFrame:
    """The face geometry the flash effects are placed from, in work-image pixels (x right, y down).

    ``down`` is the unit vector from between the eyes towards the nose (the face's own vertical), so the
    highlights follow a tilted head.
    """

    left_eye: np.ndarray
    right_eye: np.ndarray
    brow_mid: np.ndarray
    nose_tip: np.ndarray
    nose_top: np.ndarray
    face_width: float
    from_landmarks: bool

    @property
    def eye_mid(self) -> np.ndarray:
        return (self.left_eye + self.right_eye) / 2

    @property
    def down(self) -> np.ndarray:
        v = self.nose_tip - self.eye_mid
        n = float(np.hypot(*v))
        return v / n if n > 0 else np.array([0.0, 1.0])

    @property
    def eye_nose(self) -> float:
        return max(float(np.hypot(*(self.nose_tip - self.eye_mid))), 1.0)


@dataclass(frozen=True, eq=False)
class PortraitAnalysis:
    """A portrait prepared for lighting, at work resolution.

    Attributes
    ----------
    linear : ndarray, shape (h, w, 3), float32
        The portrait in linear light.
    scale : float
        Work pixels per portrait pixel (1 unless the portrait was larger than ``max_work_side``).
    face : FaceBox
        The subject's face, in work pixels (a central guess when none was found).
    frame : FaceFrame
        Eyes, brows and nose, from dlib's landmarks (or guessed from the box).
    mask : ndarray, shape (h, w), float32
        The subject's silhouette, 1 on the subject and 0 on the background, with a soft edge of ~1 px.
    shading : ndarray, shape (h, w), float32
        The portrait's own large-scale face shading relative to the face's mean (1 = average), for the flash
        to flatten; 1 outside the subject.
    landmarks : dict or None
        dlib's 68 landmarks grouped by name (``"left_eye"``: (6, 2), ...), in work pixels; None when no face
        was found or landmarks were unavailable.
    square : FaceBox or None
        The face's square from its settled landmarks (:func:`acquisition.faces.face_square`), work pixels: the
        region of the registration's target; None without landmarks.
    digest : str
        Hash of the portrait's pixels: seeds what is generated per subject (its plain backdrop, its room).
    """

    linear: np.ndarray
    scale: float
    face: FaceBox
    frame: FaceFrame
    mask: np.ndarray
    shading: np.ndarray
    landmarks: dict[str, np.ndarray] | None = None
    square: FaceBox | None = None
    digest: str = ""
    _derived: dict[Any, Any] = field(default_factory=dict, repr=False)
    _derived_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def shape(self) -> tuple[int, int]:
        return self.linear.shape[:2]

    def derived(self, key: Any, compute: Callable[[PortraitAnalysis], Any]) -> Any:
        """``compute(self)``, once per ``key`` and analysis (backdrops, closed eyes): cached with the analysis."""
        with self._derived_lock:
            if key not in self._derived:
                self._derived[key] = compute(self)
            return self._derived[key]


def _pick_face(boxes: list[FaceBox]) -> FaceBox | None:
    # Of near-equal boxes take the highest: HOG finds face-like patches on clothes (the astronaut's badge),
    # and a portrait's head sits above its body.
    if not boxes:
        return None
    big = [b for b in boxes if b.area >= 0.8 * boxes[0].area]
    return min(big, key=lambda b: b.top)


def _guessed_face(h: int, w: int) -> FaceBox:
    side = 0.32 * min(h, w)
    cx, cy = (w - 1) / 2, 0.38 * h
    return FaceBox(cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


def _frame_from_landmarks(marks: dict[str, np.ndarray]) -> FaceFrame:
    chin = marks["chin"]
    bridge = marks["nose_bridge"]
    return FaceFrame(left_eye=marks["left_eye"].mean(axis=0), right_eye=marks["right_eye"].mean(axis=0),
                     brow_mid=np.vstack([marks["left_eyebrow"], marks["right_eyebrow"]]).mean(axis=0),
                     nose_tip=bridge[-1].copy(), nose_top=bridge[0].copy(),
                     face_width=float(np.hypot(*(chin[-1] - chin[0]))), from_landmarks=True)


def _frame_from_box(box: FaceBox) -> FaceFrame:
    x, y, w, h = box.left, box.top, box.width, box.height
    return FaceFrame(left_eye=np.array([x + 0.3 * w, y + 0.38 * h]), right_eye=np.array([x + 0.7 * w, y + 0.38 * h]),
                     brow_mid=np.array([x + 0.5 * w, y + 0.25 * h]), nose_tip=np.array([x + 0.5 * w, y + 0.62 * h]),
                     nose_top=np.array([x + 0.5 * w, y + 0.4 * h]), face_width=float(w), from_landmarks=False)


def _face_shading(linear: np.ndarray, mask: np.ndarray, face: FaceBox) -> np.ndarray:
    """Large-scale shading of the portrait's own light over the subject, relative to its mean (1 = average).

    Computed on a copy of at most ``_MAP_SIDE`` pixels (the shading is smooth; blurs of a large portrait at its
    own size would take seconds) and upsampled.
    """
    h, w = mask.shape
    f = min(1.0, _MAP_SIDE / max(h, w))
    size = (max(4, round(w * f)), max(4, round(h * f)))
    lum = cv2.resize(linear @ np.array([0.2126, 0.7152, 0.0722], np.float32), size, interpolation=cv2.INTER_AREA)
    small_mask = cv2.resize(mask, size, interpolation=cv2.INTER_AREA)
    fw = face.width * size[0] / w
    sigma_small, sigma_large = max(1.0, 0.12 * fw), max(2.0, 0.9 * fw)
    small = cv2.GaussianBlur(lum * small_mask, (0, 0), sigma_small) / (
        cv2.GaussianBlur(small_mask, (0, 0), sigma_small) + 1e-4)
    large = cv2.GaussianBlur(lum * small_mask, (0, 0), sigma_large) / (
        cv2.GaussianBlur(small_mask, (0, 0), sigma_large) + 1e-4)
    ratio = (small + 1e-3) / (large + 1e-3)
    # Relative to the face itself (the phone meters on it): flattening must not darken a face that is brighter
    # than the suit or hair around it, only even out its own light.
    fx0, fy0, fx1, fy1 = (round(v * size[0] / w) for v in (face.left, face.top, face.right, face.bottom))
    core = ratio[max(0, fy0):max(fy1, fy0 + 1), max(0, fx0):max(fx1, fx0 + 1)]
    shading = np.clip(ratio / (float(np.median(core)) if core.size else 1.0), 0.25, 4.0)
    if f < 1.0:
        shading = cv2.resize(shading, (w, h), interpolation=cv2.INTER_LINEAR)
    return (mask * shading + (1.0 - mask)).astype(np.float32)


def _key(portrait: Portrait, max_work_side: int) -> tuple[str, int]:
    # By pixel content, so equal portraits share an analysis; hashed once per Portrait object (its pixels are
    # read-only), because hashing a 12 MP portrait costs ~0.1 s per shot.
    digest = _digests.get(portrait)
    if digest is None:
        h = hashlib.blake2b(portrait.image.tobytes(), digest_size=16)
        h.update(repr((portrait.image.shape, portrait.image.dtype.str)).encode())
        digest = _digests[portrait] = h.hexdigest()
    return digest, max_work_side


def analyse_portrait(portrait: Portrait, *, max_work_side: int = 1536) -> PortraitAnalysis:
    """Face, landmarks, silhouette and shading of ``portrait`` (cached by pixel content).

    Parameters
    ----------
    portrait : Portrait
    max_work_side : int
        Portraits with a longer side are downscaled to it first (the lighting is smooth; the final warp
        upsamples anyway).
    """
    key = _key(portrait, max_work_side)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    rgb = to_uint8(portrait.image)
    h0, w0 = rgb.shape[:2]
    scale = min(1.0, max_work_side / max(h0, w0))
    if scale < 1.0:
        rgb = cv2.resize(rgb, (round(w0 * scale), round(h0 * scale)), interpolation=cv2.INTER_AREA)
        scale = rgb.shape[1] / w0
    h, w = rgb.shape[:2]
    try:
        boxes = detect_faces(rgb, max_side=800)
    except PrepError as exc:  # face_recognition missing: a rehearsal still runs
        log.warning("face detection unavailable (%s); placing the face in the middle", exc)
        boxes = []
    face = _pick_face(boxes)
    frame = marks = square = None
    if face is not None:
        try:
            marks = face_landmarks(rgb, [face])[0]
            frame = _frame_from_landmarks(marks)
            square = face_square(rgb, marks)
        except (PrepError, IndexError) as exc:  # landmarks only place the highlights
            log.warning("face landmarks unavailable (%s); guessing them from the face box", exc)
    else:
        log.info("portrait %r: no face found; guessing where it is", portrait.name)
        face = _guessed_face(h, w)
    if frame is None:
        frame = _frame_from_box(face)
    linear = srgb_to_linear(rgb)
    mask = subject_matte(rgb, face)
    analysis = PortraitAnalysis(linear=linear, scale=scale, face=face, frame=frame, mask=mask,
                                shading=_face_shading(linear, mask, face), landmarks=marks, square=square,
                                digest=key[0])
    with _cache_lock:
        _cache[key] = analysis
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return analysis
