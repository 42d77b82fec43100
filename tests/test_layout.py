"""Pair discovery: complete pairs returned, every incomplete or unsafe entry reported."""

from __future__ import annotations

import os

import pytest

from acquisition.errors import AcquisitionError
from acquisition.layout import check_name, discover_pairs, pose_dir


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_complete_pairs_with_mixed_extensions(tmp_path):
    touch(tmp_path / "S001" / "p1" / "flash.JPG")
    touch(tmp_path / "S001" / "p1" / "studio.jpeg")
    touch(tmp_path / "S001" / "p2" / "Flash.png")
    touch(tmp_path / "S001" / "p2" / "studio.TIFF")
    touch(tmp_path / "S002" / "p1" / "flash.tif")
    touch(tmp_path / "S002" / "p1" / "studio.png")
    touch(tmp_path / "S002" / "p1" / "meta.json")
    touch(tmp_path / "manifest.csv")
    found = discover_pairs(tmp_path)
    assert [p.key for p in found.pairs] == ["S001/p1", "S001/p2", "S002/p1"]
    assert found.problems == []
    assert found.pairs[2].meta == tmp_path / "S002" / "p1" / "meta.json"
    assert found.pairs[0].meta is None
    assert found.manifest == tmp_path / "manifest.csv"


def test_incomplete_pairs_are_reported_not_dropped(tmp_path):
    touch(tmp_path / "S1" / "lonely" / "flash.jpg")
    touch(tmp_path / "S1" / "orphan" / "studio.jpg")
    touch(tmp_path / "S1" / "double" / "flash.jpg")
    touch(tmp_path / "S1" / "double" / "flash.png")
    touch(tmp_path / "S1" / "double" / "studio.png")
    (tmp_path / "S1" / "empty").mkdir()
    touch(tmp_path / "S1" / "ok" / "flash.jpg")
    touch(tmp_path / "S1" / "ok" / "studio.jpg")
    touch(tmp_path / "S1" / "ok" / "notes.txt")
    touch(tmp_path / "S1" / "ok" / ".tmp-flash.jpg.abc")
    found = discover_pairs(tmp_path)
    assert [p.key for p in found.pairs] == ["S1/ok"]
    reasons = {p.path.name: p.reason for p in found.problems}
    assert "no studio partner" in reasons["lonely"] and "copy the studio shot in" in reasons["lonely"]
    assert "no flash partner" in reasons["orphan"]
    assert "two or more flash" in reasons["double"]
    assert "no flash or studio" in reasons["empty"]


@pytest.mark.parametrize("name", ["..", ".hidden", "a\\b", "tab\there", " padded", ""])
def test_bad_names_are_refused(name):
    with pytest.raises(ValueError):
        check_name(name)
    with pytest.raises(ValueError):
        pose_dir("raw", "S1", name)


def test_bad_folder_names_reported(tmp_path):
    touch(tmp_path / "bad\\name" / "p" / "flash.jpg")
    touch(tmp_path / "bad\\name" / "p" / "studio.jpg")
    found = discover_pairs(tmp_path)
    assert found.pairs == []
    assert "path separator" in found.problems[0].reason


def test_symlinks_out_of_the_tree_are_refused(tmp_path):
    root, outside = tmp_path / "raw", tmp_path / "outside"
    touch(outside / "secret.jpg")
    touch(outside / "pose" / "flash.jpg")
    touch(outside / "pose" / "studio.jpg")
    touch(root / "S1" / "p1" / "studio.jpg")
    os.symlink(outside / "secret.jpg", root / "S1" / "p1" / "flash.jpg")
    (root / "S2").mkdir()
    os.symlink(outside / "pose", root / "S2" / "p1")
    # A link that stays inside the tree is fine.
    touch(root / "S3" / "p1" / "flash.jpg")
    os.symlink(root / "S3" / "p1" / "flash.jpg", root / "S3" / "p1" / "studio.jpg")
    found = discover_pairs(root)
    assert [p.key for p in found.pairs] == ["S3/p1"]
    assert len(found.problems) == 2
    assert all("outside the tree" in p.reason for p in found.problems)


def test_root_must_be_a_folder(tmp_path):
    with pytest.raises(AcquisitionError, match="not a folder"):
        discover_pairs(tmp_path / "missing")
