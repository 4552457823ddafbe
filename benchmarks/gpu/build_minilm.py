"""Build all-MiniLM-L6-v2's ``int-only`` CUDA artifacts here (no GPU needed) for timing on
the GPU machine, with inputs and the llvm artifact's outputs of the same module as the
reference (``check_minilm.py`` compares and times them).

    python benchmarks/gpu/build_minilm.py   # writes .gpu/art_minilm/

Only the int-only artifact travels: its int8 weights (23 MB) fit the device carry limit
beside TVM's runtime, the float32 one (91 MB) does not."""
import json
import os
import sys
import time

import numpy as np

import qcompile as qc
from qcompile.calibration import Calibration
from qcompile.models import corpus, minilm

out = os.environ.get("GPU_ART_MINILM", ".gpu/art_minilm")
os.makedirs(out, exist_ok=True)
batches = [int(b) for b in (sys.argv[1] if len(sys.argv) > 1 else "1,8").split(",")]
cal = minilm.tokenize(corpus.sentences("calib", 32))
data, info = {}, {}
for b in batches:
    model = qc.load(minilm.export_onnx(batch=b))
    feed = {k: np.ascontiguousarray(v[:b]) for k, v in minilm.tokenize(corpus.sentences("eval", b)).items()}
    pm = qc.PassManager(qc.pipeline("int-only"), calibration=Calibration(cal, batch=b, progress=False))
    mod = pm.run(model.mod)
    t = time.perf_counter()
    art = qc.build(mod, "cuda")
    art.executable.export_library(f"{out}/minilm_int_b{b}.so")
    info[f"minilm_int_b{b}"] = {"batch": b, "build_s": round(time.perf_counter() - t, 1),
                                "dp4a_matmuls": len(art.info["dp4a_matmuls"]),
                                "float_kernels": art.info["float_kernels"],
                                "inputs": list(feed)}
    for k, v in feed.items():
        data[f"b{b}_{k}"] = v
    data[f"b{b}_llvm"] = qc.build(mod, "llvm").run(*feed.values())[0]
    print(b, info[f"minilm_int_b{b}"], flush=True)
np.savez(f"{out}/data.npz", **data)
json.dump(info, open(f"{out}/build_info.json", "w"), indent=1)
print("built")
