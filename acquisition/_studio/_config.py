"""Every strength of the virtual studio, in one frozen dataclass."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Final, Literal

from ..checks import check_finite_fields

__all__ = ["BACKDROPS", "FAULTS", "MOTIONS", "Backdrop", "Fault", "Motion", "StudioConfig"]

Motion = Literal["subject", "camera", "both"]
Backdrop = Literal["scene", "plain", "room"]
#: What moves between the two shots of a pose (see :class:`StudioConfig`).
MOTIONS: Final = ("subject", "camera", "both")
#: What stands behind the subject (see :class:`StudioConfig`).
BACKDROPS: Final = ("scene", "plain", "room")
_TEXT_FIELDS: Final = {"motion": MOTIONS, "backdrop": BACKDROPS}
Fault = Literal["motion", "overexposed", "no_flash", "blur", "blink"]
#: What can go wrong with a pose, on demand (see :class:`StudioConfig` ``faults``): a large movement between the
#: shots, an over-exposed studio shot, a flash that did not light the flash shot (it reads "fired" but the
#: picture is dark), one shot blurred (camera shake or missed focus), a blink in one shot.
FAULTS: Final = ("motion", "overexposed", "no_flash", "blur", "blink")


@dataclass(frozen=True)
class StudioConfig:
    """How the virtual studio lights, moves and records a subject.

    Lighting values are in linear light relative to the portrait as given (1.0 = the portrait's own level);
    noise levels are standard deviations in 8-bit levels at mid-grey (shot noise grows with the signal);
    motion limits are the largest values drawn (uniformly, each sign equally likely).

    Parameters
    ----------
    studio_exposure : float
        Gain of the soft studio light at full lamp level.
    studio_tone : float
        Strength of the studio shot's mild tone mapping (0 = none): shadows lifted, highlights rolled off.
    studio_warmth : float
        Red-up/blue-down colour shift of the studio lamps (0 = neutral white).
    flash_power : float
        Gain of the flash on the face (the phone meters on the face, so 1 keeps the face at the portrait's level).
    flash_falloff : float
        Exponent on the physical inverse-square (and cosine) fall-off: 0 = flat light, 1 = a point light.
    background_distance : float
        How much farther the background is than the subject, in subject distances (1.5 = 2.5x as far, so
        1/2.5**2 = 16 % of the light).
    shading_flatten : float
        0-1, how much of the portrait's own large-scale face shading the on-axis flash removes.
    specular_strength : float
        Peak of the skin shine (forehead, nose, cheeks), in linear light at flash power 1.
    shadow_strength : float
        0-1, how dark the hard shadow of the silhouette on the background is.
    shadow_offset : tuple of float
        (x, y) displacement of that shadow, as a fraction of the frame width (the flash sits beside the lens).
    flash_coolness : float
        Blue-up/red-down colour shift of the flash (a cooler colour temperature than the lamps).
    ambient : float
        Light left with the lamps off and no flash (the dark shot).
    noise_studio, noise_flash, noise_dark : float
        Sensor noise of each kind of shot; the flash shot is noisier (the phone raises the gain).
    lighting_jitter : float
        Relative random variation, per shot, of exposures, shine and shadow (each pose lit a little differently).
    max_rotation_deg, max_scale, max_shear, max_shift : float
        Limits of the pose motion of shots without flash: rotation in degrees, relative scale change, shear,
        shift as a fraction of the frame's shorter side (its width in portrait). Defaults: a person holding
        still for 0.4 s.
    motion : {"subject", "camera", "both"}
        What moves between the flash shot and the shots without flash. ``"subject"`` (a studio: the phone on a
        tripod): the subject's silhouette moves by the drawn affine, with a small head turn, in front of a
        background that stays put. ``"camera"``: the whole frame moves rigidly (a hand-held phone, a still
        subject). ``"both"``: the subject's motion plus a small camera shake (``camera_shake``).
    backdrop : {"scene", "plain", "room"}
        What is behind the subject: the portrait's own scenery, filled in behind the subject so that what the
        moving subject uncovers looks plausible; a plain studio backdrop (smooth, a gentle gradient and
        vignette); or a textured room with strong edges (walls, shelves, pictures, a window).
    camera_shake : float
        With ``motion="both"``: the camera's motion limits as a fraction of the ``max_*`` limits.
    max_head_turn : float
        Largest out-of-plane head turn, as the displacement of the nose tip in face widths: a smooth,
        non-affine displacement of the face, peaking at the nose and fading to nothing at the face's edge
        (drawn per pose with subject motion; an affine cannot express it).
    blink_probability : float
        Chance that a pose has a blink: the eyes are closed in one of its two shots (which one is drawn too).
    faults : tuple of {"motion", "overexposed", "no_flash", "blur", "blink"}
        What may go wrong with a pose, for tests and benchmarks of the capture-time pair check: ``motion`` moves
        the subject (the frame with ``motion="camera"``) by 2.5-3.5 times the ``max_*`` limits; ``overexposed``
        lights the studio shot four times too brightly; ``no_flash`` leaves the flash shot unlit by the flash
        (the camera still reports it fired: a misfire); ``blur`` blurs one shot (a defocus of 1.5-2.25 % of the
        face width, or a shake 6-9 % of it long); ``blink`` closes the eyes in one shot. ``meta.json`` records the
        pose's ``fault``.
    fault_probability : float
        Chance that a pose's take has one of ``faults`` (drawn evenly among them); 1 = every pose.
    fault_takes : int
        How many takes of a faulty pose repeat its fault (1: the first retake is clean, as when a subject
        blinked once). Each retake draws its pose afresh.
    jpeg_quality : int
        JPEG quality of the saved shots.
    max_work_side : int
        Large user portraits are lit at most at this size (longer side, pixels) before the upsampling warp.
    """

    studio_exposure: float = 1.0
    studio_tone: float = 0.35
    studio_warmth: float = 0.02
    flash_power: float = 1.0
    flash_falloff: float = 1.0
    background_distance: float = 1.5
    shading_flatten: float = 0.7
    specular_strength: float = 0.8
    shadow_strength: float = 0.6
    shadow_offset: tuple[float, float] = (0.02, 0.012)
    flash_coolness: float = 0.12
    ambient: float = 0.015
    noise_studio: float = 1.0
    noise_flash: float = 3.0
    noise_dark: float = 8.0
    lighting_jitter: float = 0.05
    max_rotation_deg: float = 3.0
    max_scale: float = 0.03
    max_shear: float = 0.01
    max_shift: float = 0.02
    motion: Motion = "subject"
    backdrop: Backdrop = "scene"
    camera_shake: float = 0.25
    max_head_turn: float = 0.015
    blink_probability: float = 0.05
    faults: tuple[Fault, ...] = ()
    fault_probability: float = 0.0
    fault_takes: int = 1
    jpeg_quality: int = 92
    max_work_side: int = 1536

    def __post_init__(self) -> None:
        check_finite_fields(self)
        for name, allowed in _TEXT_FIELDS.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"StudioConfig.{name} must be one of {', '.join(allowed)}; "
                                 f"got {getattr(self, name)!r}")
        object.__setattr__(self, "faults", tuple(self.faults))
        unknown = [f for f in self.faults if f not in FAULTS]
        if unknown:
            raise ValueError(f"StudioConfig.faults must be among {', '.join(FAULTS)}; "
                             f"got {', '.join(map(repr, unknown))}")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _TEXT_FIELDS or f.name == "faults":
                continue
            if f.name == "shadow_offset":
                if len(value) != 2:
                    raise ValueError(f"shadow_offset must be (x, y), got {value!r}")
                object.__setattr__(self, "shadow_offset", (float(value[0]), float(value[1])))
                continue
            if value < 0:
                raise ValueError(f"StudioConfig.{f.name} must be >= 0, got {value}")
        for name in ("shading_flatten", "shadow_strength", "lighting_jitter", "max_scale", "max_shear",
                     "camera_shake", "blink_probability",
                     "fault_probability"):
            if getattr(self, name) > 1:
                raise ValueError(f"StudioConfig.{name} must be <= 1, got {getattr(self, name)}")
        if self.max_rotation_deg > 45:
            raise ValueError(f"StudioConfig.max_rotation_deg must be <= 45, got {self.max_rotation_deg}")
        if self.max_head_turn > 0.1:
            raise ValueError(f"StudioConfig.max_head_turn must be <= 0.1 face widths, got {self.max_head_turn}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"StudioConfig.jpeg_quality must be 1-100, got {self.jpeg_quality}")
        if self.max_work_side < 64:
            raise ValueError(f"StudioConfig.max_work_side must be >= 64, got {self.max_work_side}")

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able values, for ``meta.json``."""
        out = asdict(self)
        out["shadow_offset"] = list(self.shadow_offset)
        out["faults"] = list(self.faults)
        return out
