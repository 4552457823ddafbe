"""Greedy generation with SmolLM2 through compiled llvm artifacts whose KV cache is the
packed low-bit one of ``kv-prerope``: a prefill step (64 tokens) and a decode step (1 token)
share one calibration and one cache layout; the same prompt through the float artifacts.

    python examples/generate_packed_cache.py [--bits 4] [--new-tokens 24]

Needs ``qcompile assets fetch smollm2 austen``.
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import qcompile as qc  # noqa: E402
from qcompile import lm  # noqa: E402
from qcompile.calibration import Calibration, Collected  # noqa: E402
from qcompile.models import corpus, smollm2  # noqa: E402
from qcompile.passes.kvcache.prerope import KvPrerope  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bits", type=int, default=4)
    ap.add_argument("--new-tokens", type=int, default=24)
    a = ap.parse_args()
    _, tok = smollm2.load_hf()
    prefill, decode = (qc.PassManager(qc.pipeline("none")).run(qc.load(smollm2.export_onnx(n)).mod) for n in (64, 1))
    calib = Calibration({"tokens": tok(corpus.text("calib")).input_ids[:4096], "bos": lm.Protocol.bos})
    stats = calib.collect(prefill, KvPrerope(bits=a.bits).calibration_requests(prefill))
    packed = {"prefill": qc.PassManager([KvPrerope(bits=a.bits)], calibration=Collected(stats)).run(prefill),
              "decode": qc.PassManager([KvPrerope(bits=a.bits)], calibration=Collected(stats, by_order=True)).run(decode)}
    prompt = [lm.Protocol.bos] + tok(corpus.text("eval")[:2000]).input_ids[:100]
    for name, mods in (("float", {"prefill": prefill, "decode": decode}), (f"{a.bits}-bit packed", packed)):
        steps = {k: lm.artifact_step(qc.build(m, "llvm")) for k, m in mods.items()}
        t = time.perf_counter()
        out = lm.generate(steps["prefill"], steps["decode"], 64, prompt, a.new_tokens,
                          lm.empty_cache_for(mods["prefill"]["main"]))
        print(f"{name} ({time.perf_counter() - t:.1f} s): {tok.decode(out)!r}", flush=True)


if __name__ == "__main__":
    main()
