"""Converters that replace TVM 0.27's own for ONNX constructs it rejects on real exports.

TVM's frontend looks converters up through ``onnx_frontend._get_convert_map()`` at every
node; :func:`patched_converters` swaps in this module's classes for the duration of one
``from_onnx`` call (nothing global changes). Each class documents the construct, the
exporter that writes it and TVM's failure; each has a minimal-graph test in
``tests/test_frontend.py``.
"""
from __future__ import annotations

import contextlib

import numpy as np
import tvm
import tvm_ffi
from tvm.sym import Analyzer
from tvm import relax, tirx
from tvm.relax.frontend.onnx import onnx_frontend as F


class ConstantOfShape(F.ConstantOfShape):
    """``ConstantOfShape(shape=[], value=[v])``: a 0-d result. The ``value`` attribute is a
    one-element 1-D tensor; TVM broadcasts it as a 1-D constant to the empty shape and fails
    (``broadcast_to ... ndim 1 ... ndim 0``). Optimum's decoders write it for the scalar
    ``min`` of the causal mask."""

    @classmethod
    def _impl_v9(cls, bb, inputs, attr, params):
        value = attr.get("value")
        if value is not None:
            arr = F.get_numpy(value)
            if arr.size == 1 and arr.ndim:
                attr = dict(attr, value=_scalar_tensor(arr.reshape(())))
        return super()._impl_v9(bb, inputs, attr, params)


def _scalar_tensor(arr):
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(arr))


def _prim(x):
    """An integer scalar input as a PrimExpr (a dim expression or a constant), else None."""
    if tvm.ir.is_prim_expr(x):
        return x
    if isinstance(x, tvm.ir.GenericConst):
        v = x.value.numpy()
        if v.size == 1 and v.dtype.kind in "iu":
            return tirx.IntImm("int64", int(v.reshape(())))
    return None


def _nonnegative(analyzer, expr) -> bool:
    """Prove ``expr >= 0`` given that every dim variable in it is non-negative."""
    seen = []
    tvm_ffi.structural_walk(expr, lambda n: seen.append(n) if isinstance(n, tirx.Var) else None)
    for v in seen:
        analyzer.bind(v, tvm.ir.Range(tirx.IntImm("int64", 0), tirx.IntImm("int64", 1 << 62)))
    return analyzer.can_prove(expr >= tirx.IntImm("int64", 0))


class Range(F.Range):
    """``Range(start, limit, 1)`` over dim expressions (``arange(past, past + seq)``, the
    cache positions of every HF decoder). TVM computes the length at run time into a fresh
    variable (``range_len_0``), so the causal mask built from it no longer broadcasts
    against the scores (``seq`` vs ``range_len_0``) and every shape downstream is lost.
    Here the length is ``limit - start`` simplified symbolically: ``seq``."""

    @classmethod
    def _impl_v12(cls, bb, inputs, attr, params):
        start, limit, delta = (_prim(F.get_constant(i, params)) for i in inputs)
        dyn = [i for i in inputs if not isinstance(i, tvm.ir.GenericConst)]
        if dyn and all(v is not None for v in (start, limit, delta)) and isinstance(delta, tirx.IntImm) and int(delta) == 1:
            an = Analyzer()
            count = an.simplify(tirx.Cast("int64", limit) - tirx.Cast("int64", start))
            if _nonnegative(an, count):
                dtype = _dtype(inputs[0])
                pos = relax.op.arange(0, count, 1, "int64")
                out = relax.op.add(pos, relax.op.reshape(
                    relax.op.shape_to_tensor(relax.ShapeExpr([tirx.Cast("int64", start)])), ()))
                return out if dtype == "int64" else relax.op.astype(out, dtype)
        return super()._impl_v12(bb, inputs, attr, params)


def _dtype(x) -> str:
    if tvm.ir.is_prim_expr(x):
        return str(x.ty.dtype)
    return str(x.ty.dtype)


class Gather(F.Gather):
    """``Gather(Shape(x), i)`` where ``x``'s shape is only known at run time: TVM asks for
    ``shape_of`` of the shape value itself and fails (``shape_of expects a tensor input``).
    The shape value becomes an int64 tensor first, as ONNX defines it."""

    @classmethod
    def _impl_v13(cls, bb, inputs, attr, params):
        data = inputs[0]
        if not isinstance(data, relax.ShapeExpr) and isinstance(getattr(data, "ty", None), relax.ShapeType):
            inputs = [bb.normalize(relax.op.shape_to_tensor(data)), *inputs[1:]]
        return super()._impl_v13(bb, inputs, attr, params)


class Expand(F.Expand):
    """``Expand(x, const_shape)`` with symbolic dims in ``x`` (GPT-J's positions expanded
    over its sin/cos table): TVM's constant-shape path reads every dim of ``x`` as an
    integer (``'Var' object has no attribute 'value'``); its shape-expression path applies
    the same ONNX broadcasting rules to symbolic dims, so the constant goes there."""

    @classmethod
    def _impl_v13(cls, bb, inputs, attr, params):
        data, shape = inputs[0], inputs[1]
        dims = getattr(getattr(data, "ty", None), "shape", None)
        if isinstance(shape, tvm.ir.GenericConst) and isinstance(dims, relax.ShapeExpr) \
                and not all(isinstance(d, tirx.IntImm) for d in dims.values):
            target = shape.value.numpy().reshape(-1).tolist()
            inputs = [data, relax.ShapeExpr([tirx.IntImm("int64", int(v)) for v in target]), *inputs[2:]]
        return super()._impl_v13(bb, inputs, attr, params)


class Tile(F.Tile):
    """``Tile(x, const repeats)``: TVM emits a TIR kernel (``call_tir(topi.tile)``) whose
    output shape is frozen at import; the Relax ``tile`` op keeps it an operator that the
    analyses follow as data movement and that re-runs on other shapes (GPT-J's sin/cos
    tables, re-made for the cached positions by kv-prerope)."""

    @classmethod
    def _impl_v13(cls, bb, inputs, attr, params):
        reps = F.get_constant(inputs[1], params)
        if isinstance(reps, tvm.ir.GenericConst):
            return relax.op.tile(inputs[0], [int(r) for r in reps.value.numpy().reshape(-1)])
        return super()._impl_v13(bb, inputs, attr, params)


def _refine_broadcast(bb, inputs):
    """Broadcasting operands, with every symbolic dim that meets a static dim ``d != 1`` at
    the same (right-aligned) position cast to ``d``: ONNX broadcasting requires them equal,
    so this is a run-time check, and the static dim survives. One changed dim is a
    ``reshape`` (its size check is exactly that dim's check); several are a ``match_cast``
    (which ``rewrite_call`` in TVM 0.27 sees through: a pattern rewrite downstream may
    reattach the uncast value, so the reshape is preferred). A ViT exported
    with symbolic ``height``/``width`` adds a (1, 17, 64) position table to patches of shape
    ``(batch, 1 + height//8 * (width//8), 64)``: TVM cannot prove the broadcast, drops the
    shape, and the first ``Gather(Shape(...))`` after it fails."""
    shapes = []
    for x in inputs:
        ty = getattr(x, "ty", None)
        shp = getattr(ty, "shape", None) if isinstance(ty, relax.TensorType) else None
        shapes.append(list(shp.values) if isinstance(shp, relax.ShapeExpr) else None)
    known = [s for s in shapes if s is not None]
    if len(known) < 2:
        return inputs
    rank = max(len(s) for s in known)
    want: dict[int, int] = {}
    for s in known:
        for k, d in enumerate(reversed(s)):
            if isinstance(d, tirx.IntImm) and int(d) != 1:
                if want.setdefault(k, int(d)) != int(d):
                    return inputs  # incompatible: let TVM report it
    out = list(inputs)
    for i, s in enumerate(shapes):
        if s is None:
            continue
        new = list(s)
        for k in range(min(len(s), rank)):
            j = len(s) - 1 - k
            if k in want and not isinstance(s[j], tirx.IntImm):
                new[j] = tirx.IntImm(s[j].ty.dtype, want[k])
        changed = sum(not a.same_as(b) for a, b in zip(new, s))
        if changed == 1:  # a reshape: sizes equal exactly when the changed dim equals d
            out[i] = bb.normalize(relax.op.reshape(inputs[i], new))
        elif changed:
            x = inputs[i] if isinstance(inputs[i], relax.Var) else bb.emit(inputs[i])
            out[i] = bb.match_cast(x, relax.TensorType(new, x.ty.dtype))
    return out


def _broadcasting(cls):
    class Refined(cls):
        @classmethod
        def get_converter(c, opset):
            convert = cls.get_converter(opset)

            def run(bb, inputs, attr, params):
                return convert(bb, _refine_broadcast(bb, inputs), attr, params)

            return run

    Refined.__name__ = Refined.__qualname__ = cls.__name__
    Refined.__doc__ = f"TVM's {cls.__name__}, with operands refined by :func:`_refine_broadcast`."
    return Refined


class Resize(F.Resize):
    """``Resize(x, sizes=concat(shape(x)[:2], const))`` with a symbolic batch (torch.onnx's
    ``F.interpolate(size=...)`` in a segmentation or saliency head): TVM reads every entry
    of the size shape as an integer (``'Var' object has no attribute 'value'``) although it
    only uses the spatial ones. The leading (batch, channel) entries are replaced by 1 for
    the converter; a symbolic *spatial* size still fails there, as it must."""

    @classmethod
    def _impl_v18(cls, bb, inputs, attr, params):
        sizes = inputs[3] if len(inputs) > 3 else None
        if isinstance(sizes, relax.ShapeExpr) and len(sizes.values) > 2 \
                and all(isinstance(d, tirx.IntImm) for d in sizes.values[2:]):
            one = tirx.IntImm("int64", 1)
            inputs = [*inputs[:3], relax.ShapeExpr([one, one, *sizes.values[2:]]), *inputs[4:]]
        return super()._impl_v18(bb, inputs, attr, params)


_BROADCASTING = ("Add", "Sub", "Mul", "Div", "Pow", "Where", "Equal", "Less", "LessOrEqual", "Greater",
                 "GreaterOrEqual", "And", "Or", "Xor", "Max", "Min", "Mod", "BitShift")

OVERRIDES = {
    "ConstantOfShape": ConstantOfShape,
    "Range": Range,
    "Gather": Gather,
    "Expand": Expand,
    "Tile": Tile,
    "Resize": Resize,
    **{op: _broadcasting(cls) for op, cls in F._get_convert_map().items() if op in _BROADCASTING},
}


@contextlib.contextmanager
def patched_converters():
    orig = F._get_convert_map

    def convert_map():
        return {**orig(), **OVERRIDES}

    F._get_convert_map = convert_map
    try:
        yield
    finally:
        F._get_convert_map = orig
