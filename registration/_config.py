"""Every setting of the registration stage, in one frozen dataclass, and the results it produces."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

from acquisition.checks import check_finite_fields

if TYPE_CHECKING:  # annotations only: `prep register --help` reads the defaults without loading SimpleITK
    import SimpleITK as sitk

__all__ = ["DEFAULT_CONFIG", "AffineEstimate", "PairResult", "RegistrationConfig", "RegistrationSummary"]

Status = Literal["ok", "flagged", "failed"]


@dataclass(frozen=True)
class RegistrationConfig:
    """Settings of the mutual-information affine registration and of its quality control.

    The defaults are those measured in ``bench/register.py``: 0.02-0.1 px at the face box on relit portraits,
    about a second for a 12 MP pair on one core.

    Parameters
    ----------
    max_side_px : int
        Registration runs on a copy downscaled (INTER_AREA) by an integer factor until its longer side is at
        most this; the transform is still expressed in full-resolution pixels (spacing = factor).
    histogram_bins : int
        Mattes mutual information bins.
    sampling : {"random", "regular", "none"}
        Metric sampling strategy; ``sampling_fraction`` of the (masked) pixels per level.
    sampling_fraction : float
    seed : int
        Sampling seed: the same seed gives byte-identical outputs.
    learning_rate_px, min_step_px : float
        RegularStepGradientDescent's first and last step, in pixels of the registration copy.
    iterations : int
        Maximum optimiser iterations per pyramid level.
    relaxation : float
        Step shrink factor when the gradient changes direction.
    shrink_factors, smoothing_sigmas_px : tuple of int / float
        The multi-resolution pyramid (over the registration copy), coarse to fine.
    refine : bool
        When the registration copy is downscaled by 2 or more, a last single-level pass at twice its
        resolution, on the flash image cropped to the face box grown by ``refine_scale`` (the whole frame
        without a face), with ``refine_sampling_fraction`` of its pixels, a first step of ``refine_step_px``, a
        last of ``refine_min_step_px`` (pixels of that copy) and at most ``refine_iterations`` iterations. It
        replaces the pyramid's last level when that level has shrink factor 1 (the same precision for about
        half the time at 12 MP).
    refine_scale, refine_sampling_fraction, refine_step_px, refine_min_step_px : float
    refine_iterations : int
    threads : int
        SimpleITK threads; 1 keeps results identical whatever the machine (floating-point sums in order).
    initialization : {"landmarks", "geometry"}
        ``landmarks``: a similarity fitted to dlib's 68 face landmarks of both shots, falling back to
        ``geometry`` (image centres aligned) when no face is found in either.
    face_max_side_px : int
        Face detection and landmarks run on a copy this large.
    min_face_px : float, optional
        When that copy shows no face, larger copies are searched for faces down to this width in pixels of
        the full image (:func:`acquisition.faces.detect_faces`); default 2 % of the longer side.
    mask : {"face", "none"}
        ``face``: the metric only samples the flash image inside the face box grown by ``mask_scale`` (keeps
        a background or body that moves differently out of the metric); the whole image when no face.
    mask_scale : float
    max_rotation_deg, max_scale_change, max_shear, max_shift_fraction : float
        Quality control: a transform beyond any of these is ``flagged`` (shift as a fraction of the width).
    min_mutual_information : float
        A pair whose mutual information after registration (minus the Mattes metric) stays under this is
        ``flagged`` as a weak match (aligned pairs reach 1 or more; shots of different scenes ~0.1).
    ear_threshold : float
        Eye aspect ratio under which an eye counts as closed; a pair with eyes open in one shot and closed in
        the other (mean of both eyes) is ``flagged``.
    min_overlap : float
        A transform that leaves less than this fraction of the flash frame covered by the studio image
        ``failed`` (nothing to learn from).
    interpolator : {"linear", "bspline", "lanczos"}
        Interpolation of the final RGB warp.
    png_compression : int
        zlib level of the PNGs written (1 is ~5x faster than 9 on photos).
    """

    max_side_px: int = 1024
    histogram_bins: int = 50
    sampling: Literal["random", "regular", "none"] = "random"
    sampling_fraction: float = 0.05
    seed: int = 0
    learning_rate_px: float = 1.0
    min_step_px: float = 1e-3
    iterations: int = 200
    relaxation: float = 0.5
    shrink_factors: tuple[int, ...] = (4, 2, 1)
    smoothing_sigmas_px: tuple[float, ...] = (1.0, 0.5, 0.0)
    threads: int = 1
    refine: bool = True
    refine_scale: float = 4.0
    refine_sampling_fraction: float = 0.02
    refine_step_px: float = 0.25
    refine_min_step_px: float = 0.01
    refine_iterations: int = 100
    initialization: Literal["landmarks", "geometry"] = "landmarks"
    coarse_side_px: int = 128
    coarse_iterations: int = 60
    coarse_rotations_deg: tuple[float, ...] = (-8.0, 8.0)
    face_max_side_px: int = 800
    face_upsample: int = 0
    min_face_px: float | None = None
    mask: Literal["face", "none"] = "none"
    mask_scale: float = 2.5
    max_rotation_deg: float = 15.0
    max_scale_change: float = 0.15
    max_shear: float = 0.1
    max_shift_fraction: float = 0.1
    ear_threshold: float = 0.2
    min_mutual_information: float = 0.25
    min_overlap: float = 0.5
    interpolator: Literal["linear", "bspline", "lanczos"] = "linear"
    png_compression: int = 1

    def __post_init__(self) -> None:
        check_finite_fields(self)
        if self.max_side_px < 32:
            raise ValueError(f"max_side_px must be >= 32, got {self.max_side_px}")
        if self.histogram_bins < 4:
            raise ValueError(f"histogram_bins must be >= 4, got {self.histogram_bins}")
        if self.sampling not in ("random", "regular", "none"):
            raise ValueError(f"sampling must be 'random', 'regular' or 'none', not {self.sampling!r}")
        if not (0.0 < self.sampling_fraction <= 1.0 and 0.0 < self.refine_sampling_fraction <= 1.0):
            raise ValueError("sampling_fraction and refine_sampling_fraction must be in (0, 1]")
        if len(self.shrink_factors) != len(self.smoothing_sigmas_px) or not self.shrink_factors:
            raise ValueError("shrink_factors and smoothing_sigmas_px must be non-empty and of the same length")
        if any(f < 1 for f in self.shrink_factors):
            raise ValueError(f"shrink_factors must be >= 1, got {self.shrink_factors}")
        if self.learning_rate_px <= 0 or self.min_step_px <= 0 or self.iterations < 1:
            raise ValueError("learning_rate_px and min_step_px must be > 0 and iterations >= 1")
        if not 0.0 < self.relaxation < 1.0:
            raise ValueError(f"relaxation must be in (0, 1), got {self.relaxation}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        if self.initialization not in ("landmarks", "geometry"):
            raise ValueError(f"initialization must be 'landmarks' or 'geometry', not {self.initialization!r}")
        if self.mask not in ("face", "none"):
            raise ValueError(f"mask must be 'face' or 'none', not {self.mask!r}")
        if self.refine_scale <= 1.0 or min(self.refine_step_px, self.refine_min_step_px) <= 0 \
                or self.refine_iterations < 1:
            raise ValueError("refine_scale must be > 1, refine_step_px and refine_min_step_px > 0 and "
                             "refine_iterations >= 1")
        if self.mask_scale <= 1.0:
            raise ValueError(f"mask_scale must be > 1 (the face box grown), got {self.mask_scale}")
        if self.interpolator not in ("linear", "bspline", "lanczos"):
            raise ValueError(f"interpolator must be 'linear', 'bspline' or 'lanczos', not {self.interpolator!r}")
        if self.min_face_px is not None and not self.min_face_px > 0:
            raise ValueError(f"min_face_px must be positive, got {self.min_face_px}")
        if not 0 <= self.png_compression <= 9:
            raise ValueError(f"png_compression must be in 0..9, got {self.png_compression}")
        for name in ("max_rotation_deg", "max_scale_change", "max_shear", "max_shift_fraction", "ear_threshold",
                     "min_overlap", "min_mutual_information"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    def as_dict(self) -> dict:
        """The settings as a JSON-ready dict (recorded beside each registered pair)."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in fields(self)}


#: The settings every function uses unless given others.
DEFAULT_CONFIG: Final = RegistrationConfig()


@dataclass(frozen=True)
class AffineEstimate:
    """What :func:`estimate_affine` found.

    Attributes
    ----------
    transform : sitk.AffineTransform
        Maps a flash point to the studio point, full-resolution pixels (centre (0, 0): ``studio = M x + t``).
    initial : sitk.AffineTransform
        The starting transform (landmark similarity or image centres).
    initialization : str
        ``"landmarks"`` or ``"geometry"`` (what ``initial`` came from).
    metric_before, metric_after : float
        Mattes MI (negative; lower is better) with the image centres aligned, and at ``transform``.
    iterations : int
        Optimiser iterations, summed over the pyramid levels.
    stop_condition : str
        SimpleITK's description of why the last level stopped.
    seconds : float
        Wall time of the estimate (face landmarks included).
    downscale : int
        The factor of the registration copy.
    flash_landmarks, studio_landmarks : dict or None
        dlib's landmarks of the face used (full-resolution pixels), when one was found in that shot.
    """

    transform: sitk.AffineTransform
    initial: sitk.AffineTransform
    initialization: str
    metric_before: float
    metric_after: float
    iterations: int
    stop_condition: str
    seconds: float
    downscale: int
    flash_landmarks: dict | None = field(default=None, repr=False)
    studio_landmarks: dict | None = field(default=None, repr=False)


@dataclass(frozen=True)
class PairResult:
    """One row of ``registration.csv``: the outcome of registering one pair."""

    subject: str
    pose: str
    status: Status
    reason: str = ""
    metric_before: float = float("nan")
    metric_after: float = float("nan")
    iterations: int = 0
    seconds: float = 0.0
    parameters: tuple[float, ...] = (float("nan"),) * 6
    initialization: str = ""
    out_dir: Path | None = None
    skipped: bool = False

    @property
    def key(self) -> str:
        return f"{self.subject}/{self.pose}"


@dataclass(frozen=True)
class RegistrationSummary:
    """What :func:`register_tree` did, pair by pair (in discovery order; layout problems last)."""

    aligned_dir: Path
    results: tuple[PairResult, ...]
    csv_path: Path

    def count(self, status: Status) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def ok(self) -> int:
        return self.count("ok")

    @property
    def flagged(self) -> int:
        return self.count("flagged")

    @property
    def failed(self) -> int:
        return self.count("failed")

    @property
    def skipped(self) -> int:
        return sum(r.skipped for r in self.results)

    @property
    def any_failed(self) -> bool:
        return self.failed > 0


def _interpolator(name: str) -> int:
    import SimpleITK as sitk

    return {"linear": sitk.sitkLinear, "bspline": sitk.sitkBSpline, "lanczos": sitk.sitkLanczosWindowedSinc}[name]
