"""Canonicalization: one fixed pipeline that every model goes through after import.

Whatever frontend produced the graph (ONNX or torch.export), after this pipeline

* weights are bound constants and constant subgraphs are folded;
* frontend noise is gone: identity ``broadcast_to`` / ``astype`` / ``reshape``, the
  ``reshape -> matmul -> reshape`` that torch.export wraps around linears and batched
  matmuls, duplicated subexpressions; constants are the *second* operand of add/multiply;
* idioms are single ops a pass can match with one pattern:

  ==================  ====================================================================
  idiom               canonical form
  ==================  ====================================================================
  GELU (erf)          ``R.nn.gelu(x)``       from ``x*0.5*(1+erf(x/sqrt 2))`` (any order)
  GELU (tanh)         ``R.nn.gelu_tanh(x)``  from ``0.5*x*(1+tanh(sqrt(2/pi)(x+0.044715x^3)))``
  LayerNorm           ``R.nn.layer_norm``    from ``(x-mean)/sqrt(var+eps)*g+b``
  RMSNorm             ``R.nn.rms_norm``      from ``x*rsqrt(mean(x^2)+eps)*g``
  softmax             ``R.nn.softmax``       from ``exp(x-max)/sum(exp(x-max))``; ``softmax(x-max(x))`` is ``softmax(x)``;
                      masked probabilities zeroed after it (XSoftmax) become SDPA's NaN guard
  attention           composite ``qcompile.attention``: ``softmax(QK^T*s [+mask]) V``; ``softmax((QK^T+mask)*s)`` first becomes ``softmax(QK^T*s + mask*s)``;
                      with sinks ``softmax(cat(QK^T*s [+mask], sinks))[..., :n] V``
  RoPE                composite ``qcompile.rope``: ``x*cos + rot(x)*sin``, ``rot`` rotate-half
                      or interleaved; partial rotary keeps its slice/concat around the call;
                      the halves apart, ``cat(x1*cos - x2*sin, x2*cos + x1*sin)``, become rotate-half
  ==================  ====================================================================

A composite is a private Relax function with attribute ``Composite`` (as
``FuseOpsByPattern`` makes them), so ``qcompile.ir.composites(mod)`` finds every call.
The pipeline is idempotent: canonicalizing a canonical module changes nothing.
"""
from __future__ import annotations

import math

import numpy as np
import tvm
import tvm_ffi
from tvm import relax
from tvm.relax import op as O
from tvm.relax.dpl import is_const, is_op, is_tuple, wildcard
from tvm.relax.transform import FusionPattern
from tvm.sym import Analyzer

from qcompile.analysis.moves import slice_params
from qcompile.analysis.patterns import add, comm, div, mul, sub
from qcompile.analysis.patterns import is_scalar as _is, positive_scalar as _positive_scalar, same as _same, scalar as _scalar
from qcompile.ir import const_value, shape_of
from qcompile.rewrite import rebuild_main, rewrite

# ----------------------------------------------------------------------------- helpers


def _last_axis(call) -> bool:
    axis = call.attrs.axis
    ndim = len(call.args[0].ty.shape)
    axes = [int(a) for a in axis] if axis is not None else []
    return len(axes) == 1 and axes[0] in (-1, ndim - 1) and bool(call.attrs.keepdims)


# ----------------------------------------------------------------------------- cleanups


def _straight_through(func):
    """Training-time estimators that are the identity at inference: the straight-through
    ``(x - y) + y`` / ``y + (x - y)`` (a hard one-hot passed through a soft gradient: GroupViT's
    group assignment, Gumbel-softmax, a VQ codebook's ``z + (q - z).detach()``) is ``x`` (in float
    it differs by round-off only); and ``argmax(softmax(z, k), k)`` is ``argmax(z, k)`` (softmax
    is increasing along its axis; float rounding can only merge near-ties)."""
    x, y, y2 = wildcard(), wildcard(), wildcard()

    def pass_through(call, m):
        if not _same(m[y], m[y2]) or shape_of(m[x]) is None or shape_of(m[x]) != shape_of(call):
            return call
        return m[x] if str(m[x].ty.dtype) == str(call.ty.dtype) else call

    func = rewrite(comm(add, sub(x, y), y2), pass_through, func)
    z = wildcard()
    soft = is_op("relax.nn.softmax")(z)

    def logits(call, m, soft=soft):
        nd = len(call.args[0].ty.shape)
        axis = call.attrs.axis
        if axis is None or int(axis) % nd != int(m[soft].attrs.axis) % nd:
            return call
        return relax.Call(call.op, [m[z]], call.attrs)

    for name in ("relax.argmax", "relax.argmin"):
        func = rewrite(is_op(name)(soft), logits, func)
    return func


def _pad_into_max_pool(func):
    """``max_pool2d(pad(x, -inf))`` is a max-pool with that padding: TF's "same" padding as
    timm writes it (``MaxPool2dSame``: an explicit ``F.pad`` with ``-inf``, then a pool
    without padding). A max-pool's own padding never wins a max either (TVM pads with the
    dtype's lowest value), so the two agree wherever a window holds one real value, which a
    pad narrower than the window guarantees without dilation. Not with ``ceil_mode`` (the last
    window's existence depends on where the pad sits) nor dilation (a window's taps can skip
    every real pixel). Integer lowerings take the pool's padding; an explicit pad with
    ``-inf`` has no integer code."""
    x = wildcard()
    pad = is_op("relax.nn.pad")(x)
    pool = is_op("relax.nn.max_pool2d")(pad)

    def fold(call, m):
        p = m[pad]
        if not isinstance(call, relax.Call) or str(p.attrs.pad_mode) != "constant" \
                or str(call.attrs.layout) != "NCHW" or str(call.attrs.out_layout) != "NCHW" \
                or bool(call.attrs.ceil_mode) or any(int(d) != 1 for d in call.attrs.dilation):
            return call
        value = float(p.attrs.pad_value)
        if not (value == float("-inf") or value <= float(np.finfo(np.float32).min)):
            return call
        w = [int(v) for v in p.attrs.pad_width]
        if len(w) != 8 or any(w[:4]) or min(w) < 0:
            return call  # batch or channels padded: not a pooling window's padding
        kh, kw = (int(k) for k in call.attrs.pool_size)
        top, left, bottom, right = (int(v) for v in call.attrs.padding)
        top, bottom, left, right = top + w[4], bottom + w[5], left + w[6], right + w[7]
        if max(top, bottom) >= kh or max(left, right) >= kw:
            return call  # a window could hold padding only
        # without ceil_mode the output's extent reads the total padding only: the same shape
        return O.nn.max_pool2d(m[x], call.attrs.pool_size, call.attrs.strides, [top, left, bottom, right],
                               call.attrs.dilation, False, bool(call.attrs.count_include_pad), "NCHW", "NCHW")

    return rewrite(pool, fold, func)


def _same_size_resize(func):
    """A resize to the size it already has is the identity for every method (nearest,
    linear, cubic) under the coordinate mappings that send each output pixel to its own input
    pixel at scale 1 (half_pixel, pytorch_half_pixel, align_corners, asymmetric); not
    ``tf_half_pixel_for_nn`` (``x + 0.5``: a shift or a blend) nor ``tf_crop_and_resize``
    (CrossViT resizes each branch's image to that branch's size, traced at whatever size it
    already was)."""
    x = wildcard()

    def drop(call, m):
        if not isinstance(call, relax.Call) or str(call.attrs.coordinate_transformation_mode) not in (
                "half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"):
            return call
        a, b = shape_of(m[x]), shape_of(call)
        return m[x] if a is not None and a == b and str(m[x].ty.dtype) == str(call.ty.dtype) else call

    return rewrite(is_op("relax.image.resize2d")(x, wildcard()), drop, func)


def _prelu(func):
    """PReLU ``x if x >= 0 else a x`` (a slope per channel of ``axis``) -> ``relu(x) - a
    relu(-x)``: exact in float (each term is ``x``, ``a x`` or 0), and made of ops every pass
    knows (int-only's ReLU, negation and per-channel scale; DAB-DETR's anchor head)."""
    x, a = wildcard(), wildcard()

    def fn(call, m):
        nd = len(call.ty.shape)
        axis = int(call.attrs.axis) % nd
        alpha = const_value(m[a])
        if alpha is None or alpha.ndim != 1:
            return call
        slope = relax.const(alpha.reshape((-1,) + (1,) * (nd - 1 - axis)).astype(str(call.ty.dtype)))
        return O.subtract(O.nn.relu(m[x]), O.multiply(O.nn.relu(O.negative(m[x])), slope))

    return rewrite(is_op("relax.nn.prelu")(x, a), fn, func)


def _identity_rewrites(func):
    """broadcast_to / reshape / astype / adding a scalar 0 that do nothing, reshape(reshape(x)),
    1/sqrt, bitwise and/or of booleans."""
    x = wildcard()
    bcast = is_op("relax.broadcast_to")(x, wildcard())
    resh = is_op("relax.reshape")(x, wildcard())
    cast = is_op("relax.astype")(x)

    def drop_same_shape(call, m):
        a = m[x]
        return a if shape_of(a) is not None and shape_of(a) == shape_of(call) else call

    def drop_cast(call, m):
        if not isinstance(call, relax.Call):  # rewrite_call may hand over an output alias
            return call
        return m[x] if str(m[x].ty.dtype) == str(call.attrs.dtype) else call

    func = rewrite(bcast, drop_same_shape, func)
    func = rewrite(resh, drop_same_shape, func)
    func = rewrite(cast, drop_cast, func)
    zero = is_const()

    def drop_zero(call, m):  # x + 0 (a merged mask's zero term): x, where the shape is x's
        v = const_value(m[zero])
        if v is None or v.size != 1 or float(v.reshape(())) != 0.0:
            return call
        return drop_same_shape(call, m)

    func = rewrite(is_op("relax.add")(x, zero) | is_op("relax.add")(zero, x), drop_zero, func)
    inner = is_op("relax.reshape")(x, wildcard())
    outer = is_op("relax.reshape")(inner, wildcard())

    def merge_reshape(call, m):  # reshape(reshape(x, s), shape(x)) is x
        if shape_of(call) is None:
            return call
        return m[x] if shape_of(m[x]) == shape_of(call) else O.reshape(m[x], call.ty.shape)

    func = rewrite(outer, merge_reshape, func)
    # HF's generic partial rotary at full width (Phi-3): x[..., :d] and a zero-width x[..., d:]
    # concatenated back after RoPE
    def whole_slice(call, m):
        try:
            *_, strides = slice_params(call)
        except (TypeError, ValueError, AttributeError):  # symbolic begin/end: not provably whole
            return call
        return drop_same_shape(call, m) if all(s == 1 for s in strides) else call

    func = rewrite(is_op("relax.strided_slice")(x, varg_default_wildcard=True), whole_slice, func)

    def empty_fields(call, m):
        if not isinstance(call, relax.Call) or not isinstance(call.args[0], relax.Tuple):
            return call
        axis = int(call.attrs.axis) % len(call.ty.shape)
        keep = [f for f in call.args[0].fields
                if not (isinstance(f.ty, relax.TensorType) and f.ty.shape is not None
                        and isinstance(f.ty.shape[axis], tvm.tirx.IntImm) and int(f.ty.shape[axis]) == 0)]
        if len(keep) == len(call.args[0].fields) or not keep:
            return call
        return keep[0] if len(keep) == 1 else O.concat(keep, axis=axis)

    func = rewrite(is_op("relax.concat")(wildcard()), empty_fields, func)

    # a split into one part and a concat of one tensor (X-MOD's per-language adapters, the
    # batch split by language ids and joined again, with a single language)
    def one_part(call, m):
        if not isinstance(call, relax.Call) or not isinstance(call.ty, relax.TensorType):
            return call
        if call.op.name == "relax.split":
            ind = call.attrs.indices_or_sections
            whole = (isinstance(ind, tvm.tirx.IntImm) and int(ind) == 1) or (not isinstance(ind, tvm.tirx.IntImm) and len(ind) == 0)
            return call.args[0] if whole else call
        fields = call.args[0].fields if isinstance(call.args[0], relax.Tuple) else None
        return fields[0] if fields is not None and len(fields) == 1 else call

    func = rewrite(is_op("relax.split")(wildcard()) | is_op("relax.concat")(wildcard()), one_part, func)
    one, y = is_const(), wildcard()

    def recip_sqrt(call, m):
        return O.rsqrt(m[y]) if _is(m[one], 1.0, 1e-7) else call

    func = rewrite(div(one, is_op("relax.sqrt")(y)), recip_sqrt, func)
    # bitwise and/or of booleans (torch's `&`, `|` on masks) is the logical op; the bitwise
    # form, vectorized, mixes i8 storage with i1 vectors in LLVM
    p, q = wildcard(), wildcard()
    for bitwise, logical in (("relax.bitwise_and", O.logical_and), ("relax.bitwise_or", O.logical_or)):
        def to_logical(call, m, logical=logical):
            both = all(str(m[v].ty.dtype) == "bool" for v in (p, q))
            return logical(m[p], m[q]) if both else call
        func = rewrite(is_op(bitwise)(p, q), to_logical, func)
    return func


def _static_shape_values(func):
    """``take(shape_to_tensor(shape), i)`` picking dims that are static -> a constant
    (Falcon computes the key's head index as ``shape[2] - 2``; with symbolic batch and
    sequence dims the frontend keeps the whole shape at run time)."""
    shp, idx = wildcard(), is_const()
    pat = is_op("relax.take")(is_op("relax.shape_to_tensor")(shp), idx)

    def fn(call, m):
        ty = m[shp].ty
        vals = getattr(ty, "values", None)
        if not isinstance(ty, relax.ShapeType) or vals is None:
            return call
        i = const_value(m[idx])
        picked = np.take(np.array(list(vals), dtype=object), i.astype(np.int64), axis=0, mode="wrap")
        if not all(isinstance(d, tvm.tirx.IntImm) for d in np.asarray(picked).reshape(-1)):
            return call
        ints = np.vectorize(int, otypes=[np.int64])(picked) if np.ndim(picked) else np.array(int(picked))
        return relax.const(np.asarray(ints, np.int64), "int64")  # shape_to_tensor is int64

    return rewrite(pat, fn, func)


def _split_to_slices(func):
    """``split(x)[i]`` -> ``strided_slice(x)`` of that part (GPT-2's ``c_attn`` output split
    into q, k, v): the analyses follow a strided slice as data movement."""

    @relax.expr_functor.mutator
    class _M(relax.PyExprMutator):
        def visit_tuple_getitem_(self, op):
            op = super().visit_tuple_getitem_(op)
            t = op.tuple_value
            val = self.lookup_binding(t) if isinstance(t, relax.Var) else t
            if not (isinstance(val, relax.Call) and getattr(val.op, "name", "") == "relax.split"):
                return op
            x = val.args[0]
            shape = shape_of(x)
            if shape is None:
                return op
            axis = int(val.attrs.axis) % len(shape)
            ind = val.attrs.indices_or_sections
            if isinstance(ind, tvm.tirx.IntImm):  # n equal sections of a static axis
                if not isinstance(shape[axis], int) or shape[axis] % int(ind):
                    return op
                step = shape[axis] // int(ind)
                cuts = [step * k for k in range(1, int(ind))]
            else:
                cuts = [int(c) for c in ind]
            bounds = [0, *cuts, None]
            i = int(op.index)
            begin, end = bounds[i], bounds[i + 1]
            if end is None:
                if not isinstance(shape[axis], int):
                    return op
                end = shape[axis]
            return self.builder_.normalize(O.strided_slice(x, [axis], [begin], [end]))

    return _M().visit_expr(func)


def _materialize_full(func):
    """``full(static shape, const)`` and ``full_like(x of a static shape, const)`` -> a constant. (TVM 0.27's legalizer for ``full`` crashes
    inside FoldConstant: ``TypeError: argument of type 'PrimType' is not iterable``.) The
    dtype is passed to ``relax.const``, which otherwise makes an int64 array int32 (BEiT's
    relative position index, written into with ``slice_scatter`` of int64 sums)."""
    fill = is_const()
    pat = is_op("relax.full")(wildcard(), fill) | is_op("relax.full_like")(wildcard(), fill)  # (Llama 4's ones_like)

    def fn(call, m):
        shape = shape_of(call)
        if shape is None or not all(isinstance(d, int) for d in shape):
            return call
        dtype = str(getattr(call.attrs, "dtype", "") or "") or str(call.ty.dtype)
        if dtype in ("", "void"):
            dtype = str(m[fill].ty.dtype)
        return relax.const(np.full(shape, const_value(m[fill]), dtype=dtype), dtype)

    return rewrite(pat, fn, func)


def _materialize_arange(func):
    """``arange(start, stop, step)`` with constant bounds -> a constant. FoldConstant folds
    only calls with tensor arguments, so everything computed from such an ``arange`` (Swin's
    window-mask indices at a fixed image size, a ``Range`` over static dims) stayed a
    run-time computation, and a ``scatter_nd`` over it reached the quantizing passes."""
    pat = is_op("relax.arange")(wildcard(), wildcard(), wildcard())

    def fn(call, m):
        try:
            start, stop, step = (a.value for a in call.args)
        except AttributeError:  # a symbolic bound
            return call
        if not all(isinstance(v, (int, float)) for v in (start, stop, step)):
            return call
        dtype = str(call.attrs.dtype)
        return relax.const(np.arange(start, stop, step, dtype=dtype), dtype)

    return rewrite(pat, fn, func)


def _fold_nonzero(func):
    """``nonzero(constant)`` -> its constant indices. torch exports ``repeat_interleave``
    with a constant count as ``NonZero(range(max) < repeats)`` and ``GatherND`` (Cohere's RoPE
    tables): the mask is constant, but ``nonzero`` has a data-dependent shape, so nothing
    after it folded and its ``match_cast`` reached the passes that re-emit the positions."""
    x = is_const()

    def fn(call, m):
        v = const_value(m[x])
        if v is None:
            return call
        return relax.const(np.stack(np.nonzero(v)).astype("int64").reshape(v.ndim, -1), "int64")

    return rewrite(is_op("relax.nonzero")(x), fn, func)


def _trivial_casts(func):
    """A ``match_cast`` whose value already has the target type (after :func:`_fold_nonzero`,
    ``match_cast(const (2, 16), (2, n))`` became ``(2, 16)``) -> a plain binding: passes
    that re-emit bindings need not know about it."""

    @relax.expr_functor.mutator
    class _M(relax.PyExprMutator):
        def visit_match_cast_(self, binding):
            value = self.visit_expr(binding.value)
            if tvm_ffi.structural_equal(value.ty, binding.ty):
                self.builder_.emit_normalized(relax.VarBinding(binding.var, value))
                return
            super().visit_match_cast_(binding)

    return _M().visit_expr(func)


def _take_clip(func):
    """``take(mode="fast")`` -> ``mode="clip"``: the same result for every valid index, no
    out-of-bounds read for an invalid one, and no "Fast mode segfaults" warning each time
    the op is legalized (FoldConstant, build)."""
    x, idx = wildcard(), wildcard()

    def fn(call, m):
        if str(call.attrs.mode) != "fast":
            return call
        axis = call.attrs.axis
        return relax.op.take(m[x], m[idx], axis=None if axis is None else int(axis), mode="clip")

    return rewrite(is_op("relax.take")(x, idx), fn, func)


def _bool_arithmetic(func):
    """Elementwise arithmetic on two booleans -> the logical op it means: ``add`` and
    ``maximum`` -> ``logical_or``, ``multiply`` and ``minimum`` -> ``logical_and`` (torch's
    ``mask_a + mask_b``, ``mask_a * mask_b``, ``torch.maximum`` on masks; same result type).
    TVM lowers the arithmetic form to ``i1`` arithmetic, which its LLVM codegen rejects with
    ``Check failed: (t.MatchesCode(DLDataTypeCode::kDLFloat))``."""
    p, q = wildcard(), wildcard()
    for name, logical in (("add", O.logical_or), ("maximum", O.logical_or),
                          ("multiply", O.logical_and), ("minimum", O.logical_and)):
        def fn(call, m, logical=logical):
            both = isinstance(call, relax.Call) and all(
                str(getattr(m[v].ty, "dtype", "")) == "bool" for v in (p, q))
            return logical(m[p], m[q]) if both else call

        func = rewrite(is_op(f"relax.{name}")(p, q), fn, func)
    return func


def _const_where(func):
    """``where(c, a, b)`` with a constant condition whose elements all agree -> ``a`` or ``b``
    (when that keeps the result type). The ONNX exporter's index arithmetic for
    ``x[0]`` on a symbolic batch ends in ``where(False, i + 0, 0)``; folding it leaves a
    constant index and lets the ``shape_of`` chains die."""
    cond, a, b = is_const(), wildcard(), wildcard()

    def fn(call, m):
        v = const_value(m[cond])
        if v is None or v.size == 0 or not (v.all() or not v.any()):
            return call
        pick = m[a] if v.all() else m[b]
        return pick if shape_of(pick) == shape_of(call) and str(pick.ty.dtype) == str(call.ty.dtype) else call

    return rewrite(is_op("relax.where")(cond, a, b), fn, func)


def _const_second(func):
    """add(c, x) -> add(x, c), multiply(c, x) -> multiply(x, c)."""
    c, x = is_const(), wildcard()
    for name, f in (("add", O.add), ("multiply", O.multiply)):
        pat = is_op(f"relax.{name}")(c, x)

        def swap(call, m, f=f):  # broadcasting is symmetric, so the result type is unchanged
            return call if isinstance(m[x], tvm.ir.GenericConst) else f(m[x], m[c])

        func = rewrite(pat, swap, func)
    return func


def _prod(dims) -> int:
    out = 1
    for d in dims:
        out *= d
    return out


def _unwrap_matmul(func):
    """reshape(matmul(reshape(a, [P,(M,)K]), reshape?(b)), [*B,(M,)N]) -> matmul(a, b)."""
    a, b = wildcard(), wildcard()
    ra = is_op("relax.reshape")(a, wildcard())
    mm_lin = is_op("relax.matmul")(ra, b)
    rb = is_op("relax.reshape")(b, wildcard())
    mm_bmm = is_op("relax.matmul")(ra, rb)
    out_lin = is_op("relax.reshape")(mm_lin, wildcard())
    out_bmm = is_op("relax.reshape")(mm_bmm, wildcard())

    def lin(call, m):
        sa, sb, so = shape_of(m[a]), shape_of(m[b]), shape_of(call)
        if None in (sa, sb, so) or len(sb) != 2 or len(sa) < 2:
            return call
        if sa[-1] == sb[0] and so == sa[:-1] + (sb[1],):
            return O.matmul(m[a], m[b])
        return call

    def bmm(call, m):
        # [P, M, K] @ [P, K, N] -> [P, M, N] between reshapes: a batched matmul over the batch
        # axes B (prod B = P) of a, or of the result (torch.export's GQA regroups heads here)
        sa, so, sra, sbr = shape_of(m[a]), shape_of(call), shape_of(m[ra]), shape_of(m[rb])
        if None in (sa, so, sra, sbr) or len(sra) != 3 or len(sbr) != 3 or len(so) < 3:
            return call
        (p, mm, k), n = sra, sbr[2]
        if len(sa) >= 3 and sa[-2:] == (mm, k) and _prod(sa[:-2]) == p:
            batch, lhs = sa[:-2], m[a]
        elif so[-2:] == (mm, n) and _prod(so[:-2]) == p and sa[-1] == k:
            batch, lhs = so[:-2], O.reshape(m[a], list(so[:-2] + (mm, k)))
        else:
            return call
        rhs = m[b] if shape_of(m[b]) == batch + (k, n) else O.reshape(m[b], list(batch + (k, n)))
        out = O.matmul(lhs, rhs)
        return out if batch + (mm, n) == so else O.reshape(out, list(so))

    func = rewrite(out_bmm, bmm, func)
    return rewrite(out_lin, lin, func)


def _broadcast_weight(func):
    """``matmul(x, W)`` with a constant ``W[*B, K, N]`` whose batch slices are all equal ->
    ``matmul(x, W[0])``: the same result by broadcasting. torch.export writes a linear on a
    3-D input that it cannot flatten (after a squeeze or slice) as ``expand(W) + bmm``, and
    the folded expand leaves one copy of the weight per batch row."""
    x, w = wildcard(), is_const()

    def fn(call, m):
        wv = const_value(m[w])
        if wv is None or wv.ndim <= 2:
            return call
        flat = wv.reshape(-1, *wv.shape[-2:])
        if not (flat == flat[:1]).all():
            return call
        xs = shape_of(m[x])
        if xs is None or tuple(xs[:-2]) != tuple(wv.shape[:-2]):  # the batch then comes from x alone
            return call
        return O.matmul(m[x], relax.const(flat[0].copy()), out_dtype=call.attrs.out_dtype)

    return rewrite(is_op("relax.matmul")(x, w), fn, func)


def _mask_idioms(func):
    """The additive attention mask HF encoders compute from an integer ``attention_mask``
    ``m``: ``x = 1 - float(m); where(bool(x), min, x)``. Exactly, for every integer ``m``:
    the else branch only takes ``x == 0``, so it is the constant 0, and ``bool(1 - float(m))``
    is ``m != 1``. What is left is ``where(m != 1, min, 0)``: a mask computed in integers."""
    x, x2, c = wildcard(), wildcard(), is_const()
    cast = is_op("relax.astype")(x)

    def zero_else(call, m):
        if not _same(m[x], m[x2]) or str(m[cast].attrs.dtype) != "bool" \
                or str(m[x].ty.dtype) not in ("float16", "float32", "float64"):
            return call
        return O.where(call.args[0], m[c], relax.const(0, str(m[x].ty.dtype)))

    func = rewrite(is_op("relax.where")(cast, c, x2), zero_else, func)
    mi, k = wildcard(), is_const()

    def not_equal(call, m):
        kv = _scalar(m[k])
        dt = str(m[mi].ty.dtype)
        if str(call.attrs.dtype) != "bool" or kv is None or kv != int(kv) or not dt.startswith(("int", "uint")):
            return call
        return O.not_equal(m[mi], relax.const(int(kv), dt))

    return rewrite(is_op("relax.astype")(sub(k, is_op("relax.astype")(mi))), not_equal, func)


def _multi_input_reduce(func):
    """``max|min|sum|mean(stack((a, b, ..), 0), axis=0)``, how TVM imports ONNX's Max, Min,
    Sum and Mean of several inputs, -> ``maximum(a, maximum(b, ..))`` (``minimum``, ``add``,
    the sum times ``1/n``): elementwise ops a pattern or a pass can read. A field that is a
    constant broadcast to the common shape is the constant itself (the others carry the
    shape), as ``torch.max(scores, finfo.min)`` is written."""
    ops = {"relax.max": O.maximum, "relax.min": O.minimum, "relax.sum": O.add, "relax.mean": O.add}

    var2val = relax.analysis.get_var2val(func)

    def field(f):
        b = var2val.get(f, f) if isinstance(f, relax.Var) else f
        v = const_value(b.args[0]) if isinstance(b, relax.Call) and getattr(b.op, "name", "") == "relax.broadcast_to" else None
        return b.args[0] if v is not None and v.size == 1 else f

    def fn(call, m, stacked):
        st = m[stacked]
        tup, axes = st.args[0], call.attrs.axis
        if not isinstance(tup, relax.Tuple) or int(st.attrs.axis) != 0 or axes is None \
                or [int(a) for a in axes] != [0] or bool(call.attrs.keepdims):
            return call
        out = shape_of(call)
        if out is None or not any(shape_of(f) is not None and _dims_equal(shape_of(f), out) for f in tup.fields):
            return call
        parts = sorted((field(f) for f in tup.fields), key=lambda f: isinstance(f, tvm.ir.GenericConst))
        if isinstance(parts[0], tvm.ir.GenericConst):  # constants only: FoldConstant's
            return call
        acc = parts[0]
        for f in parts[1:]:  # a tensor first, the constants second
            acc = ops[call.op.name](acc, f)
        if call.op.name == "relax.mean":
            if not str(call.ty.dtype).startswith("float"):
                return call
            acc = O.multiply(acc, relax.const(1.0 / len(parts), str(call.ty.dtype)))
        return acc

    for name in ops:
        stacked = is_op("relax.stack")(wildcard())
        func = rewrite(is_op(name)(stacked), lambda call, m, stacked=stacked: fn(call, m, stacked), func)
    return func


def _score_product(e, var2val) -> bool:
    """``e`` is ``q @ kT`` of two computed tensors, or that times (divided by) a constant."""
    def call_of(x):
        v = var2val.get(x, x) if isinstance(x, relax.Var) else x
        return v if isinstance(v, relax.Call) else None

    v = call_of(e)
    name = getattr(getattr(v, "op", None), "name", "")
    if name in ("relax.multiply", "relax.divide") and const_value(v.args[1]) is not None:
        v = call_of(v.args[0])
        name = getattr(getattr(v, "op", None), "name", "")
    return name == "relax.matmul" and all(const_value(a) is None for a in v.args)


def _mask_floor(func):
    """``maximum(scores + mask, lowest)`` with ``lowest`` the float32 minimum (XGLM clamps
    its masked scores so that a mask of ``-inf`` or an overflow cannot reach the softmax) ->
    ``scores + maximum(mask, lowest)``: bit for bit the same while ``|scores| < 1e31`` (any sum
    at or below ``lowest`` rounds to it either way), and the attention form again (scores
    plus a mask). ``scores`` is the operand computed by a matmul (scaled or not)."""
    a, b, c = wildcard(), wildcard(), is_const()
    var2val = relax.analysis.get_var2val(func)

    def is_scores(e):
        return _score_product(e, var2val)

    def fn(call, m):
        v = const_value(m[c])  # a scalar, or one value broadcast (folded to a full array)
        if v is None or v.size == 0 or str(call.ty.dtype) != "float32" or not (v == v.flat[0]).all() \
                or v.flat[0] != np.finfo(np.float32).min or shape_of(call) is None \
                or shape_of(call.args[0]) != shape_of(call):
            return call  # (the identity holds for the float32 minimum; a folded constant no wider than the sum)
        x, y = m[a], m[b]
        if not is_scores(x):
            x, y = y, x
        if not is_scores(x) or is_scores(y):
            return call
        return O.add(x, O.maximum(y, relax.const(float(v.flat[0]), "float32")))

    return rewrite(is_op("relax.maximum")(is_op("relax.add")(a, b), c), fn, func)


def _mask_before_scale(func):
    """``softmax((q kT + mask) / s)`` (CodeGen adds the causal mask before scaling) is
    ``softmax(q kT / s + mask / s)``, the attention form (scale, then mask); equal up to
    float round-off. Only when the sum feeds a softmax directly."""
    scores, m, c = is_op("relax.matmul")(wildcard(), wildcard()), wildcard(), is_const()
    summed = add(scores, m)
    by_div = div(summed, c)

    def fn(call, mm):
        cv = _scalar(mm[c])
        if cv is None or cv == 0:
            return call
        dt = str(call.ty.dtype)
        k = relax.const(1.0 / cv if by_div in mm else cv, dt)
        return O.nn.softmax(O.add(O.multiply(mm[scores], k), O.multiply(mm[m], k)), axis=int(call.attrs.axis))

    return rewrite(is_op("relax.nn.softmax")(by_div | mul(summed, c)), fn, func)


def _dims(e) -> list | None:
    ty = getattr(e, "ty", None)
    if not isinstance(ty, relax.TensorType) or ty.shape is None or not isinstance(ty.shape, relax.ShapeExpr):
        return None
    return list(ty.shape.values)


def _merged_heads(src, dst) -> bool:
    """``dst`` is ``src`` with its two leading dims merged: [B, H, *r] -> [B*H, *r]."""
    a, b = _dims(src), _dims(dst)
    if a is None or b is None or len(a) < 3 or len(b) != len(a) - 1:
        return False
    ana = Analyzer()
    return ana.can_prove_equal(b[0], a[0] * a[1]) and all(ana.can_prove_equal(x, y) for x, y in zip(b[1:], a[2:]))


def _heads_split(func):
    """Attention computed over ``batch*heads`` (BLOOM's baddbmm, DeBERTa: 4-D q/k/v reshaped
    to 3-D, 3-D matmuls, the scores reshaped to 4-D around the mask and softmax, and back):
    every op on a head-merged tensor moves before the merge, so the attention is written
    over [batch, heads, ...] as the composite expects. Exact (only reshapes move):

    * ``permute_dims(merge(x), [0, 2, 1])`` -> ``merge(permute_dims(x, [0, 1, 3, 2]))``;
    * ``matmul(merge(a), merge(b))`` -> ``merge(matmul(a, b))`` (same batch and heads);
    * ``merge(x) * c`` (scalar c) -> ``merge(x * c)``;
    * ``merge(x) + y`` (y [B*H or 1, ., .], ALiBi) -> ``merge(x + split(y))``;
    * ``reshape(merge(x), shape of x)`` -> ``x`` (proved with the arithmetic analyzer)."""
    x, y, z, c, shp = wildcard(), wildcard(), wildcard(), is_const(), wildcard()
    merge = is_op("relax.reshape")(x, shp)
    merge_b = is_op("relax.reshape")(y, wildcard())

    def permute(call, m):
        inner = call.args[0] if isinstance(call.args[0], relax.Call) else None
        axes = [int(a) for a in call.attrs.axes] if call.attrs.axes is not None else None
        if axes != [0, 2, 1] or not _merged_heads(m[x], m[merge]):
            return call
        return O.reshape(O.permute_dims(m[x], [0, 1, 3, 2]), call.ty.shape)

    def matmul(call, m):
        if not (_merged_heads(m[x], m[merge]) and _merged_heads(m[y], m[merge_b])):
            return call
        a, b, ana = _dims(m[x]), _dims(m[y]), Analyzer()
        if not (ana.can_prove_equal(a[0], b[0]) and ana.can_prove_equal(a[1], b[1])):
            return call
        return O.reshape(O.matmul(m[x], m[y], out_dtype=call.attrs.out_dtype), call.ty.shape)

    def scale(call, m):
        if _scalar(m[c]) is None or not _merged_heads(m[x], m[merge]):
            return call
        op = O.divide if call.op.name == "relax.divide" else O.multiply
        return O.reshape(op(m[x], m[c]), call.ty.shape)

    def bias(call, m):
        if not _merged_heads(m[x], m[merge]):
            return call
        a, b, ana = _dims(m[x]), _dims(m[z]), Analyzer()
        if b is None or len(b) != len(a) - 1:
            return call
        if ana.can_prove_equal(b[0], a[0] * a[1]):
            split = [a[0], a[1], *b[1:]]
        elif ana.can_prove_equal(b[0], 1):
            split = [1, 1, *b[1:]]
        else:
            return call
        return O.reshape(O.add(m[x], O.reshape(m[z], split)), call.ty.shape)

    def unmerge(call, m):
        a, b = _dims(m[x]), _dims(call)
        if not _merged_heads(m[x], m[merge]) or b is None or len(a) != len(b):
            return call
        ana = Analyzer()
        return m[x] if all(ana.can_prove_equal(p, q) for p, q in zip(a, b)) else call

    for _ in range(8):  # each rule exposes the next one's match: repeat until nothing moves
        before = func
        func = rewrite(is_op("relax.permute_dims")(merge), permute, func)
        func = rewrite(comm(mul, merge, c) | div(merge, c), scale, func)
        func = rewrite(is_op("relax.matmul")(merge, merge_b), matmul, func)
        func = rewrite(comm(add, merge, z), bias, func)
        func = rewrite(is_op("relax.reshape")(merge, wildcard()), unmerge, func)
        if tvm_ffi.structural_equal(before, func):
            break
    return func


def _where_mask(func):
    """``softmax(where(m, min, scores))`` (DeBERTa's masked_fill with the dtype's minimum)
    -> ``softmax(scores + where(m, min, 0))``, the additive-mask form; also with the branches
    swapped, and with a second additive term after it (GPT-Neo: ``where(causal, scores, min)
    + attention_mask``; :func:`_two_biases` then merges the two terms). Exact for a fill
    <= -1e30: ``x + min`` rounds to ``min`` for any score below 1e21."""
    for with_other in (False, True):
        func = _where_mask_form(func, with_other)
    return func


def _mask_zero_guard(func):
    """``where(m, 0, softmax(x))`` where ``x`` sums a term ``where(m, fill, 0)``, ``fill <=
    -1e4`` (DeBERTa's XSoftmax: the masked probabilities zeroed again after the softmax;
    also ``where(k, softmax(x), 0)`` with the term ``where(k, 0, fill)``) ->
    ``where(isnan(p), 0, p)``, ``p = softmax(x')`` with that term's fill -inf: the NaN-guarded
    form of the attention pattern. A row with a kept position is the same (its masked
    positions already underflow to 0), a row masked everywhere gives 0 in both (NaN, guarded,
    instead of a uniform row zeroed). Exact up to exp's underflow below -1e4."""
    cond, x, zero = wildcard(), wildcard(), is_const()
    sm = is_op("relax.nn.softmax")(x)
    where = is_op("relax.where")
    zero_first = where(cond, zero, sm)
    var2val = relax.analysis.get_var2val(func)

    def val(e):
        while isinstance(e, relax.Var) and e in var2val:
            e = var2val[e]
        return e

    def op(e):
        return getattr(e.op, "name", "") if isinstance(e, relax.Call) else ""

    def fn(call, m):
        if not _is(m[zero], 0.0) or shape_of(call) is None or shape_of(call) != shape_of(m[sm]):
            return call
        ndim = len(m[sm].ty.shape)
        if int(m[sm].attrs.axis) not in (-1, ndim - 1):
            return call
        fill_at = 1 if zero_first in m else 2  # the term's fill branch: where the guard zeroes
        c = m[cond]
        inf = relax.const(-np.inf, str(m[x].ty.dtype))

        def replaced(e, depth=0):
            e2 = val(e)
            if op(e2) == "relax.where" and _same(val(e2.args[0]), val(c)):
                fill, other = e2.args[fill_at], e2.args[3 - fill_at]
                f = _scalar(fill)
                if f is not None and f <= -1e4 and _is(other, 0.0) and shape_of(e2) is not None:
                    zero_c = relax.const(0.0, str(m[x].ty.dtype))
                    return O.where(e2.args[0], inf, zero_c) if fill_at == 1 else O.where(e2.args[0], zero_c, inf)
            if op(e2) == "relax.add" and depth < 4:
                for i in (0, 1):
                    r = replaced(e2.args[i], depth + 1)
                    if r is not None:
                        return O.add(r, e2.args[1]) if i == 0 else O.add(e2.args[0], r)
            return None

        x2 = replaced(m[x])
        if x2 is None:
            return call
        p = O.nn.softmax(x2, axis=-1)
        return O.where(O.isnan(p), relax.const(0.0, str(m[x].ty.dtype)), p)

    return rewrite(zero_first | where(cond, sm, zero), fn, func)


def _where_mask_form(func, with_other: bool):
    cond, c, other = wildcard(), is_const(), wildcard()
    if with_other:  # the filled branch must be the scores: an additive mask's own where is not
        scores = is_op("relax.matmul")(wildcard(), wildcard())
        sc = scores | comm(mul, scores, is_const()) | div(scores, is_const())
    else:
        sc = wildcard()
    where = is_op("relax.where")
    fill_first = where(cond, c, sc)
    masked = fill_first | where(cond, sc, c)

    def fn(call, m):
        cv = _scalar(m[c])
        if cv is None or cv > -1e30:
            return call
        dt = str(m[sc].ty.dtype)
        zero = relax.const(0.0, dt)
        mask = O.where(m[cond], m[c], zero) if fill_first in m else O.where(m[cond], zero, m[c])
        x = O.add(m[sc], mask)
        if with_other:
            x = O.add(x, m[other])
        return O.nn.softmax(x, axis=int(call.attrs.axis))

    body = is_op("relax.add")(masked, other) | is_op("relax.add")(other, masked) if with_other else masked
    return rewrite(is_op("relax.nn.softmax")(body), fn, func)


def _constant_terms(func):
    """``(x + c1) + c2`` with two constant tables (2-D or more) -> ``x + (c1 + c2)``: one
    constant term (Swin-V2 adds its shifted-window mask to a view of the scores in two
    steps). Equal up to float round-off."""
    x, c1, c2 = wildcard(), is_const(), is_const()

    def fn(call, m):
        a, b = const_value(m[c1]), const_value(m[c2])
        if a is None or b is None or a.dtype != b.dtype or a.ndim < 2 or b.ndim < 2:
            return call  # (a linear's 1-D bias stays the linear's)
        total = a + b
        if shape_of(call) is None or total.ndim > len(shape_of(call)):
            return call
        return O.add(m[x], relax.const(total))

    return rewrite(add(add(x, c1), c2), fn, func)


def _split_view_bias(func):
    """``reshape(reshape(x, [b, w, ..]) + c, shape(x))`` (Swin's shifted-window mask: the
    scores of ``b * w`` windows viewed as ``[b, w, heads, n, n]``, the per-window mask
    added, viewed back) -> ``x + reshape(broadcast_to(c, [b, w, ..]), shape(x))``: the
    same elementwise sum, with the term moved to the unsplit scores so that the attention's
    one additive term (after :func:`_two_biases`) is visible. The term is any tensor that
    broadcasts to the view (torch.onnx's dynamo export adds the relative position bias and
    the mask in 5-D first); made of constants, the integer passes take it as a constant bias."""
    x, c, s5, s4 = wildcard(), wildcard(), wildcard(), wildcard()
    view = is_op("relax.reshape")(x, s5)
    pat = is_op("relax.reshape")(comm(add, view, c), s4)

    def fn(call, m):
        xs, vs, out = shape_of(m[x]), shape_of(m[view]), shape_of(call)
        cs = shape_of(m[c])
        if xs is None or vs is None or out is None or cs is None or len(vs) != len(xs) + 1 or len(out) != len(xs) \
                or len(cs) > len(vs):
            return call
        same = lambda a, b: a == b if isinstance(a, int) or isinstance(b, int) else tvm_ffi.structural_equal(a, b)  # noqa: E731
        if not (all(same(a, b) for a, b in zip(out, xs)) and all(same(a, b) for a, b in zip(vs[2:], xs[1:]))):
            return call  # not a split of the leading axis viewed back
        if len(cs) < len(vs) - 1 or (isinstance(cs[len(cs) - len(vs) + 1], int) and cs[len(cs) - len(vs) + 1] == 1):
            return call  # the term does not vary with the split-off axis: a plain broadcast already
        term = O.reshape(O.broadcast_to(m[c], m[view].ty.shape), call.ty.shape)
        return O.add(m[x], term)

    return rewrite(pat, fn, func)


def _scores_first(func):
    """``softmax(t1 ± t2 ± ... )`` whose terms hold exactly one score product ``q @ kT`` (scaled
    by a constant or not) that is not already the first operand of the outer add -> ``softmax(
    scores + (the other terms, in their order and signs))``: the attention form, the other terms
    summed as its mask (Funnel and the Transformer-XL family add position and segment scores
    and subtract a scaled mask: ``((content + position) + segment) - big (1 - mask)``). Equal
    up to float round-off (the sum is reassociated)."""
    var2val = relax.analysis.get_var2val(func)

    def val(e):
        return var2val.get(e, e) if isinstance(e, relax.Var) else e

    def is_scores(e):
        return _score_product(e, var2val)

    def terms(e, coef, out, depth=0):
        """The leaves of a sum as ``(leaf, coefficient)``; a constant scalar scaling a sum
        (``(content + position) * s``) is distributed over it."""
        v = val(e)
        name = getattr(getattr(v, "op", None), "name", "") if isinstance(v, relax.Call) else ""
        if depth < 8 and name in ("relax.add", "relax.subtract") and not is_scores(e):
            terms(v.args[0], coef, out, depth + 1)
            terms(v.args[1], coef if name == "relax.add" else -coef, out, depth + 1)
            return out
        c = _scalar(v.args[1]) if name in ("relax.multiply", "relax.divide") else None
        inner = val(v.args[0]) if c else None
        if depth < 8 and c and getattr(getattr(inner, "op", None), "name", "") in ("relax.add", "relax.subtract") \
                and any(is_scores(t) for t, _ in terms(v.args[0], 1.0, [], depth + 1)):  # (a mask's 1 - m stays whole)
            return terms(v.args[0], coef * (c if name == "relax.multiply" else 1.0 / c), out, depth + 1)
        out.append((e, coef))
        return out

    def fn(call, m):
        x = call.args[0]
        v = val(x)
        if not (isinstance(v, relax.Call) and getattr(v.op, "name", "") in ("relax.add", "relax.subtract")):
            return call
        if getattr(v.op, "name", "") == "relax.add" and is_scores(v.args[0]):
            return call  # the attention form already
        parts = terms(x, 1.0, [])
        found = [i for i, (t, c) in enumerate(parts) if is_scores(t) and c > 0]
        if len(found) != 1 or len(parts) < 2 or shape_of(parts[found[0]][0]) != shape_of(call):
            return call
        dt = str(call.ty.dtype)

        def scaled(t, c):
            return t if c == 1.0 else O.multiply(t, relax.const(c, dt))

        scores = scaled(*parts.pop(found[0]))
        if parts[0][1] < 0:
            return call  # a leading subtracted term: not worth a negation
        rest = scaled(*parts[0])
        for t, c in parts[1:]:
            rest = O.add(rest, scaled(t, c)) if c > 0 else O.subtract(rest, scaled(t, -c))
        return O.nn.softmax(O.add(scores, rest), axis=int(call.attrs.axis))

    return rewrite(is_op("relax.nn.softmax")(wildcard()), fn, func)


def _summed_scores(func):
    """``softmax(s1 + s2 [+ b])`` with two score products ``s_i = (q_i @ k_i) c_i`` (LiLT's
    text and layout scores, added before the mask) -> ``softmax(concat(q1 c1, q2 c2) @
    concat(k1, k2) [+ b])``: one product over the concatenated head dims is the same sum,
    so the attention form applies (and int-only's Shiftmax). Equal up to float round-off."""
    parts = []
    for _ in range(2):
        q, k, cm, cd = wildcard(), wildcard(), is_const(), is_const()
        mm = is_op("relax.matmul")(q, k)
        parts.append(((q, k, cm, cd), mm | comm(mul, mm, cm) | div(mm, cd)))
    (w1, s1), (w2, s2) = parts
    b = wildcard()
    summed = add(s1, s2)

    def get(m, p):
        try:
            return m[p]
        except (KeyError, IndexError):
            return None

    def fn(call, m):
        terms = []
        for q, k, cm, cd in (w1, w2):
            qv, kv = m[q], m[k]
            qs, ks = shape_of(qv), shape_of(kv)
            if qs is None or ks is None or len(qs) != len(ks) or len(qs) < 2 or not isinstance(qs[-1], int):
                return call
            mc, dc = get(m, cm), get(m, cd)
            c = _scalar(mc) if mc is not None else (1.0 / _scalar(dc) if dc is not None and _scalar(dc) else None)
            if c is None and mc is None and dc is None:
                c = 1.0
            if c is None:
                return call  # a scale that is not one scalar (a table, or 0): not folded into q
            terms.append((qv, kv, c, qs, ks))
        (q1, k1, c1, qs1, ks1), (q2, k2, c2, qs2, ks2) = terms
        if len(qs1) != len(qs2) or str(q1.ty.dtype) != str(q2.ty.dtype) or str(k1.ty.dtype) != str(k2.ty.dtype):
            return call
        same = lambda a, b: a == b if isinstance(a, int) or isinstance(b, int) else tvm_ffi.structural_equal(a, b)  # noqa: E731
        if not (all(same(a, b) for a, b in zip(qs1[:-1], qs2[:-1])) and all(same(a, b) for a, b in zip(ks1[:-2], ks2[:-2]))
                and same(ks1[-1], ks2[-1])):
            return call
        dt = str(q1.ty.dtype)
        qs = [q if c == 1.0 else O.multiply(q, relax.const(c, dt)) for q, c in ((q1, c1), (q2, c2))]
        scores = O.matmul(O.concat(qs, axis=-1), O.concat([k1, k2], axis=len(ks1) - 2))
        bias = get(m, b)
        return O.nn.softmax(scores if bias is None else O.add(scores, bias), axis=int(call.attrs.axis))

    return rewrite(is_op("relax.nn.softmax")(add(summed, b) | summed), fn, func)


def _two_biases(func):
    """``softmax(scores + a + b)`` (ALiBi, then the mask) -> ``softmax(scores + (a + b))``:
    the attention form has one additive term; equal up to float round-off."""
    sc, a, b = wildcard(), wildcard(), wildcard()
    scores = is_op("relax.matmul")(wildcard(), wildcard())
    scaled = scores | comm(mul, scores, is_const()) | div(scores, is_const())
    var2val = relax.analysis.get_var2val(func)

    def fn(call, m):
        if any(scaled.match(m[t], var2val=var2val) for t in (a, b)):
            return call  # two score products summed (LiLT's text + layout scores): no single bias to form
        return O.nn.softmax(O.add(m[sc], O.add(m[a], m[b])), axis=int(call.attrs.axis))

    sc = scaled
    return rewrite(is_op("relax.nn.softmax")(add(add(sc, a), b)), fn, func)


def _scalars_out_of_matmul(func):
    """Scalar factors of an activation x activation matmul move behind it, and scalar factors
    in a row merge: ``matmul(q * a, kT * b)`` -> ``matmul(q, kT) * (a b)``. torch's
    ``scaled_dot_product_attention`` decomposition (torch.onnx, Optimum with SDPA) scales
    q and k by ``sqrt(1/sqrt(d))`` each; eager attention scales the product once. Linears
    (a constant operand) are left alone."""
    a, b, c = wildcard(), wildcard(), is_const()

    def lhs(call, m):
        s = _scalar(m[c])
        if s is None or isinstance(m[b], tvm.ir.GenericConst) or str(call.attrs.out_dtype) not in ("", "void", "None"):
            return call
        return O.multiply(O.matmul(m[a], m[b]), relax.const(s, str(call.ty.dtype)))

    def rhs(call, m):
        s = _scalar(m[c])
        if s is None or isinstance(m[a], tvm.ir.GenericConst) or str(call.attrs.out_dtype) not in ("", "void", "None"):
            return call
        return O.multiply(O.matmul(m[a], m[b]), relax.const(s, str(call.ty.dtype)))

    func = rewrite(is_op("relax.matmul")(mul(a, c), b), lhs, func)
    func = rewrite(is_op("relax.matmul")(a, mul(b, c)), rhs, func)
    c2 = is_const()

    def merge(call, m):
        s1, s2 = _scalar(m[c]), _scalar(m[c2])
        if s1 is None or s2 is None:
            return call
        return O.multiply(m[a], relax.const(s1 * s2, str(call.ty.dtype)))

    func = rewrite(mul(mul(a, c), c2), merge, func)

    def per_head(call, m):  # Swin-V2's learned logit scale, one per head: into q (exact, a constant
        # along the contraction and the keys), so the attention keeps one scalar scale
        mm, cv = m[prod], const_value(m[c])
        qs = shape_of(mm.args[0]) if isinstance(mm, relax.Call) else None
        if isinstance(mm, relax.Call) and str(mm.attrs.out_dtype) not in ("", "void", "None"):
            return call
        if cv is None or cv.size <= 1 or cv.ndim < 2 or cv.shape[-1] != 1 or cv.shape[-2] != 1 or qs is None \
                or cv.ndim > len(qs) or isinstance(mm.args[1], tvm.ir.GenericConst) \
                or isinstance(mm.args[0], tvm.ir.GenericConst):
            return call
        return O.matmul(O.multiply(mm.args[0], m[c]), mm.args[1])

    prod = is_op("relax.matmul")(wildcard(), wildcard())
    return rewrite(comm(mul, prod, c), per_head, func)


def _channel_scale_into_linear(func):
    """``(x @ W [+ b]) * g`` with a constant per-output-channel ``g`` -> ``x @ (W g) [+ b g]``:
    LayerScale (DINOv2, BEiT, CaiT) is a scale on the residual branch that no pass needs to
    see; folded, the branch ends in a plain linear layer (rotation fuses into it, int-only
    quantizes one weight)."""
    x, w, b, g = wildcard(), is_const(), is_const(), is_const()
    lin = is_op("relax.matmul")(x, w)
    biased = add(lin, b)

    def gains(call, m):
        wv, gv = const_value(m[w]), const_value(m[g])
        if wv is None or wv.ndim != 2 or gv is None or gv.size != wv.shape[1] or gv.size == 1 \
                or any(d != 1 for d in gv.shape[:-1]) or str(call.ty.dtype) != str(wv.dtype):
            return None
        return wv, gv.reshape(-1).astype(wv.dtype)

    def plain(call, m):
        got = gains(call, m)
        if got is None:
            return call
        wv, gv = got
        return O.matmul(m[x], relax.const(wv * gv))

    def with_bias(call, m):
        got = gains(call, m)
        bv = const_value(m[b])
        if got is None or bv is None or bv.size != got[1].size:
            return call
        wv, gv = got
        return O.add(O.matmul(m[x], relax.const(wv * gv)), relax.const((bv.reshape(-1) * gv).astype(bv.dtype)))

    func = rewrite(comm(mul, biased, g), with_bias, func)
    func = rewrite(comm(mul, lin, g), plain, func)
    # torch.export flattens the tokens around a linear layer: (x @ W + b).reshape(..) * g
    shp = wildcard()
    for inner, fn in ((biased, with_bias), (lin, plain)):
        rp = is_op("relax.reshape")(inner, shp)

        def through_reshape(call, m, fn=fn, rp=rp, inner=inner):
            r, src = m[rp], m[inner]
            if shape_of(r) is None or shape_of(src) is None or shape_of(r)[-1] != shape_of(src)[-1]:
                return call
            new = fn(src, m)
            return call if new is src else O.reshape(new, m[shp])
        func = rewrite(comm(mul, rp, g), through_reshape, func)
    return func


# ----------------------------------------------------------------------------- idioms


def _gelu(func):
    x1, x2, c_half, c_one, c_div, c_mul = (wildcard(), wildcard(), is_const(), is_const(), is_const(),
                                           is_const())
    erf_arg = div(x2, c_div) | mul(x2, c_mul)
    inner_erf = comm(add, is_op("relax.erf")(erf_arg), c_one)

    # tanh form: tanh(c_s * (x + 0.044715 * x^3))
    x3, x4, c_cube, c_k, c_s, c_three = wildcard(), wildcard(), is_const(), is_const(), is_const(), is_const()
    cube = is_op("relax.power")(x4, c_three) | mul(mul(x4, x4), x4)
    poly = comm(add, x3, mul(cube, c_k))
    inner_tanh = comm(add, is_op("relax.tanh")(mul(poly, c_s)), c_one)

    def forms(inner):
        return (comm(mul, mul(x1, c_half), inner) | mul(comm(mul, x1, inner), c_half)
                | comm(mul, x1, mul(inner, c_half)))

    def rw_erf(call, m):
        scale_ok = _is(m[c_div], math.sqrt(2)) if c_div in m else _is(m[c_mul], 1 / math.sqrt(2))
        ok = _same(m[x1], m[x2]) and _is(m[c_half], 0.5) and _is(m[c_one], 1.0) and scale_ok
        return O.nn.gelu(m[x1]) if ok else call

    def rw_tanh(call, m):
        ok = (_same(m[x1], m[x3], m[x4]) and _is(m[c_half], 0.5) and _is(m[c_one], 1.0)
              and _is(m[c_k], 0.044715) and _is(m[c_s], math.sqrt(2 / math.pi))
              and (c_three not in m or _is(m[c_three], 3.0)))
        return O.nn.gelu_tanh(m[x1]) if ok else call

    func = rewrite(forms(inner_erf), rw_erf, func)
    return rewrite(forms(inner_tanh), rw_tanh, func)


def _l2_normalize(func):
    """``x / max(||x||_2, eps)`` over the last axis (``F.normalize``: Swin-V2's cosine
    attention normalizes q and k) -> ``rms_norm(x, 1, eps') / sqrt(D)``: ``||x|| = sqrt(D)
    rms(x)``, and ``eps' = eps^2 / D`` inside the root keeps a zero vector at zero. Equal up
    to float round-off (and the clamp, for vectors shorter than ``eps``); the normalization
    then is one op every later pass knows (int-only's integer RMSNorm)."""
    x, c_lo, c_hi = wildcard(), wildcard(), wildcard()
    x2 = mul(x, x) | is_op("relax.power")(x, is_const())
    norm = is_op("relax.sqrt")(is_op("relax.sum")(x2))
    clipped = is_op("relax.clip")(norm, c_lo, c_hi) | comm(is_op("relax.maximum"), norm, is_const()) | norm
    den = is_op("relax.broadcast_to")(clipped, wildcard()) | clipped
    pat = div(x, den)

    var2val = relax.analysis.get_var2val(func)

    def val(e):
        return var2val.get(e, e) if isinstance(e, relax.Var) else e

    def fn(call, m):
        xs = shape_of(m[x])
        s = val(val(m[norm]).args[0])
        if xs is None or not isinstance(xs[-1], int) or s.attrs.axis is None or len(s.attrs.axis) != 1 \
                or int(s.attrs.axis[0]) % len(xs) != len(xs) - 1 or not bool(s.attrs.keepdims):
            return call
        sq = val(s.args[0])
        if sq.op.name == "relax.power" and _scalar(sq.args[1]) != 2.0:
            return call
        eps = 1e-12
        c = val(m[clipped])
        if isinstance(c, relax.Call) and c.op.name == "relax.clip":
            hi = c.args[2].value if hasattr(c.args[2], "value") else None
            if hi is None or math.isfinite(float(hi)):
                return call  # an upper clamp (norm clipping) is not a normalization
            eps = max(float(c.args[1].value), 0.0)
        elif isinstance(c, relax.Call) and c.op.name == "relax.maximum":
            eps = max(max(_scalar(a) or 0.0 for a in c.args if isinstance(a, tvm.ir.GenericConst)), 0.0)
        if eps > 1e-6:
            return call  # max(||x||, 1) and the like: a real clamp, not F.normalize's guard against 0
        D, dt = xs[-1], str(m[x].ty.dtype)
        y = O.nn.rms_norm(m[x], relax.const(np.ones(D, dt)), axes=[-1], epsilon=eps * eps / D)
        return O.multiply(y, relax.const(1.0 / math.sqrt(D), dt))

    return rewrite(pat, fn, func)


def _norms(func):
    x, xr, xs, xv, c_eps, g, b, c_two = (wildcard(), wildcard(), wildcard(), wildcard(), is_const(),
                                        is_const(), is_const(), is_const())
    mean = is_op("relax.mean")
    # LayerNorm: d = x - mean(x); var = mean(d^2); y = d / sqrt(var + eps)
    mu = mean(x)
    d = sub(xr, mu)
    d2 = is_op("relax.power")(d, c_two) | mul(d, d)
    xvar = wildcard()
    var = mean(d2) | is_op("relax.variance")(xvar)  # (TVM decomposes InstanceNormalization with variance)
    veps = comm(add, var, c_eps) | var  # (no epsilon: torch's dynamo export drops a tiny one)
    y_ln = div(d, is_op("relax.sqrt")(veps)) | comm(mul, d, is_op("relax.rsqrt")(veps))
    ln_full, ln_g, ln_bare = add(comm(mul, y_ln, g), b), comm(mul, y_ln, g), y_ln

    def rw_ln(kind):
        def fn(call, m):
            if not _same(m[x], m[xr]) or (c_eps in m and not _positive_scalar(m[c_eps])):
                return call
            if c_two in m and not _is(m[c_two], 2.0):
                return call
            if xvar in m and not _same(m[x], m[xvar]):
                return call
            means = [e for e in m.values() if isinstance(e, relax.Call)
                     and getattr(e.op, "name", "") in ("relax.mean", "relax.variance")]
            if not all(_last_axis(e) for e in means):
                return call
            dim = shape_of(m[x])[-1]
            dt = str(m[x].ty.dtype)
            if not isinstance(dim, int):  # over a symbolic axis (an instance norm over time)
                return call
            gamma = m[g] if kind != "bare" else relax.const(np.ones(dim, dt))
            beta = m[b] if kind == "full" else relax.const(np.zeros(dim, dt))
            if shape_of(gamma) not in ((dim,), (1,) * (len(shape_of(m[x])) - 1) + (dim,)):
                return call
            eps = float(const_value(m[c_eps])) if c_eps in m else 0.0
            return O.nn.layer_norm(m[x], O.reshape(gamma, [dim]), O.reshape(beta, [dim]), axes=[-1], epsilon=eps)
        return fn

    for pat, kind in ((ln_full, "full"), (ln_g, "gamma"), (ln_bare, "bare")):
        func = rewrite(pat, rw_ln(kind), func)

    # RMSNorm: x * rsqrt(mean(x^2) + eps) * g
    sq = is_op("relax.power")(xs, c_two) | mul(xs, xs)
    veps = comm(add, mean(sq), c_eps) | mean(sq)
    y_rms = comm(mul, xv, is_op("relax.rsqrt")(veps)) | div(xv, is_op("relax.sqrt")(veps))

    def rw_rms(with_gamma):
        def fn(call, m):
            if not _same(m[xs], m[xv]) or (c_eps in m and not _positive_scalar(m[c_eps])) \
                    or (c_two in m and not _is(m[c_two], 2.0)):
                return call
            means = [e for e in m.values() if isinstance(e, relax.Call) and getattr(e.op, "name", "") == "relax.mean"]
            if not all(_last_axis(e) for e in means):
                return call
            dim, dt = shape_of(m[xv])[-1], str(m[xv].ty.dtype)
            if not isinstance(dim, int):
                return call
            gamma = m[g] if with_gamma else relax.const(np.ones(dim, dt))
            if shape_of(gamma) not in ((dim,), (1,) * (len(shape_of(m[xv])) - 1) + (dim,)):
                return call
            eps = float(const_value(m[c_eps])) if c_eps in m else 0.0
            return O.nn.rms_norm(m[xv], O.reshape(gamma, [dim]), axes=[-1], epsilon=eps)
        return fn

    func = rewrite(comm(mul, y_rms, g), rw_rms(True), func)
    # the gain applied first: (g * x) * rsqrt(mean(x^2) + eps), as `w * x * torch.rsqrt(...)`
    # associates left to right
    g_first = comm(mul, comm(mul, xv, g), is_op("relax.rsqrt")(veps)) | div(comm(mul, xv, g),
                                                                       is_op("relax.sqrt")(veps))
    func = rewrite(g_first, rw_rms(True), func)
    return rewrite(y_rms, rw_rms(False), func)


def _softmax(func):
    x, xm = wildcard(), wildcard()
    e = is_op("relax.exp")(sub(x, is_op("relax.max")(xm)))
    pat = div(e, is_op("relax.sum")(e))

    def fn(call, m):
        red = [v for v in m.values() if isinstance(v, relax.Call) and getattr(v.op, "name", "") in ("relax.max", "relax.sum")]
        if not _same(m[x], m[xm]) or not all(_last_axis(r) for r in red):
            return call
        return O.nn.softmax(m[x], axis=-1)

    return rewrite(pat, fn, func)


def _dims_equal(a, b) -> bool:
    """Two shapes (lists of ints and PrimExprs) equal dim by dim."""
    an = Analyzer()
    return len(a) == len(b) and all(
        (x == y) if isinstance(x, int) and isinstance(y, int)
        else not isinstance(x, int) and not isinstance(y, int) and an.can_prove_equal(x, y) for x, y in zip(a, b))


def _softmax_through_reshape(func):
    """``softmax(reshape(x, [..., n]), -1)`` with ``x``'s last axis ``n`` -> ``reshape(softmax(x,
    -1), [..., n])``: a row-wise op commutes with a reshape of the rows. Eager attention of
    older HF models (DETR, Speech2Text, the BART family before SDPA) views the scores as
    ``[batch * heads, T, S]`` for the softmax; moved back, the attention pattern sees them."""
    x = wildcard()
    r = is_op("relax.reshape")(x, wildcard())

    def fn(call, m):
        src, dst = shape_of(m[x]), shape_of(m[r])
        axis = int(call.attrs.axis)
        if src is None or dst is None or axis not in (-1, len(dst) - 1) or not _dims_equal(src[-1:], dst[-1:]):
            return call
        return O.reshape(O.nn.softmax(m[x], axis=-1), m[r].args[1])

    return rewrite(is_op("relax.nn.softmax")(r), fn, func)


def _matmul_through_reshape(func):
    """``matmul(reshape(p, [M.., T, S]), reshape(v, [M.., S, D]))`` where ``p`` and ``v`` share
    their leading dims ``L..`` (merged alike into ``M..``) -> ``reshape(matmul(p, v), [M.., T,
    D])``: the batched product of the same row-major regrouping (the ``P V`` of the eager
    attention above)."""
    p, v = wildcard(), wildcard()
    rp, rv = is_op("relax.reshape")(p, wildcard()), is_op("relax.reshape")(v, wildcard())

    def fn(call, m):
        ps, vs, pd, vd = shape_of(m[p]), shape_of(m[v]), shape_of(m[rp]), shape_of(m[rv])
        if None in (ps, vs, pd, vd) or min(len(ps), len(vs), len(pd), len(vd)) < 3 or call.attrs.out_dtype not in (None, ""):
            return call
        if not (_dims_equal(ps[-2:], pd[-2:]) and _dims_equal(vs[-2:], vd[-2:]) and _dims_equal(ps[:-2], vs[:-2])
                and _dims_equal(pd[:-2], vd[:-2])):
            return call
        return O.reshape(O.matmul(m[p], m[v]), [*pd[:-2], pd[-2], vd[-1]])

    return rewrite(is_op("relax.matmul")(rp, rv), fn, func)


def _softmax_shift(func):
    """``softmax(x - max(x))`` over the last axis is ``softmax(x)``: the stabilizing shift
    softmax makes itself, written out before it (gpt-oss's attention with sinks). torch.export
    writes the max as ``topk(x, 1)[0]``, its pair repacked in a tuple literal."""
    x, shift = wildcard(), wildcard()
    pat = is_op("relax.nn.softmax")(sub(x, shift))
    var2val = relax.analysis.get_var2val(func)

    def val(e):
        while isinstance(e, relax.Var) and e in var2val:
            e = var2val[e]
        return e

    def is_max_of(e, src, ndim) -> bool:
        e = val(e)
        while isinstance(e, relax.TupleGetItem) and int(e.index) == 0:
            t = val(e.tuple_value)
            if isinstance(t, relax.Tuple):
                e = val(t.fields[0])
                continue
            a = getattr(t, "attrs", None)
            return isinstance(t, relax.Call) and getattr(t.op, "name", "") == "relax.topk" and val(t.args[0]).same_as(src) \
                and int(a.k) == 1 and int(a.axis) in (-1, ndim - 1) and bool(a.largest)
        return isinstance(e, relax.Call) and getattr(e.op, "name", "") == "relax.max" and val(e.args[0]).same_as(src) \
            and _last_axis(e)

    def fn(call, m):
        ndim = len(call.args[0].ty.shape)
        if int(call.attrs.axis) not in (-1, ndim - 1) or not is_max_of(m[shift], val(m[x]), ndim):
            return call
        return O.nn.softmax(m[x], axis=-1)

    return rewrite(pat, fn, func)


# ----------------------------------------------------------------------------- composites


def attention_patterns() -> list[FusionPattern]:
    """``matmul(softmax(scale(matmul(q, kT)) [+ mask]), v)``; the scale is optional. The
    probabilities may be NaN-guarded, ``where(isnan(p), 0, p)``, as torch's SDPA
    decomposition writes it (a row masked everywhere attends to nothing instead of NaN)."""
    q, kt, v, mask, s, sink = wildcard(), wildcard(), wildcard(), wildcard(), is_const(), wildcard()
    scores = is_op("relax.matmul")(q, kt)
    scaled = div(scores, s) | mul(scores, s)
    out = []
    for guarded in (True, False):
        for sc in (scaled, scores):
            for masked in (add(sc, mask), sc):
                p = is_op("relax.nn.softmax")(masked)
                if guarded:
                    p = is_op("relax.where")(is_op("relax.isnan")(p), is_const(), p)
                out.append(FusionPattern("qcompile.attention", is_op("relax.matmul")(p, v),
                                         {"probs": p}, _zero_guard if guarded else None))
    for sc in (scaled, scores):  # attention sinks (gpt-oss)
        for masked in (add(sc, mask), sc):
            logits = is_op("relax.concat")(is_tuple([masked, sink]))
            p = is_op("relax.strided_slice")(is_op("relax.nn.softmax")(logits), varg_default_wildcard=True)
            out.append(FusionPattern("qcompile.attention", is_op("relax.matmul")(p, v),
                                     {"logits": logits, "scores": masked, "probs": p}, _sinks_sliced_off))
    return out


def _sinks_sliced_off(ctx) -> bool:
    """``softmax(concat([scores, sinks], -1))[..., :n] V`` with ``n`` the key length: sink
    logits (learned per-head columns) join the normalization and are dropped before ``P V``,
    so they only lower every probability."""
    e = ctx.annotated_expr
    logits, scores, probs = e["logits"], e["scores"], e["probs"]
    ndim = len(scores.ty.shape)
    if int(logits.attrs.axis) % ndim != ndim - 1:
        return False
    args = probs.args

    def ints(t):
        vals = [getattr(v, "value", v) for v in t.fields]
        return [int(v) for v in vals] if all(isinstance(v, int) for v in vals) else None

    axes, begin = ints(args[1]), ints(args[2])
    strides = ints(args[4]) if len(args) > 4 else [1]
    if axes is None or [a % ndim for a in axes] != [ndim - 1] or begin != [0] or strides != [1]:
        return False
    return Analyzer().can_prove_equal(probs.ty.shape[-1], scores.ty.shape[-1])


def _zero_guard(ctx) -> bool:
    guard = ctx.annotated_expr["probs"]
    return _is(guard.args[1], 0.0, 1e-12) if isinstance(guard.args[1], tvm.ir.GenericConst) else False


def rope_patterns() -> list[FusionPattern]:
    """``x*cos + rot(x)*sin`` with rot rotate-half or interleaved (pairs (2i, 2i+1))."""
    pats = []
    for form in ("half", "interleaved"):
        x, xa, xb, cos, sin = wildcard(), wildcard(), wildcard(), wildcard(), wildcard()
        sa = is_op("relax.strided_slice")(xa, varg_default_wildcard=True)
        sb = is_op("relax.strided_slice")(xb, varg_default_wildcard=True)
        if form == "half":
            rot = is_op("relax.concat")(is_tuple([is_op("relax.negative")(sa), sb]))
        else:
            ed = is_op("relax.expand_dims")
            rot = is_op("relax.reshape")(is_op("relax.concat")(is_tuple([ed(is_op("relax.negative")(sa)), ed(sb)])), wildcard())
        pat = comm(add, comm(mul, x, cos), comm(mul, rot, sin))
        annotations = {"x": x, "xa": xa, "xb": xb, "sa": sa, "sb": sb}

        def check(ctx, form=form):
            e = ctx.annotated_expr
            if not _same(e["x"], e["xa"], e["xb"]):
                return False
            hd = shape_of(e["x"])
            if hd is None:
                return False
            return _slices_are_rope(e["sa"], e["sb"], hd[-1], form)

        pats.append(FusionPattern("qcompile.rope", pat, annotations, check))
    return pats


def _canonical_shape(ty, ana) -> list | None:
    """``ty``'s dims simplified, where any of them is not in its simplest form."""
    if not isinstance(ty, relax.TensorType) or not isinstance(ty.shape, relax.ShapeExpr):
        return None
    dims = list(ty.shape.values)
    new = [ana.simplify(d) for d in dims]
    return None if all(tvm_ffi.structural_equal(a, b) for a, b in zip(dims, new)) else new


@tvm.ir.transform.module_pass(opt_level=0, name="qcompile.SimplifyShapes")
def _simplify_shapes(mod, ctx):
    """Symbolic dims in their simplest form. The importer leaves arithmetic in a tensor's
    type where it slices and pads (MobileBERT's trigram embedding: ``seq - 1 + 1``), and TVM
    simplifies it in some places and not others: a kernel emitted with one spelling and a
    legalized op with the other then describe one tensor twice, and ``FuseTIR`` fails
    ("Inconsistent buffers ... mapped to the same relax var"). A binding whose type is not
    simplified is followed by a ``reshape`` to the simplified shape (a no-op view), so every
    later type is inferred from simplified dims."""
    ana = Analyzer()
    main = next((f for gv, f in mod.functions.items() if gv.name_hint == "main"), None)
    if not isinstance(main, relax.Function) or not any(
            _canonical_shape(b.var.ty, ana) is not None for blk in main.body.blocks for b in blk.bindings):
        return mod

    def on_binding(bb, var, value):
        new = _canonical_shape(bb.normalize(value).ty, ana)
        if new is None:
            return None
        return O.reshape(bb.emit(value, name_hint=var.name), relax.ShapeExpr(new))

    return rebuild_main(mod, on_binding)


@tvm.ir.transform.module_pass(opt_level=0, name="qcompile.InlineRopeShapes")
def _inline_rope_shapes(mod, ctx):
    """Interleaved RoPE merges its pairs back with ``reshape(.., shape)``; with symbolic dims
    the fusion lifts that shape into a parameter of the composite, which no backend can
    lower (``reshape`` needs its target in the function). The target is the shape of the
    RoPE input ``x`` (the output has the input's shape): it is rebuilt from ``x``'s own
    dims inside the composite, and the argument dropped at the call sites."""
    fixed = {}
    for gv, f in mod.functions.items():
        if not isinstance(f, relax.Function) or (f.attrs or {}).get("Composite") != "qcompile.rope":
            continue
        shape_params = [i for i, p in enumerate(f.params) if isinstance(p.ty, relax.ShapeType)]
        x_shape = f.params[0].ty.shape if isinstance(f.params[0].ty, relax.TensorType) else None
        if not shape_params or not isinstance(x_shape, relax.ShapeExpr):
            continue
        g = f.bind_params({f.params[i]: relax.ShapeExpr(x_shape.values) for i in shape_params})
        free = list(relax.analysis.free_symbolic_vars(g))
        if free:  # x's dims are expressions of dims no parameter still defines (wav2vec2-conformer's
            # ``samples // 10 - 1`` frames): they come in as one shape parameter of their own
            g = relax.Function(list(g.params) + [relax.Var("dims", relax.ShapeType(free))], g.body, g.ret_ty,
                               g.is_pure, g.attrs)
        fixed[gv] = (g, set(shape_params), free)
    if not fixed:
        return mod

    bb = relax.BlockBuilder(mod)
    new_gv = {gv: bb.add_func(f, gv.name_hint + "_inlined") for gv, (f, _, _) in fixed.items()}

    @relax.expr_functor.mutator
    class _Calls(relax.PyExprMutator):
        def visit_call_(self, call):
            call = super().visit_call_(call)
            if isinstance(call.op, relax.GlobalVar) and call.op in fixed:
                _, drop, free = fixed[call.op]
                return relax.Call(new_gv[call.op], [a for i, a in enumerate(call.args) if i not in drop]
                                  + ([relax.ShapeExpr(free)] if free else []))
            return call

    out = bb.get()
    for gv, f in list(out.functions.items()):
        if isinstance(f, relax.Function) and gv not in fixed and gv not in new_gv.values():
            # the composite's dims are its own tir vars: at a call site, the caller's of that name
            own = {str(v): v for v in relax.analysis.defined_symbolic_vars(f)}
            for k, (g, drop, free) in fixed.items():
                fixed[k] = (g, drop, [own.get(str(v), v) for v in free])
            out[gv] = _Calls(out).visit_expr(f)
    for gv in new_gv:
        del out[gv]
    out = relax.transform.Normalize()(out)
    return out


def _rope_sign(func):
    """RoPE written with the other sign of ``rot``: ``x*cos + cat(x[d/2:], -x[:d/2])*sin``
    (NanoChat; interleaved: pairs ``(x[1::2], -x[0::2])``) is ``x*cos + rot(x)*(-sin)``, a
    rotation by ``-theta``: rewritten to the canonical ``rot`` (``cat(-x[d/2:], x[:d/2])``)
    times ``-sin`` so that it fuses into ``qcompile.rope`` like any other."""
    xa, xb, sin = wildcard(), wildcard(), wildcard()
    sa = is_op("relax.strided_slice")(xa, varg_default_wildcard=True)
    sb = is_op("relax.strided_slice")(xb, varg_default_wildcard=True)
    ed = is_op("relax.expand_dims")
    half = is_op("relax.concat")(is_tuple([sa, is_op("relax.negative")(sb)]))
    inter = is_op("relax.reshape")(is_op("relax.concat")(is_tuple([ed(sa), ed(is_op("relax.negative")(sb))])),
                                   wildcard())

    def fn(call, m, form, var2val):
        def val(e):
            return var2val.get(e, e) if isinstance(e, relax.Var) else e

        rot = val(m[half] if form == "half" else m[inter])
        hd = shape_of(m[xa])
        # the slices are the other way round from rotate-half's: (x[d/2:], x[:d/2]) here
        if not _same(m[xa], m[xb]) or hd is None or not _slices_are_rope(m[sa], m[sb], hd[-1], form):
            return call
        if form == "half":
            canon = O.concat([O.negative(m[sa]), m[sb]], axis=int(rot.attrs.axis))
        else:
            cat = val(rot.args[0])
            ea, eb = (val(f) for f in val(cat.args[0]).fields)
            inner = O.concat([O.expand_dims(O.negative(m[sa]), int(ea.attrs.axis[0])),
                              O.expand_dims(m[sb], int(eb.attrs.axis[0]))], axis=int(cat.attrs.axis))
            canon = O.reshape(inner, rot.args[1])
        return O.multiply(canon, O.negative(m[sin]))

    for form, rot in (("half", half), ("interleaved", inter)):
        var2val = relax.analysis.get_var2val(func)
        func = rewrite(comm(mul, rot, sin), lambda c, m, form=form, var2val=var2val: fn(c, m, form, var2val), func)
    return func


def _rope_chunked(func):
    """RoPE written on the two halves apart (gpt-oss): ``cat(x1*cos - x2*sin, x2*cos + x1*sin)``
    with ``x1, x2 = x[..., :d/2], x[..., d/2:]`` and ``cos``, ``sin`` of width ``d/2``. That is
    rotate-half RoPE with ``cos`` and ``sin`` repeated over both halves, and is rewritten to it
    (``x*cat(cos, cos) + cat(-x2, x1)*cat(sin, sin)``) so that it fuses into ``qcompile.rope``."""
    xa, xb, cos, sin, cos2, sin2 = (wildcard() for _ in range(6))
    x1 = is_op("relax.strided_slice")(xa, varg_default_wildcard=True)
    x2 = is_op("relax.strided_slice")(xb, varg_default_wildcard=True)
    first = sub(comm(mul, x1, cos), comm(mul, x2, sin))
    second = comm(add, comm(mul, x2, cos2), comm(mul, x1, sin2))
    pat = is_op("relax.concat")(is_tuple([first, second]))

    def fn(call, m):
        x, hd = m[xa], shape_of(m[xa])
        if not _same(x, m[xb]) or not _same(m[cos], m[cos2]) or not _same(m[sin], m[sin2]) or hd is None \
                or not isinstance(hd[-1], int) or hd[-1] % 2 or int(call.attrs.axis) not in (-1, len(hd) - 1) \
                or not _slices_are_rope(m[x2], m[x1], hd[-1], "half"):
            return call
        for t in (m[cos], m[sin]):
            ts = shape_of(t)
            if ts is None or ts[-1] != hd[-1] // 2:
                return call

        def both(t):
            return O.concat([t, t], axis=-1)

        rot = O.concat([O.negative(m[x2]), m[x1]], axis=-1)
        return O.add(O.multiply(x, both(m[cos])), O.multiply(rot, both(m[sin])))

    return rewrite(pat, fn, func)


def _slices_are_rope(sa, sb, d, form) -> bool:
    """rotate-half: -x[d/2:], x[:d/2]; interleaved: -x[1::2], x[0::2]; both on the last axis."""
    ndim = len(sa.args[0].ty.shape)
    pa, pb = slice_params(sa), slice_params(sb)
    for axes, *_ in (pa, pb):
        if len(axes) != 1 or axes[0] not in (-1, ndim - 1):
            return False
    (_, ba, ea, ta), (_, bb, eb, tb) = pa, pb
    clamp = lambda v: min(v[0], d)  # noqa: E731
    if form == "half":
        return ta == tb == [1] and ba[0] == d // 2 and clamp(ea) == d and bb[0] == 0 and clamp(eb) == d // 2
    return ta == tb == [2] and ba[0] == 1 and bb[0] == 0 and clamp(ea) >= d - 1 and clamp(eb) >= d - 1


# ----------------------------------------------------------------------------- the pipeline


def _func_rewrites(*steps):
    @tvm.ir.transform.module_pass(opt_level=0, name="qcompile.CanonicalIdioms")
    def run(mod, ctx):
        mod = mod.clone() if hasattr(mod, "clone") else mod
        for gv, f in list(mod.functions.items()):
            if isinstance(f, relax.Function) and "Composite" not in (f.attrs or {}):
                for step in steps:
                    f = step(f)
                mod[gv] = f
        return mod

    return run


def canonicalize_passes() -> list:
    """The canonicalization pipeline as TVM passes (run in order, idempotent)."""
    T = relax.transform
    return [
        _simplify_shapes,
        _func_rewrites(_materialize_full, _materialize_arange, _take_clip, _static_shape_values, _split_to_slices),
        _func_rewrites(_bool_arithmetic),
        T.FoldConstant(),
        T.EliminateCommonSubexpr(),
        _func_rewrites(_fold_nonzero),
        T.FoldConstant(),
        _func_rewrites(_trivial_casts),
        _func_rewrites(_const_where, _identity_rewrites, _straight_through, _const_second, _unwrap_matmul,
                       _scalars_out_of_matmul, _pad_into_max_pool, _same_size_resize, _multi_input_reduce,
                       _prelu),
        T.FoldConstant(),
        T.EliminateCommonSubexpr(),
        _func_rewrites(_gelu, _l2_normalize, _norms, _softmax, _softmax_shift, _heads_split, _where_mask, _mask_zero_guard, _mask_before_scale, _constant_terms, _split_view_bias, _summed_scores, _scores_first, _two_biases, _identity_rewrites, _broadcast_weight, _mask_idioms,
                       _channel_scale_into_linear),
        # (scores reshaped around each additive term, as CLIP-style text towers write them, sum
        # their terms only once the reshape pairs are gone: _two_biases again)
        _func_rewrites(_rope_chunked, _rope_sign, _mask_floor, _softmax_through_reshape, _matmul_through_reshape, _identity_rewrites,
                       _two_biases),
        T.FoldConstant(),
        T.FuseOpsByPattern(rope_patterns(), bind_constants=False, annotate_codegen=False),
        _inline_rope_shapes,
        T.FuseOpsByPattern(attention_patterns(), bind_constants=False, annotate_codegen=False),
        T.DeadCodeElimination(),
        T.CanonicalizeBindings(),
    ]


def bind_params(mod):
    """Turn weights kept as function parameters (``attrs['params']``) into constants."""
    from tvm.relax.frontend import detach_params

    func = mod["main"]
    if "params" not in (func.attrs or {}):
        return mod
    mod, params = detach_params(mod)
    num_input = int(mod["main"].attrs["num_input"])
    names = [p.name for p in mod["main"].params]
    return relax.transform.BindParams("main", dict(zip(names[num_input:], params["main"])))(mod)


def canonicalize(mod):
    """Run the canonicalization pipeline on a module (weights bound as constants)."""
    mod = bind_params(mod)
    try:
        with tvm.transform.PassContext(opt_level=0):
            return tvm.transform.Sequential(canonicalize_passes(), name="qcompile.passes.canonicalize.rules")(mod)
    except Exception as e:
        symbolic = sorted({str(v) for f in mod.functions.values() if isinstance(f, relax.Function)
                           for v in relax.analysis.defined_symbolic_vars(f)})
        if "emit_te now only supports Tensor that has ShapeExpr shape" not in str(e) or not symbolic:
            raise
        # TVM 0.27's FoldConstant loses a shape that mixes symbolic and fixed dims (LeViT: a
        # fixed 16x16 attention-bias table added to scores over a symbolic image size)
        from qcompile.errors import QCompileError

        raise QCompileError("canonicalize: TVM's constant folding lost a tensor shape that mixes the symbolic dims "
                            f"{', '.join(symbolic)} with fixed ones (a fixed-size table broadcast against "
                            "them?)", hint="fix those dims with --input-shape (e.g. the image size the model "
                                           "was trained at)") from None
