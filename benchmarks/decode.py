"""Decoding speed of SmolLM2-135M: tokens per second for prefill and for decode steps at
several context lengths, each engine in its own process, engines interleaved in rounds
(issue #28's benchmark).

    python benchmarks/decode.py [--out benchmarks/results/decode.json] [--threads 2]
                                [--contexts 256,1024,4096] [--batches 1,8] [--prefill 64,512]
                                [--batch8-contexts 256,1024] [--runs 10] [--rounds 3]
                                [--engines ort_fp32,ort_int8_dynamic,qcompile_none,...]
                                [--perplexity-tokens 8192]

Steps (the repo's own SmolLM2 export, ``qcompile.models.smollm2.export_onnx``: static batch
and step length, symbolic past):

* ``prefill_T``: ``T`` tokens from an empty cache, batch 1; tokens/s = T / step time;
* ``decode_bB_cC``: one token per sequence after ``C`` cached positions, batch ``B``;
  tokens/s = B / step time.

Engines: onnxruntime float32 (``ort_fp32``) and int8 dynamic (``quantize_dynamic``,
per-channel weights, on the same export); qcompile's llvm artifacts of the ``none`` pipeline
(float32), of ``kv-prerope`` with its default 4-bit packed cache (``qcompile_kv_prerope4``,
calibrated once on *Persuasion* through the 64-token step and served to the other step
lengths by layer order, as ``examples/generate_packed_cache.py`` does), of ``rotate+w8a8``
(every linear layer, the output head included, as an int8 x int8 matmul with per-token
activation scales: ``qcompile_rotate_w8a8``) and of the same with the 4-bit cache
(``rotate+kv-prerope+w8a8``, calibrated on the rotated step: ``qcompile_rotate_w8a8_kv4``).

Perplexity (``--perplexity-tokens``, default 8192; 0 skips it): each qcompile engine's
pipeline built for the 64-token step and scored on *Emma* under :class:`qcompile.lm.Protocol`
(the protocol of ``benchmarks/kv_cache.py``), against ``qcompile_none``; ``rotate+w8a8``
is also scored with its head left float (``qcompile_rotate_w8a8_float_head``). The cache fed to
each engine holds C positions in that engine's own format (zeros: the kernels do not depend
on the values).

Each (engine, step) is a fresh process: warm-up, then the median of ``--runs`` calls; the
engines of a step take turns over ``--rounds`` rounds and each keeps its lowest round median
(``benchmarks/common.py``). ``rss_mb`` is the worker's peak resident memory (model, its
inputs and outputs, the runtime).

The physical limit: a step reads every weight once (the constant operands of the matmuls:
the embedding gather reads one row; counted on the ONNX files for onnxruntime and on the
compiled module for qcompile: int8 codes for ``w8a8``) and the whole cache once, so at the memory bandwidth
measured in the same run (``benchmarks/bandwidth.c``, the same thread count, best of 5)
a step cannot take less than bytes / bandwidth. ``limit_ratio`` = step time / that bound
(issue #28's goal: <= 1.5). The cache bytes are those of the arrays each engine is fed.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks import common  # noqa: E402

WORK = Path(os.environ.get("QCOMPILE_CACHE", Path.home() / ".cache/qcompile")) / "decode"
ENGINES = ["ort_fp32", "ort_int8_dynamic", "qcompile_none", "qcompile_kv_prerope4", "qcompile_rotate_w8a8",
           "qcompile_rotate_w8a8_kv4"]
#: engines run only when named (--engines): the packed value cache read inside the attention
#: kernel (decode_attention.FUSE_DEQUANT, off by default because it measured slower)
OPTIONAL = ["qcompile_kv_prerope4_fused_values"]
#: engine -> (pipeline, options); w8a8 with its output head in int8 too (the perplexity part
#: scores the same pipeline with the head left float, PERPLEXITY_ONLY, to show what that costs)
W8_HEAD = {"w8a8": {"head": True}}
PIPELINES = {"qcompile_none": ("none", None), "qcompile_kv_prerope4": ("kv-prerope", None),
             "qcompile_kv_prerope4_fused_values": ("kv-prerope", None),
             "qcompile_rotate_w8a8": ("rotate+w8a8", W8_HEAD),
             "qcompile_rotate_w8a8_kv4": ("rotate+kv-prerope+w8a8", W8_HEAD)}
PERPLEXITY_ONLY = {"qcompile_rotate_w8a8_float_head": ("rotate+w8a8", None)}


def log(msg):
    print(f"[decode] {msg}", flush=True)


# ----------------------------------------------------------------------------- preparation


def _stats(rotated: bool = False, calib_chunk: int = 64):
    """kv-prerope's calibration statistics, collected once on the 64-token step (rotated
    first for the engines that rotate: the rotation changes the cached values)."""
    import qcompile as qc
    from qcompile.calibration import Calibration
    from qcompile.lm import Protocol
    from qcompile.models import corpus, smollm2
    from qcompile.passes.kvcache.prerope import KvPrerope
    from qcompile.passes.rotate import Rotate

    _, tok = smollm2.load_hf()
    mod = qc.PassManager(qc.pipeline("none")).run(qc.load(smollm2.export_onnx(calib_chunk)).mod)
    if rotated:
        mod = qc.PassManager([Rotate()]).run(mod)
    calib = Calibration({"tokens": tok(corpus.text("calib")).input_ids[:4096], "bos": Protocol.bos}, progress=False)
    return calib.collect(mod, KvPrerope().calibration_requests(mod))


def engine_module(engine: str, canon, stats):
    """``canon`` (the canonicalized step) through a qcompile engine's other passes, calibrated
    by layer order from ``stats(rotated)`` where a pass needs it."""
    import qcompile as qc
    from qcompile.calibration import Collected

    spec, opts = {**PIPELINES, **PERPLEXITY_ONLY}[engine]
    ps = [p for p in qc.pipeline(spec, opts) if p.name != "canonicalize"]
    if not ps:
        return canon
    calib = Collected(stats("rotate" in spec), by_order=True) if any(p.needs_calibration for p in ps) else None
    return qc.PassManager(ps, calibration=calib).run(canon)


def prepare(chunk: int, batch: int, engines: list[str], contexts: list[int], stats) -> dict:
    """Export the step, build the qcompile artifacts and the int8-dynamic ONNX, and write each
    engine's cache shapes per context. Cached under ``WORK/t{chunk}_b{batch}``."""
    import qcompile as qc
    from qcompile import lm
    from qcompile.models import smollm2

    d = WORK / f"t{chunk}_b{batch}"
    d.mkdir(parents=True, exist_ok=True)
    src = smollm2.export_onnx(chunk, batch=batch)
    info = {"onnx": str(src), "chunk": chunk, "batch": batch, "caches": {}}
    canon = None
    for e in engines:
        if e not in PIPELINES:
            continue
        so = d / f"{e}.so"
        if canon is None:
            canon = qc.PassManager(qc.pipeline("none")).run(qc.load(src).mod)
        mod = engine_module(e, canon, stats)
        info.setdefault("weight_bytes", {})[e] = module_weight_bytes(mod)
        info["caches"][e] = {str(c): lm.cache_shapes(mod["main"], batch, c) for c in contexts}
        if not so.exists():
            from qcompile.backends import decode_attention

            t = time.perf_counter()
            decode_attention.FUSE_DEQUANT = e.endswith("_fused_values")
            qc.build(mod, "llvm").executable.export_library(str(so.with_suffix(".tmp.so")))
            so.with_suffix(".tmp.so").replace(so)
            log(f"t{chunk} b{batch} {e}: built in {time.perf_counter() - t:.0f} s")
    if any(e.startswith("ort") for e in engines):
        import onnx

        m = onnx.load(str(src), load_external_data=False)
        shapes = [([batch if i == 0 else d.dim_value for i, d in enumerate(inp.type.tensor_type.shape.dim)], "float32")
                  for inp in m.graph.input[3:]]
        for e in engines:
            if e.startswith("ort"):
                info["caches"][e] = {str(c): [([s[0], s[1], c, s[3]], dt) for s, dt in shapes] for c in contexts}
    q = d / "int8_dynamic.onnx"
    if "ort_int8_dynamic" in engines and not q.exists():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(src), str(d / "int8_dynamic.tmp.onnx"), per_channel=True, weight_type=QuantType.QInt8)
        (d / "int8_dynamic.tmp.onnx").replace(q)
    (d / "info.json").write_text(json.dumps(info))
    return info


def weight_bytes(path) -> int:
    """Bytes a step reads from the weights: every initializer a matmul-like node takes, once
    (an initializer used by several counts once), and one row of each gathered table."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(path), load_external_data=True)
    inits = {i.name: i for i in m.graph.initializer}
    full, rows = set(), {}
    for n in m.graph.node:
        used = [x for x in n.input if x in inits]
        if n.op_type == "Gather" and n.input and n.input[0] in inits:
            shape = list(inits[n.input[0]].dims)
            rows[n.input[0]] = int(np.prod(shape[1:])) * numpy_helper.to_array(inits[n.input[0]]).itemsize
            used = used[1:]
        full.update(used)
    total = sum(numpy_helper.to_array(inits[k]).nbytes for k in full)
    return total + sum(v for k, v in rows.items() if k not in full)


def module_weight_bytes(mod) -> int:
    """The same count on a Relax module (what a qcompile artifact reads per step): each
    constant operand of a ``matmul`` once, and one row of each constant table a ``take``
    gathers from (a table also used by a matmul, e.g. a tied head, counts as the matmul's)."""
    from qcompile.ir import const_value

    full, rows = {}, {}
    for blk in mod["main"].body.blocks:
        for b in blk.bindings:
            v = b.value
            name = getattr(getattr(v, "op", None), "name", "")
            if name == "relax.matmul":
                for a in v.args:
                    c = const_value(a)
                    if c is not None:
                        full[a] = c.nbytes
            elif name == "relax.take" and (c := const_value(v.args[0])) is not None:
                rows[v.args[0]] = c.nbytes // c.shape[0]
    return sum(full.values()) + sum(n for k, n in rows.items() if k not in full)


# ----------------------------------------------------------------------------- timing worker


def feeds(info: dict, engine: str, ctx: int) -> list[np.ndarray]:
    b, t = info["batch"], info["chunk"]
    ids = np.zeros((b, t), np.int64)
    mask = np.ones((b, ctx + t), np.int64)
    pos = np.broadcast_to(np.arange(ctx, ctx + t, dtype=np.int64), (b, t)).copy()
    return [ids, mask, pos, *(np.zeros(s, dt) for s, dt in info["caches"][engine][str(ctx)])]


def worker(engine: str, key: str, ctx: int, runs: int, threads: int) -> dict:
    d = WORK / key
    info = json.loads((d / "info.json").read_text())
    args = feeds(info, engine, ctx)
    if engine.startswith("qcompile"):
        import tvm
        from tvm import relax

        vm = relax.VirtualMachine(tvm.runtime.load_module(str(d / f"{engine}.so")), tvm.cpu())
        targs = [tvm.runtime.tensor(a) for a in args]
        fn = lambda: vm["main"](*targs)  # noqa: E731
    else:
        import onnxruntime as ort

        o = ort.SessionOptions()
        o.intra_op_num_threads, o.inter_op_num_threads, o.log_severity_level = threads, 1, 3
        path = d / "int8_dynamic.onnx" if engine == "ort_int8_dynamic" else info["onnx"]
        sess = ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])
        feed = dict(zip([i.name for i in sess.get_inputs()], args))
        fn = lambda: sess.run(None, feed)  # noqa: E731
    ms = common.median_ms(fn, runs, warmup=max(2, runs // 4))
    return {"ms": ms, "rss_mb": peak_rss_mb(),
            "cache_bytes": int(sum(a.nbytes for a in args[3:]))}


def peak_rss_mb() -> float | None:
    """This process's peak resident memory (``VmHWM``: ``ru_maxrss`` would carry over the
    parent's peak across fork and exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def bandwidth(threads: int) -> dict:
    """Read bandwidth on ``threads`` threads (``benchmarks/bandwidth.c``)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    exe = WORK / "bandwidth"
    if cc is None:
        return {"read_bytes_per_s": None, "source": "not measured: no C compiler"}
    WORK.mkdir(parents=True, exist_ok=True)
    subprocess.run([cc, "-O3", "-march=native", "-ffast-math", "-pthread", str(ROOT / "benchmarks/bandwidth.c"),
                    "-o", str(exe)], check=True, capture_output=True)
    out = json.loads(subprocess.run([str(exe), str(threads), "1024", "5"], check=True, capture_output=True,
                                    text=True).stdout)
    return {**out, "source": "benchmarks/bandwidth.c, measured in this run"}


# ----------------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/decode.json"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--contexts", default="256,1024,4096", help="decode contexts at batch 1")
    ap.add_argument("--batch8-contexts", default="256,1024", help="decode contexts at batch 8 (empty: none)")
    ap.add_argument("--prefill", default="64,512", help="prefill lengths (batch 1, empty cache)")
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--perplexity-tokens", type=int, default=8192,
                    help="score each qcompile engine's pipeline on this many tokens of Emma (0: skip)")
    ap.add_argument("--worker", nargs=3, metavar=("ENGINE", "KEY", "CTX"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        e, key, ctx = a.worker
        print(json.dumps(worker(e, key, int(ctx), a.runs, a.threads)))
        return
    engines = a.engines.split(",")
    unknown = set(engines) - set(ENGINES + OPTIONAL)
    if unknown:
        ap.error(f"unknown engines {sorted(unknown)}; choose from {ENGINES + OPTIONAL}")
    ints = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
    steps = [(t, 1, [0], f"prefill_{t}") for t in ints(a.prefill)]
    steps += [(1, 1, ints(a.contexts), "decode_b1")]
    if ints(a.batch8_contexts):
        steps += [(1, 8, ints(a.batch8_contexts), "decode_b8")]
    env = {**os.environ, "TVM_NUM_THREADS": str(a.threads), "OMP_NUM_THREADS": str(a.threads),
           "OPENBLAS_NUM_THREADS": str(a.threads)}
    out = common.header("decode.py")
    out.update({"model": "SmolLM2-135M (30 layers, 9 heads, 3 KV heads, head_dim 64)", "threads": a.threads,
                "runs": a.runs, "rounds": a.rounds, "bandwidth": bandwidth(a.threads), "steps": {}})
    bw = out["bandwidth"]["read_bytes_per_s"]
    log(f"read bandwidth {bw / 1e9:.1f} GB/s on {a.threads} threads" if bw else "bandwidth not measured")
    stats_cache = {}

    def stats(rotated: bool):
        if rotated not in stats_cache:
            stats_cache[rotated] = _stats(rotated)
        return stats_cache[rotated]

    wbytes = {}
    for chunk, batch, ctxs, name in steps:
        info = prepare(chunk, batch, engines, ctxs, stats)
        key = f"t{chunk}_b{batch}"
        if not wbytes:
            wbytes = {"float32": weight_bytes(info["onnx"])}
            if "ort_int8_dynamic" in engines:
                wbytes["int8_dynamic"] = weight_bytes(WORK / key / "int8_dynamic.onnx")
            out["weight_bytes_per_step"] = wbytes
        for ctx in ctxs:
            label = name if name.startswith("prefill") else f"{name}_c{ctx}"
            cmds = {e: [sys.executable, __file__, "--worker", e, key, str(ctx), "--runs", str(a.runs),
                        "--threads", str(a.threads)] for e in engines}
            timed = common.interleaved(cmds, a.rounds, env=env, cwd=ROOT)
            row = {"chunk": chunk, "batch": batch, "context": ctx, "ms": {}, "tokens_per_s": {}, "rss_mb": {},
                   "bytes_per_step": {}, "limit_ratio": {}, "rounds_ms": {}}
            for e, r in timed.items():
                row["rounds_ms"][e] = r["rounds_ms"]
                if r.get("error"):
                    log(f"{label} {e} failed: {r['error']}")
                    row["ms"][e] = None
                    continue
                ms = r["ms"]
                row["ms"][e] = ms
                row["tokens_per_s"][e] = round(batch * chunk / (ms / 1000), 2)
                row["rss_mb"][e] = r["last"]["rss_mb"]
                nbytes = info["weight_bytes"][e] if e in PIPELINES else \
                    wbytes["int8_dynamic" if e == "ort_int8_dynamic" else "float32"]
                nbytes += r["last"]["cache_bytes"]
                row["bytes_per_step"][e] = nbytes
                if bw and not name.startswith("prefill"):  # prefill is compute-bound
                    row["limit_ratio"][e] = round(ms / 1000 / (nbytes / bw), 2)
                log(f"{label} {e}: {ms:.2f} ms, {row['tokens_per_s'][e]} tokens/s, rss {row['rss_mb'][e]} MB")
            ms = row["ms"]
            if ms.get("qcompile_none") and ms.get("ort_fp32"):
                row["none_over_ort_fp32"] = round(ms["qcompile_none"] / ms["ort_fp32"], 3)
            if ms.get("qcompile_kv_prerope4") and ms.get("qcompile_none"):
                row["kv_prerope4_over_none"] = round(ms["qcompile_kv_prerope4"] / ms["qcompile_none"], 3)
            for e in ("qcompile_rotate_w8a8", "qcompile_rotate_w8a8_kv4"):
                for base in ("ort_fp32", "ort_int8_dynamic"):
                    if ms.get(e) and ms.get(base):  # speed-up: the baseline's time over the engine's
                        row[f"{e[9:]}_speedup_over_{base}"] = round(ms[base] / ms[e], 3)
            out["steps"][label] = row
            common.write_json(a.out, out, announce=False)
    s = out["steps"]
    if a.perplexity_tokens:
        out["perplexity"] = perplexities([e for e in engines if e in PIPELINES and e not in OPTIONAL],
                                         a.perplexity_tokens, stats)
        common.write_json(a.out, out, announce=False)
    c1024 = s.get("decode_b1_c1024", {})
    ppl = out.get("perplexity", {}).get("results", {})
    out["goals"] = {
        "none_decode_c1024_at_most_1.0x_ort_fp32": c1024.get("none_over_ort_fp32"),
        "kv_prerope4_decode_c4096_faster_than_none": s.get("decode_b1_c4096", {}).get("kv_prerope4_over_none"),
        "rotate_w8a8_kv4_decode_c1024_at_least_2x_ort_fp32": c1024.get("rotate_w8a8_kv4_speedup_over_ort_fp32"),
        "rotate_w8a8_kv4_decode_c1024_faster_than_ort_int8_dynamic":
            c1024.get("rotate_w8a8_kv4_speedup_over_ort_int8_dynamic"),
        "rotate_w8a8_kv4_perplexity_within_3pct_of_float": ppl.get("qcompile_rotate_w8a8_kv4", {}).get("vs_float"),
        "decode_within_1.5x_of_bandwidth_limit": {k: r["limit_ratio"] for k, r in s.items() if r["limit_ratio"]},
    }
    common.write_json(a.out, out)


def perplexities(engines: list[str], tokens: int, stats) -> dict:
    """Perplexity of each qcompile engine's pipeline on *Emma* (:class:`qcompile.lm.Protocol`,
    steps of 64 tokens, the calibration the speed engines use), through llvm artifacts;
    ``vs_float`` against ``qcompile_none``'s."""
    import dataclasses

    import qcompile as qc
    from qcompile import lm
    from qcompile.models import corpus, smollm2

    proto = lm.Protocol(tokens=tokens)
    _, tok = smollm2.load_hf()
    ids = tok(corpus.text("eval")).input_ids
    canon = qc.PassManager(qc.pipeline("none")).run(qc.load(smollm2.export_onnx(proto.chunk)).mod)
    res = {}
    table = {**PIPELINES, **PERPLEXITY_ONLY}
    extra = [e for e in PERPLEXITY_ONLY if "qcompile_rotate_w8a8" in engines]
    for e in ["qcompile_none"] + [e for e in engines if e != "qcompile_none"] + extra:
        mod = engine_module(e, canon, stats)
        r = common.cache_perplexity(mod, ids, proto, e)
        res[e] = {"pipeline": table[e][0], "options": table[e][1], "perplexity": r["perplexity"],
                  "vs_float": r["perplexity"] / res["qcompile_none"]["perplexity"] - 1 if res else 0.0}
        log(f"perplexity {e}: {r['perplexity']:.4f} ({100 * res[e]['vs_float']:+.2f} % vs float)")
    return {"metric": "perplexity, Jane Austen's Emma", "protocol": dataclasses.asdict(proto), "results": res}


if __name__ == "__main__":
    main()
