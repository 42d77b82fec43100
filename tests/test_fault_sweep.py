"""Fault sweep across the stages: hostile inputs get a clear error naming them, and only the output is touched.

Each stage's own tests cover its happy paths and its kill-and-resume behaviour; this file feeds every stage the
same catalogue of bad inputs — corrupt, truncated, empty, wrong-format files, bad names, symbolic links out of
the tree — through the real ``prep`` commands, and checks two promises of the README: the message names the
input, and nothing outside the output folder changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from acquisition.imageio import read_image, write_image
from acquisition.prep import main
from tests.fakes.image_files import cut_with_eoi, header_only_png, heic_bytes, jpeg_bytes

SIZE = (360, 480)  # small virtual-studio frames keep the sweep fast


def snapshot(root: Path, *, exclude: Path | None = None) -> dict[str, str]:
    """Path -> content hash of every file under ``root`` (links recorded by target), outside ``exclude``."""
    state = {}
    for path in sorted(root.rglob("*")):
        if exclude is not None and (path == exclude or exclude in path.parents):
            continue
        if path.is_symlink():
            state[str(path)] = "link:" + os.readlink(path)
        elif path.is_file():
            state[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state


def run(*args: str | Path) -> object:
    result = CliRunner().invoke(main, ["-q", *map(str, args)], catch_exceptions=False)
    return result


def corrupt_inputs(folder: Path, good_jpeg: bytes, outside: Path) -> dict[str, Path]:
    """Write the catalogue of bad image files into ``folder``; return name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "truncated": folder / "truncated.jpg",
        "empty": folder / "empty.jpg",
        "wrong-format": folder / "notes.jpg",
        "garbage": folder / "garbage.png",
        "cut-eoi": folder / "cut.jpg",
        "header-bomb": folder / "bomb.png",
    }
    files["truncated"].write_bytes(good_jpeg[: len(good_jpeg) // 3])
    files["cut-eoi"].write_bytes(cut_with_eoi(good_jpeg))  # cut mid-scan, closed by its end marker
    files["header-bomb"].write_bytes(header_only_png(40000, 40000))  # 69 bytes announcing 1.6 GP
    files["empty"].write_bytes(b"")
    files["wrong-format"].write_text("a text file with an image's name\n")
    files["garbage"].write_bytes(bytes(range(256)) * 20)
    link = folder / "escape.jpg"
    os.symlink(outside, link)
    files["link-out"] = link
    return files


@pytest.fixture(scope="module")
def world(tmp_path_factory, astronaut) -> dict[str, Path]:
    """A small real pipeline: a simulated session, its registration, shards and a one-step checkpoint."""
    root = tmp_path_factory.mktemp("sweep")
    raw, aligned, shards, run_dir = root / "raw", root / "aligned", root / "shards", root / "run"
    assert run("capture", "--simulate", "--subjects", "1", "--poses", "1", "--out", raw,
               "--size", f"{SIZE[0]}x{SIZE[1]}").exit_code == 0
    assert run("register", raw, aligned).exit_code == 0
    assert run("build-h5", aligned, shards, "--size", "64", "--split", "1,0,0").exit_code == 0
    result = run("train", shards, run_dir, "--epochs", "1", "--steps-per-epoch", "1", "--width", "0.0625",
                 "--size", "64", "--device", "cpu", "--workers", "0", "--val-split", "train")
    assert result.exit_code == 0, result.output
    outside = root / "outside" / "secret.jpg"
    outside.parent.mkdir()
    write_image(outside, astronaut)
    return {"root": root, "raw": raw, "aligned": aligned, "shards": shards, "run": run_dir, "outside": outside}


def test_register_reports_each_bad_pair_by_name_and_touches_only_its_output(world, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(world["raw"], raw, symlinks=True)
    good = next(raw.rglob("flash.jpg")).read_bytes()
    subject = raw / "hostile"
    bad = corrupt_inputs(tmp_path / "scratch", good, world["outside"])
    cases = {kind: kind for kind in ("truncated", "empty", "wrong-format", "garbage", "cut-eoi", "header-bomb")}
    for pose, kind in cases.items():
        (subject / pose).mkdir(parents=True)
        shutil.copy(bad[kind], subject / pose / ("flash" + bad[kind].suffix))
        (subject / pose / "studio.jpg").write_bytes(good)
    (subject / "heic").mkdir()  # an iPhone's default format, beside a JPEG
    (subject / "heic" / "flash.HEIC").write_bytes(heic_bytes(read_image(next(raw.rglob("flash.jpg"))), quality=95))
    (subject / "heic" / "studio.jpg").write_bytes(next(raw.rglob("studio.jpg")).read_bytes())
    (subject / "escape").mkdir()
    os.symlink(world["outside"], subject / "escape" / "flash.jpg")
    (subject / "escape" / "studio.jpg").write_bytes(good)
    (subject / "lonely").mkdir()
    (subject / "lonely" / "flash.jpg").write_bytes(good)
    (subject / "bad\\name").mkdir()
    before = snapshot(tmp_path, exclude=tmp_path / "aligned")

    result = run("register", raw, tmp_path / "aligned", "--min-face-px", "40")

    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    csv_text = (tmp_path / "aligned" / "registration.csv").read_text()
    for pose in [*cases, "escape", "lonely"]:
        assert f"hostile/{pose}" in result.output or pose in csv_text, pose
    for pose in cases:
        assert str(subject / pose / "flash") in csv_text, f"the failure of {pose} does not name its file"
    rows = {line.split(",")[1]: line for line in csv_text.splitlines()[1:]}
    assert "truncated" in rows["cut-eoi"] and "copy it again from the camera" in rows["cut-eoi"]
    assert "too large" in rows["header-bomb"] and "DEEPFLASH_MAX_IMAGE_PIXELS" in rows["header-bomb"]
    assert "outside the tree" in csv_text and "no studio partner" in csv_text and "bad\\name" in csv_text
    assert csv_text.count(",ok,") == 2, "the good pair and the HEIC pair must still be registered"
    record = json.loads((tmp_path / "aligned" / "hostile" / "heic" / "registration.json").read_text())
    assert record["config"]["min_face_px"] == 40
    assert snapshot(tmp_path, exclude=tmp_path / "aligned") == before


def test_build_h5_skips_bad_pairs_by_name_and_refuses_hostile_split_files(world, tmp_path):
    aligned = tmp_path / "aligned"
    shutil.copytree(world["aligned"], aligned, symlinks=True)
    pose = next(p.parent for p in aligned.rglob("transform.tfm"))
    broken = aligned / pose.parent.name / "broken"
    shutil.copytree(pose, broken)
    (broken / "studio.png").write_bytes((broken / "studio.png").read_bytes()[:500])
    escape = aligned / pose.parent.name / "escape"
    shutil.copytree(pose, escape)
    (escape / "flash.png").unlink()
    os.symlink(world["outside"], escape / "flash.png")
    bomb = aligned / pose.parent.name / "bomb"
    shutil.copytree(pose, bomb)
    (bomb / "flash.png").write_bytes(header_only_png(40000, 40000))
    # Registration vouched for these copies: the damage happened afterwards.
    csv_path = aligned / "registration.csv"
    header, row = csv_path.read_text().splitlines()[:2]
    subject, _pose, rest = row.split(",", 2)
    csv_path.write_text("\n".join([header, row, *(f"{subject},{name},{rest}" for name in ("broken", "escape", "bomb"))])
                        + "\n")
    before = snapshot(tmp_path, exclude=tmp_path / "shards")

    result = run("build-h5", aligned, tmp_path / "shards", "--size", "64", "--split", "1,0,0", "--min-face-px", "30")
    assert result.exit_code == 1, result.output  # shards written from the good pair; the status flags the bad ones
    assert len(list((tmp_path / "shards").glob("train-*.h5"))) == 1
    report = result.output + "".join(p.read_text() for p in (tmp_path / "shards").glob("*.json"))
    assert "studio.png" in report and "broken" in report
    assert f"{broken / 'studio.png'}: this PNG is truncated" in report and "run prep register --force" in report
    assert "outside the tree" in report
    assert str(bomb / "flash.png") in report and "too large" in report and "Traceback" not in report
    assert json.loads((tmp_path / "shards" / "dataset.json").read_text())["parameters"]["min_face_px"] == 30
    assert snapshot(tmp_path, exclude=tmp_path / "shards") == before

    hostile = tmp_path / "split.csv"
    hostile.write_text(f"subject,split\n{subject},train\n../../etc,test\n")
    result = run("build-h5", aligned, tmp_path / "shards2", "--size", "64", "--split-file", hostile)
    assert result.exit_code != 0 and "../../etc" in result.output
    assert not (tmp_path / "shards2").exists() or not any((tmp_path / "shards2").glob("*.h5"))


@pytest.mark.parametrize("damage", ["truncated", "empty", "text"])
def test_train_and_evaluate_name_a_damaged_shard(world, tmp_path, damage):
    shards = tmp_path / "shards"
    shutil.copytree(world["shards"], shards)
    shard = sorted(shards.glob("*.h5"))[0]
    data = shard.read_bytes()
    shard.write_bytes({"truncated": data[: len(data) // 2], "empty": b"", "text": b"not hdf5\n"}[damage])
    before = snapshot(tmp_path, exclude=tmp_path / "run")

    result = run("train", shards, tmp_path / "run", "--epochs", "1", "--steps-per-epoch", "1", "--width", "0.0625",
                 "--size", "64", "--device", "cpu", "--workers", "0", "--val-split", "train")
    assert result.exit_code == 1 and shard.name in result.output, result.output
    result = run("evaluate", world["run"], shards, "--split", "train", "--out", tmp_path / "run" / "eval")
    assert result.exit_code == 1 and shard.name in result.output, result.output
    assert snapshot(tmp_path, exclude=tmp_path / "run") == before


def test_enhance_folder_reports_each_bad_photo_and_goes_on(world, tmp_path):
    photos = tmp_path / "photos"
    good = next(world["raw"].rglob("flash.jpg"))
    corrupt_inputs(photos, good.read_bytes(), world["outside"])
    shutil.copy(good, photos / "selfie.jpg")
    (photos / "selfie.HEIC").write_bytes(heic_bytes(read_image(good)))
    before = snapshot(tmp_path, exclude=tmp_path / "out")

    result = run("enhance", world["run"] / "last.pt", photos, tmp_path / "out")

    assert result.exit_code == 1, result.output
    for name in ("truncated.jpg", "empty.jpg", "notes.jpg", "garbage.png", "cut.jpg", "bomb.png"):
        assert name in result.output, f"{name} is not named in:\n{result.output}"
    assert "escape.jpg" in result.output and "Traceback" not in result.output
    lines = result.output.splitlines()
    assert any(f"{photos / 'cut.jpg'}: this JPEG is truncated" in line and "copy it again" in line for line in lines)
    assert any(f"{photos / 'bomb.png'}: the image is too large" in line for line in lines)
    outputs = sorted(p.name for p in (tmp_path / "out").rglob("*") if p.is_file() and ".prep-enhance" not in p.parts)
    assert outputs == ["selfie.HEIC", "selfie.jpg"]
    assert snapshot(tmp_path, exclude=tmp_path / "out") == before


def test_enhance_finds_a_small_face_in_a_large_photo(world, tmp_path, astronaut):
    import cv2
    from skimage import data

    from tests.fakes.image_files import paste_small

    canvas = cv2.resize(data.coffee(), (3000, 2000), interpolation=cv2.INTER_LINEAR)
    photos = tmp_path / "photos"
    photos.mkdir()
    # the astronaut's face is ~90 px wide: scaled to ~93 px, 25 px in an 800 px copy of the photo
    write_image(photos / "group.jpg", paste_small(astronaut, canvas, scale=93 / 90, at=(2100, 1250)), quality=90)

    result = run("enhance", world["run"] / "last.pt", photos, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "group.jpg").is_file()
    result = run("enhance", world["run"] / "last.pt", photos, tmp_path / "strict", "--min-face-px", "400")
    assert result.exit_code == 1 and "group.jpg: no face found" in result.output, result.output


@pytest.mark.parametrize("subject", ["../escape", "..", ".hidden", "a/b"])
def test_capture_refuses_hostile_subject_names(tmp_path, subject):
    result = run("capture", "--subject", subject, "--poses", "1", "--out", tmp_path / "raw", "--lamps", "sim",
                 "--camera", "sim")
    assert result.exit_code != 0
    assert subject in result.output
    assert not any(tmp_path.parent.glob("escape")) and list(tmp_path.rglob("*.jpg")) == []


def test_capture_names_a_corrupt_portrait(tmp_path, astronaut):
    portraits = tmp_path / "portraits"
    portraits.mkdir()
    write_image(portraits / "alice.png", np.ascontiguousarray(astronaut))
    (portraits / "bob.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    result = run("capture", "--simulate", "--subjects", "2", "--poses", "1", "--out", tmp_path / "raw",
                 "--portraits", portraits, "--size", "240x320")
    assert result.exit_code == 1 and "bob.jpg" in result.output and "copy it again" in result.output
    assert not (tmp_path / "raw").exists() or list((tmp_path / "raw").rglob("*.jpg")) == []
    (portraits / "bob.jpg").write_bytes(jpeg_bytes(astronaut[:20, :20]))  # readable, but too small to be a subject
    result = run("capture", "--simulate", "--subjects", "2", "--poses", "1", "--out", tmp_path / "raw",
                 "--portraits", portraits, "--size", "240x320")
    assert result.exit_code == 1 and "bob.jpg" in result.output and "at least 32x32" in result.output


def test_enhance_never_reads_its_own_outputs_or_overwrites_inputs(world, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(next(world["raw"].rglob("flash.jpg")), photos / "selfie.jpg")
    for _ in range(2):  # the second run must not enhance photos/studio/selfie.jpg into photos/studio/studio/
        assert run("enhance", world["run"] / "last.pt", photos, photos / "studio").exit_code == 0
    assert sorted(p.relative_to(photos).as_posix() for p in photos.rglob("*.jpg")) == [
        "selfie.jpg", "studio/selfie.jpg"]
    before = (photos / "selfie.jpg").read_bytes()
    for dest in (photos, photos / "selfie.jpg"):
        result = run("enhance", world["run"] / "last.pt", photos if dest == photos else dest, dest)
        assert result.exit_code == 1 and "overwritten" in result.output
    assert (photos / "selfie.jpg").read_bytes() == before


def test_build_h5_after_an_interrupted_register_keeps_flagged_pairs_out(world, tmp_path):
    """No registration.csv yet (register was stopped): each pose's registration.json still decides."""
    import json

    aligned = tmp_path / "aligned"
    shutil.copytree(world["aligned"], aligned)
    (aligned / "registration.csv").unlink()
    record_path = next(aligned.rglob("registration.json"))
    record = json.loads(record_path.read_text())
    record["result"]["status"] = "flagged"
    record_path.write_text(json.dumps(record))
    result = run("build-h5", aligned, tmp_path / "shards", "--size", "64", "--split", "1,0,0")
    assert result.exit_code == 1 and "flagged" in result.output
    assert run("build-h5", aligned, tmp_path / "shards", "--size", "64", "--split", "1,0,0",
               "--include-flagged").exit_code == 0


def test_evaluate_refuses_shards_built_with_other_parameters(world, tmp_path):
    assert run("build-h5", world["aligned"], tmp_path / "shards32", "--size", "32", "--split", "1,0,0").exit_code == 0
    result = run("evaluate", world["run"], tmp_path / "shards32", "--split", "train")
    assert result.exit_code == 1 and "other parameters" in result.output and "size 64 vs 32" in result.output


def test_enhance_reports_links_fifos_and_folders_named_like_photos(world, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(next(world["raw"].rglob("flash.jpg")), photos / "selfie.jpg")
    os.symlink("nowhere.jpg", photos / "broken.jpg")
    os.mkfifo(photos / "fifo.jpg")
    os.symlink(world["outside"], photos / "escape.jpg")
    result = run("enhance", world["run"] / "last.pt", photos, tmp_path / "out")
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert any(f"{photos / 'broken.jpg'}: a symbolic link to nowhere.jpg, which does not exist" in line
               for line in lines), result.output
    assert any(f"{photos / 'fifo.jpg'}: is a FIFO" in line for line in lines), result.output
    assert any(f"{photos / 'escape.jpg'}: a symbolic link to" in line and "copy the photo itself" in line
               for line in lines), result.output
    assert "1 enhanced" in result.output and "3 failed" in result.output
    for source in (tmp_path / "dir.jpg", tmp_path / "empty"):  # a folder with a photo's name, an empty folder
        source.mkdir()
        result = run("enhance", world["run"] / "last.pt", source, tmp_path / "out2")
        assert result.exit_code == 1 and f"{source}: no photos found" in result.output, result.output


def test_enhance_one_photo_into_a_folder_an_existing_file_or_through_a_file(world, tmp_path):
    selfie = next(world["raw"].rglob("flash.jpg"))
    (tmp_path / "portraits").mkdir()
    result = run("enhance", world["run"] / "last.pt", selfie, tmp_path / "portraits")
    assert result.exit_code == 0 and (tmp_path / "portraits" / selfie.name).is_file(), result.output
    written = (tmp_path / "portraits" / selfie.name).read_bytes()
    result = run("enhance", world["run"] / "last.pt", selfie, tmp_path / "portraits" / selfie.name)
    assert result.exit_code == 1 and "exists already" in result.output and "--force" in result.output
    assert (tmp_path / "portraits" / selfie.name).read_bytes() == written
    assert run("enhance", world["run"] / "last.pt", selfie, tmp_path / "portraits", "--force").exit_code == 0
    result = run("enhance", world["run"] / "last.pt", selfie, tmp_path / "portrait")  # no folder, no extension
    assert result.exit_code == 2 and "names no image format" in result.output
    (tmp_path / "x").write_text("in the way")
    result = run("enhance", world["run"] / "last.pt", selfie, tmp_path / "x" / "out.jpg")
    assert result.exit_code == 1 and f"{tmp_path / 'x'} is a file" in result.output, result.output


def test_enhance_writes_a_tiff_with_the_photos_exif(world, tmp_path):
    from PIL import Image

    selfie = next(world["raw"].rglob("flash.jpg"))  # the virtual camera's EXIF: its make, the flash fired
    with Image.open(selfie) as before:
        make, flash = before.getexif()[0x010F], before.getexif().get_ifd(0x8769)[0x9209]
    result = run("enhance", world["run"] / "last.pt", selfie, tmp_path / "out.TIFF")
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "out.TIFF") as after:
        assert after.getexif()[0x010F] == make and after.getexif().get_ifd(0x8769)[0x9209] == flash


def test_no_face_found_names_the_smallest_face_searched(world, tmp_path, astronaut):
    import cv2
    from skimage import data

    from tests.fakes.image_files import paste_small

    canvas = cv2.resize(data.coffee(), (1600, 1200), interpolation=cv2.INTER_LINEAR)
    write_image(tmp_path / "group.jpg", paste_small(astronaut, canvas, scale=0.2, at=(900, 500)), quality=90)
    result = run("enhance", world["run"] / "last.pt", tmp_path / "group.jpg", tmp_path / "out.jpg")
    assert result.exit_code == 1 and "no face found" in result.output
    assert "faces narrower than 32 px are not searched for" in result.output and "--min-face-px" in result.output


def test_capture_lists_every_unusable_portrait_at_once(tmp_path, astronaut):
    portraits = tmp_path / "portraits"
    portraits.mkdir()
    write_image(portraits / "alice.png", np.ascontiguousarray(astronaut))
    (portraits / "empty.jpg").write_bytes(b"")
    (portraits / "bomb.png").write_bytes(header_only_png(40000, 40000))
    (portraits / "cut.jpg").write_bytes(cut_with_eoi(jpeg_bytes(astronaut)))
    os.symlink("nowhere.jpg", portraits / "gone.jpg")
    result = run("capture", "--simulate", "--subjects", "5", "--poses", "1", "--out", tmp_path / "raw",
                 "--portraits", portraits, "--size", "240x320")
    assert result.exit_code == 1 and "4 of the 5 portraits cannot be used" in result.output, result.output
    for name in ("empty.jpg", "bomb.png", "cut.jpg", "gone.jpg"):
        assert sum(f"{portraits / name}:" in line for line in result.output.splitlines()) == 1, name
