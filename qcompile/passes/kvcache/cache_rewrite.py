"""The format-independent half of a KV-cache rewrite, shared by ``kv-prerope`` (KVQuant's
packed integer codes) and ``bfp`` (block floating point).

For every layer found by :func:`qcompile.analysis.kvcache.cache_paths`, a subclass says how one
cache is stored (:meth:`CacheRewrite.tensors`: the tensors replacing the float ``past_*``
input, each with a token axis), how this step's tokens are encoded into them
(:meth:`CacheRewrite.encode`) and how the whole cache is read back as float
(:meth:`CacheRewrite.decode`). This class does the rest, the same for every format:

1. replaces the cache inputs of ``main`` by the stored tensors (``<past name>_<suffix>``);
2. appends this step's encoded tokens along each tensor's token axis and returns the
   results as the ``present`` outputs, in the order of the inputs; a float16 **sink**
   buffer of the first ``sinks`` positions (suffix ``sink``) is updated in place, and a
   float16 **recent window** of the last ``recent`` positions (suffix ``recent``, KIVI's
   full-precision residual) keeps the newest rows; a cache stored **rotated**
   (:meth:`CacheRewrite.rotated`) is multiplied by a random orthogonal Hadamard matrix
   ``Q`` along head_dim before it is encoded and by ``Q^T`` after it is decoded (QuaRot's
   online rotation: outliers spread over the head vector before quantization);
3. feeds attention with the decoded cache; for keys stored **before RoPE**
   (``stores_pre_rope``) it re-runs the model's own RoPE bindings on the decoded cache with
   the positions of the cached tokens, ``cumsum(attention_mask) - 1`` (the HF convention).
"""
from __future__ import annotations

import numpy as np
import tvm
from tvm import relax, te
from tvm.relax import op as O

from qcompile.errors import QCompileError
from qcompile.analysis.kvcache import Cache
from qcompile.passes.kvcache.kvquant import recent_update_te, sink_update_te
from qcompile.analysis.graph import Graph
from qcompile.rewrite import rebuild_main


def _reshape_target(val, new_input):
    """A reshape re-run on more tokens: it keeps the axes its input and output share in
    front (batch, heads, tokens) from the new input and reshapes the rest as before (e.g.
    interleaved RoPE's ``[.., D/2, 2] -> [.., D]``)."""
    src, dst = list(val.args[0].ty.shape), list(val.ty.shape)
    k = 0
    while k < min(len(src), len(dst)) and str(src[k]) == str(dst[k]):
        k += 1
    if k == 0:
        raise QCompileError(f"KV cache rewrite: cannot re-run reshape {[str(d) for d in src]} -> "
                            f"{[str(d) for d in dst]} on the cached tokens")
    return list(new_input.ty.shape)[:k] + dst[k:]


def _broadcast_target(val, new_input):
    """A broadcast re-run on more tokens: axes it expanded keep their target size, the
    others follow the new input."""
    src, dst, now = list(val.args[0].ty.shape), list(val.ty.shape), list(new_input.ty.shape)
    if len(src) != len(dst):
        raise QCompileError("KV cache rewrite: cannot re-run a rank-changing broadcast on the cached tokens")
    return [n if str(a) == str(b) else b for a, b, n in zip(src, dst, now)]


def _stacked_last(val, defs):
    """``[x_0, .., x_{r-1}]`` if ``val`` reshapes ``[.., n, r] -> [.., n*r]`` a stack of the
    ``x_i`` on a new last axis: ``concat([expand_dims(x_i, -1)], -1)`` (interleaved RoPE's
    rotation) or ``broadcast_to(expand_dims(x, -1), [.., r])`` (its cos/sin tables). Re-run
    at a symbolic cache length, TVM 0.27 cannot lower that reshape (iter_affine_map:
    "padding factor ... is not divisible"); the equivalent interleave kernel lowers."""
    src = val.args[0]
    inner = defs.get(src) if isinstance(src, relax.Var) else None
    if inner is None or len(val.ty.shape) != len(src.ty.shape) - 1:
        return None

    def unsqueezed(x):
        e = defs.get(x) if isinstance(x, relax.Var) else None
        if e is None or getattr(e.op, "name", "") != "relax.expand_dims":
            return None
        axes = [int(a) % (len(e.args[0].ty.shape) + 1) for a in e.attrs.axis]
        return e.args[0] if axes == [len(e.args[0].ty.shape)] else None

    op = getattr(inner.op, "name", "")
    if op == "relax.concat" and int(inner.attrs.axis) in (-1, len(src.ty.shape) - 1):
        parts = [unsqueezed(x) for x in inner.args[0].fields]
    elif op == "relax.broadcast_to" and isinstance(src.ty.shape[-1], tvm.tirx.IntImm):
        parts = [unsqueezed(inner.args[0])] * int(src.ty.shape[-1])
    else:
        return None
    return None if any(x is None for x in parts) else parts


def _interleave_te(r: int):
    """``r`` tensors ``[.., n] -> [.., n*r]``, ``out[.., j] = x_{j % r}[.., j // r]``."""
    def f(*xs):
        shape = list(xs[0].shape)

        def at(*i):
            *lead, j = i
            v = xs[r - 1][(*lead, j // r)]
            for k in range(r - 2, -1, -1):
                v = tvm.tirx.Select(j % r == k, xs[k][(*lead, j // r)], v)
            return v
        return te.compute(shape[:-1] + [shape[-1] * r], at, name="interleave_last")
    return f


class CacheRewrite:
    """Base class: subclasses define :meth:`tensors`, :meth:`encode` and :meth:`decode`."""

    name = "kv cache"

    def __init__(self, g: Graph, layers, sinks: int = 0, pre_rope: bool = False, recent: int = 0):
        self.g, self.layers, self.sinks, self.pre_rope, self.recent = g, layers, sinks, pre_rope, recent
        self.rotations: dict = {}  # head_dim -> (Q, Q^T) constants
        self.env: dict = {}
        self.presents: dict = {}     # original concat var -> [present tensors]
        self.pos_memo: dict = {}
        self.full_pos = None
        self.cache_params: dict = {}  # original past param -> [new params]

    # -- what a format defines ----------------------------------------------

    def tensors(self, cache: Cache) -> list:
        """``(suffix, shape, dtype)`` of the tensors replacing ``cache.param``, in order;
        :meth:`float_tensors` gives the sink and recent-window buffers' entries."""
        raise NotImplementedError

    def token_axis(self, suffix: str) -> int:
        return 2

    def encode(self, bb, layer, cache: Cache, x) -> dict:
        """This step's tokens ``x [B, H, T, D]`` as ``{suffix: tensor}`` (the float buffers excluded)."""
        raise NotImplementedError

    def decode(self, bb, layer, cache: Cache, present: dict):
        """The whole cache as float32 ``[B, H, N, D]`` from the present tensors."""
        raise NotImplementedError

    def stored(self, cache: Cache) -> bool:
        """False: this cache stays as the model had it."""
        return True

    def rotated(self, cache: Cache) -> bool:
        """True: this cache is stored rotated by a random Hadamard matrix along head_dim."""
        return False

    def rotated_roles(self) -> list[str]:
        """``"keys"`` / ``"values"``: the caches stored rotated (for the report)."""
        first = self.layers[0]
        return [r for r, c in (("keys", first.key), ("values", first.value)) if self.stored(c) and self.rotated(c)]

    def rotation(self, d: int):
        """``(Q, Q^T)`` float32 constants of order ``d`` (seeded: the same every build)."""
        if d not in self.rotations:
            from qcompile.hadamard import random_orthogonal_hadamard

            q = random_orthogonal_hadamard(d, seed=0)[0].astype(np.float32)
            self.rotations[d] = (relax.const(q), relax.const(np.ascontiguousarray(q.T)))
        return self.rotations[d]

    def stores_pre_rope(self, cache: Cache) -> bool:
        return cache.is_key and self.pre_rope and cache.pre_rope is not None

    def float_tensors(self, cache: Cache) -> list:
        """The float16 buffers of fixed size: the first ``sinks`` and the last ``recent``
        positions."""
        b, h, _, d = cache.param.ty.shape
        return [(s, [b, h, n, d], "float16") for s, n in (("sink", self.sinks), ("recent", self.recent)) if n]

    def float_args(self, present: dict) -> tuple[list, list]:
        """``(sink args, recent args)`` of a decode kernel."""
        return [present["sink"]] if self.sinks else [], [present["recent"]] if self.recent else []

    # -- bytes --------------------------------------------------------------

    def bytes_of(self, cache: Cache) -> tuple[int, int, int]:
        """``(bytes per token, fixed bytes of the sink buffer, of the recent window)`` of one
        cache, batch 1."""
        per_tok, fixed = 0, {"sink": 0, "recent": 0}
        for s, shape, dt in self.tensors(cache):
            if s in fixed:  # [B, H, S, D], fixed size
                fixed[s] += np.dtype(dt).itemsize * int(np.prod([int(x) for x in shape[1:]]))
            else:
                axis = self.token_axis(s)
                dims = [int(x) for i, x in enumerate(shape) if i not in (0, axis)]
                per_tok += np.dtype(dt).itemsize * int(np.prod(dims))
        return per_tok, fixed["sink"], fixed["recent"]

    # -- the rewrite --------------------------------------------------------

    def run(self, mod):
        if self.sinks > 1 and any(c.slots is not None for L in self.layers for c in (L.key, L.value)):
            # the decode kernels put the sinks at the concat's first positions, which are a
            # row's first positions only while its past fills the buffer (one sink: always,
            # but for a prompt written into a non-empty buffer, which attends to its first
            # token's quantized value in that step; the float16 sink is stored and read after)
            raise QCompileError(f"{self.name}: more than one sink on a cache buffer with a length per row "
                                "(onnxruntime's GroupQueryAttention) is not supported",
                                hint="use sinks=1 (the default) or 0")
        if self.recent and any(c.slots is not None for L in self.layers for c in (L.key, L.value)):
            # the window's rows are the concat's last positions, not a row's newest tokens
            raise QCompileError(f"{self.name}: a recent window on a cache buffer with a length per row "
                                "(onnxruntime's GroupQueryAttention) is not supported", hint="use recent=0")
        params = []
        caches = {}
        for L in self.layers:
            for cache in (L.key, L.value):
                if self.stored(cache):
                    caches[cache.param] = cache
        for p in mod["main"].params:
            if p in caches:
                new = [relax.Var(f"{p.name}_{s}", relax.TensorType(shape, dt))
                       for s, shape, dt in self.tensors(caches[p])]
                self.cache_params[p] = new
                params += new
            else:
                params.append(relax.Var(p.name, p.ty))
        self.by_concat = {c.concat: (L, c) for L in self.layers for c in (L.key, L.value) if self.stored(c)}
        self.by_gathered = {c.gathered: c for L in self.layers for c in (L.key, L.value)
                            if self.stored(c) and c.gathered is not None}
        self.pending: dict = {}  # slotted caches: gathered var -> present tensors in concat order
        self.out_var = self.g.output_tuple
        if self.out_var is None:
            raise QCompileError(f"{self.name}: main does not return a tuple of (logits, present caches)")
        self.params = {p.name: p for p in params}
        new = rebuild_main(mod, self.on_binding, params=params, env=self.env)
        return relax.transform.DeadCodeElimination(["main"])(new)

    def on_binding(self, bb, var, val):
        if var in self.by_concat:
            layer, cache = self.by_concat[var]
            return self._emit_cache(bb, layer, cache)
        if var in self.by_gathered:  # the stored tensors moved to the rows' positions, as the floats are
            cache = self.by_gathered[var]
            rows = self._rows(bb, cache)
            self.presents[cache.output] = [t if s in ("sink", "recent") else self._to_slots(bb, t, rows, self.token_axis(s))
                                           for s, t in self.pending.pop(var)]
            return None
        if self.out_var is not None and var.same_as(self.out_var):
            fields = []
            for orig, now in zip(self.g.defs[var].fields, val.fields):
                fields += self.presents.get(orig, [now])
            return relax.Tuple(fields)
        return None

    def _emit_cache(self, bb, layer, cache: Cache):
        pre = self.stores_pre_rope(cache)
        x = self.env[cache.pre_rope if pre else cache.new]
        if pre and cache.pre_perm is not None:  # stored in the cache's layout
            x = bb.emit(O.permute_dims(x, list(cache.pre_perm)))
        # the formats' kernels compute in float32; a float16 / bfloat16 model's tokens are
        # widened on the way in and the decoded cache narrowed back to the model's dtype
        dtype = str(cache.concat.ty.dtype)
        if str(x.ty.dtype) != "float32":
            x = bb.emit(O.astype(x, "float32"))
        if self.rotated(cache):  # encoded (and kept in the float buffers) as x Q
            x = bb.emit(O.matmul(x, self.rotation(cache.head_dim)[0]))
        order = [s for s, *_ in self.tensors(cache)]
        past = dict(zip(order, self.cache_params[cache.param]))
        new = self.encode(bb, layer, cache, x)
        present = {}
        for name in order:
            if name in new:
                present[name] = bb.emit(O.concat([past[name], new[name]], axis=self.token_axis(name)))
        if self.sinks:
            per_row = cache.slots is not None  # each row's new tokens at its own positions
            at = self._step_first(bb, cache) if per_row else past[order[0]]
            present["sink"] = bb.emit_te(sink_update_te(per_row), past["sink"], x, at,
                                         primfunc_name_hint="kv_sink_update")
        if self.recent:
            present["recent"] = bb.emit_te(recent_update_te(), past["recent"], x, primfunc_name_hint="kv_recent_update")
        full = self.decode(bb, layer, cache, present)
        if self.rotated(cache):
            full = bb.emit(O.matmul(full, self.rotation(cache.head_dim)[1]))
        if str(full.ty.dtype) != dtype:
            full = bb.emit(O.astype(full, dtype))
        if cache.gathered is not None:
            self.pending[cache.gathered] = [(s, present[s]) for s in order]
        else:
            self.presents[cache.output] = [present[s] for s in order]
        if pre:
            full = self._rope(bb, cache, full)
        return full

    # -- slotted caches (a buffer with a valid length per row) ---------------

    def _rows(self, bb, cache: Cache):
        """``[B, N]``: the concat position each buffer position of each row takes (the
        gather's index, one head and channel of it)."""
        idx = self.env[cache.slots]
        b, _, n, _ = idx.ty.shape
        return bb.emit(O.reshape(O.strided_slice(idx, axes=[1, 3], begin=[0, 0], end=[1, 1]), [b, n]))

    @staticmethod
    def _to_slots(bb, t, rows, axis: int):
        """``t`` gathered along its token ``axis`` at ``rows`` (the batch on axis 0)."""
        shape = list(t.ty.shape)
        b, n = rows.ty.shape
        view = [b if i == 0 else (n if i == axis else 1) for i in range(len(shape))]
        idx = O.broadcast_to(O.reshape(rows, view), shape)
        return bb.emit(O.gather_elements(t, idx, axis=axis))

    def _step_first(self, bb, cache: Cache):
        """``[B]`` int64: the position of each row's first new token in a slotted cache."""
        key = next(L.key for L in self.layers if cache is L.key or cache is L.value)
        if not key.step_positions:
            raise QCompileError(f"{self.name}: a cache buffer with per-row lengths needs its keys' RoPE positions")
        pos = self.env[key.step_positions[0]]
        b = pos.ty.shape[0]
        return bb.emit(O.reshape(O.astype(O.strided_slice(pos, axes=[1], begin=[0], end=[1]), "int64"), [b]))

    def _concat_positions(self, bb, cache: Cache):
        """The positions of a slotted cache's concat ``[past buffer, new]``: buffer position
        ``j`` is position ``j``, new token ``i`` of row ``b`` is at this step's ``pos[b, i]``."""
        for v in cache.step_positions:
            if v in self.pos_memo:
                continue
            pos = self.env[v]
            b = pos.ty.shape[0]
            p = cache.param.ty.shape[2]
            past = O.broadcast_to(O.expand_dims(O.arange(0, p, 1, str(pos.ty.dtype)), 0), [b, p])
            self.pos_memo[v] = bb.emit(O.concat([past, pos], axis=1))

    # -- RoPE at the cached positions ---------------------------------------

    def _positions(self, bb):
        if self.full_pos is None:
            mask = self.params["attention_mask"]
            pos = O.subtract(O.cumsum(mask, axis=-1, dtype="int64"), relax.const(1, "int64"))
            self.full_pos = bb.emit(O.maximum(pos, relax.const(0, "int64")))
        return self.full_pos

    def _regen(self, bb, v):
        """Re-emit a position-derived tensor for the positions of the whole cache."""
        if isinstance(v, relax.Tuple):
            return relax.Tuple([self._regen(bb, f) for f in v.fields])
        if not isinstance(v, relax.Var):
            return v
        if v.name == "position_ids" and v in self.g.params:
            return self._positions(bb)
        val = self.g.defs.get(v)
        if v not in self.pos_memo and self._step_positions(v):
            # this step's positions made in-graph from shapes alone (no position_ids input):
            # arange(past, past + T), or arange(0, T) + past (Optimum's Gemma); the cache's
            # positions are arange(0, past + T), from the mask's length
            total = self.params["attention_mask"].ty.shape[-1]
            self.pos_memo[v] = bb.emit(O.arange(0, total, 1, str(v.ty.dtype)))
        if isinstance(val, relax.Call) and getattr(val.op, "name", "") == "relax.arange" and v not in self.pos_memo:
            # positions made in-graph as arange(past, past + T) (no position_ids input): the
            # cache's positions are arange(0, past + T), from the mask's length
            total = self.params["attention_mask"].ty.shape[-1]
            self.pos_memo[v] = bb.emit(O.arange(0, total, 1, str(val.ty.dtype)))
        if v not in self.pos_memo:
            self.pos_memo[v] = self._reemit(bb, self.g.defs[v], lambda a: self._regen(bb, a))
        return self.pos_memo[v]

    def _step_positions(self, v) -> bool:
        """``v`` is a 1-D integer tensor over this step's tokens computed from shapes alone."""
        import networkx as nx
        import tvm_ffi

        ty, ids = v.ty, self.params.get("input_ids")
        if ids is None or not isinstance(ty, relax.TensorType) or ty.shape is None or len(ty.shape) != 1 \
                or not str(ty.dtype).startswith("int") or v not in self.g.g:
            return False
        if not tvm_ffi.structural_equal(ty.shape[0], ids.ty.shape[-1]):
            return False
        return not (nx.ancestors(self.g.g, v) & self.g.params)

    def _rope(self, bb, cache: Cache, full):
        if cache.slots is not None:
            self._concat_positions(bb, cache)
        if cache.pre_perm is not None:  # back to the layout the model's RoPE bindings expect
            full = bb.emit(O.permute_dims(full, [int(i) for i in np.argsort(cache.pre_perm)]))
        memo = {cache.pre_rope: full}

        def arg(a):
            if isinstance(a, relax.Tuple):
                return relax.Tuple([arg(f) for f in a.fields])
            if isinstance(a, relax.Var) and a in memo:
                return memo[a]
            return self._regen(bb, a)

        for v in cache.rope_chain:
            memo[v] = self._reemit(bb, self.g.defs[v], arg)
        return memo[cache.new]

    def _reemit(self, bb, val, arg, defs=None):
        """Emit ``val`` with its arguments mapped by ``arg``; composite calls are inlined
        (their parameter shapes are fixed to the step's token count). ``defs`` maps the
        original vars in scope to their values (main's, or the inlined composite's)."""
        defs = self.g.defs if defs is None else defs
        if isinstance(val, relax.Call) and isinstance(val.op, relax.GlobalVar):
            f = self.g.funcs[val.op.name_hint]
            local = dict(zip(f.params, [arg(a) for a in val.args]))
            inner = {b.var: b.value for blk in f.body.blocks for b in blk.bindings}

            def local_arg(a):
                if isinstance(a, relax.Tuple):
                    return relax.Tuple([local.get(x, x) for x in a.fields])
                return local.get(a, a) if isinstance(a, relax.Var) else a

            for blk in f.body.blocks:
                for b in blk.bindings:
                    local[b.var] = self._reemit(bb, b.value, local_arg, inner)
            return local[f.body.body]
        op = getattr(val.op, "name", "") if isinstance(val, relax.Call) else ""
        if op == "relax.reshape":
            parts = _stacked_last(val, defs)
            if parts is not None:  # [.., n, r] -> [.., n*r] of r stacked tensors: interleave them
                return bb.emit_te(_interleave_te(len(parts)), *[arg(x) for x in parts],
                                  primfunc_name_hint="interleave_last")
            return bb.emit(O.reshape(arg(val.args[0]), _reshape_target(val, arg(val.args[0]))))
        if op == "relax.broadcast_to":
            return bb.emit(O.broadcast_to(arg(val.args[0]), _broadcast_target(val, arg(val.args[0]))))
        if isinstance(val, relax.Call):
            return bb.emit(relax.Call(val.op, [arg(a) for a in val.args], val.attrs, val.ty_args))
        if isinstance(val, relax.TupleGetItem):
            return bb.emit(relax.TupleGetItem(arg(val.tuple_value), val.index))
        return bb.emit(arg(val))
