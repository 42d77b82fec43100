"""The `prep` command: help, version, and one clear line for user errors."""

from __future__ import annotations

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
    for name, command in main.commands.items():
        result = runner.invoke(main, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert "prep " + name in result.output, f"`prep {name} --help` shows no example"
        del command


def test_console_script_starts_fast_without_heavy_imports():
    code = "import sys, acquisition.prep; print(sorted(m for m in ('torch', 'SimpleITK', 'h5py') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
