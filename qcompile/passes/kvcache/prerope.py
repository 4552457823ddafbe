"""``kv-prerope``: a packed low-bit KV cache with keys quantized **before RoPE** (KVQuant).

KVQuant (Hooper et al. 2024): keys have outlier *channels*, so they are quantized per
channel; RoPE rotates channel pairs ``(i, i + D/2)`` by position-dependent angles
``θ_i · pos`` and smears that structure, so the cache holds the keys before RoPE and
applies RoPE when attention reads them:

    K_cache = Q_ch(K_pre)                      per channel, zero/scale calibrated offline
    K_attn  = RoPE(deQ(K_cache), positions of the cached tokens)
    V_cache = Q_tok(V)                         per token, zero/scale computed at run time

For every layer found by :func:`qcompile.analysis.kvcache.cache_paths` the pass

1. replaces the float cache inputs ``past_*`` by packed codes (``bits`` = 2, 3, 4 or 8;
   :mod:`qcompile.passes.kvcache.kvquant`), their per-token scales (float16) where the mode has them, a
   float16 **sink** buffer of the first ``sinks`` positions, and the **outlier** side
   buffer (values and channel indices of the ``k = round(outliers * H * D)`` entries of
   each token's row kept exactly) when ``outliers > 0``;
2. quantizes this step's keys (pre-RoPE) and values, appends them to the packed cache and
   returns the packed cache as the ``present`` outputs, in the order of the inputs;
3. feeds attention with the dequantized cache, on which it re-runs the model's own RoPE
   bindings with the positions of the cached tokens, ``cumsum(attention_mask) - 1`` (the
   HF convention); every cached key, this step's included, is read back quantized.

Per-channel ranges come from per-channel histograms of the calibration data: by default,
for each channel, the percentile range (100 down to 95, two-sided) with the least expected
squared quantization error at the cache's bit width; ``clip=p`` fixes the ``100 - p`` and
``p`` percentiles instead. With outliers, no range is wider than the ``100 - 50 * outliers``
percentiles, so the entries outside are about the fraction kept exactly. Outliers of
per-channel keys are the entries farthest outside their channel's range
(``|x - mid| / half``), of per-token tensors the largest ``|x|``.

Options: ``value_bits`` (values at another width), ``nuq`` (non-uniform per-layer levels
from weighted k-means on the calibration statistics, up to 4 bits; with ``fisher=PATH``
weighted by the entries' diagonal Fisher information, KVQuant's sensitivity weighting:
:mod:`qcompile.passes.kvcache.fisher`), ``recent`` (KIVI's
full-precision window: the last ``recent`` positions also kept in a fixed float16 buffer
and read from it; a position leaving the window is read from the codes it was given on
arrival), ``rotate`` (the per-token caches, values and ``per-token`` keys, stored
multiplied by a random orthogonal Hadamard matrix along head_dim and multiplied back after
dequantization: QuaRot's online rotation; per-channel keys are never rotated, their
ranges are calibrated per unrotated channel).

Baselines in the same code path (``keys=``): ``post-rope`` (per channel, calibrated on
post-RoPE keys, no RoPE at read time) and ``per-token`` (post-RoPE keys quantized like
values).
"""
from __future__ import annotations

import dataclasses
import json

import numpy as np
from tvm import relax
from tvm.relax import op as O

from qcompile.passes.kvcache import kvquant as kq
from qcompile.collectors import ChannelHistogram, RowNormHistogram
from qcompile.errors import QCompileError
from qcompile.passes.kvcache.cache_rewrite import CacheRewrite
from qcompile.analysis.kvcache import Cache, decoder_layers
from qcompile.passmanager import Pass
from qcompile.analysis.graph import Graph

KEY_MODES = ("pre-rope", "post-rope", "per-token")


@dataclasses.dataclass(frozen=True)
class KvPreropeConfig:
    bits: int = 4
    value_bits: int = 0      # 0: same as bits
    keys: str = "pre-rope"
    sinks: int = 1
    outliers: float = 0.0
    clip: float = 0.0        # per-channel range percentile; 0: chosen per channel for least squared error
    nuq: bool = False        # non-uniform per-layer datatype (k-means levels) for keys and values, <= 4 bits
    recent: int = 0          # the last positions also kept in float16 (KIVI's recent window)
    rotate: bool = False     # per-token caches (values; per-token keys) stored rotated by a random Hadamard (QuaRot)
    fisher: str = ""         # with nuq: an .npz of Fisher samples (passes.kvcache.fisher) weighting the k-means


class KvPrerope(Pass):
    name = "kv-prerope"
    Config = KvPreropeConfig

    def __init__(self, **options):
        super().__init__(**options)
        c = self.config
        for b in (c.bits, c.value_bits or c.bits):
            if b not in kq.BITS:
                raise QCompileError(f"kv-prerope: {b}-bit cache is not supported", hint=f"choose one of {kq.BITS}")
        if c.keys not in KEY_MODES:
            raise QCompileError(f"kv-prerope: keys='{c.keys}' is not a mode", hint=f"choose one of {KEY_MODES}")
        if c.nuq and max(c.bits, c.value_bits or c.bits) > 4:
            raise QCompileError("kv-prerope: nuq (non-uniform levels) is for 2 to 4 bits")
        if c.nuq and c.rotate:  # the levels are fitted to unrotated statistics
            raise QCompileError("kv-prerope: nuq levels are fitted to the unrotated caches; rotate and nuq "
                                "do not combine", hint="choose one of rotate=true and nuq=true")
        if c.fisher and not (c.nuq and c.keys == "pre-rope"):
            raise QCompileError("kv-prerope: fisher weights the non-uniform levels of pre-RoPE keys and of values",
                                hint="set nuq=true and keys='pre-rope', or leave fisher out")
        if c.sinks < 0 or c.recent < 0 or not 0 <= c.outliers < 0.5 or not (c.clip == 0 or 50 < c.clip <= 100):
            raise QCompileError("kv-prerope: need sinks >= 0, recent >= 0, 0 <= outliers < 0.5 and 50 < clip <= 100")

    @property
    def needs_calibration(self) -> bool:
        return self.config.keys != "per-token" or self.config.nuq

    @property
    def clips(self) -> tuple:
        """Candidate percentiles of the least-squares range search; with outliers, none wider
        than ``100 - 50 * outliers`` (the entries outside go to the exact side buffer)."""
        top = 100.0 - 50.0 * self.config.outliers
        return tuple(c for c in (100, 99.99, 99.9, 99.5, 99, 98.5, 98, 97, 96, 95) if c <= top) or (top,)

    def _layers(self, mod):
        """The decoder's layers. A layer without RoPE (SmolLM3's NoPE layers) stores its keys
        as they are (there is no rotation to quantize before); a model with no RoPE at all
        is refused (learned or ALiBi positions: the technique does not apply)."""
        return decoder_layers(mod, "kv-prerope", need_rope=self.config.keys == "pre-rope")

    def _stat_var(self, layer):
        pre = layer.key.pre_rope if self.config.keys == "pre-rope" else None
        return layer.key.new if pre is None else pre

    def calibration_requests(self, mod) -> dict:
        """Per-channel histograms of the keys (pre- or post-RoPE) for per-channel modes; with
        ``nuq``, row-normalized histograms of every per-token tensor as well."""
        if not self.needs_calibration:
            return {}
        _, layers = self._layers(mod)
        out = {}
        for layer in layers:
            if self.config.keys != "per-token":
                heads = 2 if self.config.keys == "pre-rope" and layer.key.pre_perm is not None else 1
                out[self._stat_var(layer)] = [ChannelHistogram(axes=(heads, 3))]
            if self.config.nuq:
                if self.config.keys == "per-token":
                    out[layer.key.new] = [RowNormHistogram()]
                out[layer.value.new] = [RowNormHistogram()]
        return out

    def transform(self, mod, ctx):
        c = self.config
        g, layers = self._layers(mod)
        for layer in layers:
            kq.check_layout(layer.key.head_dim, c.bits)
            kq.check_layout(layer.value.head_dim, c.value_bits or c.bits)
        ranges, tables = self._calibrated(layers, ctx.stats if self.needs_calibration else {})
        rw = _Rewrite(g, layers, c, ranges, tables)
        new_mod = rw.run(mod)
        ctx.notes["kv_cache"] = rw.layout()
        return new_mod


    def _calibrated(self, layers, stats: dict):
        """Per layer: the keys' per-channel ``(lo, hi)`` (per-channel modes) and, with ``nuq``,
        the level tables fitted to the keys (in their channels' ranges) and to the values
        (row-normalized), all in level units ``[0, 2^bits - 1]``: k-means weighted by the
        calibration counts, or with ``fisher`` by the entries' Fisher information."""
        c = self.config
        ranges, tables = {}, {}
        fisher = None
        if c.fisher:
            from qcompile.passes.kvcache import fisher as fi

            fisher = fi.load(c.fisher)
            n = sum(k.startswith("gk") for k in fisher)
            if n != len(layers):
                raise QCompileError(f"kv-prerope: the fisher file holds {n} attention layers, the model "
                                    f"{len(layers)}: it was made on another model")

        def stat(var, layer):
            got = stats.get(var)
            if not got:
                raise QCompileError(f"kv-prerope: no calibration statistics for layer {layer.index}")
            return got[0]

        for layer in layers:
            if c.keys != "per-token":
                h = stat(self._stat_var(layer), layer)
                lo, hi = h.range(c.clip) if c.clip else h.mse_range(c.bits, self.clips)
                ranges[layer.index] = (lo, hi)
                if c.nuq:  # per channel (rows): the histogram's bin centres and counts, or Fisher samples
                    x, w = (h.centres(), h.counts) if fisher is None else \
                        (a.reshape(len(a), -1).T for a in fi.layer_samples(fisher, layer.index, "k", layer.key.heads,
                                                                            layer.key.head_dim))
                    lo_, hi_ = lo.reshape(-1)[:, None], hi.reshape(-1)[:, None]
                    u = np.clip((x - lo_) / np.maximum(hi_ - lo_, 1e-30), 0, 1) * kq.levels(c.bits)
                    tables[(layer.index, "k")] = kq.kmeans_levels(u, w, c.bits)
            if c.nuq and fisher is not None:  # values per token: each head vector normalized to [0, L]
                b = c.value_bits or c.bits
                x, f = fi.layer_samples(fisher, layer.index, "v", layer.value.heads, layer.value.head_dim)
                lo_, hi_ = x.min(-1, keepdims=True), x.max(-1, keepdims=True)
                u = (x - lo_) / np.where(hi_ > lo_, hi_ - lo_, 1) * kq.levels(b)
                tables[(layer.index, "v")] = kq.kmeans_levels(u, f, b)
            elif c.nuq:
                per_token = [("v", layer.value.new, c.value_bits or c.bits)]
                if c.keys == "per-token":
                    per_token.append(("k", layer.key.new, c.bits))
                for role, var, b in per_token:
                    h = stat(var, layer)
                    tables[(layer.index, role)] = kq.kmeans_levels(h.centres() * kq.levels(b), h.counts, b)
        return ranges, tables


# ----------------------------------------------------------------------------- the rewrite


class _ChannelRange:
    """A per-channel quantizer ``[H, D]`` (float32): ``lo`` (the zero point), ``hi``, ``scale``
    and ``inv = 1/scale`` (0 for a channel without range); ``consts``: those the graph uses."""

    def __init__(self, lo, hi, bits: int):
        self.lo, self.hi = np.asarray(lo, np.float32), np.asarray(hi, np.float32)
        self.scale = ((self.hi - self.lo) / np.float32(kq.levels(bits))).astype(np.float32)
        s = self.scale
        self.inv = np.where(s > 0, np.float32(1) / np.where(s > 0, s, 1), 0).astype(np.float32)
        self.consts = {name: relax.const(getattr(self, name)) for name in ("lo", "scale", "inv")}  # bound once


class _Rewrite(CacheRewrite):
    """KVQuant's storage: packed integer codes (:mod:`qcompile.passes.kvcache.kvquant`)."""

    name = "kv-prerope"

    def __init__(self, g: Graph, layers, config: KvPreropeConfig, ranges: dict, tables: dict):
        super().__init__(g, layers, sinks=config.sinks, pre_rope=config.keys == "pre-rope", recent=config.recent)
        self.c, self.ranges, self.tables = config, ranges, tables
        self.channel: dict = {}  # layer index -> _ChannelRange of its keys

    # -- layout -------------------------------------------------------------

    def tensors(self, cache: Cache):
        """(suffix, shape, dtype) of the packed cache tensors replacing ``cache.param``."""
        b, h, p, d = cache.param.ty.shape
        k = self._k(cache)
        out = [("codes", [b, h, p, kq.packed_width(cache.head_dim, self._bits(cache))], "uint8")]
        if not self._per_channel(cache):
            out += [("scale", [b, h, p, 1], "float16"), ("zero", [b, h, p, 1], "float16")]
        out += self.float_tensors(cache)
        if k:
            out += [("outlier_values", [b, p, k], "float16"),
                    ("outlier_index", [b, p, k], kq.index_dtype(cache.heads * cache.head_dim))]
        return out

    def token_axis(self, suffix: str) -> int:
        return 1 if suffix.startswith("outlier") else 2

    def _bits(self, cache: Cache) -> int:
        return self.c.bits if cache.is_key else (self.c.value_bits or self.c.bits)

    def _k(self, cache: Cache) -> int:
        return int(round(self.c.outliers * cache.heads * cache.head_dim)) if self.c.outliers else 0

    def _per_channel(self, cache: Cache) -> bool:
        return cache.is_key and self.c.keys != "per-token"

    def rotated(self, cache: Cache) -> bool:
        # per-channel keys are not: their ranges are calibrated on the unrotated channels
        return self.c.rotate and not self._per_channel(cache)

    def _table(self, layer, cache: Cache):
        table = self.tables.get((layer.index, "k" if cache.is_key else "v"))
        return None if table is None else [float(t) for t in table]

    # -- encode / decode ----------------------------------------------------

    def encode(self, bb, layer, cache: Cache, x):
        bits, k, table = self._bits(cache), self._k(cache), self._table(layer, cache)
        ch = None
        if self._per_channel(cache):
            ch = self.channel[layer.index] = _ChannelRange(*self.ranges[layer.index], bits)
        new = {}
        if k:
            new["outlier_values"], new["outlier_index"] = self._outliers(bb, x, cache, k, ch)
        if ch is not None:
            new["codes"] = bb.emit_te(kq.quant_channel_te(bits, table), x, ch.consts["lo"], ch.consts["inv"],
                                      primfunc_name_hint="kv_quant_channel")
        else:
            idx = [new["outlier_index"]] if k else []
            t = bb.emit_te(kq.quant_token_te(bits, k, table), x, *idx, primfunc_name_hint="kv_quant_token")
            for i, name in enumerate(("codes", "scale", "zero")):
                new[name] = bb.emit(relax.TupleGetItem(t, i))
        return new

    def decode(self, bb, layer, cache: Cache, present: dict):
        per_channel, k = self._per_channel(cache), self._k(cache)
        args = [present["codes"]]
        if per_channel:
            ch = self.channel[layer.index]
            args += [ch.consts["scale"], ch.consts["lo"]]
        else:
            args += [present["scale"], present["zero"]]
        sink, recent = self.float_args(present)
        args += sink
        if k:
            args += [present["outlier_values"], present["outlier_index"]]
        args += recent
        spec = dict(bits=self._bits(cache), d=cache.head_dim, per_channel=per_channel, sinks=self.sinks, k=k,
                    table=self._table(layer, cache))
        if self.recent:  # (absent without a window: the kernels' printed attributes stay as they were)
            spec["recent"] = self.recent
        # the parameters ride on the kernel so the llvm backend can rebuild it inside the
        # attention that reads it (the cache is then read at its packed size, once)
        return bb.emit_te(kq.dequant_te(**spec), *args, primfunc_name_hint="kv_dequant",
                          primfunc_attrs={kq.DEQUANT_ATTR: json.dumps(spec, sort_keys=True)})

    def _outliers(self, bb, x, cache: Cache, k: int, ch):
        """Values (float16) and channel indices ``[B,T,k]`` of each token row's top-k entries:
        farthest outside the channel's range (``ch``, per-channel keys), else largest ``|x|``."""
        b, h, t, d = x.ty.shape
        if ch is not None:
            mid = relax.const(((ch.lo + ch.hi) / 2)[None, :, None, :].astype(np.float32))
            half = (ch.hi - ch.lo) / 2
            inv_half = relax.const(np.where(half > 0, 1 / np.where(half > 0, half, 1), 0)[None, :, None, :].astype(np.float32))
            score = O.multiply(O.abs(O.subtract(x, mid)), inv_half)
        else:
            score = O.abs(x)

        def rows(e):
            return O.reshape(O.permute_dims(e, [0, 2, 1, 3]), [b, t, h * d])

        idx = bb.emit(O.topk(rows(score), k, axis=-1, ret_type="indices", largest=True, dtype="int64"))
        vals = bb.emit(O.astype(O.gather_elements(rows(x), idx, axis=-1), "float16"))
        idx = bb.emit(O.astype(idx, kq.index_dtype(cache.heads * cache.head_dim)))
        return [vals, idx]

    # -- report -------------------------------------------------------------

    def layout(self) -> dict:
        """Cache bytes per token before/after (all layers, scales, outliers and sinks included)."""
        c = self.c
        f16 = per_tok = sinks = recent = consts = 0
        for L in self.layers:
            for cache in (L.key, L.value):
                f16 += cache.heads * cache.head_dim * 2
                tok, sink, window = self.bytes_of(cache)
                per_tok, sinks, recent = per_tok + tok, sinks + sink, recent + window
                if self._per_channel(cache):  # zero and scale (+ mid, 1/half with outliers), float32
                    consts += (4 if self._k(cache) else 2) * cache.heads * cache.head_dim * 4
                if c.nuq:  # the layer's level table, float32
                    consts += (1 << self._bits(cache)) * 4
        fixed = sinks + recent + consts
        k = self._k(self.layers[0].key)
        return {
            "layers": len(self.layers), "kv_heads": self.layers[0].key.heads, "head_dim": self.layers[0].key.head_dim,
            "bits": c.bits, "value_bits": c.value_bits or c.bits, "keys": c.keys,
            "rotated": self.rotated_roles(),
            "datatype": ("non-uniform per layer (Fisher-weighted k-means)" if c.fisher else
                         "non-uniform per layer (k-means)") if c.nuq else "uniform", "sinks": c.sinks, "recent": c.recent, "outliers": c.outliers, "outliers_per_token_row": k,
            "clip_percentile": None if c.keys == "per-token" else (c.clip or "least squared error per channel"),
            "float16_bytes_per_token": f16, "float32_bytes_per_token": 2 * f16,
            "bytes_per_token": per_tok, "fixed_bytes": fixed, "sink_bytes": sinks, "recent_bytes": recent, "constant_bytes": consts,
            "bytes_per_token_at_512": per_tok + fixed / 512,
            "bytes_per_token_at_4096": per_tok + fixed / 4096,
            "ratio_to_float16_at_512": f16 / (per_tok + fixed / 512),
        }
