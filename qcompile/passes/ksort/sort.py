"""K-sort (Trukhanov & Soloveychik 2024): compile-time channel reordering for block formats.
Analysis and permutation algebra; :mod:`qcompile.passes.ksort` rewrites.

A block format shares one exponent per block of ``B`` consecutive channels, so one outlier
channel coarsens its whole block. Permuting the channels of each head so that channels of
similar magnitude share blocks (sorting by norm) helps, and costs nothing at run time when
the permutation is folded into the weights: ``q · k`` is unchanged when the key channels
(the columns of ``W_k`` of the head) and the query channels (the columns of ``W_q`` of every
query head that reads this KV head, GQA) move together; ``softmax(..) V W_o`` is unchanged
when the columns of ``W_v`` and the rows of ``W_o`` of the head move together.

**RoPE.** RoPE rotates rotary pairs (rotate-half: ``(j, j + D/2)``; interleaved:
``(2j, 2j + 1)``) by the pair's own frequency. A channel map commutes with it when it maps
pairs onto pairs, and the sine/cosine tables are permuted with the data. Within a pair,
swapping the two members and negating one (``(a, b) -> (-b, a)``, a 90° rotation) also
commutes with every 2-D rotation. So K-sort permutes keys with **signed permutations built
from pair moves and pair swaps**, and the pass permutes the RoPE tables per KV head
(:class:`SignedPerm` ``new[c] = sign[c] * old[perm[c]]``). Rotary pairs are kept together
because RoPE's own ``rotate`` step is fixed structure (``concat(-x[D/2:], x[:D/2])``): only
its tables are data, so the tables are what follows the permutation.

Consequence, stated plainly: under rotate-half with ``B = D/2`` every block holds exactly one
member of every pair whatever the permutation, so sorting pairs cannot change the blocks;
the in-pair swap can (it chooses which member goes to the first half), which matters for
keys stored before RoPE, where the two members differ; after RoPE they mix by rotation.

**The order.** Per KV head, from per-channel magnitudes: the column norms of the
projections (``||γ ⊙ W[:, c]||`` with the RMSNorm/LayerNorm scale ``γ`` in front of it; no
data needed) or calibrated absmax. Values: channels sorted by magnitude, descending. Keys:
pairs sorted by ``sqrt(n_a² + n_b²)`` (rotation-invariant), descending, the larger member
first, where ``n`` is (``criterion``):

* ``key``: the key channel's magnitude (the paper);
* ``key/query``: the key's magnitude over the query's (the largest of the group's query
  heads). What attention sees is the score error ``Σ_c q_c (k̂_c - k_c)``; a block's
  rounding error scales with its largest key, so a block costs about
  ``(Σ_{c∈block} q_c²) · max_{c∈block} k_c²``. Keys and queries are large in the same
  channels (the low RoPE frequencies), so sorting by the key alone gathers the large
  queries with the large keys, the costliest grouping; sorting by ``k/q`` gives the
  channels the queries weigh most the blocks with the smallest keys.

**Which graphs.** The analysis follows element ids through data movement
(:mod:`qcompile.analysis.moves`), so it is written for the class of decoder, not one export:
the KV head of every attention head slot is pushed from the cache concat (GQA as a K/V
repeat, or queries grouped by KV head, or MQA broadcast by the attention's matmuls); q/k/v
may be slices of one fused projection; the heads may sit on axis 1 or 2 where RoPE applies;
**partial rotary** (RoPE on the first ``r`` channels, the rest passed through) sorts rotary
pairs among the first ``r`` channels and the pass-through channels freely among the rest;
**no RoPE** (learned positions) sorts key channels freely; a per-head **RMSNorm on q or k**
(Qwen3) keeps its statistic (a sum of squares, invariant under signed permutation) and
gets one gain per head, ``γ[perm]``.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from tvm import relax

from qcompile.errors import QCompileError
from qcompile.ir import attention_roles, const_value
from qcompile.analysis.moves import REPEATS
from qcompile.analysis.kvcache import Cache, Layer
from qcompile.analysis.graph import NORMS, Graph, linear_at
from qcompile.analysis.moves import MOVES, op_name
from qcompile.analysis.residual import move_ids, shape1, value_paths

SOURCES = ("weights", "calibrated")
CRITERIA = ("key", "key/query")
VALUE_CRITERIA = ("value", "value*out")


# ----------------------------------------------------------------------------- algebra


@dataclasses.dataclass(frozen=True)
class SignedPerm:
    """``y = P x`` with ``y[c] = sign[c] * x[perm[c]]``: a signed permutation of one axis
    (orthogonal: ``P⁻¹ = Pᵀ``, so ``(P q) · (P k) = q · k``)."""

    perm: np.ndarray
    sign: np.ndarray

    @staticmethod
    def identity(d: int) -> "SignedPerm":
        return SignedPerm(np.arange(d), np.ones(d))

    def __post_init__(self):
        if sorted(np.asarray(self.perm).tolist()) != list(range(len(self.perm))) or \
                not np.all(np.abs(self.sign) == 1):
            raise ValueError("not a signed permutation")

    def apply(self, x: np.ndarray, axis: int = -1) -> np.ndarray:
        x = np.moveaxis(np.asarray(x), axis, -1)
        return np.moveaxis(x[..., self.perm] * self.sign.astype(x.dtype), -1, axis)

    def inverse(self) -> "SignedPerm":
        inv = np.argsort(self.perm)
        return SignedPerm(inv, self.sign[inv])

    def then(self, other: "SignedPerm") -> "SignedPerm":
        """``other ∘ self``: apply ``self`` first."""
        return SignedPerm(self.perm[other.perm], other.sign * self.sign[other.perm])

    def matrix(self) -> np.ndarray:
        """``M`` with ``apply(x) = M @ x``."""
        m = np.zeros((len(self.perm), len(self.perm)))
        m[np.arange(len(self.perm)), self.perm] = self.sign
        return m

    def leading(self, r: int) -> "SignedPerm":
        """The permutation of the first ``r`` channels (which it must keep among themselves)."""
        return SignedPerm(self.perm[:r], self.sign[:r])

    @property
    def is_identity(self) -> bool:
        return bool(np.all(self.perm == np.arange(len(self.perm))) and np.all(self.sign == 1))


def rotary_pairs(d: int, form: str) -> np.ndarray:
    """``[D/2, 2]``: the (first, second) member of each rotary pair."""
    j = np.arange(d // 2)
    return np.stack([j, j + d // 2], 1) if form == "half" else np.stack([2 * j, 2 * j + 1], 1)


def pair_perm(order: np.ndarray, swap: np.ndarray, d: int, form: str) -> SignedPerm:
    """New pair ``i`` takes old pair ``order[i]``; swapped (``(a, b) -> (-b, a)``) where ``swap[i]``."""
    pairs = rotary_pairs(d, form)
    perm, sign = np.zeros(d, np.int64), np.ones(d)
    for i, j in enumerate(order):
        (a, b), (na, nb) = pairs[j], pairs[i]
        if swap[i]:
            perm[na], sign[na], perm[nb] = b, -1.0, a
        else:
            perm[na], perm[nb] = a, b
    return SignedPerm(perm, sign)


def rope_ref(x: np.ndarray, cos: np.ndarray, sin: np.ndarray, form: str) -> np.ndarray:
    """``x * cos + rotate(x) * sin`` along the last axis (the NumPy form of ``qcompile.rope``)."""
    if form == "half":
        h = x.shape[-1] // 2
        rot = np.concatenate([-x[..., h:], x[..., :h]], -1)
    else:
        rot = np.stack([-x[..., 1::2], x[..., 0::2]], -1).reshape(x.shape)
    return x * cos + rot * sin


# ----------------------------------------------------------------------------- the order


def sort_values(n: np.ndarray) -> SignedPerm:
    """Channels by magnitude ``n``, descending (ties: lower index first)."""
    return SignedPerm(np.argsort(-np.asarray(n, np.float64), kind="stable"), np.ones(len(n)))


def sort_keys(n: np.ndarray, form: str | None, rotary: int | None = None) -> SignedPerm:
    """Rotary pairs by ``sqrt(n_a² + n_b²)``, descending, the larger member in the first role;
    without RoPE (``form`` None) like :func:`sort_values`. With partial rotary (RoPE on the
    first ``rotary`` channels, GPT-NeoX, Phi-2) the rotary channels are sorted as pairs among
    themselves and the pass-through channels freely among themselves."""
    if form is None:
        return sort_values(n)
    n = np.asarray(n, np.float64)
    r = len(n) if rotary is None else rotary
    pairs = rotary_pairs(r, form)
    na, nb = n[pairs[:, 0]], n[pairs[:, 1]]
    order = np.argsort(-np.hypot(na, nb), kind="stable")
    head = pair_perm(order, nb[order] > na[order], r, form)
    if r == len(n):
        return head
    tail = sort_values(n[r:])
    return SignedPerm(np.concatenate([head.perm, r + tail.perm]), np.concatenate([head.sign, tail.sign]))


def key_statistic(nk: np.ndarray, nq: np.ndarray | None, criterion: str) -> np.ndarray:
    """The per-channel magnitude keys are sorted by: ``key`` (the paper: the key's own
    magnitude ``nk``) or ``key/query`` (``nk / nq``, with ``nq`` the magnitude of the query
    channel, the largest over the query heads of the group)."""
    if criterion == "key":
        return nk
    nq = np.asarray(nq, np.float64)
    return np.asarray(nk, np.float64) / np.where(nq > 0, nq, np.inf)


def value_statistic(nv: np.ndarray, att: "AttentionLayer", w_o: np.ndarray) -> np.ndarray:
    """``value*out``: a value channel's magnitude times the norm of the row of ``W_o`` it
    feeds (the largest over the query heads of its group). Attention's output error from a
    value channel ``c`` is ``sum_t p_t (v'_tc - v_tc) W_o[c, :]``: the rounding error of the
    channel is what its block's largest value sets, and ``W_o``'s row scales it."""
    rows = np.linalg.norm(np.asarray(w_o, np.float64), axis=1)[att.o_rows]  # [query heads, D]
    scale = np.stack([rows[att.o_group == h].max(0) for h in range(att.kv_heads)])
    return np.asarray(nv, np.float64) * scale


# ----------------------------------------------------------------------------- analysis


@dataclasses.dataclass
class Projection:
    matmul: relax.Var            # x @ W, W a constant [in, out]
    bias: relax.Var | None       # the add of a constant bias after it
    columns: np.ndarray          # [heads, D]: W's output column of each (head, channel)
    gamma: np.ndarray | None     # the constant scale of the norm feeding x, if any
    head_axis: int = 1           # the axis of the heads where RoPE applies (1: [B, H, T, D], 2: [B, T, H, D])
    head_norms: list = dataclasses.field(default_factory=list)  # [(per-head RMSNorm var, its head axis)]
    full_norms: list = dataclasses.field(default_factory=list)  # RMSNorms over the whole projection (OLMo-2)


@dataclasses.dataclass
class AttentionLayer:
    index: int
    q: Projection
    k: Projection
    v_columns: np.ndarray        # [KV heads, D] columns of W_v, by KV head
    v_matmul: relax.Var
    v_bias: relax.Var | None
    o_matmul: relax.Var
    o_rows: np.ndarray           # [query heads, D] rows of W_o, by query head
    o_group: np.ndarray          # [query heads]: the KV head each block of o_rows reads
    q_group: np.ndarray          # [query heads]: the KV head each query head attends with
    rope_q: relax.Var | None     # the qcompile.rope call on the queries (None: no RoPE)
    rope_k: relax.Var | None     # ... on the keys
    form: str | None             # "half" or "interleaved" (None: no RoPE, channels move freely)
    head_dim: int
    kv_heads: int
    q_input: relax.Var | None = None  # the query entering RoPE (or the attention, without RoPE)
    rotary: int = 0              # channels RoPE covers (head_dim, or fewer with partial rotary)
    head_axis: int = 1           # the heads' axis where RoPE applies ([B, H, T, D]: 1; GPT-J's [B, T, H, D]: 2)


def _err(layer: int, what: str) -> QCompileError:
    return QCompileError(f"k-sort: layer {layer}: {what}",
                         hint="k-sort needs q/k/v/o linear layers around each attention, reached through data movement")


def rope_form(g: Graph, call) -> str:
    """``half`` or ``interleaved`` for a ``qcompile.rope`` composite (interleaved reshapes)."""
    f = g.funcs[call.op.name_hint]
    ops = {op_name(b.value) for blk in f.body.blocks for b in blk.bindings}
    return "interleaved" if "reshape" in ops else "half"


@dataclasses.dataclass
class _Rope:
    call: relax.Var       # the qcompile.rope composite call
    head: relax.Var       # the whole [B, H, T, D] head after RoPE (the call, or the partial-rotary concat)
    parts: list           # the tensors whose channels make the head, in order: RoPE's input (+ the pass-through)
    rotary: int           # channels RoPE covers (the first ``rotary`` of the head)


def _find_rope(g: Graph, start, layer: int, what: str) -> _Rope | None:
    """Walk back from an attention operand through data movement to a ``qcompile.rope`` call;
    partial rotary is ``concat(rope(x[..., :r]), x[..., r:])`` on the last axis."""
    v = start
    while isinstance(v, relax.Var) and v in g.defs:
        val = g.defs[v]
        if g.composite(val) == "qcompile.rope":
            return _Rope(v, v, [val.args[0]], shape1(v)[-1])
        op = op_name(val)
        if op == "concat":
            fields = list(val.args[0].fields)
            new = [f for f in fields if g.input_of(f) is None]
            if len(new) == 1:
                v = new[0]
                continue
            is_rope = [isinstance(f, relax.Var) and g.composite(g.defs.get(f)) == "qcompile.rope" for f in fields]
            nd = len(shape1(v))
            if len(fields) == 2 and is_rope == [True, False] and int(val.attrs.axis) % nd == nd - 1:
                return _Rope(fields[0], v, [g.defs[fields[0]].args[0], fields[1]], shape1(fields[0])[-1])
            if any(is_rope):
                raise _err(layer, f"the {what} head is assembled around RoPE in a way k-sort does not know")
            break
        if op not in MOVES:
            break
        v = val.args[0]
    return None  # no RoPE on this path (learned or no positions: OPT, GPT-2, ALiBi)


def _head_projection(g: Graph, parts: list, layer: int, what: str) -> Projection:
    """The projection columns of a whole head made of ``parts`` (concatenated on the last axis)."""
    projs = [_projection(g, x, layer, what) for x in parts]
    first = projs[0]
    if any(p.matmul != first.matmul or p.bias != first.bias for p in projs[1:]):
        raise _err(layer, f"the rotary and pass-through channels of the {what} come from different projections")
    if any(p.head_axis != first.head_axis for p in projs[1:]):
        raise _err(layer, f"the rotary and pass-through channels of the {what} have different layouts")
    if any(p.head_norms or p.full_norms for p in projs[1:]):
        raise _err(layer, f"a per-head norm on the pass-through channels of the {what}")
    return Projection(first.matmul, first.bias, np.concatenate([p.columns for p in projs], axis=1), first.gamma,
                      first.head_axis, first.head_norms, first.full_norms)


def _projection(g: Graph, x, layer: int, what: str) -> Projection:
    """The linear layer feeding ``x`` (a RoPE call's input, or the attention operand of a
    model without RoPE) and the column of each (head, channel)."""
    chain, v = [], x
    while True:
        if not isinstance(v, relax.Var) or v not in g.defs:
            raise _err(layer, f"the {what} does not come from a linear layer")
        val = g.defs[v]
        op = op_name(val)
        lin = linear_at(g.defs, v)
        if lin is not None:
            mm, bias = lin.matmul, lin.bias
            break
        if op in NORMS:
            ok = op == "nn.rms_norm" and [int(a) for a in val.attrs.axes] in ([-1], [len(val.ty.shape) - 1]) \
                and const_value(val.args[1]) is not None
            if not ok:
                raise _err(layer, f"a per-head norm ({op}) between the {what} projection and RoPE is not supported "
                                  "(an RMSNorm over head_dim with a constant gain is: Qwen3's q/k norm)")
        scalar = op == "multiply" and const_value(val.args[1]) is not None and const_value(val.args[1]).size == 1
        if (op not in MOVES or op == "concat") and not scalar and op != "nn.rms_norm":  # a scalar factor (OPT's d^-1/2) commutes
            through = op or (f"the {g.composite(val)} composite" if g.composite(val) else type(val).__name__)
            raise _err(layer, f"the {what} passes through {through} between its projection and the attention"
                              + (" (a norm after RoPE)" if g.composite(val) == "qcompile.rope" else ""))
        chain.append(v)
        v = val.args[0]
    out = bias if bias is not None else mm
    ids = np.broadcast_to(np.arange(shape1(out)[-1]), shape1(out)).copy()
    head_norms, full_norms = [], []
    for c in reversed(chain):
        op = op_name(g.defs[c])
        if op == "nn.rms_norm" and ids.ndim < 4 and (ids == np.arange(ids.shape[-1])).all():
            # over the whole projection output (OLMo-2's q/k norm): its statistic is invariant
            # under any signed permutation of the columns, its gain follows the columns
            full_norms.append(c)
            continue
        if op == "nn.rms_norm":  # per head: no element moves; its gain is permuted per head
            if ids.ndim != 4:
                raise _err(layer, f"the {what}'s per-head norm '{c.name}' is not on [batch, heads|tokens, .., head_dim]")
            head_norms.append((c, _head_layout(ids, layer, what)[0]))
            continue
        if op == "multiply":
            continue
        ids = move_ids(g.defs[c], [ids], c, g.defs)
        if ids is None:
            raise _err(layer, f"cannot follow the {what}'s data movement")
    if ids.ndim != 4:
        raise _err(layer, f"the {what} entering RoPE is not [batch, heads, tokens, head_dim]")
    head_axis, cols = _head_layout(ids, layer, what)
    src = g.defs[mm].args[0]
    gamma = None
    if isinstance(src, relax.Var) and src in g.defs and op_name(g.defs[src]) in NORMS:
        gamma = const_value(g.defs[src].args[1])
    return Projection(mm, bias, cols, gamma, head_axis, head_norms, full_norms)


def _head_layout(ids: np.ndarray, layer: int, what: str) -> tuple[int, np.ndarray]:
    """``(head axis, [heads, D] columns)`` of 4-D column ids: heads on axis 1 ([B, H, T, D],
    most exports) or 2 ([B, T, H, D]: GPT-J applies RoPE, Qwen3 its q/k norm, before moving
    the heads forward); the token axis is the one the columns do not vary on."""
    for head_axis in (1, 2):
        heads = np.moveaxis(ids, head_axis, 1)
        cols = heads[0, :, 0, :]
        if all(np.array_equal(heads[b, :, t, :], cols) for b in range(heads.shape[0]) for t in range(heads.shape[2])):
            return head_axis, cols
    raise _err(layer, f"the {what}'s heads do not take the same columns at every token")


def _push(g: Graph, src, operand, ops, layer: int, what: str) -> np.ndarray:
    """Element ids of ``src`` (flat indices into its shape, symbolic dims stood in by 1)
    pushed through the data movement that leads from ``src`` to ``operand``."""
    shape = shape1(src)
    chain, v = [], operand
    while not v.same_as(src):
        val = g.defs.get(v)
        if val is None or op_name(val) not in ops:
            raise _err(layer, f"the {what} reach the attention through something other than data movement")
        chain.append(v)
        v = val.args[0]
    ids = np.arange(int(np.prod(shape))).reshape(shape)
    for c in reversed(chain):
        ids = move_ids(g.defs[c], [ids], c, g.defs)
        if ids is None:
            raise _err(layer, f"cannot follow the {what}' data movement into the attention")
    return ids


def _slot_heads(g: Graph, cache: "Cache", operand, layer: int, what: str) -> np.ndarray:
    """``[attention heads]``: the KV head of ``cache`` that each head slot (axis 1) of the
    attention operand reads, through a GQA repeat written as ``expand_dims -> broadcast_to
    -> reshape``, ``tile`` or ``repeat`` (or none)."""
    # a slotted cache (GroupQueryAttention's buffer) reaches the attention from its gather
    ids = _push(g, cache.gathered if cache.gathered is not None else cache.concat, operand, REPEATS, layer, what)
    if ids.ndim != 4:
        raise _err(layer, f"the attention's {what} operand is not [batch, heads, tokens, head_dim]")
    head = np.unravel_index(ids, shape1(cache.concat))[1]
    out = []
    for slot in range(ids.shape[1]):
        kv = np.unique(head[:, slot])
        if len(kv) != 1:
            raise _err(layer, f"an attention head reads more than one KV head of the {what}")
        out.append(kv[0])
    return np.array(out)


def _query_groups(g: Graph, rope_q, q_operand, k_slots: np.ndarray, layer: int, head_axis: int = 1) -> np.ndarray:
    """The KV head each query head of ``rope_q`` attends with: the queries are pushed, as
    element ids, from their RoPE output to the attention's head axis, where each slot pairs
    the query heads it holds with the KV head ``k_slots`` says it reads (the export may
    group the queries by KV head, or repeat K/V per query head)."""
    qids = _push(g, rope_q, q_operand, MOVES - {"concat"}, layer, "queries")
    if qids.ndim != 4 or qids.shape[1] != len(k_slots):
        raise _err(layer, "the attention's query and key operands are not [batch, heads, tokens, head_dim] "
                          "with the same number of heads")
    q_head = np.unravel_index(qids, shape1(rope_q))[head_axis]
    groups = np.full(shape1(rope_q)[head_axis], -1)
    for slot, kv in enumerate(k_slots):
        for h in np.unique(q_head[:, slot]):
            if groups[h] not in (-1, kv):
                raise _err(layer, f"query head {h} attends with two KV heads")
            groups[h] = kv
    if np.any(groups < 0):
        raise _err(layer, "a query head does not reach the attention")
    return groups


def attention_layers(g: Graph, layers: list[Layer]) -> list[AttentionLayer]:
    """For each cache layer (:func:`qcompile.analysis.kvcache.cache_paths`): its q/k/v/o linear layers,
    their head columns, the RoPE calls and the GQA grouping."""
    paths, skipped = value_paths(g)
    out = []
    for L in layers:
        att = g.defs[L.attention]
        roles = attention_roles(g.funcs[att.op.name_hint])["params"]
        q_operand = att.args[roles.index("q")]
        rope_k = _find_rope(g, att.args[roles.index("k")], L.index, "key")
        rope_q = _find_rope(g, q_operand, L.index, "query")
        if (rope_k is None) != (rope_q is None):
            raise _err(L.index, f"RoPE on the {'queries' if rope_k is None else 'keys'} only")
        if rope_k is None:  # no RoPE: the key as cached and the query as attended
            form, rotary, k_parts, q_head = None, L.key.head_dim, [L.key.new], q_operand
        else:
            if rope_k.rotary != rope_q.rotary:
                raise _err(L.index, "RoPE covers different widths of the query and key heads")
            form, rotary, k_parts, q_head = rope_form(g, g.defs[rope_k.call]), rope_k.rotary, rope_k.parts, rope_q.head
        k = _head_projection(g, k_parts, L.index, "key")
        q = _head_projection(g, [q_operand] if rope_q is None else rope_q.parts, L.index, "query")
        # the query as RoPE sees it, for the key/query criterion's statistics (partial rotary: the
        # tensor both parts are sliced from, when there is one)
        q_in = q_operand if rope_q is None else _common_source(g, rope_q.parts)
        vp = [p for p in paths if _feeds(g, p, L.attention)]
        if len(vp) != 1:
            why = "; ".join(skipped) if skipped else "no V -> O path found"
            raise _err(L.index, f"the value path: {why}")
        vp = vp[0]
        kv = L.key.heads
        k_slots = _slot_heads(g, L.key, att.args[roles.index("k")], L.index, "keys")
        v_slots = _slot_heads(g, L.value, att.args[roles.index("v")], L.index, "values")
        n_att = shape1(q_operand)[1] if len(shape1(q_operand)) == 4 else len(k_slots)
        # multi-query attention broadcast by the attention's matmuls (Falcon: one KV head
        # against all query heads): the single slot serves every head
        k_slots, v_slots = (np.repeat(x, n_att) if len(x) == 1 else x for x in (k_slots, v_slots))
        if rope_q is not None and q.head_axis != k.head_axis:
            raise _err(L.index, "the queries and keys have their heads on different axes at RoPE")
        groups = _query_groups(g, q_head, q_operand, k_slots, L.index, q.head_axis if rope_q is not None else 1)
        for proj, what in ((k, "key"), (q, "query")):
            if proj.columns.shape[1] != L.key.head_dim:
                raise _err(L.index, f"the {what} heads are {proj.columns.shape[1]} projection columns wide, "
                                    f"the cache's head_dim is {L.key.head_dim}")
        if k.columns.shape != (kv, L.key.head_dim) or vp.v_columns.shape[0] != kv:
            raise _err(L.index, "the key/value projections do not have one block of columns per KV head")
        v_cols = np.zeros_like(vp.v_columns)
        v_cols[v_slots[vp.v_heads]] = vp.v_columns
        out.append(AttentionLayer(L.index, q, k, v_cols, vp.producer, vp.bias, vp.consumer, vp.o_rows,
                                  v_slots[np.asarray(vp.o_heads)], groups, rope_q and rope_q.call, rope_k and rope_k.call,
                                  form, L.key.head_dim, kv, q_in, rotary, k.head_axis))
    return out


def _common_source(g: Graph, parts: list):
    """The one tensor all ``parts`` are strided slices of (the whole head), else the first part."""
    if len(parts) == 1:
        return parts[0]
    srcs = {g.defs[p].args[0] for p in parts if p in g.defs and op_name(g.defs[p]) == "strided_slice"}
    return srcs.pop() if len(srcs) == 1 and len(parts) == sum(
        1 for p in parts if p in g.defs and op_name(g.defs[p]) == "strided_slice") else None


def _feeds(g: Graph, path, att) -> bool:
    """The V path's producer reaches ``att`` (through the cache concat and data movement)."""
    seen, work = set(), [path.bias if path.bias is not None else path.producer]
    while work:
        x = work.pop()
        for u, _ in g.users.get(x, []):
            if u == att:
                return True
            if u not in seen and op_name(g.defs[u]) in MOVES:
                seen.add(u)
                work.append(u)
    return False


def weight_norms(proj: Projection, w: np.ndarray) -> np.ndarray:
    """``[heads, D]``: ``||γ ⊙ W[:, c]||`` of each (head, channel) column."""
    w = np.asarray(w, np.float64)
    if proj.gamma is not None:
        w = w * np.asarray(proj.gamma, np.float64).reshape(-1, 1)
    n = np.linalg.norm(w, axis=0)
    return n[proj.columns]


# ----------------------------------------------------------------------------- MLP weight blocks

ELEMENTWISE = {"multiply", "add", "subtract", "divide", "sigmoid", "nn.silu", "nn.gelu", "nn.gelu_tanh", "tanh",
               "erf", "power", "negative"}


@dataclasses.dataclass
class MlpBlock:
    down: relax.Var              # h @ W_down, W_down a constant [width, out]
    producers: list              # [(matmul var, bias var | None)]: x @ W [in, width] feeding h elementwise
    width: int


def mlp_blocks(g: Graph) -> list[MlpBlock]:
    """Linear layers whose input is an elementwise function (SwiGLU, GELU, ...) of other
    linear layers' outputs and nothing else: permuting the input channels of the first
    together with the output columns of the others leaves the model unchanged."""
    out = []
    for var in g.order:
        val = g.defs[var]
        w = const_value(val.args[1]) if op_name(val) == "matmul" else None
        if w is None or w.ndim != 2:
            continue
        found = _elementwise_sources(g, val.args[0], int(w.shape[0]), var)
        if found:
            out.append(MlpBlock(var, found, int(w.shape[0])))
    return out


def _elementwise_sources(g: Graph, x, width: int, down) -> list | None:
    producers, seen, work = [], set(), [x]
    while work:
        v = work.pop()
        if v in seen:
            continue
        if not isinstance(v, relax.Var) or v not in g.defs:
            return None
        seen.add(v)
        val = g.defs[v]
        op = op_name(val)
        w = const_value(val.args[1]) if op == "matmul" else None
        if w is not None and w.ndim == 2 and w.shape[1] == width:
            producers.append((v, None))
            continue
        if op == "add" and isinstance(val.args[0], relax.Var) and val.args[0] in g.defs \
                and op_name(g.defs[val.args[0]]) == "matmul" and const_value(val.args[1]) is not None \
                and const_value(val.args[1]).shape == (width,):
            mm = g.defs[val.args[0]]
            if const_value(mm.args[1]) is not None and const_value(mm.args[1]).shape[1] == width:
                seen.add(val.args[0])
                producers.append((val.args[0], v))
                continue
        if op not in ELEMENTWISE:
            return None
        for a in val.args:
            c = const_value(a)
            if c is not None:
                if c.size != 1:
                    return None
            else:
                work.append(a)
    inside = seen | {down}
    if any(u not in inside for v in seen for u, _ in g.users.get(v, [])):
        return None  # an intermediate is also read elsewhere
    return producers or None
