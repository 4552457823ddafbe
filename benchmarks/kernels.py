"""Where the time of a qcompile artifact goes: time per kernel, grouped by kind, for the
artifacts ``benchmarks/speed.py`` built (run that first; it caches them).

    python benchmarks/kernels.py [--models minilm_b1,minilm_b8] [--runs 10] [--threads 2]
                                 [--out benchmarks/results/kernels.json]

Each kernel call of the Relax VM is timed through the VM's instrument hook (wall clock
around the call, so the figures include the hook's own overhead per kernel; use the
fractions, and ``speed.py`` for whole-model times); each kernel's figure is its median
over the runs. Kernels are
grouped by the names FuseOps gives them: the packed int8 matmuls (``pmaddwd``), the int8
attention matmuls packed at run time (``pmaddwd_rt``), other matmuls (fp32), softmax / Shiftmax, LayerNorm,
int8 lookup tables (``lut``), and the rest (requantizations, transposes, residual adds).

For the int-only artifacts (``int-only``, and ``int-only-w7`` with 7-bit weights on
``vpmaddubsw``) it also gives the rate of the packed int8 matmuls: the multiply-adds of the
model's constant-weight matmuls (counted on its canonical graph) over their time, against
the peaks ``speed.py`` measured (``peak`` in ``speed.json``): the machine's int8 peak
(``vpmaddubsw`` + ``vpmaddwd``, the issue's 70 % stretch goal) and the peak of the
instruction the kernel uses (``vpmaddwd`` for 8-bit weights).
"""
from __future__ import annotations

import argparse
import collections
import functools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WORK = Path(os.environ.get("QCOMPILE_CACHE", Path.home() / ".cache/qcompile")) / "speed"


def kind(name: str) -> str:
    if "pmaddwd_rt" in name:
        return "int8 attention matmul (packed at run time, vpmaddwd)"
    if "pmaddwd" in name:
        return "int8 matmul (packed, vpmaddwd)"
    if "pmaddubsw" in name:
        return "int8 matmul (packed, vpmaddubsw)"
    if "matmul" in name:
        return "other matmul"
    if "shiftmax" in name or "softmax" in name:
        return "softmax"
    if "layernorm" in name or "layer_norm" in name:
        return "layernorm"
    if "lut" in name:
        return "int8 lookup table"
    return "other"


def profile(lib_path: Path, inputs: Path, runs: int) -> dict:
    import tvm
    from tvm import relax

    vm = relax.VirtualMachine(tvm.runtime.load_module(str(lib_path)), tvm.cpu())
    args = [tvm.runtime.tensor(v) for v in dict(np.load(inputs)).values()]
    for _ in range(3):
        vm["main"](*args)
    total, start = collections.Counter(), {}

    def instrument(func, name, before_run, ret, *a):
        if before_run:
            start[name] = time.perf_counter()
        else:
            total[name] += time.perf_counter() - start.pop(name)
        return 0

    vm.set_instrument(instrument)
    per_run = []
    for _ in range(runs):
        total.clear()
        vm["main"](*args)
        per_run.append(dict(total))
    # each kernel's median over the runs: a run disturbed by another process on this shared
    # machine moves a mean, not a median
    per_kernel = {k: float(np.median([r.get(k, 0.0) for r in per_run])) * 1e3
                  for k in per_run[0] if not k.startswith("vm.builtin")}
    by_kind = collections.Counter()
    for k, v in per_kernel.items():
        by_kind[kind(k)] += v
    ms = sum(by_kind.values())
    return {"ms_instrumented": round(ms, 3),
            "by_kind_ms": {k: round(v, 3) for k, v in by_kind.most_common()},
            "by_kind_fraction": {k: round(v / ms, 3) for k, v in by_kind.most_common()},
            "top_kernels_ms": {k: round(v, 3) for k, v in sorted(per_kernel.items(), key=lambda kv: -kv[1])[:10]}}


@functools.lru_cache(maxsize=None)
def constant_weight_macs(key: str) -> int:
    import qcompile as qc
    from benchmarks.speed import macs

    info = json.loads((WORK / key / "info.json").read_text())
    return macs(qc.canonicalize(qc.load(info["onnx"]).mod), constant_weights_only=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="minilm_b1,minilm_b8,deit_s_b1")
    ap.add_argument("--specs", default="int-only,int-only-w7,none")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/kernels.json"))
    a = ap.parse_args()
    os.environ["TVM_NUM_THREADS"] = str(a.threads)  # read when the runtime's thread pool starts
    res = {"command": "python benchmarks/kernels.py " + " ".join(sys.argv[1:]), "threads": a.threads,
           "runs": a.runs, "models": {}}
    speed_json = ROOT / "benchmarks/results/speed.json"
    peaks = json.loads(speed_json.read_text())["peak"] if speed_json.exists() else {}
    for key in a.models.split(","):
        for spec in a.specs.split(","):
            lib = WORK / key / f"{spec}.so"
            if not lib.exists():
                sys.exit(f"kernels: {lib} is missing; run python benchmarks/speed.py first")
            r = profile(lib, WORK / key / "inputs.npz", a.runs)
            # the constant-weight matmuls' multiply-adds over the time of all packed kernels
            # (an artifact may mix both instructions: the rate is for them together)
            used = {i: r["by_kind_ms"][f"int8 matmul (packed, v{i})"] for i in ("pmaddwd", "pmaddubsw")
                    if r["by_kind_ms"].get(f"int8 matmul (packed, v{i})")}
            if used:
                n = constant_weight_macs(key)
                rate = n / (sum(used.values()) / 1e3)
                r["packed_matmuls"] = {"instruction": "+".join(f"v{i}" for i in used), "macs": n,
                                       "gmac_per_s": round(rate / 1e9, 1)}
                if peaks:
                    r["packed_matmuls"]["fraction_of_int8_peak"] = round(rate / peaks["int8_mac_pmaddubsw_per_s"], 3)
                    if len(used) == 1:
                        (i,) = used
                        r["packed_matmuls"][f"fraction_of_{i}_peak"] = round(rate / peaks[f"int8_mac_{i}_per_s"], 3)
            res["models"].setdefault(key, {})[spec] = r
            print(f"[kernels] {key} {spec}: {r['ms_instrumented']} ms; "
                  + ", ".join(f"{k} {100 * v:.0f} %" for k, v in r["by_kind_fraction"].items()), flush=True)
    # the stretch goal, per artifact kind: packed int8 matmul kernels at 70 % of the int8 peak
    stretch = {}
    for key, specs in res["models"].items():
        for spec, r in specs.items():
            f = r.get("packed_matmuls", {}).get("fraction_of_int8_peak")
            if f is not None:
                stretch.setdefault(spec, {})[key] = {"fraction_of_int8_peak": f, "at_70_percent": f >= 0.70}
    res["stretch_goal_int8_kernels_at_70_percent_of_int8_peak"] = stretch
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=1) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
