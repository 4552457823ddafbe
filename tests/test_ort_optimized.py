"""Graphs after onnxruntime's transformer optimizer (``onnxruntime.transformers.optimizer``,
what Optimum's ``--optimize`` and many published ``model_optimized.onnx`` files use): its
fused ``com.microsoft`` operators are decomposed into standard ONNX before import
(``qcompile/frontend/decompose.py``) and every pipeline then sees the graph an exporter
would have written. Compared with onnxruntime running the optimized graph itself. Before:
``unsupported op: node 'EmbedLayerNormalization_0' has op type
'com.microsoft::EmbedLayerNormalization'`` (and the same for SkipLayerNormalization,
SimplifiedLayerNormalization, FastGelu, BiasGelu, Attention)."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import qcompile as qc
from qcompile.frontend.decompose import decompose_ops
from qcompile.models import zoo

#: zoo export -> (optimizer model_type, the fused ops it must have produced)
OPTIMIZED = {"distilbert": ("bert", {"Attention", "EmbedLayerNormalization", "SkipLayerNormalization", "BiasGelu"}),
             "deit": ("vit", {"SkipLayerNormalization", "BiasGelu"}),
             "gpt2": ("gpt2", {"SkipLayerNormalization", "FastGelu"}),
             "llama": ("gpt2", {"SimplifiedLayerNormalization", "SkipSimplifiedLayerNormalization"})}


@pytest.fixture(scope="module")
def optimized(tmp_path_factory):
    import logging

    from onnxruntime.transformers.optimizer import optimize_model

    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
    d = tmp_path_factory.mktemp("ort_optimized")
    out = {}
    for name, (model_type, ops) in OPTIMIZED.items():
        o = optimize_model(str(zoo.ZOO[name].onnx), model_type=model_type, opt_level=1, num_heads=4, hidden_size=64)
        o.save_model_to_file(str(d / f"{name}.onnx"))
        fused = {n.op_type for n in onnx.load(str(d / f"{name}.onnx")).graph.node}
        assert ops <= fused, (name, fused)  # the optimizer did fuse what the test is about
        out[name] = d / f"{name}.onnx"
    return out


@pytest.mark.parametrize("name,pipeline", [("distilbert", "none"), ("deit", "none"), ("gpt2", "none"),
                                           ("llama", "none"), ("llama", "kv-prerope"),
                                           pytest.param("distilbert", "int-only", marks=pytest.mark.slow)])
def test_optimized_export(optimized, name, pipeline):
    r = zoo.check(optimized[name], pipeline, zoo.ZOO[name].kind)
    assert r["status"] == "pass", r
    assert r["cosine"] >= zoo.TOLERANCE[pipeline]


def _attention_model(path, mask_rank, unidirectional=0, bias=True):
    B, S, H, N = 2, 5, 16, 4
    rng = np.random.default_rng(0)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "s", H])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", "s", H])
    inits = [numpy_helper.from_array(rng.standard_normal((H, 3 * H)).astype(np.float32) / 4, "w")]
    ins = ["x", "w", "bias" if bias else ""]
    inputs = [x]
    if bias:
        inits.append(numpy_helper.from_array(rng.standard_normal(3 * H).astype(np.float32) / 4, "bias"))
    if mask_rank:
        shape = {1: ["b"], 2: ["b", "s"], 3: ["b", "s", "s"]}[mask_rank]
        inputs.append(helper.make_tensor_value_info("mask", TensorProto.INT32, shape))
        ins.append("mask")
    node = helper.make_node("Attention", ins, ["y"], domain="com.microsoft", num_heads=N,
                            unidirectional=unidirectional)
    m = helper.make_model(helper.make_graph([node], "att", inputs, [y], inits),
                          opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    onnx.save(m, str(path))
    feed = {"x": rng.standard_normal((B, S, H)).astype(np.float32)}
    if mask_rank == 1:
        feed["mask"] = np.array([S, 3], np.int32)  # right-padding lengths
    elif mask_rank == 2:
        feed["mask"] = np.array([[1] * S, [1, 1, 1, 0, 0]], np.int32)
    elif mask_rank == 3:
        feed["mask"] = (rng.random((B, S, S)) > 0.3).astype(np.int32)
        feed["mask"][..., 0] = 1
    return feed


@pytest.mark.parametrize("mask_rank,unidirectional", [(0, 0), (1, 0), (2, 0), (3, 0), (0, 1), (2, 1)])
def test_attention_decomposition_matches_onnxruntime(tmp_path, mask_rank, unidirectional):
    """onnxruntime's ``Attention``: lengths ``[B]``, raw masks ``[B, S]`` and ``[B, S, S]``,
    causal (``unidirectional``), with the packed QKV weight and bias; the decomposed graph
    equals onnxruntime's fused kernel, and canonicalization finds the attention in it."""
    path = tmp_path / "att.onnx"
    feed = _attention_model(path, mask_rank, unidirectional)
    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    model = qc.load(str(path))
    canon = qc.canonicalize(model.mod)
    assert "qcompile.attention" in canon.script(show_meta=False)
    got = qc.build(qc.PassManager(qc.pipeline("none")).run(model.mod), "llvm").run(
        *[feed[s.name] for s in model.inputs])[0]
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_what_is_not_decomposed_stays_and_is_refused(tmp_path):
    """An ``Attention`` with a past state is left as it is, and the loader names it."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8])
    past = helper.make_tensor_value_info("past", TensorProto.FLOAT, [2, 1, 2, 3, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 8])
    node = helper.make_node("Attention", ["x", "w", "", "", "past"], ["y"], domain="com.microsoft", num_heads=2,
                            name="att_with_past")
    w = numpy_helper.from_array(np.zeros((8, 24), np.float32), "w")
    m = helper.make_model(helper.make_graph([node], "g", [x, past], [y], [w]),
                          opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    assert decompose_ops(m)[1] == 0
    onnx.save(m, str(tmp_path / "m.onnx"))
    with pytest.raises(qc.UnsupportedOpError, match="att_with_past.*com.microsoft::Attention"):
        qc.load(str(tmp_path / "m.onnx"))


@pytest.mark.parametrize("mask_rank,cross,bias", [(0, False, True), (2, False, False), (1, False, True),
                                                  (0, True, False), (2, True, True)])
def test_multi_head_attention_decomposition_matches_onnxruntime(tmp_path, mask_rank, cross, bias):
    """onnxruntime's ``MultiHeadAttention`` (separate query, key and value; cross-attention
    over ``L != S`` keys; packed bias; a key padding mask as lengths or raw): the decomposed
    graph equals onnxruntime's kernel."""
    B, S, L, H, N = 2, 5, (7 if cross else 5), 16, 4
    rng = np.random.default_rng(1)
    vi = helper.make_tensor_value_info
    inputs = [vi("q", TensorProto.FLOAT, ["b", "s", H]), vi("k", TensorProto.FLOAT, ["b", "l", H]),
              vi("v", TensorProto.FLOAT, ["b", "l", H])]
    feed = {"q": rng.standard_normal((B, S, H)).astype(np.float32),
            "k": rng.standard_normal((B, L, H)).astype(np.float32),
            "v": rng.standard_normal((B, L, H)).astype(np.float32)}
    ins, inits = ["q", "k", "v", "bias" if bias else ""], []
    if bias:
        inits.append(numpy_helper.from_array(rng.standard_normal(3 * H).astype(np.float32), "bias"))
    if mask_rank:
        inputs.append(vi("mask", TensorProto.INT32, ["b"] if mask_rank == 1 else ["b", "l"]))
        ins.append("mask")
        feed["mask"] = np.array([L, 3], np.int32) if mask_rank == 1 else \
            np.array([[1] * L, [1, 1, 1] + [0] * (L - 3)], np.int32)
    node = helper.make_node("MultiHeadAttention", ins, ["y"], domain="com.microsoft", num_heads=N)
    m = helper.make_model(helper.make_graph([node], "mha", inputs, [vi("y", TensorProto.FLOAT, ["b", "s", H])],
                                            inits),
                          opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    onnx.save(m, str(tmp_path / "mha.onnx"))
    ref = ort.InferenceSession(str(tmp_path / "mha.onnx"), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    model = qc.load(str(tmp_path / "mha.onnx"))
    got = qc.build(qc.PassManager(qc.pipeline("none")).run(model.mod), "llvm").run(
        *[feed[s.name] for s in model.inputs])[0]
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("symmetric", [False, True])
def test_block_quantized_weights_are_dequantized(tmp_path, symmetric):
    """``MatMulNBits`` (int4 weights in blocks of 32, as onnxruntime's ``MatMulNBitsQuantizer``
    and onnxruntime-genai's int4 models write them; with and without zero points): the weight
    is dequantized at import and the decoder matches onnxruntime's int4 kernel through a
    prefill and a decode step."""
    import logging

    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    logging.getLogger("onnxruntime.quantization").setLevel(logging.ERROR)
    qz = MatMulNBitsQuantizer(onnx.load(str(zoo.ZOO["llama"].onnx)), bits=4, block_size=32, is_symmetric=symmetric)
    qz.process()
    qz.model.save_model_to_file(str(tmp_path / "llama.onnx"))
    assert any(n.op_type == "MatMulNBits" for n in onnx.load(str(tmp_path / "llama.onnx")).graph.node)
    r = zoo.check(tmp_path / "llama.onnx", "none", "decoder")
    assert r["status"] == "pass", r
