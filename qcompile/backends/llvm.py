"""CPU target through LLVM. Default: this machine's CPU (``llvm_get_system_cpu``), all cores;
Relax's CPU pipeline (legalize, fuse) plus qcompile's default schedules
(:mod:`qcompile.backends.cpu_schedule`; TVM itself leaves CPU kernels unscheduled).
On AVX2, int8 matmuls with constant weights are first packed for ``vpmaddwd``
(:mod:`qcompile.backends.x86_packed`), requantization products are stated as 32 x 32-bit
multiplies (:mod:`qcompile.backends.mul32`), and a fused QKV projection split by ``take``
becomes one kernel per operand (:mod:`qcompile.backends.split_heads`).

One change to TVM's pipeline: for modules with symbolic shapes (a decoder's past length)
``RewriteDataflowReshape`` is left out, because its iterator analysis fails in 0.27 on
kernels over extents like ``(past + 64) * 64 * 3`` ("padding factor ... is not divisible").
:func:`~qcompile.backends.common.reshape_views` takes its place: a lone reshape
kernel becomes a view again, recognized by what it is (TVM's legalized ``T_reshape``)
rather than by analysing its index arithmetic."""
from __future__ import annotations

import os

import tvm
from tvm import relax

from qcompile.backends.common import Artifact, TargetRewrite, guard_plan, reshape_views, scalar_params_to_shape
from qcompile.backends import decode_attention, fast_math, lut, mul32, shift32, split_heads, x86_packed
from qcompile.backends.cpu_schedule import default_cpu_schedule, validated_cpu_schedule


def make_target(mcpu: str | None = None):
    cpu = mcpu or tvm.target.codegen.llvm_get_system_cpu()
    return tvm.target.Target({"kind": "llvm", "mcpu": cpu, "num-cores": os.cpu_count() or 1})


def has_symbolic_shapes(mod) -> bool:
    return any(len(relax.analysis.defined_symbolic_vars(f)) for f in mod.functions.values()
               if isinstance(f, relax.Function))


def patch_convs_as_matmuls(mod):
    """Patch-embedding convolutions (stride = kernel, no padding) become a reshape and a
    matmul: the default schedules tile matmuls, not convolutions (an unscheduled DeiT-S
    patch embedding took a quarter of the model's time). Exact up to float summation order."""
    from qcompile.ir import op_histogram
    from qcompile.passes.int_only import patchify

    if "nn.conv2d" not in op_histogram(mod):
        return mod
    mod = mod.clone() if hasattr(mod, "clone") else tvm.IRModule(dict(mod.functions), attrs=mod.attrs)
    for gv, f in list(mod.functions.items()):
        if isinstance(f, relax.Function) and not (f.attrs or {}).get("Composite"):
            mod[gv] = patchify(f)  # unchanged where no convolution matches
    return relax.transform.Normalize()(mod)


def fusion_passes(target) -> list:
    """Relax's CPU passes through ``FuseTIR`` (library dispatch, legalization, fusion), with
    :func:`lut.mark_elementwise` after ``AnnotateTIROpPattern`` so that table lookups fuse
    into the epilogue of the matmul before them."""
    from tvm.relax.backend.cpu_generic import pipeline as P

    out = []
    for p in P.library_dispatch_passes(target) + P.legalize_passes(target):
        out.append(p)
        if str(p.info.name) == "AnnotateTIROpPattern":
            out.append(lut.mark_elementwise)
        if str(p.info.name) == "FuseOps":
            out.append(scalar_params_to_shape)
    return out


def pipeline(target, symbolic: bool, db=None, validate: bool = False):
    """``db``: a MetaSchedule database (:mod:`qcompile.backends.tune`); kernels it has a
    record for take the tuned schedule, the others the default one."""
    from tvm.relax.backend.cpu_generic import pipeline as P

    lower = [reshape_views if symbolic and "RewriteDataflowReshape" in str(p.info.name) else p
             for p in P.dataflow_lower_passes(target)]
    before = fusion_passes(target)
    schedule = validated_cpu_schedule if validate else default_cpu_schedule
    after = [schedule] + lower + guard_plan(P.finalize_passes(target))

    @tvm.transform.module_pass(opt_level=0, name="qcompile.llvm_pipeline")
    def run(mod, _ctx):
        with target:
            if db is None:
                return tvm.transform.Sequential(before + after)(mod)
            with db:  # the pass reads the database in scope, and needs the target to build its own
                return tvm.transform.Sequential(before + [relax.transform.MetaScheduleApplyDatabase()] + after)(mod)

    return run


def graph_rewrites(mcpu: str | None = None) -> list[tuple[str, object]]:
    """The llvm build's graph rewrites, in order, as ``(name, mod -> (mod, info))``: the
    driver runs them as passes (``OUT/ir/NN_llvm_<name>.py``), :func:`build` runs them
    itself on a module that has not been through them."""
    tgt = make_target(mcpu)

    def count(key, fn):  # a rewrite returning (mod, n) -> (mod, {key: n})
        def step(m):
            m, n = fn(m)
            return m, {key: n}
        return step

    def x86(m):
        if not x86_packed.supported(tgt):
            return m, {}
        m, packed = x86_packed.pack_int8_matmuls(m)
        info = {"int8_matmuls_pmaddwd": packed["pmaddwd"], "int8_matmuls_pmaddubsw": packed["pmaddubsw"]}
        m, info["int8_runtime_matmuls_pmaddwd"] = x86_packed.pack_runtime_int8_matmuls(m)
        m, info["f32_matmuls_packed"] = x86_packed.pack_f32_matmuls(m)
        return m, info

    return [("patch-convs", lambda m: (patch_convs_as_matmuls(m), {})),
            # (looked up at each call: tests replace these module functions)
            ("lut", count("int8_luts", lambda m: lut.tabulate(m))),
            ("fast-gelu", count("fast_gelu", lambda m: fast_math.fast_gelu(m))),
            ("split-heads", count("split_heads", lambda m: split_heads.split_heads(m))),
            ("decode-attention", count("decode_attentions", lambda m: decode_attention.rewrite(m))),
            ("x86-packed", x86),
            # after packing: mul32 reads the plain requantization ops
            ("mul32", count("requant_mul32", lambda m: mul32.narrow_requant_products(m))),
            ("shift32", count("requant_shift32", lambda m: shift32.narrow_requant_shifts(m)))]


REWRITTEN = "qcompile.llvm_rewrites"  # module attribute: the graph rewrites ran, for this mcpu


def graph_passes(mcpu: str | None = None) -> list:
    """:func:`graph_rewrites` as passes, the last one marking the module as rewritten."""
    steps = graph_rewrites(mcpu)
    cpu = str(make_target(mcpu).attrs["mcpu"])
    return [TargetRewrite(f"llvm.{name}", fn, mark=(REWRITTEN, cpu) if i == len(steps) - 1 else None)
            for i, (name, fn) in enumerate(steps)]


def build(mod, *, mcpu: str | None = None, tune_db=None, tune_trials: int = 0, progress: bool = False) -> Artifact:
    """``tune_trials > 0`` tunes the matmul kernels into ``tune_db`` first; ``tune_db`` alone
    reuses a database (see :mod:`qcompile.backends.tune`)."""
    from qcompile.backends import tune

    tgt = make_target(mcpu)
    symbolic = has_symbolic_shapes(mod)
    info = {"mcpu": str(tgt.attrs["mcpu"]), "symbolic_shapes": symbolic}
    if str((mod.attrs or {}).get(REWRITTEN, "")) != info["mcpu"]:
        for _, step in graph_rewrites(mcpu):
            mod, got = step(mod)
            info.update(got)
    tune.check_options(tune_trials, tune_db)
    if tune_trials:
        info["tuning"] = tune.tune(mod, tgt, tune_db, tune_trials, progress=progress)
    db = tune.database(tune_db) if tune_db is not None else None
    try:
        ex = tvm.compile(mod, target=tgt, relax_pipeline=pipeline(tgt, symbolic, db))
    except tvm.error.InternalError as e:
        if "padding factor" not in str(e):
            raise
        # a default schedule over symbolic extents that TIR's buffer compaction refuses
        # (YOLOS over a symbolic image size): build again keeping TVM's form of such kernels
        ex = tvm.compile(mod, target=tgt, relax_pipeline=pipeline(tgt, symbolic, db, validate=True))
        info["schedules_validated"] = True
    if db is not None:
        info["tune_db"] = str(tune_db)
        info["tuned_kernels"] = tune.applied(mod, tgt, db)
    return Artifact("llvm", tgt, ex, info=info)
