"""The default CPU schedule: applied to matmuls and elementwise kernels (parallel and
vector loops in the lowered code), results unchanged (bit-exact for integers)."""
import numpy as np
import pytest
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


@pytest.mark.parametrize("heads,rows,k,cols", [(3, 50, 32, 48), (2, 7, 16, 32), (4, 12, 8, 16), (2, 13, 24, 10)])
def test_batched_int8_matmul_tiles_bit_exact(heads, rows, k, cols):
    """Row tiles must divide the rows of one head (tiles that crossed heads or ran ragged
    were computed wrong by TVM 0.27's write-back sizing); the epilogue is fused into the
    write-back. Checked bit for bit against NumPy."""
    from tvm import te

    A = te.placeholder((heads, rows, k), "int8", name="A")
    B = te.placeholder((heads, k, cols), "int8", name="B")
    bias = te.placeholder((cols,), "int32", name="bias")
    r = te.reduce_axis((0, k), "r")
    C = te.compute((heads, rows, cols), lambda h, i, j: te.sum(A[h, i, r].astype("int32") * B[h, r, j].astype("int32"),
                                                                axis=r), name="matmul")
    D = te.compute((heads, rows, cols), lambda h, i, j: (C[h, i, j] + bias[j]) >> 3, name="epilogue")
    f = cpu_schedule.schedule_func(te.create_prim_func([A, B, bias, D]))
    assert {PARALLEL, VECTORIZED} <= _loop_kinds(f)
    lib = tvm.compile(tvm.IRModule({"main": f}), target=make_target())
    rng = np.random.default_rng(heads * rows)
    a = rng.integers(-128, 128, (heads, rows, k), dtype=np.int8)
    b = rng.integers(-128, 128, (heads, k, cols), dtype=np.int8)
    c = rng.integers(-2 ** 20, 2 ** 20, cols, dtype=np.int32)
    out = tvm.runtime.tensor(np.zeros((heads, rows, cols), np.int32))
    lib["main"](*[tvm.runtime.tensor(x) for x in (a, b, c)], out)
    want = (np.einsum("hik,hkj->hij", a.astype(np.int32), b.astype(np.int32)) + c) >> 3
    np.testing.assert_array_equal(out.numpy(), want)
