"""Requantization products stated as 32 x 32 -> 64-bit multiplies (llvm): which products are
rewritten, bit-exactness at the int32 extremes, and ``vpmuldq`` in the matmul epilogue."""
import numpy as np
import pytest
from tvm import relax
from tvm.relax import op as O

from qcompile.backends import llvm, mul32
from test_x86_packed import _asm, needs_avx2

I32 = np.iinfo(np.int32)


def _product(x_dtype: str, m: np.ndarray, shape=(3, 8), widen: bool = True):
    """``multiply(astype(x, int64), m)`` (or of an int64 ``x`` when not ``widen``), shifted back
    to int32 range."""
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(shape, x_dtype))
    with bb.function("main", [x]):
        with bb.dataflow():
            wide = bb.emit(O.astype(x, "int64")) if widen else x
            prod = bb.emit(O.multiply(wide, relax.const(m, "int64")))  # relax.const alone makes int64 arrays int32
            out = bb.emit_output(bb.emit(O.astype(O.right_shift(prod, relax.const(31, "int64")), "int32")))
        bb.emit_func_output(out)
    return bb.get()


@pytest.mark.parametrize("x_dtype,m,expected", [
    ("int32", np.array([7, -3, I32.max, I32.min] * 2, np.int64), 1),   # per channel, int32 extremes
    ("int16", np.int64(1380356684), 1),                              # per tensor
    ("int32", np.array([1] * 7 + [I32.max + 1], np.int64), 0),        # one multiplier needs 33 bits
    ("int64", np.int64(3), 0),                                       # x itself is int64: not known to fit
])
def test_which_products_are_narrowed(x_dtype, m, expected):
    mod = _product(x_dtype, m, widen=x_dtype != "int64")
    assert len(mul32.find_products(mod["main"])) == expected
    _, count = mul32.narrow_requant_products(mod)
    assert count == expected


def test_bit_exact_at_the_int32_extremes():
    """The sign extension ``(v << 32) >> 32`` and the int32-stored multiplier give the same
    int64 products as the plain multiply, for the most negative and positive int32 values and
    multipliers of either sign."""
    m = np.array([I32.max, I32.min, -1, 1, 0, 12345, -(2 ** 30), 2 ** 30 + 7], np.int64)
    x = np.array([[I32.min, I32.max, -1, 0, 1, I32.min + 1, 2 ** 20, -(2 ** 20)]] * 3, np.int32)
    x[1] = x[1][::-1]
    x[2] = np.random.default_rng(0).integers(I32.min, I32.max, 8, dtype=np.int64).astype(np.int32)
    art = llvm.build(_product("int32", m))
    assert art.info["requant_mul32"] == 1
    expected = ((x.astype(np.int64) * m) >> 31).astype(np.int32)
    np.testing.assert_array_equal(art.run_raw(x)[0], expected)


@needs_avx2
def test_matmul_epilogue_multiplies_with_vpmuldq():
    """A packed int8 matmul with a per-channel requantization (bias inside the widening): the
    epilogue multiplies with ``vpmuldq`` and never emulates a 64-bit multiply with ``vpmuludq``,
    and the result is bit-exact."""
    rng = np.random.default_rng(1)
    k, n = 64, 48
    w = rng.integers(-127, 128, (k, n)).astype(np.int8)
    b = rng.integers(-5000, 5000, n).astype(np.int32)
    mult = rng.integers(2 ** 29, 2 ** 31 - 1, n).astype(np.int64)
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, 20, k), "int8"))
    with bb.function("main", [x]):
        with bb.dataflow():
            acc = bb.emit(O.add(bb.emit(O.matmul(x, relax.const(w), out_dtype="int32")), relax.const(b)))
            wide = bb.emit(O.multiply(bb.emit(O.astype(acc, "int64")), relax.const(mult, "int64")))
            r = bb.emit(O.right_shift(O.add(wide, relax.const(1 << 37, "int64")), relax.const(38, "int64")))
            out = bb.emit_output(bb.emit(O.astype(O.clip(r, -127, 127), "int8")))
        bb.emit_func_output(out)
    art = llvm.build(bb.get())
    assert art.info["requant_mul32"] == 1 and art.info["int8_matmuls_pmaddwd"] == 1
    asm = _asm(art)
    assert "vpmuldq" in asm and "vpmuludq" not in asm
    xv = rng.integers(-128, 128, (1, 20, k)).astype(np.int8)
    acc = xv.astype(np.int64) @ w.astype(np.int64) + b
    expected = np.clip((acc * mult + (1 << 37)) >> 38, -127, 127).astype(np.int8)
    np.testing.assert_array_equal(art.run_raw(xv)[0], expected)
