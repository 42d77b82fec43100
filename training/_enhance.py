"""``prep enhance``: a flash selfie of any size in, a studio portrait at the same full resolution out.

The network sees what it was trained on: the wide square around the face (``wide_factor`` x the face box, from
the checkpoint's dataset parameters) at the training size, bilaterally filtered. What it predicts for the
bilateral encoding is a *smooth* lighting difference ``2y - 1``; smooth means it survives upsampling, so it is
resized to the crop's full resolution and taken off the full-resolution crop (``pred = x - 2y + 1``, eq. 2):
every hair and pore of the 12 MP original stays. The crop is blended back with a feathered mask, so pixels
outside the square are returned bit for bit.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from acquisition.errors import PrepError
from acquisition.faces import FaceBox, detect_faces
from acquisition.folders import check_apart
from acquisition.imageio import IMAGE_EXTENSIONS, read_image, write_image
from acquisition.layout import is_inside
from acquisition.runlock import claim_folder

from ._checkpoint import load_model
from ._device import resolve_device
from ._loss import decode_prediction
from .errors import TrainingError

__all__ = ["EnhanceResult", "EnhanceTreeResult", "Enhancer", "enhance", "enhance_tree", "feather_mask",
           "framing_square"]

log = logging.getLogger(__name__)

#: Width of the feathered edge of the blend, as a fraction of the crop's side (the face sits well inside).
FEATHER_FRACTION = 0.125


@dataclass(frozen=True)
class EnhanceResult:
    """One enhanced photo."""

    input_path: Path | None
    output_path: Path | None
    face: FaceBox  #: the face that was relit (full-resolution pixels)
    crop: tuple[int, int, int]  #: (left, top, side) of the square handed to the network, may exceed the image
    shape: tuple[int, int]  #: (height, width) of input and output
    seconds: float


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


def feather_mask(side: int, feather: float = FEATHER_FRACTION) -> np.ndarray:
    """A side x side float32 mask: 1 inside, a smooth (cosine) ramp to 0 over the outer ``feather`` x side."""
    ramp_px = max(1.0, feather * side)
    u = np.arange(side, dtype=np.float32) + 0.5
    edge = np.minimum(u, side - u) / ramp_px
    ramp = np.clip(edge, 0.0, 1.0)
    ramp = 0.5 - 0.5 * np.cos(np.pi * ramp)
    return np.outer(ramp, ramp).astype(np.float32)


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

    def enhance_array(self, image: np.ndarray, *, face: FaceBox | None = None) -> tuple[np.ndarray, FaceBox,
                                                                                      tuple[int, int, int]]:
        """Enhance an RGB array (uint8 or uint16, H x W x 3); returns (output of the same dtype, face, crop).

        Raises
        ------
        TrainingError
            When no face is found (and none is given).
        """
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype not in (np.uint8, np.uint16):
            raise ValueError(f"expected an H x W x 3 uint8/uint16 image, got {image.shape} {image.dtype}")
        if face is None:
            faces = detect_faces(image)
            if not faces:
                raise TrainingError("no face found", hint="give a photo with a face facing the camera")
            face = faces[0]
        left, top, side = framing_square(face, self.wide_factor)
        scale = 255.0 if image.dtype == np.uint8 else 65535.0
        crop = _crop_padded(image, left, top, side)
        small = cv2.resize(crop, (self.size, self.size), interpolation=cv2.INTER_AREA).astype(np.float32) / scale
        diff = self.difference(np.ascontiguousarray(small))
        h, w = image.shape[:2]
        x0, y0, x1, y1 = max(0, left), max(0, top), min(w, left + side), min(h, top + side)
        # Resize the smooth difference straight onto the visible part of the square: same mapping as resizing
        # it to side x side and slicing, without the off-image part.
        big = cv2.resize(diff, (side, side), interpolation=cv2.INTER_LINEAR)[y0 - top:y1 - top, x0 - left:x1 - left]
        mask = feather_mask(side)[y0 - top:y1 - top, x0 - left:x1 - left]
        region = image[y0:y1, x0:x1].astype(np.float32)
        region -= (big * (mask[..., None] * scale))
        out = image.copy()
        out[y0:y1, x0:x1] = np.clip(np.rint(region), 0, scale).astype(image.dtype)
        return out, face, (left, top, side)


def _output_format_ok(path: Path) -> None:
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        raise ValueError(f"output {path} must end in one of {', '.join(IMAGE_EXTENSIONS)}")


def enhance(checkpoint: str | Path | Enhancer, input_path: str | Path, output_path: str | Path, *,
            device: str = "cpu") -> EnhanceResult:
    """Turn one flash selfie into a studio portrait at its full resolution.

    Parameters
    ----------
    checkpoint : path or Enhancer
        A ``.pt`` file or run folder of ``prep train`` (or an already loaded :class:`Enhancer`).
    input_path : path
        JPEG, PNG or TIFF; EXIF orientation is applied, the output is written upright.
    output_path : path
        Written atomically, in the format its extension names (8-bit JPEG, or PNG/TIFF keeping 16 bits).
    device : str
        Where the network runs.

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
    image = read_image(input_path)
    try:
        out, face, crop = enhancer.enhance_array(image)
    except TrainingError as exc:
        raise TrainingError(exc.message, path=input_path, hint=exc.hint) from exc
    if output_path.suffix.lower() in (".jpg", ".jpeg") and out.dtype != np.uint8:
        out = (out >> 8).astype(np.uint8)
    write_image(output_path, out)
    return EnhanceResult(input_path, output_path, face, crop, image.shape[:2], time.perf_counter() - started)


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
                 force: bool = False, progress: Callable[[int], None] | None = None) -> EnhanceTreeResult:
    """Enhance every photo under ``in_dir`` into the same relative path under ``out_dir``.

    Unreadable files, photos without a face and symbolic links that leave ``in_dir`` are reported in ``failed``
    (with a message naming the file) and the others go on; outputs that already exist are skipped (a re-run
    resumes) unless ``force``. Hidden files and folders are ignored.
    """
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    files = list_photos(in_dir, out_dir)
    with claim_folder(out_dir, error=TrainingError):
        return _enhance_claimed(checkpoint, in_dir, out_dir, files, device=device, force=force, progress=progress)


def _enhance_claimed(checkpoint: str | Path, in_dir: Path, out_dir: Path, files: list[Path], *, device: str,
                     force: bool, progress: Callable[[int], None] | None) -> EnhanceTreeResult:
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
                done.append(enhance(enhancer, path, target))
            except PrepError as exc:
                log.debug("enhance failed: %s", exc)
                failed.append((path, str(exc)))
        if progress is not None:
            progress(1)
    return EnhanceTreeResult(tuple(done), tuple(skipped), tuple(failed))
