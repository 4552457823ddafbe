"""Block floating point (BFP) and MX integer formats: the exact formula, a NumPy reference
and the TE kernels the ``bfp`` pass emits.

A vector is cut into blocks of ``B`` consecutive values along its last axis. A block stores
one 8-bit exponent ``e`` (biased by 127, like a float32 exponent field) and ``B`` signed
``m``-bit significands ``q`` (two's complement, sign bit included)::

    e  = clip(max over the block of the float32 exponent field of x, m, 254)
    q  = clip(rint(x * 2^(125 + m - e)), -(2^(m-1) - 1), 2^(m-1) - 1)     round half to even
    x' = q * 2^(e - 127 - (m - 2))

The block's largest magnitude, in ``[2^E, 2^(E+1))`` with ``E = e - 127``, maps to
``[2^(m-2), 2^(m-1))``; rounding up to ``2^(m-1)`` saturates. This is the OCP MX rule for
integer elements (an E8M0 shared scale ``2^E``, elements with an implicit ``2^-(m-2)``):
**MXINT8** is ``m = 8, B = 32``, the 4-bit MX integer format ``m = 4, B = 32``. **BFP16**
(8-bit significands) and **BFP12** (4-bit) are the formats of Trukhanov & Soloveychik (2024),
at any block size.

* The exponent field is read from the float32 bits (no ``log2``), so the reference and the
  kernels agree bit for bit; zeros and subnormals have field 0.
* The floor ``m`` on ``e`` only matters for blocks whose largest magnitude is below
  ``2^(m-127)`` (about 1e-36): it keeps both powers of two normal float32 numbers, so both
  multiplications are exact. The ceiling 254 makes ``inf`` saturate; ``NaN`` inputs are not
  defined (the pass refuses NaN weights).
* **Storage is packed**: significands like :mod:`qcompile.passes.kvcache.kvquant` codes (runs of 8 in
  ``m`` bytes, little-endian bit stream), exponents one ``uint8`` per block, so a vector of
  ``D`` values takes ``D*m/8 + D/B`` bytes (BFP12 at B = 32: 34 bytes for 64 values,
  float16: 128).
"""
from __future__ import annotations

import numpy as np
from tvm import te, tirx

from qcompile.errors import QCompileError
from qcompile.passes.kvcache.kvquant import float_buffers, pack_ref, pack_te, unpack_ref, unpacked_te

BITS = (3, 4, 5, 6, 7, 8)

FORMATS = {  # name -> (significand bits, block or None: the pass's block option)
    "bfp16": (8, None),
    "bfp12": (4, None),
    "mxint8": (8, 32),
    "mxint4": (4, 32),
}


def format_bits(name: str, block: int) -> tuple[int, int]:
    """``(m, B)`` of a named format (``bfp16``, ``bfp12``, ``mxint8``, ``mxint4``)."""
    if name not in FORMATS:
        raise QCompileError(f"bfp: unknown format '{name}'", hint=f"choose one of {', '.join(FORMATS)}")
    bits, fixed = FORMATS[name]
    return bits, fixed or block


def check_layout(d: int, bits: int, block: int, what: str = "vector") -> None:
    if bits not in BITS:
        raise QCompileError(f"bfp: {bits}-bit significands are not supported", hint=f"choose one of {BITS}")
    if block < 1 or d % block:
        raise QCompileError(f"bfp: block size {block} does not divide the {what} length {d}",
                            hint="choose a block that divides it: option 'block' of pass 'bfp' "
                                 "(a recipe, or qc.pipeline('bfp', {'bfp': {'block': 16}}))")
    if d % 8:
        raise QCompileError(f"bfp: the {what} length {d} is not a multiple of 8; significands are packed in runs of 8")


def bytes_per_vector(d: int, bits: int, block: int) -> int:
    return d * bits // 8 + d // block


def qmax(bits: int) -> int:
    return (1 << (bits - 1)) - 1


# ----------------------------------------------------------------------------- NumPy reference


def _pow2(k: np.ndarray) -> np.ndarray:
    """``2^k`` as float32, exactly, for integer ``-126 <= k <= 127``."""
    return ((np.asarray(k, np.int64) + 127).astype(np.uint32) << np.uint32(23)).view(np.float32)


def exponents_ref(x: np.ndarray, bits: int, block: int) -> np.ndarray:
    x = np.ascontiguousarray(x, np.float32)
    field = ((x.view(np.uint32) >> np.uint32(23)) & np.uint32(255)).astype(np.int32)
    field = field.reshape(*x.shape[:-1], x.shape[-1] // block, block).max(-1)
    return np.clip(field, bits, 254).astype(np.uint8)


def significands_ref(x: np.ndarray, e: np.ndarray, bits: int, block: int) -> np.ndarray:
    """Signed significands (int8) of ``x`` given its block exponents ``e``."""
    x = np.asarray(x, np.float32)
    s = np.repeat(_pow2(125 + bits - e.astype(np.int64)), block, axis=-1)
    return np.clip(np.rint(x * s), -qmax(bits), qmax(bits)).astype(np.int8)


def quantize_ref(x: np.ndarray, bits: int, block: int) -> tuple[np.ndarray, np.ndarray]:
    """``(packed significands uint8 [.., D*m/8], exponents uint8 [.., D/B])``."""
    e = exponents_ref(x, bits, block)
    q = significands_ref(x, e, bits, block)
    codes = (q.astype(np.int16) & ((1 << bits) - 1)).astype(np.uint8)
    return pack_ref(codes, bits), e


def dequantize_ref(packed: np.ndarray, e: np.ndarray, bits: int, block: int) -> np.ndarray:
    codes = unpack_ref(packed, bits).astype(np.int16)
    q = np.where(codes >= 1 << (bits - 1), codes - (1 << bits), codes)
    s = np.repeat(_pow2(e.astype(np.int64) - 127 - bits + 2), block, axis=-1)
    return (q.astype(np.float32) * s).astype(np.float32)


def qdq_ref(x: np.ndarray, bits: int, block: int) -> np.ndarray:
    return dequantize_ref(*quantize_ref(x, bits, block), bits, block)


def block_errors(x: np.ndarray, bits: int, block: int) -> dict:
    """Error statistics of storing ``x`` (last axis in blocks): percentiles over blocks of
    the per-block relative error ``||x - x'|| / ||x||``, the share of nonzero entries
    flushed to zero, and the overall relative error."""
    x = np.asarray(x, np.float32)
    xq = qdq_ref(x, bits, block)
    err = (xq - x).reshape(-1, block).astype(np.float64)
    xb = x.reshape(-1, block).astype(np.float64)
    norm = np.linalg.norm(xb, axis=-1)
    keep = norm > 0
    rel = np.linalg.norm(err, axis=-1)[keep] / norm[keep]
    flushed = ((xq == 0) & (x != 0)).mean()
    return {
        "relative_error": float(np.linalg.norm(err) / max(np.linalg.norm(xb), 1e-300)),
        "block_relative_error_p50": float(np.percentile(rel, 50)),
        "block_relative_error_p90": float(np.percentile(rel, 90)),
        "block_relative_error_p99": float(np.percentile(rel, 99)),
        "block_relative_error_max": float(rel.max()),
        "flushed_to_zero": float(flushed),
    }


# ----------------------------------------------------------------------------- TE kernels


def _exponents(x, bits: int, block: int, name: str):
    *lead, d = x.shape
    nb = int(d) // block
    r = te.reduce_axis((0, block), name="rb")

    def field(*i):
        *li, j = i
        v = tirx.reinterpret("uint32", x[(*li, j * block + r)])
        return te.max(((v >> tirx.const(23, "uint32")) & tirx.const(255, "uint32")).astype("int32"), axis=r)

    f = te.compute([*lead, nb], field, name=f"{name}_field")
    return te.compute([*lead, nb], lambda *i: tirx.max(tirx.min(f[i], 254), bits).astype("uint8"),
                      name=f"{name}_exponent")


def _pow2_te(k):
    """``2^k`` (float32) for an int32 ``k`` in the normal range, built from its bits."""
    return tirx.reinterpret("float32", ((k + tirx.const(127, "int32")) << tirx.const(23, "int32")).astype("uint32"))


def _significand(x, e, bits: int):
    k = tirx.const(125 + bits, "int32") - e.astype("int32")
    q = tirx.round(x * _pow2_te(k))
    lim = tirx.const(float(qmax(bits)), "float32")
    return tirx.max(tirx.min(q, lim), -lim)


def _value(q, e, bits: int):
    return q * _pow2_te(e.astype("int32") - tirx.const(bits - 2, "int32") - tirx.const(127, "int32"))


def quant_te(bits: int, block: int):
    """``x [.., D] f32 -> (packed [.., D*m/8] u8, exponents [.., D/B] u8)``."""
    def f(x):
        shape = list(x.shape)
        e = _exponents(x, bits, block, "bfp")

        def code(*i):
            *li, c = i
            q = _significand(x[(*li, c)], e[(*li, c // block)], bits).astype("int64")
            return q & tirx.const((1 << bits) - 1, "int64")

        return pack_te(code, shape, bits, "bfp_pack"), e
    return f


def dequant_te(bits: int, block: int, sinks: int = 0, recent: int = 0):
    """``(packed [.., D*m/8] u8, exponents [.., D/B] u8[, sink [B,H,S,D] f16][, recent
    [B,H,R,D] f16]) -> [.., D] f32``; on a ``[B, H, N, *]`` cache the first ``sinks``
    positions read the float16 sink buffer and the last ``recent`` the recent-window buffer
    instead (:func:`~qcompile.passes.kvcache.kvquant.float_buffers`)."""
    def f(packed, e, *buffers):
        *lead, w = packed.shape
        d = int(w) * 8 // bits
        code = unpacked_te(packed, bits)
        sink = buffers[0] if sinks else None
        window = buffers[-1] if recent else None

        def at(*i):
            *li, c = i
            u = code(*li, c)
            q = u - tirx.Select(u >= tirx.const(1 << (bits - 1), "int64"), tirx.const(1 << bits, "int64"),
                                tirx.const(0, "int64"))
            v = _value(q.astype("float32"), e[(*li, c // block)], bits)
            if sinks or recent:
                b, h, n = li
                v = float_buffers(v, b, h, n, c, lead[2], sink, sinks, window, recent)
            return v

        return te.compute([*lead, d], at, name="bfp_dequant")
    return f


def qdq_te(bits: int, block: int):
    """``x [.., D] f32 -> [.., D] f32``: quantize and dequantize in one kernel (activations
    entering a matmul, as a BFP matmul unit would read them)."""
    def f(x):
        e = _exponents(x, bits, block, "bfp_qdq")

        def at(*i):
            *li, c = i
            eb = e[(*li, c // block)]
            return _value(_significand(x[i], eb, bits), eb, bits)

        return te.compute(list(x.shape), at, name="bfp_qdq")
    return f
