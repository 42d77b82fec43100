"""The x20 augmentation: rotations about the face-box centre x framings x mirroring, resampled once.

One geometric transform per sample maps full-resolution source pixels to sample pixels; the same transform is
applied to the flash image, the studio image and the valid mask, so the three stay registered.

Pixel convention (as everywhere in the toolkit): x right, y down, origin at the centre of the top-left pixel.
A sample of side S covers a square of side L = max(face width, height) * framing factor centred on the face
box; the face-box centre lands on the sample centre ((S - 1) / 2, (S - 1) / 2). Positive angles turn the
content counter-clockwise on screen. A mirrored sample is exactly the left-right flip of its unmirrored twin.

Anti-aliasing: downscaling a 12 MP photo by ~8x with one bilinear warp would alias badly, and a blur of the
whole photo per sample would be slow. So each framing is first area-averaged (``cv2.INTER_AREA``, the exact box
prefilter for the scale) from a crop around the face straight to the sample's scale, then each rotation is one
bicubic warp at unit scale. Both steps happen once per sample from the original pixels; the unit-scale warp
interpolates without blurring further (no double downscale).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import cv2
import numpy as np

from acquisition.faces import FaceBox

__all__ = ["AugSpec", "aug_table", "render_framing", "sample_matrix"]

FRAMINGS: Final = ("wide", "face")


@dataclass(frozen=True)
class AugSpec:
    """The meaning of one augmentation index (written into each shard as attribute ``aug_table``)."""

    rotation_deg: float
    framing: str  # "wide" (the face box grown by wide_factor) or "face" (the tight face box)
    mirrored: bool

    def as_dict(self) -> dict[str, object]:
        return {"rotation_deg": self.rotation_deg, "framing": self.framing, "mirrored": self.mirrored}


def aug_table(rotations_deg: tuple[float, ...] = (-20.0, -10.0, 0.0, 10.0, 20.0),
              framings: tuple[str, ...] = FRAMINGS, mirror: bool = True) -> list[AugSpec]:
    """Every augmentation, index order: rotation (outer), framing, mirrored (inner).

    With the paper's defaults: index ``(r * 2 + f) * 2 + m`` for rotation r in 0..4 (-20..20 degrees), framing f
    (0 wide, 1 face), m (0 as is, 1 mirrored): 20 samples per pair.
    """
    for framing in framings:
        if framing not in FRAMINGS:
            raise ValueError(f"framing must be one of {FRAMINGS}, not {framing!r}")
    mirrors = (False, True) if mirror else (False,)
    return [AugSpec(float(r), f, m) for r in rotations_deg for f in framings for m in mirrors]


def _side(box: FaceBox, framing: str, wide_factor: float) -> float:
    factor = wide_factor if framing == "wide" else 1.0
    return max(box.width, box.height) * factor


def sample_matrix(box: FaceBox, spec: AugSpec, size: int, *, wide_factor: float = 2.0) -> np.ndarray:
    """The 2x3 affine matrix mapping full-resolution (x, y) to sample (u, v) pixel coordinates."""
    side = _side(box, spec.framing, wide_factor)
    if side <= 0:
        raise ValueError(f"empty face box {box}")
    k = size / side
    theta = math.radians(spec.rotation_deg)
    c, s = math.cos(theta), math.sin(theta)
    a = k * np.array([[c, s], [-s, c]])
    cx, cy = box.center
    centre = (size - 1) / 2
    b = centre - a @ np.array([cx, cy])
    matrix = np.hstack([a, b[:, None]])
    if spec.mirrored:
        matrix = np.array([[-1.0, 0.0, size - 1.0], [0.0, 1.0, 0.0]]) @ np.vstack([matrix, [0.0, 0.0, 1.0]])
    return matrix


def _crop_and_shrink(images: list[np.ndarray], box: FaceBox, side: float, size: int
                     ) -> tuple[list[np.ndarray], np.ndarray]:
    """Crop around the face (room for any rotation) and area-average to the sample scale.

    Returns the shrunk crops and the 2x3 matrix mapping full-resolution coordinates to crop coordinates.
    """
    h, w = images[0].shape[:2]
    k = size / side
    cx, cy = box.center
    half = side * math.sqrt(2) / 2 + 8 / min(k, 1.0)  # any rotation, plus room for the bicubic support
    x0, y0 = max(0, math.floor(cx - half)), max(0, math.floor(cy - half))
    x1, y1 = min(w, math.ceil(cx + half) + 1), min(h, math.ceil(cy + half) + 1)
    if x0 >= x1 or y0 >= y1:
        raise ValueError(f"face box {box} lies outside the {w}x{h} image")
    cw, ch = x1 - x0, y1 - y0
    if k < 1.0:
        dw, dh = max(1, round(cw * k)), max(1, round(ch * k))
        sx, sy = dw / cw, dh / ch
        shrunk = [cv2.resize(im[y0:y1, x0:x1], (dw, dh), interpolation=cv2.INTER_AREA)
                  for im in images]
    else:  # upsampling: no prefilter needed, warp straight from the crop
        sx = sy = 1.0
        shrunk = [np.ascontiguousarray(im[y0:y1, x0:x1]) for im in images]
    # cv2.resize maps pixel centres as v = (x - x0 + 0.5) * s - 0.5
    to_crop = np.array([[sx, 0.0, (0.5 - x0) * sx - 0.5], [0.0, sy, (0.5 - y0) * sy - 0.5]])
    return shrunk, to_crop


def render_framing(flash: np.ndarray, studio: np.ndarray, valid: np.ndarray, box: FaceBox, specs: list[AugSpec],
                   size: int, *, wide_factor: float = 2.0) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Render the unmirrored samples of ``specs`` (all of one framing): (flash, studio, valid) uint8 each.

    ``valid`` is a float32 HxW mask (1 = real studio pixel); the returned mask is uint8 0/1 and is 0 outside
    the source image as well. Mirroring is left to the caller (an exact flip of these arrays).
    """
    framings = {spec.framing for spec in specs}
    if len(framings) != 1 or any(spec.mirrored for spec in specs):
        raise ValueError("render_framing wants unmirrored specs of one framing")
    side = _side(box, specs[0].framing, wide_factor)
    (s_flash, s_studio, s_valid), to_crop = _crop_and_shrink([flash, studio, valid], box, side, size)
    inverse_crop = cv2.invertAffineTransform(to_crop)
    out = []
    for spec in specs:
        full = sample_matrix(box, spec, size, wide_factor=wide_factor)
        # sample <- full <- crop: compose full-res->sample with crop->full-res
        m = full[:, :2] @ inverse_crop[:, :2]
        t = full[:, :2] @ inverse_crop[:, 2] + full[:, 2]
        matrix = np.hstack([m, t[:, None]])
        warp = {"dsize": (size, size), "borderMode": cv2.BORDER_CONSTANT, "borderValue": 0}
        f = cv2.warpAffine(s_flash, matrix, flags=cv2.INTER_CUBIC, **warp)
        s = cv2.warpAffine(s_studio, matrix, flags=cv2.INTER_CUBIC, **warp)
        v = cv2.warpAffine(s_valid, matrix, flags=cv2.INTER_LINEAR, **warp)
        out.append((f, s, (v >= 0.5).astype(np.uint8)))
    return out
