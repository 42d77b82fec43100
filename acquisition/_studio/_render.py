"""Lighting, pose motion and sensor noise: one portrait in, one camera frame out.

The portrait is split into two layers at its own resolution (smooth light needs no more), in linear light: the
subject (the portrait inside its silhouette) and what is behind it (the scenery filled in behind the subject, a
plain backdrop or a room; :mod:`._layers`). Each shot lights both layers with its light (the flash's fall-off
differs between the subject and the farther background, and the subject's silhouette throws a shadow on the
background), then maps them to the output frame with the pose of :mod:`._pose`: the flash shot shows the reference
pose; in the other shots the subject layer moves by the subject's affine and head turn and the background stays
(or both move with the camera). Each layer is resampled once, at full resolution, with the exact map (an affine
``cv2.warpAffine``, and a ``cv2.remap`` around the face for the head turn), so the recorded motion is exact to
the interpolation. Sensor noise is added last, at full resolution.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Final, Literal

import cv2
import numpy as np

from ._analysis import PortraitAnalysis, analyse_portrait
from ._blink import closed_eyes
from ._config import StudioConfig
from ._framing import Framing, frame_portrait
from ._layers import backdrop, subject_layer
from ._portraits import Portrait
from ._pose import PoseMotion, StudioPose, draw_pose, pose_seed

__all__ = ["DEFAULT_SIZE", "RENDER_BYTES_PER_PIXEL", "RENDER_MEMORY_BASE", "Lighting", "PoseMotion", "RenderedPair",
           "RenderedShot", "StudioPose", "check_frame_size", "lighting_of", "pose_seed", "render_pair", "render_shot"]

#: The paper's phone (Nexus 6): 3120 x 4160 pixels, portrait (width, height).
DEFAULT_SIZE: Final = (3120, 4160)

Lighting = Literal["studio", "flash", "dark", "both"]

_LUMA: Final = np.array([0.2126, 0.7152, 0.0722], np.float32)
_NOISE_BANK_SIZE: Final = 1 << 22
_LINEAR_STEPS: Final = 4096
#: The head turn's displacement is computed exactly every this many output pixels and interpolated between
#: (it is a smooth bump a face wide: the interpolation error is below a thousandth of a pixel).
_TURN_GRID_STEP: Final = 4


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
        The registration's ground truth relative to the reference pose: the least-squares affine of the true
        motion over the face (None for shots with flash, which show the reference pose).
    pose : StudioPose
        The pose this shot belongs to (the same for both shots of a pair): every drawn motion, exactly.
    eyes_closed : bool
        Whether this shot caught the pose's blink.
    """

    image: np.ndarray
    lighting: Lighting
    motion: PoseMotion | None
    pose: StudioPose
    eyes_closed: bool = False


@dataclass(frozen=True, eq=False)
class RenderedPair:
    """A flash shot, a studio shot and what moved between them.

    Attributes
    ----------
    flash, studio : ndarray, shape (H, W, 3), uint8
        The two shots; the flash shot shows the reference pose.
    ground_truth : PoseMotion
        The registration's target: the least-squares affine, over :attr:`face_box`, of the true motion of the
        subject from the flash shot to the studio shot (``studio_point = matrix @ flash_point + translation``).
    pose : StudioPose
        Everything drawn for the pose: :attr:`subject_motion`, :attr:`camera_motion`, head turn, blink; its
        :meth:`~StudioPose.subject_map` is the true (non-affine) motion of the subject.
    """

    flash: np.ndarray
    studio: np.ndarray
    ground_truth: PoseMotion
    pose: StudioPose
    _analysis: PortraitAnalysis
    _framing: Framing

    def __iter__(self) -> Iterator:
        """Unpack as ``flash, studio, ground_truth = render_pair(...)``."""
        return iter((self.flash, self.studio, self.ground_truth))

    @property
    def subject_motion(self) -> PoseMotion:
        """The subject's drawn affine (identity with ``motion="camera"``)."""
        return self.pose.subject

    @property
    def camera_motion(self) -> PoseMotion:
        """The frame's drawn affine (identity with ``motion="subject"``)."""
        return self.pose.camera

    @property
    def face_box(self) -> tuple[float, float, float, float]:
        """The face in the flash shot (left, top, right, bottom), output pixels: where the target is fitted."""
        return self.pose.face_box

    @property
    def blink(self) -> Literal["flash", "studio"] | None:
        """The shot whose eyes are closed, or None."""
        return self.pose.blink

    @property
    def head_turn_px(self) -> float:
        """Peak displacement of the head turn (at the nose tip), output pixels."""
        return self.pose.head_turn_px

    @property
    def motion(self) -> str:
        return self.pose.motion

    @property
    def backdrop(self) -> str:
        return self.pose.backdrop

    def true_positions(self, points: np.ndarray) -> np.ndarray:
        """Where (N, 2) subject points (x, y) of the flash shot are in the studio shot, exactly."""
        return self.pose.subject_map(points)

    def displacement_field(self) -> np.ndarray:
        """The true displacement of the subject, studio minus flash position, at every flash pixel: (H, W, 2)
        float64, x then y. It holds on the subject (:meth:`subject_alpha`); the background moves by
        :attr:`camera_motion`."""
        h, w = self.flash.shape[:2]
        ys, xs = np.mgrid[0:h, 0:w]
        points = np.column_stack([xs.ravel(), ys.ravel()]).astype(np.float64)
        return (self.pose.subject_map(points) - points).reshape(h, w, 2)

    def subject_alpha(self) -> np.ndarray:
        """The subject's coverage of each pixel of the flash shot, (H, W) float32 in [0, 1]."""
        h, w = self.flash.shape[:2]
        return cv2.warpAffine(self._analysis.mask, self._framing.inverse_matrix(), (w, h),
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT_101)


def lighting_of(lamps: float, flash: bool) -> Lighting:
    """Name the light of a shot: lamps on (> 0) and/or flash fired."""
    if lamps > 0:
        return "both" if flash else "studio"
    return "flash" if flash else "dark"


#: Peak memory of rendering a pose, bytes per output pixel above :data:`RENDER_MEMORY_BASE` (measured: a pair
#: rendered at 13 MP peaks at 0.6 GiB and at 48 MP at 1.4 GiB, 25 bytes a pixel more; rounded up for the JPEG
#: encoding and the pair check that read the shots back).
RENDER_BYTES_PER_PIXEL: Final = 32
RENDER_MEMORY_BASE: Final = 0.5 * 2**30


def _memory_limit() -> int | None:
    """Bytes this process may use: the least of the computer's memory, the address-space limit (``ulimit -v``)
    and a container's memory limit (cgroup v2 ``memory.max``); None where none is known."""
    limits = []
    with contextlib.suppress(ValueError, OSError, AttributeError):
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    with contextlib.suppress(ImportError, ValueError, OSError):
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            limits.append(soft)
    with contextlib.suppress(OSError, ValueError):
        text = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if text.isdigit():
            limits.append(int(text))
    return min(limits) if limits else None


def check_frame_size(size: Sequence[int]) -> tuple[int, int]:
    """The simulated camera's picture size as ``(width, height)``, checked before anything is rendered.

    Raises
    ------
    ValueError
        One line with the fix: when ``size`` is not two whole numbers of pixels >= 16; when its pictures would be
        above the pixel limit every reader of the toolkit applies (:func:`acquisition.imageio.max_image_pixels`:
        the shots could not be read back); or when rendering them needs more memory than this computer has.
    """
    from ..imageio import max_image_pixels, megapixels, memory_words, raise_limit_hint

    if len(size) != 2 or any(int(v) != v or v < 16 for v in size):
        raise ValueError(f"size must be (width, height) in whole pixels >= 16, got {size!r}")
    width, height = int(size[0]), int(size[1])
    pixels, limit = width * height, max_image_pixels()
    if pixels > limit:
        raise ValueError(f"{width}x{height} is {megapixels(pixels)}, above the image-size limit of "
                         f"{megapixels(limit)} (the shots could not be read back): choose a smaller size, or "
                         f"{raise_limit_hint(pixels)}")
    needed, memory = RENDER_MEMORY_BASE + RENDER_BYTES_PER_PIXEL * pixels, _memory_limit()
    if memory is not None and needed > memory:
        raise ValueError(f"{width}x{height} ({megapixels(pixels)}) needs about {memory_words(needed)} of memory "
                         f"to render, more than this process may use ({memory_words(memory)}: the computer's "
                         "memory, ulimit -v or a container's limit): choose a smaller size")
    return width, height


def _inverse_map(framing: Framing, motion: PoseMotion) -> np.ndarray:
    """The 2x3 map from output pixels of a moved shot to work pixels: ``F^-1 ∘ motion^-1``."""
    back = motion.inverse().as_array()
    frame = framing.inverse_matrix()
    return np.hstack([frame[:, :2] @ back[:, :2], (frame[:, :2] @ back[:, 2] + frame[:, 2])[:, None]])


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


def _specular(an: PortraitAnalysis, linear: np.ndarray, rng: np.random.Generator, jitter: float) -> np.ndarray:
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
    lum = linear @ _LUMA
    x0, y0, x1, y1 = (int(max(0, v)) for v in (an.face.left, an.face.top, an.face.right, an.face.bottom))
    ref = float(np.median(lum[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)])) + 1e-3
    texture = np.clip(np.sqrt(lum / ref), 0.0, 1.3)
    return total * texture * an.mask


def _flash_light(an: PortraitAnalysis, cfg: StudioConfig, rng: np.random.Generator, framing: Framing,
                 subject: np.ndarray, scenery: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Linear radiance of the subject and of the background under a point light at the lens."""
    h, w = an.shape
    j = cfg.lighting_jitter
    power, spec_gain, shadow_gain, offset_gain = 1.0 + j * rng.uniform(-1.0, 1.0, size=4)
    centre = framing.centre
    focal = framing.size[0] / framing.scale  # a phone's ~53 degree field of view: the frame width at the subject
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    rho2 = ((xs - centre[0]) / focal) ** 2 + ((ys - centre[1]) / focal) ** 2
    fx, fy = an.face.center
    metering = (1.0 + ((fx - centre[0]) / focal) ** 2 + ((fy - centre[1]) / focal) ** 2) ** 1.5  # meters on the face

    def irradiance(z: float) -> np.ndarray:
        # A surface facing the lens at distance z, rho off-axis: cos(theta) / r^2 = z / (z^2 + rho^2)^1.5.
        return (z / (z * z + rho2) ** 1.5 * np.float32(metering)) ** cfg.flash_falloff

    gain = cfg.flash_power * power
    cool = np.array([1.0 - cfg.flash_coolness, 1.0, 1.0 + cfg.flash_coolness], np.float32)
    near = irradiance(1.0)
    albedo = subject * (an.shading ** -cfg.shading_flatten)[:, :, None]
    subject_light = albedo * (near * gain)[:, :, None] * cool
    spec = _specular(an, subject, rng, j) * (cfg.specular_strength * spec_gain * gain) * near
    subject_light += spec[:, :, None] * np.array([0.97, 1.0, 1.05], np.float32)
    background_light = scenery * (irradiance(1.0 + cfg.background_distance) * gain)[:, :, None] * cool
    # The flash sits beside the lens: the silhouette throws a hard shadow on the background next to it.
    dx, dy = (np.asarray(cfg.shadow_offset) * focal * offset_gain).tolist()
    hard = (an.mask > 0.5).astype(np.float32)
    shadow = cv2.warpAffine(hard, np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]]), (w, h), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
    background_light *= (1.0 - min(1.0, cfg.shadow_strength * shadow_gain) * shadow)[:, :, None]
    return subject_light, background_light


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


@cache
def _sigma_lut(level: float) -> np.ndarray:
    """Noise standard deviation (8-bit levels) per grey level: read noise plus shot noise, ``level`` at mid-grey."""
    grey = np.arange(256, dtype=np.float32)
    return (np.float32(level) * np.sqrt(0.3 + 0.7 * grey / 128.0)).astype(np.float32)


def _head_turn(layer: np.ndarray, source: np.ndarray, framing: Framing, pose: StudioPose,
               affine_map: np.ndarray) -> None:
    """Resample, in place, the part of ``layer`` the head turn moves, with the exact non-affine map."""
    height, width = layer.shape[:2]
    (rx, ry), _ = pose.turn_axes
    reach = max(rx, ry)
    corners = np.asarray(pose.nose) + reach * np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
    moved = pose.subject.then(pose.camera).apply(corners)
    pad = 1.2 * pose.head_turn_px + 3.0
    x0, y0 = (max(0, math.floor(v - pad)) for v in moved.min(axis=0))
    x1, y1 = min(width, math.ceil(moved[:, 0].max() + pad) + 1), min(height, math.ceil(moved[:, 1].max() + pad) + 1)
    if x1 <= x0 or y1 <= y0:
        return
    step = _TURN_GRID_STEP
    nx, ny = math.ceil((x1 - x0) / step), math.ceil((y1 - y0) / step)
    gx, gy = np.meshgrid(x0 + (np.arange(nx) + 0.5) * step - 0.5, y0 + (np.arange(ny) + 0.5) * step - 0.5)
    grid = np.column_stack([gx.ravel(), gy.ravel()])
    exact = pose.subject_source(grid)
    affine = pose.subject.then(pose.camera).inverse().apply(grid)
    correction = ((exact - affine) / framing.scale).reshape(ny, nx, 2).astype(np.float32)
    correction = cv2.resize(correction, (nx * step, ny * step), interpolation=cv2.INTER_LINEAR)[:y1 - y0, :x1 - x0]
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    m = affine_map.astype(np.float32)
    map_x = m[0, 0] * xs + m[0, 1] * ys + m[0, 2] + correction[:, :, 0]
    map_y = m[1, 0] * xs + m[1, 1] * ys + m[1, 2] + correction[:, :, 1]
    layer[y0:y1, x0:x1] = cv2.remap(source, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)


def _layered(subject: np.ndarray, alpha: np.ndarray, background: np.ndarray, framing: Framing,
             pose: StudioPose, *, moved: bool) -> np.ndarray:
    """The subject (moved by its pose when ``moved``) in front of the background (moved by the camera only),
    composited at full resolution: premultiplied alpha, one resampling of each layer."""
    width, height = framing.size
    flags = cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP
    still = PoseMotion.identity()
    out = cv2.warpAffine(background, _inverse_map(framing, pose.camera if moved else still), (width, height),
                         flags=flags, borderMode=cv2.BORDER_REFLECT_101)
    a = alpha[:, :, None]
    rgba = np.concatenate([subject * a + 0.5, alpha[:, :, None] * 255.0 + 0.5], axis=2).astype(np.uint8)
    subject_map = _inverse_map(framing, pose.subject.then(pose.camera) if moved else still)
    layer = cv2.warpAffine(rgba, subject_map, (width, height), flags=flags, borderMode=cv2.BORDER_REFLECT_101)
    if moved and pose.head_turn_px > 0:
        _head_turn(layer, rgba, framing, pose, subject_map)
    # OpenCV's own channel moves: a numpy slice of a 4-channel image copies 20x slower.
    uncovered = cv2.cvtColor(cv2.bitwise_not(cv2.extractChannel(layer, 3)), cv2.COLOR_GRAY2RGB)
    out = cv2.multiply(out, uncovered, scale=1.0 / 255.0)
    return cv2.add(out, cv2.cvtColor(layer, cv2.COLOR_RGBA2RGB))


def _blurred(image: np.ndarray, blur: tuple[str, float, float]) -> np.ndarray:
    """A defocus (Gaussian of ``sigma`` px) or a camera shake (a line ``length`` px long at ``angle_deg``)."""
    kind, size, angle = blur
    if kind == "defocus":
        return cv2.GaussianBlur(image, (0, 0), max(size, 0.3))
    length = max(2, round(size))
    kernel = np.zeros((length | 1, length | 1), np.float32)
    c = (length | 1) // 2
    dx, dy = math.cos(math.radians(angle)) * size / 2, math.sin(math.radians(angle)) * size / 2
    cv2.line(kernel, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1.0, 1, cv2.LINE_AA)
    return cv2.filter2D(image, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT_101)


def render_shot(portrait: Portrait, *, lamps: float, flash: bool, size: Sequence[int] = DEFAULT_SIZE,
                seed: int | Sequence[int] = 0, pose: int | Sequence[int] | None = None,
                config: StudioConfig | None = None, take: int = 0) -> RenderedShot:
    """Render what the camera sees with the lamps at ``lamps`` (0-1) and the flash firing or not.

    Parameters
    ----------
    portrait : Portrait
        The subject, in its reference pose.
    lamps : float
        Studio lamp intensity in [0, 1] (0 = off).
    flash : bool
        Whether the flash fires. Shots with flash show the reference pose; the others the drawn pose.
    size : (int, int)
        Output (width, height) in pixels; the portrait is scaled to cover it and cropped around the face.
    seed : int or sequence of int
        Seeds ``numpy.random.default_rng`` for this shot: lighting jitter and noise, so the same seed gives the
        same pixels. The simulated camera passes ``[seed, shot_index]``.
    pose : int or sequence of int, optional
        Seeds the pose (subject and camera motion, head turn, blink), which the two shots of a pair share; the
        simulated camera passes :func:`pose_seed` ``(seed, shot_index)``. Default: ``seed``.
    config : StudioConfig, optional
        Every strength; defaults to ``StudioConfig()``.
    take : int
        0 for a pose's first take, 1 for its first retake, ...: a take at or past ``config.fault_takes`` is
        drawn without a fault.

    Returns
    -------
    RenderedShot
        The image, what lit it, the pose and (without flash) the registration's ground truth.
    """
    cfg = config or StudioConfig()
    width, height = check_frame_size(size)
    if not 0.0 <= lamps <= 1.0:
        raise ValueError(f"lamps must be an intensity in [0, 1], got {lamps}")
    rng = np.random.default_rng(seed)
    an = analyse_portrait(portrait, max_work_side=cfg.max_work_side)
    framing = frame_portrait(an, width, height, cfg)
    drawn = draw_pose(np.random.default_rng(seed if pose is None else pose), an, framing, cfg, take=take)
    lighting = lighting_of(lamps, flash)
    # Draw in a fixed order, whatever the lighting, so that each effect keeps its random numbers.
    studio_jitter = 1.0 + cfg.lighting_jitter * rng.uniform(-1.0, 1.0)
    flash_rng = np.random.default_rng(rng.integers(2**63))
    noise_rng = np.random.default_rng(rng.integers(2**63))

    closed = drawn.eyes_closed(flash=flash) and (eyes := closed_eyes(an)) is not None
    subject = eyes.apply(subject_layer(an)) if closed else subject_layer(an)
    scenery = backdrop(an, cfg.backdrop)
    light = np.full(3, cfg.ambient, np.float32)
    this_shot = "flash" if flash else "studio"
    faulty = drawn.fault is not None and drawn.fault_shot == this_shot
    if lamps > 0:
        warm = np.array([1.0 + cfg.studio_warmth, 1.0, 1.0 - cfg.studio_warmth], np.float32)
        over = 4.0 if faulty and drawn.fault == "overexposed" else 1.0
        light = light + warm * np.float32(lamps * cfg.studio_exposure * studio_jitter * over)
    subject_light, background_light = subject * light, scenery * light
    if flash and not (faulty and drawn.fault == "no_flash"):  # a misfire: the camera says fired, nothing lit
        flash_subject, flash_background = _flash_light(an, cfg, flash_rng, framing, subject, scenery)
        subject_light, background_light = subject_light + flash_subject, background_light + flash_background

    if cfg.motion == "camera":  # subject and background move together: composite in linear light, one warp
        alpha = an.mask[:, :, None]
        work = _tone_map(alpha * subject_light + (1.0 - alpha) * background_light, cfg.studio_tone)
        matrix = _inverse_map(framing, PoseMotion.identity() if flash else drawn.camera)
        image = cv2.warpAffine(work, matrix, (width, height), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REFLECT_101)
    else:  # each layer resampled once by its own map, then composited (the reference pose the same way)
        image = _layered(_tone_map(subject_light, cfg.studio_tone), an.mask,
                         _tone_map(background_light, cfg.studio_tone), framing, drawn, moved=not flash)

    if faulty and drawn.blur is not None:
        image = _blurred(image, drawn.blur)
    level = {"studio": cfg.noise_studio, "flash": cfg.noise_flash, "both": cfg.noise_flash,
             "dark": cfg.noise_dark}[lighting]
    if level > 0:
        sigma = cv2.LUT(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), _sigma_lut(float(level)))
        image = cv2.add(image, _sensor_noise(noise_rng, sigma), dtype=cv2.CV_8U)
    return RenderedShot(image=image, lighting=lighting, motion=None if flash else drawn.ground_truth, pose=drawn,
                        eyes_closed=closed)


def render_pair(portrait: Portrait, *, size: Sequence[int] = DEFAULT_SIZE, seed: int = 0,
                config: StudioConfig | None = None, take: int = 0) -> RenderedPair:
    """A flash shot (lamps off, flash) and a studio shot (lamps on, no flash) of one pose, without files.

    The pixels are those :class:`~acquisition.sim.SimulatedCamera` saves (before JPEG) when it takes the flash
    shot as shot 0 and the studio shot as shot 1 with the same ``seed``.

    Returns
    -------
    RenderedPair
        ``flash`` and ``studio`` (H, W, 3) uint8 images, ``ground_truth`` (studio_point = matrix @ flash_point +
        translation, fitted over the face) and the whole drawn ``pose``.
    """
    cfg = config or StudioConfig()
    shared = pose_seed(seed, 0, take)
    flash = render_shot(portrait, lamps=0.0, flash=True, size=size, seed=[seed, 0], pose=shared, config=cfg,
                        take=take)
    studio = render_shot(portrait, lamps=1.0, flash=False, size=size, seed=[seed, 1], pose=shared, config=cfg,
                         take=take)
    an = analyse_portrait(portrait, max_work_side=cfg.max_work_side)
    return RenderedPair(flash=flash.image, studio=studio.image, ground_truth=studio.pose.ground_truth,
                        pose=studio.pose, _analysis=an, _framing=frame_portrait(an, *check_frame_size(size), cfg))
