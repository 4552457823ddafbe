"""``w8a8``: linear layers executed as int8 x int8 -> int32 matmuls. The rewritten layer
bit-exact against its NumPy reference (packed AVX2 kernel and TVM's plain lowering), the
same result as ``qdq-sim``'s simulation to float round-off, and a rotated tiny decoder
through the whole pipeline against its float model."""
import numpy as np
import pytest
from tvm import relax
from tvm.relax import op as O

import qcompile as qc
from qcompile.backends import llvm, x86_packed
from qcompile.errors import QCompileError
from qcompile.passes.qdq_sim import qdq_act_ref, qdq_weight
from qcompile.passes.w8a8 import W8A8, linear_ref, quantize_weight


def _two_linears(shape, w1, b1, w2):
    """``gelu(x @ w1 + b1) @ w2 * 1``: a hidden layer and a second linear that is not a head
    (its result is scaled before it is returned), both reading float activations."""
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(shape, "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            h = bb.emit(O.add(O.matmul(x, relax.const(w1)), relax.const(b1)))
            h = bb.emit(O.nn.gelu(h))
            y = bb.emit(O.matmul(h, relax.const(w2)))
            out = bb.emit_output(O.multiply(y, relax.const(1.0, "float32")))
        bb.emit_func_output(out)
    return bb.get()


def _gelu(x):
    from scipy.special import erf

    return (0.5 * x * (1 + erf(x / np.sqrt(2)))).astype(np.float32)


@pytest.mark.parametrize("shape", [(1, 1, 40), (2, 7, 40)])
@pytest.mark.parametrize("packed", [True, False])
def test_layer_bit_exact_against_numpy(shape, packed, monkeypatch):
    rng = np.random.default_rng(sum(shape))
    w1 = rng.standard_normal((40, 33)).astype(np.float32)
    b1 = rng.standard_normal(33).astype(np.float32)
    w2 = rng.standard_normal((33, 24)).astype(np.float32)
    x = (3 * rng.standard_normal(shape)).astype(np.float32)
    x[..., 5] = 40.0  # an outlier channel: the per-token scale follows it
    if not packed:  # TVM's own lowering of the int8 matmul instead of the vpmaddwd kernel
        monkeypatch.setattr(x86_packed, "supported", lambda target: False)
    pm = qc.PassManager(qc.pipeline("w8a8"))
    mod = pm.run(_two_linears(shape, w1, b1, w2))
    notes = pm.records[-1].notes
    assert notes["linears_int8"] == 2 and notes["activation_quantizations"] == 2
    art = qc.build(mod, "llvm")
    if packed and x86_packed.supported(llvm.make_target()):
        assert art.info["int8_matmuls_pmaddwd"] == 2
    got = art.run(x)[0]
    q1, s1 = quantize_weight(w1, 8)
    q2, s2 = quantize_weight(w2, 8)
    h = linear_ref(x, q1, s1) + b1
    # the layer's own NumPy reference is exact; GELU is TVM's erf, so the second layer's
    # input is compared through its own quantizer: the codes agree where GELU agrees
    want = linear_ref(_gelu(h), q2, s2)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)
    # bit-exact where the graph is only the rewritten layer
    one = _one_linear(shape, w1)
    out = qc.build(qc.PassManager(qc.pipeline("w8a8", head=True)).run(one), "llvm").run(x)[0]
    np.testing.assert_array_equal(out, linear_ref(x, q1, s1))


def _one_linear(shape, w):
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(shape, "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            out = bb.emit_output(O.matmul(x, relax.const(w)))
        bb.emit_func_output(out)
    return bb.get()


def test_weight_levels_are_qdq_sims():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((64, 9)).astype(np.float32)
    w[:, 3] = 0  # an all-zero column keeps scale 1
    for bits in (4, 8):
        q, s = quantize_weight(w, bits)
        assert q.dtype == np.int8 and np.abs(q).max() <= 2 ** (bits - 1) - 1
        np.testing.assert_allclose(q * s, qdq_weight(w.astype(np.float64), bits), rtol=1e-6, atol=1e-7)
    x = rng.standard_normal((3, 64)).astype(np.float32)
    q, s = quantize_weight(w, 8)
    np.testing.assert_allclose(linear_ref(x, q, s), qdq_act_ref(x, 8) @ (q * s), rtol=1e-4, atol=1e-4)


def test_same_as_qdq_sim_to_round_off():
    rng = np.random.default_rng(2)
    w1 = rng.standard_normal((40, 33)).astype(np.float32)
    b1 = rng.standard_normal(33).astype(np.float32)
    w2 = rng.standard_normal((33, 24)).astype(np.float32)
    x = rng.standard_normal((3, 5, 40)).astype(np.float32)
    mod = _two_linears(x.shape, w1, b1, w2)
    real = qc.build(qc.PassManager(qc.pipeline("w8a8")).run(mod), "llvm").run(x)[0]
    sim = qc.build(qc.PassManager(qc.pipeline("qdq-sim")).run(mod), "llvm").run(x)[0]
    flt = qc.build(qc.PassManager(qc.pipeline("none")).run(mod), "llvm").run(x)[0]
    err_real_sim = np.abs(real - sim).max()
    assert err_real_sim < 1e-4 * np.abs(sim).max()
    assert err_real_sim < 0.01 * np.abs(real - flt).max()  # round-off, far below the quantization error


def test_options_and_refusals():
    w = np.eye(64, dtype=np.float32)
    with pytest.raises(QCompileError, match="bit width 9"):
        qc.PassManager([W8A8(w_bits=9)]).run(_one_linear((2, 64), w))
    for spec in ("w8a8+qdq-sim", "int-only+w8a8"):
        with pytest.raises(QCompileError, match="cannot be combined"):
            qc.pipeline(spec)
    # the head (a matmul whose result is the output) stays float unless asked
    pm = qc.PassManager(qc.pipeline("w8a8"))
    pm.run(_one_linear((2, 64), w))
    assert pm.records[-1].notes["linears_int8"] == 0 and pm.records[-1].notes["kept_float_head"] == 1
    # after the cache passes, whatever order is written
    names = [p.name for p in qc.pipeline("w8a8+kv-prerope+rotate")]
    assert names == ["canonicalize", "rotate", "kv-prerope", "w8a8"]


def test_rotated_tiny_decoder(tmp_path):
    from test_rotate import tiny_llama

    model, path = tiny_llama(tmp_path, layers=2, intermediate=80, chunk=4)
    loaded = qc.load(path)
    fl = qc.PassManager(qc.pipeline("none")).run(loaded.mod)
    pm = qc.PassManager(qc.pipeline("rotate+w8a8"))
    q = pm.run(loaded.mod)
    notes = pm.records[-1].notes
    # q, k, v, o, gate, up, down per layer; the tied head stays float
    assert notes["linears_int8"] == 14 and notes["kept_float_head"] == 1
    # one quantization per distinct input: attention input, o input, MLP input, down input
    assert notes["activation_quantizations"] == 8
    from qcompile import lm

    rng = np.random.default_rng(0)
    ids = rng.integers(0, 97, (1, 4)).astype(np.int64)
    mask, pos = lm.step_feed(ids, 0)
    feed = [ids, mask, pos, *lm.empty_cache_for(fl["main"])]
    a = qc.build(fl, "llvm").run(*feed)
    b = qc.build(q, "llvm").run(*feed)
    logits_f, logits_q = a[0].ravel(), b[0].ravel()
    cos = float(logits_f @ logits_q / np.linalg.norm(logits_f) / np.linalg.norm(logits_q))
    assert cos > 0.999, cos
    assert not np.array_equal(logits_f, logits_q)  # it did quantize


def test_llama_block_golden(tmp_path, update_golden):
    from test_golden import GOLDEN, check_golden
    from test_rotate import tiny_llama
    from qcompile.ir import script

    _, path = tiny_llama(tmp_path, layers=1, intermediate=24, chunk=2)
    mod = qc.PassManager(qc.pipeline("w8a8")).run(qc.load(path).mod)
    check_golden(script(mod), GOLDEN / "w8a8_llama_block.py", update_golden)


def test_cuda_int8_matmuls_are_dp4a(tmp_path):
    """The CUDA build generates its int8 matmuls as ``__dp4a`` kernels (compiled by nvcc
    where the toolkit is installed; run against llvm where a GPU is present)."""
    import re
    import shutil

    from qcompile.backends import cuda
    from test_rotate import tiny_llama

    _, path = tiny_llama(tmp_path, layers=1, intermediate=32, chunk=4)
    mod = qc.PassManager(qc.pipeline("rotate+w8a8")).run(qc.load(path).mod)
    art = qc.build(mod, target="cuda")
    kernels = set(re.findall(r"void __launch_bounds__\(\d+\) (\w+)_kernel\(", art.sources["model.cu"]))
    int8 = {k for k in kernels if "matmul" in k} & set(art.info["dp4a_matmuls"])
    assert len(int8) >= 3 and "__dp4a" in art.sources["model.cu"]  # q/k/v, o, gate/up, down shapes
    if shutil.which("nvcc"):
        assert cuda.validate_with_nvcc(art) > 0
    if art.runnable:
        from qcompile import lm

        ids = np.arange(4, dtype=np.int64)[None] % 97
        mask, pos = lm.step_feed(ids, 0)
        feed = [ids, mask, pos, *lm.empty_cache_for(mod["main"])]
        np.testing.assert_allclose(art.run(*feed)[0], qc.build(mod, "llvm").run(*feed)[0], rtol=1e-3, atol=1e-3)
    with pytest.raises(QCompileError, match="int-accel"):
        qc.build(mod, target="int-accel")


def test_error_per_block_like_qdq_sims(tiny_encoder_onnx, tiny_encoder_eval):
    """w8a8 answers the report's per-block probes (its rebuilt graph read at the residual
    adds), and at every block it is as far from the float model as qdq-sim's W8A8."""
    from qcompile.evaluate import compare_layers

    model = qc.load(str(tiny_encoder_onnx))
    data = dict(np.load(tiny_encoder_eval))
    rows = {}
    for spec in ("w8a8", "qdq-sim"):
        pm = qc.PassManager(qc.pipeline(spec), probes=True)
        pm.run(model.mod)
        probe = pm.probe
        assert probe is not None and len(probe.labels) >= 2
        rows[spec] = compare_layers(probe, qc.build(probe.float_mod, "llvm"), qc.build(probe.quant_mod, "llvm"),
                                    model, data, batch=3, progress=False)
    for real, sim in zip(rows["w8a8"], rows["qdq-sim"]):
        assert real["binding"] == sim["binding"] and 0 < real["relative_error"] < 0.05
        assert abs(real["relative_error"] - sim["relative_error"]) < 0.01 * sim["relative_error"] + 1e-6
