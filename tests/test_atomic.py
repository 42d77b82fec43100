"""Atomic writes: a crash in the middle never leaves a partial file under the final name."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap

import pytest

from acquisition.atomic import TEMP_PREFIX, atomic_write, write_bytes_atomic, write_json_atomic
from acquisition.errors import PrepError


def test_exception_keeps_old_content_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.bin"
    write_bytes_atomic(target, b"old")
    with pytest.raises(RuntimeError), atomic_write(target) as handle:
        handle.write(b"new partial")
        raise RuntimeError("crash in the middle")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_killed_process_never_leaves_partial_final_file(tmp_path):
    """A real crash: the writer process is killed with SIGKILL half way through."""
    target = tmp_path / "big.bin"
    script = textwrap.dedent(f"""
        import os, signal
        from acquisition.atomic import atomic_write
        with atomic_write({str(target)!r}) as handle:
            handle.write(b"x" * 1_000_000)
            handle.flush()
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert result.returncode == -9
    assert not target.exists()
    leftovers = os.listdir(tmp_path)
    assert all(name.startswith(TEMP_PREFIX) for name in leftovers)


def test_disk_full_is_a_clear_error(tmp_path, monkeypatch):
    target = tmp_path / "out.json"
    real_fsync = os.fsync

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(PrepError) as info:
        write_json_atomic(target, {"a": 1})
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert "disk is full" in str(info.value) and str(target) in str(info.value)
    assert os.listdir(tmp_path) == []


def test_creates_parent_and_writes_json(tmp_path):
    target = tmp_path / "a" / "b" / "x.json"
    write_json_atomic(target, {"k": [1, 2]})
    assert target.read_text().startswith("{")
