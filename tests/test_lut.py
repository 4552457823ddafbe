"""Int8 elementwise chains tabulated (:mod:`qcompile.backends.lut`): which chains are found,
the table against an independent NumPy formula, and builds bit-exact against the NumPy
interpreter of the untabulated module."""
import numpy as np
import pytest
from tvm import relax
from tvm.relax import op as O

import qcompile as qc
from qcompile.passes.int_only import intops
from qcompile.passes.int_only import intref
from qcompile.backends import lut

P = intops.ExpParams()
T_MULT, T_SHIFT = 1255819638, 29          # x -> t = 1.702 x at scale 2^-K (a real chain's constants)
OUT_SHIFT = 36


def _requant(bb, x, mult, shift, lo, hi, dtype):
    w = bb.emit(O.multiply(bb.emit(O.astype(x, "int64")), relax.const(mult, "int64")))
    w = bb.emit(O.right_shift(bb.emit(O.add(w, relax.const(1 << (shift - 1), "int64"))),
                              relax.const(shift, "int64")))
    return bb.emit(O.astype(bb.emit(O.clip(w, lo, hi)), dtype))


def _gelu_module(shape=(2, 6, 40), out_mult=None, src="int8"):
    """``x -> t`` requantization, the ShiftGELU kernel, a reshape and the requantization
    of the result to int8 (``out_mult``: scalar or per channel), as the int-only pass
    emits them."""
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(shape, src))
    with bb.function("main", [x]):
        with bb.dataflow():
            xi = x if src == "int8" else _requant(bb, x, 1 << 20, 20, -127, 127, "int8")
            t = _requant(bb, xi, T_MULT, T_SHIFT, -(2 ** 24), 2 ** 24, "int32")
            g = bb.emit(bb.call_te(lambda a, b: intops.shiftgelu_te(a, b, P), xi, t, primfunc_name_hint="shiftgelu",
                                   primfunc_attrs=intops.kernel_attrs("shiftgelu", K=P.K, n=P.n, B=P.B)))
            g = bb.emit(O.reshape(g, (shape[0] * shape[1], shape[2])))
            mult = 1474836480 if out_mult is None else out_mult
            out = bb.emit_output(_requant(bb, g, mult, OUT_SHIFT, -127, 127, "int8"))
        bb.emit_func_output(out)
    return bb.get()


def _extremes(shape, seed=0):
    x = np.random.default_rng(seed).integers(-128, 128, shape).astype(np.int8)
    x.flat[:256] = np.arange(-128, 128)  # every value once
    return x


def test_gelu_chain_found_and_its_table_matches_numpy():
    mod = _gelu_module()
    (x, chain, exits), = lut.find_regions(mod)
    assert x.name == "x"
    # the whole chain through the per-tensor requantization of the result is one function of x
    (e,) = exits
    assert str(e.var.ty.dtype) == "int8" and len(chain) == 14
    tab = lut.table(mod, x, chain, e.var)
    v = np.arange(-128, 128).astype(np.int8)
    t = intops.requant_ref(v, intops.Dyadic(np.int64(T_MULT), T_SHIFT), -(2 ** 24), 2 ** 24, np.int32)
    g = intops.shiftgelu_ref(v, t, P)
    want = intops.requant_ref(g, intops.Dyadic(np.int64(1474836480), OUT_SHIFT), -127, 127, np.int8)
    np.testing.assert_array_equal(tab, want)


def test_per_channel_requantization_stays_after_the_table():
    mod = _gelu_module(out_mult=np.arange(1, 41, dtype=np.int64) * 40000000)
    (_, _, exits), = lut.find_regions(mod)
    assert [str(e.var.ty.dtype) for e in exits] == ["int32"]  # the kernel's result, not its int64 widening


@pytest.mark.parametrize("kind", ["per-tensor", "per-channel", "int16-source"])
def test_tabulated_build_bit_exact(kind):
    shape = (2, 6, 40)
    if kind == "per-channel":
        mod = _gelu_module(out_mult=(np.arange(1, 41, dtype=np.int64) * 40000000))
    elif kind == "int16-source":
        mod = _gelu_module(src="int16")  # the int8 inside the chain is the table's source
    else:
        mod = _gelu_module()
    x = _extremes(shape).astype("int16" if kind == "int16-source" else "int8")
    if kind == "int16-source":
        x[0, 0, :5] = [-32767, 32767, -300, 300, 0]
    want = intref.run(mod, x)[0]
    art = qc.build(mod, target="llvm")
    assert art.info["int8_luts"] == 1
    np.testing.assert_array_equal(art.run_raw(x)[0], want)
    tabulated, n = lut.tabulate(mod)
    assert n == 1 and "shiftgelu" not in [gv.name_hint for gv in tabulated.get_global_vars()]


def test_chains_without_a_kernel_or_with_other_inputs_are_left_alone():
    # a requantization alone: cheaper computed than looked up
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((4, 8), "int8"))
    y = relax.Var("y", relax.TensorType((4, 8), "int32"))
    with bb.function("main", [x, y]):
        with bb.dataflow():
            r = _requant(bb, x, T_MULT, T_SHIFT, -127, 127, "int8")
            # the kernel's second input depends on another tensor: not a function of x alone
            g = bb.emit(bb.call_te(lambda a, b: intops.shiftgelu_te(a, b, P), r, y, primfunc_name_hint="shiftgelu",
                                   primfunc_attrs=intops.kernel_attrs("shiftgelu", K=P.K, n=P.n, B=P.B)))
            out = bb.emit_output(g)
        bb.emit_func_output(out)
    mod = bb.get()
    assert lut.find_regions(mod) == []
    assert lut.tabulate(mod)[1] == 0


def test_lookup_fuses_into_the_matmul_epilogue():
    """int8 matmul -> requantization -> ShiftGELU -> per-channel requantization: after the
    llvm pipeline's fusion the lookup and the requantizations are the matmul's epilogue (one
    kernel, no int32 round trip through memory), and the build stays bit-exact."""
    import tvm
    from tvm import tirx
    from qcompile.backends import llvm

    rng = np.random.default_rng(1)
    w = rng.integers(-127, 128, (32, 48)).astype(np.int8)
    bb = relax.BlockBuilder()
    a = relax.Var("a", relax.TensorType((12, 32), "int8"))
    with bb.function("main", [a]):
        with bb.dataflow():
            acc = bb.emit(O.matmul(a, relax.const(w), out_dtype="int32"))
            xi = _requant(bb, acc, 1 << 22, 32, -127, 127, "int8")
            t = _requant(bb, xi, T_MULT, T_SHIFT, -(2 ** 24), 2 ** 24, "int32")
            g = bb.emit(bb.call_te(lambda p, q: intops.shiftgelu_te(p, q, P), xi, t, primfunc_name_hint="shiftgelu",
                                   primfunc_attrs=intops.kernel_attrs("shiftgelu", K=P.K, n=P.n, B=P.B)))
            out = bb.emit_output(_requant(bb, g, np.arange(1, 49, dtype=np.int64) * 30000000, OUT_SHIFT,
                                          -127, 127, "int8"))
        bb.emit_func_output(out)
    mod = bb.get()
    tgt = llvm.make_target()
    tab, n = lut.tabulate(mod)
    assert n == 1
    with tgt:
        fused = tvm.transform.Sequential(llvm.fusion_passes(tgt))(tab)
    kernels = [gv.name_hint for gv, f in fused.functions.items() if isinstance(f, tirx.PrimFunc)]
    assert len(kernels) == 1 and "matmul" in kernels[0] and "lut" in kernels[0], kernels
    x = rng.integers(-128, 128, (12, 32)).astype(np.int8)
    np.testing.assert_array_equal(qc.build(mod, target="llvm").run_raw(x)[0], intref.run(mod, x)[0])
