"""Face search in large photos: a small face is found on larger copies, down to a smallest face size."""

from __future__ import annotations

import numpy as np
import pytest

from acquisition.errors import PrepError
from acquisition.faces import MIN_FACE_ENV, detect_faces, face_landmarks, search_sides
from tests.fakes.image_files import paste_small

AT = (2100, 1250)  # where the portrait goes in the 3000x2000 canvas (x, y)


@pytest.fixture(scope="module")
def small_face(astronaut) -> tuple[np.ndarray, float, object]:
    """A 3000x2000 photo whose face is ~93 px wide (the issue's 186 px face in 6000x4000, at half the size)."""
    import cv2
    from skimage import data

    face = detect_faces(astronaut)[0]
    scale = 93 / face.width
    canvas = cv2.resize(data.coffee(), (3000, 2000), interpolation=cv2.INTER_LINEAR)
    return paste_small(astronaut, canvas, scale=scale, at=AT), scale, face


def test_search_sides_grow_to_the_smallest_face_and_no_further():
    assert search_sides((4000, 6000, 3)) == [800, 1600, 2000]  # 2 % of 6000 = 120 px faces
    assert search_sides((4000, 6000, 3), upsample=0) == [800, 1600, 3200, 4000]
    assert search_sides((4000, 6000, 3), min_face_px=400) == [800]
    assert search_sides((4000, 6000, 3), min_face_px=10) == [800, 1600, 3200, 6000]  # never past full size
    assert search_sides((480, 360, 3)) == [480]


def test_small_face_in_a_large_photo_is_found_and_landmarked(small_face, astronaut):
    photo, scale, face = small_face
    assert detect_faces(photo, min_face_px=400) == []  # the first copy alone misses it (25 px there)
    found = detect_faces(photo)
    assert len(found) == 1
    expected_x = AT[0] + face.center[0] * scale
    expected_y = AT[1] + face.center[1] * scale
    assert abs(found[0].center[0] - expected_x) < 10 and abs(found[0].center[1] - expected_y) < 10
    assert 70 < found[0].width < 120
    nose = face_landmarks(photo, found)[0]["nose_tip"].mean(axis=0)
    reference = face_landmarks(astronaut, [face])[0]["nose_tip"].mean(axis=0)
    expected = (reference + 0.5) * scale - 0.5 + AT
    assert np.abs(nose - expected).max() < 4  # located on a crop at a useful resolution, not the 800 px copy


def test_smallest_face_from_the_environment(small_face, monkeypatch):
    photo, _, _ = small_face
    monkeypatch.setenv(MIN_FACE_ENV, "400")
    assert detect_faces(photo) == []
    monkeypatch.setenv(MIN_FACE_ENV, "big")
    with pytest.raises(PrepError, match=MIN_FACE_ENV):
        detect_faces(photo)
