"""What the ``bfp`` pipeline buys on SmolLM2-135M: perplexity, cache bytes per token and
per-block error statistics of a block-floating-point KV cache, with and without K-sort
channel reordering; every perplexity measured through compiled llvm artifacts (the cache
the artifact returns is the packed one; attention reads it back decoded).

    python benchmarks/bfp.py [--out benchmarks/results/bfp.json] [--tokens 4096]
                             [--calib-tokens 4096] [--only NAME ...] [--merge]

* evaluation: perplexity on Jane Austen's *Emma* under :class:`qcompile.lm.Protocol`
  (windows of 512 from an empty cache, fed in steps of 64), ``--tokens`` scored tokens;
* K-sort orders: ``plain`` (none), ``ksort-weights`` (row norms of the projections, no data),
  ``ksort-calib`` (per-channel absmax of the pre-RoPE keys and of the values on
  ``--calib-tokens`` tokens of *Persuasion*, disjoint from the evaluation text), and both
  with ``-kq``: keys sorted by key over query magnitude (``KSort(criterion="key/query")``);
  ``ksort-calib-kq-vo``: and values by their magnitude times the norm of the ``W_o`` row
  they feed (``KSort(value_criterion="value*out")``);
* configurations: BFP16 keys (values float) at blocks 16, 32 and 64, plain and K-sorted;
  BFP12 keys in all five orders; keys and values both in the format, plain and
  ``ksort-calib`` (BFP12 also ``ksort-calib-kq``); and on BFP12 keys at blocks 16 and 32
  the ingredients from the other passes, each alone and together:
  one float16 attention sink (``sink``), keys stored before RoPE (``prerope``), a float16
  window of the 32 most recent positions (``recent32``, KIVI); the same on keys and values;
  QuaRot's online Hadamard rotation of the cached head vectors instead of K-sort
  (``rotate``: keys, or keys and values), alone and with the sink and pre-RoPE keys;
  MXINT8 and the 4-bit MX integer format are BFP16 and BFP12 at block 32 (same formula);
  and BFP16/BFP12 weights of every linear layer at block 32 (cache float), BFP12 also after
  K-sort with the MLP down projections' input channels sorted (``KSort(mlp=True)``);
* bytes: ``measured_bytes_per_token_at_512`` is the ``nbytes`` of the cache arrays the
  artifact returned after a whole 512-token window, divided by 512 (a float cache is counted
  as float16 in ``layout``; the measured figure of a float cache is the exported float32);
* ``block_errors``: on the first calibration window's keys (after and before RoPE) and
  values of all 30 layers, the relative error and percentiles over blocks of the per-block
  relative error ``||x - x'|| / ||x||`` for every format, block and order;
  ``score_errors``: on the same window, the relative error of the attention scores
  ``q · k̂`` against ``q · k`` (keys after RoPE), which is what attention sees; both also
  for the rotated head vectors (``rotate``: ``x Q`` encoded, ``Q^T`` after decoding).

Needs ``qcompile assets fetch smollm2 austen``.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import qcompile as qc  # noqa: E402
from benchmarks.common import cache_benchmark, cache_perplexity, write_json  # noqa: E402
from qcompile.passes.kvcache import bfp_format as bfp  # noqa: E402
from qcompile.calibration import Calibration, Collected, Sample  # noqa: E402
from qcompile.passes.ksort.sort import attention_layers  # noqa: E402
from qcompile.analysis.kvcache import decoder_layers  # noqa: E402
from qcompile.passes.kvcache.bfp import Bfp  # noqa: E402
from qcompile.passes.ksort import KSort  # noqa: E402

ORDERS = {  # name -> (K-sort statistics, key criterion)
    "plain": None, "ksort-weights": ("weights", "key"), "ksort-calib": ("calibrated", "key"),
    "ksort-weights-kq": ("weights", "key/query"), "ksort-calib-kq": ("calibrated", "key/query"),
    "ksort-calib-kq-vo": ("calibrated", "key/query", "value*out")}
FORMATS = ("bfp16", "bfp12")
BLOCKS = (16, 32, 64)

CONFIGS: dict = {"float": None}
for _f, _orders in (("bfp16", ("plain", "ksort-weights", "ksort-calib")), ("bfp12", tuple(ORDERS)[:5])):
    for _b in BLOCKS:
        for _o in _orders:
            CONFIGS[f"{_f}_keys_b{_b}_{_o}"] = dict(order=_o, bfp=dict(keys=_f, values="none", block=_b))
for _f, _orders in (("bfp16", ("plain", "ksort-calib")), ("bfp12", ("plain", "ksort-calib", "ksort-calib-kq"))):
    for _b in BLOCKS:
        for _o in _orders:
            CONFIGS[f"{_f}_kv_b{_b}_{_o}"] = dict(order=_o, bfp=dict(keys=_f, values=_f, block=_b))
for _b in (16, 32):  # ingredients from the other passes, alone and with K-sort (key/query)
    for _o in ("plain", "ksort-calib-kq"):
        for _tag, _opt in (("sink", dict(sinks=1)), ("prerope", dict(pre_rope=True)),
                           ("prerope_sink", dict(pre_rope=True, sinks=1))):
            CONFIGS[f"bfp12_keys_b{_b}_{_o}_{_tag}"] = dict(order=_o, bfp=dict(keys="bfp12", values="none", block=_b, **_opt))

for _b in (16, 32):  # the same ingredients with values in BFP12 too, and a float16 window of 32 recent positions
    for _o in ("ksort-calib-kq", "ksort-calib-kq-vo"):  # values sorted by value or value times W_o's row norm
        CONFIGS[f"bfp12_kv_b{_b}_{_o}"] = dict(order=_o, bfp=dict(keys="bfp12", values="bfp12", block=_b))
        for _tag, _opt in (("prerope_sink", dict(pre_rope=True, sinks=1)),
                           ("prerope_sink_recent32", dict(pre_rope=True, sinks=1, recent=32))):
            CONFIGS[f"bfp12_kv_b{_b}_{_o}_{_tag}"] = dict(order=_o,
                                                          bfp=dict(keys="bfp12", values="bfp12", block=_b, **_opt))
    for _what in ("keys", "kv"):  # QuaRot's online Hadamard rotation instead of K-sort, with the same ingredients
        _vals = "bfp12" if _what == "kv" else "none"
        _rot = "both" if _what == "kv" else "keys"
        CONFIGS[f"bfp12_{_what}_b{_b}_rotate"] = dict(order="plain", bfp=dict(keys="bfp12", values=_vals, block=_b,
                                                                              rotate=_rot))
        CONFIGS[f"bfp12_{_what}_b{_b}_rotate_prerope_sink"] = dict(
            order="plain", bfp=dict(keys="bfp12", values=_vals, block=_b, rotate=_rot, pre_rope=True, sinks=1))
    CONFIGS[f"bfp12_keys_b{_b}_ksort-calib-kq_prerope_sink_recent32"] = dict(
        order="ksort-calib-kq", bfp=dict(keys="bfp12", values="none", block=_b, pre_rope=True, sinks=1, recent=32))


# weights (all linear layers, blocks along input channels), cache float: K-sort with the MLP
# down projections' input channels sorted too
for _f in FORMATS:
    CONFIGS[f"{_f}_weights_b32_plain"] = dict(order="plain", bfp=dict(keys="none", values="none", weights=_f, block=32))
CONFIGS["bfp12_weights_b32_ksort-weights-mlp"] = dict(order="ksort-weights", mlp=True,
                                                      bfp=dict(keys="none", values="none", weights="bfp12", block=32))


def ksort(order: str, mlp: bool = False):
    src = ORDERS[order]
    return None if src is None else KSort(source=src[0], criterion=src[1], mlp=mlp,
                                          value_criterion=src[2] if len(src) > 2 else "value")


def passes(cfg: dict) -> list:
    k = ksort(cfg["order"], cfg.get("mlp", False))
    return ([k] if k else []) + [Bfp(**cfg["bfp"])]


def main() -> int:
    a, proto, ids, calib_ids, canon, out = cache_benchmark("bfp.py", __doc__.splitlines()[0], CONFIGS,
                                                           tokens=4096, calib_tokens=4096)

    # one calibration: K-sort's per-channel absmax, and a window of keys/values for block errors
    t = time.perf_counter()
    requests = KSort(source="calibrated", criterion="key/query").calibration_requests(canon)  # all K-sort needs
    g, layers = decoder_layers(canon, "bfp benchmark")
    samples = {}
    for L, A in zip(layers, attention_layers(g, layers)):
        for role, var in (("keys", L.key.new), ("keys_pre_rope", L.key.pre_rope), ("values", L.value.new),
                          ("queries", A.rope_q)):
            samples.setdefault(role, []).append(Sample(updates=proto.window // proto.chunk))
            requests.setdefault(var, []).append(samples[role][-1])
    stats = Calibration({"tokens": calib_ids, "bos": proto.bos}, window=proto.window).collect(canon, requests)
    out["calibration"]["seconds"] = round(time.perf_counter() - t, 1)
    collected = Collected(stats)
    out["block_errors"], out["score_errors"] = block_errors(canon, stats, samples)
    _summarize(out)  # a --merge run keeps the summary of the rows it merged into
    write_json(a.out, out, announce=False)

    for name in a.only or list(CONFIGS):
        cfg = CONFIGS[name]
        if cfg is None:
            mod, layout, notes = canon, None, {}
        else:
            pm = qc.PassManager(passes(cfg), calibration=collected)
            mod = pm.run(canon)
            notes = {r.name: r.notes for r in pm.records}
            layout = notes["bfp"].get("kv_cache")
        res = {"config": cfg, **cache_perplexity(mod, ids, proto, name)}
        if cfg and "weights" in notes.get("bfp", {}):
            res["weights"] = notes["bfp"]["weights"]
        if layout:
            res["layout"] = layout
        if "k-sort" in notes:
            res["k_sort"] = notes["k-sort"]["k_sort"]
        out["results"][name] = res
        _summarize(out)
        write_json(a.out, out, announce=False)
        print(f"{name}: perplexity {res['perplexity']:.4f}, {res['measured_bytes_per_token_at_512']:.1f} B/token", flush=True)
    write_json(a.out, out)
    return 0


def block_errors(canon, stats, samples: dict) -> tuple[dict, dict]:
    """On the sampled window, for every format, block and order (all layers pooled):

    * per-block error statistics of the stored keys (after and before RoPE) and values; a
      reordered tensor is the sampled one permuted per head as K-sort permutes the weights
      (exactly what the reordered model produces), a rotated one (``rotate``) each head
      vector times the pass's Hadamard matrix ``Q``;
    * the relative error of the attention scores ``q · k̂`` against ``q · k`` over the causal
      (query, key) pairs, with keys after RoPE as the cache stores them by default."""
    from qcompile.hadamard import random_orthogonal_hadamard

    maps = {o: None if ksort(o) is None else ksort(o).permutations(canon, stats) for o in ORDERS}
    att = next(m for m in maps.values() if m is not None)[0]
    data = {role: [np.concatenate(s.tensors, axis=2)[0] for s in per_layer] for role, per_layer in samples.items()}
    rot = random_orthogonal_hadamard(data["keys"][0].shape[-1], seed=0)[0]  # the Q of Bfp(rotate=...)
    # per order: (stored form of head h of layer i's role, its decoded form back in the model's channels)
    forms = {o: (lambda i, h, x, role, m=m: x if m is None else m[1][i][0 if role.startswith("keys") else 1][h].apply(x),
                 lambda i, h, y, m=m: y if m is None else m[1][i][0][h].inverse().apply(y)) for o, m in maps.items()}
    forms["rotate"] = (lambda i, h, x, role: x @ rot, lambda i, h, y: y @ rot.T)
    blocks, scores = {}, {}
    for order, (store, back) in forms.items():
        for role in ("keys", "keys_pre_rope", "values"):
            y = np.concatenate([store(i, h, x[h], role) for i, x in enumerate(data[role]) for h in range(len(x))])
            for f in FORMATS:
                for b in BLOCKS:
                    blocks[f"{role}/{f}/b{b}/{order}"] = bfp.block_errors(y, *bfp.format_bits(f, b))
        for f in FORMATS:
            for b in BLOCKS:
                num = den = 0.0
                for i, (k, q) in enumerate(zip(data["keys"], data["queries"])):
                    causal = np.tril(np.ones((k.shape[1], k.shape[1]), bool))
                    for h in range(len(k)):
                        stored = np.asarray(store(i, h, k[h], "keys"), np.float32)
                        kh = back(i, h, bfp.qdq_ref(stored, *bfp.format_bits(f, b)))
                        qs = q[att[i].q_group == h]
                        s0, s1 = qs @ k[h].T, qs @ kh.T
                        num += float(((s1 - s0)[:, causal] ** 2).sum())
                        den += float((s0[:, causal] ** 2).sum())
                scores[f"{f}/b{b}/{order}"] = float(np.sqrt(num / den))
    return blocks, scores


def _summarize(out: dict) -> None:
    res = out["results"]
    if "float" not in res:
        return
    fp = res["float"]["perplexity"]
    f16 = out["float16_bytes_per_token"]
    for r in res.values():
        r["vs_float"] = r["perplexity"] / fp - 1
        if "layout" in r:
            r["fraction_of_float16_bytes"] = r["layout"]["bytes_per_token_at_512"] / f16
    goals, gaps = {}, {}
    for part in ("keys", "kv"):
        for b in (16, 32):
            lo, hi = res.get(f"bfp16_{part}_b{b}_plain"), res.get(f"bfp12_{part}_b{b}_plain")
            if lo is None or hi is None:
                continue
            gap = hi["perplexity"] - lo["perplexity"]
            closed = {n[len(f"bfp12_{part}_b{b}_"):]: (hi["perplexity"] - r["perplexity"]) / gap if gap > 0 else None
                      for n, r in res.items() if n.startswith(f"bfp12_{part}_b{b}_") and n != f"bfp12_{part}_b{b}_plain"}
            gaps[f"{part} b{b}"] = {"bfp16_plain": lo["perplexity"], "bfp12_plain": hi["perplexity"], "gap": gap,
                                    "fraction_closed_by": closed}
            # the goal is at BFP12's bytes: a float16 window of recent positions adds bytes, so
            # its rows are a goal of their own; the rotation is not a reordering
            for what, keep in (("K-sort (with sink / pre-RoPE keys), BFP12's bytes",
                                lambda n: "ksort" in n and "recent" not in n),
                               ("the online Hadamard rotation instead of K-sort, BFP12's bytes",
                                lambda n: "rotate" in n and "recent" not in n),
                               ("K-sort with a float16 window of 32 recent positions (+1440 B/token at 512)",
                                lambda n: "recent" in n)):
                got = [v for n, v in closed.items() if keep(n) and v is not None]
                if got:
                    goals[f"{part}, block {b}: {what} closes >= half the BFP12-BFP16 gap"] = max(got) >= 0.5
            if "layout" in lo and "layout" in hi:
                ratio = hi["layout"]["bytes_per_token_at_512"] / lo["layout"]["bytes_per_token_at_512"]
                gaps[f"{part} b{b}"]["bfp12_bytes_over_bfp16"] = ratio
    out["gap_closed"] = gaps
    out["goals"] = goals


if __name__ == "__main__":
    sys.exit(main())
