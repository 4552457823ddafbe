"""Small helpers over Relax IR shared by canonicalization, passes, reports and backends."""
from __future__ import annotations

import collections
import hashlib

import numpy as np
import tvm
from tvm import relax


def const_value(expr) -> np.ndarray | None:
    """The numpy value of a Relax constant, else None."""
    if isinstance(expr, tvm.ir.GenericConst):
        return expr.value.numpy()
    return None


def call_tir_inputs(call) -> list:
    """The tensor arguments of a ``relax.call_tir`` (its argument tuple, or the one argument)."""
    args = call.args[1]
    return list(args.fields) if isinstance(args, relax.Tuple) else [args]


def shape_of(expr) -> tuple | None:
    """Static shape of a tensor-typed expression as ints (symbolic dims kept as PrimExpr), or None."""
    ty = getattr(expr, "ty", None)
    shape = getattr(ty, "shape", None)
    if shape is None or not isinstance(ty, relax.TensorType):
        return None
    try:
        return tuple(int(d) if isinstance(d, tvm.tirx.IntImm) else d for d in shape)
    except TypeError:
        return None


def op_histogram(mod) -> dict[str, int]:
    """Count Relax ops (and composite calls, as ``composite:<name>``) in every Relax function
    of the module, composites' bodies excluded. Sorted by name for determinism."""
    counts: collections.Counter = collections.Counter()
    comps = {gv.name_hint: (f.attrs or {}).get("Composite") for gv, f in mod.functions.items()
             if isinstance(f, relax.Function)}

    def visit(e):
        if isinstance(e, relax.Call):
            if isinstance(e.op, tvm.ir.Op):
                counts[e.op.name.removeprefix("relax.")] += 1
            elif isinstance(e.op, relax.GlobalVar):
                c = comps.get(e.op.name_hint)
                counts[f"composite:{c}" if c else f"call:{e.op.name_hint}"] += 1

    for gv, f in mod.functions.items():
        if isinstance(f, relax.Function) and not (f.attrs or {}).get("Composite"):
            relax.analysis.post_order_visit(f.body, visit)
    return dict(sorted(counts.items()))


def composites(mod, name: str | None = None) -> list[tuple[str, relax.Function]]:
    """``(global name, function)`` of every composite function, optionally only ``name``."""
    out = []
    for gv, f in mod.functions.items():
        c = (f.attrs or {}).get("Composite") if isinstance(f, relax.Function) else None
        if c is not None and (name is None or str(c) == name):
            out.append((gv.name_hint, f))
    return sorted(out, key=lambda t: t[0])


def script(mod) -> str:
    """Deterministic TVMScript text of a module (weights as ``metadata[...]`` references),
    followed by :func:`constants_digest`, so that a changed weight or multiplier shows in a
    diff of the text."""
    digest = constants_digest(mod)
    return mod.script(show_meta=False) + ("\n# constants\n" + "\n".join(digest) + "\n" if digest else "")


def constants_digest(mod) -> list[str]:
    """One comment line per constant of each Relax function, in binding order:
    ``# func.binding #i: dtype[shape] summary`` (:func:`_summary`)."""
    lines = []
    for gv in sorted(mod.functions, key=lambda g: g.name_hint):
        f = mod[gv]
        if not isinstance(f, relax.Function) or not isinstance(f.body, relax.SeqExpr):
            continue
        for blk in f.body.blocks:
            for b in blk.bindings:
                found = []
                relax.analysis.post_order_visit(b.value, lambda e: found.append(e) if isinstance(e, tvm.ir.GenericConst) else None)
                for i, c in enumerate(found):
                    a = const_value(c)
                    lines.append(f"# {gv.name_hint}.{b.var.name} #{i}: {a.dtype}{list(a.shape)} {_summary(a)}")
    return lines


def _summary(a: np.ndarray) -> str:
    """Integers (quantized weights, multipliers, shifts) exactly: the value or a hash. Floats
    to a few digits (``max|x|``, mean), so that constant folding that rounds differently
    on another CPU does not change the text while a changed weight does."""
    if a.dtype.kind in "iub":
        return repr(a.reshape(()).item()) if a.size == 1 else "sha256:" + hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:12]
    if a.size == 1:
        return f"{float(a.reshape(())):.6g}"
    if a.size == 0:
        return "empty"
    amax = max(abs(float(a.max())), abs(float(a.min())))  # no temporary the size of a weight
    return f"max|x| {amax:.6g} mean {float(a.mean(dtype=np.float64)):.3g}"


def attention_roles(f):
    """Map the composite's params to roles: q, k (already transposed), scale, mask, v,
    sinks. Form: ``matmul, [multiply | divide by the scale], [add mask], softmax,
    [isnan, where (the NaN guard)], matmul``, or with sinks ``..., [add mask],
    concat (the sink logits), softmax, strided_slice (the key columns), matmul``; ``"sinks"``
    says which."""
    params = list(f.params)
    binds = [b for blk in f.body.blocks for b in blk.bindings]
    if not all(isinstance(b.value, relax.Call) and isinstance(b.value.op, tvm.ir.Op) for b in binds):
        return None
    ops = [b.value.op.name.removeprefix("relax.") for b in binds]
    nan_guard = ops[-3:-1] == ["isnan", "where"]  # where(isnan(p), 0, p): masked rows give 0
    fill = binds[-2].value.args[1] if nan_guard else None
    if nan_guard:
        ops, binds = ops[:-3] + ops[-1:], binds[:-3] + binds[-1:]
    sink = None  # softmax(concat([scores, sinks]))[..., :n]: attention sinks (gpt-oss)
    if ops[-4:-1] == ["concat", "nn.softmax", "strided_slice"]:
        fields = binds[-4].value.args[0].fields
        sink = fields[1] if len(fields) == 2 else None
        ops, binds = ops[:-4] + ops[-3:-2] + ops[-1:], binds[:-4] + binds[-3:-2] + binds[-1:]
    if len(ops) < 3 or ops[0] != "matmul" or ops[-2:] != ["nn.softmax", "matmul"]:
        return None
    middle = ops[1:-2]
    if middle not in ([], ["multiply"], ["divide"], ["add"], ["multiply", "add"], ["divide", "add"]):
        return None
    roles, scale = {}, 1.0
    roles[binds[0].value.args[0]] = "q"
    roles[binds[0].value.args[1]] = "k"
    for b, op in zip(binds[1:-2], middle):
        arg = b.value.args[1]
        if op == "add":
            roles[arg] = "mask"
        elif isinstance(arg, relax.Var):
            roles[arg] = "scale" if op == "multiply" else "inv_scale"
            scale = None
        else:
            c = float(const_value(arg).reshape(()))
            scale = c if op == "multiply" else 1.0 / c
    roles[binds[-1].value.args[1]] = "v"
    if isinstance(fill, relax.Var):
        roles[fill] = "nan_fill"
    if isinstance(sink, relax.Var):
        roles[sink] = "sinks"
    for p in params:  # symbolic-shape carrier of a dynamic-length attention
        if isinstance(p.ty, relax.ShapeType):
            roles[p] = "tir_vars"
    if any(p not in roles for p in params):
        return None
    return {"params": [roles[p] for p in params], "scale": scale, "nan_guard": nan_guard, "sinks": sink is not None}
