"""Working images of the registration: a crop of a shot, downscaled, as locally contrast-normalised luminance.

A flash and a studio shot differ in light far more than in geometry: the flash falls off with distance, flattens
the face, adds shine and a hard shadow. Mutual information copes with a different *tone curve*, not with light
that varies across the frame; on real flash/ambient pairs (FAID) the metric on plain luminance was dominated by
the flash fall-off and its optimum wandered tens of pixels. Local contrast normalisation (subtract a Gaussian
local mean, divide by the local standard deviation, Pinto et al. 2008) keeps the structure that both lightings
share (edges, texture) and removes the slowly varying light; on those pairs it brought the registration from
half of them lost to all of them within a pixel.

Coordinates: pixel ``i`` of a view sits at full-resolution point ``x = scale * i + origin`` (per axis, pixel
centres, x right, y down), so transforms stay in full-resolution pixels whatever the view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import SimpleITK as sitk

from acquisition.pixels import gradient_magnitude, local_contrast, luminance

__all__ = ["Box", "View"]

#: (left, top, right, bottom) in full-resolution pixel edges: pixel x covers [x - 0.5, x + 0.5).
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class View:
    """A crop of one shot at one scale: its luminance and its normalised luminance.

    Attributes
    ----------
    lum, normalised : ndarray, shape (h, w), float32
    scale : ndarray, shape (2,)
        Full-resolution pixels per view pixel, (x, y).
    origin : ndarray, shape (2,)
        Full-resolution point of view pixel (0, 0).
    """

    lum: np.ndarray
    normalised: np.ndarray
    scale: np.ndarray
    origin: np.ndarray

    @classmethod
    def of(cls, rgb: np.ndarray, box: Box, scale: float, sigma_px: float) -> View:
        """The part of ``rgb`` inside ``box`` (clipped to the image), downscaled by ``scale`` (INTER_AREA)."""
        h, w = rgb.shape[:2]
        x0, y0 = max(0, math.floor(box[0] + 0.5)), max(0, math.floor(box[1] + 0.5))
        x1, y1 = min(w, math.ceil(box[2] - 0.5)), min(h, math.ceil(box[3] - 0.5))
        x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
        crop = rgb[y0:y1, x0:x1]
        size = (max(1, round((x1 - x0) / scale)), max(1, round((y1 - y0) / scale)))
        if size != (x1 - x0, y1 - y0):
            crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
        lum = luminance(crop)
        factor = np.array([(x1 - x0) / size[0], (y1 - y0) / size[1]])
        origin = np.array([x0, y0]) + (factor - 1.0) / 2.0
        return cls(lum, local_contrast(lum, sigma_px), factor, origin)

    @property
    def shape(self) -> tuple[int, int]:
        return self.lum.shape

    @property
    def step_px(self) -> float:
        """The larger full-resolution size of one view pixel."""
        return float(self.scale.max())

    def index_box(self, box: Box) -> tuple[int, int, int, int]:
        """(i0, j0, i1, j1): the view pixels whose centres fall inside the full-resolution ``box``."""
        h, w = self.shape
        i0 = max(0, math.ceil((box[0] - self.origin[0]) / self.scale[0]))
        j0 = max(0, math.ceil((box[1] - self.origin[1]) / self.scale[1]))
        i1 = min(w, math.floor((box[2] - self.origin[0]) / self.scale[0]) + 1)
        j1 = min(h, math.floor((box[3] - self.origin[1]) / self.scale[1]) + 1)
        return i0, j0, max(i1, i0 + 1), max(j1, j0 + 1)

    def image(self, box: Box | None = None) -> sitk.Image:
        """The normalised view (or its part inside ``box``) as a SimpleITK image in full-resolution units."""
        image = sitk.GetImageFromArray(self.normalised)
        image.SetSpacing(tuple(float(v) for v in self.scale))
        image.SetOrigin(tuple(float(v) for v in self.origin))
        if box is None:
            return image
        i0, j0, i1, j1 = self.index_box(box)
        return image[i0:i1, j0:j1]  # slicing keeps the physical coordinates

    def edges(self) -> View:
        """The same view with gradient magnitude (Sobel, unit mean) in place of the normalised luminance.

        Polarity-free and smooth: on weak texture (a toy on a carpet) the normalised luminance amplifies the
        carpet's grain, which differs between the two lightings, and its correlation optimum wanders pixels;
        the edges of the objects do not.
        """
        magnitude = gradient_magnitude(self.lum)
        return View(self.lum, magnitude / np.float32(magnitude.mean() + 1e-6), self.scale, self.origin)

    def sub(self, box: Box) -> tuple[np.ndarray, np.ndarray]:
        """The normalised pixels inside ``box`` and the full-resolution point of their first pixel."""
        i0, j0, i1, j1 = self.index_box(box)
        return np.ascontiguousarray(self.normalised[j0:j1, i0:i1]), self.origin + self.scale * np.array([i0, j0])
