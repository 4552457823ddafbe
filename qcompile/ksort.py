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
"""
from __future__ import annotations

import dataclasses

import numpy as np
from tvm import relax

from .errors import QCompileError
from .ir import attention_roles, const_value
from .kvcache import Layer
from .residual import MOVES, NORMS, Graph, move_ids, op_name, shape1, value_paths

SOURCES = ("weights", "calibrated")
CRITERIA = ("key", "key/query")


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


def sort_keys(n: np.ndarray, form: str | None) -> SignedPerm:
    """Rotary pairs by ``sqrt(n_a² + n_b²)``, descending, the larger member in the first role;
    without RoPE (``form`` None) like :func:`sort_values`."""
    if form is None:
        return sort_values(n)
    n = np.asarray(n, np.float64)
    pairs = rotary_pairs(len(n), form)
    na, nb = n[pairs[:, 0]], n[pairs[:, 1]]
    order = np.argsort(-np.hypot(na, nb), kind="stable")
    return pair_perm(order, nb[order] > na[order], len(n), form)


def key_statistic(nk: np.ndarray, nq: np.ndarray | None, criterion: str) -> np.ndarray:
    """The per-channel magnitude keys are sorted by: ``key`` (the paper: the key's own
    magnitude ``nk``) or ``key/query`` (``nk / nq``, with ``nq`` the magnitude of the query
    channel, the largest over the query heads of the group)."""
    if criterion == "key":
        return nk
    nq = np.asarray(nq, np.float64)
    return np.asarray(nk, np.float64) / np.where(nq > 0, nq, np.inf)


# ----------------------------------------------------------------------------- analysis


@dataclasses.dataclass
class Projection:
    matmul: relax.Var            # x @ W, W a constant [in, out]
    bias: relax.Var | None       # the add of a constant bias after it
    columns: np.ndarray          # [heads, D]: W's output column of each (head, channel)
    gamma: np.ndarray | None     # the constant scale of the norm feeding x, if any


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
    rope_q: relax.Var            # the qcompile.rope call on the queries
    rope_k: relax.Var            # ... on the keys
    form: str                    # "half" or "interleaved"
    head_dim: int
    kv_heads: int


def _err(layer: int, what: str) -> QCompileError:
    return QCompileError(f"k-sort: layer {layer}: {what}",
                         hint="k-sort needs q/k/v/o linear layers around each attention and full-width RoPE")


def rope_form(g: Graph, call) -> str:
    """``half`` or ``interleaved`` for a ``qcompile.rope`` composite (interleaved reshapes)."""
    f = g.funcs[call.op.name_hint]
    ops = {op_name(b.value) for blk in f.body.blocks for b in blk.bindings}
    return "interleaved" if "reshape" in ops else "half"


def _find_rope(g: Graph, start, layer: int, what: str):
    """Walk back from an attention operand through data movement to a ``qcompile.rope`` call."""
    v = start
    while isinstance(v, relax.Var) and v in g.defs:
        val = g.defs[v]
        if g.composite(val) == "qcompile.rope":
            return v
        op = op_name(val)
        if op == "concat":
            new = [f for f in val.args[0].fields if not (isinstance(f, relax.Var) and f in g.params)]
            if len(new) != 1:
                if any(isinstance(f, relax.Var) and g.composite(g.defs.get(f)) == "qcompile.rope" for f in new):
                    raise _err(layer, f"RoPE covers part of the {what} head (partial rotary): not supported")
                break
            v = new[0]
            continue
        if op not in MOVES:
            break
        v = val.args[0]
    raise _err(layer, f"no RoPE (qcompile.rope) on the {what} path")


def _projection(g: Graph, rope_var, layer: int, what: str) -> Projection:
    """The linear layer feeding a RoPE call's input and the column of each (head, channel)."""
    x = g.defs[rope_var].args[0]
    chain, v = [], x
    while True:
        if not isinstance(v, relax.Var) or v not in g.defs:
            raise _err(layer, f"the {what} does not come from a linear layer")
        val = g.defs[v]
        op = op_name(val)
        if op == "matmul" and const_value(val.args[1]) is not None:
            mm, bias = v, None
            break
        if op == "add" and isinstance(val.args[0], relax.Var) and val.args[0] in g.defs \
                and op_name(g.defs[val.args[0]]) == "matmul" and const_value(g.defs[val.args[0]].args[1]) is not None \
                and const_value(val.args[1]) is not None and len(val.args[1].ty.shape) <= 1:
            mm, bias = val.args[0], v
            break
        if op in NORMS:
            raise _err(layer, f"a per-head norm ({op}) between the {what} projection and RoPE (q/k norm) "
                              "is not supported: its scale is shared by all heads")
        if op == "strided_slice":
            raise _err(layer, f"RoPE covers part of the {what} head (partial rotary): not supported")
        if op not in MOVES or op == "concat":
            raise _err(layer, f"the {what} passes through {op} between its projection and RoPE")
        chain.append(v)
        v = val.args[0]
    out = bias if bias is not None else mm
    ids = np.broadcast_to(np.arange(shape1(out)[-1]), shape1(out)).copy()
    for c in reversed(chain):
        ids = move_ids(g.defs[c], [ids], c)
        if ids is None:
            raise _err(layer, f"cannot follow the {what}'s data movement")
    if ids.ndim != 4:
        raise _err(layer, f"the {what} entering RoPE is not [batch, heads, tokens, head_dim]")
    cols = ids[0, :, 0, :]
    if not all(np.array_equal(ids[b, :, t, :], cols) for b in range(ids.shape[0]) for t in range(ids.shape[2])):
        raise _err(layer, f"the {what}'s heads do not take the same columns at every token")
    src = g.defs[mm].args[0]
    gamma = None
    if isinstance(src, relax.Var) and src in g.defs and op_name(g.defs[src]) in NORMS:
        gamma = const_value(g.defs[src].args[1])
    return Projection(mm, bias, cols, gamma)


def _query_groups(g: Graph, rope_q, q_operand, kv_heads: int, layer: int) -> np.ndarray:
    """The KV head (axis 1 of the attention's operands) each query head of ``rope_q`` uses,
    by pushing element ids from the RoPE output to the attention's query operand."""
    shape = shape1(rope_q)
    ids = np.arange(int(np.prod(shape))).reshape(shape)
    v = q_operand
    chain = []
    while not v.same_as(rope_q):
        val = g.defs.get(v)
        if val is None or op_name(val) not in MOVES or op_name(val) == "concat":
            raise _err(layer, "the queries reach the attention through something other than data movement")
        chain.append(v)
        v = val.args[0]
    for c in reversed(chain):
        ids = move_ids(g.defs[c], [ids], c)
    if ids is None or ids.ndim != 4 or ids.shape[1] != kv_heads:
        raise _err(layer, "the attention's query operand is not grouped by KV head [batch, kv heads, ..]")
    head = np.unravel_index(ids, shape)[1]
    groups = np.full(shape[1], -1)
    for kv in range(kv_heads):
        groups[np.unique(head[:, kv])] = kv
    if np.any(groups < 0):
        raise _err(layer, "a query head does not reach the attention")
    return groups


def attention_layers(g: Graph, layers: list[Layer]) -> list[AttentionLayer]:
    """For each cache layer (:func:`qcompile.kvcache.cache_paths`): its q/k/v/o linear layers,
    their head columns, the RoPE calls and the GQA grouping."""
    paths, skipped = value_paths(g)
    out = []
    for L in layers:
        att = g.defs[L.attention]
        roles = attention_roles(g.funcs[att.op.name_hint])["params"]
        rope_k = _find_rope(g, att.args[roles.index("k")], L.index, "key")
        rope_q = _find_rope(g, att.args[roles.index("q")], L.index, "query")
        form = rope_form(g, g.defs[rope_k])
        k = _projection(g, rope_k, L.index, "key")
        q = _projection(g, rope_q, L.index, "query")
        vp = [p for p in paths if _feeds(g, p, L.attention)]
        if len(vp) != 1:
            why = "; ".join(skipped) if skipped else "no V -> O path found"
            raise _err(L.index, f"the value path: {why}")
        vp = vp[0]
        kv = L.key.heads
        groups = _query_groups(g, rope_q, att.args[roles.index("q")], kv, L.index)
        if k.columns.shape != (kv, L.key.head_dim) or vp.v_columns.shape[0] != kv:
            raise _err(L.index, "the key/value projections do not have one block of columns per KV head")
        v_cols = np.zeros_like(vp.v_columns)
        v_cols[vp.v_heads] = vp.v_columns
        out.append(AttentionLayer(L.index, q, k, v_cols, vp.producer, vp.bias, vp.consumer, vp.o_rows,
                                  np.asarray(vp.o_heads), groups, rope_q, rope_k, form, L.key.head_dim, kv))
    return out


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
