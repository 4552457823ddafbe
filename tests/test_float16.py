"""Float16 exports: the same architectures with their weights in float16, as onnxruntime's
own converter (``onnxruntime.transformers.float16``) writes them: with float16 inputs and
outputs, and with ``keep_io_types`` (float32 I/O, a Cast after each input and before each
output, and the Casts appended at the end of the graph, out of topological order: onnxruntime
sorts such a graph on load, and so does qcompile). Compared with onnxruntime on the same
float16 model (``zoo.check``, ``zoo.HALF_TOLERANCE`` for the float pipelines).

Before these rules: the keep_io_types graph was refused as malformed; `kv-prerope` and `bfp`
failed inside their kernels (float32 arithmetic met float16 keys); with float32 cache I/O
the cache analyses did not find ``concat(cast(past), new)``."""
import onnx
import pytest

from qcompile.models import zoo


@pytest.fixture(scope="module")
def half(tmp_path_factory):
    from onnxruntime.transformers.float16 import convert_float_to_float16

    out = {}
    for name in ("llama", "bert"):
        src = onnx.load(str(zoo.ZOO[name].onnx))
        for keep_io in (False, True):
            d = tmp_path_factory.mktemp(f"half_io{int(keep_io)}")
            onnx.save(convert_float_to_float16(src, keep_io_types=keep_io), str(d / f"{name}.onnx"))
            out[name, keep_io] = d / f"{name}.onnx"
    return out


@pytest.mark.parametrize("name,keep_io,pipeline", [
    ("llama", False, "none"), ("llama", False, "bfp"),
    ("llama", True, "kv-prerope"), ("llama", True, "k-sort"),
    pytest.param("bert", True, "int-only", marks=pytest.mark.slow)])
def test_float16_export(half, name, keep_io, pipeline):
    r = zoo.check(half[name, keep_io], pipeline, zoo.ZOO[name].kind)
    assert r["status"] == "pass", r
    assert r["cosine"] >= min(zoo.TOLERANCE[pipeline], zoo.HALF_TOLERANCE)


def test_unsorted_graph_is_sorted_and_a_cycle_refused(half, tmp_path):
    import qcompile as qc

    proto = onnx.load(str(half["llama", True]))
    with pytest.raises(onnx.checker.ValidationError, match="topologically sorted"):
        onnx.checker.check_model(proto)
    assert qc.load(str(half["llama", True])).inputs
    # a real cycle stays a one-line refusal
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    g = helper.make_graph([helper.make_node("Add", ["x", "b"], ["a"]), helper.make_node("Relu", ["a"], ["b"]),
                           helper.make_node("Identity", ["a"], ["y"])], "cyc", [x], [y])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "c.onnx"))
    with pytest.raises(qc.QCompileError, match="malformed ONNX model"):
        qc.load(str(tmp_path / "c.onnx"))
