"""Lamps without a computer interface: the operator switches them and confirms."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..devices import LampController

__all__ = ["ManualLamps"]


class ManualLamps(LampController):
    """Asks the operator to switch the lamps through ``prompt`` and waits until it returns.

    Parameters
    ----------
    prompt : callable(str) -> None
        Shows the instruction and returns once the operator has done it (the CLI waits for Enter); it may
        raise to abort the session.
    """

    name = "manual"

    def __init__(self, prompt: Callable[[str], None]) -> None:
        super().__init__()
        self._prompt = prompt

    def _set(self, on: bool, level: int) -> None:
        if on:
            self._prompt(f"Switch the studio lamps ON (level {level}/255), then press Enter")
        else:
            self._prompt("Switch the studio lamps OFF, then press Enter")

    def describe(self) -> dict[str, Any]:
        """Settings for the session metadata."""
        return {"backend": self.name}
