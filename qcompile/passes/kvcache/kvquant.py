"""Kernels of the packed low-bit KV cache (KVQuant), each with its NumPy reference.

Layout: cache tensors are ``[B, H, N, D]`` (batch, KV heads, tokens, head_dim), as the
exported decoders concatenate them. ``bits`` is 2, 3, 4 or 8.

* **Codes** are unsigned, ``0 .. L`` with ``L = 2^bits - 1``:
  ``code = clip(rint((x - zero) * inv), 0, L)``, round half to even, ``inv = 1/scale``
  (0 where ``scale`` is 0), all in float32; dequantized ``x' = code * scale + zero``.
* **Packing**: a head vector's ``D`` codes take exactly ``W = D * bits / 8`` bytes (``D``
  a multiple of 8): the cache really is ``bits/16`` of a float16 cache plus its scales.

  * ``bits`` dividing 8 (2, 4, 8; 1 for BFP significands) is **planar**: the vector is cut
    into ``8 / bits`` slices of ``W`` codes and slice ``s`` fills bits ``s*bits ..
    s*bits+bits-1`` of every byte, so code ``d`` is in byte ``d % W`` at bit ``(d // W) *
    bits``. A run of consecutive codes reads consecutive bytes with one shift, which
    vectorizes (decoding a 16-lane vector is one 16-byte load, a shift and a mask; the
    interleaved layout this replaced, code ``d`` in byte ``d * bits // 8``, needed a
    per-lane gather and a per-lane shift), and for 4-bit codes RoPE's rotate-half partners
    ``d`` and ``d + D/2`` share a byte;
  * 3 bits (codes straddle bytes): each run of 8 codes becomes 3 bytes, little-endian bit
    order: code ``i`` of the run occupies bits ``3i .. 3i+2`` of the 24-bit word
    ``sum_r byte_r << 8r``.
* **Per-channel** (keys, KVQuant): ``zero``/``scale`` per (head, channel), calibrated offline,
  constants of the graph.
* **Per-token** (values; the per-token-key baseline): ``zero = f16(min)``,
  ``scale = f16((max - zero) / L)`` over each head vector, computed at run time and stored
  next to the codes as float16 (the kernel quantizes with the stored, rounded values, so
  dequantization sees exactly what was used). Entries flagged as outliers are left out of
  the min/max.
* **Non-uniform** (``table``, KVQuant's nuq): ``2^bits`` sorted levels ``t`` in level units
  (uniform: ``t_j = j``) from k-means on calibration data; ``code = #{j: u > (t_j + t_j+1)/2}``
  with ``u = (x - zero) * inv``, dequantized ``t[code] * scale + zero``.
* **Outliers** (dense-and-sparse): per token, the ``k`` entries of the layer's row
  (``H * D`` channels) with the largest score are kept exactly (float16) in a side buffer
  ``[B, N, k]`` of values and channel indices ``h * D + d``; dequantization puts them back.
* **Sinks**: the first ``S`` cache positions are also kept in float16 (``[B, H, S, D]``)
  and take precedence over the codes.
* **Recent window** (KIVI, KVQuant's dense recent tokens): the last ``R`` positions are also
  kept in float16, in a fixed ``[B, H, R, D]`` buffer whose row ``R - 1`` is the newest
  position (rows before the cache's first position are unused); they take precedence over
  the codes. Every token is packed on arrival, so the codes of a position leaving the
  window are the ones it had on arrival: storing them then or when they leave is the same.

The TE kernels below are what the ``kv-prerope`` pass emits; ``tests/test_kv_prerope.py``
checks them bit for bit against the ``*_ref`` functions.
"""
from __future__ import annotations

import numpy as np
from tvm import te, tirx

BITS = (2, 3, 4, 8)


def levels(bits: int) -> int:
    return (1 << bits) - 1


def packed_width(d: int, bits: int) -> int:
    return d * bits // 8


def check_layout(d: int, bits: int) -> None:
    from qcompile.errors import QCompileError

    if bits not in BITS:
        raise QCompileError(f"cache bit width {bits} is not supported", hint=f"choose one of {BITS}")
    if d % 8:
        raise QCompileError(f"head_dim {d} is not a multiple of 8; codes are packed in runs of 8")


def index_dtype(channels: int) -> str:
    return "uint8" if channels <= 256 else "uint16"


# ----------------------------------------------------------------------------- NumPy references


def codes_ref(x: np.ndarray, zero: np.ndarray, inv: np.ndarray, bits: int, table=None) -> np.ndarray:
    x, zero, inv = (np.asarray(a, np.float32) for a in (x, zero, inv))
    u = (x - zero) * inv
    if table is None:
        return np.clip(np.rint(u), 0, levels(bits)).astype(np.uint8)
    mids = midpoints(table)
    return (u[..., None] > mids).sum(-1).astype(np.uint8)


def midpoints(table) -> np.ndarray:
    t = np.asarray(table, np.float32)
    return ((t[:-1] + t[1:]) * np.float32(0.5)).astype(np.float32)


def kmeans_levels(u: np.ndarray, weight: np.ndarray, bits: int, iters: int = 60) -> np.ndarray:
    """Weighted 1-D k-means (Lloyd) of normalized values ``u`` in level units ``[0, L]``:
    the ``2^bits`` sorted levels of a non-uniform datatype (KVQuant's per-layer nuq),
    started from the uniform grid."""
    u, w = np.asarray(u, np.float64).ravel(), np.asarray(weight, np.float64).ravel()
    keep = w > 0
    u, w = u[keep], w[keep]
    c = np.arange(levels(bits) + 1, dtype=np.float64)
    for _ in range(iters):
        k = np.searchsorted((c[:-1] + c[1:]) / 2, u)
        num = np.bincount(k, w * u, len(c))
        den = np.bincount(k, w, len(c))
        new = np.where(den > 0, num / np.maximum(den, 1e-300), c)
        new = np.sort(new)
        if np.allclose(new, c, atol=1e-7):
            break
        c = new
    return c.astype(np.float32)


def pack_ref(codes: np.ndarray, bits: int) -> np.ndarray:
    *lead, d = codes.shape
    if 8 % bits == 0:  # planar: slice s of the vector in bits s*bits.. of every byte
        per = 8 // bits
        sl = codes.reshape(*lead, per, d // per).astype(np.uint16)
        out = np.zeros((*lead, d // per), np.uint16)
        for s in range(per):
            out |= sl[..., s, :] << np.uint16(s * bits)
        return out.astype(np.uint8)
    runs = codes.reshape(*lead, d // 8, 8).astype(np.uint64)
    word = np.zeros(runs.shape[:-1], np.uint64)
    for i in range(8):
        word |= runs[..., i] << np.uint64(i * bits)
    out = np.stack([(word >> np.uint64(8 * r)) & np.uint64(255) for r in range(bits)], -1)
    return out.reshape(*lead, d * bits // 8).astype(np.uint8)


def unpack_ref(packed: np.ndarray, bits: int) -> np.ndarray:
    *lead, w = packed.shape
    if 8 % bits == 0:
        return np.concatenate([(packed >> np.uint8(s * bits)) & np.uint8(levels(bits)) for s in range(8 // bits)],
                              -1).astype(np.uint8)
    groups = packed.reshape(*lead, w // bits, bits).astype(np.uint64)
    word = np.zeros(groups.shape[:-1], np.uint64)
    for r in range(bits):
        word |= groups[..., r] << np.uint64(8 * r)
    out = np.stack([(word >> np.uint64(i * bits)) & np.uint64(levels(bits)) for i in range(8)], -1)
    return out.reshape(*lead, w // bits * 8).astype(np.uint8)


def outlier_mask_ref(shape, idx: np.ndarray | None) -> np.ndarray:
    """``[B, H, T, D]`` booleans: which entries the side buffer ``idx`` ``[B, T, k]`` holds."""
    b, h, t, d = shape
    mask = np.zeros((b, t, h * d), bool)
    if idx is not None:
        np.put_along_axis(mask, idx.astype(np.int64), True, axis=-1)
    return mask.reshape(b, t, h, d).transpose(0, 2, 1, 3)


def token_params_ref(x: np.ndarray, bits: int, idx: np.ndarray | None = None, table=None):
    """Per-token (per head vector) ``zero``, ``scale`` (float16) and ``inv`` (float32)."""
    x = np.asarray(x, np.float32)
    m = outlier_mask_ref(x.shape, idx)
    lo = np.where(m, np.inf, x).min(-1, keepdims=True)
    hi = np.where(m, -np.inf, x).max(-1, keepdims=True)
    lo, hi = np.where(lo > hi, 0, lo), np.where(lo > hi, 0, hi)
    zero = lo.astype(np.float16)
    scale = ((hi - zero.astype(np.float32)) / np.float32(levels(bits))).astype(np.float16)
    s32 = scale.astype(np.float32)
    inv = np.where(s32 > 0, np.float32(1) / np.where(s32 > 0, s32, 1), 0).astype(np.float32)
    return zero, scale, inv


def dequant_ref(codes: np.ndarray, scale: np.ndarray, zero: np.ndarray, sink: np.ndarray | None = None,
                out_val: np.ndarray | None = None, out_idx: np.ndarray | None = None, table=None,
                recent: np.ndarray | None = None) -> np.ndarray:
    level = codes.astype(np.float32) if table is None else np.asarray(table, np.float32)[codes]
    x = level * np.asarray(scale, np.float32) + np.asarray(zero, np.float32)
    if out_idx is not None and out_idx.shape[-1]:
        b, h, n, d = x.shape
        rows = x.transpose(0, 2, 1, 3).reshape(b, n, h * d)
        np.put_along_axis(rows, out_idx.astype(np.int64), out_val.astype(np.float32), axis=-1)
        x = rows.reshape(b, n, h, d).transpose(0, 2, 1, 3)
    return float_buffers_ref(x, sink, recent)


def float_buffers_ref(x: np.ndarray, sink: np.ndarray | None, recent: np.ndarray | None) -> np.ndarray:
    """``x [B,H,N,D]`` with the first positions read from the sink buffer and the last from
    the recent-window buffer (its last ``min(R, N)`` rows)."""
    x = np.array(x, np.float32)
    n = x.shape[2]
    if recent is not None and recent.shape[2]:
        r = min(recent.shape[2], n)
        x[:, :, n - r:] = recent[:, :, recent.shape[2] - r:].astype(np.float32)
    if sink is not None:
        s = min(sink.shape[2], n)
        x[:, :, :s] = sink[:, :, :s].astype(np.float32)
    return np.ascontiguousarray(x)


def outliers_ref(score: np.ndarray, x: np.ndarray, k: int):
    """Top-``k`` entries of each token's row by ``score`` (both ``[B, H, T, D]``): float16
    values and channel indices ``[B, T, k]`` (ties: lower index first)."""
    b, h, t, d = x.shape
    rows = lambda a: a.transpose(0, 2, 1, 3).reshape(b, t, h * d)  # noqa: E731
    idx = np.argsort(-rows(score), axis=-1, kind="stable")[..., :k]
    val = np.take_along_axis(rows(x), idx, -1).astype(np.float16)
    return val, idx.astype(index_dtype(h * d))


def recent_update_ref(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """The recent-window buffer after appending ``new``: the last ``R`` rows of
    ``concat(old, new)`` on the token axis, float16."""
    r = old.shape[2]
    return np.concatenate([old, new.astype(old.dtype)], 2)[:, :, -r:] if r else old.copy()


def sink_update_ref(old: np.ndarray, new: np.ndarray, past: int) -> np.ndarray:
    out = old.copy()
    s, t = old.shape[2], new.shape[2]
    for j in range(max(past, 0), min(s, past + t)):
        out[:, :, j] = new[:, :, j - past].astype(old.dtype)
    return out


# ----------------------------------------------------------------------------- TE kernels


def _code(x, zero, inv, bits, table=None):
    u = (x - zero) * inv
    if table is not None:  # non-uniform: the number of level midpoints below u
        code = tirx.const(0, "int64")
        for m in midpoints(table):
            code = code + tirx.Select(u > tirx.const(float(m), "float32"), tirx.const(1, "int64"), tirx.const(0, "int64"))
        return code
    v = tirx.round(u)
    return tirx.max(tirx.min(v, tirx.const(levels(bits), "float32")), tirx.const(0, "float32")).astype("int64")


def _level(code, table):
    """The level (float32) of an int64 code: the code itself, or the table entry."""
    if table is None:
        return code.astype("float32")
    v = tirx.const(float(table[0]), "float32")
    for j in range(1, len(table)):
        v = tirx.Select(code == tirx.const(j, "int64"), tirx.const(float(table[j]), "float32"), v)
    return v


def pack_te(code_at, shape, bits, name):
    """``shape[:-1] + [D*bits/8]`` uint8 from ``code_at(*lead, d) -> int64``."""
    *lead, d = shape

    if 8 % bits == 0:  # planar
        w = packed_width(int(d), bits)

        def planar(*i):
            *li, j = i
            byte = code_at(*li, j)
            for s in range(1, 8 // bits):
                byte = byte | (code_at(*li, j + s * w) << tirx.const(s * bits, "int64"))
            return byte.astype("uint8")

        return te.compute([*lead, w], planar, name=name)

    def f(*i):
        *li, j = i
        g, r = j // bits, j % bits
        word = code_at(*li, g * 8)
        for c in range(1, 8):
            word = word | (code_at(*li, g * 8 + c) << tirx.const(c * bits, "int64"))
        return ((word >> (r * 8).astype("int64")) & tirx.const(255, "int64")).astype("uint8")

    return te.compute([*lead, packed_width(d, bits)], f, name=name)


def unpacked_te(packed, bits):
    """``(*lead, d) -> int64`` code reader of a packed tensor. Where ``bits`` divides 8
    (1, 2, 4, 8; the planar layout), code ``d`` is bits ``(d // W) * bits`` of byte
    ``d % W``, read with one 32-bit shift and mask."""
    if 8 % bits == 0:
        w = int(packed.shape[-1])

        def one_byte(*i):
            *li, d = i
            if bits == 8:
                return packed[(*li, d)].astype("int64")
            byte = packed[(*li, d % w)].astype("int32")
            # ``% (8 // bits)`` changes nothing for d < D; it bounds the shift for TVM's
            # simplifier, which otherwise folds a later ``code >= 2^(bits-1)`` to false
            # (BFP's sign test) when it does not know the range of ``d``
            shift = ((d // w) % (8 // bits)) * bits
            return ((byte >> shift.astype("int32")) & tirx.const(levels(bits), "int32")).astype("int64")
        return one_byte

    def at(*i):
        *li, d = i
        g, c = d // 8, d % 8
        word = packed[(*li, g * bits)].astype("int64")
        for r in range(1, bits):
            word = word | (packed[(*li, g * bits + r)].astype("int64") << tirx.const(8 * r, "int64"))
        return (word >> (c * bits).astype("int64")) & tirx.const(levels(bits), "int64")
    return at


def _outlier_at(idx, k, d):
    """``(b, h, t, dd) -> bool``: the entry is in the side buffer."""
    def at(b, h, t, dd):
        ch = (h * d + dd).astype(idx.dtype)
        hit = idx[b, t, 0] == ch
        for j in range(1, k):
            hit = tirx.Or(hit, idx[b, t, j] == ch)
        return hit
    return at


def quant_channel_te(bits: int, table=None):
    """``(x [B,H,T,D] f32, zero [H,D] f32, inv [H,D] f32) -> packed [B,H,T,D*bits/8] u8``;
    ``table``: the levels of a non-uniform datatype (in level units), else uniform."""
    def f(x, zero, inv):
        def code(b, h, t, d):
            return _code(x[b, h, t, d], zero[h, d], inv[h, d], bits, table)
        return pack_te(code, list(x.shape), bits, "kv_pack_channel")
    return f


def quant_token_te(bits: int, k: int = 0, table=None):
    """``(x [B,H,T,D] f32[, idx [B,T,k]]) -> (packed u8, scale f16 [B,H,T,1], zero f16 [B,H,T,1])``;
    outlier entries (``idx``) are left out of the min/max."""
    def f(x, *idx):
        b_, h_, t_, d_ = x.shape
        out = _outlier_at(idx[0], k, int(d_)) if k else None
        rd = te.reduce_axis((0, d_), name="rd")
        big = tirx.const(3.0e38, "float32")

        def kept(v, b, h, t, d, fill):
            return v if out is None else tirx.Select(out(b, h, t, d), fill, v)

        lo = te.compute((b_, h_, t_, 1), lambda b, h, t, _: te.min(kept(x[b, h, t, rd], b, h, t, rd, big), axis=rd),
                        name="kv_min")
        rd2 = te.reduce_axis((0, d_), name="rd2")
        hi = te.compute((b_, h_, t_, 1), lambda b, h, t, _: te.max(kept(x[b, h, t, rd2], b, h, t, rd2, -big), axis=rd2),
                        name="kv_max")
        empty = lambda b, h, t: lo[b, h, t, 0] > hi[b, h, t, 0]  # noqa: E731
        zero = te.compute((b_, h_, t_, 1), lambda b, h, t, _: tirx.Select(
            empty(b, h, t), tirx.const(0, "float32"), lo[b, h, t, 0]).astype("float16"), name="kv_zero")
        scale = te.compute((b_, h_, t_, 1), lambda b, h, t, _: tirx.Select(
            empty(b, h, t), tirx.const(0, "float32"),
            (hi[b, h, t, 0] - zero[b, h, t, 0].astype("float32")) / tirx.const(levels(bits), "float32")
        ).astype("float16"), name="kv_scale")

        def code(b, h, t, d):
            s = scale[b, h, t, 0].astype("float32")
            inv = tirx.Select(s > 0, tirx.const(1, "float32") / tirx.Select(s > 0, s, tirx.const(1, "float32")),
                              tirx.const(0, "float32"))
            return _code(x[b, h, t, d], zero[b, h, t, 0].astype("float32"), inv, bits, table)

        return pack_te(code, [b_, h_, t_, d_], bits, "kv_pack_token"), scale, zero
    return f


#: PrimFunc attribute of a ``kv_dequant`` kernel: its :func:`dequant_te` parameters (JSON)
DEQUANT_ATTR = "qcompile.kv_dequant"


def float_buffers(v, b, h, n, c, n_total, sink, sinks: int, recent, r: int):
    """A dequantized cache entry ``v`` at ``(b, h, n, c)`` of ``n_total`` positions, read from
    the float16 sink buffer for ``n < sinks`` and from the recent-window buffer for the last
    ``r`` positions (see :func:`float_buffers_ref`)."""
    if r:
        j = n - (n_total - r)
        v = tirx.if_then_else(j >= 0, recent[b, h, tirx.max(j, 0), c].astype("float32"), v)
    if sinks:
        v = tirx.if_then_else(n < sinks, sink[b, h, tirx.min(n, sinks - 1), c].astype("float32"), v)
    return v


def dequant_te(bits: int, d: int, per_channel: bool, sinks: int, k: int = 0, table=None, recent: int = 0):
    """Dequantize a packed cache ``[B,H,N,D*bits/8]`` to float32 ``[B,H,N,D]``.

    Arguments: ``packed``, then per channel ``scale [H,D]``, ``zero [H,D]`` (float32) or per
    token ``scale``, ``zero`` ``[B,H,N,1]`` (float16); then ``sink [B,H,S,D]`` f16 when
    ``sinks``; then ``out_val``, ``out_idx`` ``[B,N,k]`` when ``k``; then the recent window
    ``[B,H,R,D]`` f16 when ``recent``."""
    def f(packed, scale, zero, *rest):
        rest = list(rest)
        sink = rest.pop(0) if sinks else None
        val, idx = (rest.pop(0), rest.pop(0)) if k else (None, None)
        window = rest.pop(0) if recent else None
        b_, h_, n_, _ = packed.shape
        code = unpacked_te(packed, bits)

        def x(b, h, n, dd):
            c = _level(code(b, h, n, dd), table)
            if per_channel:
                v = c * scale[h, dd] + zero[h, dd]
            else:
                v = c * scale[b, h, n, 0].astype("float32") + zero[b, h, n, 0].astype("float32")
            for j in range(k):  # at most one index matches: idx holds distinct channels
                v = tirx.if_then_else(idx[b, n, j] == (h * d + dd).astype(idx.dtype), val[b, n, j].astype("float32"), v)
            return float_buffers(v, b, h, n, dd, n_, sink, sinks, window, recent)

        return te.compute((b_, h_, n_, d), x, name="kv_dequant")
    return f


def recent_update_te():
    """``(old [B,H,R,D] f16, new [B,H,T,D] f32) -> [B,H,R,D] f16``: the last ``R`` rows of
    ``concat(old, new)`` (:func:`recent_update_ref`)."""
    def f(old, new):
        r, t = old.shape[2], new.shape[2]

        def value(b, h, s, d):
            j = s + t - r  # row s of the result is row s + t of the concatenation
            return tirx.if_then_else(j >= 0, new[b, h, tirx.max(j, 0), d].astype("float16"),
                                     old[b, h, tirx.min(s + t, r - 1), d])
        return te.compute(old.shape, value, name="kv_recent_update")
    return f


def sink_update_te(per_row: bool = False):
    """``(old [B,H,S,D] f16, new [B,H,T,D] f32, at) -> [B,H,S,D] f16``: the cache positions of
    the new tokens that fall below ``S`` take them. ``at``: the past ``[B,H,P,*]`` (the new
    tokens at ``P .. P+T-1``), or with ``per_row`` each row's first position ``[B]`` int64 (a
    cache buffer with a length per row, onnxruntime's GroupQueryAttention)."""
    def f(old, new, at):
        t = new.shape[2]

        def value(b, h, s, d):
            p = at[b] if per_row else at.shape[2]
            j = tirx.max(tirx.min(s - p, t - 1), 0)
            return tirx.if_then_else(tirx.And(s >= p, s < p + t), new[b, h, j, d].astype("float16"), old[b, h, s, d])
        return te.compute(old.shape, value, name="kv_sink_update")
    return f
