"""Requantization shifts and clips in int32 lanes on x86.

Every dyadic requantization of ``int-only`` ends with ``clip((w + 2^(s-1)) >> s, lo, hi)``
on an int64 product ``w``, then a cast to the output type
(:func:`qcompile.passes.int_only.intops.requant_ref`). AVX2 has no 64-bit arithmetic right shift, minimum
or maximum, so LLVM emulates each of them on four lanes at a time: the shift as
``vpsrad, vpshufd, vpsrad, vpblendd`` and each clip bound as ``vpcmpgtq + vblendvpd``.

When ``s >= 32`` only the high half of ``w`` matters:

    w >> s  ==  int32(w >> 32) >> (s - 32)

exactly (an arithmetic shift is a floor division by a power of two, floor divisions
compose, and ``w >> 32`` of an int64 always fits in int32), and the result fits in int32,
so a clip to bounds within int32 gives the same value computed in int32. Taking the high
halves is one shuffle per eight lanes; the shift and both bounds are then one
``vpsrad``, ``vpminsd`` and ``vpmaxsd`` each per eight lanes.

This rewrite (llvm) replaces each such ``clip(right_shift(w, s), lo, hi)`` in ``main`` by
a kernel that computes it that way and widens the result back to int64, so the graph's
types are unchanged and the cast that follows narrows it as before. The integers are the
same, so the artifact stays bit-exact (tests compare it with the NumPy reference at the
int64 extremes); the graph that passes print is unchanged. The dyadic shifts of
``int-only`` are ``30 - floor(log2 m)`` for a real multiplier ``m``, so ``s >= 32`` exactly
where ``m < 1/2``.

Requantizations with ``s < 32`` (``m >= 1/2``) keep the int64 path. Both halves of ``w``
matter there; ``hi * 2^(32-s) + (lo >>> s)`` with ``hi`` clamped to ``±2^(s-1)`` computes the
same clip in int32 lanes for bounds well inside int32. It was tried (scratch): bit-exact at
the edges, but no faster on MiniLM b8 and slightly slower on DeiT-S b1, so it was not kept.

Analysis: :func:`find_shift_clips`; rewrite: :func:`narrow_requant_shifts`.
"""
from __future__ import annotations

import numpy as np
import tvm
from tvm import relax, te, tirx

from qcompile.ir import const_value
from qcompile.rewrite import rebuild_main

I32 = np.iinfo(np.int32)


def _op(value, name: str) -> bool:
    return isinstance(value, relax.Call) and getattr(value.op, "name", "") == f"relax.{name}"


def _int_bound(arg) -> int | None:
    """A clip bound: an ``IntImm`` (or a ``PrimValue`` holding one) as an int."""
    v = arg if isinstance(arg, tirx.IntImm) else getattr(arg, "value", None)
    return int(v) if isinstance(v, tirx.IntImm) else None


def _high_shift(value) -> int | None:
    """``s`` if ``value`` is ``right_shift(w, s)`` of an int64 tensor ``w`` by a scalar
    constant ``32 <= s <= 63``, else None."""
    if not _op(value, "right_shift"):
        return None
    w, s = value.args
    sv = const_value(s)
    t = w.ty
    if sv is None or sv.size != 1 or not (isinstance(t, relax.TensorType) and str(t.dtype) == "int64"):
        return None
    s = int(sv.reshape(()))
    return s if 32 <= s <= 63 else None


def find_shift_clips(func) -> dict:
    """Bindings of ``func`` that clip an int64 right shift by 32 to 63 bits to bounds
    within int32: ``{clip var: (shifted operand, s, lo, hi)}``."""
    shifts = {}
    for blk in func.body.blocks:
        for b in blk.bindings:
            s = _high_shift(b.value)
            if s is not None:
                shifts[b.var] = (b.value.args[0], s)
    found = {}
    for blk in func.body.blocks:
        for b in blk.bindings:
            v = b.value
            if not _op(v, "clip") or v.args[0] not in shifts:
                continue
            lo, hi = _int_bound(v.args[1]), _int_bound(v.args[2])
            if lo is None or hi is None or not (I32.min <= lo <= hi <= I32.max):
                continue
            found[b.var] = (*shifts[v.args[0]], lo, hi)
    return found


def shift_clip32_te(w: te.Tensor, s: int, lo: int, hi: int) -> te.Tensor:
    """``clip(w >> s, lo, hi)`` as int64 (``32 <= s <= 63``, ``lo``, ``hi`` within int32),
    with the shift and the clip in int32."""
    def f(*i):
        high = (w(*i) >> tirx.const(32, "int64")).astype("int32")
        v = high >> tirx.const(s - 32, "int32")
        return tirx.min(tirx.max(v, tirx.const(lo, "int32")), tirx.const(hi, "int32")).astype("int64")

    return te.compute(w.shape, f, name="shift_clip32")


def narrow_requant_shifts(mod) -> tuple[tvm.IRModule, int]:
    """``mod`` with every clip found by :func:`find_shift_clips` in ``main`` computed by
    :func:`shift_clip32_te`; returns it and how many were rewritten."""
    if not any(gv.name_hint == "main" for gv in mod.get_global_vars()):
        return mod, 0
    found = find_shift_clips(mod["main"])
    if not found:
        return mod, 0

    env: dict = {}  # the shifted operand is bound before the shift: read its re-emitted var

    def on_binding(bb, var, value):
        if var not in found:
            return None
        w, s, lo, hi = found[var]
        return bb.call_te(shift_clip32_te, env.get(w, w), s, lo, hi, primfunc_name_hint="shift_clip32")

    mod = rebuild_main(mod, on_binding, env=env)
    return relax.transform.DeadCodeElimination(["main"])(mod), len(found)
