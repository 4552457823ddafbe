"""int-only: integer kernels bit-exact against their NumPy references (llvm and C), their
error against the float functions they replace, the whole integer ViT bit-exact between
the NumPy interpreter and both builds, the verifier, overflow refusal, golden IR."""
import math
import re
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from tvm import relax

import qcompile as qc
from qcompile.passes.int_only import intops
from qcompile.passes.int_only import intref
from qcompile.calibration import Calibration
from qcompile.errors import QCompileError
from qcompile.ir import script
from qcompile.models import DEFAULT_MODEL

from test_golden import GOLDEN, check_golden

P = intops.ExpParams()
LN_C, LN_EPS = 48, 3


def _module(fn, name, *specs):
    bb = relax.BlockBuilder()
    vs = [relax.Var(f"a{i}", relax.TensorType(s, d)) for i, (s, d) in enumerate(specs)]
    with bb.function("main", vs):
        with bb.dataflow():
            out = bb.emit_output(bb.call_te(fn, *vs, primfunc_name_hint=name,
                                            primfunc_attrs=intops.kernel_attrs(name)))
        bb.emit_func_output(out)
    return bb.get()


KERNELS = {
    "shiftmax": lambda: _module(lambda x, m: intops.shiftmax_te(x, m, P), "shiftmax", ((3, 17), "int32"),
                                ((3, 17), "int8")),
    "shiftgelu": lambda: _module(lambda x, t: intops.shiftgelu_te(x, t, P), "shiftgelu", ((4, 24), "int8"),
                                 ((4, 24), "int32")),
    "shiftsigmoid": lambda: _module(lambda t: intops.shiftsigmoid_te(t, P), "shiftsigmoid", ((4, 24), "int32")),
    "ilayernorm": lambda: _module(lambda x: intops.layernorm_te(x, LN_EPS, intops.layernorm_out_bits(LN_C)),
                                  "ilayernorm", ((5, LN_C), "int16")),
    "irmsnorm": lambda: _module(lambda x: intops.layernorm_te(x, LN_EPS, intops.layernorm_out_bits(LN_C), center=False),
                                "irmsnorm", ((5, LN_C), "int16")),
}


@pytest.fixture(scope="module")
def kernel_builds():
    return {k: {t: qc.build(make(), target=t) for t in ("llvm", "int-accel")} for k, make in KERNELS.items()}


def _same_on_both(builds, want, *args):
    for target, art in builds.items():
        got = art.run(*args)[0]
        assert got.dtype == want.dtype, target
        np.testing.assert_array_equal(got, want, err_msg=target)


@settings(max_examples=30, deadline=None)
@given(arrays(np.int32, (3, 17), elements=st.integers(-2 ** 20, 2 ** 20)),
       arrays(np.int8, (3, 17), elements=st.integers(0, 1)))
def test_shiftmax_bit_exact(kernel_builds, x, mask):
    _same_on_both(kernel_builds["shiftmax"], intops.shiftmax_ref(x, mask, P), x, mask)


@settings(max_examples=30, deadline=None)
@given(arrays(np.int32, (3, 17), elements=st.integers(-2 ** 31, 2 ** 31 - 1)),
       arrays(np.int8, (3, 17), elements=st.integers(0, 1)))
def test_shiftmax_bit_exact_over_the_int32_range(kernel_builds, x, mask):
    """``x - max`` leaves int32 here; the kernel clamps it before narrowing to int32 lanes."""
    _same_on_both(kernel_builds["shiftmax"], intops.shiftmax_ref(x, mask, P), x, mask)


def test_shiftmax_bit_exact_around_its_clamp(kernel_builds):
    """Differences ``x - max`` on both sides of the kernel's clamp ``-(n + 1) 2^K``, at the
    exponent's own clamp ``-n 2^K / log2 e``, and at the int32 extremes."""
    c = (P.n + 1) << P.K
    x = np.zeros((3, 17), np.int32)
    x[0, 1:] = [-(c + off) for off in range(-8, 8)]
    x[1, 1:] = [-(P.n * (1 << P.K) * 16 // 23 + off) for off in range(-8, 8)]
    x[2] = [2 ** 31 - 1, -2 ** 31] * 8 + [0]
    _same_on_both(kernel_builds["shiftmax"], intops.shiftmax_ref(x, None, P), x, np.ones_like(x, np.int8))


@pytest.mark.parametrize("bits", [12, 16])
def test_shiftmax_bit_exact_with_wide_output(bits):
    """``B > 8``: int32 output; one-element rows give ``e f`` its largest value, ``s f``."""
    p = intops.ExpParams(B=bits)
    art = qc.build(_module(lambda x, m: intops.shiftmax_te(x, m, p), "shiftmax", ((4, 64), "int32"),
                           ((4, 64), "int8")), target="llvm")
    rng = np.random.default_rng(bits)
    x = rng.integers(-3000, 3000, (4, 64)).astype(np.int32)  # within a few 2^K of the max: many outputs between 0 and 2^B - 1
    mask = (rng.random((4, 64)) > 0.3).astype(np.int8)
    mask[0] = 0
    mask[0, 5] = 1
    mask[1] = 0
    got = art.run(x, mask)[0]
    want = intops.shiftmax_ref(x, mask, p)
    assert got.dtype == np.int32 and got[0, 5] > (1 << bits) // 2
    np.testing.assert_array_equal(got, want)


@settings(max_examples=30, deadline=None)
@given(arrays(np.int8, (4, 24), elements=st.integers(-127, 127)), st.floats(1e-3, 0.5))
def test_shiftgelu_bit_exact(kernel_builds, x, s):
    t = intops.requant_ref(x, intops.dyadic(1.702 * s * 2 ** P.K), -2 ** 24, 2 ** 24, np.int32)
    _same_on_both(kernel_builds["shiftgelu"], intops.shiftgelu_ref(x, t, P), x, t)


@settings(max_examples=30, deadline=None)
@given(arrays(np.int8, (4, 24), elements=st.integers(-127, 127)), st.floats(1e-3, 0.5))
def test_shiftsigmoid_bit_exact(kernel_builds, x, s):
    t = intops.requant_ref(x, intops.dyadic(s * 2 ** P.K), -2 ** 24, 2 ** 24, np.int32)
    _same_on_both(kernel_builds["shiftsigmoid"], intops.shiftsigmoid_ref(t, P), t)


@settings(max_examples=60, deadline=None)
@given(arrays(np.int8, (64,), elements=st.integers(-127, 127)), st.floats(0.005, 0.2))
def test_shiftsigmoid_close_to_sigmoid(x, s):
    t = intops.requant_ref(x, intops.dyadic(s * 2 ** P.K), -2 ** 24, 2 ** 24, np.int32)
    y = intops.shiftsigmoid_ref(t, P) / 2 ** P.B
    ref = 1 / (1 + np.exp(-(t / 2 ** P.K)))
    # exp by shifts is within 6.1 % relative; the sigmoid's slope <= 1/4 scales it down
    assert np.all((0 <= y) & (y <= 1)) and np.abs(y - ref).max() <= 0.02 + 2.0 ** -P.B


@settings(max_examples=30, deadline=None)
@given(arrays(np.int16, (5, LN_C), elements=st.integers(-32767, 32767)), st.integers(0, 4))
def test_layernorm_bit_exact(kernel_builds, x, const_rows):
    x[:const_rows] = x[:const_rows, :1]  # zero-variance rows
    _same_on_both(kernel_builds["ilayernorm"], intops.layernorm_ref(x, LN_EPS, intops.layernorm_out_bits(LN_C)), x)


@settings(max_examples=30, deadline=None)
@given(arrays(np.int16, (5, LN_C), elements=st.integers(-32767, 32767)), st.integers(0, 4))
def test_rmsnorm_bit_exact(kernel_builds, x, zero_rows):
    x[:zero_rows] = 0  # all-zero rows: out = 0, no division by zero
    _same_on_both(kernel_builds["irmsnorm"],
                  intops.layernorm_ref(x, LN_EPS, intops.layernorm_out_bits(LN_C), center=False), x)


# ----------------------------------------------------------------------------- error bounds


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, (4, 33), elements=st.floats(-12, 12)))
def test_shiftmax_close_to_softmax(x):
    xi = np.floor(x * 2 ** P.K + 0.5).astype(np.int32)
    p = intops.shiftmax_ref(xi, None, P).astype(np.float64) / 2 ** P.B
    xf = xi / 2 ** P.K
    ref = np.exp(xf - xf.max(-1, keepdims=True))
    ref /= ref.sum(-1, keepdims=True)
    # 2^r ~ 1 + r/2 is off by <= 6.1 % relative; normalization halves the worst case
    assert np.abs(p - ref).max() <= 0.035
    assert np.all(np.abs(p.sum(-1) - 1) <= 0.02 + 33 / 2 ** P.B)


@settings(max_examples=60, deadline=None)
@given(arrays(np.int8, (64,), elements=st.integers(-127, 127)), st.floats(0.005, 0.1))
def test_shiftgelu_close_to_gelu(x, s):
    t = intops.requant_ref(x, intops.dyadic(1.702 * s * 2 ** P.K), -2 ** 24, 2 ** 24, np.int32)
    y = intops.shiftgelu_ref(x, t, P) * s / 2 ** P.B
    xf = x.astype(np.float64) * s
    gelu = xf * 0.5 * (1 + np.vectorize(math.erf)(xf / math.sqrt(2)))
    # x sigmoid(1.702 x) is within 0.021 of GELU; the shift exponent and 8-bit sigmoid add <= 3 %|x|
    assert np.all(np.abs(y - gelu) <= 0.021 + 0.03 * np.abs(xf) + s)


@settings(max_examples=60, deadline=None)
@given(arrays(np.int16, (3, LN_C), elements=st.integers(-32767, 32767)))
def test_layernorm_close_to_float(x):
    Pb = intops.layernorm_out_bits(LN_C)
    n = intops.layernorm_ref(x, 0, Pb) / 2 ** Pb
    xf = x.astype(np.float64)
    sd = xf.std(-1, keepdims=True)
    ok = sd[:, 0] > 4  # rows with some spread
    ref = (xf - xf.mean(-1, keepdims=True)) / np.maximum(sd, 1e-9)
    # the integer mean is off by d <= 0.5: every y moves by d (<= 0.5 / sd in n) and the sum of
    # squares grows by C d^2, shrinking n by a factor (1 + d^2 / sd^2)^-1/2 (<= |n| / (8 sd^2));
    # the int16 output rounds to 2^-P (plus the root's and factor's truncations)
    bound = 4 * 2.0 ** -Pb + 1.01 * (0.5 / sd + np.abs(ref) / (8 * sd ** 2))
    assert np.all((np.abs(n - ref) <= bound)[ok])


@settings(max_examples=60, deadline=None)
@given(arrays(np.int16, (3, LN_C), elements=st.integers(-32767, 32767)))
def test_rmsnorm_close_to_float(x):
    Pb = intops.layernorm_out_bits(LN_C)
    n = intops.layernorm_ref(x, 0, Pb, center=False) / 2 ** Pb
    xf = x.astype(np.float64)
    rms = np.sqrt((xf ** 2).mean(-1, keepdims=True))
    ok = rms[:, 0] > 4
    ref = xf / np.maximum(rms, 1e-9)
    # no mean to round: the int16 output's rounding and the root's and factor's truncations
    assert np.all((np.abs(n - ref) <= 4 * 2.0 ** -Pb + 1e-3 * np.abs(ref))[ok])


def test_isqrt_exact_over_int63():
    rng = np.random.default_rng(0)
    roots = rng.integers(0, 3037000499, 3000)
    v = np.concatenate([np.arange(0, 4096), rng.integers(0, 2 ** 63 - 1, 20000, dtype=np.int64),
                        (roots[:, None] ** 2 + np.array([-1, 0, 1])).ravel(), [2 ** 63 - 1]]).astype(np.int64)
    v = v[v >= 0]
    np.testing.assert_array_equal(intops.isqrt_ref(v), [math.isqrt(int(a)) for a in v])


def test_layernorm_zero_variance_is_zero_not_a_division_by_zero():
    x = np.full((2, LN_C), 1234, np.int16)
    assert not intops.layernorm_ref(x, 0, 10).any()


def test_dyadic_rounding_stated():
    d = intops.dyadic(0.3)
    assert d.mult < 2 ** 31 and abs(d.value - 0.3) < 2 ** -30
    x = np.array([-7, -5, 5, 7, 10], np.int32)
    half_up = np.floor(x * float(d.value) + 0.5)
    np.testing.assert_array_equal(intops.requant_ref(x, d, -127, 127, np.int8), half_up)


# ----------------------------------------------------------------------------- whole model


@pytest.fixture(scope="module")
def vit_int():
    calib = dict(np.load("qcompile/models/assets/fmnist_calib256.npz"))
    model = qc.load(DEFAULT_MODEL)
    out = {}
    for io in (True, False):
        passes = qc.pipeline("int-only", int_io=io)
        pm = qc.PassManager(passes, calibration=Calibration({"pixels": calib["pixels"][:64]}, batch=32,
                                                            progress=False))
        out[io] = (pm.run(model.mod), pm.records[-1].notes)
    return out


@pytest.mark.slow
def test_vit_integer_graph_bit_exact_numpy_llvm_c(vit_int):
    test = dict(np.load("qcompile/models/assets/fmnist_test256.npz"))
    mod, notes = vit_int[True]
    assert notes["ops"]["float"] == []
    x = intops.quantize_ref(test["pixels"][:24], notes["io"]["inputs"]["pixels"]["scale"], "int8")
    want = intref.run(mod, x)[0]
    assert want.dtype == np.int16
    gelus = [b for blk in mod["main"].body.blocks for b in blk.bindings if "shiftgelu" in str(b.value)]
    for target in ("llvm", "int-accel"):
        art = qc.build(mod, target=target)
        np.testing.assert_array_equal(art.run_raw(x)[0], want, err_msg=target)
        if target == "llvm":  # every ShiftGELU chain ran as a table lookup
            assert art.info["int8_luts"] == len(gelus) > 0
    assert art.info["verified_integer_only"]


@pytest.mark.slow
def test_vit_float_io_artifact_bit_exact_and_accurate(vit_int):
    test = dict(np.load("qcompile/models/assets/fmnist_test256.npz"))
    mod, notes = vit_int[False]
    # only the boundary computes in float: quantize the input, dequantize the output
    assert sorted(f.split(": ")[1] for f in notes["ops"]["float"]) == \
        ["add", "astype", "clip", "floor", "multiply", "multiply"]
    x = test["pixels"][:64]
    got = qc.build(mod, target="llvm").run(x)[0]
    np.testing.assert_array_equal(got, intref.run(mod, x)[0])
    import onnxruntime as ort

    ref = ort.InferenceSession(str(DEFAULT_MODEL)).run(None, {"pixels": x})[0]
    assert (got.argmax(1) == ref.argmax(1)).mean() >= 0.95
    assert (got * ref).sum() / np.sqrt((got ** 2).sum() * (ref ** 2).sum()) > 0.999


@pytest.mark.slow
def test_vit_cuda_int8_matmuls_are_dp4a_and_no_float(vit_int):
    mod, notes = vit_int[True]
    art = qc.build(mod, target="cuda")
    matmuls = [k for k in re.findall(r"void __launch_bounds__\(\d+\) (\w+)_kernel\(", art.sources["model.cu"])
               if "matmul" in k]
    assert len(set(matmuls)) >= 10 and set(matmuls) == set(art.info["dp4a_matmuls"])
    assert art.info["float_kernels"] == []
    if art.runnable:  # on a GPU machine: bit-exact against the NumPy interpreter
        test = dict(np.load("qcompile/models/assets/fmnist_test256.npz"))
        x = intops.quantize_ref(test["pixels"][:24], notes["io"]["inputs"]["pixels"]["scale"], "int8")
        np.testing.assert_array_equal(art.run_raw(x)[0], intref.run(mod, x)[0])


def test_int_accel_refuses_float_io_names_the_kernel(vit_int):
    with pytest.raises(QCompileError, match="int-accel refuses the build") as e:
        qc.build(vit_int[False][0], target="int-accel")
    # exactly the boundary: the input quantization, the head's fused dequantization, the float I/O of main
    kernels = sorted(o.kernel for o in e.value.offences)
    assert len(kernels) == 3 and kernels[2] == "main (Relax)", kernels
    assert "floor" in kernels[1] and kernels[0].startswith("fused_matmul") and re.search(r"_multiply\d*$", kernels[0])


def test_overflow_refused_names_binding():
    torch.manual_seed(0)
    from qcompile.models.tiny import TinyEncoder, encoder_inputs

    m = TinyEncoder(masked=False).eval()
    x, _ = encoder_inputs(b=4)
    model = qc.load(m, example_inputs=(x, torch.ones(4, 8)))
    passes = qc.pipeline("int-only", shiftmax_K=28)
    pm = qc.PassManager(passes, calibration=Calibration({"x": x.numpy(), "mask": np.ones((4, 8), np.float32)},
                                                        progress=False))
    with pytest.raises(QCompileError, match=r"Shiftmax at '.*' over rows of 8: L 2\^\(K\+n\) overflows int32"):
        pm.run(model.mod)


# ----------------------------------------------------------------------------- golden IR


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_kernel_golden(name, update_golden):
    check_golden(script(KERNELS[name]()), GOLDEN / f"int_only_{name}.py", update_golden)


def test_requantized_linear_golden(update_golden):
    torch.manual_seed(0)
    lin = torch.nn.Linear(16, 8).eval()
    x = torch.randn(4, 16)
    model = qc.load(lin, example_inputs=(x,))
    pm = qc.PassManager(qc.pipeline("int-only"), calibration=Calibration({model.inputs[0].name: x.numpy()},
                                                                          progress=False))
    mod = pm.run(model.mod)
    check_golden(script(mod), GOLDEN / "int_only_linear.py", update_golden)
    got = qc.build(mod, "llvm").run(x.numpy())[0]
    ref = lin(x).detach().numpy()
    assert np.abs(got - ref).max() <= 0.02 * np.abs(ref).max()


def test_encoder_layer_golden(update_golden):
    torch.manual_seed(0)
    from qcompile.models.tiny import TinyEncoder, encoder_inputs

    m = TinyEncoder(masked=False).eval()
    x, _ = encoder_inputs(b=4)
    ones = torch.ones(4, 8)
    model = qc.load(m, example_inputs=(x, ones))
    pm = qc.PassManager(qc.pipeline("int-only"), calibration=Calibration({"x": x.numpy(), "mask": ones.numpy()},
                                                                          progress=False))
    mod = pm.run(model.mod)
    check_golden(script(mod), GOLDEN / "int_only_encoder.py", update_golden)
    got = qc.build(mod, "llvm").run(x.numpy(), ones.numpy())[0]
    np.testing.assert_array_equal(got, intref.run(mod, x.numpy(), ones.numpy())[0])
    ref = m(x, ones).detach().numpy()
    assert (got * ref).sum() / np.sqrt((got ** 2).sum() * (ref ** 2).sum()) > 0.98


def test_int_io_needs_an_integer_pipeline(tmp_path, capsys):
    from qcompile.cli import main

    rc = main([str(DEFAULT_MODEL), "--pipeline", "none", "--int-io", "-o", str(tmp_path / "out"), "-q"])
    assert rc == 2 and "--int-io needs an integer pipeline" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_int_accel_defaults_to_integer_io():
    """The target's choice is made where the passes are built; the user's choice wins."""
    for target, want in (("int-accel", True), ("llvm", None), ("cuda", None)):
        assert qc.pipeline("int-only", target=target)[-1].config.int_io is want
    assert qc.pipeline("int-only", target="int-accel", int_io=False)[-1].config.int_io is False


def test_seven_bit_weights_take_the_vpmaddubsw_kernel_and_stay_exact():
    """``weight_bits=7``: every int8 weight constant of the integer graph lies in +-63, the llvm
    build multiplies them with vpmaddubsw (on AVX2) and agrees with the NumPy interpreter bit
    for bit; a width outside 2..8 is refused."""
    torch.manual_seed(0)
    from qcompile.backends import llvm, x86_packed
    from qcompile.ir import const_value
    from qcompile.models.tiny import TinyEncoder, encoder_inputs

    m = TinyEncoder(masked=False).eval()
    x, _ = encoder_inputs(b=4)
    ones = torch.ones(4, 8)
    model = qc.load(m, example_inputs=(x, ones))
    cal = Calibration({"x": x.numpy(), "mask": ones.numpy()}, progress=False)
    passes = qc.pipeline("int-only", weight_bits=7)
    mod = qc.PassManager(passes, calibration=cal).run(model.mod)
    weights = [const_value(b.value.args[1]) for blk in mod["main"].body.blocks for b in blk.bindings
               if getattr(b.value, "op", None) is not None and getattr(b.value.op, "name", "") == "relax.matmul"
               and const_value(b.value.args[1]) is not None]
    assert weights and max(int(np.abs(w.astype(np.int16)).max()) for w in weights) <= 63
    art = qc.build(mod, "llvm")
    if x86_packed.supported(llvm.make_target()):
        assert art.info["int8_matmuls_pmaddubsw"] == len(weights) and art.info["int8_matmuls_pmaddwd"] == 0
    np.testing.assert_array_equal(art.run(x.numpy(), ones.numpy())[0], intref.run(mod, x.numpy(), ones.numpy())[0])
    with pytest.raises(QCompileError, match="weight_bits=9 is outside 2..8"):
        qc.PassManager(qc.pipeline("int-only", weight_bits=9), calibration=cal).run(model.mod)


def test_data_movement_passes_integers_through():
    """Selection and rank changes (a DINOv2-style head that drops the CLS token with a slice,
    unsqueeze/squeeze around it) are integer data movement, not float islands: before the
    generic rule, int-only refused the first of them ('expand_dims has no integer lowering')."""
    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(16, 16), torch.nn.Linear(16, 8)

        def forward(self, x):
            h = self.a(x).unsqueeze(1)           # [B, 1, T, 16]
            h = h[:, :, 1:, :].squeeze(1)        # drop the first token
            return self.b(h)

    torch.manual_seed(0)
    m = Head().eval()
    x = torch.randn(4, 5, 16)
    model = qc.load(m, example_inputs=(x,))
    mod = qc.PassManager(qc.pipeline("int-only"), calibration=Calibration({model.inputs[0].name: x.numpy()},
                                                                          progress=False)).run(model.mod)
    ops = {b.value.op.name for blk in mod["main"].body.blocks for b in blk.bindings
           if isinstance(b.value, relax.Call) and hasattr(b.value.op, "name")}
    assert {"relax.expand_dims", "relax.strided_slice", "relax.squeeze"} <= ops
    got = qc.build(mod, "llvm").run(x.numpy())[0]
    ref = m(x).detach().numpy()
    assert got.shape == ref.shape == (4, 4, 8)
    assert np.abs(got - ref).max() <= 0.03 * np.abs(ref).max()


@pytest.mark.slow
def test_optimum_bert_int_only(tmp_path):
    """An HF BertModel exported by Optimum (the zoo's tiny seeded one), shapes fixed: its
    attention mask, ``where(bool(1 - float(m)), min, 1 - float(m))``, canonicalizes to an
    integer ``where(m != 1, min, 0)`` and int-only lowers everything but the output's
    dequantization to integers (before: "op 'astype' ... has no integer lowering")."""
    import onnxruntime as ort

    from qcompile.models import zoo
    from qcompile.passes.int_only import count_ops

    path = str(zoo.ZOO["bert"].onnx)
    shapes = {k: (2, 5) for k in ("input_ids", "attention_mask", "token_type_ids")}
    model = qc.load(path, input_shapes=shapes)
    feeds = [zoo.onnx_feed(path, batch=2, seq=5, seed=100 + i) for i in range(4)]
    calib = {k: np.concatenate([f[k] for f in feeds]) for k in feeds[0]}
    mod = qc.PassManager(qc.pipeline("int-only"), calibration=Calibration(calib, batch=2, progress=False)).run(model.mod)
    ops = count_ops(mod["main"])
    assert ops["integer"] > 300 and len(ops["float"]) == 2  # the output's dequantization only
    feed = zoo.onnx_feed(path, batch=2, seq=5, seed=7)
    got = qc.build(mod, "llvm").run(*[feed[s.name] for s in model.inputs])[0]
    ref = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, feed)[0]
    assert zoo._cosine(got, ref) >= 0.99


@pytest.mark.slow
def test_symbolic_length_int_only():
    """The Optimum BERT with its dynamic sequence axis kept: int-only bounds the symbolic
    attention length by ``max_length`` (Shiftmax's n and the overflow analysis use it), and
    the artifact serves every length up to it and refuses a longer one at run time, naming
    it, instead of overflowing. ``max_length=0`` refuses the symbolic length at compile time."""
    import onnxruntime as ort

    from qcompile.models import zoo

    path = str(zoo.ZOO["bert"].onnx)
    model = qc.load(path)
    feeds = [zoo.onnx_feed(path, batch=2, seq=8, seed=100 + i) for i in range(4)]
    calib = Calibration({k: np.concatenate([f[k] for f in feeds]) for k in feeds[0]}, batch=2, progress=False)
    with pytest.raises(QCompileError, match="symbolic length") as e:
        qc.PassManager(qc.pipeline("int-only", {"int-only": {"max_length": 0}}), calibration=calib).run(model.mod)
    assert len(str(e.value).splitlines()) == 1
    pm = qc.PassManager(qc.pipeline("int-only", {"int-only": {"max_length": 16}}), calibration=calib)
    art = qc.build(pm.run(model.mod), "llvm")
    assert {s["row"] for s in pm.records[-1].notes["shiftmax"]} == {16}
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    for seq in (3, 16):
        feed = zoo.onnx_feed(path, batch=2, seq=seq, seed=7)
        got = art.run(*[feed[s.name] for s in model.inputs])[0]
        assert zoo._cosine(got, sess.run(None, feed)[0]) >= 0.99
    feed = zoo.onnx_feed(path, batch=2, seq=17, seed=7)
    with pytest.raises(Exception, match="attention length 17 exceeds max_length=16"):
        art.run(*[feed[s.name] for s in model.inputs])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["deberta-v2"])  # the richest masks; benchmarks/zoo.py covers the others on llvm
def test_zoo_encoder_int_accel_matches_llvm(name):
    """Optimum encoders of the zoo (symbolic sequence, bounded by max_length) through
    int-only with integer I/O: the int-accel build passes the integer-only verifier and
    gives the llvm build's integers bit for bit (CUDA code generation of int-only is
    test_vit_cuda_int8_matmuls_are_dp4a_and_no_float's)."""
    from qcompile.models import zoo

    path = str(zoo.ZOO[name].onnx)
    feeds = [zoo.onnx_feed(path, batch=2, seq=8, seed=100 + i) for i in range(4)]
    calib = Calibration({k: np.concatenate([f[k] for f in feeds]) for k in feeds[0]}, batch=2, progress=False)
    model = qc.load(path)
    mod = qc.PassManager(qc.pipeline("int-only", {"int-only": {"int_io": True}}), calibration=calib).run(model.mod)
    ia, cpu = qc.build(mod, "int-accel"), qc.build(mod, "llvm")
    assert ia.info["verified_integer_only"] is True
    feed = zoo.onnx_feed(path, batch=2, seq=6, seed=7)
    args = [feed[s.name] for s in model.inputs]
    for a, b in zip(ia.run(*args), cpu.run(*args)):
        np.testing.assert_array_equal(a, b)


class _TorchEncoder(torch.nn.Module):
    """``nn.TransformerEncoder`` (packed in-projection, ReLU FFN, post- or pre-norm) between
    a linear stem and a mean-pooled head; ``pooler_atan`` adds a pooler squashed by ``atan``,
    an op without an integer lowering (BERT's ``tanh`` has one since the table rule)."""

    def __init__(self, norm_first=False, pooler_atan=False):
        super().__init__()
        layer = torch.nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True, norm_first=norm_first)
        self.stem = torch.nn.Linear(8, 32)
        self.enc = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.pool = torch.nn.Linear(32, 32) if pooler_atan else None
        self.head = torch.nn.Linear(32, 5)

    def forward(self, x):
        h = self.enc(self.stem(x)).mean(1)
        if self.pool is not None:
            h = torch.atan(self.pool(h))
        return self.head(h)


def _torch_encoder_onnx(path, **kw):
    import warnings

    torch.manual_seed(0)
    m = _TorchEncoder(**kw).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (torch.randn(1, 6, 8),), str(path), input_names=["x"], output_names=["y"],
                          dynamo=False, opset_version=17)
    return m


def _calibrated(model, calib, spec="int-only", options=None, batch=1):
    passes = qc.pipeline(spec, options)
    pm = qc.PassManager(passes, calibration=Calibration(calib, batch=batch, progress=False))
    return pm.run(model.mod), pm.records[-1].notes


def _cos(a, b):
    return float((a.ravel() @ b.ravel()) / np.linalg.norm(a) / np.linalg.norm(b))


def _export(m, ex, path, names, dynamo: bool):
    """``m`` exported by torch.onnx (TorchScript, or dynamo) at opset 18, warnings silenced: ``path``."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, ex, str(path), input_names=names, output_names=["y"], dynamo=dynamo,
                          opset_version=18, **({"verbose": False} if dynamo else {}))
    return path


@pytest.mark.parametrize("norm_first", [False, True])
def test_torch_transformer_encoder_int_only(tmp_path, norm_first):
    """``torch.nn.TransformerEncoderLayer`` exported by ``torch.onnx.export``: its packed
    in-projection is unflattened and unsqueezed (before the data-movement rule: "op
    'expand_dims' ... has no integer lowering") and its FFN uses ReLU (before: "op
    'nn.relu' ... has no integer lowering"). All integer on llvm and on int-accel,
    bit-equal there, and close to torch."""
    from qcompile.passes.int_only import count_ops

    path = tmp_path / "enc.onnx"
    m = _torch_encoder_onnx(path, norm_first=norm_first)
    rng = np.random.default_rng(0)
    calib = {"x": rng.standard_normal((32, 6, 8)).astype(np.float32)}
    model = qc.load(str(path))
    mod, notes = _calibrated(model, calib)
    assert len(count_ops(mod["main"])["float"]) == 6  # the input quantization and the output dequantization
    assert notes["float_islands"] == []
    art = qc.build(mod, "llvm")
    xs = rng.standard_normal((8, 1, 6, 8)).astype(np.float32)
    got = np.concatenate([art.run(x)[0] for x in xs])
    ref = np.concatenate([m(torch.from_numpy(x)).detach().numpy() for x in xs])
    assert _cos(got, ref) >= 0.99
    mod_i, notes_i = _calibrated(model, calib, options={"int-only": {"int_io": True}})
    xq = intops.quantize_ref(xs[0], notes_i["io"]["inputs"]["x"]["scale"], "int8")
    ia = qc.build(mod_i, "int-accel")
    assert ia.info["verified_integer_only"] is True
    np.testing.assert_array_equal(ia.run(xq)[0], qc.build(mod_i, "llvm").run(xq)[0])


def test_float_islands_option(tmp_path):
    """An op without an integer lowering (a pooler squashed by atan): by default int-only stops,
    naming the op and binding and pointing at ``float_islands``; with the option (API or a
    recipe) the op runs in float between a dequantize and a requantize, and the notes and
    report list the island with its share of the FLOPs. int-accel refuses the option."""
    from qcompile import driver
    from qcompile.errors import QCompileError as E

    path = tmp_path / "enc.onnx"
    m = _torch_encoder_onnx(path, pooler_atan=True)
    rng = np.random.default_rng(0)
    calib = {"x": rng.standard_normal((32, 6, 8)).astype(np.float32)}
    model = qc.load(str(path))
    with pytest.raises(E, match=r"op 'atan' at binding '\w+' has no integer lowering.*float_islands") as e:
        _calibrated(model, calib)
    assert len(str(e.value).splitlines()) == 1
    mod, notes = _calibrated(model, calib, options={"int-only": {"float_islands": True}})
    (isl,) = notes["float_islands"]
    assert isl["op"] == "atan" and 0 < isl["flops_share"] < 0.01
    assert [f.split(": ")[1] for f in notes["ops"]["float"]].count("atan") == 1
    xs = rng.standard_normal((8, 1, 6, 8)).astype(np.float32)
    art = qc.build(mod, "llvm")
    got = np.concatenate([art.run(x)[0] for x in xs])
    ref = np.concatenate([m(torch.from_numpy(x)).detach().numpy() for x in xs])
    assert _cos(got, ref) >= 0.99
    assert "atan" in qc.build(mod, "cuda").sources["model.cu"]
    recipe = tmp_path / "islands.toml"
    recipe.write_text('[[pass]]\nname = "int-prepare"\n[[pass]]\nname = "int-only"\nfloat_islands = true\n')
    np.savez(tmp_path / "calib.npz", **calib)
    rep = driver.compile_model(str(path), str(recipe), "llvm", out=tmp_path / "out", calib_data=tmp_path / "calib.npz",
                               progress=False)
    (int_only,) = [p for p in rep["passes"] if p["name"] == "int-only"]
    assert [i["op"] for i in int_only["notes"]["float_islands"]] == ["atan"]
    assert "float island" in (tmp_path / "out" / "report.md").read_text()
    with pytest.raises(E, match="int-accel runs integers only"):
        driver.compile_model(str(path), str(recipe), "int-accel", out=tmp_path / "out2",
                             calib_data=tmp_path / "calib.npz", progress=False)
    assert not (tmp_path / "out2").exists()


class _LegacyMaskEncoder(torch.nn.Module):
    """One attention layer whose additive mask is spelled as older HF BERTs (and
    sentence-transformers' ONNX exports of them) wrote it: ``(1 - float(m)) * finfo.min``,
    plus masked mean pooling as a second output; the outputs are a tuple."""

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(50, 16)
        self.qkv = torch.nn.Linear(16, 48)
        self.o = torch.nn.Linear(16, 16)

    def forward(self, ids, mask):
        h = self.emb(ids)
        q, k, v = self.qkv(h).split(16, -1)
        add = (1.0 - mask[:, None, :].to(torch.float32)) * torch.finfo(torch.float32).min
        p = torch.softmax(q @ k.transpose(-1, -2) / 4.0 + add, -1)
        t = torch.nn.functional.layer_norm(self.o(p @ v) + h, (16,))
        m = mask[..., None].to(torch.float32)
        return t, (t * m).sum(1) / m.sum(1).clamp(min=1e-9)


def test_legacy_additive_mask_and_islands_on_tuple_fields(tmp_path):
    """The mask ``(1 - float(m)) * min`` is an integer keep mask (before: "op 'astype' ...
    has no integer lowering"); the token output is integer, the masked mean pooling needs
    float islands (named, and with the option, run in float); a batch-norm island's tuple
    field is requantized where it is read."""
    import warnings

    torch.manual_seed(0)
    m = _LegacyMaskEncoder().eval()
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 50, (32, 1, 7))
    mask = np.ones((32, 1, 7), np.int64)
    mask[:, :, 5:] = 0
    path = tmp_path / "enc.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (torch.from_numpy(ids[0]), torch.from_numpy(mask[0])), str(path), dynamo=False,
                          input_names=["ids", "mask"], output_names=["tokens", "pooled"], opset_version=17)
    model = qc.load(str(path))
    calib = {"ids": ids.reshape(32, 7), "mask": mask.reshape(32, 7)}
    with pytest.raises(QCompileError, match=r"lv\d+.*float_islands=true"):
        _calibrated(model, calib)
    mod, notes = _calibrated(model, calib, options={"int-only": {"float_islands": True}})
    # the sum of the cast mask (the count) is an island; the division by it is a quotient of
    # two activations in integers since the thirteenth round
    assert {i["op"] for i in notes["float_islands"]} == {"sum"}
    assert all("matmul" not in i["op"] for i in notes["float_islands"])
    art = qc.build(mod, "llvm")
    for i in range(4):
        got = art.run(ids[i], mask[i])
        ref = [t.detach().numpy() for t in m(torch.from_numpy(ids[i]), torch.from_numpy(mask[i]))]
        for g, r in zip(got, ref):
            assert _cos(g, r) >= 0.99


def test_batch_norm_is_integer():
    """Inference BatchNorm (LeViT's MLP layers) is its per-channel affine: ``int-prepare``
    decomposes it into a subtract, multiply and add by constants, all integer (before, it
    was a float island: ``nn.batch_norm`` returns a tuple, whose field was requantized)."""
    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(8, 8)
            self.bn = torch.nn.BatchNorm1d(8)
            self.b = torch.nn.Linear(8, 4)

        def forward(self, x):
            return self.b(torch.relu(self.bn(self.a(x))))

    torch.manual_seed(0)
    m = Head().eval()
    m.bn.running_mean.uniform_(-1, 1)
    m.bn.running_var.uniform_(0.5, 2)
    x = torch.randn(16, 8)
    model = qc.load(m, example_inputs=(x,))
    mod, notes = _calibrated(model, {model.inputs[0].name: x.numpy()}, options={"int-only": {"float_islands": True}},
                              batch=16)
    assert notes["float_islands"] == [] and notes["ops"]["float"] == [] or \
        all(f.split(": ")[1] in ("multiply", "add", "floor", "clip", "astype") for f in notes["ops"]["float"])
    got = qc.build(mod, "llvm").run(x.numpy())[0]
    assert _cos(got, m(x).detach().numpy()) >= 0.99
    np.testing.assert_array_equal(got, intref.run(mod, x.numpy())[0])


@pytest.mark.parametrize("act", ["silu", "quick_gelu"])
def test_silu_and_quick_gelu_are_shiftgelu(act):
    """``x * sigmoid(x)`` (SiLU, as ONNX spells it) and CLIP's quick GELU ``x * sigmoid(1.702 x)``:
    int-prepare rewrites them to ``silu`` (exactly, checked in float) and int-only lowers
    it with ShiftGELU's kernel ``x σ(α x)`` (before: "op 'sigmoid' ... has no integer lowering")."""
    c = 1.0 if act == "silu" else 1.702

    class MLP(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(16, 64), torch.nn.Linear(64, 16)

        def forward(self, x):
            h = self.a(x)
            return self.b(h * torch.sigmoid(c * h) if c != 1.0 else h * torch.sigmoid(h))

    torch.manual_seed(0)
    m = MLP().eval()
    x = torch.randn(32, 5, 16)
    model = qc.load(m, example_inputs=(x,))
    prepared = qc.PassManager(qc.pipeline("int-only")[:2]).run(model.mod)
    ops = str(prepared["main"])
    assert "R.nn.silu" in ops and "R.sigmoid" not in ops
    ref = m(x).detach().numpy()
    np.testing.assert_allclose(qc.build(prepared, "llvm").run(x.numpy())[0], ref, rtol=1e-5, atol=1e-5)
    mod, notes = _calibrated(model, {model.inputs[0].name: x.numpy()}, batch=32)
    assert notes["float_islands"] == [] and len(notes["ops"]["float"]) == 6
    assert _cos(qc.build(mod, "llvm").run(x.numpy())[0], ref) >= 0.99


def test_divide_by_constant_and_mask_multiply():
    """DeBERTa's spellings: the embedding output multiplied by ``float(attention_mask)`` (an
    integer select, not a float island) and q divided by a constant (a multiplication by
    its reciprocal); and an ``arange`` over the symbolic sequence length as an operand (a
    shape variable, not a tensor of the model: before, a KeyError inside the pass)."""
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(40, 16)
            self.pos = torch.nn.Embedding(64, 16)
            self.a = torch.nn.Linear(16, 16)

        def forward(self, ids, mask):
            pos = torch.arange(ids.shape[1])
            h = torch.nn.functional.layer_norm(self.emb(ids) + self.pos(pos), (16,))
            h = h * mask[..., None].to(torch.float32)
            return self.a(h) / 2.5

    torch.manual_seed(0)
    m = M().eval()
    rng = np.random.default_rng(0)
    ids, mask = rng.integers(0, 40, (16, 7)), np.ones((16, 7), np.int64)
    mask[:, 5:] = 0
    seq = torch.export.Dim("seq", min=2, max=64)
    model = qc.load(m, example_inputs=(torch.from_numpy(ids[:2]), torch.from_numpy(mask[:2])),
                    dynamic_shapes=({1: seq}, {1: seq}))
    mod, notes = _calibrated(model, {"ids": ids, "mask": mask}, batch=2)
    assert notes["float_islands"] == []
    got = qc.build(mod, "llvm").run(ids[:2], mask[:2])[0]
    ref = m(torch.from_numpy(ids[:2]), torch.from_numpy(mask[:2])).detach().numpy()
    assert _cos(got, ref) >= 0.99
    # masked positions: h = 0 exactly, so the output is the bias / 2.5 (up to its quantization)
    np.testing.assert_allclose(got[:, 5:], ref[:, 5:], atol=0.02 * np.abs(ref).max())


def test_integer_tensor_that_is_not_a_mask_is_refused():
    """``x * float(t)`` is lowered as a select only when ``t`` was a 0/1 mask on the
    calibration data; token positions or counts are refused, naming the tensor (and run as
    a float island with the option)."""
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(8, 8)

        def forward(self, x, t):
            return self.a(x) * t[..., None].to(torch.float32)

    torch.manual_seed(0)
    m = M().eval()
    x = torch.randn(16, 5, 8)
    t = torch.arange(5).repeat(16, 1)
    model = qc.load(m, example_inputs=(x, t))
    calib = {model.inputs[0].name: x.numpy(), model.inputs[1].name: t.numpy()}
    with pytest.raises(QCompileError, match=r"used as a 0/1 mask but took values in \[0, 4\]"):
        _calibrated(model, calib, batch=16)
    mod, notes = _calibrated(model, calib, options={"int-only": {"float_islands": True}}, batch=16)
    assert [i["op"] for i in notes["float_islands"]] == ["multiply"]
    assert _cos(qc.build(mod, "llvm").run(x.numpy(), t.numpy())[0], m(x, t).detach().numpy()) >= 0.99


def test_lowering_rules_are_one_registry():
    """int-only's op rules are registered per Relax op (``@lowers``), like TVM's
    ``register_legalize``; the refusal's list of supported ops is read from the registry,
    so it cannot go stale."""
    from qcompile.passes.int_only import lower

    methods = {n for n in dir(lower._Lowering) if n.startswith("op_")}
    registered = {fn.__name__ for fn in lower.RULES.values()}
    assert methods == registered, methods ^ registered  # no rule defined but unreachable
    assert {"relax.matmul", "relax.nn.gelu", "relax.nn.gelu_tanh", "relax.nn.pad"} <= set(lower.RULES)
    assert {"matmul", "qcompile.attention", "strided_slice", "nn.layer_norm"} <= set(lower.supported_ops())
    with pytest.raises(ValueError, match="two lowerings"):
        lower.lowers("relax.matmul")(lambda self, var, call, args: None)


def test_glu_product_of_two_activations():
    """A GLU MLP (``down(gelu(gate(h)) * up(h))``, GeGLU / SwiGLU encoders): the product of
    two activations is int8 x int8 -> int32 at the product of their scales (before:
    "multiply at ... is not by a constant"). Close to float, bit-exact against the NumPy
    interpreter, and integer-only on int-accel."""
    class GLU(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.ln, self.gate = torch.nn.LayerNorm(32), torch.nn.Linear(32, 64)
            self.up, self.down = torch.nn.Linear(32, 64), torch.nn.Linear(64, 32)

        def forward(self, x):
            h = self.ln(x)
            return x + self.down(torch.nn.functional.gelu(self.gate(h)) * self.up(h))

    torch.manual_seed(0)
    m, x = GLU().eval(), torch.randn(16, 6, 32)
    model = qc.load(m, example_inputs=(x[:2],))
    cal = Calibration({"x": x.numpy()}, batch=2, progress=False)
    pm = qc.PassManager(qc.pipeline("int-only"), calibration=cal)
    mod = pm.run(model.mod)
    floats = [f.split(": ")[1] for f in pm.records[-1].notes["ops"]["float"]]
    assert floats == ["multiply", "add", "floor", "clip", "astype", "multiply"]  # only input quantization, output dequantization
    xs = x[:2].numpy()
    got = qc.build(mod, "llvm").run(xs)[0]
    ref = m(x[:2]).detach().numpy()
    assert _cos(got, ref) >= 0.999
    np.testing.assert_array_equal(got, intref.run(mod, xs)[0])
    io = qc.PassManager(qc.pipeline("int-only", int_io=True), calibration=cal).run(model.mod)
    assert qc.build(io, "int-accel").info["verified_integer_only"]


def _int_only_of(m, x):
    """``m`` (a torch module of one input) through int-only, calibrated on all of ``x`` and
    loaded at its first four samples: (the integer module, its calibration, the loaded model,
    the ops left in float, the pass's notes)."""
    model = qc.load(m, example_inputs=(x[:4],))
    cal = Calibration({"x": x.numpy()}, batch=4, progress=False)
    pm = qc.PassManager(qc.pipeline("int-only"), calibration=cal)
    mod = pm.run(model.mod)
    notes = pm.records[-1].notes
    return mod, cal, model, [f.split(": ")[1] for f in notes["ops"]["float"]], notes


def _llvm_bit_exact(mod, xs):
    """The llvm build of the integer module ``mod`` on ``xs``, asserted bit for bit equal to
    the NumPy interpreter's result."""
    got = qc.build(mod, "llvm").run(xs)[0]
    np.testing.assert_array_equal(got, intref.run(mod, xs)[0])
    return got


def test_convolutions_and_hardswish_are_integer():
    """Convolutions that are not patch embeddings (a padded stride-2 stem, a depthwise 3x3:
    SegFormer, LeViT), BatchNorm and Hardswish's clip: int8 x int8 -> int32 convolutions
    with one weight scale per tensor (before: "op 'nn.conv2d' ... has no integer lowering
    (only a patch embedding ...)"). Bit-exact against the NumPy interpreter (its int64
    convolution), close to float, integer-only on int-accel."""
    class Stem(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
            self.bn = torch.nn.BatchNorm2d(8)
            self.dw = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)
            self.head = torch.nn.Linear(8 * 8 * 8, 4)

        def forward(self, x):
            y = torch.nn.functional.hardswish(self.bn(self.conv(x)))
            return self.head(torch.relu(self.dw(y)).flatten(1))

    torch.manual_seed(0)
    m = Stem().eval()
    m.bn.running_mean.uniform_(-0.5, 0.5)
    m.bn.running_var.uniform_(0.5, 2)
    x = torch.randn(16, 3, 16, 16)
    mod, cal, model, floats, _ = _int_only_of(m, x)
    assert "nn.conv2d" not in floats and "clip" in floats  # the I/O quantization's clip only
    xs = x[:4].numpy()
    got = _llvm_bit_exact(mod, xs)
    assert _cos(got, m(x[:4]).detach().numpy()) >= 0.99
    io = qc.PassManager(qc.pipeline("int-only", int_io=True), calibration=cal).run(model.mod)
    assert qc.build(io, "int-accel").info["verified_integer_only"]


def _export_onnx(m, example, path, dynamic_batch: bool):
    """``m`` (one input ``x``, one output ``y``) as ``torch.onnx.export`` writes it (TorchScript
    exporter, opset 17), the batch symbolic if asked."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (example,), str(path), input_names=["x"], output_names=["y"], dynamo=False,
                          opset_version=17, **({"dynamic_axes": {"x": {0: "batch"}}} if dynamic_batch else {}))


def test_xsoftmax_zeroed_probabilities_are_an_attention():
    """DeBERTa's XSoftmax (SEW-D, DeBERTa exports): ``masked_fill(rmask, min)``, softmax, then
    the masked probabilities zeroed again by ``masked_fill(rmask, 0)``; with a padded token,
    its query row is masked everywhere and gives 0. Canonicalized to SDPA's NaN-guarded form
    (before: the softmax stood alone, "op 'nn.softmax' ... has no integer lowering"); the
    rewritten float graph equals torch, padded rows included; int-only is bit-exact against
    the NumPy interpreter and close to float."""
    from qcompile.ir import composites

    class XAttention(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv, self.o = torch.nn.Linear(16, 48), torch.nn.Linear(16, 16)

        def forward(self, x, mask):
            b, t, _ = x.shape
            q, k, v = (h.reshape(b, t, 2, 8).transpose(1, 2) for h in self.qkv(x).chunk(3, -1))
            rmask = (1 - mask[:, None, :, None] * mask[:, None, None, :]).bool()
            s = (q @ k.transpose(-1, -2) / 8 ** 0.5).masked_fill(rmask, torch.finfo(x.dtype).min)
            p = torch.softmax(s, -1).masked_fill(rmask, 0)
            return self.o((p @ v).transpose(1, 2).reshape(b, t, 16))

    torch.manual_seed(0)
    m, x = XAttention().eval(), torch.randn(16, 6, 16)
    mask = torch.ones(16, 6, dtype=torch.int64)
    mask[1::2, 4:] = 0  # every other sample padded: its last two query rows are masked everywhere
    model = qc.load(m, example_inputs=(x[:4], mask[:4]))
    canon = qc.PassManager(qc.pipeline("none")).run(model.mod)
    assert len(composites(canon, "qcompile.attention")) == 1
    xs, ms = x[:4].numpy(), mask[:4].numpy()
    ref = m(x[:4], mask[:4]).detach().numpy()
    np.testing.assert_allclose(qc.build(canon, "llvm").run(xs, ms)[0], ref, rtol=1e-5, atol=1e-5)
    cal = Calibration({"x": x.numpy(), "mask": mask.numpy()}, batch=4, progress=False)
    mod = qc.PassManager(qc.pipeline("int-only"), calibration=cal).run(model.mod)
    got = qc.build(mod, "llvm").run(xs, ms)[0]
    np.testing.assert_array_equal(got, intref.run(mod, xs, ms)[0])
    assert _cos(got, ref) >= 0.99


def test_dynamic_convolution_softmax_and_runtime_shape(tmp_path):
    """ConvBERT's span-based dynamic convolution as ``torch.onnx.export`` writes it over a
    symbolic batch: per-token kernels from a softmax over the kernel axis (not the last one),
    applied to an ``nn.Unfold`` of the values, whose gather indices read ``shape(pad(x))`` at
    run time. Both were refused ("op 'shape_of' ... has no integer lowering", then the
    softmax); a softmax outside an attention is Shiftmax, a shape is its expression.
    Bit-exact against the NumPy interpreter, close to float."""
    class DynConv(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.kernel, self.value, self.out = torch.nn.Linear(8, 3), torch.nn.Linear(8, 8), torch.nn.Linear(8, 8)
            self.unfold = torch.nn.Unfold(kernel_size=[3, 1], padding=[1, 0])

        def forward(self, x):
            b, t, c = x.shape
            k = torch.softmax(self.kernel(x).reshape(b * t, 3, 1), dim=1)
            v = self.unfold(self.value(x).transpose(1, 2).unsqueeze(-1))       # [b, c*3, t]
            v = v.transpose(1, 2).reshape(b * t, c, 3)
            return self.out(torch.matmul(v, k).reshape(b, t, c))

    torch.manual_seed(0)
    m, x = DynConv().eval(), torch.randn(16, 6, 8)
    path = tmp_path / "dynconv.onnx"
    _export_onnx(m, x[:2], path, dynamic_batch=True)
    model = qc.load(str(path))
    mod, notes = _calibrated(model, {"x": x.numpy()}, batch=4)
    assert len(notes["shiftmax"]) == 1
    xs = x[:4].numpy()
    got = _llvm_bit_exact(mod, xs)
    assert _cos(got, m(x[:4]).detach().numpy()) >= 0.99


def test_gated_position_bias_sum_and_constant_table_product(tmp_path):
    """WavLM's gated relative position bias over a symbolic batch: a gate summed over groups
    (``sum`` had no integer lowering) scales a constant table broadcast over the batch and
    merged with the heads, where the constant no longer has one array value ("multiply ...
    is not by a constant"). Integer sums; the table as int16 codes times the int8 gate.
    Bit-exact against the NumPy interpreter, close to float."""
    class GatedBias(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin, self.out = torch.nn.Linear(8, 8), torch.nn.Linear(6, 8)
            self.table = torch.nn.Parameter(torch.randn(2, 6, 6))

        def forward(self, x):
            b, t, _ = x.shape
            g = torch.sigmoid(self.lin(x).view(b, t, 2, 4).sum(-1)).transpose(1, 2).reshape(b * 2, t, 1)
            bias = self.table.unsqueeze(0).expand(b, 2, 6, 6).reshape(b * 2, 6, 6)
            return self.out((g * bias).reshape(b, 2, t, 6).sum(1))

    torch.manual_seed(0)
    m, x = GatedBias().eval(), torch.randn(16, 6, 8)
    path = tmp_path / "gated.onnx"
    _export_onnx(m, x[:2], path, dynamic_batch=True)
    mod, _ = _calibrated(qc.load(str(path)), {"x": x.numpy()}, batch=4)
    xs = x[:4].numpy()
    got = _llvm_bit_exact(mod, xs)
    assert _cos(got, m(x[:4]).detach().numpy()) >= 0.99


def test_norms_by_square_root_and_division_by_an_activation():
    """A std scaler over time (PatchTST: ``(x - mean) / sqrt(var + eps)`` over axis 1, the
    square written with Pow) and ConvNeXt-V2's global response normalization (``gx =
    ||h||`` over tokens, ``h * gx / mean(gx)``, gamma and beta not zero): an integer square
    root (the layer norm's Newton kernel) and a fixed-point quotient of two activations
    (before: "op 'sum' ...", "op 'sqrt' ...", "multiply ... is not by a constant"). Bit-exact
    against the NumPy interpreter, close to float."""
    class ScalerGRN(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin1, self.lin2 = torch.nn.Linear(8, 16), torch.nn.Linear(16, 8)
            self.gamma, self.beta = torch.nn.Parameter(torch.randn(16) * 0.5), torch.nn.Parameter(torch.randn(16) * 0.1)

        def forward(self, x):
            loc = x.mean(1, keepdim=True)
            x = (x - loc) / torch.sqrt(((x - loc) ** 2).mean(1, keepdim=True) + 1e-5)
            h = torch.nn.functional.gelu(self.lin1(x))
            gx = torch.sqrt((h * h).sum(1, keepdim=True))
            h = self.gamma * (h * (gx / (gx.mean(-1, keepdim=True) + 1e-6))) + self.beta + h
            return self.lin2(h)

    torch.manual_seed(0)
    m, x = ScalerGRN().eval(), torch.randn(16, 6, 8) * torch.rand(16, 1, 8) * 4 + torch.randn(16, 1, 8)
    mod, cal, model, floats, notes = _int_only_of(m, x)
    assert not {"sqrt", "divide", "power", "sum"} & set(floats)
    xs = x[:4].numpy()
    got = _llvm_bit_exact(mod, xs)
    assert _cos(got, m(x[:4]).detach().numpy()) >= 0.99
    io = qc.PassManager(qc.pipeline("int-only", int_io=True), calibration=cal).run(model.mod)
    art = qc.build(io, "int-accel")  # the C target: the same integers
    assert art.info["verified_integer_only"]
    xi = np.random.default_rng(0).integers(-128, 128, (4, 6, 8)).astype(np.int8)
    np.testing.assert_array_equal(art.run_raw(xi)[0], intref.run(io, xi)[0])


def test_scatter_of_activations_is_data_movement(tmp_path):
    """Slice assignment into a buffer (Longformer writes its diagonals of scores into place;
    ``torch.onnx.export`` writes ScatterND): the buffer and the values written as int16 at
    the result's scale (before: "op 'scatter_nd' ... has no integer lowering"). Bit-exact
    against the NumPy interpreter, close to float."""
    class Scatter(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.out = torch.nn.Linear(8, 8), torch.nn.Linear(8, 8), torch.nn.Linear(8, 8)

        def forward(self, x):
            buf = torch.full_like(x, 0.25)
            buf[:, 1:4] = self.a(x[:, :3])
            buf[:, 4:] = torch.relu(self.b(x[:, 4:]))
            return self.out(buf)

    torch.manual_seed(0)
    m, x = Scatter().eval(), torch.randn(16, 6, 8)
    path = tmp_path / "scatter.onnx"
    _export_onnx(m, x[:4], path, dynamic_batch=False)
    mod, notes = _calibrated(qc.load(str(path)), {"x": x.numpy()}, batch=4)
    assert "scatter_nd" not in [f.split(": ")[1] for f in notes["ops"]["float"]]
    xs = x[:4].numpy()
    got = _llvm_bit_exact(mod, xs)
    assert _cos(got, m(x[:4]).detach().numpy()) >= 0.99


def test_transposed_convolutions_are_integer():
    """Transposed convolutions (DPT's fusion neck, segmentation decoders: a 2x2 stride-2
    upsampling, and a padded 3x3 one with output padding and groups): int8 x int8 -> int32
    like the convolutions (before: "op 'nn.conv2d_transpose' ... has no integer lowering").
    Bit-exact against the NumPy interpreter's int64 scatter on llvm and on the C target
    (int-accel, integer I/O), close to float."""
    class Up(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.up = torch.nn.ConvTranspose2d(8, 4, 2, stride=2)
            self.up2 = torch.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2)

        def forward(self, x):
            return self.up2(torch.relu(self.up(x)))

    torch.manual_seed(0)
    m, x = Up().eval(), torch.randn(16, 8, 5, 5)
    mod, cal, model, floats, _ = _int_only_of(m, x)
    assert "nn.conv2d_transpose" not in floats
    xs = x[:4].numpy()
    got = _llvm_bit_exact(mod, xs)
    assert got.shape == (4, 6, 20, 20) and _cos(got, m(x[:4]).detach().numpy()) >= 0.99
    io = qc.PassManager(qc.pipeline("int-only", int_io=True), calibration=cal).run(model.mod)
    art = qc.build(io, "int-accel")
    assert art.info["verified_integer_only"]
    xi = np.random.default_rng(0).integers(-128, 128, (4, 8, 5, 5)).astype(np.int8)
    np.testing.assert_array_equal(art.run_raw(xi)[0], intref.run(io, xi)[0])


def test_average_pools_are_integer():
    """Average pooling as PoolFormer's token mixer (3x3, stride 1, ``count_include_pad=False``:
    4, 6 or 9 values per window) and as EfficientNet's head (a ``ceil_mode`` window larger
    than the map; before: "op 'nn.avg_pool2d' ... has no integer lowering"): int32 window
    sums by a depthwise convolution of ones, divided by a scale or a per-position
    reciprocal. Counts agree with torch's, the graph is bit-exact against the NumPy
    interpreter and close to float."""
    from qcompile.passes.int_only.lower import pool_counts

    class Pools(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.mix = torch.nn.AvgPool2d(3, 1, 1, count_include_pad=False)
            self.head = torch.nn.AvgPool2d(10, ceil_mode=True)

        def forward(self, x):
            y = self.conv(x)
            return self.head(self.mix(y) - y).flatten(1)

    for size, k, st, pad, inc, ceil in [(7, 3, 1, 1, False, False), (7, 3, 2, 1, True, True), (6, 10, 10, 0, True, True)]:
        ones = torch.ones(1, 1, size, size)
        pool = torch.nn.functional.avg_pool2d(ones, k, st, pad, ceil_mode=ceil, count_include_pad=inc)
        n = pool.shape[-1]
        # torch's divisor: the window sums of ones (divisor 1) over the mean of ones
        sums = torch.nn.functional.avg_pool2d(ones, k, st, pad, ceil_mode=ceil, divisor_override=1)
        np.testing.assert_allclose(pool_counts((size, size), (n, n), (k, k), (st, st), (pad,) * 4, inc),
                                   (sums / pool)[0, 0].numpy(), rtol=1e-6)
    torch.manual_seed(0)
    m = Pools().eval()
    x = torch.randn(16, 3, 8, 8)
    mod, _, _, floats, _ = _int_only_of(m, x)
    assert not any("pool" in f for f in floats)
    xs = x[:4].numpy()
    got = _llvm_bit_exact(mod, xs)
    assert _cos(got, m(x[:4]).detach().numpy()) >= 0.99


def test_bias_that_dwarfs_the_products_coarsens_the_accumulator():
    """A BatchNorm shift folded into a convolution of small inputs (a deep random
    EfficientNet: products at scale 1e-13, a shift of 0.2): the bias at the accumulator's
    scale does not fit int32 (before: "accumulator + bias ... over the int32 range"). The
    accumulator is requantized 2^k coarser first; bit-exact against NumPy, close to float."""
    class Small(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False)
            self.bn = torch.nn.BatchNorm2d(4)

        def forward(self, x):
            return torch.relu(self.bn(self.conv(x * 1e-6)))

    torch.manual_seed(0)
    m = Small().eval()
    with torch.no_grad():
        m.conv.weight.mul_(1e-3)
        m.bn.bias.uniform_(-0.5, 0.5)
        m.bn.running_var.fill_(1e-4)
    x = torch.randn(8, 4, 6, 6)
    mod, notes = _int_only_of(m, x)[::4]
    tight = notes["overflow"]["tightest"]  # the coarsened accumulator: near 2^30, not 1e14
    assert tight["op"] == "accumulator + bias" and 2 ** 29 < tight["bound"] < 2 ** 31, tight
    xs = x[:4].numpy()
    got = _llvm_bit_exact(mod, xs)
    assert _cos(got, m(x[:4]).detach().numpy()) >= 0.99


class _PositionTables(torch.nn.Module):
    """An encoder layer whose position terms are computed in the graph from the sequence
    length, as ModernBERT, ESM and MPNet do: a sinusoid table added to the input, a
    distance bias on the scores summed with the padding mask first (MPNet's order), and a
    local window merged into the mask with ``where`` (ModernBERT's sliding window)."""

    def __init__(self):
        super().__init__()
        self.qkv = torch.nn.Linear(16, 48)
        self.o = torch.nn.Linear(16, 16)
        self.register_buffer("freq", torch.linspace(0.05, 1.0, 16))
        self.register_buffer("slope", torch.tensor([[[-0.5]], [[-0.25]]]))

    def forward(self, x, mask):
        B, T, _ = x.shape
        pos = torch.arange(T, dtype=torch.float32)
        x = x + torch.sin(pos[:, None] * self.freq)
        q, k, v = (t.reshape(B, T, 2, 8).transpose(1, 2) for t in self.qkv(x).split(16, -1))
        rel = (torch.arange(T)[None, :] - torch.arange(T)[:, None]).abs()
        low = torch.finfo(torch.float32).min
        add = (1.0 - mask[:, None, None, :].to(torch.float32)) * low
        add = torch.where(rel > 3, low, add)
        add = add + self.slope * rel.to(torch.float32)
        p = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(8) + add, -1)
        return self.o((p @ v).transpose(1, 2).reshape(B, T, 16))


def test_position_tables_fold_with_a_fixed_length_and_masks_combine():
    """With the sequence length fixed, the shape-only position terms fold into constants
    and int-only lowers the layer: the distance bias goes into Shiftmax's input, the window
    into its keep mask (before: "combines a cast integer tensor with a non-scalar", "float
    where ... is not an attention mask"). With the length symbolic the refusal names the
    table as computed from the shapes alone and says which --input-shape folds it."""
    torch.manual_seed(0)
    m = _PositionTables().eval()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 7, 16)).astype(np.float32)
    mask = np.ones((16, 7), np.int64)
    mask[::2, 5:] = 0
    ex = (torch.from_numpy(x[:2]), torch.from_numpy(mask[:2]))
    model = qc.load(m, example_inputs=ex)
    mod, notes = _calibrated(model, {"x": x, "mask": mask}, batch=2)
    assert notes["float_islands"] == []
    got = qc.build(mod, "llvm").run(x[:2], mask[:2])[0]
    assert _cos(got, m(*ex).detach().numpy()) >= 0.99
    seq = torch.export.Dim("seq", min=2, max=64)
    sym = qc.load(m, example_inputs=ex, dynamic_shapes=({1: seq}, {1: seq}))
    with pytest.raises(QCompileError, match=r"computed from the input shapes alone \(a position table\): fix them "
                                            r"\(--input-shape x=2xNx16 --input-shape mask=2xN\)"):
        _calibrated(sym, {"x": x, "mask": mask}, batch=2)


class _SpeechPixelEncoder(torch.nn.Module):
    """The seventh wave's constructs in one small model: a speech front end (a strided
    ``Conv1d`` with a per-channel GroupNorm over time, which ONNX spells
    InstanceNormalization and TVM decomposes with ``variance``; a grouped, padded positional
    ``Conv1d``), ImageGPT's RMS-style norm written out, and GPT-2's causal ``where`` summed
    with the padding mask ``(1 - float(mask)) * min``."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv1d(1, 16, 10, stride=5, bias=False)
        self.gn = torch.nn.GroupNorm(16, 16)
        self.pos = torch.nn.Conv1d(16, 16, 5, padding=2, groups=4)
        self.w = torch.nn.Parameter(1 + 0.1 * torch.randn(16))
        self.qkv, self.o = torch.nn.Linear(16, 48), torch.nn.Linear(16, 16)

    def forward(self, wave, mask):
        h = torch.nn.functional.gelu(self.gn(self.conv(wave[:, None])))
        h = (h + torch.nn.functional.gelu(self.pos(h))).transpose(1, 2)  # [B, T, 16]
        n = self.w * (h / torch.sqrt((h * h).mean(-1, keepdim=True) + 1e-5))
        B, T, _ = n.shape
        q, k, v = (t.reshape(B, T, 2, 8).transpose(1, 2) for t in self.qkv(n).split(16, -1))
        low = torch.finfo(torch.float32).min
        causal = torch.where(torch.ones(T, T, dtype=torch.bool).tril(), 0.0, low)
        add = causal + (1.0 - mask[:, None, None, :].to(torch.float32)) * low
        p = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(8) + add, -1)
        return h + self.o((p @ v).transpose(1, 2).reshape(B, T, 16))


def test_speech_front_end_rmsnorm_and_summed_masks_are_integer(tmp_path):
    """conv1d (also grouped and padded) lowers as an integer conv2d over a unit height; an
    instance norm over time is canonicalized to a LayerNorm; RMSNorm has an integer kernel;
    a causal mask summed with a padding mask is one attention mask (before: "op 'nn.conv1d'
    ... has no integer lowering", "op 'nn.rms_norm' ...", "combines a cast integer tensor
    with a non-scalar"). int-prepare is exact in float; the integer graph is bit-exact
    against the NumPy interpreter, close to torch, and integer-only on int-accel."""
    from qcompile.models.tiny import export_onnx

    torch.manual_seed(0)
    m = _SpeechPixelEncoder().eval()
    wave = torch.randn(16, 200)
    mask = torch.ones(16, 39, dtype=torch.int64)
    mask[::3, :5] = 0
    model = qc.load(export_onnx(m, (wave[:4], mask[:4]), tmp_path / "m.onnx", ["wave", "mask"]))
    with torch.no_grad():
        ref = m(wave[:4], mask[:4]).numpy()
    prepared = qc.PassManager(qc.pipeline("int-only")[:2]).run(model.mod)
    text = str(prepared["main"])
    assert "R.nn.conv1d" not in text and "R.variance" not in text and "R.nn.rms_norm" in text
    np.testing.assert_allclose(qc.build(prepared, "llvm").run(wave[:4].numpy(), mask[:4].numpy())[0], ref,
                               rtol=1e-4, atol=1e-4)
    cal = Calibration({"wave": wave.numpy(), "mask": mask.numpy()}, batch=4, progress=False)
    pm = qc.PassManager(qc.pipeline("int-only"), calibration=cal)
    mod = pm.run(model.mod)
    floats = {f.split(": ")[1] for f in pm.records[-1].notes["ops"]["float"]}
    assert not floats & {"nn.conv2d", "nn.layer_norm", "nn.rms_norm", "matmul"}, floats
    xs = (wave[:4].numpy(), mask[:4].numpy())
    got = qc.build(mod, "llvm").run(*xs)[0]
    np.testing.assert_array_equal(got, intref.run(mod, *xs)[0])
    assert _cos(got, ref) >= 0.99
    io = qc.PassManager(qc.pipeline("int-only", int_io=True), calibration=cal).run(model.mod)
    assert qc.build(io, "int-accel").info["verified_integer_only"]


def test_hf_encoder_dynamo_onnx_export_int_only(tmp_path):
    """An HF DistilBERT exported by ``torch.onnx.export(dynamo=True)`` with symbolic batch and
    length: transformers 5 builds the padding mask with integer index tensors concatenated
    and gathered (``gather_nd``), which int-only copies as integer code (before: "produced
    ill-formed IR: DataflowVar ... is not defined", the concat's operands were not
    substituted). Close to onnxruntime on the float export."""
    import onnxruntime as ort

    from qcompile.models import zoo

    path = zoo.export_dynamo("distilbert", tmp_path)
    feeds = [zoo.onnx_feed(path, batch=2, seq=8, seed=100 + i) for i in range(8)]
    cal = Calibration({k: np.concatenate([f[k] for f in feeds]) for k in feeds[0]}, batch=2, progress=False)
    model = qc.load(str(path))
    mod = qc.PassManager(qc.pipeline("int-only"), calibration=cal).run(model.mod)
    feed = zoo.onnx_feed(path, batch=2, seq=8, seed=7)  # the last row left-padded
    got = qc.build(mod, "llvm").run(*[feed[s.name] for s in model.inputs])[0]
    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    assert _cos(got, ref) >= 0.99


def test_pool1d_gather_and_activation_products_are_integer():
    """SEW's ``avg_pool1d`` (an integer 2-D pool over a unit height), DeBERTa's / SEW-D's
    ``torch.gather`` of relative-position scores (``gather_elements``: data movement) and a
    product of two activations outside an attention (int8 x int8 -> int32 at ``s_a s_b``;
    before: "multiplies two activations outside attention"): integer, bit-exact against the
    NumPy interpreter, close to float."""
    class Scores(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(8, 8), torch.nn.Linear(8, 8)
            self.register_buffer("idx", torch.tensor([[2, 1, 0], [0, 2, 1], [1, 0, 2]]))

        def forward(self, x):  # [N, 6, 8]
            p = torch.nn.functional.avg_pool1d(x.transpose(1, 2), 2, 2).transpose(1, 2)  # [N, 3, 8]
            s = self.a(p) @ self.b(p).transpose(1, 2)                                    # [N, 3, 3]
            return torch.gather(s, -1, self.idx.expand(x.shape[0], 3, 3)).flatten(1)

    torch.manual_seed(0)
    m = Scores().eval()
    x = torch.randn(16, 6, 8)
    mod, _, _, floats, _ = _int_only_of(m, x)
    ops = script(mod)
    assert "R.nn.avg_pool1d" not in ops and "R.gather_elements" in ops
    assert re.search(r"R\.matmul\(lv\w*, lv\w*, out_dtype=\"int32\"\)", ops)
    assert not any(f.startswith(("matmul", "gather", "nn.avg")) for f in floats)
    xs = x[:4].numpy()
    got = _llvm_bit_exact(mod, xs)
    assert _cos(got, m(x[:4]).detach().numpy()) >= 0.99


@pytest.mark.slow
def test_a_mask_cut_to_the_length_moves_as_a_mask(monkeypatch):
    """BART's decoder slices its causal mask (a ``where(keep, 0, -inf)``) to the sequence
    length before adding it to the scores: a mask moves through data movement as a mask
    (before: "cannot move 'Mask'"). With every dim fixed (its symbolic batch is a zoo gap)
    int-only passes against onnxruntime."""
    from qcompile.models import zoo

    fixed = {k: (2, 8) for k in ("input_ids", "attention_mask", "decoder_input_ids")}
    monkeypatch.setitem(zoo.FIXED_SHAPES, ("bart", "int-only"), lambda a: fixed)
    r = zoo.check(zoo.ZOO["bart"].onnx, "int-only", "encoder")
    assert r["status"] == "pass" and r["cosine"] >= 0.999, r


def test_attention_with_an_activation_bias_is_integer():
    """Scores plus a bias computed from the activations (DeBERTa-style position scores, a
    gated relative bias; before: "adds a float bias that is neither a 0/-inf mask nor a
    constant"): the bias is requantized to the log-domain scale of the scores and added
    before Shiftmax. Bit-exact against the NumPy interpreter, close to float."""
    H, N, D = 2, 6, 8

    class BiasedAttention(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = torch.nn.Linear(16, 3 * H * D)
            self.pos = torch.nn.Linear(16, H * N)
            self.o = torch.nn.Linear(H * D, 16)

        def forward(self, x):  # [B, N, 16]
            B = x.shape[0]
            q, k, v = self.qkv(x).reshape(B, N, 3, H, D).permute(2, 0, 3, 1, 4)
            bias = self.pos(x).reshape(B, N, H, N).permute(0, 2, 1, 3)       # [B, H, N, N], from x
            p = torch.softmax(q @ k.transpose(-1, -2) / D ** 0.5 + bias, dim=-1)
            return self.o((p @ v).transpose(1, 2).reshape(B, N, H * D))

    torch.manual_seed(0)
    m = BiasedAttention().eval()
    x = torch.randn(16, N, 16)
    mod, _, _, floats, notes = _int_only_of(m, x)
    assert notes["shiftmax"] and not any(f.startswith(("nn.softmax", "matmul")) for f in floats)
    xs = x[:4].numpy()
    got = _llvm_bit_exact(mod, xs)
    assert _cos(got, m(x[:4]).detach().numpy()) >= 0.99


def test_attention_with_a_constant_bias_and_no_mask_keeps_the_bias():
    """A constant bias on the scores with no mask beside it (BEiT's and LeViT's relative
    position biases, Swin's unshifted windows) was added to the scores and then not used:
    Shiftmax read the scores without it. Here a bias large enough to matter: close to float
    only with the bias applied."""
    H, N, D = 2, 6, 8

    class RelBias(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = torch.nn.Linear(16, 3 * H * D)
            self.rel = torch.nn.Parameter(2.0 * torch.randn(H, N, N))
            self.o = torch.nn.Linear(H * D, 16)

        def forward(self, x):
            B = x.shape[0]
            q, k, v = self.qkv(x).reshape(B, N, 3, H, D).permute(2, 0, 3, 1, 4)
            p = torch.softmax(q @ k.transpose(-1, -2) / D ** 0.5 + self.rel, dim=-1)
            return self.o((p @ v).transpose(1, 2).reshape(B, N, H * D))

    torch.manual_seed(0)
    m = RelBias().eval()
    x = torch.randn(16, N, 16)
    mod, _, _, _, notes = _int_only_of(m, x)
    assert notes["shiftmax"]
    xs = x[:4].numpy()
    got = _llvm_bit_exact(mod, xs)
    assert _cos(got, m(x[:4]).detach().numpy()) >= 0.995


@pytest.mark.slow
def test_hf_canine_masks_stay_integer(tmp_path):
    """CANINE (held out: no Optimum export) through torch.export: its 3-D mask is the 2-D
    mask cast to float times a tensor of ones (before: "combines a cast integer tensor with
    a non-scalar"), and the mask max-pooled to the downsampled length is cast back to bool
    (before: "astype ... of a 'Lin' value"). int-only runs, close to torch."""
    transformers = pytest.importorskip("transformers")
    cfg = transformers.CanineConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                    num_attention_heads=4, max_position_embeddings=128, downsampling_rate=2,
                                    num_hash_buckets=64, num_hash_functions=2, local_transformer_stride=4)
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    hf = transformers.CanineModel(cfg).eval()

    class Hidden(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = hf

        def forward(self, ids, mask):
            return self.m(input_ids=ids, attention_mask=mask)[0]

    mask = torch.ones(2, 6, dtype=torch.int64)
    mask[1, :2] = 0
    ex = (torch.randint(1, 256, (2, 6), generator=torch.Generator().manual_seed(7)), mask)
    m = Hidden().eval()
    with torch.no_grad():
        ref = m(*ex).numpy()
    model = qc.load(m, example_inputs=ex)
    np.savez(tmp_path / "c.npz", **{s.name: np.concatenate([x.numpy()] * 8) for s, x in zip(model.inputs, ex)})
    mod = qc.PassManager(qc.pipeline("int-only"), calibration=qc.Calibration(str(tmp_path / "c.npz"), batch=2,
                                                                               progress=False)).run(model.mod)
    got = qc.build(mod, "llvm").run(*[x.numpy() for x in ex])[0]
    cos = float((got * ref).sum() / np.sqrt((got * got).sum() * (ref * ref).sum()))
    assert cos > 0.999, cos


def test_bilinear_and_nearest_upsampling_are_integer():
    """GLPN's and ViTPose's decoders upsample feature maps with ``F.interpolate`` (bilinear,
    half-pixel, by 2; nearest by 2): a fixed linear map per axis whose weights are quarters,
    lowered as two integer matmuls into int32 at scale ``s / 16`` (before: "op
    'image.resize2d' ... has no integer lowering"). The weight matrices match TOPI's float
    resize on a basis; the integer graph is bit-exact against the NumPy interpreter on llvm
    and close to float."""
    from qcompile.passes.int_only import intops

    class Up(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):  # [N, 4, 5, 6]
            y = torch.nn.functional.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            z = torch.nn.functional.interpolate(self.conv(x), scale_factor=2, mode="nearest")
            return (y + z).flatten(1)

    # the weights, against TVM's own float resize of each basis vector
    import tvm
    from tvm import relax

    for method, mode, rounding, alpha, exclude, n_out in (
            ("linear", "half_pixel", "", -0.5, 0, 10), ("linear", "align_corners", "", -0.5, 0, 10),
            ("nearest_neighbor", "asymmetric", "floor", -0.5, 0, 10),
            ("nearest_neighbor", "half_pixel", "round", -0.5, 0, 10),
            # bicubic: torch's (alpha -0.75, CrossViT 240 -> 224), ONNX's default -0.5, excluded taps
            ("cubic", "half_pixel", "", -0.75, 0, 4), ("cubic", "half_pixel", "", -0.75, 0, 10),
            ("cubic", "align_corners", "", -0.5, 1, 7), ("cubic", "asymmetric", "", -0.5, 1, 3)):
        bb = relax.BlockBuilder()
        v = relax.Var("v", relax.TensorType((1, 1, 5, 2), "float32"))
        with bb.function("main", [v]):
            out = bb.emit(relax.op.image.resize2d(v, (n_out, 4), method=method, coordinate_transformation_mode=mode,
                                                  rounding_method=rounding, cubic_alpha=alpha, cubic_exclude=exclude))
            bb.emit_func_output(out)
        art = qc.build(bb.get(), "llvm")
        basis = np.repeat(np.eye(5, dtype=np.float32).reshape(5, 1, 1, 5, 1), 2, axis=-1)  # constant along W
        topi = np.stack([art.run(b)[0][0, 0, :, 0] for b in basis], 1)
        np.testing.assert_allclose(intops.resize_weights(5, n_out, method, mode, rounding, alpha, bool(exclude)),
                                   topi, atol=1e-6, err_msg=f"{method} {mode} {alpha} {exclude} {n_out}")
    assert intops.integer_weights(intops.resize_weights(5, 10, "linear", "half_pixel"))[1] == 4
    assert intops.integer_weights(intops.resize_weights(5, 7, "linear", "half_pixel"))[1] == 7  # sevenths
    assert intops.integer_weights(intops.resize_weights(37, 50, "linear", "half_pixel")) is None  # hundredths

    torch.manual_seed(0)
    m = Up().eval()
    x = torch.randn(16, 4, 5, 6)
    mod, _, _, floats, _ = _int_only_of(m, x)
    assert "R.image.resize2d" not in script(mod) and not [f for f in floats if "resize" in f]
    xs = x[:4].numpy()
    got = _llvm_bit_exact(mod, xs)
    assert _cos(got, m(x[:4]).detach().numpy()) >= 0.995


def test_bicubic_resize_is_integer(tmp_path):
    """A bicubic downscale by an arbitrary ratio, as ONNX ``Resize(mode=cubic)`` (CrossViT
    resizes its second branch's image 240 -> 224; before: "resize at 'lv7' (not a linear or
    nearest NCHW resize ...)"): Keys' cubic weights rounded to 1/256, two integer matmuls,
    bit-exact against the NumPy interpreter and close to float. (Through torch.export the
    resize arrives decomposed into gathers and weighted sums: no resize op to test.)"""
    from qcompile.models.tiny import export_onnx

    class Down(torch.nn.Module):
        def forward(self, x):  # [N, 2, 9, 9] -> [N, 2, 7, 8]
            y = torch.nn.functional.interpolate(x, size=(7, 8), mode="bicubic", align_corners=False)
            return torch.relu(y).flatten(1)

    torch.manual_seed(0)
    m = Down().eval()
    x = torch.randn(16, 2, 9, 9)
    model = qc.load(export_onnx(m, (x[:4],), tmp_path / "down.onnx", ["x"], dynamic_batch=True))
    assert 'method="cubic"' in script(model.mod)
    pm = qc.PassManager(qc.pipeline("int-only"), calibration=Calibration({"x": x.numpy()}, batch=4, progress=False))
    mod = pm.run(model.mod)
    assert "R.image.resize2d" not in script(mod)
    assert not [f for f in pm.records[-1].notes["ops"]["float"] if "resize" in f]  # (float: the I/O quantization)
    got = _llvm_bit_exact(mod, x[:4].numpy())
    assert _cos(got, m(x[:4]).detach().numpy()) >= 0.995


def test_reflect_and_replicate_padding_move_as_data(tmp_path):
    """Swin2SR reflect-pads its image to a multiple of the window (before: "op 'call_tir' ...
    has no integer lowering"): an ONNX Pad in reflect mode by constant amounts is Relax's
    ``nn.pad``, and int-only passes the integer tensor through with its scale, as for
    replicate padding: bit-exact against the NumPy interpreter, close to float."""
    from qcompile.models.tiny import export_onnx

    class Pad(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3)

        def forward(self, x):  # [N, 3, 5, 6]
            y = torch.nn.functional.pad(x, (1, 2, 2, 1), mode="reflect")
            z = torch.nn.functional.pad(self.conv(y), (1, 1, 1, 1), mode="replicate")
            return z.flatten(1)

    torch.manual_seed(0)
    m = Pad().eval()
    x = torch.randn(16, 3, 5, 6)
    model = qc.load(export_onnx(m, (x[:4],), tmp_path / "pad.onnx", ["x"], dynamic_batch=True))
    assert 'pad_mode="reflect"' in script(model.mod) and 'pad_mode="replicate"' in script(model.mod)
    np.testing.assert_allclose(qc.build(model.mod, "llvm").run(x[:4].numpy())[0], m(x[:4]).detach().numpy(),
                               rtol=1e-5, atol=1e-5)  # the float import is the model
    pm = qc.PassManager(qc.pipeline("int-only"), calibration=Calibration({"x": x.numpy()}, batch=4, progress=False))
    mod = pm.run(model.mod)
    assert not [f for f in pm.records[-1].notes["ops"]["float"] if "pad" in f]
    xs = x[:4].numpy()
    got = _llvm_bit_exact(mod, xs)
    assert _cos(got, m(x[:4]).detach().numpy()) >= 0.995


def test_hard_assignment_by_argmax_is_integer(tmp_path):
    """GroupViT's hard group assignment: ``softmax`` over the groups, ``argmax``, a one-hot by
    ``scatter`` and the straight-through ``hard - soft.detach() + soft``, normalized by a sum
    over the tokens (before: "op 'argmax' ... has no integer lowering"). Canonicalization drops
    the estimator (it is ``hard`` at inference) and takes the argmax of the logits; int-only
    takes it on the integer scores and scatters the one-hot as data movement. The canonical
    float graph equals torch; int-only is bit-exact against the NumPy interpreter and close to
    float. (The group tokens' projection folds to a constant: ``C @ k(x)`` with the constant on
    the left is an int8 x int8 matmul too.)"""
    class HardAssign(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.q, self.k, self.v, self.out = (torch.nn.Linear(8, 8) for _ in range(4))
            self.groups = torch.nn.Parameter(torch.randn(1, 4, 8))

        def assign(self, x):
            s = self.q(self.groups.expand(x.shape[0], -1, -1)) @ self.k(x).transpose(1, 2) * 0.35
            soft = s.softmax(dim=-2)
            hard = torch.zeros_like(soft).scatter_(-2, soft.argmax(dim=-2, keepdim=True), 1.0)
            return hard - soft.detach() + soft

        def forward(self, x):
            a = self.assign(x)
            a = a / (a.sum(-1, keepdim=True) + 1.0)
            return self.out(a @ self.v(x))

    torch.manual_seed(0)
    m, x = HardAssign().eval(), torch.randn(16, 6, 8)
    path = tmp_path / "assign.onnx"
    _export_onnx(m, x[:4], path, dynamic_batch=False)
    canon = qc.canonicalize(qc.load(str(path)).mod)
    text = canon.script(show_meta=False)
    assert "R.subtract" not in text and "R.nn.softmax" not in text  # the estimator and its softmax are gone
    xs = x[:4].numpy()
    with torch.no_grad():
        np.testing.assert_allclose(qc.build(canon, "llvm").run(xs)[0], m(x[:4]).numpy(), rtol=1e-4, atol=1e-5)
    mod, notes = _calibrated(qc.load(str(path)), {"x": x.numpy()}, batch=4)
    floats = [f.split(": ")[1] for f in notes["ops"]["float"]]
    assert "argmax" not in floats and "scatter_elements" not in floats
    got = _llvm_bit_exact(mod, xs)
    with torch.no_grad():
        assert _cos(got, m(x[:4]).numpy()) >= 0.98


def test_causal_mask_of_a_broadcast_constant_is_a_mask(tmp_path):
    """CLIP's text tower: the causal mask is ``where(j <= i, 0, full((S, S), min))``, the
    fill a constant broadcast to the scores' shape, added to the scores (reshaped around it)
    together with the padding mask. Both are one keep mask (before: "float where ... is not an
    attention mask"). Bit-exact against the NumPy interpreter, close to float, padded rows
    included."""
    class CausalText(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv, self.out = torch.nn.Linear(8, 24), torch.nn.Linear(8, 8)

        def forward(self, x, mask):
            b, s, _ = x.shape
            q, k, v = self.qkv(x).view(b, s, 3, 2, 4).permute(2, 0, 3, 1, 4)
            causal = torch.full((s, s), torch.finfo(torch.float32).min)  # transformers' CLIP, GroupViT
            i = torch.arange(s)
            causal = causal.masked_fill(i < (i + 1).view(-1, 1), 0.0)
            pad = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
            w = (q @ k.transpose(-1, -2) * 0.5 + causal).view(b * 2, s, s).view(b, 2, s, s) + pad
            y = (w.softmax(-1) @ v).transpose(1, 2).reshape(b, s, 8)
            return self.out(y)

    torch.manual_seed(0)
    m = CausalText().eval()
    x, mask = torch.randn(16, 6, 8), torch.ones(16, 6, dtype=torch.int64)
    mask[::3, 4:] = 0
    path = tmp_path / "causal.onnx"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (x[:4], mask[:4]), str(path), input_names=["x", "mask"], output_names=["y"],
                          dynamo=False, opset_version=17, dynamic_axes={"x": {1: "seq"}, "mask": {1: "seq"}})
    mod, notes = _calibrated(qc.load(str(path)), {"x": x.numpy(), "mask": mask.numpy()}, batch=4)
    floats = [f.split(": ")[1] for f in notes["ops"]["float"]]
    assert "where" not in floats and "nn.softmax" not in floats
    xs, ms = x[:4].numpy(), mask[:4].numpy()
    got = qc.build(mod, "llvm").run(xs, ms)[0]
    np.testing.assert_array_equal(got, intref.run(mod, xs, ms)[0])
    with torch.no_grad():
        assert _cos(got, m(x[:4], mask[:4]).numpy()) >= 0.99


def test_matmul_with_one_constant_matrix_per_batch_index():
    """ViTDet's decomposed relative positions: ``einsum("bhwc,hkc->bhwk", q, table)``, a
    constant ``[H, K, C]`` table, one matrix per row ``h`` (torch.export writes a ``bmm`` with a
    3-D constant; before: "matmul ... multiplies two activations outside attention"). int8
    weights with one scale per output column over every matrix; bit-exact against the NumPy
    interpreter, close to float."""
    class RelPos(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.q, self.out = torch.nn.Linear(8, 8), torch.nn.Linear(4, 4)
            self.table = torch.nn.Parameter(torch.randn(3, 4, 8))

        def forward(self, x):  # [B, 3, 5, 8]
            return self.out(torch.einsum("bhwc,hkc->bhwk", self.q(x), self.table))

    torch.manual_seed(0)
    m, x = RelPos().eval(), torch.randn(16, 3, 5, 8)
    mod, cal, model, floats, _ = _int_only_of(m, x)
    assert "matmul" not in floats
    xs = x[:4].numpy()
    got = _llvm_bit_exact(mod, xs)
    with torch.no_grad():
        assert _cos(got, m(x[:4]).numpy()) >= 0.99


def test_elementwise_functions_as_tables_and_a_masked_fill(tmp_path):
    """OWL-ViT's class head: ``elu(x) + 1`` (ELU imported with an ``exp``), a BERT pooler's
    ``tanh``, and logits of padded queries filled with the lowest float by a mask computed
    from the token ids (before: "op 'exp' ... has no integer lowering", then "float where
    ... is not an attention mask"). Each function is a 256-entry int32 table over the
    input's int8 codes (a ``take``), the fill the lowest value the activation holds. Bit-exact
    against the NumPy interpreter, close to torch where nothing is masked, and the masked
    entries are the lowest values of their rows."""
    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(8, 8), torch.nn.Linear(8, 8)

        def forward(self, x, ids):
            y = torch.nn.functional.elu(self.a(x)) + 1.0
            z = torch.tanh(self.b(y)) * y
            return torch.where((ids > 0)[..., None], z, torch.finfo(z.dtype).min)

    torch.manual_seed(0)
    m = Head().eval()
    x, ids = torch.randn(16, 6, 8), torch.randint(1, 50, (16, 6))
    ids[3, 2] = 0
    path = tmp_path / "head.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (x[:4], ids[:4]), str(path), input_names=["x", "ids"], output_names=["y"],
                          dynamo=False, opset_version=17)
    mod, notes = _calibrated(qc.load(str(path)), {"x": x.numpy(), "ids": ids.numpy()}, batch=4)
    floats = {f.split(": ")[1] for f in notes["ops"]["float"]}  # the model I/O's (de)quantization only
    assert not floats & {"exp", "tanh", "where", "subtract", "nn.relu"}, floats
    xs, ids4 = x[:4].numpy(), ids[:4].numpy()
    got = qc.build(mod, "llvm").run(xs, ids4)[0]
    np.testing.assert_array_equal(got, intref.run(mod, xs, ids4)[0])
    with torch.no_grad():
        ref = m(x[:4], ids[:4]).numpy()
    keep = ids4 > 0
    assert _cos(got[keep], ref[keep]) >= 0.99
    assert (got[3, 2] <= got[keep].min()).all()


def test_scalar_gain_after_a_norm_folds_into_the_linear(tmp_path):
    """SwiftFormer's additive attention, as torch.onnx (dynamo) writes it: ``F.normalize(q)``
    (an RMSNorm times the scalar ``1/sqrt(d)``) into a ``[d, 1]`` linear. The scalar gain
    migrates into the weight as a per-channel one does. Before: ``pass 'int-only' failed:
    ValueError: matmul ...`` (the scalar's one-entry shift multiplied the weight's d rows)."""
    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(16, 16)
            self.w_g = torch.nn.Parameter(torch.randn(16, 1))

        def forward(self, x):
            q = torch.nn.functional.normalize(self.a(x), dim=-1)
            w = (q @ self.w_g) * 0.25
            return torch.sum(w.softmax(dim=1) * q, dim=1)

    torch.manual_seed(0)
    m = Block().eval()
    x = torch.randn(16, 5, 16)
    model = qc.load(_export(m, (x,), tmp_path / "b.onnx", ["x"], dynamo=True))
    mod = qc.PassManager(qc.pipeline("int-only"), calibration=Calibration({"x": x.numpy()}, progress=False)).run(model.mod)
    got = qc.build(mod, "llvm").run(x.numpy())[0]
    ref = m(x).detach().numpy()
    assert _cos(got, ref) > 0.999


def test_stack_is_integer_data_movement():
    """``stack`` (TVM's torch frontends emit it; its ONNX importer stacks a Max/Sum of several
    inputs) passes integers through at one scale, as ``concat`` does. Before: ``op 'stack'
    ... has no integer lowering``."""
    from tvm.relax import op as O

    rng = np.random.default_rng(0)
    w1, w2, w3 = (rng.standard_normal(s).astype(np.float32) for s in ((16, 16), (16, 16), (16, 8)))
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((4, 5, 16), "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            a = bb.emit(O.matmul(x, relax.const(w1)))
            b = bb.emit(O.matmul(x, relax.const(w2)))
            s = bb.emit(O.stack([a, b], axis=1))
            out = bb.emit_output(O.matmul(s, relax.const(w3)))
        bb.emit_func_output(out)
    xv = rng.standard_normal((4, 5, 16)).astype(np.float32)
    mod = qc.PassManager(qc.pipeline("int-only"), calibration=Calibration({"x": xv}, progress=False)).run(bb.get())
    ops = {b.value.op.name for blk in mod["main"].body.blocks for b in blk.bindings
           if isinstance(b.value, relax.Call) and hasattr(b.value.op, "name")}
    assert "relax.stack" in ops
    got = qc.build(mod, "llvm").run(xv)[0]
    ref = np.stack([xv @ w1, xv @ w2], axis=1) @ w3
    assert got.shape == ref.shape == (4, 2, 5, 8) and _cos(got, ref) > 0.999


class _SegmentScores(torch.nn.Module):
    """Transformer-XL / Funnel scores: content + position + a segment bias selected by token
    type, scaled, minus ``big * (1 - mask)``."""

    def __init__(self):
        super().__init__()
        self.q, self.k, self.v, self.o, self.pos = (torch.nn.Linear(16, 16) for _ in range(5))
        self.seg = torch.nn.Linear(16, 2)
        self.p = torch.nn.Parameter(torch.randn(7, 16))

    def forward(self, x, mask, tt):
        B, T, _ = x.shape
        q, k, v = (f(x).view(B, T, 2, 8).transpose(1, 2) for f in (self.q, self.k, self.v))
        pk = self.pos(self.p).view(T, 2, 8).transpose(0, 1)
        sg = self.seg(x).transpose(1, 2).unsqueeze(-1)
        same = (tt[:, :, None] == tt[:, None, :]).unsqueeze(1)
        segment = torch.where(same, sg[:, 1:2].expand(B, 2, T, T), sg[:, 0:1].expand(B, 2, T, T))
        s = (q @ k.transpose(-1, -2) + q @ pk.transpose(-1, -2) + segment) * 0.35 \
            - 1e6 * (1.0 - mask[:, None, None, :].float())
        return self.o((torch.softmax(s, -1) @ v).transpose(1, 2).reshape(B, T, 16))


@pytest.mark.parametrize("dynamo", [False, True])
def test_summed_scores_with_a_selected_segment_bias(tmp_path, dynamo):
    """Scores summed from several terms with the product not first, a bias selected between two
    activations by a ``where``, a mask subtracted: canonicalization puts the product first
    (the attention forms; the float graph stays equal to torch) and int-only lowers the
    selection (both sides at one scale) and the subtracted mask (before: no attention, then
    "float where ... is not an attention mask")."""
    from qcompile.ir import op_histogram

    torch.manual_seed(0)
    m = _SegmentScores().eval()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 7, 16)).astype(np.float32)
    mask = np.ones((16, 7), np.int64)
    mask[::2, 5:] = 0
    tt = np.zeros((16, 7), np.int64)
    tt[:, 3:] = 1
    ex = tuple(torch.from_numpy(a[:2]) for a in (x, mask, tt))
    _export(m, ex, tmp_path / "s.onnx", ["x", "mask", "tt"], dynamo=dynamo)
    model = qc.load(tmp_path / "s.onnx", input_shapes={"x": (2, 7, 16), "mask": (2, 7), "tt": (2, 7)})
    canon = qc.canonicalize(model.mod)
    assert op_histogram(canon).get("composite:qcompile.attention") == 1
    ref = m(*ex).detach().numpy()
    np.testing.assert_allclose(qc.build(canon, "llvm").run(x[:2], mask[:2], tt[:2])[0], ref, rtol=1e-4, atol=1e-5)
    mod, notes = _calibrated(model, {"x": x, "mask": mask, "tt": tt}, batch=2)
    assert notes["float_islands"] == []
    assert _cos(qc.build(mod, "llvm").run(x[:2], mask[:2], tt[:2])[0], ref) > 0.999


def test_maximum_of_two_activations_is_integer(tmp_path):
    """``torch.maximum`` of two branches (ONNX ``Max``): both at the output's int16 scale, the
    maximum of the codes. Before: "op 'maximum' ... has no integer lowering"."""
    class Two(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.o = torch.nn.Linear(16, 16), torch.nn.Linear(16, 16), torch.nn.Linear(16, 8)

        def forward(self, x):
            return self.o(torch.maximum(self.a(x), self.b(x)) + torch.minimum(self.a(x), torch.tensor(0.1)))

    torch.manual_seed(0)
    m = Two().eval()
    x = torch.randn(16, 5, 16)
    mod, _ = _calibrated(qc.load(_export(m, (x,), tmp_path / "m.onnx", ["x"], dynamo=False)), {"x": x.numpy()},
                         batch=16)
    assert _cos(qc.build(mod, "llvm").run(x.numpy())[0], m(x).detach().numpy()) > 0.999


def test_gather_nd_is_integer_data_movement(tmp_path):
    """ONNX ``GatherND`` (UperNet's pooling and resizing select whole rows by index tuples)
    passes the integer codes through with their scale. Before: "op 'gather_nd' ... has no
    integer lowering"."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1, w2 = rng.standard_normal((8, 8)).astype(np.float32), rng.standard_normal((8, 4)).astype(np.float32)
    idx = np.array([[0, 2], [1, 0], [1, 3], [0, 1]], np.int64)  # (batch, row) pairs
    inits = [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2"), numpy_helper.from_array(idx, "i")]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("GatherND", ["h", "i"], ["g"]),
             helper.make_node("MatMul", ["g", "w2"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 4])], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "g.onnx"))
    x = rng.standard_normal((32, 5, 8)).astype(np.float32)
    mod, notes = _calibrated(qc.load(tmp_path / "g.onnx"), {"x": x}, batch=2)
    assert notes["float_islands"] == []
    ref = (x[:2] @ w1)[idx[:, 0], idx[:, 1]] @ w2
    assert _cos(qc.build(mod, "llvm").run(x[:2])[0], ref) > 0.999


def test_prelu_is_relu_minus_a_scaled_negative_part(tmp_path):
    """PReLU (DAB-DETR's anchor head; a slope per channel after a convolution, one slope
    after a linear layer): canonicalization writes ``relu(x) - a relu(-x)``, exact in float,
    which int-only lowers (before: "op 'nn.prelu' ... has no integer lowering"). The canonical
    float graph equals torch; int-only is bit-exact against the NumPy interpreter, close to
    float."""
    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.act = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.PReLU(8)
            self.lin, self.act2 = torch.nn.Linear(8 * 8 * 8, 16), torch.nn.PReLU()
            self.out = torch.nn.Linear(16, 4)

        def forward(self, x):
            return self.out(self.act2(self.lin(self.act(self.conv(x)).flatten(1))))

    torch.manual_seed(0)
    m = Head().eval()
    with torch.no_grad():
        m.act.weight.uniform_(-0.5, 0.5)  # negative slopes too
        m.act2.weight.fill_(0.2)
    x = torch.randn(16, 3, 8, 8)
    path = tmp_path / "prelu.onnx"
    _export_onnx(m, x[:4], path, dynamic_batch=False)
    canon = qc.canonicalize(qc.load(str(path)).mod)
    assert "prelu" not in canon.script(show_meta=False)
    xs = x[:4].numpy()
    with torch.no_grad():
        want = m(x[:4]).numpy()
    np.testing.assert_allclose(qc.build(canon, "llvm").run(xs)[0], want, rtol=1e-5, atol=1e-6)
    mod, notes = _calibrated(qc.load(str(path)), {"x": x.numpy()}, batch=4)
    assert not any("prelu" in f for f in notes["ops"]["float"])
    assert _cos(_llvm_bit_exact(mod, xs), want) >= 0.99
