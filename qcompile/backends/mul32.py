"""Requantization products as one 32 x 32 -> 64-bit multiply (``vpmuldq``) on x86.

Every dyadic requantization of ``int-only`` computes ``int64(x) * M`` with ``x`` an int32 (or
narrower) value widened to int64 and ``M`` an int64 constant below ``2^31``, per tensor or
per output channel (:func:`qcompile.passes.int_only.intops.requant_ref`). Both factors fit in 32 signed
bits, so the product is one ``vpmuldq`` per 4 lanes. LLVM picks ``vpmuldq`` only where it
can prove that both 64-bit operands are sign-extended 32-bit values; otherwise it emulates
the full 64 x 64 multiply with three ``vpmuludq`` and the shifts and adds to combine them.
It cannot prove it in the matmul epilogues:

* a per-channel ``M`` is a load from an int64 array, of unknown range;
* ``int64(acc + bias)`` is turned by LLVM itself into ``int64(acc) + int64(bias)`` (the
  int32 addition is ``nsw``), a sum of two 33-bit values, which may need 34 bits.

This rewrite (llvm) replaces each such ``multiply(astype(x, "int64"), M)`` in ``main``
by a kernel that states the ranges: ``M`` stored as int32 and widened on load, and ``x``
put through ``(v << 32) >> 32``, a sign extension from bit 31 that changes nothing for a
value that is already an int32 and that LLVM folds into ``vpmuldq``. The result is the same
int64 product, so the artifact stays bit-exact (the tests compare it with the NumPy
reference); the graph that passes print is unchanged.

Analysis: :func:`find_products`; rewrite: :func:`narrow_requant_products`.
"""
from __future__ import annotations

import numpy as np
import tvm
from tvm import relax, te

from qcompile.ir import const_value
from qcompile.rewrite import rebuild_main

NARROW = ("int8", "uint8", "int16", "uint16", "int32")  # astype sources whose int64 value fits 32 signed bits
I32 = np.iinfo(np.int32)


def _astype_source(value) -> bool:
    """``value`` is ``astype(x, "int64")`` of an ``x`` that fits in 32 signed bits."""
    if not (isinstance(value, relax.Call) and getattr(value.op, "name", "") == "relax.astype"):
        return False
    t = value.args[0].ty
    return (str(value.attrs.dtype) == "int64" and isinstance(t, relax.TensorType)
            and str(t.dtype) in NARROW)


def _narrow_const(expr) -> np.ndarray | None:
    """The constant's value as int32 if ``expr`` is an int64 constant within int32, else None."""
    v = const_value(expr)
    if v is None or v.dtype != np.int64 or v.size == 0 or v.min() < I32.min or v.max() > I32.max:
        return None
    return v.astype(np.int32)


def find_products(func) -> dict:
    """Bindings of ``func`` that multiply a widened 32-bit value by an int64 constant that
    fits in 32 bits: ``{var: (index of the widened operand, the constant as int32)}``."""
    widened = {b.var for blk in func.body.blocks for b in blk.bindings if _astype_source(b.value)}
    found = {}
    for blk in func.body.blocks:
        for b in blk.bindings:
            v = b.value
            if not (isinstance(v, relax.Call) and getattr(v.op, "name", "") == "relax.multiply"):
                continue
            for i in (0, 1):
                m = _narrow_const(v.args[1 - i])
                if v.args[i] in widened and m is not None:
                    found[b.var] = (i, m)
                    break
    return found


def _is_one(d) -> bool:
    return isinstance(d, (int, tvm.tirx.IntImm)) and int(d) == 1


def mul32_te(x: te.Tensor, m: te.Tensor) -> te.Tensor:
    """``x * int64(m)`` (``x`` int64 holding a 32-bit value, ``m`` int32, broadcast as
    ``multiply`` does; symbolic extents allowed), written so that LLVM sees two
    sign-extended 32-bit factors."""
    rank = max(len(x.shape), len(m.shape))
    xs, ms = ([1] * (rank - len(t.shape)) + list(t.shape) for t in (x, m))
    shape = [b if _is_one(a) else a for a, b in zip(xs, ms)]

    def at(t, idx):  # numpy broadcasting: a size-1 axis of t against a longer output axis reads index 0
        lead = len(idx) - len(t.shape)
        return t[tuple(0 if _is_one(d) and not _is_one(shape[lead + a]) else idx[lead + a]
                       for a, d in enumerate(t.shape))]

    def f(*idx):
        v = at(x, idx)
        sext = (v << tvm.tirx.const(32, "int64")) >> tvm.tirx.const(32, "int64")
        return sext * at(m, idx).astype("int64")

    return te.compute(shape, f, name="mul32")


def narrow_requant_products(mod) -> tuple[tvm.IRModule, int]:
    """``mod`` with every product found by :func:`find_products` in ``main`` computed by
    :func:`mul32_te`; returns it and how many were rewritten."""
    if not any(gv.name_hint == "main" for gv in mod.get_global_vars()):
        return mod, 0
    found = find_products(mod["main"])
    if not found:
        return mod, 0

    def on_binding(bb, var, value):
        if var not in found:
            return None
        i, m = found[var]
        return bb.call_te(mul32_te, value.args[i], relax.const(m), primfunc_name_hint="mul32")

    return rebuild_main(mod, on_binding), len(found)
