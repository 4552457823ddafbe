"""Which tensors of ``main`` are the same for every value of the symbolic dims: *uniform*
tensors, proved binding by binding.

A tensor computed from constants and the inputs' shapes alone (a causal mask broadcast over
the batch, a position table gathered per sample, a count of observed values) folds into a
constant once every dim is fixed. With a symbolic batch it does not: exporters write these
tensors through ``arange(batch)``, ``broadcast_to([batch, ...])``, a ``ScatterND`` that
writes one sample at a time, and nothing downstream of them is constant. Evaluating them at
a few batch sizes proves nothing (``arange(b) < 4`` agrees at 1, 2 and 3). This analysis
proves it instead, by abstract interpretation over the bindings:

* ``UNIFORM``: the tensor's values depend neither on the symbolic dims nor on the index
  along any axis whose extent is symbolic. Such a tensor equals its value at any one
  assignment of the dims (every extent at least 1), sliced to index 0 along the symbolic
  axes and broadcast back: :func:`qcompile.passes.int_only.uniform.fold_uniform`
  rewrites it that way.
* ``Iota(k)``: an integer tensor whose value is its own index along axis ``k`` (a symbolic
  axis), ``arange(batch)`` reshaped and broadcast: a per-sample index.
* ``Comps(entries)``: a tensor whose last axis (static, short) holds index components with
  one abstract value each (``UNIFORM``, ``Iota``, ``FALSE``, ``TOP``): the index tuples of
  a ``ScatterND``, and the shape tensor their negative indices are wrapped against.
* ``TOP``: anything else (an input's values, a symbolic extent read as a value, an op
  without a rule).

A ``ScatterND`` is uniform when its data and updates are and each symbolic axis of the data
is indexed by the ``Iota`` of a grid axis of the same extent (every sample gets the same
writes), the other index components being uniform. Analysis only: nothing here rewrites.
"""
from __future__ import annotations

import dataclasses
from typing import Union

import numpy as np
import tvm
from tvm import relax
from tvm.sym import Analyzer

from qcompile.analysis.moves import op_name
from qcompile.ir import const_value

UNIFORM = "uniform"
FALSE = "false"
TOP = None
#: the longest last axis read as index components (a ScatterND's tuple, a shape tensor)
MAX_COMPONENTS = 8

ELEMENTWISE = {
    "add", "subtract", "multiply", "divide", "floor_divide", "floor_mod", "mod", "power", "maximum", "minimum",
    "equal", "not_equal", "less", "less_equal", "greater", "greater_equal", "logical_and", "logical_or",
    "logical_not", "bitwise_and", "bitwise_or", "bitwise_not", "where", "astype", "abs", "negative", "exp", "log",
    "sqrt", "rsqrt", "sin", "cos", "tanh", "sigmoid", "floor", "ceil", "round", "sign", "isfinite", "isinf",
    "isnan", "clip", "erf", "square", "trunc", "nn.relu", "nn.gelu", "nn.gelu_tanh", "nn.silu",
}


#: ops whose non-tensor arguments may hold symbolic dims as shapes: their rules read them
SHAPE_ARGS = {"broadcast_to", "reshape", "full", "zeros", "ones", "arange", "strided_slice", "image.resize2d",
              "shape_to_tensor", "shape_of"}


@dataclasses.dataclass(frozen=True)
class Iota:
    axis: int


@dataclasses.dataclass(frozen=True)
class Comps:
    entries: tuple


Value = Union[str, Iota, Comps, None]


def _dims(var) -> list | None:
    ty = getattr(var, "ty", None)
    shape = getattr(ty, "shape", None)
    if not isinstance(ty, relax.TensorType) or shape is None:
        return None
    return [int(d) if isinstance(d, tvm.tirx.IntImm) else d for d in shape]


def _static(d) -> bool:
    return isinstance(d, int)


def _same(a, b) -> bool:
    if _static(a) or _static(b):
        return _static(a) and _static(b) and a == b
    return bool(Analyzer().can_prove_equal(a, b))


def _broadcast_ok(out: list, arg: list) -> bool:
    """A uniform ``arg`` broadcast to ``out`` stays uniform: each symbolic output axis meets
    a missing, unit or symbolic (hence constant-along) axis of ``arg``."""
    lead = len(out) - len(arg)
    if lead < 0:
        return False
    for i, d in enumerate(out):
        if _static(d) or i < lead:
            continue
        a = arg[i - lead]
        if _static(a) and a != 1:
            return False
    return True


def _reshape_map(src: list, dst: list) -> dict | None:
    """Symbolic axes of ``src`` -> the ``dst`` axes that carry their index through a reshape:
    both shapes hold the same symbolic dims in order, with equal static products between
    them (a row-major reshape then maps each symbolic coordinate onto itself)."""
    def segments(dims):
        sym, prods, p = [], [], 1
        for i, d in enumerate(dims):
            if _static(d):
                p *= d
            else:
                sym.append(i)
                prods.append(p)
                p = 1
        return sym, prods + [p]

    (s_sym, s_prod), (d_sym, d_prod) = segments(src), segments(dst)
    if len(s_sym) != len(d_sym) or s_prod != d_prod:
        return None
    if not all(_same(src[i], dst[j]) for i, j in zip(s_sym, d_sym)):
        return None
    return dict(zip(s_sym, d_sym))


def _scalar(expr):
    v = const_value(expr) if isinstance(expr, tvm.ir.GenericConst) else None
    return None if v is None or v.size != 1 else v.reshape(()).item()


class Uniform:
    """The abstract value of every binding of ``func`` (``values``: var -> value) and the
    uniform tensors worth folding (:meth:`frontier`)."""

    def __init__(self, func: relax.Function):
        self.func = func
        self.values: dict = {}
        self.defs: dict = {}
        self.users: dict = {}
        for blk in func.body.blocks:
            for b in blk.bindings:
                self.defs[b.var] = b.value
                try:
                    self.values[b.var] = TOP if isinstance(b, relax.MatchCast) else self._eval(b.var, b.value)
                except (TypeError, ValueError, AttributeError, RuntimeError):  # a form the rules do not read
                    self.values[b.var] = TOP
                for a in _var_args(b.value):
                    self.users.setdefault(a, []).append(b.var)

    # ------------------------------------------------------------------ queries
    def uniform(self, var) -> bool:
        return self.values.get(var) == UNIFORM

    def frontier(self) -> list:
        """Uniform tensors that a ``TOP`` binding (or the output) reads and that are not already
        a constant or a constant broadcast: folding them makes the uniform subgraph before them
        dead (an index tuple read only by a uniform scatter goes with it)."""
        outputs = set(_var_args(self.func.body.body))
        out = []
        for var, value in self.defs.items():
            if not self.uniform(var) or _dims(var) is None or _cheap(value):
                continue
            if var in outputs or any(self.values.get(u) is TOP for u in self.users.get(var, [])):
                out.append(var)
        return out

    # ------------------------------------------------------------------ transfer functions
    def _arg(self, expr) -> Value:
        if isinstance(expr, tvm.ir.GenericConst):
            return UNIFORM
        if isinstance(expr, relax.Var):
            return self.values.get(expr, TOP)
        return TOP

    def _eval(self, var, value) -> Value:
        if isinstance(value, tvm.ir.GenericConst):
            return UNIFORM
        if isinstance(value, relax.Var):
            return self._arg(value)
        if isinstance(value, relax.Tuple):
            return TOP
        name = op_name(value)
        if name is None:
            return TOP
        args = list(value.args)
        out = _dims(var)
        if name not in SHAPE_ARGS and _symbolic_args(args):
            return TOP  # a symbolic dim read as a value (a slice bound, a clip limit)
        if name == "shape_of":
            return ("shape", _dims(args[0]))
        if name == "shape_to_tensor":
            dims = _shape_dims(args[0], self)
            if dims is None or len(dims) > MAX_COMPONENTS:
                return TOP
            return _join(Comps(tuple(UNIFORM if _static(d) else TOP for d in dims)))
        if out is None:
            return TOP
        if name == "arange":
            return self._arange(args)
        if name in ("full_like", "zeros_like", "ones_like"):
            return UNIFORM if len(args) == 1 or self._arg(args[1]) == UNIFORM else TOP
        if name in ("full", "zeros", "ones"):
            return UNIFORM if len(args) < 2 or self._arg(args[1]) == UNIFORM else TOP
        tensors = [a for a in _flat(args) if _is_tensor(a)]
        vals = [self._arg(a) for a in tensors]
        if vals and all(v == UNIFORM for v in vals) and all(_static(d) for d in out) \
                and all(_dims(a) is not None and all(map(_static, _dims(a))) for a in tensors):
            return UNIFORM  # a fixed function of fixed inputs, whatever the op
        if name in ELEMENTWISE:
            return self._elementwise(name, value, out, tensors, vals)
        rule = getattr(self, "_" + name.replace(".", "_"), None)
        return TOP if rule is None else rule(value, out, args)

    def _arange(self, args):
        start, stop, step = (_prim(a) for a in args)
        if all(isinstance(v, (int, float)) for v in (start, stop, step)):
            return UNIFORM
        return Iota(0) if isinstance(start, int) and start == 0 and isinstance(step, int) and step == 1 else TOP

    def _elementwise(self, name, call, out, tensors, vals):
        if any(v is TOP for v in vals):
            return TOP
        if all(v == UNIFORM for v in vals):
            return UNIFORM if all(_broadcast_ok(out, _dims(a)) for a in tensors) else TOP
        # index components: per position of a short static last axis
        if not out or not _static(out[-1]) or out[-1] > MAX_COMPONENTS:
            return TOP
        n = out[-1]
        cols = [_components(v, _dims(a), out) for a, v in zip(tensors, vals)]
        if any(c is None for c in cols):
            return TOP
        entries = []
        for j in range(n):
            es = [c[j] for c in cols]
            entries.append(self._entry(name, call, tensors, es))
        return _join(Comps(tuple(entries)))

    def _entry(self, name, call, tensors, es):
        if all(e == UNIFORM for e in es):
            return UNIFORM
        if name == "less" and isinstance(es[0], Iota) and len(tensors) == 2:
            c = _scalar(tensors[1])
            if c is not None and c <= 0:
                return FALSE  # an index is never negative
        if name == "where" and es[0] == FALSE:
            return es[2]
        if name == "astype" and isinstance(es[0], Iota) and "int" in str(call.attrs.dtype):
            return es[0]
        return TOP

    # -- data movement
    def _broadcast_to(self, call, out, args):
        x, v = args[0], self._arg(args[0])
        src = _dims(x)
        if v == UNIFORM:
            return UNIFORM if _broadcast_ok(out, src) else TOP
        lead = len(out) - len(src)
        if isinstance(v, Iota) and _same(out[v.axis + lead], src[v.axis]):
            return Iota(v.axis + lead)
        if isinstance(v, Comps) and _static(src[-1]) and src[-1] == out[-1]:
            return _shift(v, lead)
        return TOP

    def _expand_dims(self, call, out, args):
        v = self._arg(args[0])
        rank = len(out)
        new = sorted(int(a) % rank for a in call.attrs.axis)
        kept = [i for i in range(rank) if i not in new]
        if v == UNIFORM:
            return UNIFORM
        if isinstance(v, Iota):
            return Iota(kept[v.axis])
        if isinstance(v, Comps) and kept[-1] == rank - 1:
            return _remap(v, kept)
        return TOP

    def _squeeze(self, call, out, args):
        v, src = self._arg(args[0]), _dims(args[0])
        axes = call.attrs.axis
        if axes is None:
            gone = {i for i, d in enumerate(src) if _static(d) and d == 1}
        else:
            gone = {int(a) % len(src) for a in axes}
        kept = {old: new for new, old in enumerate(i for i in range(len(src)) if i not in gone)}
        if v == UNIFORM:
            return UNIFORM
        if isinstance(v, Iota) and v.axis in kept:
            return Iota(kept[v.axis])
        if isinstance(v, Comps) and len(src) - 1 in kept:
            return _remap(v, [kept.get(i, -1) for i in range(len(src))])
        return TOP

    def _permute_dims(self, call, out, args):
        v, src = self._arg(args[0]), _dims(args[0])
        axes = list(range(len(src)))[::-1] if call.attrs.axes is None else [int(a) for a in call.attrs.axes]
        if v == UNIFORM:
            return UNIFORM
        if isinstance(v, Iota):
            return Iota(axes.index(v.axis))
        if isinstance(v, Comps) and axes[-1] == len(src) - 1:
            return _remap(v, [axes.index(i) for i in range(len(src))])
        return TOP

    def _reshape(self, call, out, args):
        v, src = self._arg(args[0]), _dims(args[0])
        m = _reshape_map(src, out)
        if m is None:
            return TOP
        if v == UNIFORM:
            return UNIFORM
        if isinstance(v, Iota) and v.axis in m:
            return Iota(m[v.axis])
        return TOP

    def _strided_slice(self, call, out, args):
        v, src = self._arg(args[0]), _dims(args[0])
        if not all(isinstance(a, relax.Tuple) for a in args[1:]):
            return TOP
        axes = [int(f.value) % len(src) for f in args[1].fields]
        bounds = list(zip(*(a.fields for a in args[2:])))
        # along a static axis the bounds pick the values: they must not move with the dims
        if any(_static(src[ax]) and _symbolic_args(list(b)) for ax, b in zip(axes, bounds)):
            return TOP
        if v == UNIFORM:
            return UNIFORM
        if isinstance(v, Iota) and v.axis not in axes:
            return v
        return TOP

    def _take(self, call, out, args):
        x, idx = args
        vx, vi = self._arg(x), self._arg(idx)
        src = _dims(x)
        if isinstance(vx, Comps) and call.attrs.axis is not None and int(call.attrs.axis) % len(src) == len(src) - 1:
            # constant indices into the components (ConvBERT's shape(x)[2]: a static dim of a
            # tensor whose batch is symbolic)
            iv = const_value(idx)
            if iv is None or iv.ndim > 1:
                return TOP
            n = len(vx.entries)
            picks = np.clip(iv, 0, n - 1) if str(call.attrs.mode) == "clip" else np.mod(iv, n)
            entries = tuple(vx.entries[int(i)] for i in picks.reshape(-1))
            if iv.ndim == 0:
                return entries[0] if entries[0] in (UNIFORM, FALSE) else TOP
            return _join(Comps(entries))
        if vx != UNIFORM or call.attrs.axis is None:
            return TOP
        axis = int(call.attrs.axis) % len(src)
        if not _static(src[axis]):
            return UNIFORM  # every slice along the axis is the same: the indices do not matter
        return UNIFORM if vi == UNIFORM else TOP

    def _concat(self, call, out, args):
        parts = _flat(args)
        vals = [self._arg(p) for p in parts]
        axis = int(call.attrs.axis) % len(out) if call.attrs.axis is not None else None
        if axis is None or any(v is TOP for v in vals):
            return TOP
        if all(v == UNIFORM for v in vals):
            return UNIFORM if _static(out[axis]) else TOP
        if axis != len(out) - 1 or not _static(out[-1]) or out[-1] > MAX_COMPONENTS:
            return TOP
        entries = []
        for p, v in zip(parts, vals):
            dims = _dims(p)
            col = _components(v, dims, dims)
            if col is None:
                return TOP
            entries += col
        return _join(Comps(tuple(entries)))

    def _stack(self, call, out, args):
        vals = [self._arg(p) for p in _flat(args)]
        return UNIFORM if vals and all(v == UNIFORM for v in vals) else TOP

    def _reduce(self, call, out, args, along_symbolic_ok: bool):
        v, src = self._arg(args[0]), _dims(args[0])
        if v != UNIFORM:
            return TOP
        axes = range(len(src)) if call.attrs.axis is None else [int(a) % len(src) for a in call.attrs.axis]
        return UNIFORM if along_symbolic_ok or all(_static(src[a]) for a in axes) else TOP

    def _sum(self, call, out, args):
        return self._reduce(call, out, args, False)

    def _prod(self, call, out, args):
        return self._reduce(call, out, args, False)

    def _max(self, call, out, args):
        return self._reduce(call, out, args, True)  # the max of equal values is that value

    def _min(self, call, out, args):
        return self._reduce(call, out, args, True)

    def _mean(self, call, out, args):
        return self._reduce(call, out, args, True)

    def _cumsum(self, call, out, args):
        v, src = self._arg(args[0]), _dims(args[0])
        if v != UNIFORM or call.attrs.axis is None:
            return TOP
        return UNIFORM if _static(src[int(call.attrs.axis) % len(src)]) else TOP

    def _matmul(self, call, out, args):
        a, b = args
        if self._arg(a) != UNIFORM or self._arg(b) != UNIFORM:
            return TOP
        k = _dims(a)[-1]
        return UNIFORM if _static(k) else TOP  # a sum over a symbolic axis grows with it

    def _rowwise(self, call, args, axes):
        """A normalization over ``axes`` (softmax, a norm with constant affine): uniform where
        its inputs are and every normalized axis is static."""
        src = _dims(args[0])
        tensors = [a for a in args if _is_tensor(a)]
        if any(self._arg(a) != UNIFORM for a in tensors):
            return TOP
        return UNIFORM if all(_static(src[int(a) % len(src)]) for a in axes) else TOP

    def _nn_softmax(self, call, out, args):
        return self._rowwise(call, args, [call.attrs.axis])

    def _nn_log_softmax(self, call, out, args):
        return self._rowwise(call, args, [call.attrs.axis])

    def _nn_layer_norm(self, call, out, args):
        return self._rowwise(call, args, list(call.attrs.axes))

    def _nn_rms_norm(self, call, out, args):
        return self._rowwise(call, args, list(call.attrs.axes))

    def _image_resize2d(self, call, out, args):
        """Interpolation weights sum to 1: values constant along an axis stay so, and the
        batch and channel axes are only carried."""
        v, src = self._arg(args[0]), _dims(args[0])
        layout = str(call.attrs.layout)
        ok = v == UNIFORM and layout in ("NCHW", "NHWC") and str(call.attrs.method) in ("nearest_neighbor", "linear")
        spatial = [layout.index("H"), layout.index("W")] if ok else []
        # a static axis resized to a symbolic extent samples it at positions that depend on the extent
        return UNIFORM if ok and all(not _static(src[a]) or _static(out[a]) for a in spatial) else TOP

    def _scatter_nd(self, call, out, args):
        data, idx, upd = args
        if self._arg(data) != UNIFORM or self._arg(upd) != UNIFORM:
            return TOP
        dd, di = _dims(data), _dims(idx)
        if not _static(di[-1]):
            return TOP
        comps = _components(self._arg(idx), di, di)
        if comps is None:
            return TOP
        grid = di[:-1]
        used = set()
        for j, e in enumerate(comps):
            if _static(dd[j]):
                if e != UNIFORM:
                    return TOP
                continue
            # a symbolic data axis: each sample's writes are the grid slice it indexes
            if not isinstance(e, Iota) or e.axis >= len(grid) or e.axis in used or not _same(grid[e.axis], dd[j]):
                return TOP
            used.add(e.axis)
        # along the grid's other symbolic axes the index tuples and updates are constant: the
        # same write repeated
        return UNIFORM


def _is_tensor(a) -> bool:
    return isinstance(a, tvm.ir.GenericConst) or (isinstance(a, relax.Var) and isinstance(a.ty, relax.TensorType))


def _symbolic_args(args) -> bool:
    """Whether a non-tensor argument (a symbolic dim, a shape, a tuple of them) may move with
    the symbolic dims: anything but static numbers, static shapes and function references."""
    for a in args:
        if _is_tensor(a) or isinstance(a, (tvm.tirx.IntImm, tvm.tirx.FloatImm, tvm.ir.GlobalVar)):
            continue
        if isinstance(a, relax.Tuple):
            if _symbolic_args(list(a.fields)):
                return True
        elif isinstance(a, relax.ShapeExpr):
            if not all(isinstance(d, tvm.tirx.IntImm) for d in a.values):
                return True
        else:
            return True
    return False


def _prim(a):
    """An arange bound: a Python number where static, else the PrimExpr."""
    if isinstance(a, (tvm.tirx.IntImm, tvm.tirx.FloatImm)):
        return a.value
    return a


def _flat(args) -> list:
    out = []
    for a in args:
        out += list(a.fields) if isinstance(a, relax.Tuple) else [a]
    return out


def _var_args(value) -> list:
    if isinstance(value, relax.Call):
        return [a for a in _flat(value.args) if isinstance(a, relax.Var)]
    if isinstance(value, relax.Tuple):
        return [a for a in value.fields if isinstance(a, relax.Var)]
    if isinstance(value, relax.TupleGetItem):
        return [value.tuple_value] if isinstance(value.tuple_value, relax.Var) else []
    return [value] if isinstance(value, relax.Var) else []


def _cheap(value) -> bool:
    """Already a constant, or a constant broadcast to a shape: nothing to fold."""
    if isinstance(value, tvm.ir.GenericConst):
        return True
    return op_name(value) == "broadcast_to" and isinstance(value.args[0], tvm.ir.GenericConst)


def _shape_dims(expr, uni: Uniform):
    if isinstance(expr, relax.ShapeExpr):
        return [int(d) if isinstance(d, tvm.tirx.IntImm) else d for d in expr.values]
    v = uni.values.get(expr) if isinstance(expr, relax.Var) else None
    return v[1] if isinstance(v, tuple) and v and v[0] == "shape" else None


def _join(v: Comps) -> Value:
    return UNIFORM if all(e == UNIFORM for e in v.entries) else v


def _shift(v: Comps, lead: int) -> Comps:
    return Comps(tuple(Iota(e.axis + lead) if isinstance(e, Iota) else e for e in v.entries))


def _remap(v: Comps, new_axis: list) -> Value:
    out = []
    for e in v.entries:
        if isinstance(e, Iota):
            if new_axis[e.axis] < 0:
                return TOP
            e = Iota(new_axis[e.axis])
        out.append(e)
    return Comps(tuple(out))


def _components(v: Value, dims: list, out: list) -> list | None:
    """``v`` (a tensor of shape ``dims``) as one entry per position of ``out``'s last axis,
    its iotas' axes counted in ``out``'s rank; None where it cannot be split so."""
    n, lead = out[-1], len(out) - len(dims)
    last = dims[-1] if dims else 1
    if v == UNIFORM:
        return [UNIFORM] * n if _broadcast_ok(out, dims) else None
    if isinstance(v, Iota):
        axis = v.axis + lead
        if axis == len(out) - 1 or not (_static(last) and last in (1, n)):
            return None
        return [Iota(axis)] * n
    if isinstance(v, Comps):
        shifted = _shift(v, lead).entries
        if len(shifted) == n:
            return list(shifted)
        if len(shifted) == 1:
            return list(shifted) * n
    return None
