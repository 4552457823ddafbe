"""What the ``kv-prerope`` pipeline buys on SmolLM2-135M: perplexity and cache bytes per
token of the packed low-bit KV cache, every figure measured through compiled llvm artifacts
(the cache the artifact returns is the packed one; attention reads it back dequantized).

    python benchmarks/kv_cache.py [--out benchmarks/results/kv_cache.json] [--tokens 8192]
                                  [--calib-tokens 8192] [--only NAME ...]

* evaluation: perplexity on Jane Austen's *Emma* under :class:`qcompile.lm.Protocol`
  (windows of 512 from an empty cache, fed in steps of 64, every cached key read back
  quantized), ``--tokens`` scored tokens;
* calibration (per-channel key ranges): *Persuasion*, disjoint from the evaluation text,
  ``--calib-tokens`` tokens in windows of 512 under the same protocol; collected once and
  shared by every configuration (``qcompile.calibration.Collected``);
* configurations: float cache; keys pre-RoPE per channel at 4/3/2 bits, with and without
  1 % dense-and-sparse outliers; the baselines post-RoPE per-channel and per-token keys at
  4/3/2 bits; at 3 bits, pre-RoPE without the attention sink, with a fixed 99.9 percentile
  range instead of the least-squares range search, and with non-uniform (k-means) levels
  (each ingredient's share), 4 sink positions instead of 1, and 3-bit keys with 8-bit
  values and the reverse (which side the error comes from); a float16 window of the 32 most
  recent positions (KIVI) at 4/3/2 bits, alone and with 1 % outliers (3 and 2 bits with 1 %
  outliers also with windows of 64 and 128); KVQuant's
  sensitivity-weighted non-uniform levels (``nuq`` with ``fisher``: k-means weighted by
  squared loss gradients, from torch on the float model on the calibration text) at 4/3/2
  bits, alone, with 1 % outliers and with both outliers and the window (32 positions; 3 and 2
  bits also 64); QuaRot's online
  Hadamard rotation (``rotate``) of per-token keys and values, and of the values under
  pre-RoPE keys, at 4 and 3 bits (and with 1 % outliers, and with the window). Values are per token at the same bit width throughout; 1
  float16 sink position unless stated;
* bytes: ``layout`` is the pass's own account (per token, fixed, at 512 tokens);
  ``measured_bytes_per_token_at_512`` is the ``nbytes`` of the cache arrays the artifact
  actually returned after a whole 512-token window, divided by 512, plus the per-channel
  constants; both against a float16 cache (the model's own cache is float32, twice that).

Needs ``qcompile assets fetch smollm2 austen``.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import qcompile as qc  # noqa: E402
from benchmarks.common import cache_benchmark, cache_perplexity, write_json  # noqa: E402
from qcompile import lm  # noqa: E402
from qcompile.calibration import Calibration, Collected  # noqa: E402
from qcompile.models import smollm2  # noqa: E402
from qcompile.passes.kvcache.prerope import KvPrerope  # noqa: E402

FISHER = "<fisher file of the calibration text>"
FISHER_SAMPLES = 2048
CONFIGS = {"float": None}
for _b in (4, 3, 2):
    CONFIGS[f"pre-rope_{_b}bit"] = dict(bits=_b, keys="pre-rope")
    CONFIGS[f"pre-rope_{_b}bit_1pct_outliers"] = dict(bits=_b, keys="pre-rope", outliers=0.01)
    CONFIGS[f"post-rope_{_b}bit"] = dict(bits=_b, keys="post-rope")
    CONFIGS[f"per-token_{_b}bit"] = dict(bits=_b, keys="per-token")
# each ingredient's share at 3 bits: no sink, a fixed 99.9 percentile range instead of the
# least-squares range search, non-uniform (k-means) levels
CONFIGS["pre-rope_3bit_no_sink"] = dict(bits=3, keys="pre-rope", sinks=0)
CONFIGS["pre-rope_3bit_clip99.9"] = dict(bits=3, keys="pre-rope", clip=99.9)
CONFIGS["pre-rope_3bit_nuq"] = dict(bits=3, keys="pre-rope", nuq=True)
# more float16 sink positions (the default keeps 1)
CONFIGS["pre-rope_4bit_4_sinks"] = dict(bits=4, keys="pre-rope", sinks=4)
CONFIGS["pre-rope_3bit_4_sinks"] = dict(bits=3, keys="pre-rope", sinks=4)
CONFIGS["pre-rope_3bit_1pct_outliers_4_sinks"] = dict(bits=3, keys="pre-rope", outliers=0.01, sinks=4)
# KIVI's recent window: the last 32 positions also in float16 (a fixed buffer: 1440 B per
# token at 512 tokens, 180 at 4096), alone and with 1 % outliers
for _b in (4, 3, 2):
    CONFIGS[f"pre-rope_{_b}bit_recent32"] = dict(bits=_b, keys="pre-rope", recent=32)
    CONFIGS[f"pre-rope_{_b}bit_1pct_outliers_recent32"] = dict(bits=_b, keys="pre-rope", outliers=0.01, recent=32)
for _b in (3, 2):  # longer windows: 64 and 128 positions (2880 / 5760 B per token at 512, 360 / 720 at 4096)
    for _r in (64, 128):
        CONFIGS[f"pre-rope_{_b}bit_1pct_outliers_recent{_r}"] = dict(bits=_b, keys="pre-rope", outliers=0.01, recent=_r)
# KVQuant's sensitivity-weighted non-uniform levels (k-means weighted by the diagonal Fisher
# information of the keys and values, from torch gradients on the calibration text), alone,
# with 1 % outliers, and with the recent window ("fisher" is resolved to the file at run time)
CONFIGS["pre-rope_4bit_nuq"] = dict(bits=4, keys="pre-rope", nuq=True)
for _b in (4, 3, 2):
    CONFIGS[f"pre-rope_{_b}bit_nuq_fisher"] = dict(bits=_b, keys="pre-rope", nuq=True, fisher=FISHER)
    CONFIGS[f"pre-rope_{_b}bit_1pct_outliers_nuq_fisher"] = dict(bits=_b, keys="pre-rope", outliers=0.01, nuq=True,
                                                                 fisher=FISHER)
    CONFIGS[f"pre-rope_{_b}bit_1pct_outliers_nuq_fisher_recent32"] = dict(
        bits=_b, keys="pre-rope", outliers=0.01, nuq=True, fisher=FISHER, recent=32)
for _b in (3, 2):
    CONFIGS[f"pre-rope_{_b}bit_1pct_outliers_nuq_fisher_recent64"] = dict(
        bits=_b, keys="pre-rope", outliers=0.01, nuq=True, fisher=FISHER, recent=64)
# QuaRot's online rotation of the per-token caches (a random Hadamard along head_dim before
# quantizing, undone after): per-token keys and values, and values under pre-RoPE keys
for _b in (4, 3):
    CONFIGS[f"per-token_{_b}bit_rotate"] = dict(bits=_b, keys="per-token", rotate=True)
    CONFIGS[f"pre-rope_{_b}bit_rotate"] = dict(bits=_b, keys="pre-rope", rotate=True)
for _b in (3, 2):  # rotated values with the other ingredients
    CONFIGS[f"pre-rope_{_b}bit_1pct_outliers_rotate"] = dict(bits=_b, keys="pre-rope", outliers=0.01, rotate=True)
CONFIGS["pre-rope_3bit_1pct_outliers_rotate_recent32"] = dict(bits=3, keys="pre-rope", outliers=0.01, rotate=True,
                                                              recent=32)
# where the 3-bit error comes from: 3-bit keys with 8-bit values, and the reverse
CONFIGS["pre-rope_3bit_keys_only"] = dict(bits=3, value_bits=8, keys="pre-rope")
CONFIGS["pre-rope_3bit_values_only"] = dict(bits=8, value_bits=3, keys="pre-rope")


def main() -> int:
    a, proto, ids, calib_ids, canon, out = cache_benchmark("kv_cache.py", __doc__.splitlines()[0], CONFIGS,
                                                           tokens=lm.Protocol.tokens, calib_tokens=8192)
    names = a.only or list(CONFIGS)
    t = time.perf_counter()
    requests = {}
    for n in names:
        if CONFIGS[n]:
            requests.update(KvPrerope(**CONFIGS[n]).calibration_requests(canon))
    stats = Calibration({"tokens": calib_ids, "bos": proto.bos}, window=proto.window).collect(canon, requests)
    out["calibration"]["seconds"] = round(time.perf_counter() - t, 1)
    collected = Collected(stats)
    fisher = None
    if any(CONFIGS[n] and CONFIGS[n].get("fisher") for n in names):
        t = time.perf_counter()
        fisher = smollm2.fisher_samples(len(calib_ids), FISHER_SAMPLES, proto.window)
        out["calibration"]["fisher"] = {"file": fisher.name, "seconds": round(time.perf_counter() - t, 1),
                                        "how": "torch autograd of the next-token loss, SmolLM2 float32, "
                                               f"{len(calib_ids)} calibration tokens in windows of {proto.window}, "
                                               f"{FISHER_SAMPLES} sampled token positions"}

    for name in names:
        cfg = CONFIGS[name]
        if cfg is None:
            mod, layout = canon, None
        else:
            opts = {**cfg, "fisher": str(fisher)} if cfg.get("fisher") else cfg
            pm = qc.PassManager([KvPrerope(**opts)], calibration=collected)
            mod = pm.run(canon)
            layout = pm.records[-1].notes["kv_cache"]
        res = {"config": cfg, **cache_perplexity(mod, ids, proto, name, 0 if layout is None else layout["constant_bytes"])}
        if layout:
            res["layout"] = layout
        out["results"][name] = res
        _summarize(out)
        write_json(a.out, out, announce=False)
        print(f"{name}: perplexity {res['perplexity']:.4f}, {res['measured_bytes_per_token_at_512']:.1f} B/token", flush=True)
    write_json(a.out, out)
    return 0


def _summarize(out: dict) -> None:
    res = out["results"]
    if "float" not in res:
        return
    fp = res["float"]["perplexity"]
    f16 = out["float16_bytes_per_token"]
    for r in res.values():
        r["vs_float"] = r["perplexity"] / fp - 1
        r["fraction_of_float16_bytes"] = r["measured_bytes_per_token_at_512"] / f16
    goals = {}
    for b in (3, 2):
        if f"pre-rope_{b}bit" in res and f"post-rope_{b}bit" in res:
            goals[f"pre-RoPE better than post-RoPE at {b} bits"] = \
                res[f"pre-rope_{b}bit"]["perplexity"] < res[f"post-rope_{b}bit"]["perplexity"]
    if "pre-rope_4bit" in res:
        goals["4-bit within +1 % of float"] = res["pre-rope_4bit"]["vs_float"] <= 0.01
    if "pre-rope_3bit_1pct_outliers" in res:
        goals["3-bit with 1 % outliers within +3 % of float"] = res["pre-rope_3bit_1pct_outliers"]["vs_float"] <= 0.03
    if "pre-rope_3bit" in res:
        goals["3-bit cache <= 1/4.5 of float16 bytes"] = res["pre-rope_3bit"]["fraction_of_float16_bytes"] <= 1 / 4.5
    # the goals again over every ingredient row of that width (outliers included where the goal
    # names them), naming the row and its bytes: a float16 window costs bytes of its own
    for prefix, limit, what in (("pre-rope_4bit", 0.01, "4-bit within +1 %"),
                                ("pre-rope_3bit_1pct_outliers", 0.03, "3-bit with 1 % outliers within +3 %"),
                                ("pre-rope_2bit_1pct_outliers", 0.15, "2-bit with 1 % outliers within +15 %")):
        rows = {n: r for n, r in res.items() if n.startswith(prefix) and "bits_only" not in n
                and not n.endswith(("keys_only", "values_only"))}
        if rows:  # the row meeting it with the fewest bytes at 512 tokens, else the closest
            meeting = [n for n in rows if rows[n]["vs_float"] <= limit]
            best = (min(meeting, key=lambda n: rows[n]["measured_bytes_per_token_at_512"]) if meeting
                    else min(rows, key=lambda n: rows[n]["vs_float"]))
            r = rows[best]
            goals[f"{what}: the cheapest ingredient row meeting it (else the closest)"] = {
                "met": r["vs_float"] <= limit, "row": best, "vs_float": r["vs_float"],
                "bytes_per_token_at_512": r["measured_bytes_per_token_at_512"],
                "bytes_per_token_at_4096": r["layout"]["bytes_per_token"] + r["layout"]["fixed_bytes"] / 4096}
    out["goals"] = goals


if __name__ == "__main__":
    sys.exit(main())
