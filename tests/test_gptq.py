"""GPTQ (qcompile.weights.gptq) and qdq-sim's ``w_gptq``: the weights stay on round-to-nearest's
grid, the layer's output error on correlated inputs drops well below round-to-nearest's, and
the pass asks for the inputs' Gram matrices and rounds with them."""
import numpy as np
import pytest
import tvm
from tvm import relax

import qcompile as qc
import qcompile.pipelines
from qcompile.collectors import Gram
from qcompile.errors import QCompileError
from qcompile.ir import const_value
from qcompile.weights import gptq
from qcompile.passes.qdq_sim import qdq_weight
from qcompile.weights import weight_scales


def _correlated(rng, n, d):
    """Inputs with strongly correlated channels (a few latent factors plus noise)."""
    return rng.standard_normal((n, 4)) @ rng.standard_normal((4, d)) + 0.1 * rng.standard_normal((n, d))


def test_gptq_output_error_below_round_to_nearest():
    rng = np.random.default_rng(0)
    x, w = _correlated(rng, 2048, 96), rng.standard_normal((96, 24))
    gram = Gram()
    gram.update(x)
    for bits in (3, 4):
        s = weight_scales(w, bits)
        q = gptq(w, gram.xtx, gram.rows, s, bits)
        levels = q / s
        assert np.allclose(levels, np.rint(levels)) and np.abs(np.rint(levels)).max() <= 2 ** (bits - 1) - 1
        err_gptq = np.sum((x @ (q - w)) ** 2)
        err_rtn = np.sum((x @ (qdq_weight(w, bits) - w)) ** 2)
        assert err_gptq < 0.5 * err_rtn, (bits, err_gptq, err_rtn)


def test_gptq_refuses_a_gram_matrix_that_does_not_fit():
    with pytest.raises(QCompileError, match="does not fit"):
        gptq(np.ones((8, 2)), np.eye(4), 10, np.ones((1, 2)), 4)


def _two_linears(w1, w2):
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((tvm.tirx.Var("n", "int64"), w1.shape[0]), "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            h = bb.emit(relax.op.matmul(x, relax.const(w1)))
            y = bb.emit(relax.op.matmul(relax.op.nn.relu(h), relax.const(w2)))
            gv = bb.emit_output(relax.op.add(y, relax.const(np.zeros(w2.shape[1], np.float32))))
        bb.emit_func_output(gv)
    return bb.get()


def test_qdq_sim_rounds_by_gptq_from_calibration():
    """The first linear (the second is the output head, kept float) is rounded by GPTQ with
    the Gram matrix of its calibration inputs; without calibration the pass says so."""
    rng = np.random.default_rng(1)
    w1, w2 = rng.standard_normal((32, 16)).astype(np.float32), rng.standard_normal((16, 4)).astype(np.float32)
    mod = _two_linears(w1, w2)
    xs = _correlated(rng, 256, 32).astype(np.float32)
    qdq = qc.pipelines.PASSES["qdq-sim"]
    with pytest.raises(QCompileError, match="calibration"):
        qc.PassManager([qdq(w_bits=4, a_bits=0, w_gptq=True)]).run(mod)
    calib = qc.Calibration({"x": xs}, batch=64, progress=False)
    out = qc.PassManager([qdq(w_bits=4, a_bits=0, w_gptq=True)], calibration=calib).run(mod)
    weights = [const_value(b.value.args[1]) for blk in out["main"].body.blocks for b in blk.bindings
               if isinstance(b.value, relax.Call) and getattr(b.value.op, "name", "") == "relax.matmul"]
    gram = Gram()
    gram.update(xs)
    want = gptq(w1.astype(np.float64), gram.xtx, gram.rows, weight_scales(w1.astype(np.float64), 4), 4)
    np.testing.assert_allclose(weights[0], want.astype(np.float32), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(weights[1], w2)


def test_the_w4a8_gptq_recipe():
    """examples/rotate_w4a8_gptq.toml: rotate, then 4-bit GPTQ weights on searched ranges and
    8-bit activations; the pipeline asks for calibration (the CLI then needs --calib-data)."""
    from pathlib import Path

    passes = qc.pipeline(str(Path(__file__).resolve().parent.parent / "examples/rotate_w4a8_gptq.toml"))
    assert [p.name for p in passes] == ["canonicalize", "rotate", "qdq-sim"]
    cfg = passes[-1].config
    assert (cfg.w_bits, cfg.a_bits, cfg.w_clip, cfg.w_gptq) == (4, 8, "mse", True) and passes[-1].needs_calibration
