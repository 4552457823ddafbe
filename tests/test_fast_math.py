"""Float GELU / erf through ``topi.fast_erf`` on llvm (:mod:`qcompile.backends.fast_math`):
accurate to float32 rounding scale against float64 ``math.erf``, vectorizable (no libm
``erff`` call left in the code), and only float32 ops rewritten."""
import math

import numpy as np
from tvm import relax
from tvm.relax import op as O

import qcompile as qc
from qcompile.backends import fast_math


def _module(op, dtype="float32", shape=(64, 96)):
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(shape, dtype))
    with bb.function("main", [x]):
        with bb.dataflow():
            out = bb.emit_output(bb.emit(op(x)))
        bb.emit_func_output(out)
    return bb.get()


def _asm(art) -> str:
    return art.executable.mod.imports[0].inspect_source("asm")


def test_gelu_accurate_and_without_libm_erf():
    mod = _module(O.nn.gelu)
    art = qc.build(mod, "llvm")
    assert art.info["fast_gelu"] == 1
    assert "erff" not in _asm(art)
    x = np.linspace(-9, 9, 64 * 96).astype(np.float32).reshape(64, 96)
    x.flat[:4] = [0.0, -0.0, 1e-30, -1e-30]
    ref = np.vectorize(lambda v: v * 0.5 * (1 + math.erf(v / math.sqrt(2))))(x.astype(np.float64))
    got = art.run(x)[0].astype(np.float64)
    # the exact float32 formula is within 4.5e-7 here; the approximation adds at most ~5e-7
    assert np.abs(got - ref).max() < 2e-6
    assert np.all(np.abs(got[x >= 6] - x[x >= 6]) <= 1e-6 * x[x >= 6]) and np.all(np.abs(got[x <= -6]) < 1e-6)


def test_erf_accurate():
    art = qc.build(_module(O.erf), "llvm")
    assert art.info["fast_gelu"] == 1
    x = np.linspace(-6, 6, 64 * 96).astype(np.float32).reshape(64, 96)
    got = art.run(x)[0].astype(np.float64)
    assert np.abs(got - np.vectorize(math.erf)(x.astype(np.float64))).max() < 1e-6


def test_only_float32_is_rewritten():
    assert fast_math.fast_gelu(_module(O.nn.gelu, "float16"))[1] == 0
    assert fast_math.fast_gelu(_module(O.nn.relu))[1] == 0
