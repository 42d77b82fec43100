"""The virtual studio's motion model, measured on pixels: a subject moving in front of a still background, the
head turn, the blink, the exact ground truth, the framing around the face and the meta.json contract."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from acquisition.faces import FaceBox, detect_faces, eye_aspect_ratio, face_landmarks, face_square
from acquisition.session import simulate_sessions
from acquisition.sim import Portrait, PoseMotion, StudioConfig, default_portraits, render_pair, render_shot

SIZE = (480, 640)
#: Both shots lit alike and noiseless: what remains between them is motion only.
UNLIT = dict(flash_falloff=0, shading_flatten=0, specular_strength=0, shadow_strength=0, flash_coolness=0,
             studio_warmth=0, noise_flash=0, noise_studio=0, lighting_jitter=0, ambient=0, blink_probability=0)
CONTRACT = {"ground_truth_transform", "subject_transform", "camera_transform", "motion", "backdrop", "blink",
            "head_turn_px", "face_box"}


@pytest.fixture(scope="module")
def portraits() -> dict[str, Portrait]:
    return {p.name: p for p in default_portraits()}


def _pixel_grid(shape: tuple[int, ...]) -> np.ndarray:
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]]
    return np.column_stack([xs.ravel(), ys.ravel()]).astype(np.float64)


def _pull(image: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """``image`` sampled at (H*W, 2) positions: the studio shot brought back onto the flash shot's pixels."""
    h, w = image.shape[:2]
    maps = positions.reshape(h, w, 2).astype(np.float32)
    return cv2.remap(image, maps[..., 0], maps[..., 1], cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)


def _inside(positions: np.ndarray, shape: tuple[int, ...], margin: int = 4) -> np.ndarray:
    h, w = shape[:2]
    x, y = positions[:, 0].reshape(h, w), positions[:, 1].reshape(h, w)
    return (x > margin) & (x < w - 1 - margin) & (y > margin) & (y < h - 1 - margin)


@pytest.mark.parametrize("motion", ["subject", "both"])
def test_ground_truth_is_exact(portraits, motion):
    # Without any lighting difference, the studio shot pulled back through the true motion is the flash shot on
    # the subject, to the interpolation; a 0.3 px error in the motion shows. The registration target (the best
    # affine over the face) departs from the true motion by at most the head turn.
    pair = render_pair(portraits["astronaut"], size=SIZE, seed=2,
                       config=StudioConfig(**UNLIT, motion=motion, backdrop="room"))
    assert pair.head_turn_px > 0.8 and np.abs(pair.subject_motion.as_array() - np.eye(2, 3)).max() > 1e-2
    grid = _pixel_grid(pair.flash.shape)
    truth = pair.true_positions(grid)
    np.testing.assert_allclose(pair.displacement_field().reshape(-1, 2), truth - grid)
    solid = cv2.erode((pair.subject_alpha() > 0.99).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    region = solid & _inside(truth, pair.flash.shape)
    assert region.mean() > 0.3

    def mismatch(positions: np.ndarray) -> float:
        return float(np.abs(_pull(pair.studio, positions).astype(np.float64) - pair.flash)[region].mean())

    exact = mismatch(truth)
    assert exact < 1.2
    assert mismatch(truth + np.array([0.3, 0.0])) > 1.5 * exact
    assert mismatch(pair.ground_truth.apply(grid)) > 2 * exact  # the target is an affine, the motion is not
    left, top, right, bottom = pair.face_box
    face = grid[(grid[:, 0] >= left) & (grid[:, 0] <= right) & (grid[:, 1] >= top) & (grid[:, 1] <= bottom)]
    departure = np.linalg.norm(pair.true_positions(face) - pair.ground_truth.apply(face), axis=1)
    assert 0.1 * pair.head_turn_px < departure.max() <= pair.head_turn_px


def test_without_head_turn_the_subject_moves_by_its_affine_and_the_target_is_that_affine(portraits):
    cfg = StudioConfig(**UNLIT, max_head_turn=0)
    pair = render_pair(portraits["grace_hopper"], size=SIZE, seed=1, config=cfg)
    assert pair.head_turn_px == 0 and pair.camera_motion == PoseMotion.identity()
    assert pair.ground_truth == pair.subject_motion  # exactly: an affine motion is its own best affine
    forward = pair.subject_motion.as_array()
    moved = cv2.warpAffine(pair.flash, forward, SIZE, flags=cv2.INTER_CUBIC)
    alpha = cv2.warpAffine(pair.subject_alpha(), forward, SIZE, flags=cv2.INTER_LINEAR)
    region = cv2.erode((alpha > 0.99).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    region[:8], region[-8:], region[:, :8], region[:, -8:] = False, False, False, False
    assert np.abs(moved.astype(float) - pair.studio)[region].mean() < 1.2


@pytest.mark.parametrize("backdrop", ["scene", "plain", "room"])
def test_background_stands_still_while_the_subject_moves(portraits, backdrop):
    pair = render_pair(portraits["astronaut"], size=SIZE, seed=3, config=StudioConfig(**UNLIT, backdrop=backdrop))
    diff = np.abs(pair.flash.astype(int) - pair.studio).max(axis=2)
    alpha = pair.subject_alpha()
    far = cv2.dilate((alpha > 0.01).astype(np.uint8), np.ones((61, 61), np.uint8)) == 0
    assert far.mean() > 0.05
    assert diff[far].max() <= 1 and diff[far].mean() < 0.01  # the same pixels in both shots (bar float rounding)
    assert np.median(diff[alpha > 0.99]) > 5  # while the subject moved
    # What the moving subject uncovers is background, not a hole: flash-shot subject pixels that the studio shot
    # shows uncovered look like the background around the subject, not like the subject.
    grid = _pixel_grid(pair.flash.shape)
    moved_alpha = _pull(alpha, pair.pose.subject_source(grid)).reshape(alpha.shape)
    uncovered = (alpha > 0.99) & (moved_alpha < 0.01)
    assert uncovered.sum() > 200
    ring = (cv2.dilate((alpha > 0.01).astype(np.uint8), np.ones((15, 15), np.uint8)) > 0) & (alpha < 0.01)
    studio = pair.studio.astype(float)
    to_background = np.linalg.norm(studio[uncovered].mean(0) - studio[ring].mean(0))
    to_subject = np.linalg.norm(studio[uncovered].mean(0) - pair.flash[uncovered].astype(float).mean(0))
    assert to_background < 0.5 * to_subject


def test_camera_motion_moves_the_whole_frame_and_both_adds_a_shake(portraits):
    camera = render_pair(portraits["astronaut"], size=SIZE, seed=4, config=StudioConfig(**UNLIT, motion="camera"))
    assert camera.subject_motion == PoseMotion.identity() and camera.head_turn_px == 0
    assert camera.ground_truth == camera.camera_motion  # the target is the frame's affine
    grid = _pixel_grid(camera.flash.shape)
    positions = camera.camera_motion.apply(grid)
    inner = _inside(positions, camera.flash.shape, margin=8)
    assert np.abs(_pull(camera.studio, positions).astype(float) - camera.flash)[inner].mean() < 1.2
    both = render_pair(portraits["astronaut"], size=SIZE, seed=4, config=StudioConfig(**UNLIT, motion="both"))
    shake = both.camera_motion.as_array() - np.eye(2, 3)
    assert 0 < np.abs(shake).max() < 0.3 * np.abs(camera.camera_motion.as_array() - np.eye(2, 3)).max() + 1e-9
    far = cv2.dilate((both.subject_alpha() > 0.01).astype(np.uint8), np.ones((61, 61), np.uint8)) == 0
    positions = both.pose.background_map(grid)
    far &= _inside(positions, both.flash.shape, margin=8)
    assert np.abs(_pull(both.studio, positions).astype(float) - both.flash)[far].mean() < 1.2  # moved with C


def test_drawn_motions_stay_within_their_limits(portraits):
    cfg = StudioConfig(motion="both")
    width, height = 300, 400
    centre = np.array([(width - 1) / 2, (height - 1) / 2])
    for seed in range(8):
        pose = render_shot(portraits["astronaut"], lamps=1.0, flash=False, size=(width, height), seed=seed,
                           config=cfg).pose
        for motion, k in ((pose.subject, 1.0), (pose.camera, cfg.camera_shake)):
            m = np.asarray(motion.matrix)
            assert abs(np.degrees(np.arctan2(m[1, 0], m[0, 0]))) <= k * cfg.max_rotation_deg + 0.6
            assert abs(np.sqrt(abs(np.linalg.det(m))) - 1) <= k * cfg.max_scale + 1e-9
            assert np.all(np.abs(motion.apply(centre[None])[0] - centre) <= k * cfg.max_shift * width + 1e-9)
            assert PoseMotion.from_meta(motion.as_meta()) == motion


def _face_width(image: np.ndarray) -> tuple[float, np.ndarray]:
    """dlib's jaw width and nose tip (the lowest nose-bridge point) of the face in ``image``."""
    box = detect_faces(image)[0]
    marks = face_landmarks(image, [box])[0]
    return float(np.hypot(*(marks["chin"][-1] - marks["chin"][0]))), marks["nose_bridge"][-1]


def test_head_turn_peaks_at_the_nose_and_stays_within_its_limit(portraits):
    # Only the head turn moves (no affine motion): measured on the pixels, the nose moves by the recorded turn,
    # the face's edge does not; the recorded field peaks at dlib's nose tip and stays within the configured
    # fraction of dlib's face width.
    cfg = StudioConfig(**UNLIT, max_rotation_deg=0, max_scale=0, max_shear=0, max_shift=0, max_head_turn=0.03)
    pair = render_pair(portraits["grace_hopper"], size=SIZE, seed=5, config=cfg)
    turn = np.asarray(pair.pose.turn)
    assert pair.head_turn_px > 2.0
    face_width, nose = _face_width(pair.flash)
    assert pair.head_turn_px <= cfg.max_head_turn * face_width * 1.1  # dlib's jaw vs the analysis' jaw

    grey = [cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) for im in (pair.flash, pair.studio)]
    flow = cv2.calcOpticalFlowFarneback(grey[0], grey[1], None, 0.5, 3, 21, 5, 7, 1.5, 0)

    def shift_at(point: np.ndarray) -> np.ndarray:
        x, y = np.round(point).astype(int)
        return flow[y, x]

    assert np.linalg.norm(shift_at(nose) - turn) < 0.35
    left, top, right, bottom = pair.face_box
    edge = np.array([left - 0.05 * (right - left), (top + bottom) / 2])  # the cheek's outline, beside the ear
    assert np.linalg.norm(shift_at(edge)) < 0.3
    grid = _pixel_grid(pair.flash.shape)
    field = np.linalg.norm(pair.pose.head_turn(grid), axis=1)
    assert field.max() == pytest.approx(pair.head_turn_px, rel=1e-3)
    assert np.linalg.norm(grid[np.argmax(field)] - nose) < 0.06 * face_width


def _mean_ear(image: np.ndarray) -> float:
    """Eye aspect ratio of dlib's landmarks, robust to the detector's box: the median over the fit from the
    detected box and refits from three boxes placed from that fit's eyes (HOG boxes come in steps of ~20 % in
    scale, and a loose box alone can misplace both eyes)."""
    def both(marks: dict) -> float:
        return (eye_aspect_ratio(marks["left_eye"]) + eye_aspect_ratio(marks["right_eye"])) / 2

    marks = face_landmarks(image, [detect_faces(image)[0]])[0]
    left, right = marks["left_eye"].mean(axis=0), marks["right_eye"].mean(axis=0)
    eyes, spread = (left + right) / 2, float(np.hypot(*(left - right)))
    boxes = [FaceBox(eyes[0] - k * spread / 2, eyes[1] - 0.26 * k * spread, eyes[0] + k * spread / 2,
                     eyes[1] + 0.74 * k * spread) for k in (2.1, 2.3, 2.5)]
    return float(np.median([both(marks)] + [both(m) for m in face_landmarks(image, boxes)]))


@pytest.mark.parametrize(("name", "size", "seed"), [
    ("astronaut", (480, 640), 0), ("astronaut", (480, 640), 4), ("astronaut", (3120, 4160), 3),
    ("grace_hopper", (480, 640), 0), ("grace_hopper", (480, 640), 2), ("grace_hopper", (3120, 4160), 3)])
def test_a_blink_reads_closed_to_dlib_and_the_other_shot_open(portraits, name, size, seed):
    # Registration's rule: mean eye aspect ratio < 0.2 is closed. Over 48 poses at three sizes dlib reads the
    # painted blink as closed in 46 (astronaut) and 40 (Grace Hopper, whose thick glasses rim sits on the lid)
    # and every open shot as open; these poses are among those it reads (the astronaut's seed 2 is one it
    # misreads: 0.21). Seeds 0 and 3 close the eyes in the flash shot, 2 and 4 in the studio shot.
    pair = render_pair(portraits[name], size=size, seed=seed, config=StudioConfig(blink_probability=1.0))
    assert pair.blink in ("flash", "studio")
    closed, other = (pair.flash, pair.studio) if pair.blink == "flash" else (pair.studio, pair.flash)
    assert _mean_ear(closed) < 0.2 <= _mean_ear(other)


def test_blinks_come_with_the_configured_probability(portraits):
    never = [render_shot(portraits["astronaut"], lamps=1.0, flash=False, size=(64, 80), seed=s,
                         config=StudioConfig(blink_probability=0.0)).pose.blink for s in range(20)]
    always = [render_shot(portraits["astronaut"], lamps=1.0, flash=False, size=(64, 80), seed=s,
                          config=StudioConfig(blink_probability=1.0)).pose.blink for s in range(20)]
    assert never == [None] * 20
    assert set(always) == {"flash", "studio"}
    # The shot named in the pose is the one rendered with closed eyes (and only that one).
    shot = render_shot(portraits["astronaut"], lamps=1.0, flash=False, size=(64, 80), seed=0,
                       config=StudioConfig(blink_probability=1.0))
    assert shot.eyes_closed == (shot.pose.blink == "studio")


def _tall_portrait() -> Portrait:
    """A full-length photo's proportions (970 x 2204): the astronaut with sky above and her suit continued below."""
    from skimage import data

    big = cv2.resize(data.astronaut(), (970, 970), interpolation=cv2.INTER_CUBIC)
    return Portrait("tall", cv2.copyMakeBorder(big, 150, 2204 - 970 - 150, 0, 0, cv2.BORDER_REPLICATE))


def test_the_target_is_fitted_on_the_landmarks_square_which_the_rendering_shows_again(portraits):
    # The registration finds the face's square again on the flash shot it is given: within 2 % of its side
    # (dlib's detection box, which the target used before, came out 6.5-8 % apart, moving a 12 MP target by up
    # to 1.1 px).
    for name, seed in (("astronaut", 0), ("grace_hopper", 1)):
        pair = render_pair(portraits[name], size=(960, 1280), seed=seed,
                           config=StudioConfig(motion="subject", blink_probability=0))
        found = face_square(pair.flash, face_landmarks(pair.flash, [detect_faces(pair.flash)[0]])[0])
        target = FaceBox(*pair.face_box)
        assert np.abs(found.corners() - target.corners()).max() < 0.02 * target.width, name


def test_a_tall_portrait_is_framed_on_the_face():
    portrait = _tall_portrait()
    width, height = 960, 1280
    pair = render_pair(portrait, size=(width, height), seed=0, config=StudioConfig(blink_probability=0))
    # A centre crop would have started below the face: it spans rows 455-1748 of the portrait.
    crop_top = (2204 - 1) / 2 - height / max(width / 970, height / 2204) / 2
    assert crop_top > 150 + 145 * 970 / 512  # the astronaut's mouth, in portrait rows
    for image in (pair.flash, pair.studio):
        box = detect_faces(image)[0]
        assert box.left > 0 and box.top > 0 and box.right < width and box.bottom < height
        assert abs(box.center[0] - width / 2) < 0.1 * width  # centred
    left, top, right, bottom = pair.face_box
    assert 0 < left < right < width and 0 < top < bottom < height


@pytest.mark.parametrize("motion", ["subject", "camera", "both"])
def test_the_face_stays_in_frame_whatever_the_motion(motion):
    # A close-up (the face fills the portrait): the frame zooms out as far as the motion limits need.
    from skimage import data

    close_up = Portrait("close-up", np.ascontiguousarray(data.astronaut()[40:240, 130:310]))
    cfg = StudioConfig(motion=motion, max_rotation_deg=5, max_shift=0.04)
    for seed in range(6):
        shot = render_shot(close_up, lamps=1.0, flash=False, size=(240, 320), seed=seed, config=cfg)
        left, top, right, bottom = shot.pose.face_box
        corners = np.array([[left, top], [right, top], [right, bottom], [left, bottom]])
        for where in (corners, shot.pose.subject_map(corners)):
            assert np.all(where >= 0) and np.all(where[:, 0] <= 239) and np.all(where[:, 1] <= 319)


def test_same_seed_same_bytes_with_every_effect(portraits):
    cfg = StudioConfig(motion="both", backdrop="room", blink_probability=1.0)
    a = render_pair(portraits["grace_hopper"], size=(160, 200), seed=7, config=cfg)
    b = render_pair(portraits["grace_hopper"], size=(160, 200), seed=7, config=cfg)
    c = render_pair(portraits["grace_hopper"], size=(160, 200), seed=8, config=cfg)
    assert a.flash.tobytes() == b.flash.tobytes() and a.studio.tobytes() == b.studio.tobytes()
    assert a.pose.as_meta() == b.pose.as_meta() and a.pose.as_meta() != c.pose.as_meta()


def test_backdrops_differ_as_described(portraits):
    # Away from the subject: the plain backdrop is smooth, the room has strong edges, the scene is the portrait's.
    def texture(backdrop: str) -> float:
        pair = render_pair(portraits["grace_hopper"], size=SIZE, seed=0,
                           config=StudioConfig(**UNLIT, backdrop=backdrop))
        grey = cv2.cvtColor(pair.studio, cv2.COLOR_RGB2GRAY).astype(np.float32)
        edges = np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))
        far = cv2.dilate((pair.subject_alpha() > 0.01).astype(np.uint8), np.ones((31, 31), np.uint8)) == 0
        return float(np.percentile(edges[far], 99))

    plain, room, scene = texture("plain"), texture("room"), texture("scene")
    assert plain < 40 < room and plain < scene


def test_meta_json_holds_the_pose_contract(tmp_path):
    from registration._transform import _find_ground_truth

    cfg = StudioConfig(motion="both", backdrop="plain", blink_probability=1.0)
    simulate_sessions(tmp_path, subjects=1, poses=2, size=(240, 320), seed=3, sim_config=cfg)
    for pose in ("p01", "p02"):
        meta = json.loads((tmp_path / "astronaut" / pose / "meta.json").read_text())
        assert set(meta) >= CONTRACT
        assert meta["motion"] == "both" and meta["backdrop"] == "plain" and meta["blink"] in ("flash", "studio")
        for key in ("ground_truth_transform", "subject_transform", "camera_transform"):
            motion = PoseMotion.from_meta(meta[key])
            assert motion != PoseMotion.identity()
        assert meta["head_turn_px"] >= 0
        left, top, right, bottom = meta["face_box"]
        assert 0 < left < right < 240 and 0 < top < bottom < 320
        assert _find_ground_truth(meta) == meta["ground_truth_transform"]  # what face_box_error measures against
        assert meta["camera"]["settings"]["config"]["backdrop"] == "plain"
        assert "blink" not in meta["shots"]["flash"]["extra"]  # the pose's record is the studio shot's
