"""Converters that replace TVM 0.27's own for ONNX constructs it rejects on real exports.

TVM's frontend looks converters up through ``onnx_frontend._get_convert_map()`` at every
node; :func:`patched_converters` swaps in this module's classes for the duration of one
``from_onnx`` call (nothing global changes). Each class documents the construct, the
exporter that writes it and TVM's failure; each has a minimal-graph test in
``tests/test_frontend.py``.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools

import numpy as np
import tvm
import tvm_ffi
from tvm.sym import Analyzer
from tvm import relax, tirx, topi
from tvm.relax.frontend.onnx import onnx_frontend as F

from qcompile.frontend.shape_values import floor_div, is_int, quotient, shape_value, value_array
from qcompile.ir import const_value


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


class TopK(F.TopK):
    """``TopK(..., sorted=0)`` (a mixture-of-experts router picking its experts, DeepSeek-V3's
    group-limited routing): ONNX leaves the order of the k results unspecified then, so the
    sorted order TVM computes is one valid answer; TVM refuses the attribute instead
    (``TopK sorted must be 1``)."""

    @classmethod
    def _impl_v11(cls, bb, inputs, attr, params):
        if not isinstance(F.get_constant(inputs[1], params), tvm.ir.GenericConst):
            whole = _sort_whole_axis(bb, inputs, attr)
            if whole is not None:
                return whole
        return super()._impl_v11(bb, inputs, {**attr, "sorted": 1}, params)


def _sort_whole_axis(bb, inputs, attr):
    """``TopK`` whose ``k`` is the length of its axis (how the TorchScript exporter writes
    ``torch.sort``/``argsort``: ``k = Shape(x)[axis]``, symbolic where the length is; a MoE's
    token dispatch sorting its expert ids, GraniteMoE): a sort and an argsort of the whole
    axis, descending where ``largest``. TVM wants a constant ``k``; None where ``k`` cannot be
    proven to be the axis length."""
    data = inputs[0]
    shape = data.ty.shape if isinstance(data.ty, relax.TensorType) else None
    if shape is None or not isinstance(shape, relax.ShapeExpr):
        return None
    k = shape_value(bb, inputs[1])
    axis = int(attr.get("axis", -1)) % len(shape.values)
    if k is None or len(k) != 1 or not Analyzer().can_prove_equal(k[0], shape.values[axis]):
        return None
    descending = bool(attr.get("largest", 1))
    return relax.Tuple([bb.normalize(relax.op.sort(data, axis, descending)),
                        bb.normalize(relax.op.argsort(data, axis, descending, "int64"))])


class Einsum(F.Einsum):
    """A two-operand ``Einsum`` that is a batched matrix product (CvT's attention:
    ``bhlk,bhtk->bhlt`` for the scores, ``bhlt,bhtv->bhlv`` for the values): TVM emits a
    TIR kernel (``call_tir(einsum)``) that no analysis can read, so canonicalization finds
    no attention and int-only refuses the call. Here it is ``permute_dims`` + ``matmul``
    (+ ``permute_dims`` of the result), the form every exporter's ``q @ k.transpose(-1, -2)``
    takes. Other equations stay TVM's."""

    @classmethod
    def _impl_v12(cls, bb, inputs, attr, params):
        eq = attr["equation"].decode("utf-8").replace(" ", "")
        lead = _leading_ellipsis(eq, [bb.normalize(i) for i in inputs])
        plan = _matmul_plan(eq.replace("...", "")) if lead is not None else None
        if plan is None or len(inputs) != 2:
            groups = _grouped_matmul_plan(eq) if len(inputs) == 2 else None
            return super()._impl_v12(bb, inputs, attr, params) if groups is None else \
                _grouped_matmul(bb, inputs, *groups)
        # broadcast batch dims under a leading "..." (MGP-STR's "...si,...id->...sd") stay in
        # front, where matmul broadcasts them as einsum does (right-aligned)
        ea, eb, eo = lead
        perm_a, perm_b, perm_out = ([*range(e), *(e + i for i in p)] for e, p in zip((ea, eb, eo), plan))
        a, b = inputs
        if perm_a != sorted(perm_a):
            a = relax.op.permute_dims(a, perm_a)
        if perm_b != sorted(perm_b):
            b = relax.op.permute_dims(b, perm_b)
        out = relax.op.matmul(a, b)
        return out if perm_out == sorted(perm_out) else relax.op.permute_dims(bb.normalize(out), perm_out)


def _grouped_matmul_plan(eq: str):
    """``(a, b, out, batch, m, k, n)`` letter groups of an einsum ``A,B->C`` whose letters are
    each batch (A, B and C), free (A and C, or B and C) or contracted (A and B), with at
    least one of each free and contracted kind and more than one in some group (MaskFormer's
    mask logits ``bqc,bchw->bqhw``: two free letters of B); else None."""
    if "..." in eq or "->" not in eq:
        return None
    lhs, out = eq.split("->")
    ops = lhs.split(",")
    if len(ops) != 2:
        return None
    a, b = ops
    if any(len(set(t)) != len(t) for t in (a, b, out)) or set(out) - set(a) - set(b) \
            or (set(a) ^ set(b)) - set(out):
        return None
    batch = [c for c in a if c in b and c in out]
    m = [c for c in a if c not in b]
    n = [c for c in b if c not in a]
    k = [c for c in a if c in b and c not in out]
    if not (m and n and k) or max(len(m), len(n), len(k)) == 1:
        return None
    return a, b, out, batch, m, k, n


def _grouped_matmul(bb, inputs, a_eq, b_eq, out_eq, batch, m, k, n):
    """The einsum of :func:`_grouped_matmul_plan` as permute, reshape to ``[batch.., M, K]``
    and ``[batch.., K, N]``, ``matmul``, reshape back and permute."""
    a, b = (bb.normalize(i) for i in inputs)
    a = bb.normalize(relax.op.permute_dims(a, [a_eq.index(c) for c in batch + m + k]))
    b = bb.normalize(relax.op.permute_dims(b, [b_eq.index(c) for c in batch + k + n]))
    da, db = list(a.ty.shape.values), list(b.ty.shape.values)
    nb = len(batch)

    def prod(dims):
        out = dims[0]
        for d in dims[1:]:
            out = out * d
        return out

    dims = dict(zip(batch + m + k, da)) | dict(zip(k + n, db[nb:]))
    a = relax.op.reshape(a, [*da[:nb], prod([dims[c] for c in m]), prod([dims[c] for c in k])])
    b = relax.op.reshape(b, [*db[:nb], prod([dims[c] for c in k]), prod([dims[c] for c in n])])
    out = relax.op.reshape(bb.normalize(relax.op.matmul(a, b)), [*da[:nb], *(dims[c] for c in m + n)])
    order = batch + m + n
    perm = [order.index(c) for c in out_eq]
    return out if perm == sorted(perm) else relax.op.permute_dims(bb.normalize(out), perm)


def _leading_ellipsis(eq: str, inputs):
    """How many dims the ``...`` of each term of a two-operand einsum stands for, when every term
    starts with it (``(0, 0, 0)`` without one); None for any other use of ``...``."""
    if "..." not in eq:
        return 0, 0, 0
    terms = eq.replace("->", ",").split(",")
    if len(terms) != 3 or len(inputs) != 2 or not all(t.startswith("...") and "." not in t[3:] for t in terms):
        return None
    ranks = [getattr(i.ty, "ndim", -1) for i in inputs]
    if any(r < 0 for r in ranks):
        return None
    ea, eb = (r - (len(t) - 3) for r, t in zip(ranks, terms))
    if ea < 0 or eb < 0:
        return None
    return ea, eb, max(ea, eb)


def _matmul_plan(eq: str):
    """``(perm_a, perm_b, perm_out)`` for an einsum ``A,B->C`` that is ``permute(A) @
    permute(B)`` then ``permute``: batch letters (in A, B and C, in A's order), one ``m``
    (A and C), one contracted ``k`` (A and B) and one ``n`` (B and C); else None."""
    if "..." in eq or "->" not in eq:
        return None
    lhs, out = eq.replace(" ", "").split("->")
    ops = lhs.split(",")
    if len(ops) != 2:
        return None
    a, b = ops
    if any(len(set(t)) != len(t) for t in (a, b, out)) or set(out) - set(a) - set(b):
        return None
    batch = [c for c in a if c in b and c in out]
    m = [c for c in a if c not in b and c in out]
    n = [c for c in b if c not in a and c in out]
    k = [c for c in a if c in b and c not in out]
    if len(m) != 1 or len(n) != 1 or len(k) != 1 or len(batch) + 2 != len(a) or len(batch) + 2 != len(b):
        return None
    prod = batch + m + n
    return ([a.index(c) for c in batch + m + k], [b.index(c) for c in batch + k + n],
            [prod.index(c) for c in out])


class Range(F.Range):
    """``Range(start, limit, 1)`` over dim expressions (``arange(past, past + seq)``, the
    cache positions of every HF decoder). TVM computes the length at run time into a fresh
    variable (``range_len_0``), so the causal mask built from it no longer broadcasts
    against the scores (``seq`` vs ``range_len_0``) and every shape downstream is lost.
    Here the length is ``limit - start`` simplified symbolically: ``seq``, where it is
    provably >= 0 or is the extent of an imported tensor (:func:`_is_extent`)."""

    @classmethod
    def _impl_v12(cls, bb, inputs, attr, params):
        start, limit, delta = (_prim_or_value(bb, F.get_constant(i, params)) for i in inputs)
        dyn = [i for i in inputs if not isinstance(i, tvm.ir.GenericConst)]
        if dyn and all(isinstance(v, tirx.IntImm) for v in (start, limit, delta)):
            # bounds computed from constants the importer did not fold (Cohere's max(...))
            values = np.arange(int(start), int(limit), int(delta))
            return relax.const(values.astype(_dtype(inputs[0])), _dtype(inputs[0]))
        if dyn and all(v is not None for v in (start, limit, delta)) and isinstance(delta, tirx.IntImm) and int(delta) == 1:
            an = Analyzer()
            count = an.simplify(tirx.Cast("int64", limit) - tirx.Cast("int64", start))
            if _nonnegative(an, count) or _is_extent(an, count, params):
                dtype = _dtype(inputs[0])
                pos = relax.op.arange(0, count, 1, "int64")
                out = relax.op.add(pos, _prim_tensor(start))
                return out if dtype == "int64" else relax.op.astype(out, dtype)
        return super()._impl_v12(bb, inputs, attr, params)


def _is_extent(an, expr, params) -> bool:
    """``expr`` is the extent of a tensor already imported (``params[0]``: the importer's
    table of converted values), so it is >= 0 whenever the model runs, though not provable
    from its dim variables alone: SEW-D's ``arange(frames)`` with ``frames = (length - 10)
    // 20``, the feature extractor's output length."""
    nodes = params[0] if isinstance(params, (list, tuple)) and params and isinstance(params[0], dict) else {}
    for v in nodes.values():
        ty = getattr(v, "ty", None)
        if isinstance(ty, relax.TensorType) and isinstance(ty.shape, relax.ShapeExpr):
            for d in ty.shape.values:
                if not isinstance(d, tirx.IntImm) and an.can_prove_equal(tirx.Cast("int64", d), expr):
                    return True
    return False


def _prim_tensor(x, dtype: str = "int64"):
    """A scalar dim value (a PrimExpr the importer made of ONNX shape arithmetic) as the 0-d
    integer tensor ONNX has there (int64 unless ``dtype`` says otherwise)."""
    value = x if x.ty.dtype == "int64" else tirx.Cast("int64", x)
    out = relax.op.reshape(relax.op.shape_to_tensor(relax.ShapeExpr([value])), ())
    return out if dtype == "int64" else relax.op.astype(out, dtype)


def _prim_or_value(bb, x):
    """:func:`_prim`, or a one-element integer tensor's value computed from shapes, or None."""
    p = _prim(x)
    if p is not None:
        return p
    values = shape_value(bb, x)
    return values[0] if values is not None and len(values) == 1 and values[0].ty.dtype != "bool" else None


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
        idx = F.get_constant(inputs[1], params) if params is not None else inputs[1]
        vals = data.values if isinstance(data, relax.ShapeExpr) else getattr(getattr(data, "ty", None), "values", None)
        if vals is not None and isinstance(idx, tvm.ir.GenericConst) and len(idx.value.shape) == 1 \
                and int(attr.get("axis", 0)) == 0:
            # dims picked from a shape by a constant list: onnxruntime's transpose optimizer writes
            # Shape(Transpose(x)) as Gather(Shape(x), perm); kept a shape value, not a tensor
            n = len(vals)
            return relax.ShapeExpr([vals[int(i) % n] for i in idx.value.numpy()])
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
        if tvm.ir.is_prim_expr(data):  # a dim value (BEiT's window size)
            data = bb.normalize(_prim_tensor(data))
            inputs = [data, *inputs[1:]]
        if not isinstance(shape, (tvm.ir.GenericConst, relax.ShapeExpr)):
            values = shape_value(bb, shape)  # a target computed from shapes (Cohere's RoPE)
            if values is not None:
                shape = relax.ShapeExpr([v if v.ty.dtype == "int64" else tirx.Cast("int64", v) for v in values])
                inputs = [data, shape, *inputs[2:]]
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
    tables, re-made for the cached positions by kv-prerope).

    ``Tile(x, repeats)`` with repeats computed from shapes (SigLIP's pooling probe tiled to
    the batch, Cohere's sin/cos tables): TVM rejects them (``cannot handle ShapeExpr
    inputs``). Their value is read back as dim expressions (:func:`shape_value`); a tile is
    a broadcast over a new axis before each repeated one, then a merge of the two, which
    Relax takes with symbolic repeats (an axis of length 1 is a plain broadcast)."""

    @classmethod
    def _impl_v13(cls, bb, inputs, attr, params):
        reps = F.get_constant(inputs[1], params)
        if isinstance(reps, tvm.ir.GenericConst):
            return relax.op.tile(inputs[0], [int(r) for r in reps.value.numpy().reshape(-1)])
        values = shape_value(bb, reps)
        dims = getattr(getattr(inputs[0], "ty", None), "shape", None)
        if values is not None and isinstance(dims, relax.ShapeExpr) and len(values) == len(dims.values):
            if all(isinstance(v, tirx.IntImm) for v in values):
                return relax.op.tile(inputs[0], [int(v) for v in values])
            x = inputs[0]
            if not all(is_int(d, 1) or is_int(r, 1) for d, r in zip(dims.values, values)):
                x = relax.op.expand_dims(x, list(range(0, 2 * len(values), 2)))  # [1, d0, 1, d1, ...]
                grid = [e for r, d in zip(values, dims.values) for e in (r, d)]
                return relax.op.reshape(relax.op.broadcast_to(x, grid),
                                        [r * d for r, d in zip(values, dims.values)])
            return relax.op.broadcast_to(x, [r if is_int(d, 1) else d for r, d in zip(values, dims.values)])
        return super()._impl_v13(bb, inputs, attr, params)


def _known_shapes(inputs) -> list:
    """Each input's dims as a list of PrimExprs, or None where it is not a tensor of known shape."""
    shapes = []
    for x in inputs:
        ty = getattr(x, "ty", None)
        shp = getattr(ty, "shape", None) if isinstance(ty, relax.TensorType) else None
        shapes.append(list(shp.values) if isinstance(shp, relax.ShapeExpr) else None)
    return shapes


def _refine_broadcast(bb, inputs):
    """Broadcasting operands, with every symbolic dim that meets a static dim ``d != 1`` at
    the same (right-aligned) position cast to ``d``: ONNX broadcasting requires them equal,
    and the static dim survives. Each changed dim is a ``reshape`` (its size is that dim's
    value, where TVM checks it: sizes ONNX itself rejects may go unchecked, as with
    :func:`_refine_concat`); not a ``match_cast``, which
    ``rewrite_call`` in TVM 0.27 sees through (a pattern rewrite downstream may reattach the
    uncast value) and which sends 0.27's build into an endless recursion (a segfault) when it
    casts two ``min(h, 2 * h)`` dims of a cropped upsample back to ``h``. A ViT exported
    with symbolic ``height``/``width`` adds a (1, 17, 64) position table to patches of shape
    ``(batch, 1 + height//8 * (width//8), 64)``: TVM cannot prove the broadcast, drops the
    shape, and the first ``Gather(Shape(...))`` after it fails."""
    shapes = _known_shapes(inputs)
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
    # a symbolic dim meeting an input's dim (a plain variable) that it is computed from
    # (MPT's ALiBi table sliced to ``256 - max(256 - seq, 0)`` positions against scores over
    # ``seq``): ONNX requires them equal, TVM cannot prove it; the variable survives
    plain: dict[int, tirx.Var] = {}
    for s in known:
        for k, d in enumerate(reversed(s)):
            if k not in want and isinstance(d, tirx.Var):
                plain.setdefault(k, d)
    out = list(inputs)
    for i, s in enumerate(shapes):
        if s is None:
            continue
        new = list(s)
        for k in range(min(len(s), rank)):
            j = len(s) - 1 - k
            if k in want and not isinstance(s[j], tirx.IntImm):
                new[j] = tirx.IntImm(s[j].ty.dtype, want[k])
            elif k in plain and not isinstance(s[j], (tirx.IntImm, tirx.Var)) and _reads(s[j], plain[k]) \
                    and not Analyzer().can_prove_equal(s[j], plain[k]):
                new[j] = plain[k]
        # one reshape per changed dim (each step changes one dim, so its size check is that
        # dim's check, as far as TVM checks a reshape: a view larger than its storage is
        # refused, a reshape fused into a kernel is not checked at run time)
        cur = list(s)
        for j, d in enumerate(new):
            if not d.same_as(cur[j]):
                cur[j] = d
                out[i] = bb.normalize(relax.op.reshape(out[i], list(cur)))
    return out


def _reads(expr, var) -> bool:
    """``expr`` mentions the dim variable ``var``."""
    return any(v.same_as(var) for v in tirx.analysis.undefined_vars(expr))


def _scalars_as_tensors(bb, inputs):
    """A dim value (a PrimExpr the importer made of ``Gather(Shape)``) meeting a computed
    tensor: TVM lifts the PrimExpr to a 1-D tensor of one element, so ``batch * 32 *
    t`` with a 0-d ``t`` comes out 1-D and the ``Unsqueeze``/``Concat`` after it fails
    (MobileViT's unfold: ``Concat expects all input tensors to have same ndim``). ONNX has
    a 0-d tensor there; the PrimExpr becomes one. Dim arithmetic among PrimExprs and
    constants stays TVM's (it folds to a PrimExpr)."""
    if not any(tvm.ir.is_prim_expr(x) for x in inputs) or not any(
            isinstance(getattr(x, "ty", None), relax.TensorType) and not isinstance(x, tvm.ir.GenericConst)
            for x in inputs):
        return inputs
    return [bb.normalize(_prim_tensor(x, str(x.ty.dtype))) if tvm.ir.is_prim_expr(x)
            and str(x.ty.dtype).startswith("int") else x for x in inputs]


def _broadcasting(cls):
    class Refined(cls):
        @classmethod
        def get_converter(c, opset):
            convert = cls.get_converter(opset)

            def run(bb, inputs, attr, params):
                return convert(bb, _refine_broadcast(bb, _scalars_as_tensors(bb, inputs)), attr, params)

            return run

    Refined.__name__ = Refined.__qualname__ = cls.__name__
    Refined.__doc__ = f"TVM's {cls.__name__}, with operands refined by :func:`_refine_broadcast`."
    return Refined


class Reshape(F.Reshape):
    """``Reshape(x, shape)`` in the two forms TVM's converter rejects over symbolic image
    sizes (DINOv2, BEiT, Data2Vec-vision):

    * the target is computed from shapes (a tensor, or dims with truncating division) rather than a constant (the flatten
      after the position-table interpolation, ``concat(shape(x)[:1], [-1],
      shape(x)[-1:])``): Relax's ``reshape`` takes a shape, not a tensor (``Reshape
      requires the input new shape to be Shape``). Its value is read back as dim
      expressions (:func:`shape_value`);
    * the target has a ``-1`` and ``x``'s dims are unknown, only its rank (BEiT's relative
      position bias gathered by an index computed in-graph): ``Reshape expects the input
      tensor to have known shape``. ``x`` is bound to fresh dims by a ``match_cast`` first
      (checked at run time), so the ``-1`` is their product over the others.

    ``0`` copies the input's dim unless ``allowzero``. A dim value (a PrimExpr) reshaped to
    one element stays a dim value, as TVM's ``Unsqueeze`` keeps it (BLOOM's and MPT's
    ALiBi sizes in a torch.onnx dynamo export)."""

    @classmethod
    def _impl_v13(cls, bb, inputs, attr, params):
        data, target = inputs[0], F.get_constant(inputs[1], params)
        if tvm.ir.is_prim_expr(data) and isinstance(target, tvm.ir.GenericConst):
            t = target.value.numpy().reshape(-1)
            if t.size == 0:
                return data
            if t.size == 1 and int(t[0]) in (1, -1):
                return relax.ShapeExpr([data])
        if isinstance(data, relax.Expr) and not isinstance(data, relax.ShapeExpr) and getattr(data, "ty", None) is None:
            data = bb.normalize(data)  # a converter's unnormalized call (an Add of a Range): infer its type
        ty = getattr(data, "ty", None)
        if isinstance(data, relax.ShapeExpr) or not isinstance(ty, relax.TensorType):
            return super()._impl_v13(bb, inputs, attr, params)
        values = shape_value(bb, target)
        unknown = not isinstance(ty.shape, relax.ShapeExpr)
        computed = not isinstance(target, tvm.ir.GenericConst) and not (
            isinstance(target, relax.ShapeExpr) and all(isinstance(v, tirx.IntImm) for v in target.values))
        if values is None or not (computed or unknown) or sum(is_int(v, -1) for v in values) > 1:
            return super()._impl_v13(bb, inputs, attr, params)
        known_value = value_array(bb, data) if unknown else None
        if known_value is not None and not any(is_int(v, 0) for v in values) and \
                all(isinstance(v, tirx.IntImm) for v in values):
            # a small integer tensor whose value (so size) is known: plain reshape, so the
            # chain stays readable by value_array (a match_cast would hide it)
            rest = known_value.size // max(int(np.prod([int(v) for v in values if not is_int(v, -1)])), 1)
            return relax.op.reshape(data, [rest if is_int(v, -1) else int(v) for v in values])
        if unknown:
            if ty.ndim < 0 or not any(is_int(v, -1) or is_int(v, 0) for v in values):
                return super()._impl_v13(bb, inputs, attr, params)
            x = data if isinstance(data, relax.Var) else bb.emit(data)
            fresh = [tirx.Var(f"reshape_dim{i}", "int64") for i in range(ty.ndim)]
            data = bb.match_cast(x, relax.TensorType(fresh, ty.dtype))
        dims = data.ty.shape.values
        if not attr.get("allowzero", 0):
            values = [dims[i] if is_int(v, 0) else v for i, v in enumerate(values)]
        an = Analyzer()
        values = [an.simplify(floor_div(tirx.Cast("int64", v) if v.ty.dtype != "int64" else v)) for v in values]
        if any(is_int(v, -1) for v in values):  # inferred here, by cancelling common factors
            known = [v for v in values if not is_int(v, -1)]
            rest = quotient(dims, known)
            values = [rest if is_int(v, -1) else v for v in values]
        return relax.op.reshape(data, values)


class Pad(F.Pad):
    """``Pad(x, pads)`` with ``pads`` computed from shapes (Swin pads each feature map to a
    multiple of its window: ``(window - h % window) % window``): TVM takes constant pads
    only (``Dynamic pads are not supported yet``), even at fixed shapes where the values
    fold. The pads are read back as dim expressions (:func:`shape_value`): constant ones
    become Relax's ``nn.pad`` (an op the passes see: int-only moves it as data, TVM emits an
    opaque TIR kernel), symbolic ones TOPI's ``pad`` (which takes expressions). Reflect
    padding by amounts computed from the size (Swin2SR pads the image to a multiple of its
    window) is TOPI's ``mirror_pad``, which takes expressions too; by constant amounts, reflect
    and edge padding are Relax's ``nn.pad`` (reflect, replicate: int-only moves them as data)."""

    @classmethod
    def _lower_pad(cls, bb, inputs, attr, params, modes):
        pads = F.get_constant(inputs[1], params) if len(inputs) > 1 else None
        axes = inputs[3] if len(inputs) > 3 else None
        mode = attr.get("mode", b"constant").decode("ascii")
        if pads is not None and axes is None and mode in ("constant", "reflect", "edge"):
            values = shape_value(bb, pads)
            value = F.get_constant(inputs[2], params) if len(inputs) > 2 else None
            rank = len(inputs[0].ty.shape) if isinstance(getattr(inputs[0].ty, "shape", None), relax.ShapeExpr) else -1
            if values is not None and len(values) == 2 * rank and (value is None or isinstance(value, tvm.ir.GenericConst)):
                an = Analyzer()
                values = [an.simplify(floor_div(tirx.Cast("int64", v) if v.ty.dtype != "int64" else v)) for v in values]
                fill = 0.0 if value is None else value.value.numpy().item()
                static = all(isinstance(v, tirx.IntImm) for v in values)
                widths = [int(v) for pair in zip(values[:rank], values[rank:]) for v in pair] if static else None
                if mode == "edge":  # Relax's replicate (TVM's converter emits an opaque TOPI kernel)
                    return relax.op.nn.pad(inputs[0], widths, "replicate") if static else \
                        super()._lower_pad(bb, inputs, attr, params, modes)
                if mode == "reflect":  # numpy's reflect (the edge not repeated): TOPI's REFLECT
                    if static:  # Relax's op (its reflect is numpy's)
                        return relax.op.nn.pad(inputs[0], widths, "reflect")
                    return bb.emit_te(topi.nn.mirror_pad, inputs[0], values[:rank], values[rank:], "REFLECT")
                if static:  # Relax's op, visible to the passes
                    return relax.op.nn.pad(inputs[0], widths, "constant", fill)
                return bb.emit_te(topi.nn.pad, inputs[0], values[:rank], values[rank:], fill)
        return super()._lower_pad(bb, inputs, attr, params, modes)


class Slice(F.Slice):
    """``Slice`` over symbolic dims or with symbolic bounds (constant bounds over static dims
    are TVM's). A symbolic start over an axis of static length, to the end (MPT's
    ``alibi[:, :, 256 - kv_len:]`` of its precomputed table, and any ``table[n - k:]``):
    TVM assumes every bound is in range once one is symbolic, so the ``INT64_MAX`` end is
    taken literally and the length comes out as ``kv_len + 2**63 - 257``; every shape after
    it is lost. Constant bounds are clamped to the axis here (ONNX's own rule), and a
    symbolic start that is provably negative counts from the end; a symbolic start that is
    not is taken to lie in ``[0, n]``, which it does whenever the positions fit the table
    (the model's own limit). Constant bounds over a symbolic axis: :func:`_symbolic_bound`.
    Bounds computed from static dims (GPT-OSS's ``chunk``: ``Div(Add(Gather(Shape), 1),
    2)``) are read back as their values: TVM makes a ``dynamic_strided_slice`` of them,
    whose result has no shape."""

    @classmethod
    def _impl_v13(cls, bb, inputs, attr, params):
        data = inputs[0]
        ty = getattr(data, "ty", None)
        starts, ends = (shape_value(bb, F.get_constant(i, params)) for i in inputs[1:3])
        axes = shape_value(bb, F.get_constant(inputs[3], params)) if len(inputs) > 3 and inputs[3] is not None else None
        steps = shape_value(bb, F.get_constant(inputs[4], params)) if len(inputs) > 4 and inputs[4] is not None else None
        if isinstance(data, relax.ShapeExpr) or not isinstance(ty, relax.TensorType) \
                or not isinstance(ty.shape, relax.ShapeExpr) or starts is None or ends is None:
            return super()._impl_v13(bb, inputs, attr, params)
        dims = ty.shape.values
        axes = list(range(len(starts))) if axes is None else axes
        steps = [tirx.IntImm("int64", 1)] * len(starts) if steps is None else steps
        if not all(isinstance(v, tirx.IntImm) for v in axes + steps):
            return super()._impl_v13(bb, inputs, attr, params)
        facts = _SLICE_FACTS.get().get(attr.get("tvm_custom", {}).get("name"), {})
        lengths = [dims[int(ax) % len(dims)] for ax in axes]
        flips = [_whole_reversal(b, e, st, n) for b, e, st, n in zip(starts, ends, steps, lengths)]
        if flips and all(flips) and not all(isinstance(n, tirx.IntImm) for n in lengths):
            # torch.flip as ONNX writes it, Slice(-1, -INT64_MAX, -1): TVM's bounds over a
            # symbolic axis come out as min/max expressions it cannot reduce back to the
            # length (Speech2Text's subsampled mask, flipped, cumsum'd and flipped back)
            for ax in axes:
                data = bb.emit(relax.op.flip(data, int(ax) % len(dims)))
            return data
        if any(int(st) != 1 and (facts.get(int(ax), ())[:1] != ("stride",) or isinstance(n, tirx.IntImm))
               for ax, st, n in zip(axes, steps, lengths)):
            return super()._impl_v13(bb, inputs, attr, params)
        if all(isinstance(v, tirx.IntImm) for v in starts + ends + lengths) and all(
                isinstance(F.get_constant(i, params), tvm.ir.GenericConst) for i in inputs[1:] if i is not None):
            return super()._impl_v13(bb, inputs, attr, params)  # TVM's own path (constant bounds)
        an = Analyzer()
        b_out, e_out = [], []
        for ax, n, b, e, st in zip(axes, lengths, starts, ends, steps):
            if int(st) != 1:  # a piece of a strided split (see onnx_prepare.slice_facts): n // st long
                b_out.append(b)
                e_out.append(an.simplify(b + st * tirx.floordiv(n, st)))
                continue
            if isinstance(n, tirx.IntImm):
                b, e = _bound(an, b, int(n)), _bound(an, e, int(n))
                if isinstance(b, tirx.IntImm) and isinstance(e, tirx.IntImm) and int(e) < int(b):
                    e = b  # an empty slice, as ONNX has it (never a negative length)
                b_out.append(b)
                e_out.append(e)
            else:
                b = _symbolic_bound(an, b, n, start=True)
                # an end a sibling slice proves in range (torch.roll's and split's pieces)
                e = e if facts.get(int(ax)) == ("end",) and isinstance(e, tirx.IntImm) else \
                    _symbolic_bound(an, e, n, start=False)
                if b is None or e is None:
                    return super()._impl_v13(bb, inputs, attr, params)
                b_out.append(b)
                e_out.append(e)
        return relax.op.strided_slice(data, [int(a) % len(dims) for a in axes], b_out, e_out,
                                      [int(st) for st in steps], assume_inbound=True)


def _whole_reversal(b, e, st, n) -> bool:
    """Whether a slice ``b:e:st`` over an axis of length ``n`` reverses the whole axis: a
    step of -1 from the last element (-1, or a start no axis reaches) through the first (an
    end below minus any length)."""
    if not all(isinstance(v, tirx.IntImm) for v in (b, e, st)) or int(st) != -1:
        return False
    big = 1 << 31
    return (int(b) == -1 or int(b) >= big) and int(e) <= -big


def _bound(an, v, n: int):
    """A slice bound ``v`` over an axis of length ``n``, in ``[0, n]`` (see :class:`Slice`)."""
    v = an.simplify(floor_div(v))
    if isinstance(v, tirx.IntImm):
        k = int(v)
        return tirx.IntImm("int64", min(max(k + n if k < 0 else k, 0), n))
    if an.can_prove(v < 0):
        return an.simplify(v + n)
    return v


def _symbolic_bound(an, v, n, start: bool):
    """A slice bound ``v`` over an axis of symbolic length ``n``, or None where it cannot be
    placed. Constant bounds: ``x[:, 1:]``, ``x[:, :-1]``, ``x[:, -1:]`` (MobileBERT's
    trigram shifts, a last-token slice). TVM writes ``min(INT64_MAX, n) - min(1, n)``,
    which its arithmetic cannot reduce to ``n - 1``, so the shifted copies no longer
    concatenate with ``x``. Here an end past any length is ``n``, a negative bound counts
    from the end (``|k| <= n`` assumed, as the slice is meaningless otherwise), a start is
    taken as ``k <= n``, and another end keeps ONNX's clamp ``min(k, n)``.

    Symbolic bounds: ``-n`` itself (XLM's ``x[:, -seq:]`` over its ``seq`` positions) is
    ``0`` whether or not ``n`` is zero; a bound provably negative (every dim variable
    non-negative) counts from the end; one provably non-negative is taken as in range (a
    start) or clamped (an end); anything else is not placed."""
    v = an.simplify(floor_div(v))
    if isinstance(v, tirx.IntImm):
        k = int(v)
        if k < 0:
            return an.simplify(n + k)
        if start or k < (1 << 31):
            return tirx.IntImm("int64", k) if start else an.simplify(tirx.min(tirx.IntImm("int64", k), n))
        return n
    v = v if v.ty.dtype == "int64" else tirx.Cast("int64", v)
    if is_int(an.simplify(v + n), 0):
        return tirx.IntImm("int64", 0)
    if _nonnegative(an, -v - 1):
        return an.simplify(v + n)
    if _nonnegative(an, v):
        return v if start else an.simplify(tirx.min(v, n))
    return None


class Concat(F.Concat):
    """``Concat`` of shape values mixed with computed 1-D tensors (Cohere's and SigLIP's
    tile repeats: ``concat([batch], [1], [1])`` with the batch from ``Unsqueeze(Gather(
    Shape))``): TVM builds a shape only when every part is a shape or constant, and
    otherwise passes the shapes to ``concat`` as tensors it is not (``expects the input to
    be a Tuple of Tensors``). When every part's value is known (:func:`shape_value`) the
    result is a shape, as TVM's own fast path gives; otherwise the shapes become tensors."""

    @classmethod
    def _impl_v13(cls, bb, inputs, attr, params):
        mixed = any(isinstance(i, relax.ShapeExpr) for i in inputs) and not all(
            isinstance(i, (relax.ShapeExpr, tvm.ir.GenericConst)) for i in inputs)
        if not mixed:
            return super()._impl_v13(bb, _refine_concat(bb, list(inputs), int(attr.get("axis", 0))), attr, params)
        if int(attr.get("axis", 0)) not in (0, -1):
            return super()._impl_v13(bb, inputs, attr, params)
        parts = [shape_value(bb, i) for i in inputs]
        if all(p is not None for p in parts):
            return relax.ShapeExpr([v if v.ty.dtype == "int64" else tirx.Cast("int64", v) for p in parts for v in p])
        return relax.op.concat([bb.normalize(relax.op.shape_to_tensor(i)) if isinstance(i, relax.ShapeExpr) else i
                                for i in inputs], axis=0)


def _refine_concat(bb, inputs, axis: int):
    """Concatenated tensors whose other dims TVM cannot prove equal, cast to the first
    one's (a run-time check: ONNX requires them equal). MobileViT concatenates its input
    (``h // 32`` rows) with the same features unfolded into 2x2 patches and folded back
    (``ceil(h / 64) * 2`` rows): equal exactly at the sizes the model is valid for, which
    TVM cannot know, so it drops the shape and every op after it loses its dims. The cast
    is a ``reshape``, so at a size the ONNX model itself rejects the artifact is not
    checked here (as with :func:`_refine_broadcast`'s one-dim case): a ``match_cast`` would
    be checked at run time, but TVM 0.27's ``FuseTIR`` crashes (SIGSEGV) on a concat of a
    reshape's output cast that way."""
    shapes = _known_shapes(inputs)
    if len(inputs) < 2 or any(s is None for s in shapes) or len({len(s) for s in shapes}) != 1:
        return inputs
    rank = len(shapes[0])
    axis = axis % rank if rank else 0
    an = Analyzer()
    ref = shapes[0]
    out = list(inputs)
    for i, s in enumerate(shapes[1:], 1):
        new = [d if k == axis or an.can_prove_equal(d, r) else r for k, (d, r) in enumerate(zip(s, ref))]
        if any(not a.same_as(b) for a, b in zip(new, s)):
            out[i] = bb.normalize(relax.op.reshape(inputs[i], new))
    return out


class OneHot(F.OneHot):
    """``OneHot(indices, depth, values)`` with ``depth`` computed from shapes (LongT5's
    transient-global attention one-hots each token's block id over ``seq // block`` blocks):
    TVM takes a constant depth only (``Only constant depth currently supported``). Written
    as ``where(expand_dims(indices, axis) == arange(depth), on, off)``, negative indices
    counted from ``depth`` as ONNX says."""

    @classmethod
    def _impl_v11(cls, bb, inputs, attr, params):
        indices, depth, values = inputs
        d = None if isinstance(depth, tvm.ir.GenericConst) else _prim_or_value(bb, depth)
        if d is None:
            return super()._impl_v11(bb, inputs, attr, params)
        d = d if d.ty.dtype == "int64" else tirx.Cast("int64", d)
        idx = bb.normalize(relax.op.astype(indices, "int64"))
        zero = relax.const(0, "int64")
        idx = bb.normalize(relax.op.where(relax.op.less(idx, zero),
                                          relax.op.add(idx, _prim_tensor(d)), idx))
        axis = attr.get("axis", -1)
        rank = indices.ty.ndim + 1
        axis = axis if axis >= 0 else rank + axis
        ids = relax.op.arange(tirx.IntImm("int64", 0), d, tirx.IntImm("int64", 1), "int64")
        ids = relax.op.reshape(ids, [d if k == axis else 1 for k in range(rank)]) if rank > 1 else ids
        hit = relax.op.equal(relax.op.expand_dims(idx, axis), ids)
        off = relax.op.take(values, relax.const(0, "int64"), axis=0)
        on = relax.op.take(values, relax.const(1, "int64"), axis=0)
        return relax.op.where(hit, on, off)


def _no_roi(inputs) -> bool:
    """A ``Resize`` without a region of interest (absent or empty)."""
    roi = inputs[1] if len(inputs) > 1 else None
    return roi is None or isinstance(roi, tvm.ir.GenericConst) and roi.value.numpy().size == 0


def _resize2d(x, size, attr):
    """``image.resize2d`` of an NCHW ``x`` to ``size`` (dim expressions) with ONNX ``Resize``'s
    attributes."""
    mode = attr.get("mode", b"nearest").decode("ascii")
    return relax.op.image.resize2d(
        x, size=relax.ShapeExpr(size), roi=[0.0] * 4, layout="NCHW",
        method="nearest_neighbor" if mode == "nearest" else mode,
        coordinate_transformation_mode=attr.get("coordinate_transformation_mode", b"half_pixel").decode("ascii"),
        rounding_method=attr.get("nearest_mode", b"round_prefer_floor").decode("ascii"),
        cubic_alpha=attr.get("cubic_coeff_a", -0.75), cubic_exclude=attr.get("exclude_outside", 0),
        extrapolation_value=attr.get("extrapolation_value", 0.0))


class Resize(F.Resize):
    """``Resize(x, sizes=concat(shape(x)[:2], spatial))`` where the importer gives ``sizes``
    as a tensor or shape (torch.onnx's ``F.interpolate(size=...)``):

    * a symbolic batch with constant spatial sizes (a segmentation or saliency head): TVM
      reads every entry as an integer (``'Var' object has no attribute 'value'``) although
      it only uses the spatial ones, which are replaced by 1 here;
    * spatial sizes computed from the input's shape (DINOv2, BEiT and Data2Vec-vision
      interpolate their position table to ``(height // patch, width // patch)``): TVM takes
      only constant sizes (``Type Call for size is currently unsupported``). The size
      tensor's value is read back as dim expressions (``concat``/``astype`` of
      ``shape_to_tensor``) and the 2-D resize is emitted with them, so the symbolic image
      size survives;
    * constant integral ``scales`` over symbolic spatial dims (GLPN's and VitPose's
      ``F.interpolate(scale_factor=2)``): TVM computes the size in float
      (``int(scale * float(dim))``), which its shape inference loses; here it is
      ``dim * scale``, exact."""

    @classmethod
    def _impl_v18(cls, bb, inputs, attr, params):
        sizes = inputs[3] if len(inputs) > 3 else None
        scales = inputs[2] if len(inputs) > 2 else None
        shape = inputs[0].ty.shape if isinstance(inputs[0].ty, relax.TensorType) else None
        plain = _no_roi(inputs) and "axes" not in attr and attr.get("coordinate_transformation_mode", b"") != b"tf_crop_and_resize"
        if plain and sizes is None and isinstance(scales, tvm.ir.GenericConst) and shape is not None and len(shape) == 4:
            s = scales.value.numpy()
            if s.size == 4 and np.all(s == np.round(s)) and s[0] == 1 and s[1] == 1 and np.all(s >= 1):
                return _resize2d(inputs[0], [d * int(k) for d, k in zip(list(shape)[2:], s[2:])], attr)
        values = shape_value(bb, sizes) if sizes is not None and not isinstance(sizes, tvm.ir.GenericConst) else None
        if values is not None and len(values) == 4 and len(inputs[0].ty.shape) == 4:
            if all(isinstance(d, tirx.IntImm) for d in values[2:]):
                one = tirx.IntImm("int64", 1)
                inputs = [*inputs[:3], relax.ShapeExpr([one, one, *values[2:]]), *inputs[4:]]
            elif _no_roi(inputs):
                return _resize2d(inputs[0], [tirx.Cast("int64", d) for d in values[2:]], attr)
        return super()._impl_v18(bb, inputs, attr, params)


def _with_output(cls, fix, doc: str | None):
    """TVM's converter ``cls`` with its result passed through ``fix(bb, result, attr, params)``
    (``params``: the importer's ``[values so far, weights]``)."""
    class Fixed(cls):
        @classmethod
        def get_converter(c, opset):
            convert = cls.get_converter(opset)

            def run(bb, inputs, attr, params):
                return fix(bb, convert(bb, inputs, attr, params), attr, params)

            return run

    Fixed.__name__ = Fixed.__qualname__ = cls.__name__
    Fixed.__doc__ = doc
    return Fixed


def _floor_divide(cls):
    """ONNX's integer ``Div`` of dim values as a floor division where both operands are
    provably non-negative (the two agree there): TVM writes a truncating ``T.Div``, which
    its arithmetic cannot equate with the ``height // 8`` of the shapes it infers itself,
    so a ``concat``/``ScatterND``/broadcast of the two (BEiT's relative position index over
    a symbolic image size) loses or rejects the shape. A dividend that is an imported
    tensor's extent counts as non-negative (SEW-D's ``(length // 10 - 1) / 2``)."""
    def fix(bb, out, attr, params):
        if tvm.ir.is_prim_expr(out) and isinstance(out, tirx.Div):
            an = Analyzer()
            if (_nonnegative(an, out.a) or _is_extent(an, out.a, params)) \
                    and _nonnegative(an, out.b - tirx.IntImm(out.b.ty.dtype, 1)):
                return tirx.floordiv(out.a, out.b)
        return out

    return _with_output(cls, fix, _floor_divide.__doc__)


def _pow_typed_as_base(cls):
    """ONNX's ``Pow`` lets the exponent have its own type (``Pow(relu(x), int32 2)``:
    Nemotron's squared ReLU as onnxruntime-genai writes it); the result has the base's.
    TVM's converter refused the mixed types; the exponent is cast to the base's type."""
    class Typed(cls):
        @classmethod
        def get_converter(c, opset):
            convert = cls.get_converter(opset)

            def run(bb, inputs, attr, params):
                base, exp = inputs[0], inputs[1]
                tb, te = getattr(base, "ty", None), getattr(exp, "ty", None)
                if isinstance(tb, relax.TensorType) and isinstance(te, relax.TensorType) \
                        and str(tb.dtype) != str(te.dtype) and str(tb.dtype).startswith(("float", "bfloat")):
                    inputs = [base, bb.normalize(relax.op.astype(exp, str(tb.dtype))), *inputs[2:]]
                return convert(bb, inputs, attr, params)

            return run

    Typed.__name__ = Typed.__qualname__ = cls.__name__
    Typed.__doc__ = _pow_typed_as_base.__doc__
    return Typed


_BROADCASTING = ("Add", "Sub", "Mul", "Div", "Pow", "Where", "Equal", "Less", "LessOrEqual", "Greater",
                 "GreaterOrEqual", "And", "Or", "Xor", "Max", "Min", "Mod", "BitShift")

def _prim_minmax(cls, fold):
    """``Max``/``Min`` of dim values (PrimExprs the importer made of shape arithmetic) and
    integer constants: folded to one dim value, as TVM folds ``Add``/``Sub`` of them (MPT's
    ALiBi offset ``max(256 - seq, 0)``; TVM stacked a PrimExpr and failed). Tensors as TVM
    has them, a dim value among them as the 0-d tensor ONNX has there."""
    class Folded(cls):
        @classmethod
        def get_converter(c, opset):
            convert = cls.get_converter(opset)

            def run(bb, inputs, attr, params):
                prims = [_prim(x) for x in inputs]
                if any(tvm.ir.is_prim_expr(x) for x in inputs) and all(p is not None for p in prims):
                    return functools.reduce(fold, prims)
                return convert(bb, _scalars_as_tensors(bb, inputs), attr, params)

            return run

    Folded.__name__ = Folded.__qualname__ = cls.__name__
    return Folded


class Clip(F.Clip):
    """``Clip`` with constant bounds (ReLU6 in MobileNet, EfficientNet's Hardswish) as the
    Relax ``clip`` operator. TVM writes every Clip as two TIR kernels
    (``call_tir(maximum)``, ``call_tir(minimum)``), which the passes see as opaque
    ``call_tir`` (int-only refused MobileNetV2 at its first ReLU6). A NaN bound is
    unbounded, as in onnxruntime; bounds computed at run time stay TVM's kernels."""

    @staticmethod
    def _bound(x, default: float):
        if x is None:
            return default
        v = const_value(x)
        if v is None or v.size != 1:
            return None
        v = float(v.reshape(()))
        return default if np.isnan(v) else v

    @classmethod
    def _clip(cls, inputs, lo, hi):
        x = inputs[0]
        if lo is None or hi is None or lo > hi or not str(getattr(getattr(x, "ty", None), "dtype", "")).startswith("float"):
            return None  # min > max: ONNX gives max, Relax's clip min; TVM's two kernels keep ONNX's order
        return relax.op.clip(x, lo, hi)

    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        out = cls._clip(inputs, float(attr.get("min", -np.inf)), float(attr.get("max", np.inf)))
        return out if out is not None else super()._impl_v1(bb, inputs, attr, params)

    @classmethod
    def _impl_v13(cls, bb, inputs, attr, params):
        ins = list(inputs) + [None] * (3 - len(inputs))
        out = cls._clip(inputs, cls._bound(ins[1], -np.inf), cls._bound(ins[2], np.inf))
        return out if out is not None else super()._impl_v13(bb, inputs, attr, params)


class Conv(F.Conv):
    """``Conv(auto_pad=SAME_UPPER|SAME_LOWER)`` over static spatial dims (TF-style
    "same" padding: EfficientNet's and MobileNet's exports): TVM pads the input with a TIR
    kernel (``call_tir(pad)``) before the convolution, an opaque op to the passes (int-only
    refused EfficientNet at its stem). The pads are computed here as ONNX defines them and
    given to the convolution itself; symbolic spatial dims keep TVM's padding."""

    @classmethod
    def _impl_v11(cls, bb, inputs, attr, params):
        mode = attr.get("auto_pad", b"NOTSET")
        mode = mode.decode("ascii") if isinstance(mode, bytes) else str(mode)
        shape = getattr(inputs[0].ty, "shape", None)
        if mode in ("SAME_UPPER", "SAME_LOWER") and isinstance(shape, relax.ShapeExpr) \
                and "kernel_shape" in attr and all(isinstance(d, tirx.IntImm) for d in list(shape)[2:]):
            dims = [int(d) for d in list(shape)[2:]]
            n = len(dims)
            strides = list(attr.get("strides", [1] * n))
            dil = list(attr.get("dilations", [1] * n))
            before, after = [], []
            for d, k, st, dl in zip(dims, attr["kernel_shape"], strides, dil):
                total = max((-(-d // st) - 1) * st + (k - 1) * dl + 1 - d, 0)
                lo = total // 2 if mode == "SAME_UPPER" else total - total // 2
                before.append(lo)
                after.append(total - lo)
            attr = {**attr, "pads": before + after}
            attr.pop("auto_pad")
        return super()._impl_v11(bb, inputs, attr, params)


class DimsMultipleOf(F.OnnxOpConverter):
    """``qcompile.DimsMultipleOf(x)``, an op of qcompile's own that
    :func:`qcompile.loader.load_onnx` puts after a model input whose symbolic dims are
    declared multiples (``--input-shape pixel_values=?x3x32nx32n``): each such dim ``n``
    becomes ``k * q``, with ``q`` a new dim bound to ``n // k``, by a ``match_cast`` that
    checks at run time that ``n == k * (n // k)`` (so a size that is not a multiple is
    refused, never read out of bounds; no data moves). Every shape computed downstream is
    then a multiple TVM can reduce: Swin's ``(h // 4 + 1) // 2`` is ``4 * q`` when ``h = 32 * q``, the patch merging's
    strided pieces agree, the windows tile the feature map.

    Each ``q`` is substituted back by ``n // k`` once the import is done
    (:func:`multiples_bound_back`): the shapes keep the reduced forms (``8 * (h // 32)``),
    and no dim is defined by a ``match_cast`` of a shape value, which TVM 0.27's ``FuseTIR``
    does not take (``All shape inputs are expected to be single tirx var``)."""

    @classmethod
    def _impl_v1(cls, bb, inputs, attr, params):
        x = inputs[0]
        dims = list(x.ty.shape.values)
        new = list(dims)
        for axis, k in enumerate(attr["multiples"]):
            if k > 1 and not isinstance(dims[axis], tirx.IntImm):
                q = tirx.Var(f"{dims[axis]}_div{k}" if isinstance(dims[axis], tirx.Var) else f"dim{axis}_div{k}", "int64")
                bb.match_cast(relax.ShapeExpr([tirx.floordiv(dims[axis], k)]), relax.ShapeType([q]))
                _MULTIPLES.get()[q] = tirx.floordiv(dims[axis], k)
                new[axis] = k * q
        x = x if isinstance(x, relax.Var) else bb.emit(x)
        return bb.match_cast(x, relax.TensorType(new, x.ty.dtype))


OVERRIDES = {
    "QcDimsMultipleOf": DimsMultipleOf,
    "Conv": Conv,
    "Clip": Clip,
    "ConstantOfShape": ConstantOfShape,
    "Range": Range,
    "TopK": TopK,
    "Einsum": Einsum,
    "Gather": Gather,
    "Expand": Expand,
    "Tile": Tile,
    "Resize": Resize,
    "OneHot": OneHot,
    "Concat": Concat,
    "Slice": Slice,
    "Pad": Pad,
    "Reshape": Reshape,
    **{op: _broadcasting(cls) for op, cls in F._get_convert_map().items() if op in _BROADCASTING},
    "Div": _floor_divide(_broadcasting(F._get_convert_map()["Div"])),
    "Pow": _pow_typed_as_base(_broadcasting(F._get_convert_map()["Pow"])),
    "Max": _prim_minmax(_broadcasting(F.Max), tirx.max),
    "Min": _prim_minmax(_broadcasting(F.Min), tirx.min),
}


#: the dims :class:`DimsMultipleOf` introduced in this import, with the value each stands for
_MULTIPLES: contextvars.ContextVar[dict] = contextvars.ContextVar("multiples")


def multiples_bound_back(mod):
    """``mod`` with the dims :class:`DimsMultipleOf` introduced replaced by their values
    (the ``match_cast`` that defined each becomes ``n // k`` against ``n // k``)."""
    subst = _MULTIPLES.get()
    if not subst:
        return mod
    main = mod["main"].bind_symbolic_vars(subst)
    mod = mod.clone() if hasattr(mod, "clone") else tvm.IRModule(dict(mod.functions), attrs=mod.attrs)
    mod["main"] = main
    return relax.transform.CanonicalizeBindings()(mod)


#: what sibling slices prove about each ``Slice``, by node name (:func:`onnx_prepare.slice_facts`)
_SLICE_FACTS: contextvars.ContextVar[dict] = contextvars.ContextVar("slice_facts", default={})


#: the nodes whose shape value an op that cannot take one reads (:func:`onnx_prepare.shape_value_consumers`)
_AS_TENSOR: contextvars.ContextVar[frozenset] = contextvars.ContextVar("as_tensor", default=frozenset())


@functools.cache
def _tensor_for_consumers(cls):
    """``cls`` whose result, where it is a shape value (``relax.ShapeExpr``) and the node is
    in :data:`_AS_TENSOR`, becomes the 1-D int64 tensor of that value (``shape_to_tensor``),
    which every op takes: TVM's importer refuses a shape value as the input of any op but
    a few (``onnx_prepare.SHAPE_COMPATIBLE``)."""
    def fix(bb, out, attr, _params):
        if attr.get("tvm_custom", {}).get("name") in _AS_TENSOR.get() and (
                isinstance(out, relax.ShapeExpr) or isinstance(getattr(out, "ty", None), relax.ShapeType)):
            return bb.normalize(relax.op.shape_to_tensor(out))
        return out

    return _with_output(cls, fix, cls.__doc__)


@contextlib.contextmanager
def patched_converters(slice_facts: dict | None = None, as_tensor: frozenset = frozenset()):
    """TVM's converter map with :data:`OVERRIDES`, for one import; ``slice_facts`` is
    :func:`~qcompile.frontend.onnx_prepare.slice_facts` of the graph imported, ``as_tensor``
    its :func:`~qcompile.frontend.onnx_prepare.shape_value_consumers`."""
    orig = F._get_convert_map
    token = _SLICE_FACTS.set(slice_facts or {})
    token2 = _MULTIPLES.set({})
    token3 = _AS_TENSOR.set(frozenset(as_tensor))

    # built once per import: TVM asks for the map at every node
    table = {op: _tensor_for_consumers(cls) for op, cls in {**orig(), **OVERRIDES}.items()}
    F._get_convert_map = lambda: table
    try:
        yield
    finally:
        F._get_convert_map = orig
        _SLICE_FACTS.reset(token)
        _MULTIPLES.reset(token2)
        _AS_TENSOR.reset(token3)
