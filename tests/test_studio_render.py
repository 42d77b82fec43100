"""The virtual studio's renderer: exact pose motion, flash look, determinism, portraits (measured on pixels)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from acquisition.errors import AcquisitionError
from acquisition.faces import detect_faces, face_landmarks
from acquisition.imageio import write_image
from acquisition.sim import (
    Portrait,
    PoseMotion,
    StudioConfig,
    default_portraits,
    load_portraits,
    render_pair,
    render_shot,
)

SIZE = (480, 640)
LUMA = np.array([0.2126, 0.7152, 0.0722])


@pytest.fixture(scope="module")
def portraits() -> dict[str, Portrait]:
    return {p.name: p for p in default_portraits()}


@pytest.fixture(scope="module")
def astro_pair(portraits):
    return render_pair(portraits["astronaut"], size=SIZE, seed=0)


def _luma(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64) @ LUMA


def _noise_sigma(image: np.ndarray) -> float:
    """Noise standard deviation after Immerkaer (a Laplacian-difference kernel blind to smooth content; its
    response to white noise has standard deviation 6 sigma), made robust with the median."""
    grey = _luma(image)
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float64)
    response = cv2.filter2D(grey, -1, kernel)[2:-2, 2:-2]
    return float(np.median(np.abs(response)) / (0.6745 * 6))


def _face_points(image: np.ndarray) -> np.ndarray:
    boxes = detect_faces(image)
    big = [b for b in boxes if b.area >= 0.8 * boxes[0].area]
    marks = face_landmarks(image, [min(big, key=lambda b: b.top)])[0]
    return np.vstack([marks[name] for name in sorted(marks)])


def test_default_portraits_are_the_two_embedded_subjects(portraits):
    assert list(portraits) == ["astronaut", "grace_hopper"]
    assert portraits["astronaut"].image.shape == (512, 512, 3)
    assert portraits["grace_hopper"].image.shape == (600, 512, 3)
    assert not portraits["astronaut"].image.flags.writeable


def test_studio_motion_is_exactly_the_recorded_transform(portraits):
    # Render the same studio shot still and moved (no noise, no jitter), then move the still one ourselves with
    # the recorded transform: they must agree to the interpolation, and a 0.25 px error must show. Whole-frame
    # motion (a hand-held phone), which moves everything rigidly; subject motion is tested below.
    portrait = portraits["grace_hopper"]
    still = StudioConfig(max_rotation_deg=0, max_scale=0, max_shear=0, max_shift=0, noise_studio=0,
                         lighting_jitter=0, motion="camera", blink_probability=0)
    moving = StudioConfig(noise_studio=0, lighting_jitter=0, motion="camera", blink_probability=0)
    ref = render_shot(portrait, lamps=1.0, flash=False, size=SIZE, seed=[3, 1], config=still)
    moved = render_shot(portrait, lamps=1.0, flash=False, size=SIZE, seed=[3, 1], config=moving)
    assert ref.motion == PoseMotion.identity()
    forward = moved.motion.as_array()
    inner = (slice(60, -60), slice(60, -60))

    def mismatch(matrix: np.ndarray) -> float:
        warped = cv2.warpAffine(ref.image, matrix, SIZE, flags=cv2.INTER_CUBIC)
        return float(np.abs(warped.astype(np.float64) - moved.image)[inner].mean())

    exact = mismatch(forward)
    nudged = forward.copy()
    nudged[0, 2] += 0.25
    assert np.abs(forward - np.eye(2, 3)).max() > 1e-3  # it did move
    assert exact < 1.5
    assert mismatch(nudged) > 1.8 * exact
    assert mismatch(cv2.invertAffineTransform(forward)) > 10 * exact


@pytest.mark.parametrize("seed", [0, 2])
def test_recorded_transform_maps_flash_landmarks_onto_studio_landmarks(portraits, seed):
    # dlib returns whole-pixel landmarks and its jaw line moves with the light, so single landmarks scatter by
    # about a pixel; the affine they imply together (least median of squares over the 68) is what must agree
    # with the recorded transform. The astronaut: dlib's landmarks on Grace Hopper's glasses wander by 2-3 px
    # between two renders of the *same* geometry, which would test dlib, not the studio. No blink (it moves the
    # eye landmarks); the head turn stays (the target is the best affine over the face, landmarks scatter by it).
    pair = render_pair(portraits["astronaut"], size=SIZE, seed=seed, config=StudioConfig(blink_probability=0))
    flash_pts, studio_pts = _face_points(pair.flash), _face_points(pair.studio)
    predicted = pair.ground_truth.apply(flash_pts)
    assert np.median(np.linalg.norm(flash_pts - studio_pts, axis=1)) > 5  # the pose really moved
    assert np.median(np.linalg.norm(predicted - studio_pts, axis=1)) < 1.5  # per landmark: whole pixels
    fitted, _ = cv2.estimateAffine2D(flash_pts, studio_pts, method=cv2.LMEDS)
    implied = flash_pts @ fitted[:, :2].T + fitted[:, 2]
    assert np.median(np.linalg.norm(implied - predicted, axis=1)) < 1.0
    shifted = predicted + np.array([2.0, 0.0])
    assert np.median(np.linalg.norm(implied - shifted, axis=1)) > 1.0  # the check can fail


def _corner_luma(image: np.ndarray) -> float:
    h, w = image.shape[0] // 6, image.shape[1] // 6
    return float(np.mean([_luma(image[:h, :w]).mean(), _luma(image[:h, -w:]).mean(), _luma(image[-h:, :w]).mean(),
                          _luma(image[-h:, -w:]).mean()]))


def _blue_red(image: np.ndarray) -> float:
    return float(image[..., 2].astype(np.float64).mean() / image[..., 0].astype(np.float64).mean())


def test_flash_shot_looks_like_a_flash(portraits, astro_pair):
    for pair in (astro_pair, render_pair(portraits["grace_hopper"], size=SIZE, seed=0)):
        flash, studio = pair.flash, pair.studio
        boxes = detect_faces(flash)
        face = min([b for b in boxes if b.area >= 0.8 * boxes[0].area], key=lambda b: b.top)
        sl = (slice(int(face.top), int(face.bottom)), slice(int(face.left), int(face.right)))
        # Brighter highlights on the face (skin shine: near-white patches), a darker frame (fall-off, far
        # background), while the face itself keeps its exposure (the phone meters on it).
        shine_flash, shine_studio = (_luma(flash[sl]) > 235).mean(), (_luma(studio[sl]) > 235).mean()
        assert shine_flash > max(0.02, 2 * shine_studio)
        assert abs(np.median(_luma(flash[sl])) - np.median(_luma(studio[sl]))) < 20
        assert _corner_luma(flash) < 0.8 * _corner_luma(studio)
        # Cooler: more blue against red on the face.
        assert _blue_red(flash[sl]) > 1.05 * _blue_red(studio[sl])
        # More sensor noise.
        assert _noise_sigma(flash) > 1.3 * _noise_sigma(studio)


def test_hard_shadow_lies_beside_the_silhouette(portraits):
    # Same flash shot with and without the shadow: the difference is dark, on one side of the head, only.
    portrait = portraits["astronaut"]
    kw = dict(lamps=0.0, flash=True, size=SIZE, seed=[0, 0])
    quiet = dict(noise_flash=0, lighting_jitter=0)
    with_shadow = render_shot(portrait, **kw, config=StudioConfig(**quiet)).image
    without = render_shot(portrait, **kw, config=StudioConfig(shadow_strength=0, **quiet)).image
    darker = _luma(without) - _luma(with_shadow)
    assert -darker[darker < 0].sum() < 0.02 * darker[darker > 0].sum()  # it darkens (bar cubic ringing)
    xs = np.nonzero(darker > 10)[1]
    assert len(xs) > 200
    box = detect_faces(without)[0]
    assert np.median(xs) > box.center[0]  # the flash is left of the lens: the shadow falls right


def test_effect_strengths_switch_effects_off(portraits):
    # With every flash effect at zero and the same noise, a flash shot is the studio shot (cool colour aside).
    portrait = portraits["astronaut"]
    plain = StudioConfig(flash_falloff=0, shading_flatten=0, specular_strength=0, shadow_strength=0,
                         flash_coolness=0, studio_warmth=0, noise_flash=0, noise_studio=0, lighting_jitter=0,
                         max_rotation_deg=0, max_scale=0, max_shear=0, max_shift=0, ambient=0, max_head_turn=0,
                         blink_probability=0)
    flash = render_shot(portrait, lamps=0.0, flash=True, size=SIZE, seed=0, config=plain).image
    studio = render_shot(portrait, lamps=1.0, flash=False, size=SIZE, seed=0, config=plain).image
    assert np.abs(flash.astype(int) - studio).max() <= 1


def test_render_is_deterministic_and_seeded(portraits):
    portrait = portraits["astronaut"]
    a = render_pair(portrait, size=(160, 200), seed=5)
    b = render_pair(portrait, size=(160, 200), seed=5)
    c = render_pair(portrait, size=(160, 200), seed=6)
    assert np.array_equal(a.flash, b.flash) and np.array_equal(a.studio, b.studio)
    assert a.ground_truth == b.ground_truth
    assert not np.array_equal(a.studio, c.studio) and a.ground_truth != c.ground_truth
    assert a.flash.shape == (200, 160, 3) and a.flash.dtype == np.uint8
    flash, studio, truth = a
    assert flash is a.flash and studio is a.studio and truth is a.ground_truth


def test_portraits_without_a_face_still_render():
    # A user's picture where dlib finds no face: the face is guessed in the middle, nothing fails.
    rng = np.random.default_rng(0)
    blobs = cv2.GaussianBlur((rng.random((96, 128, 3)) * 255).astype(np.uint8), (0, 0), 6)
    pair = render_pair(Portrait("no-face", blobs), size=(120, 90), seed=0)
    assert pair.flash.shape == pair.studio.shape == (90, 120, 3)
    assert _luma(pair.flash).std() > 1 and _luma(pair.studio).std() > 1


def test_motion_stays_within_the_configured_limits(portraits):
    cfg = StudioConfig()
    width, height = 300, 400
    centre = np.array([(width - 1) / 2, (height - 1) / 2])
    for seed in range(12):
        motion = render_shot(portraits["astronaut"], lamps=1.0, flash=False, size=(width, height), seed=seed).motion
        m = np.asarray(motion.matrix)
        angle = np.degrees(np.arctan2(m[1, 0], m[0, 0]))
        assert abs(angle) <= cfg.max_rotation_deg + 0.6  # shear tilts the second column only
        assert abs(np.sqrt(abs(np.linalg.det(m))) - 1) <= cfg.max_scale + 1e-9
        shift = motion.apply(centre[None])[0] - centre
        assert np.all(np.abs(shift) <= cfg.max_shift * width + 1e-9)
        assert PoseMotion.from_meta(motion.as_meta()) == motion


def test_bad_arguments_raise_value_error(portraits):
    with pytest.raises(ValueError, match="size"):
        render_pair(portraits["astronaut"], size=(10, 640))
    with pytest.raises(ValueError, match="lamps"):
        render_shot(portraits["astronaut"], lamps=2.0, flash=False)
    with pytest.raises(ValueError, match="shadow_strength"):
        StudioConfig(shadow_strength=1.5)
    with pytest.raises(ValueError, match="noise_flash"):
        StudioConfig(noise_flash=-1)
    with pytest.raises(ValueError, match="RGB"):
        Portrait("flat", np.zeros((64, 64), np.uint8))


def test_load_portraits_reads_one_subject_per_image(tmp_path, astronaut):
    write_image(tmp_path / "zoe.png", astronaut[::4, ::4])
    write_image(tmp_path / "anna.jpg", astronaut[::2, ::2])
    (tmp_path / ".hidden.jpg").write_bytes(b"not an image")
    (tmp_path / "notes.txt").write_text("ignored")
    portraits = load_portraits(tmp_path)
    assert [p.name for p in portraits] == ["anna", "zoe"]
    assert portraits[0].image.shape == (256, 256, 3)


def test_load_portraits_errors_name_the_file(tmp_path, astronaut):
    with pytest.raises(AcquisitionError, match="no such folder"):
        load_portraits(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("no pictures here")
    with pytest.raises(AcquisitionError, match="no portrait image") as info:
        load_portraits(tmp_path)
    assert info.value.path == tmp_path
    write_image(tmp_path / "anna.jpg", astronaut[::4, ::4])
    write_image(tmp_path / "anna.png", astronaut[::4, ::4])
    with pytest.raises(AcquisitionError, match="both be subject"):
        load_portraits(tmp_path)
    (tmp_path / "anna.png").unlink()
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.raises(AcquisitionError) as info:
        load_portraits(tmp_path)
    assert info.value.path == tmp_path / "broken.jpg"
    (tmp_path / "broken.jpg").unlink()
    write_image(tmp_path / "bad name .png", astronaut[::4, ::4])
    with pytest.raises(AcquisitionError, match="subject name") as info:
        load_portraits(tmp_path)
    assert info.value.path.name == "bad name .png"
