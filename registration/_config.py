"""Every setting of the registration stage, in one frozen dataclass, and the results it produces."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

from acquisition.checks import check_finite_fields

if TYPE_CHECKING:  # annotations only: `prep register --help` reads the defaults without loading SimpleITK
    import SimpleITK as sitk

    from acquisition.faces import FaceBox

__all__ = ["DEFAULT_CONFIG", "MIN_FACE_FRACTION", "AffineEstimate", "PairResult", "RegistrationConfig",
           "RegistrationSummary"]

Status = Literal["ok", "flagged", "failed"]

#: The smallest face registration looks for by default, as a fraction of the longer side. A face-led search
#: needs a face a few hundred pixels across; searching a 12 MP photo without a face down to the toolkit's 2 %
#: (full-resolution HOG passes) cost a second per pair, a fifth of the whole command.
MIN_FACE_FRACTION: Final = 0.05


@dataclass(frozen=True)
class RegistrationConfig:
    """Settings of the mutual-information affine registration and of its quality control.

    The defaults are those measured in ``bench/register.py`` (subject motion in front of a still room or
    backdrop, real flash/ambient pairs, 12 MP timing). Sizes in pixels of the working images ("view pixels")
    say so; every transform is in full-resolution pixels.

    Parameters
    ----------
    region : {"face", "frame"}
        ``face``: when both shots show a face, the face decides the match: after a small whole-frame level
        that sorts the starts, the metric compares the head and shoulders (the flash face box grown by
        ``head_scale``), then the face box itself; the background, which stays put while the subject moves,
        does not decide. Without a face, and with ``frame``, the whole frame.
    head_scale, face_scale : float
        The two regions of the face-led search, as multiples of the flash shot's face box.
    head_side_px, face_side_px : int
        Longer side of those regions in the working images (they are downscaled to it, never upscaled).
    coarse_side_px : int
        The face-led search starts with the whole frame at this size (which start is in the right basin).
    context_scale : float
        The normalisation sees this much more than the region (so its edges are normalised like its middle).
    max_side_px : int
        Whole-frame search: longer side of the working copy (a first level at half of it).
    contrast_sigma_px : float
        Gaussian of the local contrast normalisation (:mod:`registration._views`), in view pixels.
    histogram_bins : int
        Mattes mutual information bins.
    samples : int
        Pixels sampled per metric evaluation (random, seeded); all of them when the region is smaller.
    seed : int
        Sampling seed: the same seed gives byte-identical outputs.
    learning_rate_px, min_step_px : float
        RegularStepGradientDescent's first step at the first level (a quarter of it at the last) and its last
        step at the last level (twice it at the first), in view pixels.
    iterations : int
        Maximum optimiser iterations per start and level.
    relaxation : float
        Step shrink factor when the gradient changes direction.
    keep : int
        Starts handed from one level to the next (the best by the metric over the whole region).
    escape_px, escape_scale : float
        Whole-frame search: the last level also starts from the best result scaled by ``1 +- escape_scale``
        (repeated textures have optima a few pixels apart), and, when ``escape_px`` > 0, shifted by that many
        view pixels each way (off by default: on the real pairs the shifted starts changed no result that the
        scaled ones and the polish did not, and cost a third of a 12 MP estimate).
    frame_rotations_deg : tuple of float
        The image centres are also tried turned by these angles (about the face centre when face-led).
    features : int
        Whole-frame search: SIFT features per shot for the feature-matched starts (0 = none).
    feature_ratios : tuple of float
        Lowe's ratio tests tried, one start (affine and similarity) per ratio.
    decisive_matches : int
        Whole-frame search: a feature-matched fit that this many matches agree with (RANSAC inliers) makes the
        turned image-centre starts unnecessary (``frame_rotations_deg``: they cover a turn the features could
        not see). On the real pairs, fits had 13-24 inliers on weak texture and 48-1100 elsewhere, where no
        turned start ever reached an optimum the features did not.
    ecc_max_move_px : float
        The ECC polish is kept when it moves the region's corners by at most this (view pixels) from the
        mutual-information optimum.
    face_field_degree : int
        Face-led search: the result is refitted, uniformly over the face's square (from its settled landmarks,
        :func:`acquisition.faces.face_square`), to a polynomial field of this degree fitted to the face's dense
        motion (:mod:`registration._field`): a head turn moves the nose more than the outline, and the metric
        weights the face by its texture (12 MP subject-motion pairs: 1.43 -> 0.08 px median); 0: no refit.
    face_field_max_px : float
        The refit is kept when it moves the face's square by at most this (working pixels).
    threads : int
        SimpleITK threads; 1 keeps results identical whatever the machine (floating-point sums in order).
    initialization : {"landmarks", "geometry"}
        ``landmarks``: a similarity fitted to dlib's 68 face landmarks of both shots is one of the starts;
        ``geometry``: only the image centres (and, without a face, matched features).
    face_max_side_px : int
        Face detection and landmarks run on a copy this large.
    min_face_px : float, optional
        When that copy shows no face, larger copies are searched for faces down to this width in pixels of
        the full image (:func:`acquisition.faces.detect_faces`); default ``DEEPFLASH_MIN_FACE_PX`` when set,
        else 5 % of the longer side (registration's own default: a smaller face cannot lead the match, and
        the search of a 12 MP photo without a face down to 2 % costs a second).
    max_rotation_deg, max_scale_change, max_shear, max_shift_fraction : float
        Quality control: a transform beyond any of these is ``flagged`` (shift as a fraction of the width).
    min_mutual_information : float
        A pair whose mutual information after registration (minus the Mattes metric, on the normalised images
        of the last region) stays under this is ``flagged`` as a weak match.
    max_face_error_px : float
        The independent check of the face (:func:`check_face_alignment`): a pair whose face it finds off by
        more than this many pixels of the face's working image (about ``face_side_px`` across) is ``flagged``.
    ear_threshold : float
        Eye aspect ratio under which an eye counts as closed; a pair with eyes open in one shot and closed in
        the other (mean of both eyes) is ``flagged``.
    min_overlap : float
        A transform that leaves less than this fraction of the flash frame covered by the studio image
        ``failed`` (nothing to learn from).
    interpolator : {"linear", "cubic", "lanczos"}
        Interpolation of the final RGB warp (OpenCV).
    png_compression : int
        zlib level of the PNGs written (1 is ~5x faster than 9 on photos).
    """

    region: Literal["face", "frame"] = "face"
    head_scale: float = 3.0
    face_scale: float = 1.0
    head_side_px: int = 160
    face_side_px: int = 320
    coarse_side_px: int = 160
    context_scale: float = 1.6
    max_side_px: int = 640
    contrast_sigma_px: float = 3.0
    histogram_bins: int = 32
    samples: int = 30000
    seed: int = 0
    learning_rate_px: float = 1.0
    min_step_px: float = 0.005
    iterations: int = 80
    relaxation: float = 0.5
    keep: int = 3
    escape_px: float = 0.0
    escape_scale: float = 0.012
    frame_rotations_deg: tuple[float, ...] = (-6.0, 6.0)
    features: int = 3000
    feature_ratios: tuple[float, ...] = (0.9, 0.8)
    decisive_matches: int = 40
    ecc_max_move_px: float = 2.0
    face_field_degree: int = 4
    face_field_max_px: float = 2.0
    threads: int = 1
    initialization: Literal["landmarks", "geometry"] = "landmarks"
    face_max_side_px: int = 800
    face_upsample: int = 0
    min_face_px: float | None = None
    max_rotation_deg: float = 15.0
    max_scale_change: float = 0.15
    max_shear: float = 0.1
    max_shift_fraction: float = 0.1
    min_mutual_information: float = 0.02
    max_face_error_px: float = 1.0
    ear_threshold: float = 0.2
    min_overlap: float = 0.5
    interpolator: Literal["linear", "cubic", "lanczos"] = "linear"
    png_compression: int = 1

    def __post_init__(self) -> None:
        check_finite_fields(self)
        if self.region not in ("face", "frame"):
            raise ValueError(f"region must be 'face' or 'frame', not {self.region!r}")
        if min(self.max_side_px, self.face_side_px, self.head_side_px, self.coarse_side_px) < 32:
            raise ValueError("max_side_px, face_side_px, head_side_px and coarse_side_px must be >= 32")
        if self.face_scale <= 0 or self.head_scale < self.face_scale or self.context_scale < 1.0:
            raise ValueError("face_scale must be > 0, head_scale >= face_scale and context_scale >= 1")
        if self.histogram_bins < 4:
            raise ValueError(f"histogram_bins must be >= 4, got {self.histogram_bins}")
        if self.samples < 100:
            raise ValueError(f"samples must be >= 100, got {self.samples}")
        if self.learning_rate_px <= 0 or self.min_step_px <= 0 or self.iterations < 1:
            raise ValueError("learning_rate_px and min_step_px must be > 0 and iterations >= 1")
        if not 0.0 < self.relaxation < 1.0:
            raise ValueError(f"relaxation must be in (0, 1), got {self.relaxation}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.threads < 1 or self.keep < 1 or self.decisive_matches < 1:
            raise ValueError("threads, keep and decisive_matches must be >= 1")
        if self.contrast_sigma_px <= 0 or self.features < 0:
            raise ValueError("contrast_sigma_px must be > 0 and features >= 0")
        if not all(0.0 < r < 1.0 for r in self.feature_ratios):
            raise ValueError(f"feature_ratios must lie in (0, 1), got {self.feature_ratios}")
        if self.initialization not in ("landmarks", "geometry"):
            raise ValueError(f"initialization must be 'landmarks' or 'geometry', not {self.initialization!r}")
        if self.interpolator not in ("linear", "cubic", "lanczos"):
            raise ValueError(f"interpolator must be 'linear', 'cubic' or 'lanczos', not {self.interpolator!r}")
        if self.min_face_px is not None and not self.min_face_px > 0:
            raise ValueError(f"min_face_px must be positive, got {self.min_face_px}")
        if not 0 <= self.png_compression <= 9:
            raise ValueError(f"png_compression must be in 0..9, got {self.png_compression}")
        for name in ("max_rotation_deg", "max_scale_change", "max_shear", "max_shift_fraction", "ear_threshold",
                     "min_overlap", "min_mutual_information", "escape_px", "escape_scale", "ecc_max_move_px",
                     "max_face_error_px", "face_field_degree", "face_field_max_px"):
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
        The start the winning result came from (landmark similarity, matched features or image centres).
    initialization : str
        Name of that start (``"landmarks"``, ``"geometry"``, ``"geometry+6deg"``, ``"features-affine-0.9"``...).
    metric_before, metric_after : float
        Mattes MI (negative; lower is better) over the region's normalised images at the first level (best start
        after its optimisation) and at ``transform`` (last level).
    iterations : int
        Optimiser iterations, summed over starts and levels.
    stop_condition : str
        SimpleITK's description of why the winning run of the last level stopped.
    seconds : float
        Wall time of the estimate (face landmarks included).
    region : {"face", "frame"}
        What decided the match: the face (head, then face box) or the whole frame.
    scale_px : float
        Full-resolution pixels per pixel of the last level's working image.
    flash_face, studio_face : FaceBox or None
        The matched faces (full-resolution pixels), when found.
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
    region: Literal["face", "frame"] = "frame"
    scale_px: float = 1.0
    flash_face: FaceBox | None = field(default=None, repr=False)
    studio_face: FaceBox | None = field(default=None, repr=False)
    flash_landmarks: dict | None = field(default=None, repr=False)
    studio_landmarks: dict | None = field(default=None, repr=False)


@dataclass(frozen=True)
class PairResult:
    """One row of ``registration.csv``: the outcome of registering one pair.

    ``face_check_px``: the independent check's reading of the face's misalignment, full-resolution pixels;
    ``face_check_working_px``: the same at the check's working scale (the face about ``face_side_px`` across),
    which ``max_face_error_px`` limits (NaN without a face).
    """

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
    region: str = ""
    face_check_px: float = float("nan")
    face_check_working_px: float = float("nan")
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
