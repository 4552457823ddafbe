"""ONNX graph preparation before TVM's importer: fold the shape arithmetic of real exports.

Exporters (Optimum, torch.onnx) write shape computations as ONNX ops:
``Shape -> Gather -> Div -> Unsqueeze -> Concat -> Slice/Reshape``. With symbolic input dims
TVM 0.27's importer turns many of them into run-time int64 tensors, and every tensor shaped
by such a value loses its static shape (``Reshape expects the input tensor to have known
shape``; ``shape_of expects a tensor input``). Most of these values are in fact constants:
``chunk(2)`` of a 256-wide projection slices at 128 whatever the batch is.

:func:`fold_shape_values` runs onnxruntime's symbolic shape inference (a maintained tool
that propagates dim *values* through shape ops as sympy expressions) and replaces every
integer/bool tensor of rank 0 or 1 whose value it proves constant (from values of rank 0 or
1 only: see :func:`_flat_values`) by an initializer; nodes left without
consumers are dropped. Values that stay symbolic (``[batch, seq, -1]``) are left to TVM,
which carries them as shape expressions. The rewrite preserves the model's function
exactly: it only substitutes values the inference proved.

Measured on the zoo's Optimum exports (``tests/zoo``), onnxslim and onnxsim alone did not
make TVM's importer succeed (they leave the symbolic shape arithmetic as it is); onnxscript's
optimizer neither.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

_INT_TYPES = {6: np.int32, 7: np.int64, 9: np.bool_}  # ONNX elem types folded here


def _symbolic_inference(proto):
    """onnxruntime's SymbolicShapeInference, keeping the instance (for ``sympy_data_``)."""
    import logging

    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    # its warnings ("Cannot determine if <dim expression> < 0") are about what it leaves
    # unknown, which is normal here: not for the user's terminal
    log = logging.getLogger("onnxruntime.tools.symbolic_shape_infer")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        ssi = SymbolicShapeInference(int_max=2**31 - 1, auto_merge=True, guess_output_rank=False, verbose=0)
        ssi._preprocess(proto)
        while ssi.run_:
            ssi._infer_impl()
        ssi._update_output_from_vi()
    finally:
        log.setLevel(level)
    return ssi


def _as_int(v):
    """A sympy/python scalar as a Python int or bool, or None when symbolic."""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if getattr(v, "is_Integer", False):
        return int(v)
    if getattr(v, "is_Boolean", False) and v in (True, False):
        return bool(v)
    return None


def fold_shape_values(proto):
    """Return ``(model, folded)``: ``proto`` with proven-constant integer tensors as
    initializers, and how many node outputs were folded. On any inference failure the
    model comes back unchanged (TVM then sees the original graph)."""
    import onnx
    from onnx import numpy_helper

    try:
        ssi = _symbolic_inference(proto)
    except Exception:  # an op the inference does not know: only what needs no inference
        model, folded = fold_integer_constants(proto)
        return cast_tile_repeats(model), folded
    vis = ssi.known_vi_
    trusted = _flat_values(proto, vis)
    consts: dict[str, np.ndarray] = {}
    for name, value in ssi.sympy_data_.items():
        if name not in trusted:
            continue
        vi = vis.get(name)
        if vi is None or not vi.type.HasField("tensor_type"):
            continue
        dtype = _INT_TYPES.get(vi.type.tensor_type.elem_type)
        if dtype is None:
            continue
        vals = value if isinstance(value, list) else [value]
        ints = [_as_int(v) for v in vals]
        if any(v is None for v in ints):
            continue
        dims = vi.type.tensor_type.shape.dim
        shape = tuple(d.dim_value for d in dims) if all(d.HasField("dim_value") for d in dims) else None
        arr = np.array(ints, dtype=dtype)
        if not isinstance(value, list):
            arr = arr.reshape(())
        if shape is not None and int(np.prod(shape)) == arr.size:
            arr = arr.reshape(shape)
        consts[name] = arr

    model = onnx.ModelProto()
    model.CopyFrom(proto)
    graph = model.graph
    have = {i.name for i in graph.initializer}
    folded = 0
    keep = []
    for node in graph.node:
        if node.op_type == "Tile" and node.input[1] not in consts and node.input[1] in trusted \
                and _tile_is_broadcast(node, ssi):
            # TVM's Tile cannot take repeats computed from shapes; Expand can. The length-1
            # axes are made static first (Reshape with 0 = keep the dim): TVM's broadcast
            # of a dim it cannot prove to be 1 (a slice's min(1, b)) reads out of bounds
            dims = ssi.known_vi_[node.input[0]].type.tensor_type.shape.dim
            shape_name, flat = f"{node.output[0]}__ones", f"{node.output[0]}__static1"
            graph.initializer.append(numpy_helper.from_array(
                np.array([1 if d.HasField("dim_value") and d.dim_value == 1 else 0 for d in dims], np.int64),
                shape_name))
            keep.append(onnx.helper.make_node("Reshape", [node.input[0], shape_name], [flat]))
            node.input[0] = flat
            node.op_type = "Expand"
            folded += 1
        outs = [o for o in node.output if o]
        if node.op_type != "Constant" and outs and all(o in consts for o in outs):
            for o in outs:
                if o not in have:
                    graph.initializer.append(numpy_helper.from_array(consts[o], o))
                    have.add(o)
            folded += 1
            continue
        keep.append(node)
    _keep_live(graph, keep)
    model, more = fold_integer_constants(model)
    return cast_tile_repeats(model), folded + more


#: ops never folded: their result is not a function of their inputs
_NONDETERMINISTIC = {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial",
                     "Bernoulli"}
_SMALL = 1 << 16  # elements: index tables, masks, repeat counts; never weights


def fold_integer_constants(proto, rounds: int = 4):
    """Evaluate nodes whose inputs are all constants and whose outputs are small integer or
    bool tensors (ONNX's reference evaluator, exact for integers), and replace them by
    initializers; ``Constant`` nodes become initializers too. This reaches what shape
    inference does not propagate: a ``NonZero`` over a mask built from a static dim, which
    is how torch.onnx writes ``repeat_interleave`` (GLM's interleaved RoPE tables): with its
    indices constant, the ``GatherND`` after it keeps a known rank. Float arithmetic is left
    to TVM, except on sizes (a dim cast to float, divided and rounded). Rounds repeat (each re-infers the static dims, which the previous round's
    constants may have made known) until nothing folds; the model is copied once, and
    ``proto`` itself comes back when nothing folded."""
    import onnx

    model = onnx.ModelProto()
    model.CopyFrom(proto)
    total = 0
    for _ in range(rounds):
        n = _fold_integer_round(model)
        total += n
        if not n:
            break
    return (model, total) if total else (proto, 0)


def _fold_integer_round(model) -> int:
    """One round of :func:`fold_integer_constants` on ``model``, in place; how many nodes
    were folded."""
    import onnx
    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator

    graph = model.graph
    values = {i.name: i for i in graph.initializer if int(np.prod(i.dims)) <= _SMALL}
    dims = _static_dims(model)
    shapes = {}  # output of a Shape node -> the dims it reads (None: symbolic)
    keep, folded = [], 0
    sized = set()  # small float values folded from sizes (see below)
    for node in graph.node:
        ins = [i for i in node.input if i]
        if node.op_type == "Shape" and ins and ins[0] in dims:
            attrs = {a.name: a.i for a in node.attribute}
            d = dims[ins[0]]
            shapes[node.output[0]] = d[slice(attrs.get("start", 0), attrs.get("end", len(d)))]
        read = _dims_read(node, shapes, values)
        if read is not None:  # a static dim read out of a partly symbolic shape
            t = numpy_helper.from_array(read, node.output[0])
            graph.initializer.append(t)
            values[node.output[0]] = t
            folded += 1
            continue
        const = node.op_type == "Constant" and node.domain in ("", "ai.onnx")
        foldable = const or (node.op_type not in _NONDETERMINISTIC and node.domain in ("", "ai.onnx") and ins
                             and all(i in values for i in ins)
                             and not any(a.HasField("g") or a.graphs for a in node.attribute))
        if foldable:
            try:
                sub = onnx.helper.make_model(
                    onnx.helper.make_graph([node], "fold", [], [onnx.helper.make_empty_tensor_value_info(o)
                                                               for o in node.output if o],
                                           initializer=[values[i] for i in dict.fromkeys(ins)]),
                    opset_imports=model.opset_import)
                outs = ReferenceEvaluator(sub).run(None, {})
            except Exception:  # noqa: BLE001 - an op the evaluator lacks: leave it to TVM
                outs = None
            names = [o for o in node.output if o]
            # float arithmetic on sizes (MobileViT's ``ceil(height / patch) * patch`` through a
            # Cast of a dim): small float results of an input that is an integer or itself such
            # a result are folded too; other float constants (weights, scales) stay TVM's
            from_sizes = any(i in sized or numpy_helper.to_array(values[i]).dtype.kind in "iub" for i in ins)
            if outs is not None and all((const or np.asarray(v).dtype.kind in "iub"
                                         or from_sizes and np.asarray(v).dtype.kind == "f" and np.asarray(v).size <= 64)
                                        and np.asarray(v).size <= _SMALL for v in outs):
                if not const and from_sizes:
                    sized.update(names)
                for name, v in zip(names, outs):
                    t = numpy_helper.from_array(np.asarray(v), name)
                    graph.initializer.append(t)
                    values[name] = t
                folded += 1
                continue
        keep.append(node)
    if folded:
        _keep_live(graph, keep)
    return folded


def _static_dims(proto) -> dict[str, list]:
    """Each tensor's dims from ONNX's own shape inference (which never fails on a graph it
    cannot fully type): ints where static, None where symbolic."""
    import onnx

    skeleton = onnx.ModelProto()  # the graph without its weights' bytes: only dims matter here
    skeleton.opset_import.extend(proto.opset_import)
    skeleton.ir_version = proto.ir_version
    g = skeleton.graph
    g.node.extend(proto.graph.node)
    g.input.extend(proto.graph.input)
    g.output.extend(proto.graph.output)
    have = {i.name for i in proto.graph.input}
    for init in proto.graph.initializer:
        if int(np.prod(init.dims)) <= _SMALL:
            g.initializer.append(init)  # small values: shape inference may read them (Reshape targets)
        elif init.name not in have:
            g.input.append(onnx.helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
    try:
        # data propagation carries Shape values into Reshape targets (GroupNorm written as
        # Reshape(InstanceNormalization(...), Shape(x)): its output dims known again)
        inferred = onnx.shape_inference.infer_shapes(skeleton, data_prop=True)
    except Exception:  # noqa: BLE001 - without it, what plain inference knows
        try:
            inferred = onnx.shape_inference.infer_shapes(skeleton)
        except Exception:  # noqa: BLE001
            return {}
    out = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        t = vi.type.tensor_type if vi.type.HasField("tensor_type") else None
        if t is not None and t.HasField("shape"):
            out[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
    return out


def concat_fixed_dims(proto):
    """Symbolic input dims that a ``Concat`` equates with a fixed one, fixed in the graph's
    inputs and outputs: ONNX's ``Concat`` requires equal dims off its axis, so a past cache
    declared ``[batch, 2, past, kv_cache_dim]`` (onnxruntime-genai's model builder) and
    concatenated with new keys ``[batch, 2, seq, 16]`` has ``kv_cache_dim`` = 16. TVM cannot
    carry such a dim (the head size becomes a loop extent it must vectorize). Returns
    ``(model, {dim name: value})``; ``proto`` itself where there is none."""
    inputs = {i.name: i for i in proto.graph.input}
    concats = [n for n in proto.graph.node if n.op_type == "Concat" and any(x in inputs for x in n.input)]
    if not concats:
        return proto, {}
    dims = _static_dims(proto)
    fixed: dict[str, int] = {}
    for n in concats:
        axis = next((a.i for a in n.attribute if a.name == "axis"), 0)
        shapes = [dims.get(x) for x in n.input]
        for x in n.input:
            if x not in inputs:
                continue
            declared = inputs[x].type.tensor_type.shape.dim
            for k, d in enumerate(declared):
                if k == axis % max(len(declared), 1) or not d.dim_param:
                    continue
                seen = {s[k] for s in shapes if s is not None and len(s) == len(declared) and s[k]}
                if len(seen) == 1:
                    fixed.setdefault(d.dim_param, seen.pop())
    if not fixed:
        return proto, {}
    import onnx

    model = onnx.ModelProto()
    model.CopyFrom(proto)
    for vi in list(model.graph.input) + list(model.graph.output):
        for d in vi.type.tensor_type.shape.dim:
            if d.dim_param in fixed:
                v = fixed[d.dim_param]
                d.Clear()
                d.dim_value = v
    return model, fixed


def _dims_read(node, shapes: dict, values: dict):
    """``Shape(x)`` with every dim static, or ``Gather(Shape(x), k)`` of static dims: the
    value as an int64 array; else None."""
    from onnx import numpy_helper

    if node.op_type == "Shape" and node.output[0] in shapes and all(d is not None for d in shapes[node.output[0]]):
        return np.array(shapes[node.output[0]], np.int64)
    if node.op_type == "Gather" and node.input[0] in shapes and node.input[1] in values:
        d = shapes[node.input[0]]
        idx = numpy_helper.to_array(values[node.input[1]])
        if idx.dtype.kind not in "iu" or idx.size > len(d) or ((idx < -len(d)) | (idx >= len(d))).any():
            return None
        got = [d[int(i)] for i in idx.reshape(-1)]
        if any(g is None for g in got):
            return None
        return np.array(got, np.int64).reshape(idx.shape)
    return None


def cast_tile_repeats(proto):
    """``Tile(x, repeats)`` with repeats computed from shapes (SigLIP's pooling probe tiled
    to the batch, Cohere's sin/cos tables): TVM's importer refuses a shape value as any
    input of ``Tile`` before the converter runs (``cannot handle ShapeExpr inputs``). A
    ``Cast`` to int64 (an identity for ONNX) makes it a tensor, whose value
    ``onnx_converters.Tile`` reads back."""
    import onnx

    inits = {i.name for i in proto.graph.initializer}
    consts = {o for n in proto.graph.node if n.op_type == "Constant" for o in n.output}
    done = {n.output[0] for n in proto.graph.node if n.op_type == "Cast" and n.output[0].endswith("__repeats")}
    skip = inits | consts | done  # idempotent: the graph may be folded again (after an If is inlined)
    todo = [n for n in proto.graph.node if n.op_type == "Tile" and n.input[1] not in skip]
    if not todo:
        return proto
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    nodes = []
    for node in model.graph.node:
        if node.op_type == "Tile" and node.input[1] not in skip:
            cast = f"{node.output[0]}__repeats"
            nodes.append(onnx.helper.make_node("Cast", [node.input[1]], [cast], to=onnx.TensorProto.INT64))
            node.input[1] = cast
        nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model


def _rank(vis, name) -> int | None:
    vi = vis.get(name)
    if vi is None or not vi.type.HasField("tensor_type") or not vi.type.tensor_type.HasField("shape"):
        return None
    return len(vi.type.tensor_type.shape.dim)


def _flat_values(proto, vis) -> set[str]:
    """The tensors whose inferred value can be trusted: rank 0 or 1, computed only from
    values that are. onnxruntime's inference keeps every value as a flat list, so an op on a
    rank-2 value (the ``Reshape(-1, 2) -> Slice(step -1) -> Transpose -> Reshape`` that
    reverses torch's pad list into ONNX order, in MobileBERT's trigram embedding) comes out
    wrong: the pads folded from it padded the wrong side, silently."""
    ok = {i.name for i in proto.graph.initializer if len(i.dims) <= 1}
    ok |= {i.name for i in proto.graph.input if _rank(vis, i.name) in (0, 1)}
    for node in proto.graph.node:
        outs = [o for o in node.output if o]
        if node.op_type == "Shape":
            ok.update(outs)
            continue
        if node.op_type == "Constant":
            if node.attribute and node.attribute[0].HasField("t") and len(node.attribute[0].t.dims) <= 1:
                ok.update(outs)
            elif node.attribute and node.attribute[0].name in ("value_int", "value_ints"):
                ok.update(outs)
            continue
        if all(i in ok for i in node.input if i) and all(_rank(vis, o) in (0, 1) for o in outs):
            ok.update(outs)
    return ok


def _tile_is_broadcast(node, ssi) -> bool:
    """``Tile(x, r)`` equals ``Expand(x, r)`` when every axis either repeats once or has
    length 1 in ``x`` (GPT-J tiles its sin/cos table over the batch with ``r`` made from
    ``Shape``; TVM's importer refuses a shape value as Tile's repeats)."""
    vals = ssi.sympy_data_.get(node.input[1])
    vi = ssi.known_vi_.get(node.input[0])
    if not isinstance(vals, list) or vi is None or not vi.type.HasField("tensor_type"):
        return False
    dims = vi.type.tensor_type.shape.dim
    if len(dims) != len(vals):
        return False
    return all(_as_int(r) == 1 or (d.HasField("dim_value") and d.dim_value == 1) for r, d in zip(vals, dims))


def _keep_live(graph, nodes) -> None:
    """``graph``'s nodes become those of ``nodes`` that an output depends on; initializers
    nothing reads any more are dropped."""
    del graph.node[:]
    graph.node.extend(_live(nodes, [o.name for o in graph.output]))
    used = {i for n in graph.node for i in _reads(n)} | {o.name for o in graph.output}
    inits = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(inits)


def _live(nodes, outputs):
    """The nodes that some graph output depends on, in their original order."""
    producer = {o: i for i, n in enumerate(nodes) for o in n.output}
    live, stack = set(), list(outputs)
    while stack:
        i = producer.get(stack.pop())
        if i is None or i in live:
            continue
        live.add(i)
        stack.extend(_reads(nodes[i]))
    return [n for i, n in enumerate(nodes) if i in live]


def topological_order(graph) -> bool:
    """Reorder ``graph``'s nodes, in place, so that each comes after what it reads (stable:
    nodes already in order keep it). False, and ``graph`` untouched, when the nodes form a
    cycle or read a name nothing defines."""
    defined = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    producer = {o: i for i, n in enumerate(graph.node) for o in n.output if o}
    needs = [{producer[r] for r in _reads(n) if r not in defined and r in producer} for n in graph.node]
    if any(r not in defined and r not in producer and not _subgraph_local(n, r)
           for n in graph.node for r in _reads(n)):
        return False
    users: dict[int, list[int]] = {}
    for i, deps in enumerate(needs):
        for d in deps:
            users.setdefault(d, []).append(i)
    import heapq

    ready = [i for i, deps in enumerate(needs) if not deps]
    heapq.heapify(ready)
    order, left = [], [len(d) for d in needs]
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for u in users.get(i, ()):
            left[u] -= 1
            if not left[u]:
                heapq.heappush(ready, u)
    if len(order) != len(graph.node):
        return False
    nodes = [graph.node[i] for i in order]
    del graph.node[:]
    graph.node.extend(nodes)
    return True


def _subgraph_local(node, name) -> bool:
    """Whether ``name``, read somewhere in ``node``'s subgraphs, is defined inside them."""
    for attr in node.attribute:
        for g in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
            if name in {o for n in g.node for o in n.output} | {i.name for i in g.input} | \
                    {i.name for i in g.initializer}:
                return True
            if any(_subgraph_local(n, name) for n in g.node):
                return True
    return False


def _reads(node):
    """The names ``node`` reads: its inputs and, for If/Loop, what its subgraphs read from the
    outer scope (by name, at any depth; DeBERTa's If branches read outer initializers)."""
    out = list(node.input)
    for attr in node.attribute:
        for g in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
            for n in g.node:
                out += _reads(n)
    return out



def _slice_bounds(node, values) -> list[tuple] | None:
    """A ``Slice`` node's constant ``(axis, start, end, step)`` tuples, or None."""
    from onnx import numpy_helper

    ins = list(node.input) + [""] * (5 - len(node.input))
    arrs = [numpy_helper.to_array(values[n]).reshape(-1).tolist() if n in values else None for n in ins[1:5]]
    starts, ends, axes, steps = arrs
    if starts is None or ends is None or (ins[3] and axes is None) or (ins[4] and steps is None):
        return None
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    return list(zip(axes, starts, ends, steps))


_TO_END = 1 << 31  # an end at least this large reads to the end of any axis


def name_nodes(proto) -> None:
    """Give every unnamed or twice-named node of ``proto``'s graph a name of its own, in
    place (``<name or op type>__qc<index>``): TVM's converters know a node by its name only
    (``attr["tvm_custom"]["name"]``), and the facts handed to them are keyed by it."""
    names = Counter(n.name for n in proto.graph.node)
    for i, node in enumerate(proto.graph.node):
        if not node.name or names[node.name] > 1:
            node.name = f"{node.name or node.op_type}__qc{i}"


#: the ops TVM 0.27's importer lets take a shape value (``relax.ShapeExpr``) as an input;
#: any other op with one fails before its converter runs (``onnx_frontend._construct_nodes``)
SHAPE_COMPATIBLE = frozenset({"Reshape", "Resize", "ConstantOfShape", "Gather", "Slice", "Shape", "Expand",
                              "Concat", "Equal", "Where", "Cast", "CastLike", "Squeeze"})


def shape_value_consumers(proto) -> frozenset[str]:
    """The names of the nodes with an output read by an op that cannot take a shape value
    (not in :data:`SHAPE_COMPATIBLE`), or by a subgraph. TVM's importer carries small
    integer values computed from shapes as ``relax.ShapeExpr`` (``Unsqueeze`` of a dim,
    ``Concat`` of them) and then refuses them as the input of any other op: CvT's token
    count plus its CLS token, ``Add(Unsqueeze(h * w), 1)``, fails with ``Node ... cannot
    handle ShapeExpr inputs``. ``onnx_converters.patched_converters`` makes such a node's
    shape value a tensor, whose value the converters after it still read
    (:mod:`~qcompile.frontend.shape_values`). Call :func:`name_nodes` first."""
    graph_outputs = {o.name for o in proto.graph.output}
    readers: dict[str, bool] = {}
    for node in proto.graph.node:
        sub = any(a.HasField("g") or a.graphs for a in node.attribute)
        for i in _reads(node):
            readers[i] = readers.get(i, False) or sub or node.op_type not in SHAPE_COMPATIBLE
    return frozenset(n.name for n in proto.graph.node
                     if any(readers.get(o, False) or o in graph_outputs for o in n.output if o))


def slice_facts(proto) -> dict[str, dict[int, tuple]]:
    """What the ``Slice`` nodes of a graph tell about each other, for the importer's
    ``Slice`` converter: ``{node name: {axis: fact}}``, where a fact is

    * ``("end",)``: the node's constant end ``k > 0`` on ``axis`` cannot exceed the axis's
      length ``n``: another ``Slice`` of the same tensor on the same axis has a constant
      bound that is only meaningful when ``n >= k`` (a start ``k' >= k``, or a negative
      bound ``-k'`` with ``k' >= k``). This is how torch exports ``torch.roll`` (Swin's
      shifted windows: ``concat(x[s:], x[:s])``) and ``split``/``chunk`` at constant
      offsets: the pieces partition the axis. Over a symbolic ``n`` the importer must take
      ``x[:s]`` as ``min(s, n)`` long (a truncation ``x[:512]`` is shorter when
      ``n < 512``) and ``x[s:]`` as ``n - s`` (its start is assumed in range, as
      ``onnx_converters._symbolic_bound`` states); their concatenation is then
      ``min(s, n) + n - s`` long, which TVM cannot reduce to ``n``, and every shape after
      it is lost. The sibling proves ``n >= s``, so the end is ``s``.
    * ``("stride", s)``: the node reads every ``s``-th element from a start ``b < s`` to
      the end, and a sibling of the same tensor and axis does the same from another start:
      a strided split (Swin's patch merging: ``x[:, 0::2]``, ``x[:, 1::2]``, concatenated on
      the channels), whose pieces are combined only if they are equally long, so ``n`` is a
      multiple of ``s`` wherever the graph is valid. Each piece is ``n // s`` long (TVM
      would give ``(n + 1) // 2`` and ``n // 2``, which it cannot prove equal).

    Nodes are named first (:func:`name_nodes`), since the importer's converter knows a node
    by its name only."""
    name_nodes(proto)
    values = {i.name: i for i in proto.graph.initializer if int(np.prod(i.dims)) <= _SMALL}
    need: dict[tuple, int] = {}  # (tensor, axis) -> the least length the slices of it assume
    starts: dict[tuple, set] = {}  # (tensor, axis, step) -> starts of strided reads to the end
    slices = []
    for node in proto.graph.node:
        if node.op_type != "Slice" or not node.input:
            continue
        bounds = _slice_bounds(node, values)
        if bounds is None:
            continue
        slices.append((node, bounds))
        for axis, start, end, step in bounds:
            if step == 1:
                key = (node.input[0], axis)
                need[key] = max(need.get(key, 0), start if start > 0 else -start, -end if end < 0 else 0)
            elif 0 <= start < step and end >= _TO_END:
                starts.setdefault((node.input[0], axis, step), set()).add(start)
    out: dict[str, dict[int, tuple]] = {}
    for node, bounds in slices:
        for axis, start, end, step in bounds:
            if step == 1 and 0 < end < _TO_END and need.get((node.input[0], axis), 0) >= end:
                out.setdefault(node.name, {})[axis] = ("end",)
            elif step > 1 and len(starts.get((node.input[0], axis, step), ())) > 1 and start in starts[(node.input[0], axis, step)]:
                out.setdefault(node.name, {})[axis] = ("stride", step)
    return out


#: ops that keep an integer value a size (its inputs all sizes): shape arithmetic
_SIZE_OPS = {"Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Reshape", "Identity", "Add", "Sub", "Mul",
             "Div", "Max", "Min", "Cast", "Mod", "Neg", "Abs", "ReduceProd", "ReduceMax", "ReduceMin", "Flatten"}
_FLOAT_TYPES = {1, 10, 11, 16}  # float, float16, double, bfloat16
_INT_TO = {6, 7}  # int32, int64


def integer_size_arithmetic(proto):
    """``proto`` with float arithmetic on sizes rewritten as the integer arithmetic it
    computes, or ``proto`` itself where there is none.

    Exporters compute sizes in float: torch's ``math.ceil(h / p) * p`` (MobileViT's patch
    unfold), ``int(h / 4 - 3 / 4)`` and ``interpolate``'s output sizes come out as
    ``Shape -> Gather -> Cast(float) -> Div -> Ceil -> Mul -> Cast(int64)``. With the size
    symbolic, TVM's importer carries the float values as float dim expressions and fails
    at the first op it has no such case for (``ceil`` takes a tensor); with it fixed, the
    chain folds before import. Each float value of such a chain is kept here as an exact
    fraction ``n / d`` of an integer size ``n`` and a constant ``d`` (Cast of a size:
    ``n / 1``; ``+ - *`` of two fractions or of a constant that is an exact binary
    fraction such as 0.5; ``/`` by such a constant), ``Floor`` and ``Ceil`` as ``n // d``
    and ``(n + d - 1) // d``, and each ``Cast`` back to an integer (truncation) as
    ``n // d``: integer nodes that TVM folds to dim expressions. The chain's float nodes
    are left to dead-code removal. Exact where ``n >= 0`` (sizes; a negative size is an
    invalid input anyway) and where the float graph is exact, which float32 is for sizes
    below 2**24 with small divisors. ``Sqrt``, ``Pow``, ``Round`` and division by a size
    are not fractions of this form and stay float."""
    import onnx
    from fractions import Fraction

    from onnx import numpy_helper

    graph = proto.graph
    consts = {i.name: numpy_helper.to_array(i) for i in graph.initializer if int(np.prod(i.dims)) <= 64}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].HasField("t"):
            t = node.attribute[0].t
            if int(np.prod(t.dims)) <= 64:
                consts[node.output[0]] = numpy_helper.to_array(t)
    sizes = {n for n, v in consts.items() if v.dtype.kind in "iu"}
    fractions: dict[str, tuple[str, int]] = {}  # float tensor -> (int64 numerator tensor, denominator)
    new_inits, out_nodes, rewrites = [], [], 0
    counter = [0]

    def fresh(tag):
        counter[0] += 1
        return f"qc_size{counter[0]}_{tag}"

    def int_const(v: int, shape=()) -> str:
        name = fresh("c")
        new_inits.append(numpy_helper.from_array(np.full(shape, v, np.int64), name))
        return name

    def emit(op, ins, **attrs) -> str:
        out = fresh(op.lower())
        out_nodes.append(onnx.helper.make_node(op, ins, [out], **attrs))
        return out

    def scaled(name: str, k: int, shape=()) -> str:
        """``name * k``; with a constant's ``shape`` the product broadcasts as the float op did."""
        return name if k == 1 and not shape else emit("Mul", [name, int_const(k, shape)])

    def as_fraction(name):
        """``(numerator tensor, denominator)`` of a float size; a constant as ``(None, value,
        shape)`` when it is an exact fraction with a small denominator."""
        if name in fractions:
            return fractions[name]
        v = consts.get(name)
        if v is None or v.size != 1 or v.dtype.kind not in "fiu" or not np.isfinite(v).all():
            return None
        f = Fraction(float(v.reshape(-1)[0]))
        return (None, f, v.shape) if f.denominator <= 1 << 12 and abs(f.numerator) < 1 << 31 else None

    def combine(op, a, b):
        """``a op b`` as a fraction, or None where it is not one of the form kept here."""
        if a[0] is None and b[0] is None:
            return None  # constant folding is TVM's
        if op == "Div":
            if a[0] is None or b[0] is not None or b[1] <= 0:
                return None  # a constant over a size, or a size over a size
            (num, den), (_, c, shape) = a, b  # n/d / (p/q) = n*q / (d*p)
            return scaled(num, c.denominator, shape), den * c.numerator
        if a[0] is None or b[0] is None:
            (num, den), (_, c, shape) = (b, a) if a[0] is None else (a, b)
            if op == "Mul":
                return (scaled(num, c.numerator, shape), den * c.denominator) if c > 0 else None
            k = c * den  # n/d + c = (n*kd + kn) / (d*kd) with k = c*d = kn/kd
            top, other = scaled(num, k.denominator), int_const(int(k.numerator), shape)
            if op == "Sub" and a[0] is None:
                return emit("Sub", [other, top]), den * k.denominator
            return emit(op, [top, other]), den * k.denominator
        (na, da), (nb, db) = a, b
        if op == "Mul":
            return emit("Mul", [na, nb]), da * db
        return emit(op, [scaled(na, db), scaled(nb, da)]), da * db

    for node in graph.node:
        op, ins, outs = node.op_type, [i for i in node.input if i], [o for o in node.output if o]
        to = next((a.i for a in node.attribute if a.name == "to"), None)
        if not outs:
            pass
        elif op in ("Shape", "Size"):
            sizes.update(outs)
        elif op == "Cast" and ins[0] in sizes and to in _FLOAT_TYPES:
            fractions[outs[0]] = (emit("Cast", [ins[0]], to=onnx.TensorProto.INT64), 1)
        elif op == "Cast" and ins[0] in fractions and to in _FLOAT_TYPES:
            fractions[outs[0]] = fractions[ins[0]]
        elif op == "Cast" and ins[0] in fractions and to in _INT_TO:
            num, den = fractions[ins[0]]  # truncation: n // d for n >= 0
            value = num if den == 1 else emit("Div", [num, int_const(den)])
            out_nodes.append(onnx.helper.make_node("Cast", [value], outs, to=to, name=node.name))
            sizes.update(outs)
            rewrites += 1
            continue
        elif op in ("Floor", "Ceil") and ins[0] in fractions:
            num, den = fractions[ins[0]]
            if den != 1:
                top = num if op == "Floor" else emit("Add", [num, int_const(den - 1)])
                num = emit("Div", [top, int_const(den)])
            fractions[outs[0]] = (num, 1)
        elif op in ("Add", "Sub", "Mul", "Div") and len(ins) == 2 and (ins[0] in fractions or ins[1] in fractions):
            a, b = as_fraction(ins[0]), as_fraction(ins[1])
            got = None if a is None or b is None else combine(op, a, b)
            if got is not None:
                fractions[outs[0]] = got
        elif op in _SIZE_OPS and all(i in sizes for i in ins) and (op != "Cast" or to in _INT_TO):
            sizes.update(outs)
        out_nodes.append(node)
    if not rewrites:
        return proto
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    model.graph.initializer.extend(new_inits)
    _keep_live(model.graph, out_nodes)
    return model


def _inline_constant_ifs(model) -> int:
    """Replace, in ``model`` (in place), every top-level ``If`` whose condition is a constant
    (an initializer, after folding) by the nodes of the branch it takes; how many were.

    TorchScript exports write Python ``if``s on shapes as ONNX ``If`` (DeBERTa's relative
    position helper: ``if query_len != key_len``); with the shapes the condition reads made
    static (fixed input dims, or dims that symbolic inference proves equal) the condition
    folds to a constant, and the ``If`` is just its branch. TVM 0.27's importer turns an
    ``If`` into a ``relax.If`` that qcompile's passes do not take, so an ``If`` whose
    condition stays data-dependent is refused by the loader, naming it. The branch's own
    names are prefixed with the ``If``'s name (a branch may reuse names of the outer
    graph); what it reads from the outer scope it keeps reading; its outputs are renamed to
    the ``If``'s (through an ``Identity`` where an output is an outer name)."""
    import onnx
    from onnx import numpy_helper

    values = {i.name: i for i in model.graph.initializer}
    if not any(n.op_type == "If" and n.input and n.input[0] in values for n in model.graph.node):
        return 0
    graph = model.graph
    nodes, inlined = [], 0
    for node in graph.node:
        if node.op_type != "If" or node.domain not in ("", "ai.onnx") or node.input[0] not in values:
            nodes.append(node)
            continue
        cond = bool(numpy_helper.to_array(values[node.input[0]]).reshape(-1)[0])
        branch = next(a.g for a in node.attribute if a.name == ("then_branch" if cond else "else_branch"))
        prefix = f"{node.name or 'If'}__{'then' if cond else 'else'}/"
        local = {o for n in branch.node for o in n.output if o} | {i.name for i in branch.initializer}
        rename = {name: prefix + name for name in local}
        for init in branch.initializer:
            t = onnx.TensorProto()
            t.CopyFrom(init)
            t.name = rename[init.name]
            graph.initializer.append(t)
        for n in branch.node:
            m = onnx.NodeProto()
            m.CopyFrom(n)
            m.name = prefix + (n.name or n.op_type)
            m.input[:] = [rename.get(i, i) for i in n.input]
            m.output[:] = [rename.get(o, o) for o in n.output]
            _rename_subgraph_reads(m, rename)
            nodes.append(m)
        for out, bout in zip(node.output, branch.output):
            src = rename.get(bout.name, bout.name)
            producer = next((n for n in reversed(nodes) if src in n.output and src in rename.values()), None)
            if producer is not None and not any(src in n.input for n in nodes) and src not in {o.name for o in graph.output}:
                producer.output[:] = [out if o == src else o for o in producer.output]
            else:
                nodes.append(onnx.helper.make_node("Identity", [src], [out], name=f"{prefix}out_{out}"))
        inlined += 1
    del graph.node[:]
    graph.node.extend(nodes)
    return inlined


def _rename_subgraph_reads(node, rename: dict) -> None:
    """Rename, in ``node``'s own subgraphs (a nested If or Loop), the outer-scope names
    that ``rename`` maps; names the subgraph defines itself shadow the outer ones."""
    for attr in node.attribute:
        for g in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
            own = {o for n in g.node for o in n.output} | {i.name for i in g.initializer} | {i.name for i in g.input}
            inner = {k: v for k, v in rename.items() if k not in own}
            for n in g.node:
                n.input[:] = [inner.get(i, i) for i in n.input]
                _rename_subgraph_reads(n, inner)
            for o in g.output:
                if o.name in inner:
                    o.name = inner[o.name]


def resolve_ifs(proto, rounds: int = 64):
    """Return ``(model, inlined)``: ``proto`` with each ``If`` whose condition folds replaced
    by the branch it takes (:func:`_inline_constant_ifs`), ``proto`` itself when there is
    none. Called after :func:`fold_shape_values`.

    Where symbolic shape inference fails on the whole graph (on DeBERTa it fails inside an
    ``If``'s branch), a condition is folded from its own cone: the nodes it depends on, when
    they hold no ``If`` themselves, with the model's weights as typed inputs. On DeBERTa the
    cone proves ``Shape(q)[-2] == Shape(k)[-2]`` for a symbolic sequence length (both are
    ``sequence_length``). Each round resolves the ``If``s whose cones are ``If``-free, so a
    model with one ``If`` per layer takes a round per layer. The model is copied once and
    the whole graph folded once, at the end (the inlined branches' shape arithmetic): the
    rounds only fold the small cones."""
    import onnx

    if not any(n.op_type == "If" for n in proto.graph.node):
        return proto, 0
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    total = 0
    for _ in range(rounds):
        n = _inline_constant_ifs(model)
        if not n and _fold_if_conditions(model):
            n = _inline_constant_ifs(model)
        if not n:
            break
        total += n
    if not total:
        return proto, 0
    model, _ = fold_shape_values(integer_size_arithmetic(model))
    return model, total


def _fold_if_conditions(proto) -> int:
    """Fold the conditions of the top-level ``If``s whose cones hold no ``If`` on the cone
    alone and add them to ``proto`` (in place) as initializers; how many were."""
    import onnx

    inits = {i.name for i in proto.graph.initializer}
    conds = [n.input[0] for n in proto.graph.node if n.op_type == "If" and n.input[0] not in inits]
    if not conds:
        return 0
    nodes = list(proto.graph.node)
    free = [c for c in dict.fromkeys(conds) if not any(n.op_type == "If" for n in _live(nodes, [c]))]
    if not free:
        return 0
    cone = onnx.ModelProto()
    cone.opset_import.extend(proto.opset_import)
    cone.ir_version = proto.ir_version
    g = cone.graph
    g.node.extend(_live(nodes, free))
    g.input.extend(proto.graph.input)
    read = {i for n in g.node for i in _reads(n)}
    for init in proto.graph.initializer:
        if init.name not in read:
            continue
        if int(np.prod(init.dims)) <= _SMALL:
            g.initializer.append(init)
        else:  # a weight: only its type and dims matter to the conditions
            g.input.append(onnx.helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
    g.output.extend(onnx.helper.make_empty_tensor_value_info(c) for c in free)
    folded, _ = fold_shape_values(cone)
    values = {i.name: i for i in folded.graph.initializer if i.name in free}
    if not values:
        return 0
    proto.graph.initializer.extend(values.values())
    return len(values)


#: ops whose second input lists axes (a 1-D tensor in the ONNX spec)
_AXES_INPUT = {"Unsqueeze", "Squeeze", "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd",
               "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"}


def vector_axes(proto):
    """``proto`` with every axes operand that is a 0-d initializer made 1-D (``proto`` itself
    where there is none). torch.onnx's dynamo exporter writes ``unsqueeze(x, 2)`` with a
    scalar axes constant, which onnxruntime accepts and TVM's converter does not (``'int'
    object is not iterable``)."""
    import onnx
    from onnx import numpy_helper

    inits = {i.name: i for i in proto.graph.initializer}
    todo = [n for n in proto.graph.node if n.op_type in _AXES_INPUT and len(n.input) > 1
            and n.input[1] in inits and len(inits[n.input[1]].dims) == 0]
    if not todo:
        return proto
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    have = {i.name for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type in _AXES_INPUT and len(node.input) > 1 and node.input[1] in inits \
                and len(inits[node.input[1]].dims) == 0:
            name = node.input[1] + "__1d"
            if name not in have:
                model.graph.initializer.append(numpy_helper.from_array(
                    numpy_helper.to_array(inits[node.input[1]]).reshape(1), name))
                have.add(name)
            node.input[1] = name
    return model
