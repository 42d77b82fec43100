"""prep build-h5 / verify / review: geometry, splits, schema, verification, reproducibility, resumption."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
from click.testing import CliRunner

import datasetgen
from acquisition.faces import FaceBox
from acquisition.imageio import write_image
from acquisition.prep import main as prep
from datasetgen import (
    AugSpec,
    BuildConfig,
    DatasetGenError,
    assign_splits,
    aug_table,
    build_shards,
    read_split_file,
    sample_matrix,
    verify_shards,
    write_shard_sheets,
)
from datasetgen._augment import render_framing
from datasetgen.schema import IMAGE_DATASETS

SIZE = 64
SPLIT_ROWS = "subject,split\nann,train\nbob,test\ncarl,train\n"


def _relit(image: np.ndarray) -> np.ndarray:
    """A 'studio' version: smoother light from the left, a little warmer."""
    ramp = np.linspace(1.15, 0.8, image.shape[1], dtype=np.float32)[None, :, None]
    gain = ramp * np.array([1.05, 1.0, 0.92], np.float32)
    return np.clip(image.astype(np.float32) * gain, 0, 255).astype(np.uint8)


def _write_pair(root: Path, subject: str, pose: str, flash: np.ndarray) -> None:
    folder = root / subject / pose
    folder.mkdir(parents=True)
    valid = np.full(flash.shape[:2], 255, np.uint8)
    valid[:, :30] = 0  # registration left no studio pixels here
    write_image(folder / "flash.png", flash)
    write_image(folder / "studio.png", _relit(flash))
    write_image(folder / "valid.png", np.repeat(valid[..., None], 3, axis=2))
    (folder / "transform.tfm").write_text("#Insight Transform File V1.0\n")


@pytest.fixture(scope="module")
def aligned(tmp_path_factory: pytest.TempPathFactory, astronaut: np.ndarray, grace_hopper: np.ndarray) -> Path:
    """Two subjects with faces (2 + 1 poses), one subject without a face, a flagged and a failed pair."""
    root = tmp_path_factory.mktemp("aligned")
    ann = cv2.resize(astronaut, (600, 600), interpolation=cv2.INTER_CUBIC)
    _write_pair(root, "ann", "front", ann)
    _write_pair(root, "ann", "tilt", np.ascontiguousarray(ann[20:, 10:]))
    _write_pair(root, "bob", "front", grace_hopper)
    _write_pair(root, "bob", "flagged", grace_hopper)
    _write_pair(root, "bob", "failed", grace_hopper)
    gradient = np.zeros((600, 600, 3), np.uint8)
    gradient[..., 0] = np.linspace(0, 255, 600, dtype=np.uint8)[None, :]
    gradient[..., 2] = 120
    _write_pair(root, "carl", "front", gradient)
    rows = [("ann", "front", "ok"), ("ann", "tilt", "ok"), ("bob", "front", "ok"), ("bob", "flagged", "flagged"),
            ("bob", "failed", "failed"), ("carl", "front", "ok")]
    with open(root / "registration.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["subject", "pose", "status", "reason"])
        writer.writerows([(*row, "") for row in rows])
    return root


@pytest.fixture(scope="module")
def split_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("split") / "splits.csv"
    path.write_text(SPLIT_ROWS)
    return path


@pytest.fixture(scope="module")
def config(split_file: Path) -> BuildConfig:
    return BuildConfig(size=SIZE, split_file=split_file, shard_size=25)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, aligned: Path, config: BuildConfig) -> tuple[Path, object]:
    shards = tmp_path_factory.mktemp("built") / "shards"
    summary = build_shards(aligned, shards, config=config)
    return shards, summary


def _shard_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.h5"))}


def _copy(built_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(built_dir, target)
    return target


# ------------------------------------------------------------------------------------------- augmentation

def test_aug_table_is_the_papers() -> None:
    table = aug_table()
    assert len(table) == 20
    assert table[0] == AugSpec(-20.0, "wide", False)
    assert table[1] == AugSpec(-20.0, "wide", True)
    assert table[2] == AugSpec(-20.0, "face", False)
    assert table[19] == AugSpec(20.0, "face", True)
    assert {s.rotation_deg for s in table} == {-20.0, -10.0, 0.0, 10.0, 20.0}


def test_face_centre_maps_to_sample_centre() -> None:
    box = FaceBox(100.0, 150.0, 220.0, 290.0)
    for spec in aug_table():
        m = sample_matrix(box, spec, 128)
        u = m @ np.array([*box.center, 1.0])
        np.testing.assert_allclose(u, [63.5, 63.5], atol=1e-9)
    # the tight framing spans the face box's larger side, the wide one twice that
    tight = sample_matrix(box, AugSpec(0.0, "face", False), 128)
    wide = sample_matrix(box, AugSpec(0.0, "wide", False), 128)
    assert tight[0, 0] == pytest.approx(128 / 140) and wide[0, 0] == pytest.approx(64 / 140)


def test_render_geometry_mirror_and_valid_mask() -> None:
    """A marker at the face centre lands in the sample centre; rotation turns an offset marker; masks follow."""
    h, w = 400, 500
    flash = np.zeros((h, w, 3), np.uint8)
    box = FaceBox(180.0, 120.0, 300.0, 240.0)  # centre (240, 180)
    cv2.circle(flash, (240, 180), 6, (255, 255, 255), -1)
    cv2.circle(flash, (290, 180), 6, (255, 0, 0), -1)  # 50 px right of the centre, red
    studio = flash.copy()
    valid = np.ones((h, w), np.float32)
    valid[:, :240] = 0  # left of the face centre: no studio pixels
    specs = [AugSpec(r, "face", False) for r in (0.0, 90.0)]
    (f0, s0, v0), (f90, _, _) = render_framing(flash, studio, valid, box, specs, 120)

    def blob(image: np.ndarray, channel_mask: tuple[bool, bool, bool]) -> np.ndarray:
        pick = np.all((image > 128) == np.array(channel_mask), axis=2)
        ys, xs = np.nonzero(pick)
        return np.array([xs.mean(), ys.mean()])

    np.testing.assert_allclose(blob(f0, (True, True, True)), [59.5, 59.5], atol=1.0)
    np.testing.assert_allclose(blob(f0, (True, False, False)), [59.5 + 50, 59.5], atol=1.0)
    # +90 degrees turns content counter-clockwise on screen: right of the centre goes up
    np.testing.assert_allclose(blob(f90, (True, False, False)), [59.5, 59.5 - 50], atol=1.0)
    assert np.array_equal(f0, s0)
    assert v0[:, :55].max() == 0 and v0[:, 65:].min() == 1
    # mirrored samples are exact flips (the builder flips the unmirrored render)
    m = sample_matrix(box, AugSpec(0.0, "face", True), 120)
    np.testing.assert_allclose(m @ np.array([290.0, 180.0, 1.0]), [59.5 - 50, 59.5], atol=1e-9)


def test_samples_in_shards_follow_their_aug(built: tuple[Path, object]) -> None:
    shards, _ = built
    with h5py.File(shards / "train-00000.h5", "r") as h5:
        aug = h5["aug"][:]
        assert list(aug[:20]) == list(range(20))
        flash, valid, bl = h5["flash"][:2], h5["valid"][:2], h5["flash_bl"][:2]
    assert np.array_equal(flash[1], flash[0][:, ::-1])  # aug 1 = aug 0 mirrored
    assert np.array_equal(valid[1], valid[0][:, ::-1])
    assert np.array_equal(bl[1], bl[0][:, ::-1])


# --------------------------------------------------------------------------------------------------- splits

def test_random_splits_are_disjoint_and_seeded() -> None:
    subjects = [f"s{i:02d}" for i in range(20)]
    a = assign_splits(subjects, fractions=(0.8, 0.1, 0.1), seed=3)
    assert a == assign_splits(reversed(subjects), fractions=(0.8, 0.1, 0.1), seed=3)
    assert sorted(a) == subjects
    counts = {s: list(a.values()).count(s) for s in ("train", "val", "test")}
    assert counts == {"train": 16, "val": 2, "test": 2}
    assert a != assign_splits(subjects, fractions=(0.8, 0.1, 0.1), seed=4)
    few = assign_splits(["x", "y", "z"], fractions=(0.8, 0.1, 0.1), seed=0)
    assert sorted(few.values()) == ["test", "train", "val"]


def test_split_file(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("subject,split\nann,train\nbob,test\n")
    assert read_split_file(path) == {"ann": "train", "bob": "test"}
    assert assign_splits(["bob", "ann"], split_file=path) == {"ann": "train", "bob": "test"}
    with pytest.raises(DatasetGenError, match="carl"):
        assign_splits(["ann", "carl"], split_file=path)
    path.write_text("ann,training\n")
    with pytest.raises(DatasetGenError, match="line 1"):
        read_split_file(path)


# ---------------------------------------------------------------------------------------------------- build

def test_build_outputs(built: tuple[Path, object], config: BuildConfig) -> None:
    shards, summary = built
    names = sorted(p.name for p in shards.glob("*.h5"))
    assert names == ["test-00000.h5", "train-00000.h5", "train-00001.h5"]
    assert summary.samples == {"train": 40, "val": 0, "test": 20}
    skipped = {s.key: s.reason for s in summary.skipped}
    assert "no face" in skipped["carl/front"]
    assert "flagged" in skipped["bob/flagged"] and "failed" in skipped["bob/failed"]
    assert not (shards / ".work").exists()
    with h5py.File(shards / "train-00000.h5", "r") as h5:
        assert h5.attrs["format_version"] == 1 and h5.attrs["size"] == SIZE and h5.attrs["split"] == "train"
        assert h5.attrs["sigma_s"] == 16.0 and h5.attrs["sigma_r"] == 0.1
        table = json.loads(h5.attrs["aug_table"])
        assert table[3] == {"rotation_deg": -20.0, "framing": "face", "mirrored": True}
        for name, (dtype, shape_of) in IMAGE_DATASETS.items():
            assert h5[name].dtype == dtype and h5[name].shape == (25, *shape_of(SIZE))
            assert h5[name].chunks == (1, *shape_of(SIZE))
        flash = h5["flash"][0].astype(np.float32) / 255
        studio = h5["studio"][0].astype(np.float32) / 255
        bl, target = h5["flash_bl"][0].astype(np.float32), h5["target"][0].astype(np.float32)
        subjects = {s.decode() for s in h5["subject"][:]}
    assert subjects == {"ann"}
    np.testing.assert_allclose(bl, datasetgen.bilateral_filter(flash), atol=2e-3)
    expected = (datasetgen.bilateral_filter(flash) - datasetgen.bilateral_filter(studio) + 1) / 2
    np.testing.assert_allclose(target, expected, atol=2e-3)
    with open(shards / "index.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["file", "row", "subject", "pose", "aug", "split"]
    assert len(rows) == 60 and rows[0] == {"file": "train-00000.h5", "row": "0", "subject": "ann",
                                            "pose": "front", "aug": "0", "split": "train"}
    assert rows[25]["file"] == "train-00001.h5" and rows[25]["row"] == "0" and rows[25]["aug"] == "5"
    meta = json.loads((shards / "dataset.json").read_text())
    assert set(meta["parameters"]) == {"size", "sigma_s", "sigma_r", "wide_factor", "rotations_deg", "framings",
                                       "mirror", "face_model", "split", "seed", "compression", "shard_size",
                                       "include_flagged"}
    assert meta["parameters"]["split"] == "file:splits.csv"
    assert meta["counts"]["train"] == {"samples": 40, "pairs": 2, "subjects": 2}
    assert meta["tool_version"]
    import hashlib

    for entry in meta["shards"]:
        assert entry["sha256"] == hashlib.sha256((shards / entry["file"]).read_bytes()).hexdigest()
    assert verify_shards(shards) == []


def test_rerun_is_up_to_date_and_other_parameters_need_force(built: tuple[Path, object], config: BuildConfig,
                                                              aligned: Path, tmp_path: Path) -> None:
    shards, _ = built
    before = _shard_bytes(shards)
    again = build_shards(aligned, shards, config=config)
    assert again.up_to_date and again.samples["train"] == 40
    assert _shard_bytes(shards) == before
    copy = _copy(shards, tmp_path)
    other = BuildConfig(size=32, split_file=config.split_file, shard_size=25, rotations_deg=(0.0,),
                        framings=("face",))
    with pytest.raises(DatasetGenError, match="--force"):
        build_shards(aligned, copy, config=other)
    summary = build_shards(aligned, copy, config=other, force=True)
    assert summary.samples == {"train": 4, "val": 0, "test": 2}
    assert sorted(p.name for p in copy.glob("*.h5")) == ["test-00000.h5", "train-00000.h5"]


def test_images_changed_after_a_build_are_never_reused(aligned: Path, split_file: Path, tmp_path: Path) -> None:
    """A pair registered again (new studio.png) makes the finished dataset stale: no silent 'up to date'."""
    tree = tmp_path / "aligned"
    shutil.copytree(aligned, tree)
    cfg = BuildConfig(size=32, split_file=split_file, rotations_deg=(0.0,), framings=("face",), mirror=False)
    build_shards(tree, tmp_path / "s", config=cfg)
    assert build_shards(tree, tmp_path / "s", config=cfg).up_to_date
    studio = next(tree.rglob("studio.png"))
    os.utime(studio, ns=(1, 1))  # as if written again by prep register --force
    with pytest.raises(DatasetGenError, match="images"):
        build_shards(tree, tmp_path / "s", config=cfg)
    assert not build_shards(tree, tmp_path / "s", config=cfg, force=True).up_to_date


def test_include_flagged(aligned: Path, split_file: Path, tmp_path: Path) -> None:
    cfg = BuildConfig(size=32, split_file=split_file, rotations_deg=(0.0,), framings=("face",), mirror=False,
                      include_flagged=True)
    summary = build_shards(aligned, tmp_path / "s", config=cfg)
    assert summary.pairs["test"] == 2  # bob/front and bob/flagged
    assert "bob/failed" in {s.key for s in summary.skipped}


def test_workers_give_identical_shards(built: tuple[Path, object], aligned: Path, config: BuildConfig,
                                       tmp_path: Path) -> None:
    shards, _ = built
    build_shards(aligned, tmp_path / "w2", config=config, workers=2)
    assert _shard_bytes(tmp_path / "w2") == _shard_bytes(shards)
    assert (tmp_path / "w2" / "index.csv").read_bytes() == (shards / "index.csv").read_bytes()


def test_killed_build_resumes_to_identical_shards(built: tuple[Path, object], aligned: Path, split_file: Path,
                                                  tmp_path: Path) -> None:
    shards, _ = built
    target = tmp_path / "killed"
    cmd = [sys.executable, "-c", "from acquisition._entry import run; run()", "-q", "build-h5", str(aligned),
           str(target), "--size", str(SIZE), "--split-file", str(split_file), "--shard-size", "25"]
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rng = np.random.default_rng(int(time.time()))
    try:
        deadline = time.monotonic() + 60
        while not list((target / ".work" / "records").glob("*/*.json")) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(float(rng.uniform(0.0, 0.6)))  # a random point after the first pair
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    result = build_shards(aligned, target, config=BuildConfig(size=SIZE, split_file=split_file, shard_size=25))
    if process.returncode == -signal.SIGKILL:
        assert result.resumed >= 1 or result.up_to_date
    assert _shard_bytes(target) == _shard_bytes(shards)
    assert verify_shards(target) == []
    assert not any(p.name.startswith(".tmp-") for p in target.iterdir())


def test_not_enough_disk(aligned: Path, config: BuildConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasetgen._build as build_module

    monkeypatch.setattr(build_module.shutil, "disk_usage",
                        lambda path: shutil._ntuple_diskusage(10**12, 10**12 - 10**6, 10**6))
    with pytest.raises(DatasetGenError, match="not enough free disk"):
        build_shards(aligned, tmp_path / "s", config=config)
    assert not list((tmp_path / "s").glob("*.h5"))


def test_without_registration_csv_every_pair_counts(aligned: Path, tmp_path: Path) -> None:
    tree = tmp_path / "aligned"
    shutil.copytree(aligned / "bob", tree / "bob")
    cfg = BuildConfig(size=32, rotations_deg=(0.0,), framings=("face",), mirror=False, split=(1.0, 0.0, 0.0))
    summary = build_shards(tree, tmp_path / "s", config=cfg)
    assert summary.pairs["train"] == 3 and not summary.skipped  # flagged and failed are plain pairs now


def test_no_usable_pair(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetGenError, match="no usable"):
        build_shards(tmp_path / "empty", tmp_path / "s")


# --------------------------------------------------------------------------------------------------- verify

def test_verify_catches_a_corrupted_byte(built: tuple[Path, object], tmp_path: Path) -> None:
    copy = _copy(built[0], tmp_path)
    path = copy / "train-00001.h5"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    problems = verify_shards(copy)
    assert any(p.path.name == "train-00001.h5" and "SHA-256" in p.message for p in problems)
    result = CliRunner().invoke(prep, ["verify", str(copy)])
    assert result.exit_code == 1 and "SHA-256" in result.output
    problem_lines = [line for line in result.output.splitlines() if "train-00001.h5" in line]
    assert problem_lines and all("prep build-h5" in line for line in problem_lines)  # each names its fix


def test_verify_catches_wrong_dtype_and_bad_values(built: tuple[Path, object], tmp_path: Path) -> None:
    copy = _copy(built[0], tmp_path)
    with h5py.File(copy / "test-00000.h5", "r+") as h5:
        data = h5["flash_bl"][:].astype(np.float32)
        del h5["flash_bl"]
        h5.create_dataset("flash_bl", data=data, chunks=(1, SIZE, SIZE, 3))
    with h5py.File(copy / "train-00000.h5", "r+") as h5:
        h5["target"][3] = 1.5
    messages = [str(p) for p in verify_shards(copy)]
    assert any("test-00000.h5" in m and "dtype float32" in m for m in messages)
    assert any("train-00000.h5" in m and "target values outside [0, 1]" in m for m in messages)


def test_verify_catches_overlapping_subjects(built: tuple[Path, object], tmp_path: Path) -> None:
    copy = _copy(built[0], tmp_path)
    with h5py.File(copy / "test-00000.h5", "r+") as h5:
        h5["subject"][0] = "ann"
    messages = [str(p) for p in verify_shards(copy)]
    assert any("subject 'ann' is in several splits: train, test" in m for m in messages)
    assert any("index.csv" in m for m in messages)


def test_verify_catches_missing_and_unlisted_shards(built: tuple[Path, object], tmp_path: Path) -> None:
    copy = _copy(built[0], tmp_path)
    (copy / "train-00001.h5").rename(copy / "val-00000.h5")
    messages = [str(p) for p in verify_shards(copy)]
    assert any("train-00001.h5" in m and "missing" in m for m in messages)
    assert any("val-00000.h5" in m and "not listed" in m for m in messages)


def _edit(meta: dict, path: list, value: object) -> None:
    for key in path[:-1]:
        meta = meta[key]
    if path[-1] == "+":
        meta.append(value)
    else:
        meta[path[-1]] = value


@pytest.mark.parametrize(("path", "value", "words"), [
    (["parameters", "wide_factor"], 1.5, "built with wide_factor 2.0, dataset.json says 1.5"),
    (["parameters", "face_model"], "cnn", "built with face_model hog, dataset.json says cnn"),
    (["parameters", "compression"], "lzf", "compression none, dataset.json says lzf"),
    (["parameters", "shard_size"], 20, "holds 25 samples, more than shard_size 20"),
    (["parameters", "mirror"], False, "aug_table does not match parameters"),
    (["aug_table", 0, "rotation_deg"], 5.0, "aug_table does not match parameters"),
    (["subjects", "ann"], "test", "holds subject 'ann', which dataset.json puts in split 'test', not 'train'"),
    (["counts", "train", "pairs"], 3, "counts train pairs 3, the shards hold 2"),
    (["counts", "train", "subjects"], 1, "counts train subjects 1, its subjects list 2"),
    (["shards", 0, "bytes"], 1234, "dataset.json says 1234: it changed since the build"),
    (["skipped", "+"], {"key": "ann/front", "reason": "x", "broken": True}, "lists pair ann/front as skipped"),
    (["fingerprint"], "0" * 64, "comes from another build"),
    (["format_version"], 2, "has format_version 1, dataset.json says 2"),
    # Only dataset.json holds these: its checksum shows the edit, and the message says they are informational.
    (["tool_version"], "9.9.9", "was edited after the build: its checksum does not match"),
    (["tool"], "something else", "informational tool, tool_version, skipped cannot be checked"),
    (["note"], "hand-made", "holds key(s) prep build-h5 does not write: note"),
])
def test_verify_checks_every_field_of_dataset_json(built: tuple[Path, object], tmp_path: Path, path: list,
                                                   value: object, words: str) -> None:
    copy = _copy(built[0], tmp_path)
    meta = json.loads((copy / "dataset.json").read_text())
    _edit(meta, path, value)
    (copy / "dataset.json").write_text(json.dumps(meta))
    messages = [str(p) for p in verify_shards(copy)]
    assert any(words in m for m in messages), messages


def test_shards_record_their_build(built: tuple[Path, object]) -> None:
    meta = json.loads((built[0] / "dataset.json").read_text())
    with h5py.File(built[0] / "train-00000.h5", "r") as h5:
        assert json.loads(h5.attrs["parameters"]) == meta["parameters"]
        assert h5.attrs["build"] == meta["fingerprint"]
    assert all(entry["bytes"] == (built[0] / entry["file"]).stat().st_size for entry in meta["shards"])


# --------------------------------------------------------------------------------------------- review + CLI

def test_shard_sheets(built: tuple[Path, object], tmp_path: Path) -> None:
    paths = write_shard_sheets(built[0], tmp_path / "sheets", count=10, seed=1)
    assert [p.name for p in paths] == ["samples-000.png", "samples-001.png"]
    image = cv2.imread(str(paths[0]))
    assert image.shape[1] == 4 * 192 and image.shape[0] > 8 * 192
    assert write_shard_sheets(built[0], tmp_path / "again", count=10, seed=1)[0].read_bytes() == paths[0].read_bytes()


def test_cli_review_dispatches(built: tuple[Path, object], tmp_path: Path, aligned: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    result = CliRunner().invoke(prep, ["review", str(built[0]), str(tmp_path / "sheets"), "--count", "3"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "sheets" / "samples-000.png").is_file()
    import types

    calls = []
    fake = types.ModuleType("registration")
    fake.write_contact_sheets = lambda a, s, *, pairs_per_sheet=8, progress=None: calls.append((a, s,
                                                                                                pairs_per_sheet)) or []
    monkeypatch.setitem(sys.modules, "registration", fake)
    result = CliRunner().invoke(prep, ["review", str(aligned), str(tmp_path / "reg"), "--pairs-per-sheet", "4"])
    assert result.exit_code == 0, result.output
    assert calls == [(aligned, tmp_path / "reg", 4)]


def test_cli_build_and_verify(aligned: Path, split_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    args = ["-q", "build-h5", str(aligned), str(out), "--size", "32", "--rotations", "0", "--framings", "face",
            "--split-file", str(split_file)]
    result = CliRunner().invoke(prep, args)
    assert result.exit_code == 1, result.output  # carl/front has no face: shards are written, the status says so
    assert "skipped carl/front" in result.output and "6 samples" in result.output
    assert sum("carl/front" in line for line in result.output.splitlines()) == 1  # once under -q, not twice
    assert "--min-face-px" in result.output
    result = CliRunner().invoke(prep, ["verify", str(out)])
    assert result.exit_code == 0 and "OK" in result.output
    result = CliRunner().invoke(prep, ["build-h5", str(aligned), str(tmp_path / "x"), "--split", "0.5,0.2"])
    assert result.exit_code == 2 and "split" in result.output


def test_package_exports() -> None:
    assert "build_shards" in datasetgen.__all__ and "DatasetGenError" in datasetgen.__all__
    for name in datasetgen.__all__:
        assert getattr(datasetgen, name) is not None
    assert os.path.basename(datasetgen.__file__) == "__init__.py"


def test_a_valid_mask_announcing_a_huge_picture_is_damaged_not_too_large(tmp_path: Path) -> None:
    from datasetgen._build import _read_valid
    from tests.fakes.image_files import header_only_png

    (tmp_path / "valid.png").write_bytes(header_only_png(40000, 40000))
    with pytest.raises(DatasetGenError) as info:
        _read_valid(tmp_path / "valid.png", (600, 512))
    assert "40000x40000" in str(info.value) and "prep register --force" in str(info.value)
    assert "raise the limit" not in str(info.value)
