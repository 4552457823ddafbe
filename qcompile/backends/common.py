"""What every backend shares: the Artifact and the stage split used by the verifier."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import tvm
from tvm import relax

from qcompile.passmanager import Pass


@dataclasses.dataclass
class Artifact:
    """A compiled model. ``sources`` are extra files written next to ``model.so``
    (CUDA or C source); ``runnable`` says whether this machine can execute it."""

    target: str
    tvm_target: object
    executable: object  # relax.VMExecutable
    sources: dict = dataclasses.field(default_factory=dict)
    info: dict = dataclasses.field(default_factory=dict)
    runnable: bool = True
    device: str = "cpu"
    io: dict | None = None  # integer I/O: the host quantizes inputs and dequantizes outputs
    _vm: object = None

    def export(self, out_dir: str | Path) -> list[str]:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        self.executable.export_library(str(out_dir / "model.so"))
        files = ["model.so"]
        for name, text in sorted(self.sources.items()):
            (out_dir / name).write_text(text)
            files.append(name)
        return files

    def vm(self):
        if not self.runnable:
            raise RuntimeError(f"a {self.target} artifact cannot run on this machine")
        if self._vm is None:
            self._vm = relax.VirtualMachine(self.executable, tvm.device(self.device, 0))
        return self._vm

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        """Float in, float out; an integer-I/O artifact is quantized and dequantized here."""
        if self.io is None:
            return self.run_raw(*inputs)
        return host_dequantize(self.io, self.run_raw(*host_quantize(self.io, inputs)))

    def run_raw(self, *inputs: np.ndarray) -> list[np.ndarray]:
        dev = tvm.device(self.device, 0)
        out = self.vm()["main"](*[tvm.runtime.tensor(np.asarray(x, order="C"), device=dev) for x in inputs])
        return flatten_outputs(out)


def host_quantize(io: dict, inputs) -> list[np.ndarray]:
    from qcompile.passes.int_only.intops import quantize_ref

    specs = list(io["inputs"].values())
    out, k = [], 0
    for x in inputs:
        if np.issubdtype(np.asarray(x).dtype, np.floating) and k < len(specs):
            out.append(quantize_ref(np.asarray(x), specs[k]["scale"], specs[k]["dtype"]))
            k += 1
        else:
            out.append(x)
    return out


def host_dequantize(io: dict, outputs) -> list[np.ndarray]:
    return [o.astype(np.float32) * np.float32(spec["scale"]) for o, spec in zip(outputs, io["outputs"])]


def flatten_outputs(out) -> list[np.ndarray]:
    if isinstance(out, tvm.runtime.Tensor):
        return [out.numpy()]
    res = []
    for o in out:
        res.extend(flatten_outputs(o))
    return res


def legalize_stage(mod, target, extra_tir_passes=()):
    """Relax with fused PrimFuncs (``call_tir`` still visible, before VM lowering):
    the level at which the verifier maps kernels back to bindings."""
    T = relax.transform
    passes = [T.LegalizeOps(), T.AnnotateTIROpPattern(), T.FoldConstant(), T.FuseOps(),
              scalar_params_to_shape, T.FuseTIR(), *extra_tir_passes]
    with target:
        return tvm.transform.Sequential(passes)(mod)


def after_fuse_ops(passes) -> list:
    """``passes`` with :func:`scalar_params_to_shape` after ``FuseOps``."""
    out = []
    for p in passes:
        out.append(p)
        if str(p.info.name) == "FuseOps":
            out.append(scalar_params_to_shape)
    return out


@tvm.transform.module_pass(opt_level=0, name="qcompile.ScalarParamsToShape")
def scalar_params_to_shape(mod, _ctx):
    """Run between ``FuseOps`` and ``FuseTIR``: a fused function's scalar symbolic-variable
    parameters (``n: T.int64``) become one ``R.Shape([n, ...])`` parameter, as ``FuseOps``
    passes symbolic variables when a tensor parameter's shape defines them.

    ``FuseOps`` makes such a parameter when a kernel takes a symbolic variable as a scalar
    argument (``shape_to_tensor`` of a past length) and no tensor parameter of the group has
    it in its shape. TVM 0.27's ``RemoveUnusedParameters`` (the start of ``FuseTIR``) does not
    count the scalar parameter as defining ``n`` and adds ``R.Shape([n])`` as well, so
    ``FuseTIR`` gives the fused PrimFunc the parameter ``n`` twice and ``RenewDefs`` fails
    (``VarRemapGet(source) == nullptr``). A parameter is moved only where every call passes
    a symbolic variable of the caller (``FuseTIR`` takes nothing else in a shape)."""
    prim = {gv: f for gv, f in mod.functions.items()
            if isinstance(f, relax.Function) and (f.attrs or {}).get("Primitive")
            and any(isinstance(p.ty, tvm.ir.PrimType) for p in f.params)}
    if not prim:
        return mod
    import tvm_ffi

    callers = [f for gv, f in mod.functions.items() if isinstance(f, relax.Function) and gv not in prim]
    movable = {gv: [i for i, p in enumerate(f.params) if isinstance(p.ty, tvm.ir.PrimType)] for gv, f in prim.items()}
    for caller in callers:
        defined = set(relax.analysis.defined_symbolic_vars(caller))

        def check(node, defined=defined):
            if isinstance(node, relax.Call) and node.op in movable:
                movable[node.op] = [i for i in movable[node.op] if node.args[i] in defined]

        tvm_ffi.structural_walk(caller, check)
    movable = {gv: idx for gv, idx in movable.items() if idx}
    if not movable:
        return mod

    def split(items, idx):
        return [x for i, x in enumerate(items) if i not in idx], [items[i] for i in idx]

    out = mod.clone() if hasattr(mod, "clone") else tvm.IRModule(dict(mod.functions), attrs=mod.attrs)
    for gv in movable:
        del out[gv]
    bb = relax.BlockBuilder(out)
    renamed = {}  # a new GlobalVar: the old one's type is the old signature
    for gv, idx in movable.items():
        f = prim[gv]
        kept, scalars = split(list(f.params), idx)
        g = relax.Function(kept + [relax.Var("scalar_vars", relax.ShapeType(scalars))], f.body,
                           f.ret_ty, f.is_pure, f.attrs)
        renamed[gv] = bb.add_func(g, gv.name_hint)
    out = bb.get()

    @relax.expr_functor.mutator
    class Calls(relax.PyExprMutator):
        def visit_call_(self, call):
            call = super().visit_call_(call)
            if call.op in movable:
                kept, scalars = split(list(call.args), movable[call.op])
                call = relax.Call(renamed[call.op], kept + [relax.ShapeExpr(scalars)], call.attrs, call.ty_args)
            return call

    rewriter = Calls(out)
    for gv, f in list(out.functions.items()):
        if isinstance(f, relax.Function) and not (f.attrs or {}).get("Primitive"):
            rewriter.builder_.update_func(gv, rewriter.visit_expr(f))
    return rewriter.builder_.get()


def guard_plan(passes) -> list:
    """Relax's finalize passes (``passes``) with ``StaticPlanBlockMemory`` guarded: over symbolic dims
    whose tensors grow as a high power of them (BEiT's relative position bias over a
    symbolic image size, ``(h/8 * w/8 + 1)^2`` entries per head) its upper-bound arithmetic
    overflows int64 in TVM 0.27 (``Literal value ... exceeds range of int64``). Then the
    module keeps its per-tensor allocations (no storage reuse planned, same results)."""
    out = []
    for p in passes:
        out.append(_guarded_plan if str(p.info.name) == "StaticPlanBlockMemory" else p)
    return out


def _is_reshape_copy(func) -> bool:
    """``func`` is TVM's legalized ``reshape`` on its own: one input, one output, and one
    block, ``T_reshape`` (the name ``topi.reshape`` gives it), a row-major copy."""
    if not isinstance(func, tvm.tirx.PrimFunc) or sum(not isinstance(p.ty, tvm.ir.PrimType) for p in func.params) != 2:
        return False  # (the dims it reads are scalar parameters besides)
    base = func.with_attr("global_symbol", "f") if "global_symbol" not in (func.attrs or {}) else func
    try:
        sch = tvm.s_tir.Schedule(tvm.IRModule({"main": base}))
        names = [sch.get(b).name_hint for b in sch.get_child_blocks(sch.get_sblock("root"))]
    except Exception:  # noqa: BLE001 - no root block: not a legalized kernel
        return False
    return names == ["T_reshape"]


@tvm.transform.module_pass(opt_level=0, name="qcompile.ReshapeViews")
def reshape_views(mod, _ctx):
    """Each ``call_tir`` of a lone legalized reshape (:func:`_is_reshape_copy`) becomes
    ``R.reshape`` again, which the VM runs as a view of the same memory: what Relax's
    ``RewriteDataflowReshape`` does, for the modules with symbolic shapes that it cannot
    take (its iterator analysis fails on them in TVM 0.27, see :mod:`~qcompile.backends.llvm`).
    Over symbolic dims the copy kernel's index arithmetic (floor division and modulo by
    dims it cannot prove positive, nested per axis) can take LLVM minutes to compile:
    WavLM's ``(4b, L, L) -> (b, 4, L, L)`` took 74 s; a view takes none, and no copy."""
    reshapes = {gv for gv, f in mod.functions.items() if gv.name_hint.startswith("reshape") and _is_reshape_copy(f)}
    if not reshapes:
        return mod
    call_tir = tvm.ir.Op.get("relax.call_tir")

    @relax.expr_functor.mutator
    class Views(relax.PyExprMutator):
        def visit_call_(self, call):
            call = super().visit_call_(call)
            if not (call.op.same_as(call_tir) and call.args[0] in reshapes and isinstance(call.args[1], relax.Tuple)
                    and isinstance(call.ty, relax.TensorType) and isinstance(call.ty.shape, relax.ShapeExpr)):
                return call
            # the data, and the dims the kernel reads as scalar arguments
            data = [a for a in call.args[1].fields if isinstance(a.ty, relax.TensorType)]
            return relax.op.reshape(data[0], call.ty.shape) if len(data) == 1 else call

    out = mod.clone() if hasattr(mod, "clone") else tvm.IRModule(dict(mod.functions), attrs=mod.attrs)
    for gv, f in mod.functions.items():
        if isinstance(f, relax.Function):
            out[gv] = Views(mod).visit_expr(f)
    used = set()
    for f in out.functions.values():
        if isinstance(f, relax.Function):
            relax.analysis.post_order_visit(f.body, lambda e: used.add(e) if isinstance(e, tvm.ir.GlobalVar) else None)
    for gv in reshapes - used:  # the kernels no call reads any more
        del out[gv]
    return out


@tvm.transform.module_pass(opt_level=0, name="qcompile.StaticPlanBlockMemory")
def _guarded_plan(mod, _ctx):
    try:
        return relax.transform.StaticPlanBlockMemory()(mod)
    except ValueError as e:
        if "exceeds range of int64" not in str(e):
            raise
        return mod


class TargetRewrite(Pass):
    """A backend's graph rewrite run by the pass manager like any pass (timed, its IR
    dumped to ``OUT/ir/``, its counts in the notes); ``mark`` = ``(attr, value)`` is set on
    the result so the build does not run the rewrites again."""

    def __init__(self, name: str, fn, mark: tuple | None = None):
        super().__init__()
        self.name, self.fn, self.mark = name, fn, mark

    def transform(self, mod, ctx):
        mod, info = self.fn(mod)
        ctx.notes.update(info)
        return mod.with_attr(*self.mark) if self.mark else mod
