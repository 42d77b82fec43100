"""Hardware emulators for the capture tests: serial devices on pseudo-terminals and a fake ``adb``."""

from __future__ import annotations

import sys
from pathlib import Path

FAKES = Path(__file__).resolve().parent


def install_fake_adb(bin_dir: Path) -> Path:
    """Write an ``adb`` wrapper into ``bin_dir`` that runs :mod:`fake_adb` with this interpreter."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    wrapper = bin_dir / "adb"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "{FAKES / "fake_adb.py"}" "$@"\n')
    wrapper.chmod(0o755)
    return wrapper
