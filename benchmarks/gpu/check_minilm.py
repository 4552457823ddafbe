"""On the GPU machine (runtime-only TVM, see README.md): MiniLM's int-only CUDA artifacts
from build_minilm.py against the llvm artifact's output of the same module, and their
time (median of 50 calls after 10 warm-up). Writes $OUT/gpu_minilm.json. An artifact may be carried xz-compressed (``NAME.so.xz``).

    GPU_ART_MINILM=.gpu/mini python3 benchmarks/gpu/check_minilm.py"""
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import check  # noqa: E402  (loads TVM's runtime and registers nvcc)

ART = os.environ.get("GPU_ART_MINILM", ".gpu/art_minilm")
tvm, dev = check.tvm, check.dev
d = np.load(ART + "/data.npz")
info = json.load(open(ART + "/build_info.json"))
res = {"device": dev.device_name, "build": info}
for name, meta in info.items():
    b = meta["batch"]
    if not any(os.path.exists(f"{ART}/{name}.so{x}") for x in ("", ".xz")):
        print(name, "not carried, skipped", flush=True)
        continue
    vm = check.load(name, ART)
    args = [tvm.runtime.tensor(d[f"b{b}_{k}"], device=dev) for k in meta["inputs"]]
    o = check.first(vm["main"](*args))
    ref = d[f"b{b}_llvm"]
    for _ in range(10):
        vm["main"](*args)
    dev.sync()
    ts = []
    for _ in range(50):
        t = time.perf_counter()
        vm["main"](*args)
        dev.sync()
        ts.append(time.perf_counter() - t)
    res[name] = {"equal_to_llvm_artifact": float((o == ref).mean()), "max_abs_diff_vs_llvm": float(np.abs(o - ref).max()),
                 "median_ms": 1000 * float(np.median(ts))}
    print(name, res[name], flush=True)
json.dump(res, open(os.path.join(os.environ.get("OUT", "."), "gpu_minilm.json"), "w"), indent=1)
