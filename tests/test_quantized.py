"""Models that arrive already quantized (onnxruntime's ``quantize_dynamic`` and
``quantize_static`` in QDQ format, the ``model_quantized.onnx`` files users download):
kept as written they compute what onnxruntime computes; lifted to float they are the float
model on the file's dequantized weights, and qcompile's pipelines run on them.

The quantized files are made at test time from the zoo's BERT, ViT and Llama exports by
onnxruntime's own quantizer (seconds), so the test covers the quantizer's spelling, not one
written here."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import qcompile as qc
from qcompile.errors import QCompileError
from qcompile.models import zoo

ort = pytest.importorskip("onnxruntime")

MODELS = ("bert", "vit", "llama")


def _ort_integer_matmul_is_exact() -> bool:
    """Whether onnxruntime's uint8 x int8 ``MatMulInteger`` is exact on this CPU. On x86 without
    VNNI (this AMD EPYC shows AVX2 only) its kernel likely sums byte pairs into saturating int16
    (``vpmaddubsw``), so large codes come out wrong (by 651887 on this probe) and onnxruntime is
    no oracle for the files' own integer matmuls; qcompile's int32 products are exact."""
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("MatMulInteger", ["a", "b"], ["y"])], "g",
                          [helper.make_tensor_value_info("a", TensorProto.UINT8, [4, 64]),
                           helper.make_tensor_value_info("b", TensorProto.INT8, [64, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.INT32, [4, 8])])
    rng = np.random.default_rng(0)
    a = rng.integers(200, 256, (4, 64)).astype(np.uint8)
    b = rng.integers(100, 128, (64, 8)).astype(np.int8)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    y = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"a": a, "b": b})[0]
    return bool(np.array_equal(y.astype(np.int64), a.astype(np.int64) @ b.astype(np.int64)))


ORT_EXACT = _ort_integer_matmul_is_exact()
INEXACT = "onnxruntime's uint8 x int8 integer matmul saturates on this CPU (no VNNI): not an oracle here"


def _feed(name, path, seed=5):
    arch = zoo.ZOO[name]
    kw = {"past": 3} if arch.kind == "decoder" else {"image": zoo._image_hw(arch)} if arch.kind == "vision" else {}
    return zoo.onnx_feed(path, seed=seed, **kw)


class _Quantized(dict):
    """``[(format, model)] -> path``: a zoo model quantized by onnxruntime in one of its
    formats (``zoo.quantize_ort``: dynamic, static QDQ per-channel, static QOperator), made
    on first use."""

    def __init__(self, out):
        super().__init__()
        self.out = out

    def __missing__(self, key):
        fmt, name = key
        self[key] = zoo.quantize_ort(name, fmt, self.out)
        return self[key]


@pytest.fixture(scope="module")
def quantized(tmp_path_factory):
    return _Quantized(tmp_path_factory.mktemp("quantized"))


def _run(path, feed, quantized_mode, pipeline="none"):
    model = qc.load(str(path), quantized=quantized_mode)
    art = qc.build(qc.PassManager(qc.pipeline(pipeline)).run(model.mod), "llvm")
    got = art.run(*[feed[s.name] for s in model.inputs])
    return model, [np.asarray(g) for g in (got if isinstance(got, (list, tuple)) else [got])]


@pytest.mark.parametrize("fmt,name", [("dynamic", m) for m in MODELS] + [("qdq", "bert"), ("qdq", "vit"),
                                                                        ("qoperator", "bert")])
def test_kept_as_written_computes_what_onnxruntime_computes(quantized, fmt, name):
    if fmt != "qdq" and not ORT_EXACT:  # (QDQ runs as float matmuls of dequantized values)
        pytest.skip(INEXACT)
    path = quantized[fmt, name]
    feed = _feed(name, path)
    so = ort.SessionOptions()
    # onnxruntime's optimizer fuses DQ -> MatMul -> Q into integer kernels that round their
    # outputs their own way (one code apart here and there); unoptimized it computes the graph
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    ref = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]).run(None, feed)
    model, got = _run(path, feed, "keep")
    assert model.meta["quantized"].startswith("quantized model (") and "kept as written" in model.meta["quantized"]
    assert len(got) == len(ref)
    for g, r in zip(got, ref):
        assert g.shape == r.shape
        np.testing.assert_allclose(g, r, rtol=0, atol=1e-5 * max(1.0, float(np.abs(r).max())))
    if name == "vit" and fmt == "dynamic":  # the patch embedding's ConvInteger, which TVM has no converter for
        assert "1 ConvInteger computed exactly in float64" in model.meta["quantized"]


@pytest.mark.parametrize("fmt,name", [(f, m) for f in zoo.ORT_QUANTIZED for m in MODELS]
                         + [("qdq", "opt"), ("qoperator", "gpt2")])
def test_lifted_to_float_is_the_float_model_on_the_stored_weights(quantized, fmt, name, tmp_path):
    """OPT: onnxruntime's static quantizer removed its ReLUs and let the clamp to a grid
    starting at 0 compute them (the lift keeps them as ``Relu``); GPT-2 (QOperator): a split
    of the fused QKV applied to the codes between two quantized ops, and grids starting at 0
    after values the graph proves non-negative (no ``Relu`` there)."""
    path = quantized[fmt, name]
    ref_path = tmp_path / f"{name}.onnx"
    assert zoo.float_with_stored_weights(zoo.FIXTURES / f"{name}.onnx", path, ref_path) >= 8
    feed = _feed(name, path)
    ref = ort.InferenceSession(str(ref_path), providers=["CPUExecutionProvider"]).run(None, feed)
    model, got = _run(path, feed, "float")
    assert "lifted to float" in model.meta["quantized"]
    assert "left as written" not in model.meta["quantized"]
    for g, r in zip(got, ref):
        np.testing.assert_allclose(g, r, rtol=0, atol=1e-5 * max(1.0, float(np.abs(r).max())))
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert ops & {"MatMulInteger", "QuantizeLinear", "QLinearMatMul"}  # the file really was quantized
    if name == "opt":
        assert "2 activation(s) the quantizer removed restored" in model.meta["quantized"]  # fc1's ReLUs
    if name in ("gpt2", "llama", "bert", "vit"):
        assert "restored" not in model.meta["quantized"]


def test_a_degenerate_scale_is_refused_when_kept_and_lifted_away(quantized, tmp_path):
    """onnxruntime's static quantizer calibrates Llama's attention-mask sum (finfo.min) into an
    int8 range: its scale is inf, and onnxruntime and TVM then compute different garbage."""
    path = quantized["qdq", "llama"]
    scales = [numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer if i.name.endswith("_scale")]
    if all(np.isfinite(s).all() for s in scales):
        pytest.skip("this onnxruntime's quantizer wrote no inf scale")
    with pytest.raises(QCompileError, match=r"has scale inf.*--quantized float"):
        qc.load(str(path), quantized="keep")
    assert "quantize-dequantize pair(s) removed" in qc.load(str(path), quantized="float").meta["quantized"]


@pytest.mark.parametrize("fmt,name,pipeline,kind", [
    ("dynamic", "llama", "rotate", "decoder"), ("dynamic", "llama", "kv-prerope", "decoder"),
    ("qdq", "llama", "bfp", "decoder"), ("dynamic", "vit", "int-only", "vision"), ("qdq", "bert", "int-only", "text"),
    ("dynamic", "vit", "rotate", "vision"), ("qoperator", "vit", "int-only", "vision")])
def test_pipelines_on_a_lifted_model(quantized, fmt, name, pipeline, kind, tmp_path):
    """Each pipeline against onnxruntime on the float model with the file's weights (the
    lift's meaning), at the zoo's tolerance for that pipeline."""
    path = quantized[fmt, name]
    ref_path = tmp_path / f"{name}.onnx"
    zoo.float_with_stored_weights(zoo.FIXTURES / f"{name}.onnx", path, ref_path)
    # the zoo's checker looks the architecture up by file stem: the quantized file keeps it
    got = zoo.check(path, pipeline, kind, quantized="float", reference=ref_path)
    assert got["status"] == "pass", got


def test_the_cli_keeps_for_none_and_lifts_for_a_pipeline(quantized, tmp_path):
    from qcompile.driver import compile_model

    path = quantized["dynamic", "llama"]
    rep = compile_model(path, "none", "llvm", tmp_path / "keep", progress=False)
    assert "kept as written" in rep["model"]["quantized"]
    rep = compile_model(path, "rotate", "llvm", tmp_path / "rot", progress=False)
    assert "lifted to float (15 matmul/conv(s) on dequantized weights" in rep["model"]["quantized"]
    assert "lifted to float" in (tmp_path / "rot" / "report.md").read_text()
    with pytest.raises(QCompileError, match="rotate: .*dequantize|not a linear layer"):
        compile_model(path, "rotate", "llvm", tmp_path / "rot2", progress=False, quantized="keep")


def _one_node(tmp_path, node, inputs, inits, out_shape):
    from onnx import TensorProto, helper

    g = helper.make_graph([node], "g", [helper.make_tensor_value_info(k, TensorProto.UINT8, list(v.shape))
                                        for k, v in inputs.items()],
                          [helper.make_tensor_value_info("y", TensorProto.UINT8, out_shape)],
                          [numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.microsoft", 1)])
    m.ir_version = 9
    path = tmp_path / f"{node.op_type}.onnx"
    onnx.save(m, str(path))
    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, inputs)[0]
    _, got = _run(path, inputs, "keep")
    return np.abs(got[0].astype(np.int64) - ref.astype(np.int64))


@pytest.mark.parametrize("op,exact", [("QLinearMatMul", True), ("QLinearAdd", True), ("QLinearMul", False),
                                      ("QLinearSoftmax", True), ("QLinearSigmoid", True), ("QLinearConcat", True),
                                      ("QLinearGlobalAveragePool", True), ("QLinearAveragePool", False),
                                      ("QLinearWhere", True)])
def test_each_qlinear_operator_against_onnxruntimes_kernel(tmp_path, op, exact):
    """Each QOperator-format op as DequantizeLinear -> float op -> QuantizeLinear gives
    onnxruntime's integer kernel's codes: exactly, or (QLinearMul, whose kernel requantizes
    the product of the centred codes with one float multiplier; QLinearAveragePool, which
    sums codes and requantizes the mean) one code apart at a few rounding boundaries."""
    from onnx import helper

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (2, 4, 16, 16)).astype(np.uint8)
    b = rng.integers(0, 256, (2, 4, 16, 16)).astype(np.uint8)
    sc = {"as": np.float32(0.02), "az": np.uint8(128), "bs": np.float32(0.03), "bz": np.uint8(120),
          "ys": np.float32(0.05 if op != "QLinearMatMul" else 0.5), "yz": np.uint8(128),
          "ps": np.float32(1 / 256), "pz": np.uint8(0)}
    ms = {"domain": "com.microsoft"} if op != "QLinearMatMul" else {}
    two = ["a", "as", "az", "b", "bs", "bz", "ys", "yz"]
    node, feeds, shape = {
        "QLinearMatMul": (helper.make_node(op, two, ["y"]), {"a": a, "b": b}, [2, 4, 16, 16]),
        "QLinearAdd": (helper.make_node(op, two, ["y"], **ms), {"a": a, "b": b}, [2, 4, 16, 16]),
        "QLinearMul": (helper.make_node(op, two, ["y"], **ms), {"a": a, "b": b}, [2, 4, 16, 16]),
        "QLinearSoftmax": (helper.make_node(op, ["a", "as", "az", "ps", "pz"], ["y"], axis=-1, opset=18, **ms),
                           {"a": a}, [2, 4, 16, 16]),
        "QLinearSigmoid": (helper.make_node(op, ["a", "as", "az", "ps", "pz"], ["y"], **ms), {"a": a}, [2, 4, 16, 16]),
        "QLinearConcat": (helper.make_node(op, ["ys", "yz", "a", "as", "az", "b", "bs", "bz"], ["y"], axis=1, **ms),
                          {"a": a, "b": b}, [2, 8, 16, 16]),
        "QLinearGlobalAveragePool": (helper.make_node(op, ["a", "as", "az", "ys", "yz"], ["y"], channels_last=0, **ms),
                                     {"a": a}, [2, 4, 1, 1]),
        "QLinearAveragePool": (helper.make_node(op, ["a", "as", "az", "ys", "yz"], ["y"], kernel_shape=[2, 2],
                                                strides=[2, 2], **ms), {"a": a}, [2, 4, 8, 8]),
        "QLinearWhere": (helper.make_node(op, ["c", "a", "as", "az", "b", "bs", "bz", "ys", "yz"], ["y"], **ms),
                         {"a": a, "b": b}, [2, 4, 16, 16]),
    }[op]
    inits = {k: v for k, v in sc.items() if k in node.input}
    if op == "QLinearWhere":
        inits["c"] = rng.random((2, 4, 16, 16)) < 0.5
    diff = _one_node(tmp_path, node, feeds, inits, shape)
    if exact:
        assert diff.max() == 0
    else:
        # QLinearAveragePool: a 2x2 mean of codes often lands on a rounding tie (3 % here)
        assert diff.max() <= 1 and (diff > 0).mean() < (0.05 if op == "QLinearAveragePool" else 0.01)


def test_blocked_int4_weights_in_qdq_form(tmp_path):
    """onnxruntime's 4-bit weight-only quantizer in QDQ form writes int4 weights behind a
    blocked ``DequantizeLinear`` (opset 21 ``block_size``, which TVM 0.27's converter refuses:
    "blocked quantization is not supported yet"): folded to float weights at import."""
    from onnxruntime.quantization import QuantFormat
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    src = onnx.load(str(zoo.FIXTURES / "llama.onnx"))
    cfg = DefaultWeightOnlyQuantConfig(block_size=16, is_symmetric=True, quant_format=QuantFormat.QDQ)
    quantizer = MatMulNBitsQuantizer(src, block_size=16, is_symmetric=True, quant_format=QuantFormat.QDQ,
                                     algo_config=cfg)
    quantizer.process()
    path = tmp_path / "llama.onnx"
    onnx.save(quantizer.model.model, str(path))
    blocked = [n for n in onnx.load(str(path)).graph.node if n.op_type == "DequantizeLinear"
               and any(a.name == "block_size" and a.i == 16 for a in n.attribute)]
    assert blocked
    feed = _feed("llama", path)
    so = ort.SessionOptions()  # optimized, onnxruntime fuses the blocks into MatMulNBits kernels (round-off 1e-3)
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    ref = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]).run(None, feed)
    model, got = _run(path, feed, "keep")
    assert f"{len(blocked)} weight dequantization(s) folded" in model.meta["quantized"]
    for g, r in zip(got, ref):
        np.testing.assert_allclose(g, r, rtol=0, atol=1e-5 * max(1.0, float(np.abs(r).max())))


@pytest.mark.parametrize("name", ["bert", "llama"])
def test_a_dynamic_model_after_onnxruntimes_optimizer(quantized, name, tmp_path):
    """A session at ``ORT_ENABLE_EXTENDED`` saving its optimized graph (what
    ``optimized_model_filepath`` users publish) fuses the dynamic matmuls into
    ``DynamicQuantizeMatMul``/``MatMulIntegerToFloat`` and transposes into ``FusedMatMul``:
    kept, it equals onnxruntime; lifted, the float model on the file's weights."""
    if not ORT_EXACT:
        pytest.skip(INEXACT)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    (tmp_path / "opt").mkdir()
    path = tmp_path / "opt" / f"{name}.onnx"
    so.optimized_model_filepath = str(path)
    ort.InferenceSession(str(quantized["dynamic", name]), so, providers=["CPUExecutionProvider"])
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"DynamicQuantizeMatMul", "MatMulIntegerToFloat"} <= ops
    feed = _feed(name, path)
    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)
    model, got = _run(path, feed, "keep")
    for g, r in zip(got, ref):
        np.testing.assert_allclose(g, r, rtol=0, atol=1e-5 * max(1.0, float(np.abs(r).max())))
    ref_path = tmp_path / f"{name}.float.onnx"
    zoo.float_with_stored_weights(zoo.FIXTURES / f"{name}.onnx", path, ref_path)
    ref = ort.InferenceSession(str(ref_path), providers=["CPUExecutionProvider"]).run(None, feed)
    model, got = _run(path, feed, "float")
    assert "left as written" not in model.meta["quantized"]
    for g, r in zip(got, ref):
        np.testing.assert_allclose(g, r, rtol=0, atol=1e-5 * max(1.0, float(np.abs(r).max())))


@pytest.mark.parametrize("attrs", [{}, {"transA": 1}, {"transB": 1, "alpha": 0.125}, {"transA": 1, "transB": 1}])
def test_fused_matmul_against_onnxruntime(tmp_path, attrs):
    from onnx import TensorProto, helper

    rng = np.random.default_rng(1)
    a_shape = [2, 3, 8, 5] if attrs.get("transA") else [2, 3, 5, 8]
    b_shape = [2, 3, 6, 8] if attrs.get("transB") else [2, 3, 8, 6]
    node = helper.make_node("FusedMatMul", ["a", "b"], ["y"], domain="com.microsoft", **attrs)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("a", TensorProto.FLOAT, a_shape),
                                        helper.make_tensor_value_info("b", TensorProto.FLOAT, b_shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 5, 6])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.microsoft", 1)])
    m.ir_version = 9
    path = tmp_path / "fused.onnx"
    onnx.save(m, str(path))
    feed = {"a": rng.standard_normal(a_shape).astype(np.float32), "b": rng.standard_normal(b_shape).astype(np.float32)}
    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    _, got = _run(path, feed, "keep")
    np.testing.assert_allclose(got[0], ref, rtol=1e-5, atol=1e-5)


def _mlp(tmp_path, act: str):
    """``x @ W1 -> act -> @ W2`` as a float ONNX file, and its QDQ quantization by onnxruntime
    (which removes a ReLU or a Clip(0, 6) after a quantized matmul and lets the grid clamp)."""
    from onnx import TensorProto, helper
    from onnxruntime import quantization as q

    rng = np.random.default_rng(3)
    w1, w2 = rng.standard_normal((16, 32)).astype(np.float32), rng.standard_normal((32, 8)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"])]
    if act == "relu6":
        nodes.append(helper.make_node("Clip", ["h", "lo", "hi"], ["a"]))
    else:
        nodes.append(helper.make_node("Relu", ["h"], ["a"]))
    nodes.append(helper.make_node("MatMul", ["a", "w2"], ["y"]))
    g = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 8])],
                          [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2"),
                           numpy_helper.from_array(np.float32(0), "lo"), numpy_helper.from_array(np.float32(6), "hi")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    float_path, q_path = tmp_path / "mlp.onnx", tmp_path / "mlp_q.onnx"
    onnx.save(m, str(float_path))

    class Reader(q.CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"x": rng.standard_normal((4, 16)).astype(np.float32)} for _ in range(8)])

        def get_next(self):
            return next(self.it, None)

    q.quantize_static(str(float_path), str(q_path), Reader(), quant_format=q.QuantFormat.QDQ,
                      activation_type=q.QuantType.QInt8, weight_type=q.QuantType.QInt8)
    return float_path, q_path


@pytest.mark.parametrize("act", ["relu", "relu6"])
def test_an_activation_the_quantizer_removed_is_restored(tmp_path, act):
    float_path, q_path = _mlp(tmp_path, act)
    assert not {"Relu", "Clip"} & {n.op_type for n in onnx.load(str(q_path)).graph.node}  # removed by the quantizer
    ref_path = tmp_path / "ref.onnx"
    zoo.float_with_stored_weights(float_path, q_path, ref_path)
    feed = {"x": (np.random.default_rng(9).standard_normal((4, 16)) * 3).astype(np.float32)}
    ref = ort.InferenceSession(str(ref_path), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    model, got = _run(q_path, feed, "float")
    assert "1 activation(s) the quantizer removed restored" in model.meta["quantized"]
    np.testing.assert_allclose(got[0], ref, rtol=0, atol=1e-4 * float(np.abs(ref).max()))


def test_a_symmetric_grid_without_zero_point_is_not_a_relu(tmp_path):
    """``QuantizeLinear(x, s, output_dtype=INT8)`` without a zero point (opset 21) has a grid
    symmetric around 0: lifted, the pair is ``x`` itself, not a ReLU."""
    from onnx import TensorProto, helper

    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]),
             helper.make_node("QuantizeLinear", ["h", "s"], ["q"], output_dtype=TensorProto.INT8),
             helper.make_node("DequantizeLinear", ["q", "s"], ["y"])]
    w = np.random.default_rng(4).standard_normal((8, 8)).astype(np.float32)
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8])],
                          [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.float32(0.05), "s")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])
    m.ir_version = 10
    path = tmp_path / "sym.onnx"
    onnx.save(m, str(path))
    x = np.random.default_rng(5).standard_normal((2, 8)).astype(np.float32)
    model, got = _run(path, {"x": x}, "float")
    assert "restored" not in model.meta["quantized"]
    np.testing.assert_allclose(got[0], x @ w, rtol=1e-5, atol=1e-5)
