"""The default CPU schedule: applied to matmuls and elementwise kernels (parallel and
vector loops in the lowered code), results unchanged (bit-exact for integers)."""
import numpy as np
import tvm
from tvm import relax, tirx

from qcompile.backends import cpu_schedule
from qcompile.backends.common import legalize_stage
from qcompile.backends.llvm import make_target

import qcompile as qc
from test_backends import IntModule, numpy_reference


PARALLEL, VECTORIZED = int(tirx.ForKind.PARALLEL), int(tirx.ForKind.VECTORIZED)


def _loop_kinds(func) -> set[int]:
    kinds = set()

    def cb(obj):
        if isinstance(obj, tirx.For):
            kinds.add(int(obj.kind))

    import tvm_ffi

    tvm_ffi.structural_walk(func, cb)
    return kinds


def test_matmul_gets_parallel_and_vector_loops():
    leg = legalize_stage(IntModule, make_target())
    funcs = {gv.name_hint: f for gv, f in leg.functions.items() if isinstance(f, tirx.PrimFunc)}
    name = next(n for n in funcs if "matmul" in n)
    before, after = funcs[name], cpu_schedule.schedule_func(funcs[name])
    assert not _loop_kinds(before) & {PARALLEL, VECTORIZED}
    assert {PARALLEL, VECTORIZED} <= _loop_kinds(after)


def test_scheduled_build_is_exact(tiny_encoder):
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, (13, 32), dtype=np.int8)
    w = rng.integers(-128, 128, (32, 16), dtype=np.int8)
    b = rng.integers(-2**20, 2**20, 16, dtype=np.int32)
    for g, r in zip(qc.build(IntModule, "llvm").run(x, w, b), numpy_reference(x, w, b)):
        np.testing.assert_array_equal(g, r)
    # float: the scheduled build keeps the reduction order, so it matches the unscheduled one closely
    m, inp = tiny_encoder
    mod = qc.canonicalize(qc.load(m, example_inputs=inp).mod)
    sched = qc.build(mod, "llvm").run(*[t.numpy() for t in inp])[0]
    plain = tvm.compile(mod, target=make_target(), relax_pipeline=relax.get_default_pipeline(make_target()))
    vm = relax.VirtualMachine(plain, tvm.cpu())
    ref = vm["main"](*[tvm.runtime.tensor(t.numpy()) for t in inp]).numpy()
    np.testing.assert_allclose(sched, ref, rtol=1e-5, atol=1e-6)
