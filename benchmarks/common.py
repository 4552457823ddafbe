"""Shared by the benchmark scripts: the JSON header and an atomic write."""
from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path


def header(script: str) -> dict:
    import qcompile as qc

    return {"command": f"python benchmarks/{script} " + " ".join(sys.argv[1:]),
            "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
            "qcompile_version": qc.__version__, "models": {}}


def write_json(path, obj) -> None:
    """Write ``obj`` to ``path`` through a temporary file, so a failed run leaves the old file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
    tmp.replace(p)
    print(f"wrote {p}")
