"""The `prep` command: help, version, and one clear line for user errors."""

from __future__ import annotations

import re
import subprocess
import sys

from click.testing import CliRunner

from acquisition.prep import main


def test_help_lists_commands_and_version():
    runner = CliRunner()
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: prep" in result.output
    version = runner.invoke(main, ["--version"])
    assert version.exit_code == 0 and "deepflash" in version.output


def test_every_command_has_help_with_an_example():
    runner = CliRunner()
    for name in main.commands:
        result = runner.invoke(main, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        example = re.search(rf"Examples?:\n(\s+.*\n)*?\s+prep {re.escape(name)}\b", result.output)
        assert example, f"`prep {name} --help` shows no example under an 'Example:' heading"


def test_console_script_starts_fast_without_heavy_imports():
    code = "import sys, acquisition.prep; print(sorted(m for m in ('torch', 'SimpleITK', 'h5py') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_missing_face_recognition_is_one_line_with_the_fix():
    """A plain `pip install` without face_recognition: one line with the exact fix, not a traceback."""
    script = (
        "import sys; sys.modules['face_recognition'] = None\n"  # makes `import face_recognition` fail
        "import numpy as np\n"
        "from acquisition.errors import PrepError\n"
        "from acquisition.faces import detect_faces\n"
        "try:\n"
        "    detect_faces(np.zeros((64, 64, 3), np.uint8))\n"
        "except PrepError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and "face_recognition is not installed" in lines[0]
    assert "pip install --no-deps face_recognition==1.3.0" in lines[0]


def test_stage_packages_export_exactly_their_stub() -> None:
    """Each stage's public names are listed once, in its ``__init__.pyi``; lazy_loader serves exactly those."""
    import ast
    import importlib
    from pathlib import Path

    for name in ("registration", "datasetgen", "training"):
        package = importlib.import_module(name)
        stub = ast.parse(Path(package.__file__).with_suffix(".pyi").read_text())
        declared = next(ast.literal_eval(node.value) for node in stub.body
                        if isinstance(node, ast.Assign) and node.targets[0].id == "__all__")
        assert sorted(declared) == sorted(package.__all__), name
        for public in package.__all__:
            assert getattr(package, public) is not None, f"{name}.{public}"


def test_running_out_of_memory_is_one_line_in_any_command():
    """Tester: OpenCV's "Insufficient memory" (and a MemoryError) came out of a command as a traceback."""
    import click
    import cv2

    from acquisition.cli_common import reports_errors

    @click.command()
    @click.argument("how")
    @reports_errors
    def command(how: str) -> None:
        if how == "python":
            raise MemoryError("Unable to allocate 48.2 GiB for an array with shape (40000, 40000, 8)")
        if how == "opencv":  # what cv2 raises when its allocator fails, through a real call
            raise cv2.error("OpenCV(5.0.0) alloc.cpp:73: error: (-4:Insufficient memory) Failed to allocate "
                            "135000000 bytes in function 'OutOfMemoryError'")
        raise RuntimeError("a bug")  # any other failure is not mistaken for memory: it shows where it came from

    for how, detail in (("python", "Unable to allocate 48.2 GiB"), ("opencv", "Failed to allocate 135000000 bytes")):
        result = CliRunner().invoke(command, [how])
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 1 and len(lines) == 1, result.output
        assert "ran out of memory" in lines[0] and detail in lines[0] and "fewer --workers" in lines[0]
    other = CliRunner().invoke(command, ["other"])
    assert other.exit_code == 1 and isinstance(other.exception, RuntimeError)
