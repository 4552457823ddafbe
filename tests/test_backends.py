"""Backends: an all-integer module agrees bit for bit with NumPy on llvm and on the C
(int-accel) target; the integer-only verifier refuses float code, naming kernel and
binding; CUDA builds (and nvcc accepts the source) without a GPU."""
import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from tvm.script import ir as I
from tvm.script import relax as R
from tvm.script import tirx as T

import qcompile as qc
from qcompile.backends import cuda
from qcompile.errors import QCompileError

MULT, SHIFT = 1518500250, 38  # a dyadic requantization multiplier (about 0.0055) and shift


@I.ir_module
class IntModule:
    """int8 matmul -> int32 accumulate -> bias -> dyadic requantize (int64 product,
    round half up by adding 2^(s-1)) -> clip -> int8; plus an int32 row max."""

    @R.function
    def main(x: R.Tensor(("n", 32), "int8"), w: R.Tensor((32, 16), "int8"), b: R.Tensor((16,), "int32")):
        with R.dataflow():
            acc = R.matmul(x, w, out_dtype="int32")
            acc_b = R.add(acc, b)
            wide = R.multiply(R.astype(acc_b, "int64"), R.const(MULT, "int64"))
            rounded = R.right_shift(R.add(wide, R.const(1 << (SHIFT - 1), "int64")), R.const(SHIFT, "int64"))
            q = R.astype(R.clip(rounded, -128, 127), "int8")
            m = R.max(acc_b, axis=[1])
            R.output(q, m)
        return (q, m)


def numpy_reference(x, w, b):
    acc = x.astype(np.int32) @ w.astype(np.int32) + b
    wide = acc.astype(np.int64) * MULT
    q = np.clip((wide + (1 << (SHIFT - 1))) >> SHIFT, -128, 127).astype(np.int8)
    return q, acc.max(axis=1)


@pytest.fixture(scope="module")
def int_builds():
    return {t: qc.build(IntModule, target=t) for t in ("llvm", "int-accel")}


int8 = st.integers(-128, 127)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 9).flatmap(lambda n: arrays(np.int8, (n, 32), elements=int8)),
       arrays(np.int8, (32, 16), elements=int8),
       arrays(np.int32, (16,), elements=st.integers(-2**20, 2**20)))
def test_integer_module_bit_exact_llvm_and_c(int_builds, x, w, b):
    want = numpy_reference(x, w, b)
    for target, art in int_builds.items():
        got = art.run(x, w, b)
        for g, r in zip(got, want):
            assert g.dtype == r.dtype, target
            np.testing.assert_array_equal(g, r, err_msg=target)


def test_int_accel_writes_c_source(int_builds, tmp_path):
    art = int_builds["int-accel"]
    files = art.export(tmp_path)
    assert files == ["model.so", "model.c"]
    src = (tmp_path / "model.c").read_text()
    assert "int8_t" in src and "float" not in src.replace("TVMFFIAny", "")  # no float type in the kernels
    assert art.info["verified_integer_only"]


@I.ir_module
class LeakyModule:
    """Integer in and out, but the requantization goes through float32."""

    @R.function
    def main(x: R.Tensor((4, 32), "int8"), w: R.Tensor((32, 16), "int8")):
        with R.dataflow():
            acc = R.matmul(x, w, out_dtype="int32")
            scaled = R.multiply(R.astype(acc, "float32"), R.const(0.0055, "float32"))
            q = R.astype(R.clip(R.round(scaled), -128, 127), "int8")
            R.output(q)
        return q


def test_verifier_refuses_float_naming_kernel_and_binding():
    with pytest.raises(QCompileError) as e:
        qc.build(LeakyModule, target="int-accel")
    offences = e.value.offences
    assert offences, "the float multiply must be reported"
    msg = str(e.value)
    assert "int-accel refuses the build" in msg
    assert any("float32" in n for o in offences for n in o.nodes)
    # the offending kernel is named with the Relax binding that calls it
    assert all(o.binding != "?" for o in offences)
    assert any(o.binding in msg and o.kernel in msg for o in offences)
    # the same module builds for llvm (floats are fine there)
    assert qc.build(LeakyModule, target="llvm").run(np.zeros((4, 32), np.int8), np.zeros((32, 16), np.int8))[0].dtype == np.int8


def test_verifier_refuses_float_model_io(tiny_encoder):
    m, inp = tiny_encoder
    mod = qc.canonicalize(qc.load(m, example_inputs=inp).mod)
    with pytest.raises(QCompileError, match="compute in floating point") as e:
        qc.build(mod, target="int-accel")
    assert any(o.kernel == "main (Relax)" for o in e.value.offences)


def test_cuda_build_without_gpu(tiny_encoder, tmp_path):
    m, inp = tiny_encoder
    mod = qc.canonicalize(qc.load(m, example_inputs=inp).mod)
    art = qc.build(mod, target="cuda")
    assert art.info["arch"] == "sm_80" and art.info["kernels"] > 0
    assert art.export(tmp_path) == ["model.so", "model.cu"]
    assert "__global__" in (tmp_path / "model.cu").read_text()
    assert art.runnable == cuda.gpu_present()
    if art.runnable:  # on a GPU machine, check the numbers too
        got = art.run(*[t.numpy() for t in inp])[0]
        ref = qc.build(mod).run(*[t.numpy() for t in inp])[0]
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_cuda_int8_matmul_and_arch(tmp_path):
    art = qc.build(IntModule, target="cuda", arch="sm_86")
    src = art.sources["model.cu"]
    assert art.info["arch"] == "sm_86"
    # the int8 matmul (symbolic rows, fused requantization) is a __dp4a kernel; nothing is float
    assert art.info["dp4a_matmuls"] == ["fused_matmul_add"] and "__dp4a(" in src
    assert art.info["float_kernels"] == []
    # __dp4a needs sm_61: an older arch gets the SIMT schedule
    old = qc.build(IntModule, target="cuda", arch="sm_60")
    assert old.info["dp4a_matmuls"] == [] and "__dp4a(" not in old.sources["model.cu"]
    if art.runnable:
        rng = np.random.default_rng(0)
        x = rng.integers(-128, 128, (5, 32), dtype=np.int8)
        w = rng.integers(-128, 128, (32, 16), dtype=np.int8)
        b = rng.integers(-1000, 1000, 16, dtype=np.int32)
        for g, r in zip(art.run(x, w, b), numpy_reference(x, w, b)):
            np.testing.assert_array_equal(g, r)
    with pytest.raises(QCompileError, match="bad CUDA arch"):
        qc.build(IntModule, target="cuda", arch="ampere")


def test_cuda_schedule_rule_that_fails_declines(monkeypatch):
    """A dlight rule that fails on a function (GEMV's ``assert r_loops`` on LeViT's and
    MobileViT's integer kernels, CvT's cache-write stage) no longer ends the build: the next
    rule schedules the function, and the build info counts the declines."""
    from tvm.s_tir import dlight as dl

    def broken(self, func, target, tunable):
        raise AssertionError

    from qcompile.backends.cuda_dp4a import Int8MatmulDP4A

    monkeypatch.setattr(dl.gpu.Matmul, "apply", broken)
    monkeypatch.setattr(Int8MatmulDP4A, "apply", lambda self, func, target, tunable: None)  # to dlight's Matmul
    art = qc.build(IntModule, target="cuda")
    assert art.info["schedule_rules_declined"].get("Matmul", 0) >= 1
    assert "__global__" in art.sources["model.cu"]
    if shutil.which("nvcc") is not None:
        assert cuda.validate_with_nvcc(art) > 0


def test_backends_refuse_options_they_do_not_take():
    """Before, every backend's ``build(mod, **_)`` swallowed unknown options: ``arch`` for
    llvm was silently ignored."""
    with pytest.raises(QCompileError, match=r"--target llvm takes no option 'arch' \(it is for --target cuda\)"):
        qc.build(IntModule, target="llvm", arch="sm_86")
    with pytest.raises(QCompileError, match="--target int-accel takes no option 'mcpu'"):
        qc.build(IntModule, target="int-accel", mcpu="znver3")
    with pytest.raises(QCompileError, match="takes no option 'tune_trial'"):
        qc.build(IntModule, target="llvm", tune_trial=3)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed")
def test_nvcc_accepts_cuda_source():
    art = qc.build(IntModule, target="cuda")
    assert cuda.validate_with_nvcc(art) > 0


def test_unknown_target():
    with pytest.raises(QCompileError, match="unknown target"):
        qc.build(IntModule, target="vulkan")


@I.ir_module
class SymbolicReshape:
    """WavLM's relative position bias split back into heads over a symbolic length: a lone
    reshape over dims TVM's ``RewriteDataflowReshape`` cannot take in 0.27."""

    @R.function
    def main(x: R.Tensor(("b4", "n", "n"), "float32")):
        b4, n = T.int64(), T.int64()
        with R.dataflow():
            y = R.reshape(x, R.shape([b4 // 4, 4, n // 10 - 1 + n - n // 10 + 1, n]))
            z = R.add(y, R.const(1.0, "float32"))
            w = R.reshape(z, R.shape([b4 // 4, 4 * n, n]))
            R.output(w)
        return w


def test_a_lone_reshape_over_symbolic_dims_is_a_view():
    """The llvm build runs a lone reshape of a module with symbolic shapes as a view
    (``backends.common.reshape_views``: the legalized ``T_reshape`` kernel is dropped), and
    the results are the reshaped values."""
    import tvm
    from tvm import relax

    from qcompile.backends import llvm
    from qcompile.backends.common import reshape_views

    tgt = llvm.make_target()
    with tgt:
        fused = tvm.transform.Sequential(llvm.fusion_passes(tgt))(SymbolicReshape)
    kernels = [gv.name_hint for gv, f in fused.functions.items() if not isinstance(f, relax.Function)]
    assert any(k.startswith("reshape") for k in kernels), kernels
    viewed = reshape_views(fused)
    assert not any(gv.name_hint.startswith("reshape") for gv in viewed.functions)
    assert "R.reshape(" in viewed["main"].script()
    art = qc.build(SymbolicReshape, "llvm")
    x = np.random.RandomState(0).randn(8, 20, 20).astype(np.float32)
    np.testing.assert_array_equal(art.run(x)[0], (x.reshape(2, 4, 20, 20) + 1).reshape(2, 80, 20))

