"""A fixed CPU load beside a benchmark: N processes, one thread each, multiplying matrices until stopped.

``bench-rerank --busy N`` times both scoring paths while it runs, so "how does it hold up on a busy
machine" is a figure anyone can reproduce rather than whatever else the machine happened to be doing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

# One BLAS thread each: N processes keep N cores busy, no more.
SINGLE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
LOOP = """
import sys
import numpy as np
a = np.random.default_rng(0).standard_normal((256, 256), dtype=np.float32)
print("busy", flush=True)
while True:
    a = a @ a
    a /= np.abs(a).max() + 1e-6
"""


@contextmanager
def busy_load(processes: int) -> Iterator[list[int]]:
    """Run ``processes`` busy loops for the duration of the block; yields their process ids."""
    started = [
        subprocess.Popen(
            [sys.executable, "-c", LOOP], env={**os.environ, **SINGLE_THREAD}, stdout=subprocess.PIPE, text=True
        )
        for _ in range(processes)
    ]
    try:
        for process in started:  # each is computing before the timing starts
            process.stdout.readline()
        yield [process.pid for process in started]
    finally:
        for process in started:
            process.kill()
        for process in started:
            process.wait(timeout=30)
