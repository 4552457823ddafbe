"""KV-cache path analysis (analysis only; :mod:`qcompile.passes.kvcache.prerope` rewrites).

A decoder step exported with an explicit cache (HF layout: ``past_key_values.*`` in,
``present.*`` out) concatenates, per layer, each cached tensor ``past [B, H, P, D]`` (a
parameter of ``main``) with this step's ``new [B, H, T, D]`` along the token axis, and the
result is both a model output (the present cache) and, through data movement, the ``k``
or ``v`` operand of a ``qcompile.attention`` composite.

For keys, :func:`cache_paths` also finds the **pre-RoPE** tensor: the immediate dominator
of ``new`` in the dataflow from the token ids (positions and masks, which derive from the
other inputs, are not part of it), provided a ``qcompile.rope`` composite lies between the
two. That tensor is the key after its projection, bias, per-head norm and head split,
whatever the RoPE form (rotate-half, interleaved, partial rotary: the bindings between
the two, ``rope_chain``, are re-run on the dequantized cache). The inputs of that chain
that are not key data (cos/sin tables) must derive from the position ids only, so they can
be recomputed for the cache's own positions.

A model that does not fit (no cache concat, a cache that is not ``[B, H, N, D]``, a key
without RoPE, positions that do not come from ``position_ids``) is refused with an error
naming the layer and what was not found.
"""
from __future__ import annotations

import dataclasses

import networkx as nx
from tvm import relax

from qcompile.errors import QCompileError
from qcompile.ir import attention_roles
from qcompile.analysis.moves import REPEATS, op_name
from qcompile.analysis.graph import Graph, linear_at


@dataclasses.dataclass
class Cache:
    param: relax.Var            # past tensor, a parameter of main
    concat: relax.Var           # concat(past, new) on the token axis: the present cache
    new: relax.Var              # this step's tensor (post-RoPE for keys)
    heads: int
    head_dim: int
    is_key: bool
    pre_rope: relax.Var | None = None     # keys: the tensor before RoPE
    pre_perm: tuple | None = None         # keys: axes taking pre_rope to the cache layout (GPT-J: [B, T, H, D])
    rope_chain: list = dataclasses.field(default_factory=list)  # keys: bindings pre_rope -> new, in order
    output: relax.Var | None = None       # the present output: the concat, or a cast of it
    #: a cache **buffer** with a valid length per row (onnxruntime's GroupQueryAttention, as
    #: decompose.py writes it): the present is ``gather_elements(concat, slots, axis=2)``,
    #: the new tokens moved to each row's own positions; ``gathered`` is that gather
    slots: relax.Var | None = None
    gathered: relax.Var | None = None
    #: keys of a slotted cache: the position tensors this step's RoPE tables are gathered at
    #: (derived from the rows' lengths); a cache slot's position is its index
    step_positions: list = dataclasses.field(default_factory=list)

    def __post_init__(self):
        if self.output is None:
            self.output = self.concat


@dataclasses.dataclass
class Layer:
    index: int
    attention: relax.Var
    key: Cache
    value: Cache


def decoder_layers(mod, who: str, need_rope: bool = True) -> tuple[Graph, list[Layer]]:
    """``(Graph of main, cache_paths)`` of a decoder step; ``who`` names the pass in errors.
    A layer whose key has no RoPE (SmolLM3's NoPE layers) has ``pre_rope`` None; with
    ``need_rope`` a model with no RoPE in any layer is refused (learned or ALiBi positions)."""
    g = Graph(mod)
    params = {p.name: p for p in mod["main"].params}
    if not {"input_ids", "attention_mask"} <= set(params):
        raise QCompileError(f"{who}: the step needs inputs input_ids and attention_mask "
                            f"(it has {', '.join(params)})")
    # without a position_ids input (Optimum's Gemma), positions are arange(past, past + T)
    # over the symbolic cache length: the RoPE chain then derives from no input at all
    args = (g, params.get("position_ids"), params["input_ids"])
    try:
        layers = cache_paths(*args, need_rope=False)
        if need_rope and all(layer.key.pre_rope is None for layer in layers):
            cache_paths(*args)  # raises the "no RoPE" error of the first layer
    except QCompileError as e:
        raise QCompileError(f"{who}: {e.message}", hint=e.hint) from None
    return g, layers


def _fail(layer, what: str) -> QCompileError:
    return QCompileError(f"layer {layer}: {what}",
                         hint="the pass needs a decoder step with an explicit KV cache (past_key_values in, present out)")


def cache_paths(g: Graph, positions: relax.Var | None, tokens: relax.Var, need_rope: bool = True) -> list[Layer]:
    """Per attention (in program order): the key and value cache paths."""
    layers = []
    for var in g.order:
        val = g.defs[var]
        if g.composite(val) != "qcompile.attention":
            continue
        n = len(layers)
        roles = attention_roles(g.funcs[val.op.name_hint])
        if roles is None:
            raise _fail(n, f"attention '{var.name}' has an unrecognized form")
        found = {}
        for role in ("k", "v"):
            found[role] = _cache(g, val.args[roles["params"].index(role)], n, role)
        layers.append(Layer(n, var, found["k"], found["v"]))
    if not layers:
        raise QCompileError("no attention (qcompile.attention composite) in the model")
    data = nx.descendants(g.g, tokens) | {tokens}
    for layer in layers:
        _pre_rope(g, layer, data, positions, need_rope)
    return layers


def _cache(g: Graph, operand, layer: int, role: str) -> Cache:
    """Walk back from an attention operand through data movement to the cache concat."""
    what = "key" if role == "k" else "value"
    v = operand
    gathered = None
    while isinstance(v, relax.Var) and v in g.defs:
        val = g.defs[v]
        op = op_name(val)
        if op == "gather_elements" and gathered is None and int(val.attrs.axis) % 4 == 2 \
                and isinstance(val.args[0], relax.Var) and op_name(g.defs.get(val.args[0])) == "concat":
            gathered = v  # each row's tokens moved to its own positions of the buffer
            v = val.args[0]
            continue
        if op == "concat":
            fields = list(val.args[0].fields)
            # a float16 model with float32 cache I/O (onnxruntime's float16 converter,
            # keep_io_types) casts the past on the way in and the present on the way out
            past = [g.input_of(f) for f in fields if g.input_of(f) is not None]
            new = [f for f in fields if g.input_of(f) is None]
            if len(past) != 1 or len(new) != 1 or g.input_of(fields[0]) is None:
                raise _fail(layer, f"the {what} concat '{v.name}' is not concat(past cache, new)")
            shape = val.ty.shape
            axis = int(val.attrs.axis) % len(shape)
            if len(shape) != 4 or axis != 2:
                raise _fail(layer, f"the {what} cache '{past[0].name}' is not laid out [batch, heads, tokens, head_dim]")
            present = gathered if gathered is not None else v
            out = present if present in g.outputs else next(
                (u for u in g.g.successors(present) if u in g.outputs and op_name(g.defs[u]) == "astype"), None)
            if out is None:
                raise _fail(layer, f"the {what} cache concat '{v.name}' is not a model output (present cache)")
            return Cache(past[0], v, new[0], int(shape[1]), int(shape[3]), role == "k", output=out,
                         slots=g.defs[gathered].args[1] if gathered is not None else None, gathered=gathered)
        if op not in REPEATS:  # GQA repeats (expand_dims, broadcast_to, tile, repeat) included
            break
        v = val.args[0]
    raise _fail(layer, f"no {what} cache: the attention's {what} operand does not come from concat(past, new)")


def _layout_perm(pre, new, layer: int) -> tuple | None:
    """``None`` when the pre-RoPE key has the cache's layout ``[B, H, T, D]``; the axes
    that take it there when its heads and tokens are swapped (GPT-J applies RoPE on
    ``[B, T, H, D]`` and moves the heads forward after)."""
    a, b = [str(d) for d in pre.ty.shape], [str(d) for d in new.ty.shape]
    if a == b:
        return None
    if len(a) == len(b) == 4 and [a[0], a[2], a[1], a[3]] == b:
        return (0, 2, 1, 3)
    raise _fail(layer, f"the pre-RoPE key '{pre.name}' {a} is not in the cache's layout {b} "
                       "(or its heads and tokens swapped)")


def _pre_rope(g: Graph, layer: Layer, data: set, positions: relax.Var | None, need_rope: bool = True) -> None:
    """Dominator of the new key in the token-data flow, with a RoPE composite in between."""
    key = layer.key
    anc = nx.ancestors(g.g, key.new) & data
    sub = g.g.subgraph(anc | {key.new})
    root = next(n for n in sub if sub.in_degree(n) == 0)
    idom = nx.immediate_dominators(sub, root)

    def chain_from(pre):
        vs = (nx.descendants(sub, pre) & nx.ancestors(sub, key.new)) | {key.new}
        return vs, [v for v in g.order if v in vs]

    # the nearest dominator with a RoPE between it and the cache (GPT-J: a permute after the
    # partial-rotary concat makes that concat the immediate dominator)
    pre = first = idom[key.new]
    chain_vars, chain = chain_from(pre)
    while not any(g.composite(g.defs[v]) == "qcompile.rope" for v in chain) and idom.get(pre, pre) is not pre \
            and not any(linear_at(g.defs, v, with_bias=False) for v in chain):
        # climb no further than the key's projection: past it lies the previous layer (whose
        # RoPE a NoPE layer, as in SmolLM3, would otherwise borrow)
        pre = idom[pre]
        chain_vars, chain = chain_from(pre)
    if any(linear_at(g.defs, v, with_bias=False) for v in chain):
        chain = []
    if not any(g.composite(g.defs[v]) == "qcompile.rope" for v in chain):
        if not need_rope:
            return
        raise _fail(layer.index, f"no RoPE (qcompile.rope composite) between the key '{first.name}' and the cache")
    layer.key.pre_rope = pre
    layer.key.rope_chain = chain
    layer.key.pre_perm = _layout_perm(pre, key.new, layer.index)
    # the chain's other inputs: constants or functions of the position ids only
    for v in chain:
        for a in Graph.args(g.defs[v]):
            if not isinstance(a, relax.Var) or a in chain_vars or a.same_as(pre):
                continue
            src = ((nx.ancestors(g.g, a) | {a}) & g.params) - {positions}
            if src and key.slots is not None and {p.name for p in src} == {"attention_mask"}:
                # a slotted cache's positions come from the rows' lengths (the mask): found
                # where the RoPE tables are gathered, re-made as the slots' own indices
                at = _gathered_at(g, a)
                if at:
                    key.step_positions += [x for x in at if not any(x.same_as(y) for y in key.step_positions)]
                    continue
            if src:
                only = f"'{positions.name}'" if positions is not None else "the cache length"
                raise _fail(layer.index, f"RoPE input '{a.name}' depends on {', '.join(sorted(p.name for p in src))}, "
                                         f"not only on {only}")


def _gathered_at(g: Graph, a) -> list:
    """The index tensors of the ``take(constant table, index)`` bindings ``a`` derives from
    (RoPE's cos/sin tables gathered at this step's positions)."""
    found, seen, todo = [], set(), [a]
    while todo:
        v = todo.pop()
        if v in seen or not isinstance(v, relax.Var) or v not in g.defs:
            continue
        seen.add(v)
        val = g.defs[v]
        if op_name(val) == "take" and not isinstance(val.args[0], relax.Var) and isinstance(val.args[1], relax.Var):
            found.append(val.args[1])
            continue
        todo += [x for x in Graph.args(val) if isinstance(x, relax.Var)]
    return found
