"""Takes are counted one way everywhere: meta.json's ``take`` (0 for the first) is the number of takes its
``retakes`` lists, the manifest's ``takes`` that plus one, also across a resumed session."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from acquisition.session import Prompt, SessionConfig, simulate_sessions
from acquisition.sim import StudioConfig

SIZE = (240, 320)
UNCHECKED = SessionConfig(lamp_settle_ms=0, dark_wait_ms=0, expected_size=SIZE, check=False)


def _answers(*actions: str):
    queue = list(actions)

    def ask(prompt: Prompt) -> str:
        return queue.pop(0)

    return ask


def _state(root: Path) -> tuple[dict, dict[str, str]]:
    meta = json.loads((root / "astronaut/p01/meta.json").read_text())
    with open(root / "manifest.csv", newline="", encoding="utf-8") as handle:
        (row,) = [r for r in csv.DictReader(handle) if r["pose"] == "p01"]
    return meta, row


def test_take_counts_every_retake_also_after_a_resume(tmp_path):
    studio = StudioConfig(blink_probability=0.0)
    # A first run: p01, the operator retakes it once, then quits.
    simulate_sessions(tmp_path, subjects=1, poses=2, size=SIZE, seed=1, sim_config=studio, config=UNCHECKED,
                      ask=_answers("retake", "quit"))
    meta, row = _state(tmp_path)
    assert meta["take"] == len(meta["retakes"]) == 1 and row["takes"] == "2"
    first_take = meta["retakes"][0]["studio_sha256"]
    # The session resumed: the operator retakes p01 again. Its meta keeps both replaced takes, and its take is
    # the third (index 2), drawn afresh (not the bytes of the first retake).
    simulate_sessions(tmp_path, subjects=1, poses=2, size=SIZE, seed=1, sim_config=studio, config=UNCHECKED,
                      resume=True, ask=_answers("retake", "quit"))
    again, row = _state(tmp_path)
    assert again["take"] == len(again["retakes"]) == 2 and row["takes"] == "3"
    assert [r["studio_sha256"] for r in again["retakes"]] == [first_take, meta["shots"]["studio"]["sha256"]]
    assert again["shots"]["studio"]["sha256"] not in (first_take, meta["shots"]["studio"]["sha256"])
