"""The subject's silhouette from a face box (GrabCut), and telling real faces from face-like patches."""

from __future__ import annotations

import cv2
import numpy as np

from acquisition.faces import FaceBox, detect_faces, face_scores
from acquisition.silhouette import subject_matte


def test_matte_covers_the_person_and_not_the_wall(grace_hopper):
    # Grace Hopper's head and shoulders pasted on a plain painted wall: what is subject is known by construction.
    wall = np.zeros((700, 640, 3), np.uint8)
    wall[:] = (90, 160, 120)
    wall = np.clip(wall + np.random.default_rng(0).normal(0, 5, wall.shape), 0, 255).astype(np.uint8)
    wall[100:700, 100:520] = grace_hopper[0:600, 46:466]
    face = detect_faces(wall)[0]
    matte = subject_matte(wall, face, top_is_background=True)
    assert matte.shape == wall.shape[:2] and matte.dtype == np.float32
    x0, y0, x1, y1 = (round(v) for v in (face.left, face.top, face.right, face.bottom))
    assert matte[y0:y1, x0:x1].mean() > 0.95  # the face
    assert matte[y1 + 150:, 150:470].mean() > 0.9  # the shoulders below it
    far = np.ones(matte.shape, bool)
    far[80:, 80:540] = False  # the wall, away from the pasted portrait
    assert matte[far].max() < 0.01
    # Deterministic: GrabCut's random initialisation is seeded.
    np.testing.assert_array_equal(matte, subject_matte(wall, face, top_is_background=True))


def test_two_people_get_a_matte_each(astronaut, grace_hopper):
    grace = cv2.resize(grace_hopper, (437, 512), interpolation=cv2.INTER_AREA)
    photo = np.ascontiguousarray(np.concatenate([astronaut, grace], axis=1))
    faces = sorted(detect_faces(photo)[:2], key=lambda f: f.left)
    left_matte = subject_matte(photo, faces[0], others=[faces[1]])
    right_matte = subject_matte(photo, faces[1], others=[faces[0]])
    for matte, own, other in ((left_matte, faces[0], faces[1]), (right_matte, faces[1], faces[0])):
        ox, oy = (round(v) for v in own.center)
        tx, ty = (round(v) for v in other.center)
        assert matte[oy, ox] > 0.99 and matte[ty, tx] < 0.01


def test_face_scores_tell_faces_from_badges(astronaut):
    # HOG finds the astronaut's mission badge as a second "face"; its score says otherwise.
    found = detect_faces(astronaut)
    assert len(found) == 2
    face, badge = face_scores(astronaut, found)
    assert face > 1.0 and badge < 0.3, (face, badge)
    assert face_scores(astronaut, [FaceBox(0, 0, 60, 60)]) == [float("-inf")]  # the flag corner: no face at all
