"""One kernel for a float attention over a cache of symbolic length (a decoder step).

A decoder step's attention reads a key cache of ``past + new`` positions, written by the
exporter as ``softmax(q @ k^T * scale + mask) @ v`` with ``k^T = permute_dims(k)``. Lowered
as it stands on llvm, with the length symbolic, three things cost more than the weights'
matmuls together (SmolLM2-135M, one token after 4096, two threads): the transpose copies
the whole key cache every step (one strided pass per layer), and the default schedule
leaves the attention's matmuls over a symbolic length unscheduled (one thread, scalar).

This rewrite (llvm only) replaces each such ``qcompile.attention`` call, where ``k^T`` is a
``permute_dims`` of the last two axes, by a call of :func:`attention_te` on the
untransposed ``k``, scheduled by :func:`schedule`: the (batch, head, query) rows run in
parallel; each row's scores are dot products along the contiguous head dimension, sixteen
lanes at a time (partial sums over the lanes, then summed), then the softmax and the
``P @ V`` sum over positions with the head dimension vectorized. Every value is read
once, in the cache's own layout. Float results match the composite's up to summation order
(tests compare with NumPy and with onnxruntime on the zoo's decoders).
"""
from __future__ import annotations

import json

import tvm
import tvm_ffi
from tvm import relax, s_tir, te, tirx

from qcompile.ir import attention_roles, const_value, shape_of
from qcompile.passes.kvcache import kvquant
from qcompile.rewrite import rebuild_main

LANES = 16
NAME = "decode_attention"
#: read a kv-prerope value cache's packed codes inside the kernel instead of the float values
#: its kv_dequant kernel wrote. Off: measured slower (benchmarks/results/decode_fused_values.json,
#: SmolLM2 at 4096 cached, side by side, with the planar code layout: 41.8 ms against 33.1 ms
#: unfused, the float step 34.2 ms). Inlined into P @ V, each value is decoded once per query head
#: of its group (3x for SmolLM2's GQA); what is missing is a schedule that decodes a row once per
#: KV head for the whole group. Tests check the two paths give the same numbers.
FUSE_DEQUANT = False


def _at(t, idx):
    """``t`` read at the output index ``idx`` with numpy broadcasting (a size-1 axis reads 0)."""
    lead = len(idx) - len(t.shape)
    return t[tuple(0 if isinstance(d, tirx.IntImm) and int(d) == 1 else idx[lead + a]
                   for a, d in enumerate(t.shape))]


def attention_te(q, k, v, scale, mask=None, inverse: bool = False, nan_guard: bool = False):
    """``softmax(q k^T * scale + mask) v`` over the last axis, ``k`` untransposed: ``q``
    ``[.., M, D]``, ``k`` ``[.., L, D]`` and ``v`` ``[.., L, Dv]`` (multi-head latent
    attention's value head is narrower than its query/key head), ``scale`` a 0-d tensor (divided by where
    ``inverse``), ``mask`` broadcast to ``[.., M, L]``. ``nan_guard``: a row masked
    everywhere with ``-inf`` gives 0 (SDPA's ``where(isnan(p), 0, p)``), not NaN."""
    *lead, M, D = q.shape
    L, Dv = k.shape[-2], v.shape[-1]

    def kv(t, lead_idx, pos, d):
        """k or v at q's leading index: an axis of length 1 is broadcast (multi-query: one
        head); a static axis shorter than q's serves ``q_len / len`` consecutive query heads
        (grouped-query attention as ``repeat_kv`` spells it: head ``h`` reads KV head
        ``h // group``)."""
        ld = t.shape[:-2]
        off = len(lead_idx) - len(ld)

        def at(a, n):
            qn = lead[off + a]
            if isinstance(n, tirx.IntImm) and int(n) == 1:
                return 0
            if isinstance(n, tirx.IntImm) and isinstance(qn, tirx.IntImm) and int(qn) != int(n):
                return lead_idx[off + a] // (int(qn) // int(n))
            return lead_idx[off + a]

        return t[(*(at(a, n) for a, n in enumerate(ld)), pos, d)]

    lanes = LANES if isinstance(D, tirx.IntImm) and int(D) % LANES == 0 else 1
    dc = te.reduce_axis((0, D // lanes), name="dc")
    part = te.compute((*lead, M, L, lanes), lambda *i: te.sum(
        q[(*i[:-3], i[-3], dc * lanes + i[-1])] * kv(k, i[:-3], i[-2], dc * lanes + i[-1]), axis=dc),
        name=NAME + "_qk_lanes")
    j = te.reduce_axis((0, lanes), name="j")
    qk = te.compute((*lead, M, L), lambda *i: te.sum(part[(*i, j)], axis=j), name=NAME + "_qk")

    def logit(*i):
        s = qk[i] / scale[()] if inverse else qk[i] * scale[()]
        return s + _at(mask, i) if mask is not None else s

    logits = te.compute((*lead, M, L), logit, name=NAME + "_logits")
    lm = te.reduce_axis((0, L), name="lm")
    mx = te.compute((*lead, M), lambda *i: te.max(logits[(*i, lm)], axis=lm), name=NAME + "_max")
    ex = te.compute((*lead, M, L), lambda *i: te.exp(logits[i] - mx[i[:-1]]), name=NAME + "_exp")
    ls = te.reduce_axis((0, L), name="ls")
    den = te.compute((*lead, M), lambda *i: te.sum(ex[(*i, ls)], axis=ls), name=NAME + "_sum")
    lv = te.reduce_axis((0, L), name="lv")
    pv = te.compute((*lead, M, Dv), lambda *i: te.sum(ex[(*i[:-1], lv)] * kv(v, i[:-2], lv, i[-1]), axis=lv),
                    name=NAME + "_pv")
    if nan_guard:
        return te.compute((*lead, M, Dv), lambda *i: tirx.Select(den[i[:-1]] > 0, pv[i] / den[i[:-1]],
                                                                 tirx.const(0.0, "float32")), name=NAME)
    return te.compute((*lead, M, Dv), lambda *i: pv[i] / den[i[:-1]], name=NAME)


def _has_block(sch, name: str) -> bool:
    try:
        sch.get_sblock(name)
    except Exception:  # noqa: BLE001 - TVM raises its own error for a missing block
        return False
    return True


def schedule(func: tirx.PrimFunc) -> tirx.PrimFunc:
    """Rows (all axes but the head dimension) in parallel, every block computed per row.

    Where the query length is a compound expression (``seq // 10 - 1`` after a strided
    conv: WavLM), the fused row index is not an affine binding TVM can vectorize under; the
    rows are then the (batch, head) pairs in parallel with the queries a serial loop inside."""
    fresh = tvm.ir.save_json(func)  # each try schedules a copy: TVM's schedule may change its input in place
    try:
        return _schedule(tvm.ir.load_json(fresh), fuse_queries=True)
    except s_tir.schedule.ScheduleError as first:  # vectorize under a non-affine fused binding
        try:
            return _schedule(tvm.ir.load_json(fresh), fuse_queries=False)
        except Exception:  # noqa: BLE001 - no (lead, query) split to fall back to: the first error stands
            raise first from None


def _schedule(func: tirx.PrimFunc, fuse_queries: bool) -> tirx.PrimFunc:
    sch = s_tir.Schedule(tvm.IRModule({"main": func.with_attr("global_symbol", "main")}))
    if _has_block(sch, "kv_dequant"):  # each value dequantized where P @ V reads it
        sch.compute_inline(sch.get_sblock("kv_dequant"))
    out = sch.get_sblock(NAME)
    loops = list(sch.get_loops(out))
    lead = loops[:-1] if fuse_queries else loops[:-2]
    if not lead:
        raise ValueError("no leading loops to run in parallel")
    rows = sch.fuse(*lead) if len(lead) > 1 else lead[0]
    sch.parallel(rows)
    if not fuse_queries and len(loops) > 2:
        rows = loops[-2]  # the queries of one (batch, head), serial
    for name in ("_pv", "_sum", "_exp", "_max", "_logits", "_qk"):
        sch.compute_at(sch.get_sblock(NAME + name), rows, preserve_unit_loops=True)
    qk, lanes = sch.get_sblock(NAME + "_qk"), sch.get_sblock(NAME + "_qk_lanes")
    sch.compute_at(lanes, sch.get_loops(qk)[-2], preserve_unit_loops=True)  # per key position
    lane, dc = sch.get_loops(lanes)[-2:]
    sch.reorder(dc, lane)  # sixteen lanes of one key row at a time
    sch.vectorize(lane)
    sch.decompose_reduction(lanes, dc)
    pv = sch.get_sblock(NAME + "_pv")
    d, p = sch.get_loops(pv)[-2:]
    sch.reorder(p, d)  # positions outside, the head dimension inside (contiguous in v)
    sch.vectorize(d)
    sch.decompose_reduction(pv, p)
    return sch.mod["main"].without_attr("global_symbol").with_attr("tirx.is_scheduled", True)


def _transposed_last(value):
    """The operand of ``permute_dims(x, [.., -1, -2])``, else ``None``."""
    if not (isinstance(value, relax.Call) and getattr(value.op, "name", "") == "relax.permute_dims"):
        return None
    x = value.args[0]
    n = len(shape_of(x) or [])
    axes = [int(a) for a in value.attrs.axes] if value.attrs.axes is not None else list(range(n))[::-1]
    return x if n >= 2 and axes == [*range(n - 2), n - 1, n - 2] else None


def _unrepeated(defs, x):
    """``(w, group)`` where ``x`` is ``repeat_kv(w, group)`` spelled as HF's models and their
    exports write it, ``reshape(broadcast_to(expand_dims(w, h + 1), [.., KV, G, L, D]),
    [.., KV * G, L, D])`` with ``h`` the head axis; else ``(x, 1)``. The kernel then reads
    the KV head of each query head directly instead of a materialized repeated copy."""
    r = defs.get(x) if isinstance(x, relax.Var) else None
    if not (isinstance(r, relax.Call) and getattr(r.op, "name", "") == "relax.reshape"):
        return x, 1
    y = r.args[0]
    b = defs.get(y) if isinstance(y, relax.Var) else None
    if not (isinstance(b, relax.Call) and getattr(b.op, "name", "") == "relax.broadcast_to"):
        return x, 1
    z = b.args[0]
    e = defs.get(z) if isinstance(z, relax.Var) else None
    if not (isinstance(e, relax.Call) and getattr(e.op, "name", "") == "relax.expand_dims"):
        return x, 1
    w = e.args[0]
    ws, ys, xs = shape_of(w), shape_of(y), shape_of(x)
    if ws is None or ys is None or xs is None or len(ws) < 3 or len(ys) != len(ws) + 1 or len(xs) != len(ws):
        return x, 1
    h = len(ws) - 3
    axes = [int(a) % len(ys) for a in e.attrs.axis]
    g = ys[h + 1]
    if axes != [h + 1] or not isinstance(g, int) or not isinstance(ws[h], int) or xs[h] != ws[h] * g:
        return x, 1
    same = lambda a, c: a == c if isinstance(a, int) or isinstance(c, int) else tvm_ffi.structural_equal(a, c)  # noqa: E731
    if not all(same(a, c) for a, c in zip(ws[:h] + ws[h + 1:], ys[:h] + ys[h + 2:])):
        return x, 1
    return w, g


def _dequant(mod, defs, x):
    """``(args, spec)`` where ``x`` is a packed cache dequantized by the kv-prerope pass's
    ``kv_dequant`` kernel (``spec``: its :func:`~qcompile.passes.kvcache.kvquant.dequant_te`
    parameters), else ``None``: the attention then reads the codes themselves."""
    call = defs.get(x) if isinstance(x, relax.Var) else None
    while isinstance(call, relax.Var):  # through plain aliases (x = y)
        call = defs.get(call)
    if not (isinstance(call, relax.Call) and getattr(call.op, "name", "") == "relax.call_tir"):
        return None
    f = mod[call.args[0]]
    spec = (f.attrs or {}).get(kvquant.DEQUANT_ATTR) if isinstance(f, tirx.PrimFunc) else None
    return None if spec is None else (list(call.args[1].fields), json.loads(str(spec)))


def _guard_fill(f):
    """The constant a NaN guard ``where(isnan(p), fill, p)`` writes, when it is in ``f``."""
    binds = [b for blk in f.body.blocks for b in blk.bindings]
    where = [b.value for b in binds if getattr(getattr(b.value, "op", None), "name", "") == "relax.where"]
    return const_value(where[-1].args[1]) if where else None


def find(mod) -> dict:
    """``{binding var: (roles, untransposed k, v)}`` for the float32 attention calls of
    ``main`` whose key length is symbolic and whose ``k^T`` is a transpose of the last two
    axes; k and v un-repeated where they are a grouped-query repetition (:func:`_unrepeated`)."""
    main = mod["main"]
    defs = {b.var: b.value for blk in main.body.blocks for b in blk.bindings}
    out = {}
    for var, value in defs.items():
        if not (isinstance(value, relax.Call) and isinstance(value.op, relax.GlobalVar)):
            continue
        f = mod[value.op]
        if not isinstance(f, relax.Function) or str((f.attrs or {}).get("Composite", "")) != "qcompile.attention":
            continue
        if not isinstance(var.ty, relax.TensorType):
            continue  # the probabilities are read elsewhere too (DiffLlama: P @ V1 and P @ V2): a tuple
        roles = attention_roles(f)
        if roles is None or roles["sinks"]:  # the kernel's softmax has no sink logits
            continue
        a = dict(zip(roles["params"], value.args))
        fill = const_value(a["nan_fill"]) if "nan_fill" in a else _guard_fill(f)
        if roles["nan_guard"] and (fill is None or fill.size != 1 or float(fill.reshape(())) != 0.0):
            continue  # a guard filling with anything but 0
        kt = a["k"]
        k = _transposed_last(defs.get(kt)) if isinstance(kt, relax.Var) else None
        if k is None or any(str(getattr(getattr(x, "ty", None), "dtype", "")) != "float32"
                            for x in (a["q"], k, a["v"])):
            continue
        L = (shape_of(k) or [None, None])[-2]
        if isinstance(L, int):
            continue  # static lengths: the default matmul schedule handles them
        (k, gk), (v, gv) = _unrepeated(defs, k), _unrepeated(defs, a["v"])
        if gk != gv:  # read both repeated copies rather than mix the two forms
            (k, v) = (_transposed_last(defs.get(kt)), a["v"])
        out[var] = (roles, k, v, _dequant(mod, defs, v) if FUSE_DEQUANT else None)
    return out


def rewrite(mod) -> tuple[tvm.IRModule, int]:
    """``mod`` with every attention found by :func:`find` computed by one scheduled kernel."""
    if not any(gv.name_hint == "main" for gv in mod.get_global_vars()):
        return mod, 0
    found = find(mod)
    if not found:
        return mod, 0
    env: dict = {}
    kernels: set = set()

    def on_binding(bb, var, value):
        if var not in found:
            return None
        roles, k, v, deq = found[var]
        a = dict(zip(roles["params"], value.args))
        scale = a.get("scale", a.get("inv_scale"))
        if scale is None:
            scale = relax.const(roles["scale"], "float32")
        # v: the float cache, or the packed codes and constants its kv_dequant read (the
        # dequantization is then computed where P @ V reads each value)
        vs = [env.get(x, x) for x in deq[0]] if deq else [env.get(v, v)]
        n = len(vs)
        args = [a["q"], env.get(k, k), *vs, scale] + ([a["mask"]] if "mask" in a else [])

        def fte(q, kk, *rest):
            vt = kvquant.dequant_te(**deq[1])(*rest[:n]) if deq else rest[0]
            s, m = rest[n], rest[n + 1:]
            return attention_te(q, kk, vt, s, m[0] if m else None, inverse="inv_scale" in a,
                                nan_guard=roles["nan_guard"])

        call = bb.call_te(fte, *args, primfunc_name_hint=NAME, primfunc_attrs={"op_pattern": 8})
        kernels.add(call.args[0])  # call_te shares one PrimFunc between layers of the same shapes
        return call

    out = rebuild_main(mod, on_binding, env=env)
    for gv in kernels:
        out[gv] = schedule(out[gv])
    return relax.transform.DeadCodeElimination(["main"])(out), len(found)  # the transposes are dead
