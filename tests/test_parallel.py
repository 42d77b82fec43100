"""acquisition.parallel: workers' thread limits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
