"""Registration led by the face: subject motion over a still room, the independent face check, the same answer
for the same pixels however they were stored, the whole-frame fall-back without a face, and the blink rule it
shares with the capture-time pair check."""

from __future__ import annotations

import json

import numpy as np
import pytest

from acquisition.exif import make_exif
from acquisition.imageio import apply_orientation, read_image, write_image
from acquisition.layout import Pair
from registration import (
    RegistrationConfig,
    affine_from_matrix,
    check_face_alignment,
    estimate_affine,
    ground_truth_error,
    matrix_of,
    quality_reasons,
    read_registration_csv,
    register_pair,
    register_tree,
)
from registration._synthetic import PerturbationRanges, perturb, random_affine, relight_flash


@pytest.fixture(scope="module")
def room_pair():
    """The subject moved ~10 px at the face (rotation, scale, shift, a head turn) in front of a still room."""
    from acquisition.sim import StudioConfig, default_portraits, render_pair

    return render_pair(default_portraits()[0], size=(480, 640), seed=0,
                       config=StudioConfig(motion="subject", backdrop="room", blink_probability=0.0))


def _face_corners(rendered) -> np.ndarray:
    left, top, right, bottom = rendered.face_box
    return np.array([[left, top], [right, top], [right, bottom], [left, bottom]], dtype=np.float64)


@pytest.fixture(scope="module")
def room_estimate(room_pair):
    return estimate_affine(room_pair.flash, room_pair.studio)


def test_room_background_pair_registers_on_the_face(room_pair, room_estimate):
    truth, corners = room_pair.ground_truth.as_meta(), _face_corners(room_pair)
    assert ground_truth_error(affine_from_matrix(np.eye(2), np.zeros(2)), truth, corners) > 8  # it did move
    assert room_estimate.region == "face" and room_estimate.initialization in ("landmarks", "geometry")
    face_error = ground_truth_error(room_estimate.transform, truth, corners)
    assert face_error < 0.3
    # The same pair matched on the whole frame, where the room stays put: the face comes out worse.
    frame = estimate_affine(room_pair.flash, room_pair.studio, config=RegistrationConfig(region="frame"))
    assert frame.region == "frame"
    assert ground_truth_error(frame.transform, truth, corners) > face_error + 0.2


def test_a_head_turn_is_fitted_over_the_whole_face_not_its_texture():
    """A head turn moves the nose more than the face's outline. The target weighs the face's square uniformly,
    mutual information by its texture (eyes, nostrils, lips: near the nose); the refit to the face's motion
    field brings this pair from 0.7 px to under 0.15 px."""
    from acquisition.sim import StudioConfig, default_portraits, render_pair

    pair = render_pair(default_portraits()[1], size=(960, 1280), seed=203,
                       config=StudioConfig(motion="subject", backdrop="room", blink_probability=0.0))
    truth, corners = pair.ground_truth.as_meta(), _face_corners(pair)
    assert pair.pose.head_turn_px > 4
    texture = estimate_affine(pair.flash, pair.studio, config=RegistrationConfig(face_field_degree=0))
    assert ground_truth_error(texture.transform, truth, corners) > 0.5
    uniform = estimate_affine(pair.flash, pair.studio)
    assert uniform.region == "face" and ground_truth_error(uniform.transform, truth, corners) < 0.15


def test_the_refit_stands_down_where_the_flow_cannot_follow_the_light():
    """A flash-like relighting whose tone curve folds back (highlights invert their contrast): mutual
    information follows it, a flow cannot (unguarded, the refit took this pair from 0.04 to 0.72 px off), so
    the search's result stands."""
    from acquisition.sim import default_portraits

    image = default_portraits()[1].image
    moved_by = random_affine(np.random.default_rng(1), image.shape[1], image.shape[0], PerturbationRanges())
    flash, studio = relight_flash(image, seed=1), perturb(image, moved_by)
    refitted = estimate_affine(flash, studio)
    searched = estimate_affine(flash, studio, config=RegistrationConfig(face_field_degree=0))
    assert refitted.region == "face"
    for a, b in zip(matrix_of(refitted.transform), matrix_of(searched.transform), strict=True):
        assert np.array_equal(a, b)


def test_a_wrong_transform_is_flagged_by_the_independent_check(room_pair, room_estimate):
    flash, studio, face = room_pair.flash, room_pair.studio, room_estimate.flash_face
    good = check_face_alignment(flash, studio, room_estimate.transform, face)
    assert good.ok and good.checked and good.error_px < 0.6 and good.reason == ""
    matrix, translation = matrix_of(room_estimate.transform)
    config = RegistrationConfig()
    for shift in ((2.5, 0.0), (0.0, -2.5), (1.8, 1.8)):
        wrong = affine_from_matrix(matrix, translation + np.array(shift))
        check = check_face_alignment(flash, studio, wrong, face)
        assert not check.ok and 1.5 < check.error_px < 3.5, (shift, check)
        assert "independent check finds the face" in check.reason
        reasons = quality_reasons(room_estimate, flash.shape, studio.shape, config, check)
        assert reasons == [check.reason]
    turned = np.array([[np.cos(0.02), -np.sin(0.02)], [np.sin(0.02), np.cos(0.02)]]) @ matrix
    centre = np.array(face.center)
    wrong = affine_from_matrix(turned, matrix @ centre + translation - turned @ centre)
    true_error = ground_truth_error(wrong, room_pair.ground_truth.as_meta(), _face_corners(room_pair))
    check = check_face_alignment(flash, studio, wrong, face)
    assert true_error > 1.5 and not check.ok  # 1.15 degrees about the face centre


def test_a_blurred_studio_shot_does_not_read_as_a_shift_and_a_real_one_names_the_blur(room_pair, room_estimate):
    """Phase correlation of a sharp and a blurred face read ~1 px where there was none; the sharper is blurred to
    match first, and a real misalignment of such a pair is put down to the blur it shows."""
    import cv2

    flash, face = room_pair.flash, room_estimate.flash_face
    studio = cv2.GaussianBlur(room_pair.studio, (0, 0), 2.5)
    good = check_face_alignment(flash, studio, room_estimate.transform, face)
    # Against the same check on the sharp pair: the check weighs the face by its edges, so on a head turn it
    # reads 0.15 px more than the error over the whole face (0.2 against 0.05 px here), blur or no blur.
    sharp = check_face_alignment(flash, room_pair.studio, room_estimate.transform, face)
    assert good.ok and abs(good.error_px - sharp.error_px) < 0.4
    assert good.studio_blur_px > 1.5
    matrix, translation = matrix_of(room_estimate.transform)
    wrong = check_face_alignment(flash, studio, affine_from_matrix(matrix, translation + np.array([2.5, 0.0])), face)
    assert not wrong.ok and wrong.reason.startswith("the studio shot is blurred (about")
    flash_blurred = check_face_alignment(cv2.GaussianBlur(flash, (0, 0), 2.5), room_pair.studio,
                                         room_estimate.transform, face)
    assert flash_blurred.ok and flash_blurred.studio_blur_px < -1.5


def test_png_and_exif_jpeg_of_the_same_pixels_give_the_same_transform(room_pair, tmp_path):
    """The studio shot as PNG, and as a JPEG stored sideways with EXIF orientation 6 (as phones do)."""
    write_image(tmp_path / "studio.png", room_pair.studio)
    stored = apply_orientation(room_pair.studio, 8)  # rotated back by orientation 6 when read
    write_image(tmp_path / "studio.jpg", stored, quality=95,
                exif=make_exif(make="Phone", model="X", flash_fired=False, orientation=6))
    as_png, as_jpeg = read_image(tmp_path / "studio.png"), read_image(tmp_path / "studio.jpg")
    assert as_jpeg.shape == as_png.shape and 0 < np.abs(as_jpeg.astype(int) - as_png).mean() < 3
    a = estimate_affine(room_pair.flash, as_png).transform
    b = estimate_affine(room_pair.flash, as_jpeg).transform
    matrix, translation = matrix_of(a)
    apart = ground_truth_error(b, {"matrix": matrix, "translation": translation}, _face_corners(room_pair))
    assert apart <= 0.05


def test_a_pair_without_a_face_falls_back_to_the_whole_frame_and_says_so(tmp_path):
    from skimage import data

    scene = data.coffee()  # 400x600, a cup on a table: no face
    truth = random_affine(np.random.default_rng(3), scene.shape[1], scene.shape[0],
                          PerturbationRanges(rotation_deg=4, scale=0.04, shear=0.02, shift_fraction=0.03))
    raw = tmp_path / "raw" / "still-life" / "pose-1"
    write_image(raw / "flash.jpg", relight_flash(scene, seed=3), quality=95)
    write_image(raw / "studio.jpg", perturb(scene, truth), quality=95)
    summary = register_tree(tmp_path / "raw", tmp_path / "aligned")
    (result,) = summary.results
    assert result.status == "ok", result.reason
    assert result.region == "frame" and np.isnan(result.face_check_px)
    row = read_registration_csv(summary.csv_path)[0]
    assert row["region"] == "frame" and row["face_check_px"] == ""
    h, w = scene.shape[:2]
    corners = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.float64)
    matrix = np.array(result.parameters[:4]).reshape(2, 2)
    estimate = affine_from_matrix(matrix, np.array(result.parameters[4:]))
    assert ground_truth_error(estimate, truth, corners) < 0.5


def test_face_led_result_is_recorded(room_pair, tmp_path):
    raw = tmp_path / "raw" / "s" / "p"
    write_image(raw / "flash.jpg", room_pair.flash, quality=95)
    write_image(raw / "studio.jpg", room_pair.studio, quality=95)
    out = tmp_path / "aligned" / "s" / "p"
    result = register_pair(Pair("s", "p", raw / "flash.jpg", raw / "studio.jpg"), out)
    assert result.status == "ok", result.reason
    assert result.region == "face" and 0 <= result.face_check_px < 0.6
    # The reading the --max-face-error limit compares (tester: 12 MP rows read 1.52 px with status ok, in full
    # pixels, while the limit is in the check's working pixels): both are recorded, and resumed runs keep them.
    check = json.loads((out / "registration.json").read_text())["face_check"]
    assert result.face_check_working_px == pytest.approx(result.face_check_px / check["scale_px"])
    from registration._pair import result_from_record

    record = json.loads((out / "registration.json").read_text())
    pair = Pair("s", "p", raw / "flash.jpg", raw / "studio.jpg")
    assert result_from_record(pair, out, record).face_check_working_px == result.face_check_working_px
    del record["result"]["face_check_working_px"]  # a record of the previous version: read from its parts
    assert result_from_record(pair, out, record).face_check_working_px == pytest.approx(result.face_check_working_px)


@pytest.mark.parametrize(("seed", "blink_probability", "closed_in"), [
    # A new user's pose (issue 17): no blink drawn, Grace Hopper's eyes open, but dlib reads her eyes behind the
    # glasses under the flash at 0.14 (studio 0.32): one shot's mean aspect ratio under 0.2 was a "blink".
    (11, 0.0, None),
    (0, 1.0, "flash"),  # a blink drawn in the flash shot
    (2, 1.0, "studio"),  # and in the studio shot
])
def test_register_and_the_pair_check_share_the_blink_rule(tmp_path, seed, blink_probability, closed_in):
    from acquisition.faces import eye_aspect_ratio
    from acquisition.posecheck import check_pair
    from acquisition.sim import StudioConfig, default_portraits, render_pair

    portrait = next(p for p in default_portraits() if p.name == "grace_hopper")
    rendered = render_pair(portrait, size=(480, 640), seed=seed,
                           config=StudioConfig(motion="subject", blink_probability=blink_probability))
    assert rendered.pose.blink == closed_in
    raw = tmp_path / "raw" / "gh" / "p03"
    write_image(raw / "flash.png", rendered.flash)
    write_image(raw / "studio.png", rendered.studio)
    result = register_pair(Pair("gh", "p03", raw / "flash.png", raw / "studio.png"), tmp_path / "aligned")
    record = json.loads((tmp_path / "aligned" / "registration.json").read_text())
    verdict = check_pair(rendered.flash, rendered.studio)
    if closed_in is None:
        # The case is the one the tester met: the landmarks' own mean ratio in the flash shot is under 0.2.
        marks = estimate_affine(rendered.flash, rendered.studio).flash_landmarks
        assert np.mean([eye_aspect_ratio(marks[e]) for e in ("left_eye", "right_eye")]) < 0.2
        assert result.status == "ok", result.reason
        assert verdict.ok, verdict.summary
        assert record["eyes"]["closed_in"] is None and record["eyes"]["eye_match"] > 0.9
    else:
        assert result.status == "flagged"
        assert result.reason.startswith(f"eyes closed in the {closed_in} shot only (eye aspect ratio flash ")
        assert "a blink cannot be registered away" in result.reason and ";" not in result.reason
        assert verdict.problems[0] == f"eyes closed in the {closed_in} shot"
        assert record["eyes"]["closed_in"] == closed_in and record["eyes"]["eye_match"] < 0.86


def test_decisive_feature_matches_make_the_turned_starts_unnecessary(monkeypatch):
    """A faceless pair turned by 7 deg (past the +-6 deg turned image-centre starts): the SIFT fits have far more
    inliers than ``decisive_matches``, so the turned starts are not even offered; short of that they are
    fallbacks, run only when the features found nothing clearly better than the centres; the answer is the
    same."""
    from skimage import data

    import registration._estimate as estimate_module
    import registration._search as search_module

    scene = data.coffee()
    truth = random_affine(np.random.default_rng(5), scene.shape[1], scene.shape[0],
                          PerturbationRanges(rotation_deg=0, scale=0.03, shear=0.02, shift_fraction=0.03))
    turn = np.deg2rad(7.0)
    rotation = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    centre = np.array([(scene.shape[1] - 1) / 2, (scene.shape[0] - 1) / 2])
    matrix = rotation @ np.asarray(truth["matrix"])
    truth = {"matrix": matrix.tolist(),
             "translation": (rotation @ (np.asarray(truth["translation"]) - centre) + centre).tolist()}
    flash, studio = relight_flash(scene, seed=5), perturb(scene, truth)
    turned_calls = []
    original = estimate_module.turned
    monkeypatch.setattr(estimate_module, "turned", lambda *a: turned_calls.append(a) or original(*a))
    h, w = scene.shape[:2]
    corners = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.float64)

    decided = estimate_affine(flash, studio)
    assert decided.region == "frame" and decided.initialization.startswith("features")
    assert turned_calls == []
    assert ground_truth_error(decided.transform, truth, corners) < 0.5

    # Not decisive: the turned starts are offered as fallbacks; the features' optimum has more than twice the
    # mutual information of the image centres' (turned by 7 deg, they find little), so they are not run.
    optimised = []
    original_optimise = search_module._optimise
    monkeypatch.setattr(search_module, "_optimise",
                        lambda *a: optimised.append(a[6].name) or original_optimise(*a))
    undecided = estimate_affine(flash, studio, config=RegistrationConfig(decisive_matches=10**6))
    assert len(turned_calls) == 2 and not any(name.endswith("deg") for name in optimised)
    # Without features there is nothing else: the turned starts run.
    optimised.clear()
    estimate_affine(flash, studio, config=RegistrationConfig(features=0))
    assert {"geometry-6deg", "geometry+6deg"} <= set(optimised)
    decided_matrix, decided_translation = matrix_of(decided.transform)
    as_truth = {"matrix": decided_matrix.tolist(), "translation": decided_translation.tolist()}
    assert ground_truth_error(undecided.transform, as_truth, corners) < 0.05


def test_a_subject_seen_from_afar_registers_on_the_face_not_the_room():
    """Tester: a face 9 % of the frame's width, subject and camera moving, a still room behind: the whole-frame
    level pulled every start (the landmarks' too) to the room's motion, and the face came out 7-31 px off
    (flagged, but lost). The landmarks' start joins the head level as it was."""
    from acquisition.sim import StudioConfig, default_portraits, render_pair

    rendered = render_pair(default_portraits()[0].from_afar(3.0), size=(960, 1280), seed=1,
                           config=StudioConfig(motion="both", backdrop="room", blink_probability=0.0))
    assert rendered.face_box[2] - rendered.face_box[0] < 0.1 * 960  # a small face
    truth, corners = rendered.ground_truth.as_meta(), _face_corners(rendered)
    assert ground_truth_error(affine_from_matrix(np.eye(2), np.zeros(2)), truth, corners) > 5  # it did move
    estimate = estimate_affine(rendered.flash, rendered.studio)
    assert estimate.region == "face" and estimate.initialization == "landmarks"
    assert ground_truth_error(estimate.transform, truth, corners) < 0.3  # was 31.5 px
