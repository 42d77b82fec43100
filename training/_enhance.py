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
face, and beyond the largest face those dlib scores as not face-like (a badge, a print on clothes), are left out.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import cv2
import numpy as np
import torch

from acquisition.errors import PrepError
from acquisition.faces import FaceBox, detect_faces, face_scores, to_uint8
from acquisition.folders import check_apart
from acquisition.imageio import IMAGE_EXTENSIONS, read_photo, write_photo
from acquisition.layout import is_inside
from acquisition.runlock import claim_folder
from acquisition.silhouette import subject_matte

from ._checkpoint import load_model
from ._device import resolve_device
from ._loss import decode_prediction
from .errors import TrainingError

__all__ = ["FACE_CHOICES", "PASTES", "EnhanceResult", "EnhanceTreeResult", "Enhancer", "border_step", "enhance",
           "enhance_tree", "feather_mask", "framing_square"]

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
#: dlib HOG score a face beyond the largest needs to be relit (real faces score ~1-2, look-alikes ~0 or below).
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


@dataclass(frozen=True)
class EnhanceTreeResult:
    """A folder of photos: those enhanced, those skipped (output already there) and those that failed."""

    done: tuple[EnhanceResult, ...]
    skipped: tuple[Path, ...]
    failed: tuple[tuple[Path, str], ...]  #: (input file, why) -- unreadable, or no face found


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


def feather_mask(side: int, feather: float = FEATHER_FRACTION) -> np.ndarray:
    """A side x side float32 mask: 1 inside, a smooth (cosine) ramp to 0 over the outer ``feather`` x side."""
    ramp_px = max(1.0, feather * side)
    u = np.arange(side, dtype=np.float32) + 0.5
    ramp = _cosine_ramp(np.minimum(u, side - u) / ramp_px)
    return np.outer(ramp, ramp).astype(np.float32)


def _reach(start: int, stop: int, left: int, side: int, margin: float) -> np.ndarray:
    """Along one axis, for indices start..stop-1: 1 inside [left, left + side), fading to 0 over ``margin`` px."""
    u = np.arange(start, stop, dtype=np.float32) + 0.5
    outside = np.maximum(left - u, u - (left + side))
    return _cosine_ramp(1.0 - outside / max(1.0, margin))


def _crop_padded(image: np.ndarray, left: int, top: int, side: int) -> np.ndarray:
    """The square [left, left+side) x [top, top+side), black where it leaves the image.

    Black, as ``prep build-h5`` renders the part of a framing outside the photo: the network never saw
    replicated edges in training, so a close selfie whose wide square leaves the frame gets what it knows.
    """
    h, w = image.shape[:2]
    x0, y0, x1, y1 = max(0, left), max(0, top), min(w, left + side), min(h, top + side)
    if x0 >= x1 or y0 >= y1:
        raise ValueError("the crop square does not meet the image")
    inner = image[y0:y1, x0:x1]
    pad = ((y0 - top, top + side - y1), (x0 - left, left + side - x1), (0, 0))
    return np.pad(inner, pad, mode="constant") if any(p for axis in pad for p in axis) else inner


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
    """The subject matte of ``face`` over ``region`` (x0, y0, x1, y1) of the photo, at the region's full size.

    Computed on a copy of at most ``MATTE_SIDE`` px and resized (bilinear): the matte is smooth at that scale,
    and its soft edge then costs nothing on a 12 MP photo.
    """
    x0, y0, x1, y1 = region
    rgb = to_uint8(image[y0:y1, x0:x1])
    f = min(1.0, MATTE_SIDE / max(rgb.shape[:2]))
    if f < 1.0:
        rgb = cv2.resize(rgb, (max(8, round(rgb.shape[1] * f)), max(8, round(rgb.shape[0] * f))),
                         interpolation=cv2.INTER_AREA)
    fx, fy = rgb.shape[1] / (x1 - x0), rgb.shape[0] / (y1 - y0)

    def local(box: FaceBox) -> FaceBox:
        return FaceBox((box.left - x0) * fx, (box.top - y0) * fy, (box.right - x0) * fx, (box.bottom - y0) * fy)

    matte = subject_matte(rgb, local(face), others=[local(o) for o in others], top_is_background=top_is_background,
                          work_side=MATTE_WORK_SIDE, min_face_work_px=MATTE_FACE_WORK_PX,
                          max_work_side=MATTE_MAX_WORK_SIDE)
    return cv2.resize(matte, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR) if f < 1.0 else matte


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

        Raises
        ------
        TrainingError
            When no face is found.
        """
        found = _distinct_faces(detect_faces(image))
        if not found:
            raise TrainingError("no face found", hint="give a photo with a face facing the camera")
        if faces == "largest" or len(found) == 1:
            return found[:1]
        scores = face_scores(image, found[1:])
        for face, score in zip(found[1:], scores, strict=True):
            if score < MIN_EXTRA_FACE_SCORE:
                log.debug("not relit: %s scores %.2f as a face (< %.2f)", face, score, MIN_EXTRA_FACE_SCORE)
        return found[:1] + [f for f, s in zip(found[1:], scores, strict=True) if s >= MIN_EXTRA_FACE_SCORE]

    def _predicted_change(self, image: np.ndarray, square: tuple[int, int, int], scale: float) -> np.ndarray:
        """The network's change for one square, at its own S x S size, in units of the full range."""
        left, top, side = square
        crop = _crop_padded(image, left, top, side)
        small = cv2.resize(crop, (self.size, self.size), interpolation=cv2.INTER_AREA).astype(np.float32) / scale
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
                      faces: FaceChoice = "all", paste: Paste = "subject",
                      ) -> tuple[np.ndarray, tuple[FaceBox, ...], tuple[tuple[int, int, int], ...]]:
        """Enhance an RGB array; returns (output of the same shape and dtype, faces relit, their squares).

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
        chosen = list(boxes) if boxes is not None else self.find_faces(image, faces=faces)
        if not chosen:
            raise TrainingError("no face to relight", hint="give a photo with a face facing the camera")
        h, w = image.shape[:2]
        scale = 255.0 if image.dtype == np.uint8 else 65535.0
        squares = [framing_square(face, self.wide_factor) for face in chosen]
        # Each face's change and weight over its region (x0, y0, x1, y1) of the photo.
        parts: list[tuple[tuple[int, int, int, int], np.ndarray, np.ndarray]] = []
        for index, (face, (left, top, side)) in enumerate(zip(chosen, squares, strict=True)):
            small = self._predicted_change(image, (left, top, side), scale)
            margin = REACH_FRACTION * side if paste == "subject" else 0.0
            m = math.ceil(margin)
            x0, y0 = max(0, left - m), max(0, top - m)
            x1, y1 = min(w, left + side + m), min(h, top + side + m)
            if x0 >= x1 or y0 >= y1:
                continue
            change = self._resized_change(small, (x0, y0, x1, y1), (left, top, side))
            if paste == "crop":
                weight = feather_mask(side)[y0 - top:y1 - top, x0 - left:x1 - left]
            else:
                others = [o for j, o in enumerate(chosen) if j != index]
                matte = _region_matte(image, (x0, y0, x1, y1), face, others, top_is_background=top - m >= 0)
                weight = matte * np.outer(_reach(y0, y1, top, side, margin), _reach(x0, x1, left, side, margin))
            parts.append(((x0, y0, x1, y1), change, weight.astype(np.float32)))
        out = image.copy()
        if parts:
            ux0, uy0 = min(p[0][0] for p in parts), min(p[0][1] for p in parts)
            ux1, uy1 = max(p[0][2] for p in parts), max(p[0][3] for p in parts)
            total = np.zeros((uy1 - uy0, ux1 - ux0, 3), np.float32)
            weights = np.zeros((uy1 - uy0, ux1 - ux0), np.float32)
            for (x0, y0, x1, y1), change, weight in parts:
                total[y0 - uy0:y1 - uy0, x0 - ux0:x1 - ux0] += change * weight[..., None]
                weights[y0 - uy0:y1 - uy0, x0 - ux0:x1 - ux0] += weight
            # Overlapping faces: the weighted mean of their changes where the weights add up past 1.
            total /= np.maximum(weights, 1.0)[..., None]
            region = image[uy0:uy1, ux0:ux1].astype(np.float32)
            region -= total * scale
            out[uy0:uy1, ux0:ux1] = np.clip(np.rint(region), 0, scale).astype(image.dtype)
        return out, tuple(chosen), tuple(squares)


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
    try:
        out, relit, crops = enhancer.enhance_array(photo.rgb, faces=faces, paste=paste)
    except TrainingError as exc:
        raise TrainingError(exc.message, path=input_path, hint=exc.hint) from exc
    write_photo(output_path, out, like=photo)
    log.info("%s: %d face%s relit -> %s", input_path, len(relit), "" if len(relit) == 1 else "s", output_path)
    return EnhanceResult(input_path, output_path, relit, crops, photo.shape, time.perf_counter() - started)


def list_photos(in_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """The photos :func:`enhance_tree` will process: images under ``in_dir``, hidden ones and ``out_dir`` left out.

    ``out_dir`` may lie inside ``in_dir`` (``photos/`` → ``photos/studio/``): its files are never taken as input,
    so a re-run does not enhance the previous outputs again.
    """
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if not in_dir.is_dir():
        raise TrainingError("no such input folder", path=in_dir)
    check_apart(in_dir, out_dir, error=TrainingError, output_inside_ok=True, risk="the photos would be overwritten")
    out_resolved = out_dir.resolve()
    return sorted(p for p in in_dir.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                  and not any(part.startswith(".") for part in p.relative_to(in_dir).parts)
                  and out_resolved not in p.resolve().parents)


def enhance_tree(checkpoint: str | Path, in_dir: str | Path, out_dir: str | Path, *, device: str = "cpu",
                 force: bool = False, faces: FaceChoice = "all", paste: Paste = "subject",
                 progress: Callable[[int], None] | None = None) -> EnhanceTreeResult:
    """Enhance every photo under ``in_dir`` into the same relative path under ``out_dir``.

    Unreadable files, photos without a face and symbolic links that leave ``in_dir`` are reported in ``failed``
    (with a message naming the file) and the others go on; outputs that already exist are skipped (a re-run
    resumes) unless ``force``. Hidden files and folders are ignored. ``faces`` and ``paste`` as for
    :func:`enhance`.
    """
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    files = list_photos(in_dir, out_dir)
    with claim_folder(out_dir, error=TrainingError):
        return _enhance_claimed(checkpoint, in_dir, out_dir, files, device=device, force=force, faces=faces,
                                paste=paste, progress=progress)


def _enhance_claimed(checkpoint: str | Path, in_dir: Path, out_dir: Path, files: list[Path], *, device: str,
                     force: bool, faces: FaceChoice, paste: Paste,
                     progress: Callable[[int], None] | None) -> EnhanceTreeResult:
    """:func:`enhance_tree` with the output folder claimed (one run per folder)."""
    enhancer = Enhancer(checkpoint, device=device)
    done: list[EnhanceResult] = []
    skipped: list[Path] = []
    failed: list[tuple[Path, str]] = []
    for path in files:
        target = out_dir / path.relative_to(in_dir)
        if not is_inside(path, in_dir):
            failed.append((path, f"{path}: symbolic link to a file outside {in_dir}; refused"))
        elif target.exists() and not force:
            skipped.append(path)
        else:
            try:
                done.append(enhance(enhancer, path, target, faces=faces, paste=paste))
            except PrepError as exc:
                log.debug("enhance failed: %s", exc)
                failed.append((path, str(exc)))
        if progress is not None:
            progress(1)
    return EnhanceTreeResult(tuple(done), tuple(skipped), tuple(failed))
