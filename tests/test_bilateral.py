"""The bilateral filter: accuracy against the exact definition, and the properties the dataset relies on."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from datasetgen import bilateral_filter, bilateral_reference


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b) ** 2)))


@pytest.fixture(scope="module")
def small(astronaut: np.ndarray) -> np.ndarray:
    """The astronaut's head and shoulders at 96 px: portrait edges, skin, hair (sigma_s 16 spans the image)."""
    crop = astronaut[0:320, 96:416]
    return cv2.resize(crop, (96, 96), interpolation=cv2.INTER_AREA).astype(np.float32) / 255


@pytest.mark.parametrize(("sigma_s", "sigma_r"), [(16.0, 0.1), (4.0, 0.1), (8.0, 0.05)])
def test_matches_the_exact_filter(small: np.ndarray, sigma_s: float, sigma_r: float) -> None:
    exact = bilateral_reference(small, sigma_s, sigma_r)
    fast = bilateral_filter(small, sigma_s, sigma_r)
    assert fast.shape == small.shape and fast.dtype == np.float32
    assert psnr(fast, exact) >= 45.0
    # and it is a real edge-preserving filter, not the identity
    assert psnr(small, exact) < 40.0


def test_reference_is_the_definition() -> None:
    """The brute-force reference itself, against a direct double loop on a tiny image."""
    rng = np.random.default_rng(1)
    image = rng.random((7, 6, 3)).astype(np.float32)
    sigma_s, sigma_r = 2.0, 0.3
    expected = np.empty_like(image, dtype=np.float64)
    for y in range(7):
        for x in range(6):
            num, den = np.zeros(3), 0.0
            for qy in range(max(0, y - 6), min(7, y + 7)):
                for qx in range(max(0, x - 6), min(6, x + 7)):
                    d2 = float(np.sum((image[y, x].astype(np.float64) - image[qy, qx]) ** 2))
                    w = np.exp(-((y - qy) ** 2 + (x - qx) ** 2) / (2 * sigma_s**2) - d2 / (2 * sigma_r**2))
                    num += w * image[qy, qx]
                    den += w
            expected[y, x] = num / den
    np.testing.assert_allclose(bilateral_reference(image, sigma_s, sigma_r), expected, atol=1e-6)


def test_constant_image_is_unchanged() -> None:
    flat = np.full((40, 50, 3), (0.2, 0.5, 0.9), np.float32)
    np.testing.assert_allclose(bilateral_filter(flat), flat, atol=1e-5)


def test_edges_are_preserved_and_flat_areas_smoothed() -> None:
    rng = np.random.default_rng(0)
    image = np.full((64, 64, 3), 0.2, np.float32)
    image[:, 32:] = 0.8
    noisy = np.clip(image + rng.normal(0, 0.02, image.shape), 0, 1).astype(np.float32)
    out = bilateral_filter(noisy)
    # the step survives (a Gaussian of sigma 16 would leave a ramp ~0.5 at the boundary)
    assert out[:, 31].mean() < 0.25 and out[:, 32].mean() > 0.75
    # the noise goes
    assert out[:, :28].std() < noisy[:, :28].std() / 3


def test_mirroring_commutes(small: np.ndarray) -> None:
    """The build filters each unmirrored sample once and flips the result for its mirrored twin."""
    flipped = bilateral_filter(small[:, ::-1])[:, ::-1]
    assert psnr(flipped, bilateral_filter(small)) >= 45.0


def test_deterministic(small: np.ndarray) -> None:
    assert np.array_equal(bilateral_filter(small), bilateral_filter(small.copy()))


@pytest.mark.parametrize("bad", [np.zeros((8, 8), np.float32), np.zeros((8, 8, 4), np.float32),
                                 np.zeros((8, 8, 3), np.uint8)])
def test_bad_input_raises(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        bilateral_filter(bad)


def test_bad_sigma_raises(small: np.ndarray) -> None:
    with pytest.raises(ValueError):
        bilateral_filter(small, sigma_s=0.0)
