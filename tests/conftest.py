"""Shared fixtures: real portraits shipped inside dependencies, small enough for fast tests."""

from __future__ import annotations

import os

# One thread per process: on 2-core machines torch and OpenCV thread pools make tests slower, not faster.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """skimage's astronaut portrait, 512x512 RGB uint8."""
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="session")
def grace_hopper() -> np.ndarray:
    """matplotlib's Grace Hopper portrait, 600x512 RGB uint8."""
    import matplotlib.cbook as cbook
    from PIL import Image

    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        return np.asarray(Image.open(handle).convert("RGB"))
