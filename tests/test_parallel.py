"""acquisition.parallel: workers use one thread each and stop with their caller."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]

_PROBE = """
import json
import numpy  # BLAS starts its threads here, reading OPENBLAS_NUM_THREADS once
from threadpoolctl import threadpool_info
from acquisition.parallel import limit_threads
blas = lambda: max(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")
before = blas()
limit_threads()
print(json.dumps([before, blas()]))
"""


def test_limit_threads_reaches_a_blas_loaded_before_it() -> None:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2",
           "PYTHONPATH": str(_REPO)}
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True,
                         timeout=120)
    before, after = json.loads(out.stdout.strip().splitlines()[-1])
    assert before == 2  # the probe is meaningful: BLAS really had two threads
    assert after == 1


def _slow_item(job: tuple[str, int]) -> int:
    """Marks its start, takes 2 s, marks its end (a worker's item under way)."""
    folder, index = job
    Path(folder, f"started-{index}").touch()
    time.sleep(2.0)
    Path(folder, f"finished-{index}").touch()
    return index


def test_closing_the_results_stops_the_workers_at_once(tmp_path: Path) -> None:
    """The caller stops (Ctrl-C or ``kill`` of ``prep ... --workers 2`` arrive as this): the items under way are
    abandoned, the queued ones never start, and nothing runs once the generator is closed. (Python 3.11's
    ``shutdown()`` forgets its workers even when it does not wait, so they used to be left to finish every
    queued item, writing into the output folder after the command had said it was interrupted.)"""
    from acquisition.parallel import map_in_order

    results = map_in_order(_slow_item, [(str(tmp_path), i) for i in range(8)], workers=2)
    assert next(results) == 0
    closing = time.monotonic()
    results.close()
    assert time.monotonic() - closing < 1.5  # terminated, not waited for (each item takes 2 s)
    settled = sorted(p.name for p in tmp_path.iterdir())
    time.sleep(2.5)
    assert sorted(p.name for p in tmp_path.iterdir()) == settled  # no worker is left to write
    assert len([n for n in settled if n.startswith("started")]) <= 4  # the queued items were cancelled
    assert len([n for n in settled if n.startswith("finished")]) <= 2
