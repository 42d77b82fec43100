"""Photos as people really have them: cut copies, HEIC, huge headers, other formats; faithful metadata round trips.

Inputs are built from the bundled sample portraits (skimage's astronaut, matplotlib's Grace Hopper) with the
byte structure of the real failing files (tests/fakes/image_files.py).
"""

from __future__ import annotations

import io
import warnings

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms, JpegImagePlugin

from acquisition.errors import AcquisitionError
from acquisition.imageio import (
    IMAGE_EXTENSIONS,
    MAX_PIXELS_ENV,
    encode_image,
    image_size,
    parse_pixel_count,
    read_image,
    read_photo,
    write_image,
    write_photo,
)
from acquisition.layout import discover_pairs
from tests.fakes.image_files import (
    cut_with_eoi,
    display_p3_profile,
    header_only_png,
    heic_bytes,
    jpeg_bytes,
)

TRUNCATED = "the file is truncated: copy it again from the camera"


def _exif(**tags: object) -> Image.Exif:
    exif = Image.Exif()
    names = {"Orientation": 0x0112, "Make": 0x010F, "Model": 0x0110, "Software": 0x0131}
    for name, value in tags.items():
        exif[names[name]] = value
    return exif


# ----------------------------------------------------------------------------------------------- truncation

@pytest.mark.parametrize("options", [{"quality": 90}, {"quality": 90, "optimize": True},
                                     {"quality": 60, "restart_marker_rows": 1}, {"quality": 95, "subsampling": 0},
                                     {"quality": 90, "progressive": True}],
                         ids=["baseline", "optimized", "restart-markers", "4:4:4", "progressive"])
@pytest.mark.parametrize("fraction", [0.5, 0.97])
def test_jpeg_cut_mid_scan_but_closed_by_eoi_is_refused(tmp_path, astronaut, options, fraction):
    if options.get("progressive") and fraction > 0.9:
        # Here the final scan (the last bit of luminance detail) starts at 69 % of the file: a cut inside it
        # leaves a nearly whole picture and is not detected (acquisition._jpeg); cut in the scan before it.
        fraction = 0.65
    good = jpeg_bytes(astronaut, **options)
    path = tmp_path / "flash.jpg"
    path.write_bytes(good)
    reference = np.asarray(Image.open(io.BytesIO(good)).convert("RGB"))
    np.testing.assert_array_equal(read_image(path), reference)  # the whole file: no false alarm
    cut = cut_with_eoi(good, fraction)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert Image.open(io.BytesIO(cut)).convert("RGB").size == (512, 512)  # Pillow accepts it (grey rows)
    path.write_bytes(cut)
    with pytest.raises(AcquisitionError) as info:
        read_image(path)
    message = str(info.value)
    assert str(path) in message and "truncated" in message and TRUNCATED in message


def test_grey_and_trailing_data_jpegs_read_whole(tmp_path, astronaut, grace_hopper):
    grey = jpeg_bytes(astronaut[..., 1])
    (tmp_path / "grey.jpg").write_bytes(grey)
    assert (read_image(tmp_path / "grey.jpg")[..., 0] == np.asarray(Image.open(io.BytesIO(grey)))).all()
    (tmp_path / "grey-cut.jpg").write_bytes(cut_with_eoi(grey, 0.6))
    with pytest.raises(AcquisitionError, match="truncated"):
        read_image(tmp_path / "grey-cut.jpg")
    # A second picture after the end marker (MPO, motion photos) or padding is not damage.
    first = jpeg_bytes(astronaut)
    (tmp_path / "two.jpg").write_bytes(first + jpeg_bytes(grace_hopper) + b"\x00" * 100)
    np.testing.assert_array_equal(read_image(tmp_path / "two.jpg"), np.asarray(Image.open(io.BytesIO(first))))


def test_png_and_tiff_cut_copies_are_refused_as_truncated(tmp_path, astronaut):
    png = encode_image(astronaut, ".png")
    iend = b"\x00\x00\x00\x00IEND\xaeB`\x82"
    pil_tiff = io.BytesIO()
    Image.fromarray(astronaut).save(pil_tiff, format="TIFF")  # directory first, strips after
    tiff = encode_image(astronaut, ".tif")  # OpenCV's: strips first, directory last
    cases = {"cut.png": png[:len(png) // 2], "cut-iend.png": png[:len(png) // 2] + iend,
             "strips.tif": pil_tiff.getvalue()[:300_000], "directory.tif": tiff[:len(tiff) // 2]}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(AcquisitionError) as info:
            read_image(tmp_path / name)
        assert name in str(info.value) and TRUNCATED in str(info.value), name


# ------------------------------------------------------------------------------------------- HEIC and formats

def test_heic_is_read_upright_by_content_and_discovered(tmp_path, astronaut):
    data = heic_bytes(astronaut, exif=_exif(Orientation=6, Make="Apple").tobytes())
    (tmp_path / "photo.heic").write_bytes(data)
    (tmp_path / "named.jpg").write_bytes(data)  # a HEIC with a JPEG's name
    upright = np.rot90(astronaut, k=-1)
    for name in ("photo.heic", "named.jpg"):
        got = read_image(tmp_path / name)
        assert got.shape == upright.shape and np.abs(got.astype(int) - upright).mean() < 4, name
    assert image_size(tmp_path / "named.jpg") == (512, 512)
    photo = read_photo(tmp_path / "named.jpg")
    assert photo.format == "HEIF" and photo.orientation == 6

    pose = tmp_path / "raw" / "s1" / "p1"
    pose.mkdir(parents=True)
    (pose / "flash.HEIC").write_bytes(data)
    (pose / "studio.heif").write_bytes(data)
    found = discover_pairs(tmp_path / "raw")
    assert [p.flash.name for p in found.pairs] == ["flash.HEIC"] and not found.problems
    assert {".heic", ".heif", ".webp", ".avif"} <= set(IMAGE_EXTENSIONS)


def test_portraits_and_enhance_listing_take_heic(tmp_path, astronaut):
    from acquisition.sim import load_portraits
    from training import list_photos

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "ann.HEIC").write_bytes(heic_bytes(astronaut))
    assert [p.name for p in load_portraits(tmp_path / "in")] == ["ann"]
    assert [p.name for p in list_photos(tmp_path / "in", tmp_path / "out")] == ["ann.HEIC"]


@pytest.mark.parametrize("fmt, suffix", [("WEBP", ".webp"), ("AVIF", ".avif")])
def test_webp_and_avif_are_read(tmp_path, astronaut, fmt, suffix):
    Image.fromarray(astronaut).save(tmp_path / f"a{suffix}", format=fmt, quality=95)
    assert np.abs(read_image(tmp_path / f"a{suffix}").astype(int) - astronaut).mean() < 4


@pytest.mark.parametrize("data, kind", [
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "PDF document"),
    (b"II*\x00\x10\x00\x00\x00CR\x02\x00" + bytes(64), "camera RAW file"),
    (b"\x00\x00\x00\x18ftypcrx \x00\x00\x00\x01crx isom", "camera RAW file"),
    (b"\x00\x00\x00\x18ftypqt  \x00\x00\x02\x00qt  \x00\x00\x00\x08wide", "video (MP4/MOV)"),
    (b"8BPS\x00\x01" + bytes(40), "Photoshop document (PSD)"),
    (b"\xff\x0a\xfa\x7f\x01\x90", "JPEG XL"),
    (b"this is not an image\n", "text file"),
])
def test_unreadable_formats_are_named(tmp_path, data, kind):
    path = tmp_path / "flash.jpg"
    path.write_bytes(data)
    with pytest.raises(AcquisitionError) as info:
        read_image(path)
    assert str(path) in str(info.value) and f"this is a {kind}" in str(info.value)


def test_tiff_structured_raw_is_not_read_as_its_preview(tmp_path, astronaut):
    write_image(tmp_path / "shot.tif", astronaut)
    (tmp_path / "shot.NEF").write_bytes((tmp_path / "shot.tif").read_bytes())
    assert read_image(tmp_path / "shot.tif").shape == (512, 512, 3)
    with pytest.raises(AcquisitionError, match="camera RAW file"):
        read_image(tmp_path / "shot.NEF")


# -------------------------------------------------------------------------------------------- large photos

def test_header_bomb_is_refused_from_its_header(tmp_path, monkeypatch):
    path = tmp_path / "flash.png"
    path.write_bytes(header_only_png(40000, 40000))
    assert path.stat().st_size == 69
    with pytest.raises(AcquisitionError) as info:
        read_image(path)
    message = str(info.value)
    assert "too large" in message and "40000x40000" in message and MAX_PIXELS_ENV in message
    assert "corrupt" not in message
    monkeypatch.setenv(MAX_PIXELS_ENV, "2G")  # allowed now: 69 bytes cannot hold 1.6 GP, refused before decoding
    with pytest.raises(AcquisitionError, match=r"only 69 bytes, too small.*truncated"):
        read_image(path)


def test_limit_applies_alike_to_jpeg_and_tiff_and_pillow_cap_is_off(tmp_path, monkeypatch, grace_hopper):
    write_image(tmp_path / "a.jpg", grace_hopper)
    write_image(tmp_path / "a.tif", grace_hopper)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # another library lowering Pillow's cap changes nothing
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in ("a.jpg", "a.tif"):
            assert read_image(tmp_path / name).shape == grace_hopper.shape
    monkeypatch.setenv(MAX_PIXELS_ENV, "300000")  # 600x512 = 307200 pixels
    for name in ("a.jpg", "a.tif"):
        with pytest.raises(AcquisitionError, match=r"too large: 512x600 \(0.31 MP\), above the limit of 0.30 MP"):
            read_image(tmp_path / name)
    monkeypatch.setenv(MAX_PIXELS_ENV, "lots")
    with pytest.raises(AcquisitionError, match="not a number of pixels"):
        read_image(tmp_path / "a.jpg")


def test_pixel_counts_parse():
    assert parse_pixel_count("500M") == 500_000_000 and parse_pixel_count("1.5G") == 1_500_000_000
    assert parse_pixel_count("6e8") == 600_000_000 and parse_pixel_count(" 1000 ") == 1000
    with pytest.raises(ValueError):
        parse_pixel_count("-5")


# ------------------------------------------------------------------------------------- faithful round trips

def test_display_p3_profile_survives_every_output_format(tmp_path, astronaut):
    icc = display_p3_profile()
    assert ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))).strip() == "Display P3"
    Image.fromarray(astronaut).save(tmp_path / "in.png", icc_profile=icc)
    photo = read_photo(tmp_path / "in.png")
    assert photo.icc_profile == icc and not photo.grey and photo.alpha is None
    for suffix in (".jpg", ".png", ".tif", ".heic", ".webp"):
        write_photo(tmp_path / f"out{suffix}", photo.rgb, like=photo)
        assert read_photo(tmp_path / f"out{suffix}").icc_profile == icc, suffix


def test_exif_is_kept_with_orientation_reset_and_software_noted(tmp_path, grace_hopper):
    exif = _exif(Orientation=6, Make="Google", Model="Pixel 8", Software="HDR+ 1.0")
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = "2026:11:29 10:00:00"  # DateTimeOriginal
    sub[0x9209] = 0x19  # Flash: fired, auto
    sub[0xA002], sub[0xA003] = 512, 600  # pixel size as stored
    exif.get_ifd(0x8825)[2] = (48.0, 51.0, 30.0)  # GPS latitude
    Image.fromarray(grace_hopper).save(tmp_path / "in.jpg", exif=exif.tobytes(), quality=92)
    photo = read_photo(tmp_path / "in.jpg")
    assert photo.orientation == 6 and photo.rgb.shape == (512, 600, 3)
    write_photo(tmp_path / "out.jpg", photo.rgb, like=photo)
    with Image.open(tmp_path / "out.jpg") as out:
        got = out.getexif()
    assert got[0x0112] == 1 and got[0x010F] == "Google" and got[0x0110] == "Pixel 8"
    assert got[0x0131].startswith("HDR+ 1.0; deepflash")
    sub = got.get_ifd(0x8769)
    assert sub[0x9003] == "2026:11:29 10:00:00" and sub[0x9209] == 0x19 and (sub[0xA002], sub[0xA003]) == (600, 512)
    assert got.get_ifd(0x8825)[2] == (48.0, 51.0, 30.0)
    assert read_image(tmp_path / "out.jpg").shape == (512, 600, 3)  # upright, not turned a second time


def test_alpha_is_reattached_upright_and_untouched(tmp_path, astronaut):
    rng = np.random.default_rng(0)
    alpha = rng.integers(0, 256, astronaut.shape[:2], dtype=np.uint8)
    rgba = np.dstack([astronaut, alpha])
    Image.fromarray(rgba).save(tmp_path / "in.png", exif=_exif(Orientation=8).tobytes())
    photo = read_photo(tmp_path / "in.png")
    np.testing.assert_array_equal(photo.alpha, np.rot90(alpha, k=1))
    np.testing.assert_array_equal(photo.rgb, np.rot90(astronaut, k=1))
    relit = np.clip(photo.rgb.astype(int) + 10, 0, 255).astype(np.uint8)
    for suffix in (".png", ".tif", ".webp"):
        write_photo(tmp_path / f"out{suffix}", relit, like=photo)
        back = read_photo(tmp_path / f"out{suffix}")
        assert back.orientation == 1 and back.alpha is not None, suffix
        if suffix != ".webp":  # lossy WebP keeps alpha losslessly only at quality 100
            np.testing.assert_array_equal(back.alpha, photo.alpha)
            np.testing.assert_array_equal(back.rgb, relit)


def test_grey_jpeg_is_written_back_grey_with_its_quality(tmp_path, astronaut):
    Image.fromarray(astronaut[..., 1]).save(tmp_path / "in.jpg", quality=83)
    photo = read_photo(tmp_path / "in.jpg")
    assert photo.grey and photo.jpeg_quality == 83 and photo.subsampling is None
    tinted = photo.rgb.astype(np.int16) + np.array([3, 0, -3], np.int16)
    write_photo(tmp_path / "out.jpg", np.clip(tinted, 0, 255).astype(np.uint8), like=photo)
    with Image.open(tmp_path / "out.jpg") as out:
        assert out.mode == "L"
        assert out.quantization[0] == Image.open(tmp_path / "in.jpg").quantization[0]


@pytest.mark.parametrize("subsampling", ["4:4:4", "4:2:2", "4:2:0"])
def test_jpeg_quality_and_subsampling_follow_the_input(tmp_path, grace_hopper, subsampling):
    Image.fromarray(grace_hopper).save(tmp_path / "in.jpg", quality=72, subsampling=subsampling)
    photo = read_photo(tmp_path / "in.jpg")
    assert photo.jpeg_quality == 72 and photo.subsampling == subsampling
    write_photo(tmp_path / "out.jpg", photo.rgb, like=photo)
    with Image.open(tmp_path / "in.jpg") as before, Image.open(tmp_path / "out.jpg") as after:
        assert after.quantization == before.quantization
        assert JpegImagePlugin.get_sampling(after) == JpegImagePlugin.get_sampling(before)
    write_photo(tmp_path / "out.png", photo.rgb, like=photo)  # to PNG, then back to JPEG at the estimate
    write_photo(tmp_path / "again.jpg", photo.rgb, like=read_photo(tmp_path / "out.png"), quality=photo.jpeg_quality)
    assert read_photo(tmp_path / "again.jpg").jpeg_quality == 72


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_stays_16_bit_with_its_profile(tmp_path, suffix):
    rng = np.random.default_rng(1)
    deep = rng.integers(0, 65535, (21, 34, 3), dtype=np.uint16)
    icc = display_p3_profile()
    source = tmp_path / f"in{suffix}"
    write_photo(source, deep, like=read_photo_like(deep, icc))
    photo = read_photo(source)
    assert photo.bit_depth == 16 and photo.icc_profile == icc
    np.testing.assert_array_equal(photo.rgb, deep)
    write_photo(tmp_path / f"out{suffix}", photo.rgb, like=photo)
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / f"out{suffix}"), cv2.IMREAD_UNCHANGED)[..., ::-1], deep)


def read_photo_like(rgb: np.ndarray, icc: bytes):
    """A Photo as read_photo would describe a 16-bit RGB file with this profile."""
    from acquisition.imageio import Photo

    return Photo(rgb=rgb, bit_depth=16, format="PNG", icc_profile=icc)


def test_xmp_orientation_is_reset_too(tmp_path, astronaut):
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/></rdf:RDF>'
           b'</x:xmpmeta>')
    Image.fromarray(astronaut).save(tmp_path / "in.jpg", exif=_exif(Orientation=6).tobytes(), xmp=xmp)
    photo = read_photo(tmp_path / "in.jpg")
    assert photo.xmp == xmp
    for suffix in (".jpg", ".png"):
        write_photo(tmp_path / f"out{suffix}", photo.rgb, like=photo)
        assert b'tiff:Orientation="1"' in read_photo(tmp_path / f"out{suffix}").xmp


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_tiff_alpha_is_read_unassociated(tmp_path, dtype):
    from acquisition.imageio import Photo

    rng = np.random.default_rng(2)
    top = np.iinfo(dtype).max
    rgb = rng.integers(0, top, (13, 17, 3), dtype=dtype)
    alpha = rng.integers(0, top, (13, 17), dtype=dtype)
    write_photo(tmp_path / "a.tif", rgb, like=Photo(rgb=rgb, alpha=alpha, bit_depth=8 * dtype().itemsize))
    back = read_photo(tmp_path / "a.tif")
    np.testing.assert_array_equal(back.rgb, rgb)  # OpenCV would premultiply the colours by alpha
    np.testing.assert_array_equal(back.alpha, alpha)


# ------------------------------------------------------------------------ after the tester's round (issue 13)

def _camera_exif() -> Image.Exif:
    """A camera's EXIF: IFD0 tags plus the shot-details sub-IFD (date taken, flash, exposure) and GPS."""
    exif = _exif(Make="Canon", Model="EOS R5", Software="Firmware 1.8")
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = "2026:11:29 10:00:00"  # DateTimeOriginal
    sub[0x9209] = 0x19  # Flash: fired, auto
    sub[0x829A] = (1, 250)  # ExposureTime
    exif.get_ifd(0x8825)[2] = (48.0, 51.0, 30.0)
    return exif


@pytest.mark.parametrize("source", [".jpg", ".png", ".heic", ".tif"])
@pytest.mark.parametrize("suffix", [".tif", ".TIFF"])
@pytest.mark.parametrize("deep", [False, True], ids=["8-bit", "16-bit"])
def test_tiff_output_keeps_the_camera_shot_details(tmp_path, grace_hopper, source, suffix, deep):
    """libtiff refused the Exif sub-IFD pointer ("Bad LONG8 or IFD8 value"): every photo with a camera's EXIF
    written as .tif crashed; a 16-bit TIFF dropped the shot details."""
    quality = {"quality": 90} if source != ".png" else {}
    Image.fromarray(grace_hopper).save(tmp_path / f"in{source}", exif=_camera_exif().tobytes(),
                                       icc_profile=display_p3_profile(), **quality)
    photo = read_photo(tmp_path / f"in{source}")
    rgb = photo.rgb.astype(np.uint16) * 257 if deep else photo.rgb
    write_photo(tmp_path / f"out{suffix}", rgb, like=photo)
    back = read_photo(tmp_path / f"out{suffix}")
    np.testing.assert_array_equal(back.rgb, rgb)
    assert back.icc_profile == display_p3_profile()
    with Image.open(tmp_path / f"out{suffix}") as out:
        exif = out.getexif()
        sub, gps = exif.get_ifd(0x8769), exif.get_ifd(0x8825)
    assert exif[0x010F] == "Canon" and exif[0x0110] == "EOS R5" and exif[0x0131].startswith("Firmware 1.8; deepflash")
    with Image.open(tmp_path / f"in{source}") as before:
        exposure = before.getexif().get_ifd(0x8769)[0x829A]
    assert sub[0x9003] == "2026:11:29 10:00:00" and sub[0x9209] == 0x19 and sub[0x829A] == exposure
    assert gps[2] == (48.0, 51.0, 30.0)
    import tifffile  # a second reader agrees

    with tifffile.TiffFile(tmp_path / f"out{suffix}") as tiff:
        assert tiff.pages[0].tags["ExifTag"].value["DateTimeOriginal"] == "2026:11:29 10:00:00"


def test_an_encoder_failure_is_one_line_naming_the_output(tmp_path, grace_hopper, monkeypatch):
    import acquisition._encode as encode

    photo_path = tmp_path / "in.jpg"
    Image.fromarray(grace_hopper).save(photo_path, quality=90)
    photo = read_photo(photo_path)

    def libtiff_refuses(*args, **kwargs):
        raise RuntimeError("Error setting from dictionary")

    monkeypatch.setattr(encode, "encode_tiff", libtiff_refuses)
    with pytest.raises(AcquisitionError) as info:
        write_photo(tmp_path / "out.tif", photo.rgb, like=photo)
    assert str(info.value).startswith(f"{tmp_path / 'out.tif'}: could not encode the result as TIF")
    assert "write another format" in str(info.value) and not (tmp_path / "out.tif").exists()


@pytest.mark.parametrize("kind", ["dng", "nef", "cfa"])
def test_camera_raw_is_refused_whatever_its_name(tmp_path, astronaut, kind):
    """A RAW renamed .jpg was read as its small preview (a 128x150 'portrait')."""
    from tests.fakes.image_files import raw_like_tiff

    path = tmp_path / "raw_named.jpg"
    path.write_bytes(raw_like_tiff(astronaut, kind))
    for reader in (read_image, read_photo, image_size):
        with pytest.raises(AcquisitionError, match=r"this is a camera RAW file \(.*\), not a photo"):
            reader(path)


def test_a_cameras_own_tiff_with_a_thumbnail_second_is_a_photo(tmp_path, astronaut):
    from tests.fakes.image_files import raw_like_tiff

    (tmp_path / "shot.tif").write_bytes(raw_like_tiff(astronaut, "camera-tiff"))
    np.testing.assert_array_equal(read_image(tmp_path / "shot.tif"), astronaut)


@pytest.mark.parametrize("options", [{"quality": 90}, {"quality": 60, "restart_marker_rows": 1},
                                     {"quality": 95, "subsampling": 0}], ids=["baseline", "restart", "4:4:4"])
def test_jpeg_missing_only_its_end_marker_is_read_and_a_cut_one_is_not(tmp_path, grace_hopper, options):
    whole = jpeg_bytes(grace_hopper, **options)
    assert whole.endswith(b"\xff\xd9")
    (tmp_path / "whole.jpg").write_bytes(whole)
    (tmp_path / "no_eoi.jpg").write_bytes(whole[:-2])
    np.testing.assert_array_equal(read_image(tmp_path / "no_eoi.jpg"), read_image(tmp_path / "whole.jpg"))
    for lost in (8, 40, 500, len(whole) // 2):  # cut mid-scan, without its end marker (rows or blocks missing)
        (tmp_path / "cut.jpg").write_bytes(whole[:-2 - lost])
        with pytest.raises(AcquisitionError, match="truncated"):
            read_image(tmp_path / "cut.jpg")
        (tmp_path / "cut.jpg").write_bytes(whole[:-2 - lost] + b"\xff\xd9")  # and closed by one
        with pytest.raises(AcquisitionError, match="truncated"):
            read_image(tmp_path / "cut.jpg")


def test_cmyk_is_turned_to_srgb_through_its_own_profile(tmp_path):
    from acquisition._profiles import profile_space
    from tests.fakes.image_files import PRESS_CYAN, press_cmyk_profile

    Image.new("CMYK", (48, 32), (255, 0, 0, 0)).save(tmp_path / "cyan.jpg", icc_profile=press_cmyk_profile(),
                                                    quality=95)
    photo = read_photo(tmp_path / "cyan.jpg")
    # the press's cyan, not Pillow's plain (0, 255, 255), and tagged sRGB, not CMYK
    assert np.abs(photo.rgb[16, 24].astype(int) - PRESS_CYAN).max() < 30 and photo.rgb[16, 24, 1] < 200
    assert profile_space(photo.icc_profile) == b"RGB "
    np.testing.assert_array_equal(read_image(tmp_path / "cyan.jpg"), photo.rgb)  # every stage sees the same
    for suffix in (".jpg", ".png", ".tif", ".webp"):
        write_photo(tmp_path / f"out{suffix}", photo.rgb, like=photo)
        assert profile_space(read_photo(tmp_path / f"out{suffix}").icc_profile) == b"RGB ", suffix


def test_a_cmyk_profile_lcms_cannot_use_is_left_out(tmp_path, grace_hopper):
    """The tester's CMYK JPEG carried sRGB's profile relabelled CMYK: plain conversion, no profile."""
    fake = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    fake[16:20] = b"CMYK"
    Image.fromarray(grace_hopper).convert("CMYK").save(tmp_path / "c.jpg", icc_profile=bytes(fake))
    photo = read_photo(tmp_path / "c.jpg")
    assert photo.icc_profile is None and photo.rgb.shape == grace_hopper.shape
    write_photo(tmp_path / "out.jpg", photo.rgb, like=photo)
    assert read_photo(tmp_path / "out.jpg").icc_profile is None


def test_grey_stays_grey_where_the_format_can_and_its_profile_fits(tmp_path, caplog):
    import logging

    from acquisition._profiles import profile_space
    from tests.fakes.image_files import linear_grey_profile

    grey = np.tile(np.arange(0, 256, 2, dtype=np.uint8), (40, 1))
    Image.fromarray(grey).save(tmp_path / "g.png", icc_profile=linear_grey_profile())
    photo = read_photo(tmp_path / "g.png")
    for suffix in (".jpg", ".png", ".tif", ".heic", ".avif"):
        write_photo(tmp_path / f"out{suffix}", photo.rgb, like=photo)
        back = read_photo(tmp_path / f"out{suffix}")
        assert back.grey and profile_space(back.icc_profile) == b"GRAY", suffix
    with caplog.at_level(logging.WARNING):
        write_photo(tmp_path / "out.webp", photo.rgb, like=photo)
    assert "WebP stores no grey" in caplog.text
    back = read_photo(tmp_path / "out.webp")
    # RGB through the linear grey profile: sRGB, grey 128 shown as ~188, not a grey profile on RGB pixels
    assert profile_space(back.icc_profile) == b"RGB " and abs(int(back.rgb[20, 64, 0]) - 188) <= 3


def test_grey_with_alpha_and_alpha_levels_per_format(tmp_path, grace_hopper, caplog):
    import logging

    rng = np.random.default_rng(3)
    alpha = rng.integers(0, 256, grace_hopper.shape[:2], dtype=np.uint8)
    Image.fromarray(np.dstack([grace_hopper[..., 1], alpha]), "LA").save(tmp_path / "la.png")
    photo = read_photo(tmp_path / "la.png")
    with caplog.at_level(logging.WARNING):
        for suffix in (".png", ".tif", ".heic", ".webp", ".avif"):
            write_photo(tmp_path / f"out{suffix}", photo.rgb, like=photo)
            back = read_photo(tmp_path / f"out{suffix}")
            assert back.alpha is not None and back.grey == (suffix in (".png", ".tif", ".heic")), suffix
            if suffix != ".heic":  # AVIF's alpha is coded losslessly beside lossy colour
                np.testing.assert_array_equal(back.alpha, alpha, err_msg=suffix)
    assert "compresses the alpha channel with loss" in caplog.text
    assert "AVIF stores no grey with alpha" in caplog.text and "WebP stores no grey with alpha" in caplog.text


def test_damaged_exif_never_warns_on_the_terminal(tmp_path, grace_hopper):
    exif = b"Exif\x00\x00II*\x00" + (99999).to_bytes(4, "little")  # its first directory lies past its end
    Image.fromarray(grace_hopper).save(tmp_path / "in.jpg", exif=exif)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        photo = read_photo(tmp_path / "in.jpg")
        for suffix in (".jpg", ".tif", ".png"):
            write_photo(tmp_path / f"out{suffix}", photo.rgb, like=photo)
    assert [str(w.message) for w in shown] == []  # logged instead (-v shows them), never printed under -q


def test_small_limits_read_as_numbers_people_use(tmp_path, grace_hopper, monkeypatch):
    write_image(tmp_path / "a.jpg", grace_hopper)
    monkeypatch.setenv(MAX_PIXELS_ENV, "1e3")
    with pytest.raises(AcquisitionError) as info:
        read_image(tmp_path / "a.jpg")
    message = str(info.value)
    assert "(0.31 MP), above the limit of 1,000 pixels" in message and "--max-image-pixels 1M" in message
    assert "0.0 GiB" not in message and "MiB" in message
