"""Shared by the benchmark scripts: the JSON header, an atomic write, a median timer and
interleaved timing of several engines in their own processes."""
from __future__ import annotations

import json
import os
import platform
import subprocess
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


def cache_perplexity(mod, ids, proto, name: str, constant_bytes: int = 0) -> dict:
    """Build ``mod`` (a SmolLM2 step, float or with a rewritten cache) for llvm and score
    ``ids`` under ``proto``; the cache bytes per token are measured on what the artifact
    returns after a whole window (``nbytes`` / window), plus ``constant_bytes`` / window."""
    import qcompile as qc
    from qcompile import lm

    t = time.perf_counter()
    art = qc.build(mod, "llvm")
    built = time.perf_counter() - t
    seen = {}
    base = lm.artifact_step(art)

    def step(x, mask, pos, past):
        logits, present = base(x, mask, pos, past)
        if mask.shape[1] == proto.window and "bytes" not in seen:
            seen["bytes"] = sum(p.nbytes for p in present)
        return logits, present

    t = time.perf_counter()
    r = lm.perplexity(step, ids, lm.empty_cache_for(mod["main"]), proto, desc=name)
    return {"perplexity": r["perplexity"], "build_seconds": round(built, 1),
            "eval_seconds": round(time.perf_counter() - t, 1),
            "measured_bytes_per_token_at_512": (seen["bytes"] + constant_bytes) / proto.window}


def cache_benchmark(script: str, description: str, configs: dict, tokens: int, calib_tokens: int):
    """The shared set-up of the SmolLM2 KV-cache benchmarks: arguments (``--out``, ``--tokens``,
    ``--calib-tokens``, ``--only``, ``--merge``), the tokenized evaluation (*Emma*) and
    calibration (*Persuasion*) texts, the canonicalized decoder step and the JSON header.
    Returns ``(args, protocol, eval ids, calibration ids, canonical module, out dict)``."""
    import argparse
    import dataclasses

    import qcompile as qc
    from qcompile import lm
    from qcompile.models import corpus, smollm2 as S
    from qcompile.passes.canonicalize import Canonicalize

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / script.replace(".py", ".json")))
    ap.add_argument("--tokens", type=int, default=tokens)
    ap.add_argument("--calib-tokens", type=int, default=calib_tokens)
    ap.add_argument("--only", nargs="*", choices=sorted(configs))
    ap.add_argument("--merge", action="store_true", help="keep the other results already in --out")
    a = ap.parse_args()
    proto = lm.Protocol(tokens=a.tokens)
    _, tok = S.load_hf()
    ids = tok(corpus.text("eval")).input_ids
    calib_ids = tok(corpus.text("calib")).input_ids[:a.calib_tokens]
    canon = qc.PassManager([Canonicalize()]).run(qc.load(S.export_onnx(proto.chunk)).mod)
    out = header(script)
    out["float16_bytes_per_token"] = sum(2 * int(p.ty.shape[1]) * int(p.ty.shape[3])
                                         for p in list(canon["main"].params)[3:])  # K and V, every layer
    out.update({"model": "SmolLM2-135M (30 layers, 3 KV heads, head_dim 64, rotate-half RoPE)",
                "metric": "perplexity, Jane Austen's Emma", "protocol": dataclasses.asdict(proto),
                "calibration": {"text": "Jane Austen's Persuasion", "tokens": len(calib_ids), "window": proto.window},
                "results": {}})
    if a.merge and Path(a.out).exists():
        import json

        kept = json.loads(Path(a.out).read_text())
        out["results"] = kept["results"]
        out["calibration"] = {**kept.get("calibration", {}), **out["calibration"]}  # e.g. a fisher entry
        out["command"] = kept["command"] + " ; " + out["command"]
    return a, proto, ids, calib_ids, canon, out


def interleaved(cmds: dict, rounds: int, env=None, cwd=None) -> dict:
    """Time several engines, each in its own process, in ``rounds`` interleaved rounds (A B C,
    A B C, ...). Each command prints a JSON line ``{"ms": median}`` last. An engine's figure
    is the lowest of its round medians: on a shared machine a burst of load from elsewhere
    slows whichever engine is running at the time, and interleaving spreads that over the
    rounds. Returns ``{name: {"ms": best, "rounds_ms": [...], "last": the last round's JSON
    line}}``, or ``{"ms": None, "error"}`` for an engine whose process failed."""
    out = {name: {"ms": None, "rounds_ms": []} for name in cmds}
    for _ in range(rounds):
        for name, cmd in cmds.items():
            if out[name].get("error"):
                continue
            p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
            if p.returncode:
                err = p.stderr.strip().splitlines()
                out[name]["error"] = err[-1] if err else f"exit {p.returncode}"
                continue
            last = json.loads(p.stdout.strip().splitlines()[-1])
            out[name]["rounds_ms"].append(round(last["ms"], 3))
            out[name]["last"] = last  # the worker's other figures (resident memory, ...)
    for r in out.values():
        if r["rounds_ms"] and not r.get("error"):
            r["ms"] = min(r["rounds_ms"])
    return out
