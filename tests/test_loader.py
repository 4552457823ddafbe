import numpy as np
import onnx
import pytest
import torch
from onnx import helper, numpy_helper

import qcompile as qc
from qcompile.errors import QCompileError, UnsupportedOpError
from qcompile.ir import shape_of


def test_onnx_symbolic_batch_stays_symbolic(tiny_encoder_onnx):
    m = qc.load(tiny_encoder_onnx)
    x = m.mod["main"].params[0]
    assert not isinstance(shape_of(x)[0], int)  # "N" stays a symbolic var
    assert [s.name for s in m.inputs] == ["x", "mask"] and m.inputs[0].shape[0] == "N"


def test_onnx_input_shape_fixes_dims(tiny_encoder_onnx):
    m = qc.load(tiny_encoder_onnx, input_shapes={"x": (3, 8, 32), "mask": (3, 8)})
    assert shape_of(m.mod["main"].params[0]) == (3, 8, 32)


def test_input_shape_errors(tiny_encoder_onnx):
    with pytest.raises(QCompileError, match="dim 1 is fixed to 8"):
        qc.load(tiny_encoder_onnx, input_shapes={"x": (3, 9, 32)})
    with pytest.raises(QCompileError, match="not a model input"):
        qc.load(tiny_encoder_onnx, input_shapes={"nope": (1,)})
    with pytest.raises(QCompileError, match="rank"):
        qc.load(tiny_encoder_onnx, input_shapes={"x": (3, 8)})


def test_parse_input_shapes():
    from qcompile.loader import parse_input_shapes

    assert parse_input_shapes(["input_ids=1x128", "m=2"]) == {"input_ids": (1, 128), "m": (2,)}
    for bad in ["x", "x=", "x=1xa", "=3", "x=-1x2"]:
        with pytest.raises(QCompileError, match="bad --input-shape"):
            parse_input_shapes([bad])


def test_torch_module(tiny_encoder):
    m, inp = tiny_encoder
    model = qc.load(m, example_inputs=inp)
    assert model.source == "torch" and [s.shape for s in model.inputs] == [(1, 8, 32), (1, 8)]
    with pytest.raises(QCompileError, match="example_inputs"):
        qc.load(m)


def _tiny_graph(op_type="Relu", opset=17, weight=None, domain=""):
    w = numpy_helper.from_array(np.ones((4, 4), np.float32) if weight is None else weight, "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
             helper.make_node(op_type, ["h"], ["y"], name="act", domain=domain)]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])], [w])
    imports = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(g, opset_imports=imports)


@pytest.mark.parametrize("opset", [13, 17, 21, 24])
def test_opsets_accepted(tmp_path, opset):
    p = tmp_path / "m.onnx"
    onnx.save(_tiny_graph(opset=opset), p)
    assert qc.load(p).meta["opset"] == opset


def test_bad_onnx_inputs(tmp_path):
    with pytest.raises(QCompileError, match="not found"):
        qc.load(tmp_path / "missing.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"\x00garbage\xff" * 10)
    with pytest.raises(QCompileError, match="cannot read ONNX|not a valid ONNX"):
        qc.load(tmp_path / "bad.onnx")
    onnx.save(_tiny_graph(opset=11), tmp_path / "old.onnx")
    with pytest.raises(QCompileError, match="opset 11 is not supported"):
        qc.load(tmp_path / "old.onnx")
    onnx.save(_tiny_graph(opset=25), tmp_path / "new.onnx")
    with pytest.raises(QCompileError, match="opset 25 is not supported"):
        qc.load(tmp_path / "new.onnx")


def test_unsupported_op_names_node_and_type(tmp_path):
    onnx.save(_tiny_graph(op_type="FancyAct", domain="com.example"), tmp_path / "u.onnx")
    with pytest.raises(UnsupportedOpError) as e:
        qc.load(tmp_path / "u.onnx")
    assert "node 'act'" in str(e.value) and "com.example::FancyAct" in str(e.value)


def test_nan_weights_refused(tmp_path):
    w = np.ones((4, 4), np.float32)
    w[1, 2] = np.nan
    onnx.save(_tiny_graph(weight=w), tmp_path / "n.onnx")
    with pytest.raises(QCompileError, match="weight 'w' has 1 NaN"):
        qc.load(tmp_path / "n.onnx")
    m = torch.nn.Linear(2, 2)
    with torch.no_grad():
        m.weight[0, 0] = float("nan")
    with pytest.raises(QCompileError, match="NaN"):
        qc.load(m, example_inputs=(torch.zeros(1, 2),))


def test_external_data(tmp_path):
    model = _tiny_graph(weight=np.arange(16, dtype=np.float32).reshape(4, 4))
    onnx.save(model, tmp_path / "ext.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
              location="ext.data", size_threshold=0)
    assert (tmp_path / "ext.data").exists()
    art = qc.build(qc.canonicalize(qc.load(tmp_path / "ext.onnx").mod))
    x = np.ones((1, 4), np.float32)
    np.testing.assert_allclose(art.run(x)[0], np.maximum(x @ np.arange(16, dtype=np.float32).reshape(4, 4), 0))
