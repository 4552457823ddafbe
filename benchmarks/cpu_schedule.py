"""The default CPU schedule against TVM's unscheduled llvm code, side by side in one run:
the bundled ViT, batch 32, median of 10 runs after a warm-up; outputs compared.

    python benchmarks/cpu_schedule.py [--out benchmarks/results/cpu_schedule.json]
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import qcompile as qc  # noqa: E402
from qcompile.backends import cpu_schedule  # noqa: E402
from qcompile.models import ASSETS, DEFAULT_MODEL  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/cpu_schedule.json"))
    a = ap.parse_args()
    mod = qc.canonicalize(qc.load(DEFAULT_MODEL, input_shapes={"pixels": (32, 1, 28, 28)}).mod)
    x = np.load(ASSETS / "fmnist_test256.npz")["pixels"][:32]
    scheduled = cpu_schedule.schedule_func
    res, outs = {}, {}
    for name in ("unscheduled", "scheduled"):
        cpu_schedule.schedule_func = scheduled if name == "scheduled" else (lambda f: f)
        art = qc.build(mod, "llvm")
        outs[name] = art.run(x)[0]
        times = []
        for _ in range(10):
            t = time.perf_counter()
            art.run(x)
            times.append(time.perf_counter() - t)
        res[name] = {"median_ms": 1000 * float(np.median(times))}
    cpu_schedule.schedule_func = scheduled
    out = {"command": "python benchmarks/cpu_schedule.py", "model": "bundled ViT, batch 32", **res,
           "speedup": res["unscheduled"]["median_ms"] / res["scheduled"]["median_ms"],
           "max_abs_diff": float(np.abs(outs["scheduled"] - outs["unscheduled"]).max())}
    Path(a.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
