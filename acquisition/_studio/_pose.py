"""How the subject (and the camera) moved between the flash shot and the studio shot of one pose.

The flash shot is the reference: subject and camera as the portrait shows them. In the other shots a point
``p`` of the subject (output pixels of the flash shot) lands at

    T(p) = C(S(p + h(p)))

with ``h`` the head turn (a smooth bump of displacement around the nose, zero beyond the face), ``S`` the
subject's affine and ``C`` the camera's (identity on a tripod); a background point lands at ``C(p)``. The
registration's target is the least-squares affine of ``T`` over the face box of the flash shot: what the best
affine registration of the face can reach.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

import numpy as np

from ._analysis import PortraitAnalysis
from ._config import StudioConfig
from ._framing import Framing

__all__ = ["PoseMotion", "StudioPose", "draw_pose", "face_grid", "pose_seed"]

#: Tags a pose's random stream, so it never equals a shot's (``[seed, shot_index]``).
_POSE_STREAM: Final = 0x9053
#: The head turn fades out over an ellipse around the nose tip, in face widths (across, along the face).
_TURN_RADII: Final = (0.55, 0.75)
_FIT_GRID: Final = 41


@dataclass(frozen=True)
class PoseMotion:
    """An affine map of output pixels: ``moved_point = matrix @ flash_point + translation``.

    x right, y down, origin at the centre of the top-left pixel. As a shot's ``motion`` it is the
    registration's ground truth: the least-squares affine of the true flash-to-studio motion over the face.
    """

    matrix: tuple[tuple[float, float], tuple[float, float]]
    translation: tuple[float, float]

    @classmethod
    def identity(cls) -> PoseMotion:
        return cls(((1.0, 0.0), (0.0, 1.0)), (0.0, 0.0))

    @classmethod
    def from_array(cls, forward: np.ndarray) -> PoseMotion:
        """From the 2x3 forward matrix ``[matrix | translation]``."""
        m = np.asarray(forward, np.float64)
        return cls(((float(m[0, 0]), float(m[0, 1])), (float(m[1, 0]), float(m[1, 1]))),
                   (float(m[0, 2]), float(m[1, 2])))

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

    def then(self, other: PoseMotion) -> PoseMotion:
        """``other ∘ self``: first this motion, then ``other``."""
        a, b = self.as_array(), other.as_array()
        return PoseMotion.from_array(np.hstack([b[:, :2] @ a[:, :2], (b[:, :2] @ a[:, 2] + b[:, 2])[:, None]]))

    def inverse(self) -> PoseMotion:
        m = np.linalg.inv(np.asarray(self.matrix, np.float64))
        return PoseMotion.from_array(np.hstack([m, (-m @ np.asarray(self.translation, np.float64))[:, None]]))


def pose_seed(seed: int, shot_index: int, take: int = 0) -> list[int]:
    """The random stream of the pose shot ``shot_index`` belongs to: shots ``2k`` and ``2k + 1`` form pose ``k``.

    Both shots of a pose draw the same motion, head turn and blink from it, whichever is taken first. A retake
    (``take`` 1, 2, ...) of the pose draws afresh: the subject does not repeat a pose to the pixel.
    """
    stream = [int(seed), int(shot_index) // 2, _POSE_STREAM]
    return [*stream, int(take)] if take else stream


@dataclass(frozen=True, eq=False)
class StudioPose:
    """One pose: what moved between its flash shot (the reference) and its other shots, exactly.

    Attributes
    ----------
    motion, backdrop : str
        The :class:`StudioConfig` settings it was drawn under.
    subject, camera : PoseMotion
        The drawn affine of the subject ``S`` (identity with ``motion="camera"``) and of the frame ``C``
        (identity with ``motion="subject"``), output pixels.
    nose : (float, float)
        Nose tip in the flash shot, output pixels: the centre of the head turn.
    turn : (float, float)
        Displacement of the nose tip by the head turn, output pixels (zero without subject motion).
    turn_axes : ((float, float), (float, float))
        Radii of the head turn's ellipse (across, along the face) and the face's "right" unit vector.
    blink : {"flash", "studio"} or None
        The shot whose eyes are closed ("studio" = the shots without flash).
    face_box : (float, float, float, float)
        The face in the flash shot (left, top, right, bottom), output pixels: where the target is fitted. The
        face's square from its settled landmarks (:func:`acquisition.faces.face_square`), else dlib's box.
    ground_truth : PoseMotion
        The registration's target: the least-squares affine of the true motion ``T`` over ``face_box``.
    take : int
        0 for the pose's first take, 1 for its first retake, ...
    fault : {"motion", "overexposed", "no_flash", "blur", "blink"} or None
        What went wrong with this take (:class:`StudioConfig` ``faults``).
    fault_shot : {"flash", "studio"} or None
        The shot the fault is in (None for ``motion``, which is between the shots).
    blur : (str, float, float) or None
        With ``fault="blur"``: ``("defocus", sigma, 0)`` or ``("shake", length, angle_deg)``, output pixels.
    """

    motion: str
    backdrop: str
    subject: PoseMotion
    camera: PoseMotion
    nose: tuple[float, float]
    turn: tuple[float, float]
    turn_axes: tuple[tuple[float, float], tuple[float, float]]
    blink: Literal["flash", "studio"] | None
    face_box: tuple[float, float, float, float]
    ground_truth: PoseMotion
    take: int = 0
    fault: str | None = None
    fault_shot: Literal["flash", "studio"] | None = None
    blur: tuple[str, float, float] | None = None

    @property
    def head_turn_px(self) -> float:
        """Peak displacement of the head turn (at the nose tip), output pixels."""
        return float(math.hypot(*self.turn))

    def eyes_closed(self, *, flash: bool) -> bool:
        """Whether the eyes are closed in this pose's shot with (``flash=True``) or without flash."""
        return self.blink == ("flash" if flash else "studio")

    def head_turn(self, points: np.ndarray) -> np.ndarray:
        """The head turn's displacement ``h(p)`` of (N, 2) flash-shot points, output pixels."""
        points = np.asarray(points, np.float64).reshape(-1, 2)
        (rx, ry), right = self.turn_axes
        d = points - np.asarray(self.nose)
        across = (d @ np.asarray(right)) / rx
        along = (d @ np.array([-right[1], right[0]])) / ry
        r2 = across * across + along * along
        weight = np.where(r2 < 1.0, (1.0 - np.minimum(r2, 1.0)) ** 2, 0.0)  # C1 bump: 1 at the nose, 0 at r = 1
        return weight[:, None] * np.asarray(self.turn)

    def subject_map(self, points: np.ndarray) -> np.ndarray:
        """Where (N, 2) subject points of the flash shot are in the studio shot: ``C(S(p + h(p)))``."""
        points = np.asarray(points, np.float64).reshape(-1, 2)
        return self.camera.apply(self.subject.apply(points + self.head_turn(points)))

    def background_map(self, points: np.ndarray) -> np.ndarray:
        """Where (N, 2) background points of the flash shot are in the studio shot: ``C(p)``."""
        return self.camera.apply(np.asarray(points, np.float64).reshape(-1, 2))

    def subject_source(self, points: np.ndarray, *, iterations: int = 5) -> np.ndarray:
        """The inverse of :meth:`subject_map`: flash-shot points that land on (N, 2) studio-shot points.

        Solves ``p + h(p) = S^-1 C^-1 x`` by fixed-point iteration (the head turn's gradient is ~0.04, so each
        step gains four digits).
        """
        target = self.subject.inverse().apply(self.camera.inverse().apply(points))
        p = target.copy()
        if self.head_turn_px > 0:
            for _ in range(iterations):
                p = target - self.head_turn(p)
        return p

    def as_meta(self) -> dict[str, Any]:
        """The pose's entries of ``meta.json`` (the studio shot's ``Shot.extra``)."""
        return {"ground_truth_transform": self.ground_truth.as_meta(),
                "subject_transform": self.subject.as_meta(), "camera_transform": self.camera.as_meta(),
                "motion": self.motion, "backdrop": self.backdrop, "blink": self.blink,
                "head_turn_px": round(self.head_turn_px, 4), "face_box": [round(v, 3) for v in self.face_box],
                "take": self.take, "fault": None if self.fault is None else {
                    "kind": self.fault, "shot": self.fault_shot,
                    **({} if self.blur is None else {"blur": self.blur[0], "blur_px": round(self.blur[1], 3),
                                                     "angle_deg": round(self.blur[2], 2)})}}


def _affine(u: np.ndarray, fraction: float, width: int, height: int, cfg: StudioConfig) -> PoseMotion:
    """A small affine about the frame centre from five uniforms in [-1, 1]: rotation, scale, shear, shift (a
    fraction of the frame's shorter side, so that a wide frame's face is not shifted out of its few rows)."""
    if fraction <= 0:
        return PoseMotion.identity()
    angle = np.deg2rad(u[0] * cfg.max_rotation_deg * fraction)
    scale = 1.0 + u[1] * cfg.max_scale * fraction
    shear = u[2] * cfg.max_shear * fraction
    shift = u[3:5] * cfg.max_shift * fraction * min(width, height)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    matrix = scale * rot @ np.array([[1.0, shear], [0.0, 1.0]])
    centre = np.array([(width - 1) / 2, (height - 1) / 2])
    return PoseMotion.from_array(np.hstack([matrix, (centre - matrix @ centre + shift)[:, None]]))


def _fit_affine(src: np.ndarray, dst: np.ndarray) -> PoseMotion:
    """Least-squares affine ``dst ≈ A src + t``."""
    design = np.hstack([src, np.ones((len(src), 1))])
    solution, *_ = np.linalg.lstsq(design, dst, rcond=None)
    return PoseMotion.from_array(solution.T)


def face_grid(face_box: Sequence[float], count: int = _FIT_GRID) -> np.ndarray:
    """(count², 2) points evenly covering the face box (cell centres): the region the target is fitted on."""
    left, top, right, bottom = face_box
    xs = left + (np.arange(count) + 0.5) * (right - left) / count
    ys = top + (np.arange(count) + 0.5) * (bottom - top) / count
    gx, gy = np.meshgrid(xs, ys)
    return np.column_stack([gx.ravel(), gy.ravel()])


def _large(u: np.ndarray, low: float, high: float) -> np.ndarray:
    """Uniforms in [-1, 1] pushed out to magnitudes in [low, high], signs kept (a fault's large motion)."""
    return np.where(u < 0, -1.0, 1.0) * (low + (high - low) * np.abs(u))


def _draw_fault(u: np.ndarray, cfg: StudioConfig, take: int, can_blink: bool) -> tuple[str | None, str | None]:
    """The take's fault and the shot it is in, from three uniforms in [0, 1)."""
    kinds = [k for k in cfg.faults if k != "blink" or can_blink]
    if take >= cfg.fault_takes or not kinds or u[0] >= cfg.fault_probability:
        return None, None
    kind = kinds[min(len(kinds) - 1, int(u[1] * len(kinds)))]
    shot = {"motion": None, "overexposed": "studio", "no_flash": "flash"}.get(
        kind, "flash" if u[2] < 0.5 else "studio")
    return kind, shot


def draw_pose(rng: np.random.Generator, an: PortraitAnalysis, framing: Framing, cfg: StudioConfig, *,
              take: int = 0) -> StudioPose:
    """Draw one pose: the subject's and the camera's affines, the head turn, the blink and the take's fault (if
    any), and fit the target.

    Every number is drawn, in a fixed order, whatever the settings, so that each keeps its random stream (the
    fault's numbers come last: a pose without a fault is the one drawn before faults existed).
    """
    width, height = framing.size
    subject_u = rng.uniform(-1.0, 1.0, size=5)
    camera_u = rng.uniform(-1.0, 1.0, size=5)
    turn_size, turn_angle = rng.uniform(0.0, 1.0), rng.uniform(0.0, 2 * np.pi)
    blink_u, blink_which = rng.uniform(0.0, 1.0, size=2)
    fault_u = rng.uniform(0.0, 1.0, size=5)
    fault, fault_shot = _draw_fault(fault_u, cfg, take, an.landmarks is not None)

    moves_subject = cfg.motion in ("subject", "both")
    shake = {"subject": 0.0, "camera": 1.0, "both": cfg.camera_shake}[cfg.motion]
    if fault == "motion":  # 2.5-3.5 times the limits, in whatever moves
        if moves_subject:
            subject_u = _large(subject_u, 2.5, 3.5)
        else:
            camera_u = _large(camera_u, 2.5, 3.5)
    subject = _affine(subject_u, 1.0 if moves_subject else 0.0, width, height, cfg)
    camera = _affine(camera_u, shake, width, height, cfg)
    f = an.frame
    face_width = f.face_width * framing.scale
    down = f.down
    right = np.array([-down[1], down[0]])
    if right[0] < 0:
        right = -right
    # Mostly a turn (across the face), less a nod (along it).
    peak = turn_size * cfg.max_head_turn * face_width if moves_subject else 0.0
    direction = np.cos(turn_angle) * right + 0.5 * np.sin(turn_angle) * np.array([-right[1], right[0]])
    turn = peak * direction / float(np.hypot(*direction))
    nose = framing.to_output(f.nose_tip[None])[0]
    blink: Literal["flash", "studio"] | None = None
    if an.landmarks is not None and blink_u < cfg.blink_probability:
        blink = "flash" if blink_which < 0.5 else "studio"
    if fault == "blink":
        blink = fault_shot
    blur = None
    if fault == "blur":  # a defocus of 1.5-2.25 % of the face width, or a shake 6-9 % of it long
        size = (0.03 + 0.015 * fault_u[3]) * face_width
        blur = ("defocus", 0.5 * size, 0.0) if fault_u[4] < 0.5 else ("shake", 2.0 * size, 360.0 * fault_u[3])
    # The target's region: the face's square from its settled landmarks, which the registration finds again on
    # the rendered flash shot to within 0.2-1.5 % (dlib's detection box: 6.5-8 %, which moved a 12 MP target by
    # up to 1.1 px).
    region = an.square if an.square is not None else an.face
    corners = framing.to_output(np.array([[region.left, region.top], [region.right, region.bottom]]))
    face_box = (float(corners[0, 0]), float(corners[0, 1]), float(corners[1, 0]), float(corners[1, 1]))
    pose = StudioPose(motion=cfg.motion, backdrop=cfg.backdrop, subject=subject, camera=camera,
                      nose=(float(nose[0]), float(nose[1])), turn=(float(turn[0]), float(turn[1])),
                      turn_axes=((_TURN_RADII[0] * face_width, _TURN_RADII[1] * face_width),
                                 (float(right[0]), float(right[1]))),
                      blink=blink, face_box=face_box, ground_truth=PoseMotion.identity(), take=int(take),
                      fault=fault, fault_shot=fault_shot, blur=blur)
    if pose.head_turn_px == 0:  # an affine motion is its own best affine
        return replace(pose, ground_truth=subject.then(camera))
    grid = face_grid(face_box)
    return replace(pose, ground_truth=_fit_affine(grid, pose.subject_map(grid)))
