"""Converters for torch ops that TVM 0.27's ``from_exported_program`` has none for.

Passed as its ``custom_convert_map`` by :func:`qcompile.loader.load_torch` (nothing global
changes). Each converter takes the FX node and the importer, emits Relax through the
importer's block builder and documents where the op comes from; each has a test in
``tests/test_torch_hf.py`` against torch on the op alone.

Mixture-of-experts layers of ``transformers`` 5.x (Mixtral, Qwen2-MoE, OLMoE, Qwen3-MoE,
GPT-OSS, ...) run their experts as a *grouped* matmul by default
(``experts_implementation="grouped_mm"``): the routed (token, expert) rows are sorted by
expert, ``histc`` counts the rows per expert, and ``grouped_mm`` multiplies each run of
rows by its expert's weight. On CPU in float32 the product is ``transformers``' own custom
op ``transformers::grouped_mm_fallback``; in bfloat16 it is ``aten._grouped_mm``.
"""
from __future__ import annotations

from tvm import relax
from tvm.relax import op as O


def _arg(node, importer, i: int, name: str, default=None):
    a = node.args[i] if len(node.args) > i else node.kwargs.get(name, default)
    return importer.env[a] if hasattr(a, "op") else a


def histc(node, importer):
    """``torch.histc(x, bins, min, max)``: counts of ``x`` in ``bins`` equal-width bins
    over ``[min, max]`` (a value equal to ``max`` in the last bin, values outside not
    counted), in ``x``'s float dtype. Written as a comparison of each value's bin with
    ``arange(bins)`` summed over the values (``len(x) * bins`` compares: ``histc`` counts
    routed rows per expert). ``min == max`` (torch: the data's own range) is refused."""
    from qcompile.errors import QCompileError

    bb = importer.block_builder
    x = _arg(node, importer, 0, "input")
    bins = int(_arg(node, importer, 1, "bins", 100))
    lo = float(_arg(node, importer, 2, "min", 0))
    hi = float(_arg(node, importer, 3, "max", 0))
    if not hi > lo:
        raise QCompileError(f"torch.histc at '{node.name}' with min >= max (the data's own range) has no "
                            "static bins; give min < max")
    dt = str(x.ty.dtype)
    flat = bb.emit(O.reshape(x, [-1]))
    scaled = bb.emit(O.floor(O.multiply(O.subtract(flat, relax.const(lo, dt)), relax.const(bins / (hi - lo), dt))))
    b = bb.emit(O.clip(O.astype(scaled, "int64"), 0, bins - 1))
    inside = bb.emit(O.logical_and(O.greater_equal(flat, relax.const(lo, dt)), O.less_equal(flat, relax.const(hi, dt))))
    hit = bb.emit(O.logical_and(O.equal(O.expand_dims(b, 1), O.arange(0, bins, 1, "int64")), O.expand_dims(inside, 1)))
    return bb.emit(O.sum(O.astype(hit, dt), axis=[0]))


def grouped_mm(node, importer):
    """``grouped_mm(x, w, offs)``: ``x`` is ``[S, K]`` with its rows in groups,
    ``w`` ``[G, K, N]``, ``offs`` the cumulative group ends; row ``t`` of group ``g`` (the
    number of ends ``<= t``) is ``x[t] @ w[g]``, rows past the last end are zero. Computed
    as every group's product of every row, ``[G, S, N]``, and each row's own picked by a
    one-hot over the groups: G times the multiply-adds of the grouped product, no ``[S, K,
    N]`` gather of weights. An optional ``bias`` (``aten._grouped_mm``) is ``[G, N]``."""
    bb = importer.block_builder
    fallback = "fallback" in str(node.target)  # transformers' op; else aten._grouped_mm
    x = _arg(node, importer, 0, "input" if fallback else "self")
    w = _arg(node, importer, 1, "weight" if fallback else "mat2")
    offs = _arg(node, importer, 2, "offs")
    bias = None if fallback else _arg(node, importer, 3, "bias")
    dt = str(x.ty.dtype)
    s = x.ty.shape[0]
    rows = bb.emit(O.arange(0, s, 1, "int64"))
    ends = bb.emit(O.astype(offs, "int64"))
    group = bb.emit(O.sum(O.astype(O.less_equal(O.expand_dims(ends, 0), O.expand_dims(rows, 1)), "int64"), axis=[1]))
    n_groups = w.ty.shape[0]
    onehot = bb.emit(O.astype(O.equal(O.expand_dims(group, 1), O.arange(0, n_groups, 1, "int64")), dt))  # [S, G]
    every = bb.emit(O.matmul(O.expand_dims(x, 0), w))  # [G, S, N]
    if bias is not None:
        every = bb.emit(O.add(every, O.expand_dims(bias, 1)))
    picked = bb.emit(O.multiply(O.permute_dims(every, [1, 0, 2]), O.expand_dims(onehot, 2)))  # [S, G, N]
    return bb.emit(O.sum(picked, axis=[1]))


def _torch_dtype(node) -> str:
    """The dtype torch gives ``node``'s result (``meta["val"]``, a fake tensor), as TVM
    spells it."""
    return str(node.meta["val"].dtype).replace("torch.", "")


def divide(node, importer):
    """``a / b``, ``torch.div(a, b, rounding_mode=...)`` and ``a // b`` with torch's
    result dtype (the node's own ``meta["val"]``). TVM's converters divide in the
    operands' dtype and build a Python scalar as an int32 or float32 constant: an integer
    true division came out truncated and integer (``ids / 4``: no error), and any
    ``int64 // 3`` or ``torch.div(x, 4, rounding_mode=...)`` with a scalar failed to import
    (``Binary operators must have the same datatype``: the argsorted rows of a grouped MoE
    divided by top-k). Both operands are cast to the result dtype; ``floor`` and ``trunc``
    round as torch does (``floor_divide`` / ``divide`` of integers truncates in TVM)."""
    bb = importer.block_builder
    args = importer.retrieve_args(node)
    lhs, rhs = args[0], args[1]
    mode = args[2] if len(args) > 2 else node.kwargs.get("rounding_mode")
    if "floor" in str(node.target) or str(node.target) == "floordiv":
        mode = "floor"
    dt = _torch_dtype(node)

    def cast(v):
        if isinstance(v, relax.Expr):
            return v if str(v.ty.dtype) == dt else bb.emit(O.astype(v, dt))
        return relax.const(v, dt)

    a, b = cast(lhs), cast(rhs)
    integral = not dt.startswith(("float", "bfloat"))
    if mode is None or (mode == "trunc" and integral):
        return bb.emit(O.divide(a, b))
    if mode == "floor":
        return bb.emit(O.floor_divide(a, b))
    return bb.emit(O.trunc(O.divide(a, b)))


def clamp(node, importer):
    """``clamp`` / ``clamp_min`` / ``clamp_max`` of an integer tensor (``n.clamp(min=1)``,
    a count guarded against zero): TVM's converter fills the missing bound with a float
    infinity, which an integer ``clip`` cannot take (``Cannot convert infinity to BigInt``).
    Written as ``maximum`` / ``minimum`` with bounds in the tensor's dtype; float tensors
    keep TVM's own converter."""
    x = importer.env[node.args[0]]
    dt = str(x.ty.dtype)
    name = str(node.target.__name__)
    if dt.startswith(("float", "bfloat")):
        own = {"clamp_min.default": importer._clamp_min, "clamp_max.default": importer._clamp_max}
        return own.get(name, importer._clamp)(node)
    bb = importer.block_builder
    args = importer.retrieve_args(node)
    if name == "clamp_min.default":
        lo, hi = args[1], None
    elif name == "clamp_max.default":
        lo, hi = None, args[1]
    else:
        lo = args[1] if len(args) > 1 else node.kwargs.get("min")
        hi = args[2] if len(args) > 2 else node.kwargs.get("max")

    def bound(v):
        return v if isinstance(v, relax.Expr) else relax.const(v, dt)

    if lo is not None:
        x = bb.emit(O.maximum(x, bound(lo)))
    if hi is not None:
        x = bb.emit(O.minimum(x, bound(hi)))
    return x


def topk(node, importer):
    """``torch.topk(..., sorted=False)`` (the MoE routers of DeepSeek-V3, Dots1, GLM-4-MoE
    pick their groups and experts unsorted): torch leaves the order of an unsorted result
    unspecified, so the sorted one is a valid answer; TVM's converter refuses it."""
    args = importer.retrieve_args(node)
    x = args[0]
    k = args[1] if len(args) > 1 else node.kwargs.get("k", 1)
    dim = args[2] if len(args) > 2 else node.kwargs.get("dim", -1)
    largest = args[3] if len(args) > 3 else node.kwargs.get("largest", True)
    return importer.block_builder.emit(O.topk(x, k=k, axis=dim, largest=bool(largest), ret_type="both",
                                              dtype="int64"))


def embedding(node, importer):
    """``aten.embedding(weight, ids)`` as TVM writes it, with ``take(mode="clip")``: torch
    refuses an id outside the table, so ``clip`` is faithful (and canonical). Every other
    ``take`` the importer emits with ``mode="fast"`` comes from indexing, where torch wraps
    negatives: :func:`qcompile.loader.wrap_negative_take_indices` gives those ``wrap``."""
    bb = importer.block_builder
    weight, ids = importer.env[node.args[0]], importer.env[node.args[1]]
    ids = bb.emit(O.astype(ids, "int32"))
    if ids.ty.ndim == 1:
        return bb.emit(O.take(weight, ids, axis=0, mode="clip"))
    shape = ids.ty.shape.values
    flat = bb.emit(O.reshape(ids, [-1]))
    rows = bb.emit(O.take(weight, flat, axis=0, mode="clip"))
    return bb.emit(O.reshape(rows, [*shape, weight.ty.shape.values[-1]]))


def cat(node, importer):
    """``torch.cat`` skips a 1-D operand with no elements whatever the rank of the others
    (a legacy rule: ``torch.cat([torch.tensor([]), x])`` is ``x``; HF's XLM, ImageGPT and
    BART build position ids or caches that way); TVM's converter passes it on and Relax's
    ``concat`` refuses the mixed ranks. Such operands are dropped here."""
    args = importer.retrieve_args(node)
    axis = args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
    parts = list(args[0])

    def empty_1d(t) -> bool:
        dims = getattr(getattr(t, "ty", None), "shape", None)
        return dims is not None and len(dims) == 1 and hasattr(dims[0], "value") and int(dims[0].value) == 0

    if any(getattr(getattr(t, "ty", None), "ndim", 1) != 1 for t in parts):
        parts = [t for t in parts if not empty_1d(t)] or parts[:1]
    if len(parts) == 1:
        return parts[0]
    return importer.block_builder.emit(O.concat(parts, axis=axis))


#: torch op name (``node.target.__name__``) -> converter
# ---------------------------------------------------------------- complex numbers
# RoPE written with complex numbers (DeepSeek-V2, Llama 4: ``view_as_complex`` of the (even,
# odd) pairs times ``polar(1, angle)``, then ``view_as_real``): Relax has no complex dtype,
# so a complex tensor of shape ``S`` is carried as its float pairs, shape ``S + [2]`` (real,
# imaginary), which is what ``view_as_complex`` reads and ``view_as_real`` returns anyway.
# The ops torch.export leaves on complex values are converted here; any other op on a
# complex value is refused by name.


def _is_complex(a) -> bool:
    v = getattr(a, "meta", {}).get("val")
    return bool(getattr(v, "is_complex", lambda: False)())


def _default(importer, name: str):
    """TVM's own converter of ``name`` (the map the custom ones replaced)."""
    if not hasattr(importer, "_qc_default_map"):
        importer._qc_default_map = type(importer).create_convert_map(importer)
    return importer._qc_default_map[name]


def _refuse_complex(node):
    from qcompile.errors import QCompileError

    raise QCompileError(f"torch.export: node '{node.name}' ({node.target}) computes with complex numbers, which "
                        "qcompile carries only through view_as_complex, polar, multiplication, unsqueeze and "
                        "view_as_real (complex RoPE)")


def view_as_complex(node, importer):
    """``view_as_complex(x)``: ``x``'s ``[..., 2]`` float pairs are the complex value's form."""
    return importer.env[node.args[0]]


def view_as_real(node, importer):
    """``view_as_real(z)``: the pairs themselves."""
    return importer.env[node.args[0]]


def polar(node, importer):
    """``polar(r, theta)`` = ``r cos(theta) + i r sin(theta)``, as the pairs."""
    bb = importer.block_builder
    r, theta = importer.env[node.args[0]], importer.env[node.args[1]]
    re, im = bb.emit(O.multiply(r, O.cos(theta))), bb.emit(O.multiply(r, O.sin(theta)))
    return bb.emit(O.concat([O.expand_dims(re, -1), O.expand_dims(im, -1)], axis=-1))


def _parts(bb, z):
    return [bb.emit(O.strided_slice(z, axes=[-1], begin=[i], end=[i + 1])) for i in (0, 1)]


def multiply(node, importer):
    """``a * b`` where either is complex: ``(a0 b0 - a1 b1, a0 b1 + a1 b0)`` for two complex
    values, the pairs scaled for a real one (a real tensor broadcast over the pair axis);
    anything else is TVM's converter."""
    if not _is_complex(node):
        return _default(importer, node.target.__name__)(node)
    bb = importer.block_builder
    a, b = node.args[0], node.args[1]
    if _is_complex(a) and _is_complex(b):
        (a0, a1), (b0, b1) = _parts(bb, importer.env[a]), _parts(bb, importer.env[b])
        re = bb.emit(O.subtract(O.multiply(a0, b0), O.multiply(a1, b1)))
        im = bb.emit(O.add(O.multiply(a0, b1), O.multiply(a1, b0)))
        return bb.emit(O.concat([re, im], axis=-1))
    z, w = (a, b) if _is_complex(a) else (b, a)
    zv = importer.env[z]
    if hasattr(w, "meta"):  # a real tensor: the same factor for both parts
        if w.meta["val"].dim() == 0:
            return bb.emit(O.multiply(zv, importer.env[w]))
        return bb.emit(O.multiply(zv, O.expand_dims(importer.env[w], -1)))
    if isinstance(w, complex):
        _refuse_complex(node)
    return bb.emit(O.multiply(zv, relax.const(float(w), str(zv.ty.dtype))))


def unsqueeze(node, importer):
    """``unsqueeze(z, d)`` of a complex value: a negative ``d`` counted from the value's own
    rank (the pair axis stays last); anything else is TVM's converter."""
    if not _is_complex(node):
        return _default(importer, node.target.__name__)(node)
    rank = node.args[0].meta["val"].dim()
    d = int(node.args[1])
    return importer.block_builder.emit(O.expand_dims(importer.env[node.args[0]], d if d >= 0 else d + rank + 1))


#: the ops carried on complex values (torch.export's decomposed names)
COMPLEX_OPS = {"view_as_complex.default", "view_as_real.default", "polar.default", "mul.Tensor",
               "unsqueeze.default", "_assert_tensor_metadata.default"}


def refuse_unsupported_complex(ep) -> None:
    """A complex value reaching an op other than :data:`COMPLEX_OPS` is refused by name (TVM's
    converters would compute on the pairs as if they were real numbers). Only an exported
    program with complex values at all is decomposed here (the importer decomposes again)."""
    if not any(_is_complex(n) for n in ep.graph.nodes):
        return
    for n in ep.run_decompositions().graph.nodes:
        if n.op == "call_function" and (_is_complex(n) or any(_is_complex(a) for a in n.args)) \
                and getattr(n.target, "__name__", str(n.target)) not in COMPLEX_OPS:
            _refuse_complex(n)


CONVERTERS = {
    **{k: cat for k in ("cat.default", "concat.default")},
    "embedding.default": embedding,
    "topk.default": topk,
    **{k: divide for k in ("div.Tensor", "div.Scalar", "div.Tensor_mode", "div.Scalar_mode",
                           "floor_divide.default")},
    **{k: clamp for k in ("clamp.default", "clamp.Tensor", "clamp_min.default", "clamp_max.default")},
    "histc.default": histc,
    "grouped_mm_fallback.default": grouped_mm,
    "_grouped_mm.default": grouped_mm,
    "view_as_complex.default": view_as_complex,
    "view_as_real.default": view_as_real,
    "polar.default": polar,
    "mul.Tensor": multiply,
    "unsqueeze.default": unsqueeze,
}
