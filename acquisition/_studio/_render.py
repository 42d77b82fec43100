"""Lighting, pose motion and sensor noise: one portrait in, one camera frame out.

Everything is lit at the portrait's own resolution (smooth light needs no more), in linear light, then a single
``cv2.warpAffine`` scales the result to the output size, crops it to the frame and applies the pose motion, so
the recorded motion is exact to the interpolation. Sensor noise is added last, at full resolution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Final, Literal

import cv2
import numpy as np

from ._analysis import PortraitAnalysis, analyse_portrait
from ._config import StudioConfig
from ._portraits import Portrait

__all__ = ["DEFAULT_SIZE", "Lighting", "PoseMotion", "RenderedPair", "RenderedShot", "lighting_of", "render_pair",
           "render_shot"]

#: The paper's phone (Nexus 6): 3120 x 4160 pixels, portrait (width, height).
DEFAULT_SIZE: Final = (3120, 4160)

Lighting = Literal["studio", "flash", "dark", "both"]

_LUMA: Final = np.array([0.2126, 0.7152, 0.0722], np.float32)
_NOISE_BANK_SIZE: Final = 1 << 22
_LINEAR_STEPS: Final = 4096


@dataclass(frozen=True)
class PoseMotion:
    """How the subject moved between the reference pose (the flash shot) and another shot.

    ``studio_point = matrix @ flash_point + translation``, in output pixels: x right, y down, origin at the
    centre of the top-left pixel. This is the registration's ground truth.
    """

    matrix: tuple[tuple[float, float], tuple[float, float]]
    translation: tuple[float, float]

    @classmethod
    def identity(cls) -> PoseMotion:
        return cls(((1.0, 0.0), (0.0, 1.0)), (0.0, 0.0))

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> PoseMotion:
        """Read back the ``ground_truth_transform`` dictionary of a ``meta.json``."""
        (a, b), (c, d) = meta["matrix"]
        tx, ty = meta["translation"]
        return cls(((float(a), float(b)), (float(c), float(d))), (float(tx), float(ty)))

    def as_meta(self) -> dict[str, list]:
        """The ``ground_truth_transform`` entry of ``meta.json``."""
        return {"matrix": [list(row) for row in self.matrix], "translation": list(self.translation)}

    def as_array(self) -> np.ndarray:
        """The 2x3 matrix ``[matrix | translation]`` (OpenCV's forward affine)."""
        return np.hstack([np.asarray(self.matrix, np.float64), np.asarray(self.translation, np.float64)[:, None]])

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Map (N, 2) flash-shot points (x, y) to where they are in the moved shot."""
        points = np.asarray(points, np.float64)
        return points @ np.asarray(self.matrix, np.float64).T + np.asarray(self.translation, np.float64)


@dataclass(frozen=True, eq=False)
class RenderedShot:
    """One rendered frame.

    Attributes
    ----------
    image : ndarray, shape (H, W, 3), uint8
        Upright sRGB.
    lighting : {"studio", "flash", "dark", "both"}
        What lit it: the lamps only, the flash only, neither, or both.
    motion : PoseMotion or None
        The pose motion relative to the reference pose (None for shots with flash, which are at the reference).
    """

    image: np.ndarray
    lighting: Lighting
    motion: PoseMotion | None


@dataclass(frozen=True, eq=False)
class RenderedPair:
    """A flash shot, a studio shot and the motion between them (``studio = motion(flash)``)."""

    flash: np.ndarray
    studio: np.ndarray
    ground_truth: PoseMotion

    def __iter__(self):
        """Unpack as ``flash, studio, ground_truth = render_pair(...)``."""
        return iter((self.flash, self.studio, self.ground_truth))


def lighting_of(lamps: float, flash: bool) -> Lighting:
    """Name the light of a shot: lamps on (> 0) and/or flash fired."""
    if lamps > 0:
        return "both" if flash else "studio"
    return "flash" if flash else "dark"


def _check_size(size: Sequence[int]) -> tuple[int, int]:
    if len(size) != 2 or any(int(v) != v or v < 16 for v in size):
        raise ValueError(f"size must be (width, height) in whole pixels >= 16, got {size!r}")
    return int(size[0]), int(size[1])


def _draw_motion(rng: np.random.Generator, width: int, height: int, cfg: StudioConfig) -> PoseMotion:
    """A small random affine about the frame centre: rotation, isotropic scale, shear, then a shift."""
    angle = np.deg2rad(rng.uniform(-cfg.max_rotation_deg, cfg.max_rotation_deg))
    scale = 1.0 + rng.uniform(-cfg.max_scale, cfg.max_scale)
    shear = rng.uniform(-cfg.max_shear, cfg.max_shear)
    shift = rng.uniform(-cfg.max_shift, cfg.max_shift, size=2) * width
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    matrix = scale * rot @ np.array([[1.0, shear], [0.0, 1.0]])
    centre = np.array([(width - 1) / 2, (height - 1) / 2])
    translation = centre - matrix @ centre + shift
    return PoseMotion(((float(matrix[0, 0]), float(matrix[0, 1])), (float(matrix[1, 0]), float(matrix[1, 1]))),
                      (float(translation[0]), float(translation[1])))


def _frame_to_work(an: PortraitAnalysis, width: int, height: int) -> tuple[float, np.ndarray]:
    """Cover-and-centre-crop: output pixels per work pixel, and the work point under the output centre."""
    h, w = an.shape
    s = max(width / w, height / h)
    return s, np.array([(w - 1) / 2, (h - 1) / 2])


def _warp_matrix(an: PortraitAnalysis, width: int, height: int, motion: PoseMotion | None) -> np.ndarray:
    """The 2x3 map from output pixels to work pixels (for ``WARP_INVERSE_MAP``), motion included."""
    s, centre_w = _frame_to_work(an, width, height)
    centre_f = np.array([(width - 1) / 2, (height - 1) / 2])
    # Reference pose: work = (out - centre_f) / s + centre_w. Moved: out_ref = M^-1 (out - t).
    lin = np.eye(2) / s
    off = centre_w - centre_f / s
    if motion is not None:
        minv = np.linalg.inv(np.asarray(motion.matrix, np.float64))
        off = off - lin @ minv @ np.asarray(motion.translation, np.float64)
        lin = lin @ minv
    return np.hstack([lin, off[:, None]])


def _gaussian_spot(shape: tuple[int, int], centre: np.ndarray, right: np.ndarray, sigma_r: float,
                   sigma_d: float, out: np.ndarray, weight: float) -> None:
    """Add ``weight`` times an elliptical Gaussian (axes along ``right`` and its normal) to ``out``, in place,
    evaluated only within four sigmas of its centre."""
    h, w = shape
    reach = 4.0 * max(sigma_r, sigma_d)
    x0, x1 = max(0, int(centre[0] - reach)), min(w, int(centre[0] + reach) + 2)
    y0, y1 = max(0, int(centre[1] - reach)), min(h, int(centre[1] + reach) + 2)
    if x0 >= x1 or y0 >= y1:
        return
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    dx, dy = xs - np.float32(centre[0]), ys - np.float32(centre[1])
    along_r = dx * np.float32(right[0]) + dy * np.float32(right[1])
    along_d = -dx * np.float32(right[1]) + dy * np.float32(right[0])
    out[y0:y1, x0:x1] += np.float32(weight) * np.exp(-0.5 * ((along_r / sigma_r) ** 2 + (along_d / sigma_d) ** 2))


def _specular(an: PortraitAnalysis, rng: np.random.Generator, jitter: float) -> np.ndarray:
    """Skin shine of an on-axis flash: forehead, nose bridge and tip, cheeks; placed from the landmarks."""
    f = an.frame
    fw, en, down = f.face_width, f.eye_nose, f.down
    right = np.array([-down[1], down[0]])  # perpendicular to "down", pointing to image right for an upright face
    if right[0] < 0:
        right = -right
    spots = [  # centre, sigma across, sigma along the face's vertical, weight
        (f.brow_mid - down * 0.55 * en, 0.15 * fw, 0.05 * fw, 1.0),
        (0.65 * f.nose_tip + 0.35 * f.nose_top, 0.025 * fw, 0.08 * fw, 0.9),
        (f.nose_tip + down * 0.05 * en, 0.035 * fw, 0.03 * fw, 0.8),
        (f.left_eye + down * 0.8 * en + (f.left_eye - f.eye_mid) * 0.15, 0.06 * fw, 0.05 * fw, 0.5),
        (f.right_eye + down * 0.8 * en + (f.right_eye - f.eye_mid) * 0.15, 0.06 * fw, 0.05 * fw, 0.5),
    ]
    shifts = rng.normal(0.0, 1.0, size=(len(spots), 2)) * (0.6 * jitter * fw)
    weights = 1.0 + jitter * rng.uniform(-1.0, 1.0, size=len(spots))
    total = np.zeros(an.shape, np.float32)
    for (centre, sr, sd, weight), shift, jw in zip(spots, shifts, weights, strict=True):
        _gaussian_spot(an.shape, centre + shift, right, max(sr, 0.7), max(sd, 0.7), total, weight * jw)
    # Shine shows on skin, little on eyebrows, eyes and hair: scale by the local brightness of the face.
    lum = an.linear @ _LUMA
    x0, y0, x1, y1 = (int(max(0, v)) for v in (an.face.left, an.face.top, an.face.right, an.face.bottom))
    ref = float(np.median(lum[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)])) + 1e-3
    texture = np.clip(np.sqrt(lum / ref), 0.0, 1.3)
    return total * texture * an.mask


def _flash_light(an: PortraitAnalysis, cfg: StudioConfig, rng: np.random.Generator, width: int,
                 height: int) -> np.ndarray:
    """Linear radiance under a point light at the lens."""
    h, w = an.shape
    j = cfg.lighting_jitter
    power, spec_gain, shadow_gain, offset_gain = 1.0 + j * rng.uniform(-1.0, 1.0, size=4)
    s, centre = _frame_to_work(an, width, height)
    focal = width / s  # a phone's ~53 degree horizontal field of view: the frame width at the subject distance
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    rho2 = ((xs - centre[0]) / focal) ** 2 + ((ys - centre[1]) / focal) ** 2
    z = 1.0 + cfg.background_distance * (1.0 - an.mask)
    # A surface facing the lens at distance z, rho off-axis: irradiance cos(theta) / r^2 = z / (z^2 + rho^2)^1.5.
    irradiance = z / (z * z + rho2) ** 1.5
    fx, fy = an.face.center
    face_rho2 = ((fx - centre[0]) / focal) ** 2 + ((fy - centre[1]) / focal) ** 2
    irradiance = (irradiance * (1.0 + face_rho2) ** 1.5) ** cfg.flash_falloff  # the phone meters on the face
    albedo = an.linear * (an.shading ** -cfg.shading_flatten)[:, :, None]
    gain = cfg.flash_power * power
    cool = np.array([1.0 - cfg.flash_coolness, 1.0, 1.0 + cfg.flash_coolness], np.float32)
    light = albedo * (irradiance * gain)[:, :, None] * cool
    spec = _specular(an, rng, j) * (cfg.specular_strength * spec_gain * gain) * irradiance
    light += spec[:, :, None] * np.array([0.97, 1.0, 1.05], np.float32)
    # The flash sits beside the lens: the silhouette throws a hard shadow on the background next to it.
    dx, dy = (np.asarray(cfg.shadow_offset) * focal * offset_gain).tolist()
    hard = (an.mask > 0.5).astype(np.float32)
    shadow = cv2.warpAffine(hard, np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]]), (w, h), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
    shadow *= 1.0 - an.mask
    light *= (1.0 - min(1.0, cfg.shadow_strength * shadow_gain) * shadow)[:, :, None]
    return light


@cache
def _linear_to_srgb_lut() -> np.ndarray:
    v = np.linspace(0.0, 1.0, _LINEAR_STEPS)
    srgb = np.where(v <= 0.0031308, 12.92 * v, 1.055 * v ** (1 / 2.4) - 0.055)
    return np.clip(np.round(srgb * 255.0), 0, 255).astype(np.uint8)


def _tone_map(radiance: np.ndarray, strength: float) -> np.ndarray:
    """The camera's mild tone curve (shadows lifted, highlights rolled off; 1 stays 1), then sRGB ``uint8``."""
    x = np.maximum(radiance, 0.0)
    if strength > 0:
        x = x * np.float32(1.0 + strength) / (1.0 + np.float32(strength) * x)
    index = np.clip(x * (_LINEAR_STEPS - 1) + 0.5, 0, _LINEAR_STEPS - 1).astype(np.int32)
    return _linear_to_srgb_lut()[index]


@cache
def _noise_bank(size: int) -> np.ndarray:
    return np.random.default_rng(0x5EED_DF).standard_normal(size, dtype=np.float32)


def _sensor_noise(rng: np.random.Generator, sigma: np.ndarray) -> np.ndarray:
    """Gaussian noise of per-pixel standard deviation ``sigma`` (H, W), for three channels: (H, W, 3) float32.

    Each row is a randomly placed slice of a fixed bank of normals, scaled in the same pass: 30x faster than
    drawing 39 million fresh normals for a 12 MP frame, and just as white to the eye and to JPEG.
    """
    height, width = sigma.shape
    row = 3 * width
    bank = _noise_bank(max(_NOISE_BANK_SIZE, 4 * row))
    starts = rng.integers(0, bank.size - row, size=height)
    out = np.empty((height, width, 3), np.float32)
    for y in range(height):
        np.multiply(bank[starts[y]:starts[y] + row].reshape(width, 3), sigma[y, :, None], out=out[y])
    return out


def _noise_sigma(image_u8: np.ndarray, level: float) -> np.ndarray:
    """Per-pixel noise standard deviation (8-bit levels): read noise plus shot noise, ``level`` at mid-grey."""
    lum = image_u8.astype(np.float32) @ _LUMA
    return (np.float32(level) * np.sqrt(0.3 + 0.7 * lum / 128.0)).astype(np.float32)


def render_shot(portrait: Portrait, *, lamps: float, flash: bool, size: Sequence[int] = DEFAULT_SIZE,
                seed: int | Sequence[int] = 0, config: StudioConfig | None = None) -> RenderedShot:
    """Render what the camera sees with the lamps at ``lamps`` (0-1) and the flash firing or not.

    Parameters
    ----------
    portrait : Portrait
        The subject, in its reference pose.
    lamps : float
        Studio lamp intensity in [0, 1] (0 = off).
    flash : bool
        Whether the flash fires.
    size : (int, int)
        Output (width, height) in pixels; the portrait is scaled to cover it and centre-cropped.
    seed : int or sequence of int
        Seeds ``numpy.random.default_rng``: lighting jitter, pose motion and noise all come from it, so the same
        seed gives the same pixels. The simulated camera passes ``[seed, shot_index]``.
    config : StudioConfig, optional
        Every strength; defaults to ``StudioConfig()``.

    Returns
    -------
    RenderedShot
        The image, what lit it, and (without flash) the random pose motion relative to the reference pose.
    """
    cfg = config or StudioConfig()
    width, height = _check_size(size)
    if not 0.0 <= lamps <= 1.0:
        raise ValueError(f"lamps must be an intensity in [0, 1], got {lamps}")
    rng = np.random.default_rng(seed)
    an = analyse_portrait(portrait, max_work_side=cfg.max_work_side)
    lighting = lighting_of(lamps, flash)
    # Draw in a fixed order, whatever the lighting, so that each effect keeps its random numbers.
    motion = None if flash else _draw_motion(rng, width, height, cfg)
    studio_jitter = 1.0 + cfg.lighting_jitter * rng.uniform(-1.0, 1.0)
    flash_rng = np.random.default_rng(rng.integers(2**63))
    noise_rng = np.random.default_rng(rng.integers(2**63))

    radiance = an.linear * np.float32(cfg.ambient)
    if lamps > 0:
        warm = np.array([1.0 + cfg.studio_warmth, 1.0, 1.0 - cfg.studio_warmth], np.float32)
        radiance = radiance + an.linear * warm * np.float32(lamps * cfg.studio_exposure * studio_jitter)
    if flash:
        radiance = radiance + _flash_light(an, cfg, flash_rng, width, height)
    work = _tone_map(radiance, cfg.studio_tone)

    level = {"studio": cfg.noise_studio, "flash": cfg.noise_flash, "both": cfg.noise_flash,
             "dark": cfg.noise_dark}[lighting]
    matrix = _warp_matrix(an, width, height, motion)
    flags = cv2.WARP_INVERSE_MAP
    image = cv2.warpAffine(work, matrix, (width, height), flags=cv2.INTER_CUBIC | flags,
                           borderMode=cv2.BORDER_REFLECT_101)
    if level > 0:
        sigma = cv2.warpAffine(_noise_sigma(work, level), matrix, (width, height), flags=cv2.INTER_LINEAR | flags,
                               borderMode=cv2.BORDER_REFLECT_101)
        image = cv2.add(image, _sensor_noise(noise_rng, sigma), dtype=cv2.CV_8U)
    return RenderedShot(image=image, lighting=lighting, motion=motion)


def render_pair(portrait: Portrait, *, size: Sequence[int] = DEFAULT_SIZE, seed: int = 0,
                config: StudioConfig | None = None) -> RenderedPair:
    """A flash shot (lamps off, flash) and a studio shot (lamps on, no flash) of one pose, without files.

    The pixels are those :class:`~acquisition.sim.SimulatedCamera` saves (before JPEG) when a session takes the
    flash shot as shot 0 and the studio shot as shot 1 with the same ``seed``.

    Returns
    -------
    RenderedPair
        ``flash`` and ``studio`` (H, W, 3) uint8 images and ``ground_truth``: studio_point =
        matrix @ flash_point + translation.
    """
    flash = render_shot(portrait, lamps=0.0, flash=True, size=size, seed=[seed, 0], config=config)
    studio = render_shot(portrait, lamps=1.0, flash=False, size=size, seed=[seed, 1], config=config)
    assert studio.motion is not None  # shots without flash always move
    return RenderedPair(flash=flash.image, studio=studio.image, ground_truth=studio.motion)
