"""Speed of qcompile's llvm artifacts against what users would run instead, each engine
timed in its own process with the same thread count.

    python benchmarks/speed.py [--out benchmarks/results/speed.json] [--runs 20] [--rounds 3]
                               [--threads N] [--models vit,deit_s,minilm] [--batches 1,8]
                               [--tune N]

Models (static shapes, batch 1 and 8):

* ``vit``: the bundled Fashion-MNIST ViT (dim 128, 4 layers, 50 tokens);
* ``deit_s``: a DeiT-S-shaped ViT (224x224x3, patch 16, dim 384, 12 layers, 6 heads, MLP
  1536, 197 tokens, 1000 classes) with seeded random weights: speed only, its int-only
  artifact is calibrated on random images;
* ``minilm``: all-MiniLM-L6-v2 at sequence 128 (calibrated on 32 *Persuasion* sentences).

Engines: qcompile ``none`` (float32), ``int-only`` and ``int-only`` with 7-bit weights
(``qcompile_int_only_w7``, ``examples/int_only_w7.toml``: the ``vpmaddubsw`` kernel)
artifacts (llvm, default schedules, no tuning; float I/O; with ``--tune N`` also both tuned with N MetaSchedule trials each,
``qcompile_none_tuned`` / ``qcompile_int_only_tuned``, tuning time in ``compile_s``), onnxruntime float32 and int8 dynamic (``quantize_dynamic``,
per-channel), torch eager (float32). Each is timed in a fresh subprocess: warm-up, then the
median of ``--runs`` calls on the same inputs; the engines of a model take turns over
``--rounds`` rounds and each keeps its lowest round median (``rounds_ms`` has them all; see
``benchmarks/common.py``: on this shared machine a burst of outside load otherwise lands on
whichever engine happens to be running).

Peak fractions divide the model's multiply-accumulates (counted from its graph: matmuls and
convolutions, attention's included) per second by machine peaks measured in the same run by
``benchmarks/peak.c`` (compiled with ``cc``; one thread per core, assembly loops of
independent accumulators; measured at the start and again at the end of the run, and the
higher reading kept, since other load on this shared machine can only lower it; both are in
``peak.readings``):
``fp32_fma_per_s`` for the float engines; for the int8 ones ``int8_mac_pmaddubsw_per_s``
(``vpmaddubsw`` + ``vpmaddwd``: what issue #6 calls the int8 peak, 196 G MAC/s there; its
int16 pair sums saturate, so it is exact only for restricted value ranges, and onnxruntime's
AVX2 kernels use it) and, as ``peak_fraction_exact``, ``int8_mac_pmaddwd_per_s``
(``vpmaddwd``: exact for any int8 values; qcompile's kernel, see
``qcompile/backends/x86_packed.py``). Without a C compiler the issue's figures are used and
``peak.source`` says so. The JSON also records OpenBLAS's sgemm rate measured in this run as
a sanity reference.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks import common  # noqa: E402
WORK = Path(os.environ.get("QCOMPILE_CACHE", Path.home() / ".cache/qcompile")) / "speed"
ISSUE_PEAK_PER_CORE = {"fp32_fma_per_s": 101e9 / 2, "int8_mac_pmaddubsw_per_s": 196e9 / 2}  # issue #6
ENGINES = ["qcompile_none", "qcompile_int_only", "qcompile_int_only_w7", "ort_fp32", "ort_int8_dynamic", "torch_eager"]
# artifact file -> pipeline; int-only-w7: 7-bit weights (the vpmaddubsw kernel, examples/int_only_w7.toml)
SPECS = {"none": "none", "int-only": "int-only", "int-only-w7": str(ROOT / "examples/int_only_w7.toml")}
DEIT_S = dict(image=224, patch=16, channels=3, dim=384, depth=12, heads=6, mlp=1536, classes=1000)


def log(msg):
    print(f"[speed] {msg}", flush=True)


# ----------------------------------------------------------------------------- models


def torch_model(name):
    import torch

    if name == "vit":
        from qcompile.models.vit import load_checkpoint
        from qcompile.models import ASSETS

        return load_checkpoint(ASSETS / "vit_fmnist.pt")[0]
    if name == "deit_s":
        from qcompile.models.vit import ViT, ViTConfig

        torch.manual_seed(0)
        return ViT(ViTConfig(**DEIT_S)).eval()
    from qcompile.models.minilm import _Encoder, load_torch

    return _Encoder(load_torch()[0])


def inputs(name, b) -> dict:
    rng = np.random.default_rng(0)
    if name == "minilm":
        from qcompile.models import corpus, minilm

        feed = minilm.tokenize(corpus.sentences("eval", b))
        return {k: np.ascontiguousarray(v[:b]) for k, v in feed.items()}
    if name == "vit":
        from qcompile.models import ASSETS

        return {"pixels": np.load(ASSETS / "fmnist_test256.npz")["pixels"][:b]}
    return {"pixels": rng.standard_normal((b, 3, 224, 224)).astype(np.float32)}


def calibration(name, b) -> dict:
    if name == "minilm":
        from qcompile.models import corpus, minilm

        return minilm.tokenize(corpus.sentences("calib", 32))
    if name == "vit":
        from qcompile.models import ASSETS

        return {"pixels": np.load(ASSETS / "fmnist_calib256.npz")["pixels"][:64]}
    return {"pixels": np.random.default_rng(1).standard_normal((16, 3, 224, 224)).astype(np.float32)}


def onnx_path(name, b) -> Path:
    if name == "minilm":
        from qcompile.models import minilm

        return minilm.export_onnx(batch=b)
    path = WORK / f"{name}_b{b}.onnx"
    if not path.exists():
        from qcompile.models.vit import export_onnx

        path.parent.mkdir(parents=True, exist_ok=True)
        export_onnx(torch_model(name), path.with_suffix(".tmp.onnx"), batch=b)
        path.with_suffix(".tmp.onnx").replace(path)
    return path


def macs(mod, constant_weights_only: bool = False) -> int:
    """Multiply-accumulates of the matmuls and convolutions in ``main`` (static shapes),
    including those inside the composite functions it calls (attention's ``Q·Kᵀ`` and
    ``P·V``); ``constant_weights_only``: those with a constant weight (the linear layers and
    the patch embedding; not the attention products of two activations)."""
    import tvm
    from tvm import relax

    def count(func) -> int:
        total = 0
        for block in func.body.blocks:
            for bd in block.bindings:
                v = bd.value
                if not isinstance(v, relax.Call):
                    continue
                if isinstance(v.op, relax.GlobalVar) and isinstance(mod[v.op], relax.Function):
                    total += count(mod[v.op])  # a composite (e.g. qcompile.attention)
                    continue
                if not hasattr(v.op, "name"):
                    continue
                if constant_weights_only and not (len(v.args) > 1 and isinstance(v.args[1], tvm.ir.GenericConst)):
                    continue
                out = [int(s) for s in bd.var.ty.shape]
                if v.op.name == "relax.matmul":
                    total += int(np.prod(out)) * int(v.args[0].ty.shape[-1])
                elif v.op.name == "relax.nn.conv2d":
                    w = [int(s) for s in v.args[1].ty.shape]
                    total += int(np.prod(out)) * int(np.prod(w[1:]))
        return total

    return count(mod["main"])


# ----------------------------------------------------------------------------- preparation


def prepare(name, b, tune: int = 0) -> dict:
    """Build the qcompile artifacts and the int8-dynamic ONNX for one (model, batch)."""
    import qcompile as qc
    from qcompile.calibration import Calibration

    d = WORK / f"{name}_b{b}"
    d.mkdir(parents=True, exist_ok=True)
    src = onnx_path(name, b)
    np.savez(d / "inputs.npz", **inputs(name, b))
    info = {"onnx": str(src)}
    model = qc.load(src)
    info["macs"] = macs(qc.canonicalize(model.mod))
    for spec, pipe in SPECS.items():
        cal = Calibration(calibration(name, b), batch=b, progress=False) if spec != "none" else None
        t = time.perf_counter()
        mod = qc.PassManager(qc.pipeline(pipe), calibration=cal).run(model.mod)
        t_pass = time.perf_counter() - t
        t = time.perf_counter()
        art = qc.build(mod, "llvm")
        t_build = time.perf_counter() - t
        art.executable.export_library(str(d / f"{spec}.so"))
        info[spec] = {"passes_s": round(t_pass, 1), "build_s": round(t_build, 1)}
        for key in ("int8_matmuls_pmaddwd", "int8_matmuls_pmaddubsw", "int8_runtime_matmuls_pmaddwd"):
            if art.info.get(key):  # matmuls on the packed AVX2 kernels
                info[spec][key] = art.info[key]
        log(f"{name} b{b} {spec}: passes {t_pass:.1f} s, build {t_build:.1f} s")
        if tune and spec != "int-only-w7":
            import shutil

            db = d / f"tune_db_{spec}"
            shutil.rmtree(db, ignore_errors=True)
            t = time.perf_counter()
            art = qc.build(mod, "llvm", tune_db=db, tune_trials=tune)
            art.executable.export_library(str(d / f"{spec}_tuned.so"))
            info[spec]["tuned"] = {"trials": tune, "tune_and_build_s": round(time.perf_counter() - t, 1),
                                   "tuned_kernels": len(art.info["tuned_kernels"])}
            log(f"{name} b{b} {spec}: tuned {info[spec]['tuned']}")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    q = d / "int8_dynamic.onnx"
    if not q.exists():
        quantize_dynamic(str(src), str(q), per_channel=True, weight_type=QuantType.QInt8)
    return info


# ----------------------------------------------------------------------------- timing worker


def median_ms(fn, runs: int) -> float:
    return common.median_ms(fn, runs, warmup=max(5, runs // 4))


def worker(engine, name, b, runs, threads) -> float:
    d = WORK / f"{name}_b{b}"
    feed = dict(np.load(d / "inputs.npz"))
    if engine.startswith("qcompile"):
        import tvm
        from tvm import relax

        spec = "none" if engine.startswith("qcompile_none") else "int-only"
        spec += "-w7" if "_w7" in engine else "_tuned" if engine.endswith("_tuned") else ""
        vm = relax.VirtualMachine(tvm.runtime.load_module(str(d / f"{spec}.so")), tvm.cpu())
        args = [tvm.runtime.tensor(v) for v in feed.values()]
        return median_ms(lambda: vm["main"](*args), runs)
    if engine.startswith("ort"):
        import onnxruntime as ort

        o = ort.SessionOptions()
        o.intra_op_num_threads, o.inter_op_num_threads, o.log_severity_level = threads, 1, 3
        path = d / "int8_dynamic.onnx" if engine == "ort_int8_dynamic" else json.load(open(d / "info.json"))["onnx"]
        sess = ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])
        return median_ms(lambda: sess.run(None, feed), runs)
    import torch

    torch.set_num_threads(threads)
    m = torch_model(name)
    args = [torch.from_numpy(v) for v in feed.values()]
    with torch.inference_mode():
        return median_ms(lambda: m(*args), runs)


def machine_peaks(threads) -> dict:
    """MAC/s of the AVX2 multiply-add sequences on ``threads`` cores (``benchmarks/peak.c``)."""
    import shutil

    exe = WORK / "peak"
    cc = shutil.which("cc") or shutil.which("gcc")
    try:
        if cc is None or platform.machine() not in ("x86_64", "AMD64"):
            raise RuntimeError("no C compiler or not x86-64")
        WORK.mkdir(parents=True, exist_ok=True)
        subprocess.run([cc, "-O2", "-pthread", str(ROOT / "benchmarks/peak.c"), "-o", str(exe)], check=True,
                       capture_output=True)
        out = json.loads(subprocess.run([str(exe), str(threads), "0.5"], check=True, capture_output=True,
                                        text=True).stdout)
        return {**out, "source": "benchmarks/peak.c, measured in this run (best of 3)"}
    except (RuntimeError, OSError, subprocess.CalledProcessError, ValueError) as e:
        log(f"machine peaks not measured ({e}); using issue #6's")
        return {k: v * threads for k, v in ISSUE_PEAK_PER_CORE.items()} | {
            "int8_mac_pmaddwd_per_s": None, "source": "issue #6 (not measured in this run)"}


def peak_fractions(row: dict, pk: dict) -> None:
    """The model's multiply-adds per second over the machine's peaks, per engine, into ``row``."""
    ms = {e: v for e, v in row["ms"].items() if v}
    row["peak_fraction"] = {
        e: round(row["macs"] / (v / 1000) / pk["int8_mac_pmaddubsw_per_s" if "int" in e else "fp32_fma_per_s"], 3)
        for e, v in ms.items()}
    if pk.get("int8_mac_pmaddwd_per_s"):
        row["peak_fraction_exact"] = {e: round(row["macs"] / (v / 1000) / pk["int8_mac_pmaddwd_per_s"], 3)
                                      for e, v in ms.items() if "int" in e}


def sgemm_gflops(threads) -> float:
    os.environ["OPENBLAS_NUM_THREADS"] = str(threads)
    a = np.random.default_rng(0).standard_normal((1024, 1024)).astype(np.float32)
    ms = median_ms(lambda: a @ a, 10)
    return 2 * 1024 ** 3 / (ms / 1000) / 1e9


# ----------------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/speed.json"))
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds; each engine keeps its best")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--models", default="vit,deit_s,minilm")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--tune", type=int, default=0, help="also time artifacts tuned with N MetaSchedule trials")
    ap.add_argument("--worker", nargs=3, metavar=("ENGINE", "MODEL", "BATCH"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        e, name, b = a.worker
        print(json.dumps({"ms": worker(e, name, int(b), a.runs, a.threads)}))
        return

    env = {**os.environ, "TVM_NUM_THREADS": str(a.threads), "OMP_NUM_THREADS": str(a.threads),
           "OPENBLAS_NUM_THREADS": str(a.threads)}
    res = {"command": "python benchmarks/speed.py " + " ".join(sys.argv[1:]), "machine": platform.processor() or
           platform.machine(), "threads": a.threads, "runs": a.runs, "rounds": a.rounds,
           "peak": {**machine_peaks(a.threads),
                    "openblas_sgemm_1024_gflops_measured": round(sgemm_gflops(a.threads), 1)},
           "models": {}}
    for name in a.models.split(","):
        for b in (int(x) for x in a.batches.split(",")):
            key = f"{name}_b{b}"
            info = prepare(name, b, a.tune)
            json.dump(info, open(WORK / key / "info.json", "w"))
            row = {"macs": info["macs"], "compile_s": {s: info[s] for s in SPECS}, "ms": {}}
            engines = ENGINES + (["qcompile_none_tuned", "qcompile_int_only_tuned"] if a.tune else [])
            cmds = {e: [sys.executable, __file__, "--worker", e, name, str(b), "--runs", str(a.runs),
                        "--threads", str(a.threads)] for e in engines}
            timed = common.interleaved(cmds, a.rounds, env=env, cwd=ROOT)
            row["rounds_ms"] = {e: r["rounds_ms"] for e, r in timed.items()}
            for e, r in timed.items():
                row["ms"][e] = r["ms"]
                log(f"{key} {e} failed: {r['error']}" if r.get("error") else f"{key} {e}: {r['ms']} ms")
            ms = row["ms"]
            peak_fractions(row, res["peak"])
            if ms.get("qcompile_none") and ms.get("ort_fp32"):
                row["none_over_ort_fp32"] = round(ms["qcompile_none"] / ms["ort_fp32"], 3)
            if ms.get("qcompile_int_only") and ms.get("ort_int8_dynamic"):
                row["int_only_over_ort_int8_dynamic"] = round(ms["qcompile_int_only"] / ms["ort_int8_dynamic"], 3)
            if ms.get("qcompile_int_only_w7") and ms.get("ort_int8_dynamic"):
                row["int_only_w7_over_ort_int8_dynamic"] = round(ms["qcompile_int_only_w7"] / ms["ort_int8_dynamic"], 3)
            if ms.get("qcompile_none_tuned") and ms.get("ort_fp32"):
                row["none_tuned_over_ort_fp32"] = round(ms["qcompile_none_tuned"] / ms["ort_fp32"], 3)
            if ms.get("qcompile_int_only_tuned") and ms.get("ort_int8_dynamic"):
                row["int_only_tuned_over_ort_int8_dynamic"] = round(
                    ms["qcompile_int_only_tuned"] / ms["ort_int8_dynamic"], 3)
            res["models"][key] = row
            common.write_json(a.out, res, announce=False)
    if res["peak"].get("int8_mac_pmaddwd_per_s"):  # measured (not the issue's figures): again at the end,
        # since a reading disturbed by other load is low
        again = machine_peaks(a.threads)
        for k, v in again.items():
            if k.endswith("_per_s") and v and res["peak"].get(k):
                res["peak"].setdefault("readings", {})[k] = [res["peak"][k], v]
                res["peak"][k] = max(res["peak"][k], v)
        res["peak"]["source"] = "benchmarks/peak.c, measured at the start and the end of this run (best of 3 each; the higher kept)"
        for row in res["models"].values():
            peak_fractions(row, res["peak"])
    rows = res["models"].values()
    res["goals"] = {
        "none_within_1.5x_of_ort_fp32": {k: r.get("none_over_ort_fp32", None) is not None and r["none_over_ort_fp32"] <= 1.5
                                         for k, r in res["models"].items()},
        "int_only_faster_than_ort_int8_dynamic": {k: r.get("int_only_over_ort_int8_dynamic", 9) < 1
                                                  for k, r in res["models"].items()},
        "int_only_w7_faster_than_ort_int8_dynamic": {k: r.get("int_only_w7_over_ort_int8_dynamic", 9) < 1
                                                     for k, r in res["models"].items()},
        "max_int8_peak_fraction": max((r["peak_fraction"].get("qcompile_int_only", 0) for r in rows), default=0),
        "max_int8_exact_peak_fraction": max((r.get("peak_fraction_exact", {}).get("qcompile_int_only", 0)
                                             for r in rows), default=0),
        "minilm_default_compile_s": {k: r["compile_s"]["none"]["passes_s"] + r["compile_s"]["none"]["build_s"]
                                     for k, r in res["models"].items() if k.startswith("minilm")},
    }
    common.write_json(a.out, res)


if __name__ == "__main__":
    main()
