"""The value of a small integer tensor computed from shapes, read back from the bindings TVM's
ONNX importer emitted, as dim expressions.

TVM 0.27's converters take constant operands only for ``Resize`` sizes, ``Reshape``
targets, ``Pad`` widths, ``Tile`` repeats, ``Expand`` targets and ``Range`` bounds. Real
exports compute them from shapes (``Shape -> Gather -> Div -> Unsqueeze -> Concat``, a
position table interpolated to the image size, torch's pad list reversed into ONNX order).
:func:`value_array` evaluates such a tensor symbolically, so the converters in
:mod:`qcompile.frontend.onnx_converters` can use the values; it never evaluates anything
that reads tensor data (a model input or a weight).
"""
from __future__ import annotations

import numpy as np
import tvm
import tvm_ffi
from tvm import relax, tirx
from tvm.sym import Analyzer


_ELEMENTWISE = {
    "relax.add": lambda a, b: a + b, "relax.subtract": lambda a, b: a - b,
    "relax.multiply": lambda a, b: a * b, "relax.floor_divide": tirx.floordiv,
    # an integer Div that TVM's importer kept as a tensor op (GPT-OSS's ``chunk`` bounds,
    # ``(d + 1) // 2`` of a dim read through ``Shape``): truncating, as Relax's integer
    # divide is; :func:`floor_div` makes it a floor division where the value is used
    "relax.divide": tirx.truncdiv,
    # ONNX's integer Mod: Python's (floor) modulo, or C's with fmod=1
    "relax.floor_mod": tirx.floormod, "relax.mod": tirx.truncmod,
    "relax.less": lambda a, b: a < b, "relax.less_equal": lambda a, b: a <= b,
    "relax.greater": lambda a, b: a > b, "relax.greater_equal": lambda a, b: a >= b,
    "relax.equal": lambda a, b: a == b,
}


def floor_div(e):
    """``e`` with truncating divisions (``T.Div``, what TVM's importer writes for ONNX's
    integer ``Div`` of shape values) as floor divisions: equal on the non-negative values
    dims hold, and the form the rest of the graph's shapes use (``height // 8``), so
    shapes built from both spellings are provably equal."""
    if isinstance(e, tirx.Div):
        return tirx.floordiv(floor_div(e.a), floor_div(e.b))
    if isinstance(e, tirx.Cast):
        return tirx.Cast(e.ty.dtype, floor_div(e.value))
    for op in (tirx.Add, tirx.Sub, tirx.Mul, tirx.FloorDiv, tirx.FloorMod, tirx.Min, tirx.Max):
        if isinstance(e, op):
            return op(floor_div(e.a), floor_div(e.b))
    return e


def shape_value(bb, expr):
    """The value of a small integer tensor computed from shapes, flattened to a list of
    PrimExprs (a 0-d tensor as one entry), or None. See :func:`value_array`."""
    arr = value_array(bb, expr)
    return None if arr is None else list(arr.reshape(-1))


def _ints(x) -> list[int] | None:
    vals = x.values if isinstance(x, relax.ShapeExpr) else x.fields if isinstance(x, relax.Tuple) else x
    try:
        return [int(v) for v in vals]
    except (TypeError, ValueError):
        return None


def value_array(bb, expr):
    """:func:`_value_array`, or None where evaluating it fails (TVM's arithmetic refusing
    an operand mix is "not known" here, never an import error)."""
    try:
        return _value_array(bb, expr)
    except (RuntimeError, TypeError, ValueError, AttributeError, IndexError):  # TVM errors are RuntimeErrors
        return None


def _value_array(bb, expr, depth=0):
    """The value of an integer tensor computed from shapes, as a NumPy object array of
    PrimExprs (its shape the tensor's), or None. Follows the bindings the importer emitted
    for ONNX's shape arithmetic: ``shape_of``/``shape_to_tensor``, constants, integer
    casts, ``reshape``/``expand_dims``/``squeeze``, ``permute_dims``, ``strided_slice``,
    ``take`` at known indices, ``concat``, elementwise arithmetic and comparisons, and
    ``where`` on a condition that folds to a constant (the ``index < 0 ? index + rank :
    index`` of every exported ``Gather``; torch's reversed pad list)."""
    if depth > 48:
        return None
    if isinstance(expr, relax.ShapeExpr):
        return _objects([floor_div(v) for v in expr.values])
    if tvm.ir.is_prim_expr(expr):
        return _objects([floor_div(expr)]).reshape(())
    if isinstance(expr, tvm.ir.GenericConst):
        v = expr.value.numpy()
        if v.dtype.kind not in "iub" or v.size > 64:
            return None
        dt = "bool" if v.dtype == bool else "int64"
        return _objects([tirx.IntImm(dt, int(x)) for x in v.reshape(-1)]).reshape(v.shape)
    if isinstance(expr, relax.Var):
        bound = bb.lookup_binding(expr)
        return None if bound is None else _value_array(bb, bound, depth + 1)
    if not isinstance(expr, relax.Call) or not isinstance(expr.op, tvm.ir.Op):
        return None
    name, args = expr.op.name, expr.args
    sub = (lambda e: _value_array(bb, e, depth + 1))  # noqa: E731
    if name == "relax.shape_of":
        dims = getattr(getattr(args[0], "ty", None), "shape", None)
        return _objects([floor_div(v) for v in dims.values]) if isinstance(dims, relax.ShapeExpr) else None
    if name in ("relax.shape_to_tensor", "relax.tensor_to_shape"):
        return sub(args[0])
    if name == "relax.astype" and str(expr.attrs.dtype) in ("int64", "int32"):
        x = sub(args[0])
        if x is None:
            return None
        out = np.empty(x.shape, object)
        for k in np.ndindex(x.shape):
            v = x[k]
            out[k] = v if v.ty.dtype == "int64" else tirx.Cast("int64", v) if not isinstance(v, tirx.IntImm) \
                else tirx.IntImm("int64", int(v))
        return out
    if name in ("relax.full", "relax.broadcast_to", "relax.zeros", "relax.ones"):
        # ConstantOfShape / Expand of a value to a shape (the zero pads torch appends)
        dims = getattr(getattr(expr, "ty", None), "shape", None)
        shape = _ints(dims) if isinstance(dims, relax.ShapeExpr) else None
        if shape is None:
            target = sub(args[0] if name != "relax.broadcast_to" else args[1])
            shape = None if target is None else [int(v) for v in target.reshape(-1) if isinstance(v, tirx.IntImm)]
            if target is None or len(shape) != target.size:
                return None
        if name in ("relax.zeros", "relax.ones"):
            fill = _objects([tirx.IntImm("int64", int(name == "relax.ones"))]).reshape(())
        else:
            fill = sub(args[1] if name == "relax.full" else args[0])
        if fill is None or int(np.prod(shape)) > 64:
            return None
        return np.broadcast_to(fill, shape).copy()
    x = sub(args[0]) if name not in ("relax.concat",) else None
    if name in ("relax.reshape", "relax.expand_dims", "relax.squeeze"):
        dims = getattr(getattr(expr, "ty", None), "shape", None)
        shape = _ints(dims) if isinstance(dims, relax.ShapeExpr) else None
        return None if x is None or shape is None or int(np.prod(shape)) != x.size else x.reshape(shape)
    if name == "relax.permute_dims":
        axes = None if expr.attrs.axes is None else [int(a) for a in expr.attrs.axes]
        return None if x is None else np.transpose(x, axes)
    if name == "relax.strided_slice":
        axes, begin, end = _ints(args[1]), _ints(args[2]), _ints(args[3])
        strides = _ints(args[4]) if len(args) > 4 and args[4] is not None else [1] * len(axes or [])
        if x is None or None in (axes, begin, end, strides):
            return None
        index = [slice(None)] * x.ndim
        for ax, b0, e0, st in zip(axes, begin, end, strides):
            n = x.shape[ax]
            index[ax] = slice(max(min(b0, n), -n - 1), max(min(e0, n), -n - 1) if e0 < 0 else min(e0, n), st)
        return x[tuple(index)]
    if name == "relax.concat" and isinstance(args[0], relax.Tuple):
        parts = [sub(f) for f in args[0].fields]
        if any(p is None for p in parts):
            return None
        return np.concatenate(parts, axis=int(expr.attrs.axis) if expr.attrs.axis is not None else 0)
    if name == "relax.take":
        index = sub(args[1])
        if x is None or index is None:
            return None
        an = Analyzer()
        idx = [an.simplify(i) for i in index.reshape(-1)]
        axis = int(expr.attrs.axis) if expr.attrs.axis is not None else 0
        if not all(isinstance(i, tirx.IntImm) and -x.shape[axis] <= int(i) < x.shape[axis] for i in idx):
            return None
        return np.take(x, np.array([int(i) for i in idx]).reshape(index.shape), axis=axis)
    if name in ("relax.max", "relax.min", "relax.sum", "relax.prod") and x is not None and x.size:
        axes = None if expr.attrs.axis is None else sorted(int(a) % x.ndim for a in expr.attrs.axis)
        if axes is not None and axes != list(range(x.ndim)):
            return None
        an, flat = Analyzer(), list(x.reshape(-1))
        fold = {"relax.max": tirx.max, "relax.min": tirx.min,
                "relax.sum": lambda a, b: a + b, "relax.prod": lambda a, b: a * b}[name]
        acc = flat[0]
        for v in flat[1:]:
            acc = fold(acc, v)
        out = _objects([an.simplify(acc)])
        return out.reshape([1] * x.ndim if expr.attrs.keepdims else [])
    if name == "relax.where" and x is not None:
        # a condition that folds picks its branch: the other is not evaluated (it may read
        # what is not a size, as the ``index + rank`` of a ``Gather`` whose index is >= 0)
        an = Analyzer()
        cond = [an.simplify(c) for c in x.reshape(-1)]
        if all(isinstance(c, tirx.IntImm) for c in cond) and len({int(c) for c in cond}) == 1:
            picked = sub(args[1] if int(cond[0]) else args[2])
            if picked is None:
                return None
            try:
                return np.broadcast_to(picked, np.broadcast_shapes(x.shape, picked.shape)).copy()
            except ValueError:
                return None
    if name in _ELEMENTWISE or name == "relax.where":
        parts = [sub(a) for a in args]
        if any(p is None for p in parts):
            return None
        try:
            parts = np.broadcast_arrays(*parts)
        except ValueError:
            return None
        an = Analyzer()
        out = np.empty(parts[0].shape, object)
        for k in np.ndindex(out.shape):
            if name == "relax.where":
                c = an.simplify(parts[0][k])
                if not isinstance(c, tirx.IntImm):
                    return None
                out[k] = parts[1][k] if int(c) else parts[2][k]
            else:
                out[k] = an.simplify(_ELEMENTWISE[name](*(p[k] for p in parts)))
        return out
    return None


def _objects(values) -> np.ndarray:
    out = np.empty(len(values), object)
    for i, v in enumerate(values):
        out[i] = v
    return out



def is_int(v, k: int) -> bool:
    return isinstance(v, tirx.IntImm) and int(v) == k


def _prod(values):
    out = tirx.IntImm("int64", 1)
    for v in values:
        out = out * v
    return out


def _factors(values, an) -> list:
    out = []
    for v in values:
        v = an.simplify(floor_div(v))
        if isinstance(v, tirx.Mul):
            out += _factors([v.a, v.b], an)
        else:
            out.append(v)
    return out


def quotient(num, den):
    """``prod(num) / prod(den)`` for a reshape's ``-1``, with common factors cancelled
    structurally: ``(2h-1)(2w-1)·4 / ((2h-1)(2w-1))`` is ``4``, which floor division of
    the products cannot prove without knowing the factors are non-zero."""
    an = Analyzer()
    top, bottom = _factors(num, an), _factors(den, an)
    rest = []
    for f in bottom:
        hit = next((i for i, t in enumerate(top) if tvm_ffi.structural_equal(t, f)), None)
        if hit is None:
            rest.append(f)
        else:
            top.pop(hit)
    c_top = [int(t) for t in top if isinstance(t, tirx.IntImm)]
    c_den = [int(t) for t in rest if isinstance(t, tirx.IntImm)]
    if len(c_den) == len(rest) and np.prod(c_top, dtype=np.int64) % max(int(np.prod(c_den, dtype=np.int64)), 1) == 0:
        k = int(np.prod(c_top, dtype=np.int64)) // max(int(np.prod(c_den, dtype=np.int64)), 1)
        return an.simplify(_prod([tirx.IntImm("int64", k)] + [t for t in top if not isinstance(t, tirx.IntImm)]))
    return an.simplify(tirx.floordiv(_prod(num), _prod(den)))
