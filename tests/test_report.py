"""The report as a user reads it: the error per block of a quantized pipeline against the
float model (probes: where the blocks end, the probed modules, the figures), report.md's
table and report.html's plot."""
import base64
import json
import re
import struct

import numpy as np
import onnxruntime as ort
import pytest
from tvm import relax
from tvm.script import relax as R

import qcompile as qc
from qcompile import report
from qcompile.analysis.blocks import block_outputs
from qcompile.calibration import Calibration
from qcompile.cli import main
from qcompile.evaluate import compare_layers
from qcompile.models import ASSETS, DEFAULT_MODEL
from qcompile.models.zoo import FIXTURES, onnx_feed


def test_block_outputs_are_the_residual_adds():
    """``x + f(x)`` with a layer in ``f`` is a block output; a bias, a constant, two
    unrelated activations (a mask) and an elementwise formula (GELU's ``x + c x^3``) are not."""
    @R.function
    def main(x: R.Tensor((2, 8), "float32"), m: R.Tensor((2, 8), "float32")):
        with R.dataflow():
            h = R.matmul(x, R.const(np.eye(8, dtype="float32")))
            h1 = R.add(h, R.const(np.ones(8, "float32")))                        # a bias
            cube = R.multiply(R.multiply(h1, h1), h1)
            g = R.add(h1, R.multiply(cube, R.const(0.044715, "float32")))        # GELU's formula
            r = R.add(x, g)                                                      # residual: block 1
            s = R.add(r, m)                                                      # unrelated operands
            h2 = R.matmul(s, R.const(np.eye(8, dtype="float32")))
            r2 = R.add(h2, s)                                                    # residual: block 2
            R.output(r2)
        return r2

    got = block_outputs(tvm_module(main))
    assert [(v.name, label) for v, label in got] == [("r", "1 mlp"), ("r2", "2 mlp")]


def tvm_module(func):
    import tvm

    return tvm.IRModule({"main": func})


def test_a_plain_cnn_is_probed_at_its_layers():
    @R.function
    def main(x: R.Tensor((1, 3, 8, 8), "float32")):
        with R.dataflow():
            c = R.nn.conv2d(x, R.const(np.ones((4, 3, 3, 3), "float32")), padding=[1, 1, 1, 1])
            a = R.nn.relu(c)
            c2 = R.nn.conv2d(a, R.const(np.ones((4, 4, 3, 3), "float32")), padding=[1, 1, 1, 1])
            R.output(c2)
        return c2

    assert [label for _, label in block_outputs(tvm_module(main))] == ["1 conv2d", "2 conv2d"]


@pytest.fixture(scope="module")
def bert_probed():
    """Optimum's BERT (symbolic batch and sequence) through int-only with probes: the
    pass manager, the probes, and the main artifact."""
    path = FIXTURES / "bert.onnx"
    feeds = [onnx_feed(path, batch=2, seq=8, seed=100 + i) for i in range(8)]
    cal = Calibration({k: np.concatenate([f[k] for f in feeds]) for k in feeds[0]}, batch=2, progress=False)
    model = qc.load(str(path))
    pm = qc.PassManager(qc.pipeline("int-only"), calibration=cal, probes=True)
    mod = pm.run(model.mod)
    return path, model, pm, qc.build(mod, "llvm"), mod


def test_probes_see_the_artifacts_own_computation(bert_probed):
    """The probed integer module computes the artifact's outputs bit for bit (probing adds
    outputs, it changes nothing), and the probed float module matches onnxruntime; the
    figures are the cosine and relative error of those probes, over every batch."""
    path, model, pm, art, _ = bert_probed
    probe = pm.probe
    assert probe is not None and probe.labels == ["1 attention", "2 mlp", "3 attention", "4 mlp"]
    qart, fart = qc.build(probe.quant_mod, "llvm"), qc.build(probe.float_mod, "llvm")
    feed = onnx_feed(path, batch=2, seq=7, seed=5)
    xs = [feed[s.name] for s in model.inputs]
    n_out = len(model.outputs)
    for a, b in zip(art.run(*xs), qart.run_raw(*xs)[:n_out]):
        np.testing.assert_array_equal(a, b)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for a, b in zip(fart.run_raw(*xs)[:n_out], sess.run(None, feed)):
        np.testing.assert_allclose(a, b, atol=2e-5)
    data = {k: np.concatenate([onnx_feed(path, batch=2, seq=7, seed=s)[k] for s in (5, 6)]) for k in feed}
    got = compare_layers(probe, fart, qart, model, data, batch=2, progress=False)
    q = [np.concatenate(z) for z in zip(*[qart.run_raw(*[data[s.name][i:i + 2] for s in model.inputs])[n_out:]
                                          for i in (0, 2)])]
    f = [np.concatenate(z) for z in zip(*[fart.run_raw(*[data[s.name][i:i + 2] for s in model.inputs])[n_out:]
                                          for i in (0, 2)])]
    for row, qi, fi in zip(got, q, f):
        qi, fi = qi.astype(np.float64).ravel(), fi.astype(np.float64).ravel()
        assert row["cosine"] == pytest.approx(qi @ fi / np.linalg.norm(qi) / np.linalg.norm(fi), rel=1e-9)
        assert row["relative_error"] == pytest.approx(np.linalg.norm(qi - fi) / np.linalg.norm(fi), rel=1e-6)
        assert 0 < row["relative_error"] < 0.2  # quantized: some error, not garbage


def test_length_guard_survives_the_llvm_rewrites(bert_probed):
    """int-only's run-time check of a symbolic attention length (an impure ``assert_op``
    before the dataflow block) stays outside the dataflow block when the llvm backend's
    rewrites re-emit ``main``: before, ``qcompile bert.onnx --pipeline int-only`` stopped at
    ``pass 'llvm.lut' failed: ... annotated as pure but contains an impure call``."""
    from qcompile.build import target_passes

    mod = bert_probed[-1]
    assert not mod["main"].is_pure
    out = qc.PassManager(target_passes("llvm", {})).run(mod)  # checks well-formedness after each
    assert not out["main"].is_pure and "assert_op" in out["main"].script()
    assert isinstance(out["main"].body.blocks[0], relax.BindingBlock)
    assert not isinstance(out["main"].body.blocks[0], relax.DataflowBlock)


def test_int_only_report_html_plots_the_error_per_block(tmp_path, capsys):
    """``qcompile vit_fmnist.onnx --pipeline int-only --eval-data``: report.json holds the
    error of each of the 8 block outputs (4 layers x attention, MLP), report.md a table and
    report.html the same page with the plot embedded as a PNG."""
    calib = tmp_path / "calib64.npz"
    np.savez(calib, **{k: v[:64] for k, v in np.load(ASSETS / "fmnist_calib256.npz").items()})
    out = tmp_path / "vit"
    rc = main([str(DEFAULT_MODEL), "--pipeline", "int-only", "--calib-data", str(calib), "--eval-data",
               str(ASSETS / "fmnist_test256.npz"), "--eval-limit", "64", "--batch", "32", "-o", str(out)])
    stdout = capsys.readouterr().out
    assert rc == 0
    layers = json.loads((out / "report.json").read_text())["evaluation"]["layers"]
    assert layers["pass"] == "int-only" and layers["ir_file"] == "02_int_prepare.py"
    blocks = layers["blocks"]
    assert [b["label"] for b in blocks] == [f"{i} {k}" for i, k in
                                           zip(range(1, 9), ["attention", "mlp"] * 4)]
    ir = (out / "ir" / "02_int_prepare.py").read_text()
    for b in blocks:
        assert 0.99 < b["cosine"] < 1 and 0 < b["relative_error"] < 0.15
        assert re.search(rf"\b{b['binding']}: R\.Tensor[^\n]*\) = R\.add\(", ir)  # a binding of the IR the table points to
    assert "error per block (8 blocks" in stdout
    md = (out / "report.md").read_text()
    assert "## Error per block" in md and md.count("| attention |") == 4
    assert "float for quantizing the model's input and dequantizing its output" in md  # what stayed float, and why
    page = (out / "report.html").read_text()
    png = base64.b64decode(re.search(r'src="data:image/png;base64,([^"]+)"', page).group(1))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert width >= 400 and height >= 300
    assert "<table>" in page and "<code>int-only</code>" in page


def test_report_html_without_matplotlib(monkeypatch):
    """No matplotlib: the page says how to get the plot; markdown is escaped and rendered."""
    monkeypatch.setattr(report, "layer_plot_png", lambda layers: None)
    rep = {"evaluation": {"layers": {"pass": "int-only", "ir_file": "02.py", "blocks": []}}}
    md = "# qcompile report: <m>\n\n* a `x<y`\n\n## Error per block (x)\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"
    page = report.html(md, rep)
    assert "<title>qcompile report: &lt;m&gt;</title>" in page and "<code>x&lt;y</code>" in page
    assert "matplotlib is not installed" in page and "<td>1</td><td>2</td>" in page


def test_qdq_sim_error_per_block_grows_as_bits_shrink(tiny_encoder_onnx, tiny_encoder_eval):
    """qdq-sim's probes (its rebuilt graph, read at the same residual adds): at every block
    W4A4 is further from the float model than W8A8, and W8A8 is close to it."""
    model = qc.load(str(tiny_encoder_onnx))
    data = dict(np.load(tiny_encoder_eval))
    rows = {}
    for bits in (4, 8):
        pm = qc.PassManager(qc.pipeline("qdq-sim", {"qdq-sim": {"w_bits": bits, "a_bits": bits}}), probes=True)
        pm.run(model.mod)
        probe = pm.probe
        assert probe is not None and len(probe.labels) >= 2 and all(" " in lb for lb in probe.labels)
        rows[bits] = compare_layers(probe, qc.build(probe.float_mod, "llvm"), qc.build(probe.quant_mod, "llvm"),
                                    model, data, batch=3, progress=False)
    for lo, hi in zip(rows[4], rows[8]):
        assert lo["binding"] == hi["binding"]
        assert lo["relative_error"] > 2 * hi["relative_error"] and hi["cosine"] > 0.999
