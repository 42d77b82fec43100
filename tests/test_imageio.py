"""Image reading: EXIF orientation applied once, 16-bit kept, bad files named."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from acquisition.errors import AcquisitionError
from acquisition.imageio import read_image, write_image


def _with_orientation(pixels: np.ndarray, orientation: int, fmt: str) -> bytes:
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    image.save(out, format=fmt, exif=exif.tobytes(), **({"quality": 100, "subsampling": 0} if fmt == "JPEG" else {}))
    return out.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt, suffix", [("JPEG", ".jpg"), ("PNG", ".png"), ("TIFF", ".tif")])
def test_exif_orientation_applied_once(tmp_path, orientation, fmt, suffix):
    rng = np.random.default_rng(orientation)
    # A picture with an unmistakable asymmetry: bright top-left corner, dark elsewhere.
    pixels = np.zeros((24, 40, 3), np.uint8)
    pixels[:8, :10] = 255
    pixels += rng.integers(0, 3, pixels.shape, dtype=np.uint8)
    path = tmp_path / f"photo{suffix}"
    data = _with_orientation(pixels, orientation, fmt)
    path.write_bytes(data)

    got = read_image(path)
    reference = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    assert got.dtype == np.uint8 and got.shape == reference.shape
    assert np.abs(got.astype(int) - reference.astype(int)).max() <= 2
    if orientation >= 5:
        assert got.shape[:2] == (40, 24)
    else:
        assert got.shape[:2] == (24, 40)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_round_trip(tmp_path, suffix):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 65535, (17, 23, 3), dtype=np.uint16)
    path = tmp_path / f"deep{suffix}"
    write_image(path, pixels)
    got = read_image(path)
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, pixels)


def test_rgb_order_and_grey(tmp_path):
    red = np.zeros((4, 5, 3), np.uint8)
    red[..., 0] = 200
    write_image(tmp_path / "red.png", red)
    assert read_image(tmp_path / "red.png")[0, 0].tolist() == [200, 0, 0]
    Image.fromarray(np.full((4, 5), 77, np.uint8)).save(tmp_path / "grey.png")
    grey = read_image(tmp_path / "grey.png")
    assert grey.shape == (4, 5, 3) and (grey == 77).all()


def _jpeg_bytes(astronaut: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(astronaut).save(out, format="JPEG", quality=90)
    return out.getvalue()


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage", "text"])
@pytest.mark.parametrize("suffix", [".jpg", ".png", ".tif"])
def test_bad_files_raise_naming_the_file(tmp_path, astronaut, damage, suffix):
    path = tmp_path / f"bad{suffix}"
    if suffix == ".jpg":
        good = _jpeg_bytes(astronaut)
    else:
        write_image(path, astronaut)
        good = path.read_bytes()
    data = {"empty": b"", "truncated": good[: len(good) // 2], "garbage": bytes(range(256)) * 40,
            "text": b"this is not an image\n"}[damage]
    path.write_bytes(data)
    with pytest.raises(AcquisitionError) as info:
        read_image(path)
    assert str(path) in str(info.value)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(AcquisitionError, match="no such file"):
        read_image(tmp_path / "nope.jpg")
    with pytest.raises(AcquisitionError, match="folder"):
        read_image(tmp_path)


def test_jpeg_keeps_exif(tmp_path, astronaut):
    exif = Image.Exif()
    exif[0x010F] = "DeepFlash"
    write_image(tmp_path / "a.jpg", astronaut, exif=exif.tobytes())
    assert Image.open(tmp_path / "a.jpg").getexif()[0x010F] == "DeepFlash"
