"""``prep enhance``: a flash selfie of any size in, a studio portrait at the same full resolution out.

The network sees what it was trained on: the wide square around each face (``wide_factor`` x the face box, from
the checkpoint's dataset parameters) at the training size, bilaterally filtered. What it predicts for the
bilateral encoding is a *smooth* lighting difference ``2y - 1``; smooth means it survives upsampling, so it is
resized to the crop's full resolution and taken off the full-resolution photo (``pred = x - 2y + 1``, eq. 2):
every hair and pore of the 12 MP original stays. The output keeps what the input carries (colour profile, EXIF,
alpha, grey, bit depth, JPEG tables: :func:`acquisition.imageio.write_photo`).

Where the change is applied (``paste``):

* ``subject`` (default): through a soft matte of the person (face, hair, shoulders; GrabCut seeded from the face
  box, :func:`acquisition.silhouette.subject_matte`). The background keeps its pixels bit for bit, so no edge
  of the square the network saw can show; where the person continues past the square (the torso) the change
  fades out over ``REACH_FRACTION`` x its side, beyond it.
* ``crop``: over the square, feathered over its outer ``FEATHER_FRACTION``: the background inside the square
  changes too (a lighter or darker square around the head, as before this option existed).

Several faces (``faces="all"``, the default) are each framed, predicted and pasted through their own weight;
where two weights overlap the changes are averaged by weight, never added. Detections that overlap a larger
face, and those dlib scores as not face-like (a badge, a print on clothes; it can be found larger than the face
above it), are left out.

Memory: the change is applied band by band (:data:`BAND_PIXELS`), the network and the mattes work on small
copies, so a photo costs its decoded size about twice (input and output; in place when the decoder's array is
writable) plus a fixed few hundred MB, whatever the size of the face.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import cv2
import numpy as np
import torch

from acquisition.faces import FaceBox, default_min_face_px, detect_faces, face_scores, to_uint8
from acquisition.imageio import IMAGE_EXTENSIONS, read_photo, write_photo
from acquisition.silhouette import subject_matte

from ._checkpoint import load_model
from ._device import resolve_device
from ._loss import decode_prediction
from .errors import TrainingError

__all__ = ["FACE_CHOICES", "PASTES", "EnhanceResult", "Enhancer", "border_step", "enhance", "feather_mask",
           "framing_square"]

log = logging.getLogger(__name__)

#: Width of the feathered edge of the ``crop`` paste, as a fraction of the crop's side (the face sits well inside).
FEATHER_FRACTION = 0.125
#: How far past the crop's edge the change fades out on the subject (``subject`` paste), as a fraction of its side.
REACH_FRACTION = 0.25
_COARSE = 16  # cells per side of the blurred change that continues past the square
#: Longest side of the copy the subject matte is computed on (then resized to the photo's resolution) ...
MATTE_SIDE = 768
#: ... and GrabCut's own resolution in it: finer than the virtual studio's (a portrait of known framing), since a
#: dark hat or hair against a dark background is otherwise cut off, and the cut shows as a step of the change.
MATTE_WORK_SIDE, MATTE_FACE_WORK_PX, MATTE_MAX_WORK_SIDE = 384, 96, 512
#: Pixels of the photo processed at once when the change is applied (float32 work: about 16 bytes each), so the
#: memory a photo needs grows with the photo itself only through its decoded copies.
BAND_PIXELS = 1 << 22
#: Largest black-bordered copy of a square leaving the photo made at full resolution (see :func:`_square_at`).
PAD_COPY_BYTES = 64 << 20
#: dlib HOG score a detection needs to be relit (real faces score ~1-2, look-alikes ~0 or below).
MIN_EXTRA_FACE_SCORE = 0.5
#: Where the predicted change is applied.
PASTES: Final = ("subject", "crop")
#: Which faces of a photo are relit.
FACE_CHOICES: Final = ("all", "largest")

Paste = Literal["subject", "crop"]
FaceChoice = Literal["all", "largest"]


@dataclass(frozen=True)
class EnhanceResult:
    """One enhanced photo."""

    input_path: Path | None
    output_path: Path | None
    faces: tuple[FaceBox, ...]  #: the faces that were relit, largest first (full-resolution pixels)
    crops: tuple[tuple[int, int, int], ...]  #: (left, top, side) of each square handed to the network
    shape: tuple[int, int]  #: (height, width) of input and output
    seconds: float

    @property
    def face(self) -> FaceBox:
        """The largest face relit."""
        return self.faces[0]

    @property
    def crop(self) -> tuple[int, int, int]:
        """The square of the largest face; it may exceed the image."""
        return self.crops[0]


def framing_square(face: FaceBox, wide_factor: float) -> tuple[int, int, int]:
    """The square the builder crops: centred on the face box, side ``wide_factor`` x its longer side.

    Same framing as ``datasetgen``'s "wide" samples (unrotated, unmirrored). Returns ``(left, top, side)`` as
    array indices: rows ``top .. top + side - 1`` and columns ``left .. left + side - 1`` (the square may leave
    the image). Coordinates have their origin at the centre of the top-left pixel, so the square's left edge
    ``cx - side / 2`` lies at array index ``cx - side / 2 + 0.5``.
    """
    cx, cy = face.center
    side = max(32, round(wide_factor * max(face.width, face.height)))
    return math.floor(cx - side / 2 + 1.0), math.floor(cy - side / 2 + 1.0), side


def _cosine_ramp(u: np.ndarray) -> np.ndarray:
    """0 at u <= 0, 1 at u >= 1, a raised cosine between (smooth: no edge at either end)."""
    return (0.5 - 0.5 * np.cos(np.pi * np.clip(u, 0.0, 1.0))).astype(np.float32)


def _feather_ramp(start: int, stop: int, side: int, feather: float = FEATHER_FRACTION) -> np.ndarray:
    """Along one axis of a square of ``side``, for indices start..stop-1: 1 inside, a cosine ramp to 0 over the
    outer ``feather`` x side."""
    ramp_px = max(1.0, feather * side)
    u = np.arange(start, stop, dtype=np.float32) + 0.5
    return _cosine_ramp(np.minimum(u, side - u) / ramp_px)


def feather_mask(side: int, feather: float = FEATHER_FRACTION) -> np.ndarray:
    """A side x side float32 mask: 1 inside, a smooth (cosine) ramp to 0 over the outer ``feather`` x side."""
    ramp = _feather_ramp(0, side, side, feather)
    return np.outer(ramp, ramp).astype(np.float32)


def _reach(start: int, stop: int, left: int, side: int, margin: float) -> np.ndarray:
    """Along one axis, for indices start..stop-1: 1 inside [left, left + side), fading to 0 over ``margin`` px."""
    u = np.arange(start, stop, dtype=np.float32) + 0.5
    outside = np.maximum(left - u, u - (left + side))
    return _cosine_ramp(1.0 - outside / max(1.0, margin))


def _square_at(image: np.ndarray, square: tuple[int, int, int], size: int) -> np.ndarray:
    """The square (left, top, side) of ``image`` resized (area average) to ``size`` x ``size``, black where it
    leaves the image.

    Black, as ``prep build-h5`` renders the part of a framing outside the photo: the network never saw
    replicated edges in training, so a close selfie whose wide square leaves the frame gets what it knows. The
    black border is added at full resolution while that copy stays small (:data:`PAD_COPY_BYTES`); beyond, the
    part inside the photo is resized on its own and placed on a black square (the border then falls to the
    nearest pixel of the small square), so a close selfie of 100 MP never costs a padded copy larger than itself.
    """
    left, top, side = square
    h, w = image.shape[:2]
    x0, y0, x1, y1 = max(0, left), max(0, top), min(w, left + side), min(h, top + side)
    if x0 >= x1 or y0 >= y1:
        raise ValueError("the crop square does not meet the image")
    inner = image[y0:y1, x0:x1]
    pad = ((y0 - top, top + side - y1), (x0 - left, left + side - x1), (0, 0))
    if not any(p for axis in pad for p in axis):
        return cv2.resize(inner, (size, size), interpolation=cv2.INTER_AREA)
    if side * side * image.shape[2] * image.itemsize <= PAD_COPY_BYTES:
        return cv2.resize(np.pad(inner, pad, mode="constant"), (size, size), interpolation=cv2.INTER_AREA)
    k = size / side
    sx0, sy0 = round((x0 - left) * k), round((y0 - top) * k)
    sx1, sy1 = max(sx0 + 1, round((x1 - left) * k)), max(sy0 + 1, round((y1 - top) * k))
    small = np.zeros((size, size, image.shape[2]), image.dtype)
    small[sy0:sy1, sx0:sx1] = cv2.resize(inner, (sx1 - sx0, sy1 - sy0), interpolation=cv2.INTER_AREA)
    return small


def _distinct_faces(faces: Sequence[FaceBox]) -> list[FaceBox]:
    """Largest first, without the boxes that overlap a larger one (one face found twice, or a face in a face)."""
    kept: list[FaceBox] = []
    for face in sorted(faces, key=lambda b: b.area, reverse=True):
        cx, cy = face.center
        if not any(face.iou(k) > 0.3 or (k.left <= cx <= k.right and k.top <= cy <= k.bottom) for k in kept):
            kept.append(face)
    return kept


def _region_matte(image: np.ndarray, region: tuple[int, int, int, int], face: FaceBox, others: Sequence[FaceBox],
                  *, top_is_background: bool) -> np.ndarray:
    """The subject matte of ``face`` over ``region`` (x0, y0, x1, y1) of the photo, on a copy of at most
    ``MATTE_SIDE`` px (:func:`_band_of` resamples it, bilinear, band by band: the matte is smooth at that scale,
    and its soft edge then costs nothing on a 12 MP photo).

    Everything outside the person's head-and-shoulders shape seeds GrabCut as surely background
    (``outside_is_background``): a busy backdrop beside the person (a flag, a shelf) is then learnt as
    background instead of being relit with the subject.
    """
    x0, y0, x1, y1 = region
    crop = image[y0:y1, x0:x1]
    f = min(1.0, MATTE_SIDE / max(crop.shape[:2]))
    if f < 1.0:  # resized in its own dtype first: no full-size 8-bit copy of a 16-bit photo
        crop = cv2.resize(crop, (max(8, round(crop.shape[1] * f)), max(8, round(crop.shape[0] * f))),
                          interpolation=cv2.INTER_AREA)
    rgb = to_uint8(crop)
    fx, fy = rgb.shape[1] / (x1 - x0), rgb.shape[0] / (y1 - y0)

    def local(box: FaceBox) -> FaceBox:
        return FaceBox((box.left - x0) * fx, (box.top - y0) * fy, (box.right - x0) * fx, (box.bottom - y0) * fy)

    return subject_matte(rgb, local(face), others=[local(o) for o in others], top_is_background=top_is_background,
                         outside_is_background=True, work_side=MATTE_WORK_SIDE,
                         min_face_work_px=MATTE_FACE_WORK_PX, max_work_side=MATTE_MAX_WORK_SIDE)


def _band_of(small: np.ndarray, region: tuple[int, int, int, int], band: tuple[int, int, int, int]) -> np.ndarray:
    """``small`` (a map of ``region``, x0 y0 x1 y1, at its own resolution) resampled bilinearly onto ``band``, a
    part of the region in photo pixels (pixel centres map as ``cv2.resize`` maps them)."""
    x0, y0, x1, y1 = region
    bx0, by0, bx1, by1 = band
    kx, ky = small.shape[1] / (x1 - x0), small.shape[0] / (y1 - y0)
    to_small = np.array([[kx, 0.0, (bx0 - x0 + 0.5) * kx - 0.5], [0.0, ky, (by0 - y0 + 0.5) * ky - 0.5]])
    return cv2.warpAffine(small, to_small, (bx1 - bx0, by1 - by0), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def border_step(original: np.ndarray, enhanced: np.ndarray, crop: tuple[int, int, int],
                background: np.ndarray) -> float:
    """How much the change steps across a crop's border on background pixels: the visible edge of a paste.

    The mean change ``enhanced - original`` over the background pixels of a band just inside the square and of
    a band just outside it, each ``FEATHER_FRACTION`` x its side wide (the width of the ``crop`` paste's ramp),
    all channels together; the result is their absolute difference, in units of the full range (1/255 is one
    8-bit level).

    Parameters
    ----------
    original, enhanced : ndarray, shape (H, W, C)
        Same shape and dtype (uint8 or uint16).
    crop : (left, top, side)
        The square, as :func:`framing_square` gives it.
    background : ndarray, shape (H, W), bool
        Which pixels are background (known by construction of the test photo, not from the matte).

    Raises
    ------
    ValueError
        When a band holds no background pixel.
    """
    left, top, side = crop
    h, w = original.shape[:2]
    band = max(1, round(FEATHER_FRACTION * side))
    ys, xs = np.mgrid[0:h, 0:w]
    # Distance outside the square (positive) or inside it (negative), in pixels, Chebyshev.
    dist = np.maximum.reduce([left - xs, xs - (left + side - 1), top - ys, ys - (top + side - 1)])
    inside = background & (dist <= 0) & (dist > -band)
    outside = background & (dist > 0) & (dist <= band)
    if not inside.any() or not outside.any():
        raise ValueError("no background pixel just inside or just outside the crop's border")
    scale = 255.0 if original.dtype == np.uint8 else 65535.0
    change = enhanced.astype(np.float64) - original.astype(np.float64)
    return float(abs(change[inside].mean() - change[outside].mean()) / scale)


@dataclass(frozen=True, eq=False)
class _Part:
    """One face's contribution: the network's change (S x S x 3) and, for the subject paste, its matte (at most
    ``MATTE_SIDE`` px), both mapped onto ``region`` (x0, y0, x1, y1) of the photo when applied."""

    region: tuple[int, int, int, int]
    square: tuple[int, int, int]
    change: np.ndarray
    matte: np.ndarray | None
    margin: float  #: how far past the square the change reaches on the subject, in pixels


class Enhancer:
    """A loaded network, ready to enhance many photos (``enhance_tree`` loads the checkpoint once).

    Parameters
    ----------
    checkpoint : path
        A ``.pt`` file or a run folder of ``prep train``.
    device : str
        Where the network runs.
    """

    def __init__(self, checkpoint: str | Path, *, device: str = "cpu") -> None:
        self.device = resolve_device(device)
        self.model, meta = load_model(checkpoint, device=self.device)
        self.checkpoint = Path(meta["path"])
        self.encoding = meta["config"].get("encoding", "C")
        params = meta.get("dataset", {})
        self.size = int(meta["config"]["size"])
        self.wide_factor = float(params.get("wide_factor", 2.0))
        # The filter's spatial sigma is in pixels of the shards; at a smaller training size it shrinks alike.
        shard_side = float(params.get("size", self.size))
        self.sigma_s = float(params.get("sigma_s", 16.0)) * self.size / shard_side
        self.sigma_r = float(params.get("sigma_r", 0.1))

    @torch.inference_mode()
    def difference(self, crop: np.ndarray) -> np.ndarray:
        """The predicted ``x - pred`` of a float32 square crop at the training size (S x S x 3)."""
        from datasetgen import bilateral_filter

        x = torch.from_numpy(crop).permute(2, 0, 1).unsqueeze(0).to(self.device)
        inputs = (torch.from_numpy(bilateral_filter(crop, self.sigma_s, self.sigma_r)).permute(2, 0, 1)
                  .unsqueeze(0).to(self.device) if self.encoding == "C" else x)
        y = self.model(inputs).float()
        diff = x - decode_prediction(self.encoding, y, x)
        return diff[0].permute(1, 2, 0).cpu().numpy()

    def find_faces(self, image: np.ndarray, *, faces: FaceChoice = "all") -> list[FaceBox]:
        """The faces :meth:`enhance_array` relights, largest first (see the module's docstring).

        Every detection is scored by dlib (:func:`acquisition.faces.face_scores`) and those below
        :data:`MIN_EXTRA_FACE_SCORE` are left out, the largest included: a badge can be found larger than the
        face it is pinned under. When none passes, the best-scored detection is kept.

        Raises
        ------
        TrainingError
            When no face is found; the hint gives the smallest face searched for and how to search smaller.
        """
        found = _distinct_faces(detect_faces(image))
        if not found:
            smallest = default_min_face_px(image.shape)
            raise TrainingError("no face found", hint=f"give a photo with a face facing the camera; faces narrower "
                                f"than {smallest:.0f} px are not searched for: a smaller one needs --min-face-px "
                                f"(e.g. --min-face-px {max(1, round(smallest / 3))}), which takes longer")
        scores = face_scores(image, found) if len(found) > 1 else [float("inf")]
        for face, score in zip(found, scores, strict=True):
            if score < MIN_EXTRA_FACE_SCORE:
                log.debug("not relit: %s scores %.2f as a face (< %.2f)", face, score, MIN_EXTRA_FACE_SCORE)
        kept = [f for f, score in zip(found, scores, strict=True) if score >= MIN_EXTRA_FACE_SCORE]
        if not kept:
            kept = [found[int(np.argmax(scores))]]
        return kept[:1] if faces == "largest" else kept

    def _predicted_change(self, image: np.ndarray, square: tuple[int, int, int], scale: float) -> np.ndarray:
        """The network's change for one square, at its own S x S size, in units of the full range."""
        small = _square_at(image, square, self.size).astype(np.float32) / scale
        return self.difference(np.ascontiguousarray(small))

    def _resized_change(self, small: np.ndarray, region: tuple[int, int, int, int],
                        square: tuple[int, int, int]) -> np.ndarray:
        """The S x S change resized (bilinear) onto ``region`` (x0, y0, x1, y1) of the photo.

        Inside the square it is the network's; past its edge (where the person continues) it carries on as a
        coarse copy (16 x 16 cells), so the edge's own detail is not smeared into stripes; the two meet over the
        square's outer ``FEATHER_FRACTION``.
        """
        x0, y0, x1, y1 = region
        left, top, side = square
        size, flags = (x1 - x0, y1 - y0), cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP

        def onto_region(grid: np.ndarray) -> np.ndarray:
            k = grid.shape[0] / side  # photo index -> grid pixel centre (a warp with WARP_INVERSE_MAP)
            to_grid = np.array([[k, 0.0, (x0 - left + 0.5) * k - 0.5], [0.0, k, (y0 - top + 0.5) * k - 0.5]])
            return cv2.warpAffine(grid, to_grid, size, flags=flags, borderMode=cv2.BORDER_REPLICATE)

        change = onto_region(small)
        if x0 >= left and y0 >= top and x1 <= left + side and y1 <= top + side:
            return change
        # The blurred copy: the change averaged over cells of 1/16 of the square, interpolated.
        beyond = onto_region(cv2.resize(small, (_COARSE, _COARSE), interpolation=cv2.INTER_AREA))
        ramp = max(1.0, FEATHER_FRACTION * side)
        inner = np.outer(_reach(y0, y1, top + ramp, side - 2 * ramp, ramp),
                         _reach(x0, x1, left + ramp, side - 2 * ramp, ramp))[..., None]
        return change * inner + beyond * (1.0 - inner)

    def enhance_array(self, image: np.ndarray, *, boxes: Sequence[FaceBox] | None = None,
                      faces: FaceChoice = "all", paste: Paste = "subject", out: np.ndarray | None = None,
                      ) -> tuple[np.ndarray, tuple[FaceBox, ...], tuple[tuple[int, int, int], ...]]:
        """Enhance an RGB array; returns (output of the same shape and dtype, faces relit, their squares).

        Memory: besides ``image`` and the output, only the network's squares, the mattes on copies of at most
        ``MATTE_SIDE`` px and one band of :data:`BAND_PIXELS` pixels in float32 are held (a 108 MP photo needs
        its decoded size twice, plus about 200 MB).

        Parameters
        ----------
        image : ndarray, shape (H, W, 3), uint8 or uint16
        boxes : sequence of FaceBox, optional
            The faces to relight (default: found with :meth:`find_faces`).
        faces : {"all", "largest"}
            Relight every face found, or only the largest.
        paste : {"subject", "crop"}
            Apply the change through each person's matte (the background keeps its pixels) or over the
            feathered square (see the module's docstring).
        out : ndarray, optional
            Where the result goes (same shape and dtype); it may be ``image`` itself (each pixel is read before
            it is written). Default: a new array.

        Raises
        ------
        TrainingError
            When no face is found (and none is given).
        """
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype not in (np.uint8, np.uint16):
            raise ValueError(f"expected an H x W x 3 uint8/uint16 image, got {image.shape} {image.dtype}")
        if faces not in FACE_CHOICES:
            raise ValueError(f"faces must be one of {FACE_CHOICES}, not {faces!r}")
        if paste not in PASTES:
            raise ValueError(f"paste must be one of {PASTES}, not {paste!r}")
        if out is not None and (out.shape != image.shape or out.dtype != image.dtype):
            raise ValueError(f"out must be {image.shape} {image.dtype}, got {out.shape} {out.dtype}")
        chosen = list(boxes) if boxes is not None else self.find_faces(image, faces=faces)
        if not chosen:
            raise TrainingError("no face to relight", hint="give a photo with a face facing the camera")
        scale = 255.0 if image.dtype == np.uint8 else 65535.0
        squares = [framing_square(face, self.wide_factor) for face in chosen]
        parts = [part for index in range(len(chosen))
                 if (part := self._part(image, chosen, squares, index, paste, scale)) is not None]
        if out is None:
            out = image.copy()
        elif out is not image:
            out[...] = image
        if parts:
            self._apply(image, out, parts, paste, scale)
        return out, tuple(chosen), tuple(squares)

    def _part(self, image: np.ndarray, chosen: Sequence[FaceBox], squares: Sequence[tuple[int, int, int]],
              index: int, paste: Paste, scale: float) -> _Part | None:
        """One face's predicted change and (subject paste) matte, both small, over its region of the photo."""
        h, w = image.shape[:2]
        left, top, side = squares[index]
        margin = REACH_FRACTION * side if paste == "subject" else 0.0
        m = math.ceil(margin)
        region = (max(0, left - m), max(0, top - m), min(w, left + side + m), min(h, top + side + m))
        if region[0] >= region[2] or region[1] >= region[3]:
            return None
        change = self._predicted_change(image, squares[index], scale)
        matte = None
        if paste == "subject":
            others = [o for j, o in enumerate(chosen) if j != index]
            matte = _region_matte(image, region, chosen[index], others, top_is_background=top - m >= 0)
        return _Part(region, squares[index], change, matte, margin)

    def _apply(self, image: np.ndarray, out: np.ndarray, parts: Sequence[_Part], paste: Paste, scale: float) -> None:
        """Take every face's weighted change off ``image`` into ``out``, one band of rows at a time.

        Where two faces' weights overlap their changes are averaged by weight (the weights add up past 1),
        never added.
        """
        ux0, uy0 = min(p.region[0] for p in parts), min(p.region[1] for p in parts)
        ux1, uy1 = max(p.region[2] for p in parts), max(p.region[3] for p in parts)
        rows = max(1, BAND_PIXELS // (ux1 - ux0))
        for by0 in range(uy0, uy1, rows):
            by1 = min(uy1, by0 + rows)
            total = np.zeros((by1 - by0, ux1 - ux0, 3), np.float32)
            weights = np.zeros((by1 - by0, ux1 - ux0), np.float32)
            for part in parts:
                x0, y0, x1, y1 = part.region
                ry0, ry1 = max(y0, by0), min(y1, by1)
                if ry0 >= ry1:
                    continue
                band = (x0, ry0, x1, ry1)
                left, top, side = part.square
                if part.matte is None:  # the crop paste: the feathered square
                    weight = np.outer(_feather_ramp(ry0 - top, ry1 - top, side),
                                      _feather_ramp(x0 - left, x1 - left, side))
                else:
                    weight = _band_of(part.matte, part.region, band) * np.outer(
                        _reach(ry0, ry1, top, side, part.margin), _reach(x0, x1, left, side, part.margin))
                change = self._resized_change(part.change, band, part.square)
                change *= weight[..., None]
                total[ry0 - by0:ry1 - by0, x0 - ux0:x1 - ux0] += change
                weights[ry0 - by0:ry1 - by0, x0 - ux0:x1 - ux0] += weight
            total /= np.maximum(weights, 1.0)[..., None]
            total *= -scale
            total += image[by0:by1, ux0:ux1]
            out[by0:by1, ux0:ux1] = np.clip(np.rint(total, out=total), 0, scale).astype(image.dtype)


def _output_format_ok(path: Path) -> None:
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        raise ValueError(f"output {path} must end in one of {', '.join(IMAGE_EXTENSIONS)}")


def enhance(checkpoint: str | Path | Enhancer, input_path: str | Path, output_path: str | Path, *,
            device: str = "cpu", faces: FaceChoice = "all", paste: Paste = "subject") -> EnhanceResult:
    """Turn one flash selfie into a studio portrait at its full resolution.

    Parameters
    ----------
    checkpoint : path or Enhancer
        A ``.pt`` file or run folder of ``prep train`` (or an already loaded :class:`Enhancer`).
    input_path : path
        Any photo :func:`acquisition.imageio.read_photo` reads (JPEG, PNG, TIFF, HEIC...); EXIF orientation is
        applied, the output is written upright.
    output_path : path
        Written atomically, in the format its extension names, faithful to the input
        (:func:`acquisition.imageio.write_photo`): its ICC profile, all its EXIF (orientation 1, ``Software``
        noting deepflash), its alpha channel untouched, grey as grey, 16 bits kept in PNG/TIFF (JPEG takes the
        top 8), a JPEG from a JPEG with its quantization tables and chroma subsampling.
    device : str
        Where the network runs.
    faces : {"all", "largest"}
        Relight every face found (each through its own matte), or only the largest.
    paste : {"subject", "crop"}
        Apply the change through the person's matte (the background keeps its pixels) or over the feathered
        square the network saw.

    Returns
    -------
    EnhanceResult

    Raises
    ------
    AcquisitionError
        When the input cannot be read.
    TrainingError
        When no face is found, or the checkpoint cannot be loaded.
    """
    started = time.perf_counter()
    input_path, output_path = Path(input_path), Path(output_path)
    _output_format_ok(output_path)
    if output_path.exists() and output_path.resolve() == input_path.resolve():
        raise TrainingError("the output is the input photo: it would be overwritten", path=output_path,
                            hint="give another output file name")
    enhancer = checkpoint if isinstance(checkpoint, Enhancer) else Enhancer(checkpoint, device=device)
    photo = read_photo(input_path)
    try:  # in place where the decoder's array allows it: a photo of 100 MP is not copied
        out, relit, crops = enhancer.enhance_array(photo.rgb, faces=faces, paste=paste,
                                                   out=photo.rgb if photo.rgb.flags.writeable else None)
    except TrainingError as exc:
        raise TrainingError(exc.message, path=input_path, hint=exc.hint) from exc
    write_photo(output_path, out, like=photo)
    log.info("%s: %d face%s relit -> %s", input_path, len(relit), "" if len(relit) == 1 else "s", output_path)
    return EnhanceResult(input_path, output_path, relit, crops, photo.shape, time.perf_counter() - started)
