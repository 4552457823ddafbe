"""``bfp``: the KV cache (and optionally weights and matmul inputs) in block floating point,
after compile-time channel reordering (``k-sort``, Trukhanov & Soloveychik 2024).

The ``bfp`` pipeline is ``k-sort`` (:mod:`qcompile.passes.ksort`: channels of each KV head
sorted by norm, folded into W_q/W_k/W_v/W_o and the RoPE tables; the float model is
unchanged) followed by this pass:

* **Caches** (:class:`qcompile.passes.kvcache.cache_rewrite.CacheRewrite`): each layer's ``past`` key and
  value become packed significands ``[B, H, N, D*m/8]`` (uint8) and block exponents
  ``[B, H, N, D/B]`` (uint8) in the format named by ``keys`` / ``values`` (``bfp16``,
  ``bfp12``, ``mxint8``, ``mxint4``; ``none`` keeps that cache in float), blocks of ``block``
  channels along head_dim, never across heads. This step's tokens are encoded, appended
  and returned as the ``present`` outputs; attention reads the whole cache decoded.
  Options from the other passes: ``sinks`` (the first positions also kept in float16),
  ``pre_rope`` (keys stored before RoPE, RoPE re-run at read time, as ``kv-prerope``),
  ``recent`` (the last positions also kept in float16, KIVI's window) and ``rotate``
  (``keys``, ``values`` or ``both`` stored multiplied by a random orthogonal Hadamard matrix
  along head_dim and multiplied back after decoding, QuaRot's online rotation: a block's
  shared exponent then follows a head vector spread evenly over its channels; with K-sort
  the rotation undoes the order's grouping, so the two are alternatives).
* **Weights** (``weights``, off by default): every linear layer's constant weight ``[in, out]``
  is stored packed with blocks along the input channels and decoded by a kernel before its
  matmul (the weight bytes really shrink; the matmul itself stays float32).
* **Activations** (``activations``, off by default): the input of every such matmul is
  quantized and dequantized in blocks along its channels, which is what a BFP matmul unit
  would read (simulated: there is no BFP matmul kernel).

Kernels and the exact format: :mod:`qcompile.passes.kvcache.bfp_format` (bit-exact against its NumPy reference).
"""
from __future__ import annotations

import dataclasses

import numpy as np
from tvm import relax
from tvm.relax import op as O

from qcompile.passes.kvcache import bfp_format as bfp
from qcompile.passes.kvcache.cache_rewrite import CacheRewrite
from qcompile.errors import QCompileError
from qcompile.analysis.graph import linear_at
from qcompile.analysis.kvcache import Cache, decoder_layers
from qcompile.passmanager import Pass
from qcompile.rewrite import rebuild_main

NONE = "none"


@dataclasses.dataclass(frozen=True)
class BfpConfig:
    keys: str = "bfp12"
    values: str = "bfp16"
    block: int = 32
    sinks: int = 0
    pre_rope: bool = False
    recent: int = 0          # the last positions also kept in float16 (KIVI's recent window)
    rotate: str = NONE       # "keys", "values" or "both": stored rotated by a random Hadamard (QuaRot)
    weights: str = NONE
    activations: str = NONE


class Bfp(Pass):
    name = "bfp"
    Config = BfpConfig

    def __init__(self, **options):
        super().__init__(**options)
        c = self.config
        for f in (c.keys, c.values, c.weights, c.activations):
            if f != NONE:
                bfp.format_bits(f, c.block)
        if c.rotate not in (NONE, "keys", "values", "both"):
            raise QCompileError(f"bfp: rotate='{c.rotate}' is not one of none, keys, values, both")
        if c.sinks < 0 or c.recent < 0:
            raise QCompileError("bfp: sinks and recent must be >= 0")
        if c.block not in (8, 16, 32, 64, 128):
            raise QCompileError(f"bfp: block {c.block} is not one of 8, 16, 32, 64, 128")

    def fmt(self, name: str):
        return None if name == NONE else bfp.format_bits(name, self.config.block)

    def transform(self, mod, ctx):
        c = self.config
        notes = {}
        if c.keys != NONE or c.values != NONE:
            g, layers = decoder_layers(mod, "bfp", need_rope=c.pre_rope)
            for L in layers:
                for cache, f in ((L.key, self.fmt(c.keys)), (L.value, self.fmt(c.values))):
                    if f:
                        bfp.check_layout(cache.head_dim, *f, what=f"layer {L.index} head_dim")
            rw = _CacheRewrite(g, layers, self)
            mod = rw.run(mod)
            notes["kv_cache"] = rw.layout()
        if c.weights != NONE or c.activations != NONE:
            mod, notes["weights"] = _linear_layers(mod, self.fmt(c.weights), self.fmt(c.activations), c)
        ctx.notes.update(notes)
        return mod


class _CacheRewrite(CacheRewrite):
    name = "bfp"

    def __init__(self, g, layers, p: Bfp):
        super().__init__(g, layers, sinks=p.config.sinks, pre_rope=p.config.pre_rope, recent=p.config.recent)
        self.p = p
        self.formats = {True: p.fmt(p.config.keys), False: p.fmt(p.config.values)}

    def stored(self, cache: Cache) -> bool:
        return self.formats[cache.is_key] is not None

    def rotated(self, cache: Cache) -> bool:
        return self.p.config.rotate in ("both", "keys" if cache.is_key else "values")

    def tensors(self, cache: Cache):
        b, h, n, d = cache.param.ty.shape
        bits, block = self.formats[cache.is_key]
        return [("significands", [b, h, n, cache.head_dim * bits // 8], "uint8"),
                ("exponents", [b, h, n, cache.head_dim // block], "uint8")] + self.float_tensors(cache)

    def encode(self, bb, layer, cache: Cache, x):
        t = bb.emit_te(bfp.quant_te(*self.formats[cache.is_key]), x, primfunc_name_hint="bfp_quant")
        return {"significands": bb.emit(relax.TupleGetItem(t, 0)), "exponents": bb.emit(relax.TupleGetItem(t, 1))}

    def decode(self, bb, layer, cache: Cache, present: dict):
        sink, recent = self.float_args(present)
        args = [present["significands"], present["exponents"], *sink, *recent]
        return bb.emit_te(bfp.dequant_te(*self.formats[cache.is_key], self.sinks, self.recent), *args,
                          primfunc_name_hint="bfp_dequant")

    def layout(self) -> dict:
        c = self.p.config
        f16 = per_tok = sinks = recent = 0
        for L in self.layers:
            for cache in (L.key, L.value):
                f16 += cache.heads * cache.head_dim * 2
                if self.stored(cache):
                    tok, sink, window = self.bytes_of(cache)
                else:  # kept in float16 terms (the exported cache is float32: twice that)
                    tok, sink, window = cache.heads * cache.head_dim * 2, 0, 0
                per_tok, sinks, recent = per_tok + tok, sinks + sink, recent + window
        fixed = sinks + recent
        return {
            "layers": len(self.layers), "kv_heads": self.layers[0].key.heads, "head_dim": self.layers[0].key.head_dim,
            "keys": c.keys, "values": c.values, "block": c.block, "sinks": c.sinks, "pre_rope": c.pre_rope,
            "recent": c.recent,
            "rotated": self.rotated_roles(),
            "float16_bytes_per_token": f16, "float32_bytes_per_token": 2 * f16,
            "bytes_per_token": per_tok, "fixed_bytes": fixed, "sink_bytes": sinks, "recent_bytes": recent,
            "constant_bytes": 0,
            "bytes_per_token_at_512": per_tok + fixed / 512,
            "bytes_per_token_at_4096": per_tok + fixed / 4096,
            "ratio_to_float16_at_512": f16 / (per_tok + fixed / 512),
            "float_caches_counted_as": "float16",
        }


def _linear_layers(mod, wfmt, afmt, c: BfpConfig):
    """Weights packed (blocks along input channels) with a decode kernel before each matmul,
    and/or the matmul input quantized-dequantized in blocks along its channels."""
    stats = {"weights": c.weights, "activations": c.activations, "block": c.block, "linear_layers": 0,
             "float32_weight_bytes": 0, "stored_weight_bytes": 0, "skipped": []}

    def on_binding(bb, var, val):
        lin = linear_at({var: val}, var, rank2=True, with_bias=False)
        if lin is None or lin.weight.dtype != np.float32:
            return None
        w = lin.weight
        k = w.shape[0]
        if k % c.block or k % 8:
            stats["skipped"].append(f"{var.name}: {k} input channels")
            return None
        stats["linear_layers"] += 1
        stats["float32_weight_bytes"] += w.nbytes
        x, weight = val.args[0], val.args[1]
        if afmt is not None:
            x = bb.emit_te(bfp.qdq_te(*afmt), x, primfunc_name_hint="bfp_qdq")
        if wfmt is not None:
            if not np.all(np.isfinite(w)):
                raise QCompileError(f"bfp: the weight of '{var.name}' holds NaN or inf")
            packed, e = bfp.quantize_ref(np.ascontiguousarray(w.T), *wfmt)
            stats["stored_weight_bytes"] += packed.nbytes + e.nbytes
            wt = bb.emit_te(bfp.dequant_te(*wfmt), relax.const(packed), relax.const(e), primfunc_name_hint="bfp_weight")
            weight = bb.emit(O.permute_dims(wt, [1, 0]))
        else:
            stats["stored_weight_bytes"] += w.nbytes
        return relax.Call(val.op, [x, weight], val.attrs, val.ty_args)

    return rebuild_main(mod, on_binding), stats
