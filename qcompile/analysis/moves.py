"""Data movement: the one table of ops that only move, select or repeat values, and how
each maps a tensor axis between its (first) input and its output.

Every analysis that walks "through data movement" (the KV-cache path from the attention
back to ``concat(past, new)``, the residual stream's channel axis, K-sort's head columns)
asks this module, so a new exporter spelling (GQA's ``expand_dims -> broadcast_to ->
reshape``, a ``squeeze``, a ``tile``) is taught here once.

``axis_back(call, out_ty, ax)``: the input axis that output axis ``ax`` reads, or None when
the output axis is made by the op (inserted, broadcast, concatenated or gathered along);
``axis_forward(call, in_ty, ax, out_ty)``: the output axis that carries input axis ``ax``,
or None when the op mixes or drops it.
"""
from __future__ import annotations

import tvm
from tvm import relax

#: ops whose output elements are copies of input elements (no arithmetic)
MOVES = frozenset({"reshape", "permute_dims", "concat", "take", "expand_dims", "squeeze",
                   "broadcast_to", "tile", "repeat", "strided_slice", "gather_elements"})
#: (``gather_elements``: a cache buffer's per-row slots. Its index may differ along every axis,
#: so no axis is said to be carried through it; K-sort's value path follows it only where the
#: index is the same along the head channels: ``residual.move_ids``)
#: the subset that keeps every element of its first input exactly once, in some layout
#: or repeated (no selection): a cache tensor reaches the attention through these
REPEATS = frozenset({"reshape", "permute_dims", "expand_dims", "squeeze", "broadcast_to", "tile", "repeat"})


def op_name(value) -> str | None:
    if isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.Op):
        return value.op.name.removeprefix("relax.")
    return None


def _ndim(ty) -> int:
    return len(ty.shape)


def _dims(ty) -> list:
    return [int(d) if isinstance(d, tvm.tirx.IntImm) else d for d in ty.shape.values]


def _axes(attr, nd) -> list[int]:
    return sorted(int(a) % nd for a in attr)


def _same(a, b) -> bool:
    if isinstance(a, int) or isinstance(b, int):
        return a == b
    import tvm_ffi

    return bool(tvm_ffi.structural_equal(a, b))


def slice_params(call):
    """(axes, begin, end, strides) of a strided_slice; in 0.27 they are Tuple arguments."""
    def ints(t):
        return [int(getattr(v, "value", v)) for v in t.fields]
    axes, begin, end = (ints(call.args[i]) for i in (1, 2, 3))
    strides = ints(call.args[4]) if len(call.args) > 4 else [1] * len(axes)
    return axes, begin, end, strides


def axis_back(call, out_ty, ax: int, reshape_axis=None) -> int | None:
    """Input axis of output axis ``ax`` (see module doc). ``reshape_axis(src_dims, dst_dims,
    axis)`` maps an axis through a reshape (the caller's rule for split/merged axes)."""
    op = op_name(call)
    src = call.args[0]
    if op == "concat":
        return None if int(call.attrs.axis) % _ndim(out_ty) == ax else ax
    nd_in, nd_out = _ndim(src.ty), _ndim(out_ty)
    if op == "permute_dims":
        return int(call.attrs.axes[ax]) if call.attrs.axes is not None else nd_out - 1 - ax
    if op == "reshape":
        return reshape_axis(_dims(out_ty), _dims(src.ty), ax) if reshape_axis else None
    if op == "concat":
        return None if int(call.attrs.axis) % nd_out == ax else ax
    if op == "take":
        t_ax = int(call.attrs.axis) % nd_in if call.attrs.axis is not None else 0
        idx_nd = nd_out - nd_in + 1
        if t_ax <= ax < t_ax + idx_nd:
            return None
        return ax if ax < t_ax else ax - idx_nd + 1
    if op == "expand_dims":
        new = _axes(call.attrs.axis, nd_out)
        return None if ax in new else ax - sum(a < ax for a in new)
    if op == "squeeze":
        gone = _axes(call.attrs.axis, nd_in) if call.attrs.axis is not None else \
            [i for i, d in enumerate(_dims(src.ty)) if d == 1]
        kept = [i for i in range(nd_in) if i not in gone]
        return kept[ax]
    if op == "broadcast_to":
        k = ax - (nd_out - nd_in)
        if k < 0:
            return None
        din, dout = _dims(src.ty)[k], _dims(out_ty)[ax]
        return None if din == 1 and not _same(dout, 1) else k
    if op in ("tile", "repeat"):
        reps = _repeated_axes(call, nd_out)
        k = ax - (nd_out - nd_in)
        return None if k < 0 or ax in reps else k
    if op == "strided_slice":
        sliced = {int(a) % nd_in for a in call.args[1].fields} if isinstance(call.args[1], relax.Tuple) else None
        return None if sliced is None or ax in sliced else ax
    return None


def axis_forward(call, in_ty, ax: int, out_ty, reshape_axis=None) -> int | None:
    """Output axis that carries input axis ``ax`` (see module doc)."""
    op = op_name(call)
    if op == "concat":
        return None if int(call.attrs.axis) % _ndim(out_ty) == ax else ax
    nd_in, nd_out = _ndim(in_ty), _ndim(out_ty)
    if op == "permute_dims":
        axes = [int(a) for a in call.attrs.axes] if call.attrs.axes is not None else list(range(nd_in))[::-1]
        return axes.index(ax)
    if op == "reshape":
        return reshape_axis(_dims(in_ty), _dims(out_ty), ax) if reshape_axis else None
    if op == "concat":
        return None if int(call.attrs.axis) % nd_out == ax else ax
    if op == "take":
        t_ax = int(call.attrs.axis) % nd_in if call.attrs.axis is not None else 0
        if t_ax == ax:
            return None
        return ax if ax < t_ax else ax + nd_out - nd_in
    if op == "expand_dims":
        new = _axes(call.attrs.axis, nd_out)
        kept = [i for i in range(nd_out) if i not in new]
        return kept[ax]
    if op == "squeeze":
        gone = _axes(call.attrs.axis, nd_in) if call.attrs.axis is not None else \
            [i for i, d in enumerate(_dims(in_ty)) if d == 1]
        return None if ax in gone else ax - sum(g < ax for g in gone)
    if op == "broadcast_to":
        out_ax = ax + nd_out - nd_in
        din, dout = _dims(in_ty)[ax], _dims(out_ty)[out_ax]
        return None if din == 1 and not _same(dout, 1) else out_ax
    if op in ("tile", "repeat"):
        out_ax = ax + nd_out - nd_in
        return None if out_ax in _repeated_axes(call, nd_out) else out_ax
    if op == "strided_slice":  # selecting tokens (BEiT drops its CLS token before pooling)
        sliced = {int(a) % nd_in for a in call.args[1].fields} if isinstance(call.args[1], relax.Tuple) else None
        return None if sliced is None or ax in sliced else ax
    return None


def _repeated_axes(call, nd_out) -> set[int]:
    if op_name(call) == "repeat":
        return {int(call.attrs.axis) % nd_out} if call.attrs.axis is not None else set(range(nd_out))
    reps = [int(r) for r in call.attrs.repeats]
    reps = [1] * (nd_out - len(reps)) + reps
    return {i for i, r in enumerate(reps) if r != 1}
