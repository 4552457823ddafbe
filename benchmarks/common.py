"""Shared by the benchmark scripts: the JSON header, an atomic write and a median timer."""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np


def header(script: str) -> dict:
    import qcompile as qc

    return {"command": f"python benchmarks/{script} " + " ".join(sys.argv[1:]),
            "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
            "qcompile_version": qc.__version__, "models": {}}


def write_json(path, obj, indent: int = 1, announce: bool = True) -> None:
    """Write ``obj`` to ``path`` through a temporary file, so a failed run leaves the old file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=indent) + "\n")
    tmp.replace(p)
    if announce:
        print(f"wrote {p}")


def median_ms(fn, runs: int, warmup: int) -> float:
    """Median wall time of ``fn()`` in ms over ``runs`` calls, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return 1000 * float(np.median(ts))
