"""Golden IR: canonicalized tiny encoder/decoder from both frontends, as TVMScript text.

Update deliberately with ``pytest tests/test_golden.py --update-golden`` and review the diff.
"""
import difflib
from pathlib import Path

import pytest
import torch

import qcompile as qc
from qcompile.ir import script
from qcompile.models.tiny import TinyDecoder, TinyEncoder, decoder_inputs, encoder_inputs, export_onnx

GOLDEN = Path(__file__).parent / "golden"


def _case(name, tmp_path):
    torch.manual_seed(0)
    kind, frontend = name.split("_")
    if kind == "encoder":
        m, inp, names = TinyEncoder(gelu_form="erf_decomposed", ln="decomposed").eval(), encoder_inputs(), ["x", "mask"]
    else:
        m, inp, names = TinyDecoder(rope="half", rotary_frac=0.5).eval(), decoder_inputs(), ["x", "positions"]
    if frontend == "torch":
        return qc.load(m, example_inputs=inp).mod
    return qc.load(export_onnx(m, inp, tmp_path / f"{name}.onnx", names)).mod


def check_golden(text: str, path: Path, update: bool):
    if update:
        path.write_text(text)
        return
    assert path.exists(), f"missing golden {path.name}: run pytest --update-golden and review the diff"
    expected = path.read_text()
    if text != expected:
        diff = "".join(list(difflib.unified_diff(expected.splitlines(True), text.splitlines(True),
                                                 "golden", "now"))[:80])
        pytest.fail(f"IR differs from {path.name} (pytest --update-golden to accept):\n{diff}")


@pytest.mark.parametrize("name", ["encoder_torch", "encoder_onnx", "decoder_torch", "decoder_onnx"])
def test_canonicalize_golden(name, tmp_path, update_golden):
    check_golden(script(qc.canonicalize(_case(name, tmp_path))), GOLDEN / f"canonicalize_{name}.py", update_golden)


def test_printed_ir_pins_constants():
    """Before, the printed IR showed every constant as ``metadata[...]``: a changed quantized
    weight or requantization multiplier left the golden text as it was. Now the text ends
    with one line per constant (integers exactly, floats to a few digits)."""
    import numpy as np
    from tvm import relax

    def module(w, mult, gain):
        bb = relax.BlockBuilder()
        x = relax.Var("x", relax.TensorType((2, 4), "int8"))
        with bb.function("main", [x]):
            with bb.dataflow():
                acc = bb.emit(relax.op.matmul(x, relax.const(w), out_dtype="int32"))
                y = bb.emit(relax.op.multiply(relax.op.astype(acc, "int64"), relax.const(mult, "int64")))
                z = bb.emit(relax.op.multiply(relax.op.astype(y, "float32"), relax.const(gain)))
                out = bb.emit_output(z)
            bb.emit_func_output(out)
        return bb.get()

    w = np.arange(-8, 8, dtype=np.int8).reshape(4, 4)
    gain = np.linspace(0.5, 1.5, 4, dtype=np.float32)
    base = script(module(w, 1 << 20, gain))
    assert "# main.lv #0: int8[4, 4] sha256:" in base and "int64[] 1048576" in base
    w2 = w.copy()
    w2[0, 0] += 1
    assert script(module(w2, 1 << 20, gain)) != base
    assert script(module(w, (1 << 20) + 1, gain)) != base
    assert script(module(w, 1 << 20, gain * 1.01)) != base
    assert script(module(w, 1 << 20, gain)) == base
